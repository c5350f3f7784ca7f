//! The whole VAE step against values computed by PyTorch in float64.
//!
//! Every `*.safetensors` file in `tests/fixtures/reference/` is one case: its metadata names
//! the model kind, likelihood, σ and sizes, and its tensors hold the parameters, inputs and
//! expected values (see that folder's README). Adding a file adds a case (listed in
//! `REFERENCE_FILES`, so that a deleted file fails the test). For each, this test
//! checks mu, logvar, z, the decoder output, recon, kl, loss, every parameter gradient, and the
//! losses and parameters of three Adam steps, and prints a table of max abs / max rel errors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::Dtype;
use safetensors::SafeTensors;
use vae::checkpoint::{restore, restore_params};
use vae::hvae::{Hvae, HvaeConfig, LayerSpec};
use vae::objective::{self, log_weights, ImportanceWeighted, Objective};
use vae::parts::resnet::ResBlock;
use vae::parts::tile;
use vae::parts::Gaussian;
use vae::step::update;
use vae::train::{train_step, train_step_objective, weighted_gradients};
use vae::vqvae::{train_step as vq_train_step, VqArch, VqConfig, VqVae};
use vae::{Activation, Arch, ConvSpec, Likelihood, Vae, VaeConfig};
use vae_autodiff::{Tape, Tensor};
use vae_layers::optim::{Adam, Optimizer};
use vae_layers::{ParamId, ParamStore};

/// Forward values and the loss: |ours − theirs| ≤ 1e-5·|theirs| + 1e-6.
const FORWARD: (f64, f64) = (1e-5, 1e-6);
/// Gradients and Adam parameters: |ours − theirs| ≤ 1e-4·|theirs| + 1e-6.
const GRADIENT: (f64, f64) = (1e-4, 1e-6);

/// The fixture's conv layers, by kernel size, as its README describes them
/// (Conv2d(1→3, kernel 4, stride 2, pad 1), Conv2d(3→4, kernel 3, stride 1, pad 1)).
fn conv_geometry(kernel: usize) -> (usize, usize) {
    match kernel {
        4 => (2, 1),
        3 => (1, 1),
        k => panic!("the reference README describes no conv layer with kernel {k}"),
    }
}

struct Fixture {
    tensors: HashMap<String, (Vec<usize>, Vec<f64>)>,
    meta: HashMap<String, String>,
}

impl Fixture {
    fn read(path: &Path) -> Self {
        let bytes = std::fs::read(path).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut tensors = HashMap::new();
        for name in st.names() {
            let v = st.tensor(name).unwrap();
            let data: Vec<f64> = match v.dtype() {
                Dtype::F32 => {
                    v.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect()
                }
                Dtype::F64 => v.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
                // Labels and code indices.
                Dtype::I64 => {
                    v.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect()
                }
                d => panic!("{name}: unexpected dtype {d:?}"),
            };
            tensors.insert(name.clone(), (v.shape().to_vec(), data));
        }
        Self { tensors, meta: meta.metadata().clone().unwrap_or_default() }
    }

    fn get(&self, name: &str) -> &(Vec<usize>, Vec<f64>) {
        self.tensors.get(name).unwrap_or_else(|| panic!("the fixture has no tensor {name}"))
    }

    /// An input or parameter (stored as F32, exactly representable).
    fn f32(&self, name: &str) -> Tensor {
        let (shape, data) = self.get(name);
        Tensor::from_shape_vec(shape.clone(), data.iter().map(|&v| v as f32).collect()).unwrap()
    }

    /// The model's sizes; a conditional file's last entry (its classes) left off.
    fn sizes(&self) -> Vec<usize> {
        let mut sizes: Vec<usize> = serde_json::from_str(&self.meta["sizes"]).unwrap();
        sizes.truncate(sizes.len() - (self.classes() > 0) as usize);
        sizes
    }

    /// A conditional file's number of classes (metadata `conditional`), else 0.
    fn classes(&self) -> usize {
        self.meta.get("conditional").map_or(0, |c| c.parse().unwrap())
    }

