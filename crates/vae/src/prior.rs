//! A learned prior over a VQ-VAE's code grid: an autoregressive model in the style of MADE
//! (Germain, Gregor, Murray & Larochelle 2015), the VQ-VAE paper's second stage.
//!
//! The L codes of an image are put in a fixed order (row by row for a grid) and modelled as
//!
//!   p(k) = Π_j p(k_j | k_1 … k_{j−1}),
//!
//! each factor a softmax over the Kc codes. One masked MLP gives all L factors in one pass:
//! every hidden unit h gets a degree m(h) in 1..L−1 and may only see places ≤ m(h); output
//! place j may only see units with m(h) < j. So the logits of place j depend on places before
//! j alone, and −log p(k) = Σ_j `−log softmax(logits_j)[k_j]` is exact (no bound). Sampling runs
//! the network L times, drawing place j on pass j.
//!
//! Why this model: it is exact and cheap to evaluate (one pass), it is made of the engine's
//! dense layers (a mask is an elementwise product with a constant), and 49 places of 7×7 are
//! few enough for an MLP. A PixelCNN (masked convolutions, the paper's choice) would need a
//! masked convolution op and is deeper; it is the natural next step for larger grids.
//!
//! Shape legend
//! - N images, L places, Kc codes, Dc code width, H hidden units
//! - codes [N·L] (image after image) → input [N, L·Dc] (each place's codebook vector, frozen)
//! - W_in [L·Dc, H] ⊙ M_in, W_h [H, H] ⊙ M_h, W_out [H, L·Kc] ⊙ M_out; logits [N·L, Kc]

use std::collections::HashMap;

use rand::Rng;
use vae_autodiff::{Tape, Tensor, Var};
use vae_layers::optim::Optimizer;
use vae_layers::{Linear, ParamStore, ParamVars};

use crate::error::Error;
use crate::step::{batch_gradients, update, NonFinite, CHUNK_ROWS};

/// The shape of the prior.
#[derive(Clone, Debug, PartialEq)]
pub struct PriorConfig {
    /// L, places per image.
    pub places: usize,
    /// Kc, codes per place.
    pub codebook_size: usize,
    /// Dc, the width of the (frozen) code vectors the network reads.
    pub code_dim: usize,
    /// Hidden widths H.
    pub hidden: Vec<usize>,
}

impl PriorConfig {
    /// Checks sizes.
    pub fn validate(&self) -> Result<(), Error> {
        if self.places < 2
            || self.codebook_size < 2
            || self.code_dim == 0
            || self.hidden.is_empty()
            || self.hidden.contains(&0)
        {
            return Err(Error::config(format!(
                "a prior needs ≥ 2 places, ≥ 2 codes, code_dim ≥ 1 and hidden layers of ≥ 1 unit (found {self:?})"
            )));
        }
        Ok(())
    }

    /// The configuration as checkpoint metadata.
    pub fn to_metadata(&self) -> HashMap<String, String> {
        HashMap::from([
            ("family".to_string(), "vq-prior".to_string()),
            ("places".to_string(), self.places.to_string()),
            ("codebook_size".to_string(), self.codebook_size.to_string()),
            ("code_dim".to_string(), self.code_dim.to_string()),
            ("hidden".to_string(), format!("{:?}", self.hidden)),
        ])
    }

    /// Reads what [`PriorConfig::to_metadata`] wrote.
    pub fn from_metadata(m: &HashMap<String, String>) -> Result<Self, Error> {
        if m.get("family").map(String::as_str) != Some("vq-prior") {
            return Err(Error::config("this file holds no VQ-VAE prior (family is not \"vq-prior\")".into()));
        }
        let whole = |k: &str| -> Result<usize, Error> {
            m.get(k)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| Error::config(format!("prior entry {k:?} is missing or malformed")))
        };
        let hidden = m
            .get("hidden")
            .and_then(|v| serde_json::from_str(v).ok())
            .ok_or_else(|| Error::config("prior entry \"hidden\" is missing or malformed".into()))?;
        let c = Self {
            places: whole("places")?,
            codebook_size: whole("codebook_size")?,
            code_dim: whole("code_dim")?,
            hidden,
        };
        c.validate()?;
        Ok(c)
    }
}

