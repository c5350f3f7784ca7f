//! Elementwise loops over contiguous slices, each run at the process's SIMD level
//! ([`super::vectorized`]): the activations and their derivatives, the losses' per-pixel
//! terms, and the optimizers' fused updates all go through these.
//!
//! Shape legend: every slice of one call has the same length n (checked, naming the loop).
//!
//! Each public function is a one-line dispatch around an `#[inline(always)]` loop, which is
//! what gets compiled once per level. None of them reorders a sum, so every level gives the
//! same bits.
//!
//! The per-element function `f` must be inlined into each level's loop as well, or it is
//! compiled once, for the baseline, and called per element. The compiler inlines small
//! closures by itself; a function that calls [`crate::fastmath`] (eˣ, σ, softplus) is larger
//! than its limit, so it is an `#[inline(always)]` function (`loss::bernoulli_nll`, say), or a
//! closure with that attribute where it must capture a value. Callers pass the function or
//! closure itself (closures over numbers and references are `Copy`), never a reference to it,
//! and the loop calls it as `(*f)(x)`: a call through `&F` goes through a forwarding function
//! (`<&F as Fn>::call`) that the compiler would not inline either.

use super::vectorized;

#[track_caller]
fn same_len(name: &str, a: usize, b: usize) {
    assert_eq!(a, b, "kernels::{name}: slices of different lengths ({a} and {b})");
}

/// y_i = f(x_i).
#[track_caller]
pub fn map(x: &[f32], y: &mut [f32], f: impl Fn(f32) -> f32) {
    same_len("map", x.len(), y.len());
    vectorized(
        #[inline(always)]
        || map_loop(x, y, &f),
    )
}

#[inline(always)]
fn map_loop(x: &[f32], y: &mut [f32], f: &impl Fn(f32) -> f32) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = (*f)(x);
    }
}

/// y_i = f(x_i, u_i).
#[track_caller]
pub fn map2(x: &[f32], u: &[f32], y: &mut [f32], f: impl Fn(f32, f32) -> f32) {
    same_len("map2", x.len(), u.len());
    same_len("map2", x.len(), y.len());
    vectorized(
        #[inline(always)]
        || map2_loop(x, u, y, &f),
    )
}

#[inline(always)]
fn map2_loop(x: &[f32], u: &[f32], y: &mut [f32], f: &impl Fn(f32, f32) -> f32) {
    for (y, (&x, &u)) in y.iter_mut().zip(x.iter().zip(u)) {
        *y = (*f)(x, u);
    }
}

/// d_i ← f(d_i), in place.
pub fn update(d: &mut [f32], f: impl Fn(f32) -> f32) {
    vectorized(
        #[inline(always)]
        || update_loop(d, &f),
    )
}

#[inline(always)]
fn update_loop(d: &mut [f32], f: &impl Fn(f32) -> f32) {
    for d in d.iter_mut() {
        *d = (*f)(*d);
    }
}

/// d_i ← f(d_i, u_i), in place.
#[track_caller]
pub fn update2(d: &mut [f32], u: &[f32], f: impl Fn(f32, f32) -> f32) {
    same_len("update2", d.len(), u.len());
    vectorized(
        #[inline(always)]
        || update2_loop(d, u, &f),
    )
}

#[inline(always)]
fn update2_loop(d: &mut [f32], u: &[f32], f: &impl Fn(f32, f32) -> f32) {
    for (d, &u) in d.iter_mut().zip(u) {
        *d = (*f)(*d, u);
    }
}

/// f(θ_i, g_i, a_i, b_i) for every i, where f updates θ, a and b in place: an optimizer's
/// fused step over a parameter θ, its gradient g and two state tensors (Adam's m and v).
#[track_caller]
pub fn update_with_state(
    theta: &mut [f32],
    g: &[f32],
    a: &mut [f32],
    b: &mut [f32],
    f: impl Fn(&mut f32, f32, &mut f32, &mut f32),
) {
    same_len("update_with_state", theta.len(), g.len());
    same_len("update_with_state", theta.len(), a.len());
    same_len("update_with_state", theta.len(), b.len());
    vectorized(
        #[inline(always)]
        || update_with_state_loop(theta, g, a, b, &f),
    )
}

#[inline(always)]
fn update_with_state_loop(
    theta: &mut [f32],
    g: &[f32],
    a: &mut [f32],
    b: &mut [f32],
    f: &impl Fn(&mut f32, f32, &mut f32, &mut f32),
) {
    for (((t, &g), a), b) in theta.iter_mut().zip(g).zip(a.iter_mut()).zip(b.iter_mut()) {
        (*f)(t, g, a, b);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{vectorized_at, Simd};
    use super::*;
    use crate::fastmath;

    /// Arguments over the range the activations meet, with a length no vector width divides,
    /// in a vector that ends exactly at its last element.
    fn arguments() -> Vec<f32> {
        let n = 1000 + 13;
        let mut x = Vec::with_capacity(n);
        x.extend((0..n).map(|i| (i as f32 * 0.618_034).sin() * 30.0 - 0.5));
        assert_eq!(x.capacity(), x.len());
        x
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn every_level_gives_the_portable_bits() {
        let x = arguments();
        let u: Vec<f32> = x.iter().map(|v| v * 0.37 - 1.0).collect();
        let run = |level: Simd| {
            let mut y = vec![0.0f32; x.len()];
            vectorized_at(
                level,
                #[inline(always)]
                || map_loop(&x, &mut y, &|v| fastmath::tanh(v) + fastmath::softplus(v)),
            );
            let mut z = vec![0.0f32; x.len()];
            vectorized_at(
                level,
                #[inline(always)]
                || map2_loop(&x, &u, &mut z, &|v, w| fastmath::sigmoid(v).mul_add(w, fastmath::exp(w))),
            );
            let mut d = u.clone();
            vectorized_at(
                level,
                #[inline(always)]
                || update2_loop(&mut d, &x, &|d, v| d * fastmath::ln_1p(v.abs())),
            );
            (bits(&y), bits(&z), bits(&d))
        };
        let portable = run(Simd::Portable);
        for level in crate::kernels::testable_levels(&Simd::ALL) {
            assert!(run(level) == portable, "{} differs from portable", level.name());
            println!("{}: the same bits as portable", level.name());
        }
    }

    #[test]
    fn the_public_loops_check_lengths_and_compute_in_place() {
        let x = arguments();
        let mut y = vec![0.0f32; x.len()];
        map(&x, &mut y, |v| v * 2.0);
        assert!(y.iter().zip(&x).all(|(y, x)| *y == 2.0 * x));
        update(&mut y, |v| v - 1.0);
        assert!(y.iter().zip(&x).all(|(y, x)| *y == 2.0 * x - 1.0));
        let (mut t, mut a, mut b) = (x.clone(), vec![0.0; x.len()], vec![1.0; x.len()]);
        update_with_state(&mut t, &x, &mut a, &mut b, |t, g, a, b| {
            *a += g;
            *b *= 2.0;
            *t -= *a * *b;
        });
        assert!(t.iter().zip(&x).all(|(t, x)| *t == x - 2.0 * x));
    }

    #[test]
    #[should_panic(expected = "kernels::map2: slices of different lengths (3 and 2)")]
    fn slices_of_different_lengths_are_refused() {
        map2(&[0.0; 3], &[1.0, 2.0], &mut [0.0; 3], |a, b| a + b);
    }
}