    /// The rows the model reads, [N, D + Y]: x flattened, and a conditional file's one-hot
    /// `input.label` after it.
    fn rows(&self) -> Tensor {
        let x = self.f32("input.x");
        let n = x.shape()[0];
        let x = x.to_shape((n, x.len() / n)).unwrap().to_owned().into_dyn();
        match self.classes() {
            0 => x,
            c => {
                let labels: Vec<usize> = self.get("input.label").1.iter().map(|&l| l as usize).collect();
                vae::cvae::with_labels(&x, &labels, c)
            }
        }
    }

    /// The model the metadata describes, with the fixture's parameters.
    fn model(&self) -> Vae {
        let x = self.f32("input.x");
        let sizes = self.sizes();
        let likelihood = match self.meta["likelihood"].as_str() {
            "bernoulli" => Likelihood::Bernoulli,
            "gaussian" => Likelihood::Gaussian { sigma: self.meta["sigma"].parse().unwrap() },
            "dlogistic" => {
                Likelihood::DLogistic { mixtures: self.meta.get("mixtures").map_or(1, |m| m.parse().unwrap()) }
            }
            l => panic!("unknown likelihood {l}"),
        };
        let (arch, input, latent) = match self.meta["model"].as_str() {
            // sizes = [N, D, hidden, latent]
            "mlp" => {
                (Arch::Mlp { hidden: sizes[2..sizes.len() - 1].to_vec() }, [1, 1, sizes[1]], sizes[sizes.len() - 1])
            }
            // sizes = [N, latent]; the layers' channels and kernels come from the weights
            "conv" => {
                let mut layers = Vec::new();
                for i in 1.. {
                    let Some((shape, _)) = self.tensors.get(&format!("param.enc_conv{i}.weight")) else { break };
                    let (stride, padding) = conv_geometry(shape[2]);
                    layers.push(ConvSpec { channels: shape[0], kernel: shape[2], stride, padding });
                }
                let s = x.shape();
                (Arch::Conv { layers }, [s[1], s[2], s[3]], sizes[1])
            }
            m => panic!("unknown model {m}"),
        };
        let activation = match self.meta.get("activation").map(String::as_str) {
            None | Some("relu") => Activation::Relu,
            Some("tanh") => Activation::Tanh,
            Some(a) => panic!("unknown activation {a}"),
        };
        let classes = self.classes();
        let (prior, flow) =
            (vae::PriorKind::from_metadata(&self.meta).unwrap(), vae::FlowSpec::from_metadata(&self.meta).unwrap());
        let config = VaeConfig { arch, input, latent, activation, likelihood, classes, prior, flow };
        let model = Vae::new(config, &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0)).unwrap();
        let params: Vec<(String, Tensor)> = self
            .tensors
            .keys()
            .filter_map(|k| k.strip_prefix("param.").map(|name| (name.to_string(), self.f32(k))))
            .collect();
        restore(model, params).unwrap().0
    }
}

/// Rows of the comparison table.
struct Table {
    rows: Vec<(String, f64, f64, bool)>,
}

impl Table {
    fn compare(&mut self, name: &str, ours: &Tensor, theirs: &(Vec<usize>, Vec<f64>), (rtol, atol): (f64, f64)) {
        let ours: Vec<f64> = ours.iter().map(|&v| v as f64).collect();
        assert_eq!(ours.len(), theirs.1.len(), "{name}: {} values, expected {}", ours.len(), theirs.1.len());
        let (mut max_abs, mut max_rel, mut ok) = (0.0f64, 0.0f64, true);
        for (&a, &e) in ours.iter().zip(&theirs.1) {
            let d = (a - e).abs();
            max_abs = max_abs.max(d);
            max_rel = max_rel.max(d / e.abs().max(1e-12));
            // A non-finite value on either side is a failure, never a match of two infinities.
            ok &= a.is_finite() && e.is_finite() && d <= rtol * e.abs() + atol;
        }
        self.rows.push((name.to_string(), max_abs, max_rel, ok));
    }

    fn scalar(&mut self, name: &str, ours: f64, theirs: &(Vec<usize>, Vec<f64>), tol: (f64, f64)) {
        self.compare(name, &Tensor::from_elem(vec![1], ours as f32), theirs, tol);
        // keep f64 precision for the scalar itself
        let e = theirs.1[0];
        let last = self.rows.last_mut().unwrap();
        last.1 = (ours - e).abs();
        last.2 = last.1 / e.abs().max(1e-12);
        last.3 = ours.is_finite() && e.is_finite() && last.1 <= tol.0 * e.abs() + tol.1;
    }
}

