//! Criterion benchmarks of the engine at the shapes of the MNIST models (`cargo bench`).
//!
//! - `peak/*`: one core's FMA throughput in a register-blocked loop, the roofline's ceiling.
//! - `gemm/*`: the products of one MLP step (784-400-20, batch 128), forward and backward,
//!   with transposed operands as the tape passes them; throughput in FLOP (2·M·N·K).
//! - `sparse/*`: the first layer's x·W forward and backward on sparse rows, sparse path against
//!   the GEMM.
//! - `conv/*`: conv2d and conv_transpose2d forward + backward at the conv model's shapes, and
//!   the ResNet VAE's stride-1 3×3 layers.
//! - `step/*`: one training step (forward, backward, Adam) of each model, batch 128.
//! - `eval/mlp_test_set`: the negative ELBO over the 10,000 MNIST test images.
//! - `burda/*`: Burda et al.'s 784-200-200-50 tanh model at batch 20 (dynamically binarized):
//!   a training step of the ELBO with K = 1 (one chunk, one core) and of the IWAE with K = 50
//!   (four chunks), and the importance-weighted estimate with K = 5000 of one test image.
//!
//! docs/PERFORMANCE.md reads these numbers; `benches/compare_pytorch.py` runs the
//! comparison with PyTorch.

#![allow(missing_docs)] // criterion_group! generates undocumented functions

use std::path::Path;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use ndarray::linalg::general_mat_mul;
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::SeedableRng;
use vae::data::{Binarize, Dataset};
use vae::model::standard_normal;
use vae::objective::Objective;
use vae::train::{evaluate_batch, iw_log_likelihood, train_step, train_step_objective};
use vae::{Vae, VaeConfig};
use vae_autodiff::gradcheck::random_tensor;
use vae_autodiff::{kernels, ConvGeom, Tape};
use vae_layers::optim::Adam;

/// The FMA throughput of one core: an R×C block of sums held in registers, updated from an
/// R-row and a C-column panel that stay in the L1 cache: the inner loop of every packed GEMM
/// with nothing else (no packing, no memory traffic), compiled for the widest SIMD level of
/// the CPU (`kernels::vectorized`, as the engine's own loops are). Its GFLOP/s is the ceiling
/// the roofline of docs/PERFORMANCE.md uses; the benchmark's name says the block and the level.
///
/// The block must hold enough independent sums to cover the FMA's latency on every port: two
/// ports × 4 cycles asks for at least 8 vector sums in flight. At AVX2, 6×16 is 12 registers of
/// 8 (of 16). At AVX-512, 6×16 is only 6 registers of 16: enough for an AMD core that issues one
/// 512-bit FMA per cycle, but on an Intel Xeon with two 512-bit FMA ports it measured 157
/// GFLOP/s against 231 for 12×32, whose 24 registers (of 32) saturate both ports
/// (docs/PERFORMANCE.md, 2026-12-04, fourth session).
fn peak(c: &mut Criterion) {
    const KC: usize = 256;
    #[inline(always)]
    fn kernel<const R: usize, const C: usize>(a: &[f32], b: &[f32]) -> [[f32; C]; R] {
        let mut acc = [[0.0f32; C]; R];
        for (ak, bk) in a.chunks_exact(R).zip(b.chunks_exact(C)) {
            let (ak, bk): (&[f32; R], &[f32; C]) = (ak.try_into().unwrap(), bk.try_into().unwrap());
            for (row, &ai) in acc.iter_mut().zip(ak) {
                for (s, &bj) in row.iter_mut().zip(bk) {
                    *s = ai.mul_add(bj, *s);
                }
            }
        }
        acc
    }
    fn block<const R: usize, const C: usize>(c: &mut Criterion) {
        let (a, b) = (vec![0.5f32; KC * R], vec![0.25f32; KC * C]);
        let mut g = c.benchmark_group("peak");
        g.throughput(Throughput::Elements((2 * R * C * KC) as u64));
        g.bench_function(format!("fma {R}x{C} register block, one core, {}", kernels::simd().name()), |bench| {
            bench.iter(|| {
                let (a, b) = (std::hint::black_box(&a), std::hint::black_box(&b));
                kernels::vectorized(
                    #[inline(always)]
                    || kernel::<R, C>(a, b),
                )
            })
        });
        g.finish();
    }
    match kernels::simd() {
        kernels::Simd::Avx512 => block::<12, 32>(c),
        _ => block::<6, 16>(c),
    }
}

/// Runs `f` on a worker of rayon's pool, as `vae-cli` runs its commands (`threads::on_pool`):
/// a parallel loop started there runs in place instead of waking a worker and sleeping, which
/// is most of a small step's time otherwise (a Burda step took 2.34 ms from outside the pool
/// where the CLI took about 1.2).
fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let mut out = None;
    rayon::scope(|_| out = Some(f()));
    out.expect("the scope ran")
}

