//! What changes over a run and how it starts: the learning rate of each epoch (constant, or
//! Burda et al.'s stages), the KL weight of each step (a linear warm-up), and the decoder's
//! output bias set from the training images.

use crate::data::Split;
use crate::error::Error;
use crate::family::Family;
use crate::run::settings::LrScheduleKind;
use crate::Likelihood;

/// The learning rate of `epoch` (0-based): `lr` throughout, or Burda et al.'s schedule, whose
/// 3,280 epochs (stage i = 0..7 lasting 3^i epochs at lr·10^(−i/7)) are mapped in proportion
/// onto the run's `epochs`: an epoch takes the rate of the stage in which its midpoint falls.
/// With 3,280 epochs this is the paper's schedule exactly.
pub fn lr_at(schedule: LrScheduleKind, lr: f32, epoch: u64, epochs: u64) -> f32 {
    match schedule {
        LrScheduleKind::Constant => lr,
        LrScheduleKind::Burda => {
            let position = (epoch as f64 + 0.5) * 3280.0 / epochs.max(1) as f64;
            // Stages 0..=i end after (3^(i+1) − 1)/2 epochs of the full schedule.
            let stage = (0..8).find(|&i| position < ((3u64.pow(i + 1) - 1) / 2) as f64).unwrap_or(7);
            (lr as f64 * 10f64.powf(-(stage as f64) / 7.0)) as f32
        }
    }
}

/// The KL weight at step `step` of `steps` in `epoch`: a linear ramp from 0 to β over
/// `warmup` epochs, then β.
pub fn kl_weight(beta: f32, warmup: f32, epoch: u64, step: usize, steps: usize) -> f32 {
    if warmup <= 0.0 {
        return beta;
    }
    let progress = (epoch as f32 + step as f32 / steps as f32) / warmup;
    beta * progress.min(1.0)
}

/// Sets the decoder's output bias from the training images, as Burda et al. initialize it:
/// Bernoulli, the logit of each pixel's mean (clipped to [0.001, 0.999]); Gaussian, the mean;
/// the discretized logistic, the mean and the log of the logistic scale with each pixel's
/// standard deviation (std·√3/π, at least a bin's 1/255), so that training starts from the
/// data's spread instead of a scale of 1, which it would take thousands of steps to leave.
pub fn init_output_bias(model: &mut dyn Family, likelihood: Likelihood, train: &Split) -> Result<(), Error> {
    let mean = train.pixel_mean();
    let bias: Vec<f32> = match likelihood {
        Likelihood::Bernoulli => mean
            .iter()
            .map(|&m| {
                let m = m.clamp(1e-3, 1.0 - 1e-3);
                (m / (1.0 - m)).ln()
            })
            .collect(),
        Likelihood::Gaussian { .. } => mean,
        Likelihood::DLogistic { mixtures } => {
            let spread = train.pixel_std();
            let log_scale: Vec<f32> =
                spread.iter().map(|&sd| (sd.max(1.0 / 255.0) * 3f32.sqrt() / std::f32::consts::PI).ln()).collect();
            // A mixture's weights start equal (logits 0) and every component at the data.
            let logits = vec![0.0; if mixtures > 1 { mixtures * mean.len() } else { 0 }];
            let (means, log_scales) = (mean.repeat(mixtures), log_scale.repeat(mixtures));
            logits.into_iter().chain(means).chain(log_scales).collect()
        }
    };
    if model.set_output_bias(&bias) {
        Ok(())
    } else {
        Err(Error::config(format!("--output-bias data-mean is not available for the {} family", model.name())))
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;
    use crate::{Arch, Vae, VaeConfig};

    /// Over 3,280 epochs, stage i lasts 3^i epochs at 1e-3·10^(−i/7): the paper's schedule.
    #[test]
    fn the_burda_schedule_has_the_papers_stages() {
        let lrs: Vec<f32> = (0..3280).map(|e| lr_at(LrScheduleKind::Burda, 1e-3, e, 3280)).collect();
        let stage_lr = |i: u32| (1e-3f32 as f64 * 10f64.powf(-(i as f64) / 7.0)) as f32;
        let mut start = 0;
        for i in 0..8u32 {
            let len = 3usize.pow(i);
            let want = stage_lr(i);
            assert!(lrs[start..start + len].iter().all(|&lr| lr == want), "stage {i}");
            start += len;
        }
        assert_eq!(start, 3280);
        // Compressed onto 27 epochs: never rising, from stage 4 (the midpoint of the first
        // epoch lies 60.7 epochs into the full schedule, past stages 0–3's 40) down to stage 7.
        let short: Vec<f32> = (0..27).map(|e| lr_at(LrScheduleKind::Burda, 1e-3, e, 27)).collect();
        assert!(short.windows(2).all(|w| w[1] <= w[0]));
        assert_eq!((short[0], short[26]), (stage_lr(4), stage_lr(7)));
        assert_eq!(lr_at(LrScheduleKind::Constant, 3e-4, 5, 27), 3e-4);
    }

    /// The warm-up rises linearly within and across epochs, then holds at β.
    #[test]
    fn the_kl_weight_ramps_to_beta() {
        assert_eq!(kl_weight(0.5, 0.0, 0, 0, 10), 0.5);
        assert_eq!(kl_weight(1.0, 2.0, 0, 5, 10), 0.25);
        assert_eq!(kl_weight(1.0, 2.0, 1, 0, 10), 0.5);
        assert_eq!(kl_weight(2.0, 2.0, 3, 7, 10), 2.0);
    }

    /// The output bias starts at the logit of each pixel's mean (clipped away from 0 and 1).
    #[test]
    fn the_output_bias_starts_at_the_logit_of_the_pixel_means() {
        // Two 1×2 images: pixel 0 is 255 then 0 (mean ½), pixel 1 always 0 (clipped to 0.001).
        let train = Split { images: vec![255, 0, 0, 0], labels: vec![0, 1], channels: 1, rows: 1, cols: 2 };
        let config =
            VaeConfig { arch: Arch::Mlp { hidden: vec![3] }, input: [1, 1, 2], latent: 1, ..VaeConfig::mlp_mnist() };
        let mut model = Vae::new(config, &mut StdRng::seed_from_u64(0)).unwrap();
        init_output_bias(&mut model, Likelihood::Bernoulli, &train).unwrap();
        let bias = model.params.get(model.params.find("dec_out.bias").unwrap());
        assert_eq!(bias[[0]], 0.0);
        assert!((bias[[1]] - (0.001f32 / 0.999).ln()).abs() < 1e-6);
    }
}