fn check_case(path: &Path) -> bool {
    let fx = Fixture::read(path);
    let mut table = Table { rows: Vec::new() };
    match fx.meta.get("objective").map(String::as_str) {
        None | Some("elbo") => check_elbo_case(&fx, &mut table),
        // A chain of stochastic layers lists them (metadata `layers`).
        Some("iwae") if fx.meta.contains_key("layers") => check_chain_case(&fx, &mut table),
        Some("iwae") => check_iwae_case(&fx, &mut table),
        Some("vq") => check_vq_case(&fx, &mut table),
        Some("block") => check_block_case(&fx, &mut table),
        Some(o) => panic!("{}: unknown objective {o}", path.display()),
    }
    print_table(path, &fx, &table);
    table.rows.iter().all(|r| r.3)
}

/// The plain and the conditional VAE: the one-sample ELBO with its KL in closed form.
fn check_elbo_case(fx: &Fixture, table: &mut Table) {
    let mut model = fx.model();
    let x_rows = fx.rows();

    // Forward and backward with eps0.
    {
        let mut tape = Tape::new();
        let p = model.params.on_tape(&mut tape);
        let xv = tape.constant(x_rows.clone());
        let eps = tape.constant(fx.f32("input.eps0"));
        let e = model.elbo(&mut tape, &p, xv, eps, 1.0);
        table.compare("mu", tape.value(e.mu), fx.get("expect.mu"), FORWARD);
        table.compare("logvar", tape.value(e.logvar), fx.get("expect.logvar"), FORWARD);
        table.compare("z", tape.value(e.z), fx.get("expect.z"), FORWARD);
        table.compare("out", tape.value(e.out), fx.get("expect.out"), FORWARD);
        table.scalar("recon", tape.scalar(e.recon_mean) as f64, fx.get("expect.recon"), FORWARD);
        table.scalar("kl", tape.scalar(e.kl_mean) as f64, fx.get("expect.kl"), FORWARD);
        table.scalar("loss", tape.scalar(e.loss) as f64, fx.get("expect.loss"), FORWARD);
        let grads = p.gradients(&tape, tape.backward(e.loss));
        for (i, ((name, _), g)) in model.params.iter().zip(&grads).enumerate() {
            let g = model.params.to_pytorch(ParamId(i), g);
            table.compare(&format!("grad.{name}"), &g, fx.get(&format!("expect.grad.{name}")), GRADIENT);
        }
    }

    // Three Adam steps (lr 1e-2), step i with eps i; then the loss with eps3.
    let mut adam = Adam::new(1e-2);
    for i in 0..3 {
        let terms = train_step(&mut model, &mut adam, &x_rows, fx.f32(&format!("input.eps{i}")), 1.0, None).unwrap();
        table.scalar(&format!("adam_loss{i}"), terms.loss, fx.get(&format!("expect.adam_loss{i}")), FORWARD);
    }
    {
        let mut tape = Tape::new();
        let p = model.params.on_tape(&mut tape);
        let xv = tape.constant(x_rows.clone());
        let eps = tape.constant(fx.f32("input.eps3"));
        let e = model.elbo(&mut tape, &p, xv, eps, 1.0);
        table.scalar("adam_loss3", tape.scalar(e.loss) as f64, fx.get("expect.adam_loss3"), FORWARD);
    }
    compare_adam_params(fx, &model, table);
}