fn gemm(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemm");
    // (name, M, K, N, a transposed, b transposed)
    let shapes = [
        ("fwd x·W1 128x784x400", 128, 784, 400, false, false),
        ("bwd dW1=xt·dy 784x128x400", 784, 128, 400, true, false),
        ("fwd h·Wdec 128x400x784", 128, 400, 784, false, false),
        ("bwd dh=dy·Wdect 128x784x400", 128, 784, 400, false, true),
    ];
    for (name, m, k, n, ta, tb) in shapes {
        let a = if ta { Array2::<f32>::ones((k, m)) } else { Array2::<f32>::ones((m, k)) };
        let b = if tb { Array2::<f32>::ones((n, k)) } else { Array2::<f32>::ones((k, n)) };
        let mut y = Array2::<f32>::zeros((m, n));
        g.throughput(Throughput::Elements((2 * m * n * k) as u64));
        g.bench_function(name, |bench| {
            bench.iter(|| {
                let av = if ta { a.t() } else { a.view() };
                let bv = if tb { b.t() } else { b.view() };
                general_mat_mul(1.0, &av, &bv, 0.0, &mut y);
            })
        });
    }
    g.finish();
}

fn conv(c: &mut Criterion) {
    let mut g = c.benchmark_group("conv");
    let (conv_model, resnet) = (ConvGeom::new(2, 1), ConvGeom::new(1, 1));
    // (name, input shape, weight shape, geometry, transposed): the conv model's layers (batch
    // 128, 4×4 kernels of stride 2) and the ResNet VAE's stride-1 3×3 layers (batch 16).
    let cases = [
        ("conv2d 1->32 28x28", [128, 1, 28, 28], [32, 1, 4, 4], conv_model, false),
        ("conv2d 32->64 14x14", [128, 32, 14, 14], [64, 32, 4, 4], conv_model, false),
        ("conv_transpose2d 64->32 7x7", [128, 64, 7, 7], [64, 32, 4, 4], conv_model, true),
        ("conv_transpose2d 32->1 14x14", [128, 32, 14, 14], [32, 1, 4, 4], conv_model, true),
        ("resnet conv2d 16->16 14x14", [16, 16, 14, 14], [16, 16, 3, 3], resnet, false),
        ("resnet conv2d 32->32 7x7", [16, 32, 7, 7], [32, 32, 3, 3], resnet, false),
        ("resnet conv2d 32->32 4x4", [16, 32, 4, 4], [32, 32, 3, 3], resnet, false),
    ];
    for (name, xs, ws, geom, transposed) in cases {
        let (x, w) = (random_tensor(&xs, 1), random_tensor(&ws, 2));
        g.bench_function(BenchmarkId::new("fwd+bwd", name), |bench| {
            bench.iter(|| {
                let mut tape = Tape::new();
                let (xv, wv) = (tape.input(x.clone()), tape.param(&w));
                let y = if transposed {
                    tape.conv_transpose2d(xv, wv, None, geom)
                } else {
                    tape.conv2d(xv, wv, None, geom)
                };
                let dy = random_tensor(tape.value(y).shape(), 3);
                tape.backward_from(y, dy)
            })
        });
    }
    g.finish();
}

fn mnist() -> Dataset {
    Dataset::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist")).expect("the shipped MNIST")
}

/// One training step of each model, cycling through the first 100 batches of the training set
/// as an epoch does (repeating a single batch lets the model overfit it, and its tiny gradients
/// run measurably slower: 49 ms against 31 ms per conv step).
fn steps(c: &mut Criterion) {
    let data = mnist();
    let mut rng = StdRng::seed_from_u64(1);
    let batches: Vec<_> = (0..100)
        .map(|b| data.train.batch(&(b * 128..(b + 1) * 128).collect::<Vec<_>>(), Binarize::None, &mut rng))
        .collect();
    let mut g = c.benchmark_group("step");
    g.sample_size(20);
    for (name, config) in
        [("conv batch 128", VaeConfig::conv_mnist()), ("mlp 784-400-20 batch 128", VaeConfig::mlp_mnist())]
    {
        let mut model = Vae::new(config, &mut rng).unwrap();
        let mut adam = Adam::new(1e-3);
        let mut next = batches.iter().cycle();
        g.bench_function(name, |bench| {
            on_pool(|| {
                bench.iter(|| {
                    let eps = standard_normal(&[128, 20], &mut rng);
                    train_step(&mut model, &mut adam, next.next().expect("endless"), eps, 1.0, None).unwrap()
                })
            })
        });
    }
    g.finish();
}

