//! The plain VAE (and the conditional VAE, a [`Vae`] with classes) as a [`Family`]: its terms,
//! its step and test pass through [`crate::train`], its latent space and its one Gaussian layer.

use std::collections::HashMap;

use rand::rngs::StdRng;
use vae_autodiff::Tensor;
use vae_layers::optim::Optimizer;
use vae_layers::ParamStore;

use crate::family::{Family, LatentLayers, LatentSpace, StepSettings};
use crate::model::{standard_normal, Vae};
use crate::objective::ImportanceWeighted;
use crate::step::NonFinite;
use crate::train::{evaluate_batch_objective, train_step_with};

impl Family for Vae {
    fn name(&self) -> &'static str {
        self.config.family()
    }
    fn params(&self) -> &ParamStore {
        &self.params
    }
    fn params_mut(&mut self) -> &mut ParamStore {
        &mut self.params
    }
    fn metadata(&self) -> HashMap<String, String> {
        self.config.to_metadata()
    }
    fn input(&self) -> [usize; 3] {
        self.config.input
    }
    fn classes(&self) -> usize {
        self.config.classes
    }
    fn train_step(
        &mut self,
        opt: &mut dyn Optimizer,
        x: &Tensor,
        s: &StepSettings,
        rng: &mut StdRng,
    ) -> Result<Vec<f64>, NonFinite> {
        // K·n draws, row k·n + i for sample k of example i (n draws for the plain VAE).
        let eps = standard_normal(&[s.objective.k() * x.shape()[0], self.config.latent], rng);
        let t = train_step_with(self, opt, x, eps, s)?;
        Ok(vec![t.recon, t.kl, t.gain])
    }
    fn evaluate(&self, x: Tensor, s: &StepSettings, rng: &mut StdRng) -> (Vec<f64>, Vec<u64>) {
        let t = evaluate_batch_objective(self, x, s.objective, rng);
        (vec![t.recon, t.kl, t.gain], vec![])
    }
    fn sample(&self, n: usize, labels: &[usize], rng: &mut StdRng) -> Tensor {
        Vae::sample(self, n, labels, rng)
    }
    fn reconstruct(&self, x: Tensor) -> Tensor {
        Vae::reconstruct(self, x)
    }
    fn as_vae(&self) -> Option<&Vae> {
        Some(self)
    }
    fn importance_weighted(&self) -> Option<&dyn ImportanceWeighted> {
        Some(self)
    }
    fn latent_layers(&self) -> Option<&dyn LatentLayers> {
        Some(self)
    }
    fn latent_space(&self) -> Option<&dyn LatentSpace> {
        Some(self)
    }
    fn describe(&self) -> String {
        self.config.describe()
    }
    fn set_output_bias(&mut self, bias: &[f32]) -> bool {
        Vae::set_output_bias(self, bias);
        true
    }
}

impl LatentSpace for Vae {
    fn latent_dim(&self) -> usize {
        self.config.latent
    }
    fn prior_if_not_standard(&self) -> Option<String> {
        self.config.prior.if_not_standard()
    }
    /// mu and logvar; with a flow, the posterior's centre (mu through the flow) alone, since
    /// q(z|x) is then no longer a diagonal Gaussian.
    fn encode_points(&self, x: Tensor) -> (Tensor, Option<Tensor>) {
        if self.config.flow.is_some() {
            return (self.centre_values(x), None);
        }
        let (mu, logvar) = self.encode_values(x);
        (mu, Some(logvar))
    }
    /// The decoder mean at [z, y] for a conditional model, at z otherwise.
    fn decode_points(&self, z: Tensor, labels: &[usize]) -> Tensor {
        match self.config.classes {
            0 => self.decode_mean(z),
            c => self.decode_mean(crate::cvae::with_labels(&z, labels, c)),
        }
    }
}

impl LatentLayers for Vae {
    fn latent_layers(&self) -> Vec<(String, usize)> {
        vec![("z".into(), self.config.latent)]
    }
    /// mu(x), the encoder's mean: exact, no draws. With a flow, E_q[z_T|x] has no closed
    /// form: the mean of [`crate::hvae::MEAN_DRAWS`] draws of z_T per row, every row with the
    /// same draws of eps (common random numbers), so that a unit whose posterior does not
    /// depend on x gets the same mean for every x (variance 0, inactive) instead of a
    /// Monte Carlo noise of σ²/draws, which would sit at the threshold of 0.01 itself.
    fn posterior_means(&self, x: Tensor, rng: &mut StdRng) -> Vec<Tensor> {
        let (mu, logvar) = self.encode_values(x);
        if self.config.flow.is_none() {
            return vec![mu];
        }
        let draws = crate::hvae::MEAN_DRAWS;
        let mut sum = Tensor::zeros(mu.raw_dim());
        for _ in 0..draws {
            let mut tape = vae_autodiff::Tape::new();
            let p = self.params.on_tape(&mut tape);
            let row = standard_normal(&[1, mu.shape()[1]], rng);
            let eps = row.broadcast(mu.raw_dim()).expect("one row for every row").to_owned();
            let (m, lv, e) = (tape.constant(mu.clone()), tape.constant(logvar.clone()), tape.constant(eps));
            let (z, _) = self.posterior_sample(&mut tape, &p, m, lv, e);
            sum += tape.value(z);
        }
        vec![sum / draws as f32]
    }
}