/// Burda et al.'s IWAE with K samples: eps [K, N, J] read as [K·N, J] (row k·N + n).
fn check_iwae_case(fx: &Fixture, table: &mut Table) {
    let mut model = fx.model();
    let k: usize = fx.meta["k"].parse().unwrap();
    let objective = Objective::Iwae { k };
    let n = fx.sizes()[0];
    let x = fx.f32("input.x");
    let eps = |i: usize| {
        let e = fx.f32(&format!("input.eps{i}"));
        let j = e.shape()[2];
        e.into_shape_with_order((k * n, j)).unwrap().into_dyn()
    };

    // Forward and backward with eps0, through the pieces the objective is made of.
    {
        let mut tape = Tape::new();
        let p = model.params.on_tape(&mut tape);
        let xv = tape.constant(x.clone());
        let epsv = tape.constant(eps(0));
        let (mu, logvar) = model.encode(&mut tape, &p, xv);
        let (x_rep, mu_rep, logvar_rep) = (tile(&mut tape, xv, k), tile(&mut tape, mu, k), tile(&mut tape, logvar, k));
        let w = log_weights(&model, &mut tape, &p, x_rep, mu_rep, logvar_rep, epsv);
        let loss = objective::iw_bound(&mut tape, w.log_w, k);
        let elbo_loss = {
            let m = tape.mean(w.log_w);
            tape.scale(m, -1.0)
        };
        table.compare("mu", tape.value(mu), fx.get("expect.mu"), FORWARD);
        table.compare("logvar", tape.value(logvar), fx.get("expect.logvar"), FORWARD);
        table.compare("z", tape.value(w.z), fx.get("expect.z"), FORWARD);
        table.compare("out", tape.value(w.out), fx.get("expect.out"), FORWARD);
        table.compare("log_w", tape.value(w.log_w), fx.get("expect.log_w"), FORWARD);
        table.scalar("loss", tape.scalar(loss) as f64, fx.get("expect.loss"), FORWARD);
        table.scalar("elbo_loss", tape.scalar(elbo_loss) as f64, fx.get("expect.elbo_loss"), FORWARD);
        // The training step's own loss on the same noise is the same number.
        let l = objective::loss(&model, &mut tape, &p, xv, epsv, objective, 1.0);
        table.scalar("objective::loss", tape.scalar(l.loss) as f64, fx.get("expect.loss"), FORWARD);
        let grads = p.gradients(&tape, tape.backward(loss));
        for (i, ((name, _), g)) in model.params.iter().zip(&grads).enumerate() {
            let g = model.params.to_pytorch(ParamId(i), g);
            table.compare(&format!("grad.{name}"), &g, fx.get(&format!("expect.grad.{name}")), GRADIENT);
        }
    }

    // Three Adam steps (lr 1e-2) of the training step itself, step i with eps i.
    let mut adam = Adam::new(1e-2);
    for i in 0..3 {
        let terms = train_step_objective(&mut model, &mut adam, &x, eps(i), objective, 1.0, None).unwrap();
        table.scalar(&format!("adam_loss{i}"), terms.loss, fx.get(&format!("expect.adam_loss{i}")), FORWARD);
    }
    {
        let mut tape = Tape::new();
        let p = model.params.on_tape(&mut tape);
        let xv = tape.constant(x.clone());
        let epsv = tape.constant(eps(3));
        let l = objective::loss(&model, &mut tape, &p, xv, epsv, objective, 1.0);
        table.scalar("adam_loss3", tape.scalar(l.loss) as f64, fx.get("expect.adam_loss3"), FORWARD);
    }
    compare_adam_params(fx, &model, table);
}

