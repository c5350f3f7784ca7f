//! The kernel layer: the engine's hot loops, compiled for the CPU they run on.
//!
//! A release binary is built for the baseline x86-64 instruction set (SSE2), so that it runs on
//! any x86-64 CPU. The loops where a training step spends its time are compiled a second and a
//! third time, for AVX2 with fused multiply-add and for AVX-512, and the widest level the CPU
//! has is chosen once per process ([`simd`]). Without this, every `mul_add` of the fast eˣ and
//! of the sparse product would be a call into the C library, one value at a time (an MLP epoch
//! took 7× as long, `docs/PERFORMANCE.md`).
//!
//! | module | loops |
//! |---|---|
//! | [`loops`] | elementwise maps and in-place updates (activations, their backwards, the optimizers) |
//! | [`gemm`] | register-blocked AVX-512 and AVX2 tiles: products with a thin left operand (a batch of 20), and products whose right operand is filled strip by strip (the convolutions' implicit GEMM) |
//!
//! **How a loop gets compiled three times.** [`vectorized`] runs a closure inside a function
//! marked `#[target_feature(enable = "avx2,fma")]` (or the AVX-512 set). The compiler may inline
//! code into such a function and then vectorizes it with the wider instructions. It inlines
//! the closure (a single call), and the loop it calls is an `#[inline(always)]` function, so
//! the whole loop lands in the feature-enabled copy. Values are the same on every level: the
//! loops have no sums to reorder, and `mul_add` is one rounding whether an instruction or the C
//! library computes it.
//!
//! **Choosing by hand.** `VAE_SIMD=portable`, `avx2` or `avx512` caps the level for a whole
//! process (a level the CPU lacks falls back to the best it has, with a warning), so that a run
//! can be repeated on a narrower path; tests call [`vectorized_at`] with each level in
//! [`Simd::available`].
//!
//! **Unsafe.** The engine is otherwise free of `unsafe`. Calling a function compiled for
//! features the CPU may lack is `unsafe`, and SIMD loads take raw pointers; this module allows
//! it for these two things alone, with the invariant beside each block.

#![allow(unsafe_code)]

pub mod gemm;
pub mod loops;

use std::sync::OnceLock;

/// A level of SIMD support, narrowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Simd {
    /// The baseline of the build target (SSE2 on x86-64): runs everywhere.
    Portable,
    /// AVX2 with fused multiply-add (Intel Haswell, AMD Zen and later): 8 floats per instruction.
    Avx2,
    /// AVX-512 F, VL, BW and DQ (Intel Skylake-X, AMD Zen 4 and later): 16 floats.
    Avx512,
}

impl Simd {
    /// Every level, narrowest first.
    pub const ALL: [Simd; 3] = [Simd::Portable, Simd::Avx2, Simd::Avx512];

    /// The name `VAE_SIMD` accepts and reports print.
    pub fn name(self) -> &'static str {
        match self {
            Simd::Portable => "portable",
            Simd::Avx2 => "avx2",
            Simd::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run code of this level (the standard library caches the answer).
    pub fn supported(self) -> bool {
        match self {
            Simd::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => {
                Simd::Avx2.supported()
                    && std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512dq")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The levels this CPU supports, narrowest first (always starts with `Portable`).
    pub fn available() -> Vec<Simd> {
        Simd::ALL.into_iter().filter(|s| s.supported()).collect()
    }

    /// The widest level this CPU supports.
    pub fn best() -> Simd {
        *Simd::available().last().expect("portable is always available")
    }
}

/// Test support: the levels a test can run here, after checking the environment variable
/// `VAE_REQUIRE_SIMD` (levels as `VAE_SIMD` names them, comma-separated): a required level this
/// CPU is not detected to support is a failure, not a skipped part. CI sets it from
/// /proc/cpuinfo, independently of this detection; elsewhere an unsupported level is only said.
#[cfg(test)]
pub(crate) fn testable_levels(levels: &[Simd]) -> Vec<Simd> {
    let required = std::env::var("VAE_REQUIRE_SIMD").unwrap_or_default();
    for name in required.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let level = Simd::ALL.into_iter().find(|l| l.name() == name);
        let level = level.unwrap_or_else(|| panic!("VAE_REQUIRE_SIMD names {name:?}, not a level"));
        assert!(level.supported(), "VAE_REQUIRE_SIMD asks for {name}, which this CPU is not detected to support");
    }
    for level in levels.iter().filter(|l| !l.supported()) {
        println!("{}: not supported by this CPU, not tested here", level.name());
    }
    levels.iter().copied().filter(|l| l.supported()).collect()
}

/// The level this process runs its kernels at: the widest the CPU supports, or lower if the
/// environment variable `VAE_SIMD` asks for it. Decided on first use and fixed afterwards.
pub fn simd() -> Simd {
    static LEVEL: OnceLock<Simd> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let best = Simd::best();
        let Ok(asked) = std::env::var("VAE_SIMD") else { return best };
        match Simd::ALL.into_iter().find(|s| s.name() == asked.trim()) {
            Some(level) if level <= best => level,
            Some(level) => {
                eprintln!("VAE_SIMD={}: this CPU lacks it; using {}", level.name(), best.name());
                best
            }
            None => {
                eprintln!("VAE_SIMD={asked:?} is not one of portable, avx2, avx512; using {}", best.name());
                best
            }
        }
    })
}

/// Runs `body` compiled for the process's level ([`simd`]); see the module's documentation for
/// how. `body` should call an `#[inline(always)]` loop.
#[inline(always)]
pub fn vectorized<R>(body: impl FnOnce() -> R) -> R {
    vectorized_at(simd(), body)
}

/// Runs `body` compiled for `level`.
///
/// Panics if the CPU does not support `level` (running it would be an illegal instruction).
#[inline(always)]
pub fn vectorized_at<R>(level: Simd, body: impl FnOnce() -> R) -> R {
    assert!(level.supported(), "kernels: this CPU does not support {}", level.name());
    match level {
        Simd::Portable => body(),
        // SAFETY: the CPU supports the level's features (asserted above).
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 => unsafe { x86::with_avx2(body) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { x86::with_avx512(body) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("no wider level is supported off x86-64"),
    }
}

/// The feature-enabled frames [`vectorized_at`] runs a body in.
#[cfg(target_arch = "x86_64")]
mod x86 {
    /// Runs `body` with AVX2 and FMA enabled.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn with_avx2<R>(body: impl FnOnce() -> R) -> R {
        body()
    }

    /// Runs `body` with AVX-512 (F, VL, BW, DQ), AVX2 and FMA enabled.
    ///
    /// # Safety
    /// The CPU must support all of these.
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
    pub(super) unsafe fn with_avx512<R>(body: impl FnOnce() -> R) -> R {
        body()
    }
}
