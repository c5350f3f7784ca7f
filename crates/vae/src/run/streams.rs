//! The random streams of a run. Every random choice comes from its own stream, seeded by
//! (seed, epoch, step, purpose): the shuffle of an epoch, the noise and binarization of a step,
//! the noise of a test pass. Nothing depends on how many steps ran before in this process, so a
//! run resumed from its checkpoint produces exactly the numbers of an uninterrupted one, and a
//! test pass cut into chunks gives the same numbers on any number of threads.

use rand::rngs::StdRng;
use rand::SeedableRng;

/// What each random stream is for.
#[derive(Clone, Copy)]
pub enum Purpose {
    /// Parameter initialization.
    Init = 1,
    /// The order of an epoch.
    Shuffle = 2,
    /// Noise and binarization of one training step.
    Step = 3,
    /// Noise of the test pass.
    Test = 4,
    /// Static binarization of the data.
    Binarize = 5,
    /// The fixed latents of the sample pictures.
    Pictures = 6,
    /// A family's housekeeping after an epoch (the VQ-VAE's restarted codes).
    Housekeeping = 7,
}

/// SplitMix64's finalizer: spreads nearby integers over all 64 bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The random stream for (seed, epoch, step, purpose).
pub fn stream(seed: u64, epoch: u64, step: u64, purpose: Purpose) -> StdRng {
    StdRng::seed_from_u64(mix(mix(mix(mix(seed) ^ purpose as u64) ^ epoch) ^ step))
}