/// A chain of stochastic layers (`hvae`) with the IWAE objective: metadata `layers` =
/// [[hidden widths], latent] per layer; eps [K, N, Σ J_l] read as [K·N, Σ J_l].
fn check_chain_case(fx: &Fixture, table: &mut Table) {
    let k: usize = fx.meta["k"].parse().unwrap();
    let objective = Objective::Iwae { k };
    let layers: Vec<(Vec<usize>, usize)> = serde_json::from_str(&fx.meta["layers"]).unwrap();
    let x = fx.f32("input.x");
    let (n, d) = (x.shape()[0], x.shape()[1]);
    let activation = match fx.meta["activation"].as_str() {
        "tanh" => Activation::Tanh,
        "relu" => Activation::Relu,
        a => panic!("unknown activation {a}"),
    };
    let config = HvaeConfig {
        input: [1, 1, d],
        layers: layers.iter().map(|(hidden, latent)| LayerSpec { hidden: hidden.clone(), latent: *latent }).collect(),
        activation,
        likelihood: Likelihood::Bernoulli,
        prior: vae::PriorKind::from_metadata(&fx.meta).unwrap(),
    };
    let mut model = Hvae::new(config, &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0)).unwrap();
    let params: Vec<(String, Tensor)> =
        fx.tensors.keys().filter_map(|k| k.strip_prefix("param.").map(|name| (name.to_string(), fx.f32(k)))).collect();
    restore_params(&mut model.params, params).unwrap();
    let eps = |i: usize| {
        let e = fx.f32(&format!("input.eps{i}"));
        let w = e.shape()[2];
        e.into_shape_with_order((k * n, w)).unwrap().into_dyn()
    };

    // Forward and backward with eps0, through the model's own pass.
    {
        let mut tape = Tape::new();
        let p = model.params.on_tape(&mut tape);
        let xv = tape.constant(x.clone());
        let epsv = tape.constant(eps(0));
        let once = model.encode_once(&mut tape, &p, xv);
        let x_rep = tile(&mut tape, xv, k);
        let q1 = Gaussian { mu: tile(&mut tape, once[0], k), logvar: tile(&mut tape, once[1], k) };
        let pass = model.pass(&mut tape, &p, x_rep, q1, epsv);
        let loss = objective::iw_bound(&mut tape, pass.weights.log_w, k);
        let elbo_loss = {
            let m = tape.mean(pass.weights.log_w);
            tape.scale(m, -1.0)
        };
        table.compare("mu", tape.value(once[0]), fx.get("expect.mu"), FORWARD);
        table.compare("logvar", tape.value(once[1]), fx.get("expect.logvar"), FORWARD);
        for l in 0..layers.len() {
            let name = |what: &str| format!("{what}{}", l + 1);
            table.compare(&name("h"), tape.value(pass.h[l]), fx.get(&format!("expect.{}", name("h"))), FORWARD);
            table.compare(
                &name("log_q"),
                tape.value(pass.log_q[l]),
                fx.get(&format!("expect.{}", name("log_q"))),
                FORWARD,
            );
            table.compare(
                &name("log_p"),
                tape.value(pass.log_p[l]),
                fx.get(&format!("expect.{}", name("log_p"))),
                FORWARD,
            );
        }
        table.compare("out", tape.value(pass.out), fx.get("expect.out"), FORWARD);
        table.compare("log_w", tape.value(pass.weights.log_w), fx.get("expect.log_w"), FORWARD);
        table.scalar("loss", tape.scalar(loss) as f64, fx.get("expect.loss"), FORWARD);
        table.scalar("elbo_loss", tape.scalar(elbo_loss) as f64, fx.get("expect.elbo_loss"), FORWARD);
        // The objectives written once over log weights give the same numbers.
        let l = objective::weighted_loss(&model, &mut tape, &p, xv, epsv, objective, 1.0);
        table.scalar("weighted_loss iwae", tape.scalar(l.loss) as f64, fx.get("expect.loss"), FORWARD);
        let e = objective::weighted_loss(&model, &mut tape, &p, xv, epsv, Objective::Elbo { k }, 1.0);
        table.scalar("weighted_loss elbo", tape.scalar(e.loss) as f64, fx.get("expect.elbo_loss"), FORWARD);
        let grads = p.gradients(&tape, tape.backward(loss));
        for (i, ((name, _), g)) in model.params.iter().zip(&grads).enumerate() {
            let g = model.params.to_pytorch(ParamId(i), g);
            table.compare(&format!("grad.{name}"), &g, fx.get(&format!("expect.grad.{name}")), GRADIENT);
        }
    }

    // Three Adam steps (lr 1e-2) of the family's own training step, step i with eps i.
    let mut adam = Adam::new(1e-2);
    for i in 0..3 {
        let (terms, grads) = weighted_gradients(&model, &x, &eps(i), objective, 1.0);
        update(&mut model.params, &mut adam, grads, terms.loss, None).unwrap();
        table.scalar(&format!("adam_loss{i}"), terms.loss, fx.get(&format!("expect.adam_loss{i}")), FORWARD);
    }
    {
        let mut tape = Tape::new();
        let p = model.params.on_tape(&mut tape);
        let xv = tape.constant(x.clone());
        let epsv = tape.constant(eps(3));
        let l = objective::weighted_loss(&model, &mut tape, &p, xv, epsv, objective, 1.0);
        table.scalar("adam_loss3", tape.scalar(l.loss) as f64, fx.get("expect.adam_loss3"), FORWARD);
    }
    for (name, value) in model.params.iter_pytorch() {
        table.compare(&format!("adam_param.{name}"), &value, fx.get(&format!("expect.adam_param.{name}")), GRADIENT);
    }
}