/// The masked autoregressive prior: its layers, their masks, and the frozen codebook it reads.
#[derive(Clone, Debug)]
pub struct Prior {
    /// What the prior is.
    pub config: PriorConfig,
    /// Its trainable tensors.
    pub params: ParamStore,
    layers: Vec<Linear>,
    /// One mask per layer, in the layer's weight layout [in, out]: 1 where a connection is allowed.
    masks: Vec<Tensor>,
    /// The VQ-VAE's codebook [Kc, Dc], a constant here.
    codebook: Tensor,
}

/// Degrees of H hidden units: 1, 2, …, L−1, 1, 2, … (every degree used when H ≥ L − 1).
fn hidden_degrees(h: usize, places: usize) -> Vec<usize> {
    (0..h).map(|i| 1 + i % (places - 1)).collect()
}

/// The connections of a masked layer [in, out]: allowed where `allowed(d_in, d_out)`.
fn mask(d_in: &[usize], d_out: &[usize], allowed: impl Fn(usize, usize) -> bool) -> Tensor {
    Tensor::from_shape_fn(vec![d_in.len(), d_out.len()], |i| if allowed(d_in[i[0]], d_out[i[1]]) { 1.0 } else { 0.0 })
}

impl Prior {
    /// A new prior over codes of `codebook` [Kc, Dc], with PyTorch's initialization.
    pub fn new(config: PriorConfig, codebook: Tensor, rng: &mut impl Rng) -> Result<Self, Error> {
        config.validate()?;
        let (l, kc, dc) = (config.places, config.codebook_size, config.code_dim);
        if codebook.shape() != [kc, dc] {
            return Err(Error::config(format!(
                "the codebook is {:?}, the prior expects [{kc}, {dc}]",
                codebook.shape()
            )));
        }
        let mut params = ParamStore::new();
        // Degrees: input feature of place j (1-based) has degree j; output of place j too.
        let d_input: Vec<usize> = (0..l * dc).map(|i| 1 + i / dc).collect();
        let d_output: Vec<usize> = (0..l * kc).map(|o| 1 + o / kc).collect();
        let mut layers = Vec::new();
        let mut masks = Vec::new();
        let mut d_prev = d_input;
        for (i, &h) in config.hidden.iter().enumerate() {
            let d_h = hidden_degrees(h, l);
            layers.push(Linear::new(&mut params, &format!("prior_fc{}", i + 1), d_prev.len(), h, rng));
            masks.push(mask(&d_prev, &d_h, |a, b| a <= b)); // a unit sees places up to its degree
            d_prev = d_h;
        }
        let out = Linear::new(&mut params, "prior_out", d_prev.len(), l * kc, rng);
        // The output layer starts at zero: every place starts uniform over the Kc codes, so
        // the prior starts at the uniform prior's L·ln Kc nats and training can only improve
        // on it.
        for id in [out.weight, out.bias] {
            params.values_mut()[id.0].fill(0.0);
        }
        layers.push(out);
        masks.push(mask(&d_prev, &d_output, |a, b| a < b)); // place j sees degrees below j only
        Ok(Self { config, params, layers, masks, codebook })
    }