/// The first layer's product x·W and weight gradient xᵀ·dy (64 rows, W [784, 400], one
/// thread): `matmul` takes its sparse path when at most `SPARSE_MAX_DENSITY` of x is nonzero.
/// Each case runs twice, as is and with its zeros replaced by 1e-30 (numerically the same
/// product, but dense, so the GEMM path runs).
fn sparse(c: &mut Criterion) {
    let data = mnist();
    let mut rng = StdRng::seed_from_u64(3);
    let idx: Vec<usize> = (0..64).collect();
    let mnist_rows = data.train.batch(&idx, Binarize::None, &mut rng);
    let scattered = |density: f32, seed: u64| {
        // Zero where |coin| ≥ t, with P(|N(0,1)| < t) = density.
        let t = if density == 0.2 { 0.2533 } else { 0.3853 };
        let coin = random_tensor(&[64, 784], seed);
        let mut x = random_tensor(&[64, 784], seed + 1);
        x.zip_mut_with(&coin, |v, &c| {
            if c.abs() >= t {
                *v = 0.0
            }
        });
        x
    };
    let (w, dy) = (random_tensor(&[784, 400], 4), random_tensor(&[64, 400], 5));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a one-thread pool");
    let mut g = c.benchmark_group("sparse");
    for (name, x) in
        [("MNIST rows", mnist_rows), ("density 0.2", scattered(0.2, 6)), ("density 0.3", scattered(0.3, 8))]
    {
        let dense = x.mapv(|v| if v == 0.0 { 1e-30 } else { v });
        for (path, x) in [("as is", &x), ("zeros as 1e-30", &dense)] {
            g.bench_function(format!("x·W fwd+bwd, {name}, {path}"), |bench| {
                bench.iter(|| {
                    pool.install(|| {
                        let mut tape = Tape::new();
                        let (xv, wv) = (tape.constant(x.clone()), tape.param(&w));
                        let y = tape.matmul(xv, wv);
                        tape.backward_from(y, dy.clone())
                    })
                })
            });
        }
    }
    g.finish();
}

fn eval(c: &mut Criterion) {
    let data = mnist();
    let mut rng = StdRng::seed_from_u64(2);
    let model = Vae::new(VaeConfig::mlp_mnist(), &mut rng).unwrap();
    let mut g = c.benchmark_group("eval");
    g.sample_size(10);
    g.bench_function("mlp_test_set", |bench| {
        on_pool(|| {
            bench.iter(|| {
                let idx: Vec<usize> = (0..data.test.len()).collect();
                idx.chunks(500)
                    .map(|chunk| {
                        evaluate_batch(&model, data.test.batch(chunk, Binarize::None, &mut rng), &mut rng).recon
                    })
                    .sum::<f64>()
            })
        })
    });
    g.finish();
}

/// The density-estimation model's hot paths (docs/DENSITY.md): small-batch steps, a K-sample
/// step, and the K = 5000 evaluation of one image.
fn burda(c: &mut Criterion) {
    let data = mnist();
    let mut rng = StdRng::seed_from_u64(3);
    let batches: Vec<_> = (0..100)
        .map(|b| data.train.batch(&(b * 20..(b + 1) * 20).collect::<Vec<_>>(), Binarize::Dynamic, &mut rng))
        .collect();
    let mut g = c.benchmark_group("burda");
    g.sample_size(20);
    for (name, objective) in
        [("step elbo K=1 batch 20", Objective::Elbo { k: 1 }), ("step iwae K=50 batch 20", Objective::Iwae { k: 50 })]
    {
        let mut model = Vae::new(VaeConfig::burda_mnist(), &mut rng).unwrap();
        let mut adam = Adam::new(1e-4);
        let mut next = batches.iter().cycle();
        g.bench_function(name, |bench| {
            on_pool(|| {
                bench.iter(|| {
                    let eps = standard_normal(&[20 * objective.k(), 50], &mut rng);
                    let x = next.next().expect("endless");
                    train_step_objective(&mut model, &mut adam, x, eps, objective, 1.0, None).unwrap()
                })
            })
        });
    }
    let model = Vae::new(VaeConfig::burda_mnist(), &mut rng).unwrap();
    let x = data.test.batch(&[0], Binarize::Dynamic, &mut rng);
    g.sample_size(10);
    g.bench_function("iw estimate K=5000 one image", |bench| {
        on_pool(|| bench.iter(|| iw_log_likelihood(&model, &x, 5000, 200, &mut rng)))
    });
    g.finish();
}

// The training steps first: malloc's state after the other benchmarks slows them (docs/PERFORMANCE.md).
criterion_group!(benches, steps, burda, peak, gemm, sparse, conv, eval);

/// `criterion_main!` with one step before it: criterion draws its report charts with plotters,
/// and in this workspace plotters writes text only with fonts registered by the program (no
/// system fonts), so the charts' font is registered first (without it every chart panics).
fn main() {
    vae_cli::figure::register_font();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