/// The VQ-VAE (MLP): sizes [N, D, hidden, L, Dc, Kc]; no noise, so the three Adam steps all
/// see the same batch.
fn check_vq_case(fx: &Fixture, table: &mut Table) {
    let sizes: Vec<usize> = serde_json::from_str(&fx.meta["sizes"]).unwrap();
    let &[_, d, hidden, codes, code_dim, codebook_size] = sizes.as_slice() else { panic!("sizes {sizes:?}") };
    let beta: f32 = fx.meta["beta"].parse().unwrap();
    let config = VqConfig {
        arch: VqArch::Mlp { hidden: vec![hidden], codes },
        input: [1, 1, d],
        code_dim,
        codebook_size,
        activation: Activation::Relu,
        likelihood: Likelihood::Bernoulli,
        ema_decay: None,
    };
    let mut model = VqVae::new(config, &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0)).unwrap();
    let params: Vec<(String, Tensor)> =
        fx.tensors.keys().filter_map(|k| k.strip_prefix("param.").map(|name| (name.to_string(), fx.f32(k)))).collect();
    restore_params(&mut model.params, params).unwrap();
    let x = fx.f32("input.x");
    {
        let mut tape = Tape::new();
        let p = model.params.on_tape(&mut tape);
        let xv = tape.constant(x.clone());
        let f = model.forward(&mut tape, &p, xv, beta);
        table.compare("z_e", tape.value(f.z_e), fx.get("expect.z_e"), FORWARD);
        let index = Tensor::from_shape_vec(vec![f.index.len()], f.index.iter().map(|&i| i as f32).collect()).unwrap();
        table.compare("index", &index, fx.get("expect.index"), (0.0, 0.0));
        table.compare("out", tape.value(f.out), fx.get("expect.out"), FORWARD);
        table.scalar("recon", tape.scalar(f.recon) as f64, fx.get("expect.recon"), FORWARD);
        table.scalar("codebook", tape.scalar(f.codebook) as f64, fx.get("expect.codebook"), FORWARD);
        table.scalar("commit", tape.scalar(f.commit) as f64, fx.get("expect.commit"), FORWARD);
        table.scalar("loss", tape.scalar(f.loss) as f64, fx.get("expect.loss"), FORWARD);
        let grads = p.gradients(&tape, tape.backward(f.loss));
        for (i, ((name, _), g)) in model.params.iter().zip(&grads).enumerate() {
            let g = model.params.to_pytorch(ParamId(i), g);
            table.compare(&format!("grad.{name}"), &g, fx.get(&format!("expect.grad.{name}")), GRADIENT);
        }
    }
    // Three Adam steps (lr 1e-2) of the training step itself; then the loss once more.
    let mut adam = Adam::new(1e-2);
    for i in 0..3 {
        let terms = vq_train_step(&mut model, &mut adam, &x, beta, None).unwrap();
        table.scalar(&format!("adam_loss{i}"), terms.loss, fx.get(&format!("expect.adam_loss{i}")), FORWARD);
    }
    {
        let mut tape = Tape::new();
        let p = model.params.on_tape(&mut tape);
        let xv = tape.constant(x.clone());
        let f = model.forward(&mut tape, &p, xv, beta);
        table.scalar("adam_loss3", tape.scalar(f.loss) as f64, fx.get("expect.adam_loss3"), FORWARD);
    }
    for (name, value) in model.params.iter_pytorch() {
        table.compare(&format!("adam_param.{name}"), &value, fx.get(&format!("expect.adam_param.{name}")), GRADIENT);
    }
}