    /// A fingerprint of the codebook the prior reads: FNV-1a over its values' bits, in hex.
    /// Prior files record it, so that a prior is never used with another VQ-VAE's codes.
    pub fn codebook_fingerprint(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for v in self.codebook.iter() {
            for byte in v.to_bits().to_le_bytes() {
                h = (h ^ byte as u64).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        format!("{h:016x}")
    }

    /// The logits of every place given the codes [N·L]: [N·L, Kc]. Row j of an image depends
    /// only on that image's codes before place j.
    pub fn logits(&self, tape: &mut Tape, p: &ParamVars, codes: &[usize]) -> Var {
        let (l, kc, dc) = (self.config.places, self.config.codebook_size, self.config.code_dim);
        let n = codes.len() / l;
        let table = tape.constant(self.codebook.clone());
        let e = tape.gather_rows(table, codes); // [N·L, Dc]
        let mut h = tape.reshape(e, &[n, l * dc]);
        for (i, (layer, m)) in self.layers.iter().zip(&self.masks).enumerate() {
            let m = tape.constant(m.clone());
            let w = tape.mul(p.var(layer.weight), m); // W ⊙ M: a masked connection gets no gradient
            let hw = tape.matmul(h, w);
            h = tape.add(hw, p.var(layer.bias));
            if i + 1 < self.layers.len() {
                h = tape.relu(h);
            }
        }
        tape.reshape(h, &[n * l, kc])
    }

    /// −log p(k) per image, averaged over the images of codes [N·L]: Σ_j of the cross-entropy
    /// `−log softmax(logits_j)[k_j] = logsumexp(logits_j) − logits_j[k_j]`. `[]`.
    pub fn nll(&self, tape: &mut Tape, p: &ParamVars, codes: &[usize]) -> Var {
        let (l, kc) = (self.config.places, self.config.codebook_size);
        let n = codes.len() / l;
        let logits = self.logits(tape, p, codes);
        // logsumexp per row [N·L], then logits[r, k_r] for every row r, gathered from the
        // flattened logits.
        let lse = tape.log_sum_exp(logits, 1);
        let flat = tape.reshape(logits, &[n * l * kc, 1]);
        let picked: Vec<usize> = codes.iter().enumerate().map(|(r, &k)| r * kc + k).collect();
        let chosen = tape.gather_rows(flat, &picked);
        let chosen = tape.reshape(chosen, &[n * l]);
        let ce = tape.sub(lse, chosen);
        let total = tape.sum(ce);
        tape.scale(total, 1.0 / n.max(1) as f32)
    }

    /// −log p(k) for codes [N·L], in nats per image, without gradients.
    pub fn nll_value(&self, codes: &[usize]) -> f64 {
        let l = self.config.places;
        let (mut total, mut count) = (0.0, 0);
        for chunk in codes.chunks(CHUNK_ROWS * l) {
            let mut tape = Tape::new();
            let p = self.params.on_tape(&mut tape);
            let v = self.nll(&mut tape, &p, chunk);
            let n = chunk.len() / l;
            total += tape.scalar(v) as f64 * n as f64;
            count += n;
        }
        total / count.max(1) as f64
    }

    /// Draws n code grids, place after place: pass j computes the logits with the places
    /// drawn so far (later places hold 0 and cannot matter) and samples place j. [n·L].
    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> Vec<usize> {
        let (l, kc) = (self.config.places, self.config.codebook_size);
        let mut codes = vec![0usize; n * l];
        for j in 0..l {
            let mut tape = Tape::new();
            let p = self.params.on_tape(&mut tape);
            let logits = self.logits(&mut tape, &p, &codes);
            let logits = tape.value(logits);
            for i in 0..n {
                let row = logits.index_axis(ndarray::Axis(0), i * l + j);
                let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                let weights: Vec<f64> = row.iter().map(|&v| ((v - max) as f64).exp()).collect();
                let mut u = rng.random::<f64>() * weights.iter().sum::<f64>();
                let mut k = kc - 1;
                for (c, w) in weights.iter().enumerate() {
                    if u < *w {
                        k = c;
                        break;
                    }
                    u -= w;
                }
                codes[i * l + j] = k;
            }
        }
        codes
    }
}

/// One training step of the prior on code grids [N·L].
pub fn train_step(prior: &mut Prior, opt: &mut dyn Optimizer, codes: &[usize]) -> Result<f64, NonFinite> {
    let l = prior.config.places;
    let n = codes.len() / l;
    let prior_ref: &Prior = prior;
    let chunk_loss = |tape: &mut Tape, p: &ParamVars, start: usize, end: usize| {
        let v = prior_ref.nll(tape, p, &codes[start * l..end * l]);
        (v, vec![tape.scalar(v) as f64])
    };
    let (sums, grads) = batch_gradients(&prior.params, n, CHUNK_ROWS, chunk_loss);
    update(&mut prior.params, opt, grads, sums[0], None)?;
    Ok(sums[0])
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;
    use crate::model::standard_normal;

    fn small() -> Prior {
        let mut rng = StdRng::seed_from_u64(1);
        let config = PriorConfig { places: 5, codebook_size: 4, code_dim: 3, hidden: vec![16, 12] };
        Prior::new(config, standard_normal(&[4, 3], &mut rng), &mut rng).unwrap()
    }

    #[test]
    fn the_fingerprint_tells_codebooks_apart() {
        let a = small();
        let mut b = small();
        assert_eq!(a.codebook_fingerprint(), b.codebook_fingerprint());
        b.codebook[[2, 1]] += 1e-6; // one value, in its last bits
        assert_ne!(a.codebook_fingerprint(), b.codebook_fingerprint());
        assert_eq!(a.codebook_fingerprint().len(), 16);
    }

    /// `small()` with every parameter random (a new prior's output layer is zero).
    fn small_random() -> Prior {
        let mut prior = small();
        let mut rng = StdRng::seed_from_u64(7);
        for v in prior.params.values_mut() {
            *v = standard_normal(v.shape(), &mut rng);
        }
        prior
    }

    /// Changing the code at place j leaves the logits of places up to j as they were.
    #[test]
    fn the_logits_of_a_place_depend_only_on_earlier_places() {
        let prior = small_random();
        let logits = |codes: &[usize]| {
            let mut tape = Tape::new();
            let p = prior.params.on_tape(&mut tape);
            let v = prior.logits(&mut tape, &p, codes);
            tape.value(v).clone()
        };
        let base = [1, 2, 3, 0, 1];
        let a = logits(&base);
        for j in 0..5 {
            let mut changed = base;
            changed[j] = (base[j] + 1) % 4;
            let b = logits(&changed);
            for place in 0..=j {
                assert_eq!(
                    a.index_axis(ndarray::Axis(0), place),
                    b.index_axis(ndarray::Axis(0), place),
                    "place {place} moved when place {j} changed"
                );
            }
        }
    }

    /// ... and the masks connect every earlier place to it: the product of the masks, read per
    /// place, has a path from input place i to output place j exactly when i < j.
    #[test]
    fn the_masks_connect_every_earlier_place() {
        let prior = small();
        let (l, kc, dc) = (5, 4, 3);
        let paths = prior.masks.iter().skip(1).fold(prior.masks[0].clone(), |acc, m| {
            let a = acc.view().into_dimensionality::<ndarray::Ix2>().unwrap();
            let b = m.view().into_dimensionality::<ndarray::Ix2>().unwrap();
            a.dot(&b).into_dyn()
        });
        for i in 0..l {
            for j in 0..l {
                let connected = (0..dc).any(|f| (0..kc).any(|k| paths[[i * dc + f, j * kc + k]] > 0.0));
                assert_eq!(connected, i < j, "input place {i} → output place {j}");
            }
        }
    }

    /// The probabilities of all Kc^L grids add up to 1: the factors form a distribution.
    #[test]
    fn the_probabilities_of_every_grid_sum_to_one() {
        let prior = small_random();
        let mut all = Vec::new();
        for g in 0..4usize.pow(5) {
            all.extend((0..5).map(|j| (g / 4usize.pow(j)) % 4));
        }
        let mut tape = Tape::new();
        let p = prior.params.on_tape(&mut tape);
        let n = all.len() / 5;
        let mut total = 0.0f64;
        for i in 0..n {
            let nll = prior.nll(&mut tape, &p, &all[i * 5..(i + 1) * 5]);
            total += (-(tape.scalar(nll) as f64)).exp();
        }
        assert!((total - 1.0).abs() < 1e-4, "Σ p(k) = {total}");
    }

    /// Training on one fixed grid makes it likely, and sampling then draws it.
    #[test]
    fn training_on_a_grid_makes_it_the_sample() {
        let mut prior = small();
        let grid = [3, 1, 0, 2, 2];
        let codes: Vec<usize> = grid.iter().cycle().take(5 * 8).copied().collect();
        let mut adam = vae_layers::optim::Adam::new(1e-2);
        let first = train_step(&mut prior, &mut adam, &codes).unwrap();
        for _ in 0..600 {
            train_step(&mut prior, &mut adam, &codes).unwrap();
        }
        let last = prior.nll_value(&codes);
        assert!((first - 5.0 * 4f64.ln()).abs() < 1e-5, "a new prior is uniform: {first}");
        assert!(last < 0.05, "nll {first} → {last}");
        let drawn = prior.sample(3, &mut StdRng::seed_from_u64(3));
        assert_eq!(drawn, grid.repeat(3));
    }
}
