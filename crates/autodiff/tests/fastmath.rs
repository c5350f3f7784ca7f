//! The vectorizable eˣ, ln(1 + u), σ, softplus, tanh and ELU of `fastmath` against the f64 library
//! functions, on dense grids over the ranges they are used on.

use vae_autodiff::fastmath::{elu, exp, ln_1p, sigmoid, softplus, tanh};

/// Largest relative error of `f` against `reference` over `xs`, ignoring values below `tiny`
/// (there the absolute error must be below `tiny`).
fn max_rel_error(
    xs: impl Iterator<Item = f32>,
    f: impl Fn(f32) -> f32,
    reference: impl Fn(f64) -> f64,
    tiny: f64,
) -> f64 {
    let mut worst = 0.0f64;
    for x in xs {
        let (got, want) = (f(x) as f64, reference(x as f64));
        assert!(got.is_finite(), "not finite at x = {x}: {got}");
        if want.abs() < tiny {
            assert!((got - want).abs() < tiny, "x = {x}: got {got}, want {want}");
        } else {
            worst = worst.max(((got - want) / want).abs());
        }
    }
    worst
}

/// n evenly spaced points from lo to hi.
fn grid(lo: f32, hi: f32, n: usize) -> impl Iterator<Item = f32> {
    (0..=n).map(move |i| lo + (hi - lo) * (i as f32 / n as f32))
}

/// One unit in the last place of an f32 near 1, relative: 2⁻²³.
const ULP: f64 = 1.0 / (1u64 << 23) as f64;

#[test]
fn exp_is_within_a_few_ulp_over_its_range() {
    let err = max_rel_error(grid(-87.0, 88.0, 2_000_000), exp, f64::exp, 0.0);
    println!("exp: max relative error {:.2} ulp", err / ULP);
    assert!(err < 1.5 * ULP, "exp: max relative error {err:e} = {:.2} ulp", err / ULP);
    // Clamped outside [−87, 88]: finite, no overflow, no denormal.
    assert!(exp(1000.0).is_finite() && exp(-1000.0) > 0.0 && exp(-1000.0).is_normal());
    assert_eq!(exp(0.0), 1.0);
}

#[test]
fn ln_1p_is_within_a_few_ulp_also_for_tiny_arguments() {
    let dense = grid(0.0, 1.0, 1_000_000);
    let tiny = (0..200).map(|i| 2f32.powi(-i / 2) * 0.7);
    let err = max_rel_error(dense.chain(tiny), ln_1p, f64::ln_1p, 1e-45);
    println!("ln_1p: max relative error {:.2} ulp", err / ULP);
    assert!(err < 2.0 * ULP, "ln_1p: max relative error {err:e} = {:.2} ulp", err / ULP);
    assert_eq!(ln_1p(1e-30), 1e-30);
}

#[test]
fn sigmoid_and_softplus_match_the_f64_formulas() {
    let sigmoid64 = |x: f64| 1.0 / (1.0 + (-x).exp());
    let softplus64 = |x: f64| x.max(0.0) + (-x.abs()).exp().ln_1p();
    // Below e^−87 the clamped exp answers ~1.6e−38 instead of a denormal: absolute error
    // under 1e−37.
    let err = max_rel_error(grid(-100.0, 100.0, 2_000_000), sigmoid, sigmoid64, 1e-37);
    println!("sigmoid: max relative error {:.2} ulp", err / ULP);
    assert!(err < 2.0 * ULP, "sigmoid: max relative error {err:e} = {:.2} ulp", err / ULP);
    let err = max_rel_error(grid(-100.0, 100.0, 2_000_000), softplus, softplus64, 1e-37);
    println!("softplus: max relative error {:.2} ulp", err / ULP);
    assert!(err < 2.5 * ULP, "softplus: max relative error {err:e} = {:.2} ulp", err / ULP);
    assert_eq!(softplus(1000.0), 1000.0);
    assert!(sigmoid(-1000.0) < 1e-37);
}

#[test]
fn tanh_is_within_a_few_ulp_everywhere() {
    let dense = grid(-12.0, 12.0, 4_000_000);
    let tiny = (0..300).map(|i| 2f32.powi(-i / 2) * 0.9).flat_map(|x| [x, -x]);
    let around_the_switch = grid(0.549, 0.551, 10_000).flat_map(|x| [x, -x]);
    let err = max_rel_error(dense.chain(tiny).chain(around_the_switch), tanh, f64::tanh, 1e-45);
    println!("tanh: max relative error {:.2} ulp", err / ULP);
    assert!(err < 2.0 * ULP, "tanh: max relative error {err:e} = {:.2} ulp", err / ULP);
    assert_eq!((tanh(100.0), tanh(-100.0), tanh(0.0)), (1.0, -1.0, 0.0));
    assert!(tanh(-0.0).is_sign_negative());
}

#[test]
fn pow2_is_exact_over_the_exponent_range() {
    use vae_autodiff::fastmath::pow2;
    for n in -126..=127 {
        assert_eq!(pow2(n as f32), 2f32.powi(n), "2^{n}");
    }
}

/// The ELU's negative side, eˣ − 1, keeps its relative precision near 0 (where the series takes
/// over) and down to −87; the positive side is x itself.
#[test]
fn elu_matches_expm1_below_zero_and_is_x_above() {
    let dense = grid(-87.0, 0.0, 2_000_000);
    let tiny = (1..120).map(|i| -(2f32.powi(-i / 2)) * 0.7);
    let err = max_rel_error(dense.chain(tiny), elu, f64::exp_m1, 1e-45);
    println!("elu: max relative error {:.2} ulp", err / ULP);
    assert!(err < 10.0 * ULP, "elu: max relative error {err:e} = {:.2} ulp", err / ULP);
    assert!(grid(0.001, 50.0, 10_000).all(|x| elu(x) == x));
    assert_eq!(elu(0.0), 0.0);
}