/// A residual block of weight-normalized convolutions alone (the ResNet VAE's unit): y, the
/// loss Σ y ⊙ r for the file's projection r, every parameter's gradient, three Adam steps.
fn check_block_case(fx: &Fixture, table: &mut Table) {
    let sizes: Vec<usize> = serde_json::from_str(&fx.meta["sizes"]).unwrap();
    let &[_, c_in, c_out, _, _] = sizes.as_slice() else { panic!("sizes {sizes:?}") };
    let stride: usize = fx.meta["stride"].parse().unwrap();
    let mut store = ParamStore::new();
    let block = ResBlock::new(
        &mut store,
        "block",
        (c_in, c_out),
        stride,
        &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0),
    );
    let params: Vec<(String, Tensor)> =
        fx.tensors.keys().filter_map(|k| k.strip_prefix("param.").map(|name| (name.to_string(), fx.f32(k)))).collect();
    restore_params(&mut store, params).unwrap();
    let (x, r) = (fx.f32("input.x"), fx.f32("input.r"));
    let loss_of = |store: &ParamStore| {
        let mut tape = Tape::new();
        let p = store.on_tape(&mut tape);
        let (xv, rv) = (tape.constant(x.clone()), tape.constant(r.clone()));
        let y = block.forward(&mut tape, &p, xv);
        let yr = tape.mul(y, rv);
        let loss = tape.sum(yr);
        let grads = p.gradients(&tape, tape.backward(loss));
        (tape.value(y).clone(), tape.scalar(loss) as f64, grads)
    };
    let (y, loss, grads) = loss_of(&store);
    table.compare("y", &y, fx.get("expect.y"), FORWARD);
    table.scalar("loss", loss, fx.get("expect.loss"), FORWARD);
    for (i, ((name, _), g)) in store.iter().zip(&grads).enumerate() {
        let g = store.to_pytorch(ParamId(i), g);
        table.compare(&format!("grad.{name}"), &g, fx.get(&format!("expect.grad.{name}")), GRADIENT);
    }
    let mut adam = Adam::new(1e-2);
    for i in 0..4 {
        let (_, loss, grads) = loss_of(&store);
        table.scalar(&format!("adam_loss{i}"), loss, fx.get(&format!("expect.adam_loss{i}")), FORWARD);
        if i < 3 {
            adam.step(store.values_mut(), &grads);
        }
    }
    for (name, value) in store.iter_pytorch() {
        table.compare(&format!("adam_param.{name}"), &value, fx.get(&format!("expect.adam_param.{name}")), GRADIENT);
    }
}

fn compare_adam_params(fx: &Fixture, model: &Vae, table: &mut Table) {
    for (name, value) in model.params.iter_pytorch() {
        table.compare(&format!("adam_param.{name}"), &value, fx.get(&format!("expect.adam_param.{name}")), GRADIENT);
    }
}

fn print_table(path: &Path, fx: &Fixture, table: &Table) {
    println!(
        "\n{} ({}, {}, sizes {})",
        path.file_name().unwrap().to_string_lossy(),
        fx.meta["model"],
        fx.meta["likelihood"],
        fx.meta["sizes"]
    );
    println!("{:<34} {:>11} {:>11}  ok", "tensor", "max abs", "max rel");
    for (name, abs, rel, ok) in &table.rows {
        println!("{name:<34} {abs:>11.3e} {rel:>11.3e}  {}", if *ok { "yes" } else { "NO" });
    }
}

/// The committed cases, one per model the engine proves against PyTorch.
const REFERENCE_FILES: [&str; 14] = [
    "conv_bernoulli.safetensors",
    "conv_dlogistic.safetensors",
    "cvae_vamp.safetensors",
    "mlp2_iwae.safetensors",
    "mlp2_vamp.safetensors",
    "mlp_bernoulli.safetensors",
    "mlp_cvae.safetensors",
    "mlp_dlogistic_mix.safetensors",
    "mlp_gaussian.safetensors",
    "mlp_iaf.safetensors",
    "mlp_iwae.safetensors",
    "mlp_vamp.safetensors",
    "resblock.safetensors",
    "vq_mlp.safetensors",
];

#[test]
fn every_reference_file_matches_pytorch() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    // Every committed case must be there: deleting one fails the test rather than shrinking it.
    for name in REFERENCE_FILES {
        assert!(dir.join(name).is_file(), "the reference file {name} is missing from {}", dir.display());
    }
    assert_eq!(files.len(), REFERENCE_FILES.len(), "a file in {} that REFERENCE_FILES does not list", dir.display());
    let failed: Vec<_> = files.iter().filter(|f| !check_case(f)).collect();
    assert!(failed.is_empty(), "cases outside tolerance: {failed:?} (tables above)");
}
