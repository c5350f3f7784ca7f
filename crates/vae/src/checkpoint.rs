//! Checkpoints as safetensors files: the parameters under their names in PyTorch's layouts
//! (F32, little-endian), the model configuration in the file's metadata, and optionally extra
//! tensors (optimizer state under `optim.*`) and extra metadata (training counters).
//!
//! Files are written atomically: to `<file>.tmp`, flushed to disk, then renamed over the
//! target, so a crash leaves either the old file or the new one, never half of one.
//! docs/CHECKPOINTS.md shows how to load one in PyTorch or NumPy.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use vae_autodiff::Tensor;
use vae_layers::{ParamId, ParamStore};

use crate::config::VaeConfig;
use crate::error::Error;
use crate::family::Family;
use crate::hvae::{Hvae, HvaeConfig};
use crate::model::Vae;
use crate::vqvae::{VqConfig, VqVae};

/// The metadata key naming this file format.
pub const FORMAT_KEY: &str = "format";
/// The value of [`FORMAT_KEY`] in our files.
pub const FORMAT: &str = "vae-engine/1";
/// Names of extra tensors start with this prefix.
pub const EXTRA_PREFIX: &str = "optim.";

/// A checkpoint read back: the model, any extra tensors, and all metadata.
pub struct Loaded {
    /// The model with its parameters restored.
    pub model: Vae,
    /// Tensors whose names start with [`EXTRA_PREFIX`] (the prefix removed).
    pub extra: Vec<(String, Tensor)>,
    /// Every metadata entry of the file.
    pub metadata: HashMap<String, String>,
}

pub use crate::atomic::write_atomic;

/// The model a checkpoint's metadata describes (by its `family` entry; files without one are
/// plain VAEs), with freshly initialized parameters for the caller to fill: the one place
/// where a family's name is read, and where a new family adds its line.
pub fn family_from_metadata(m: &HashMap<String, String>) -> Result<Box<dyn Family>, Error> {
    let seed = &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
    match m.get("family").map(String::as_str) {
        None | Some("vae") | Some("cvae") => Ok(Box::new(Vae::new(VaeConfig::from_metadata(m)?, seed)?)),
        Some("vqvae") => Ok(Box::new(VqVae::new(VqConfig::from_metadata(m)?, seed)?)),
        Some("hvae") => Ok(Box::new(Hvae::new(HvaeConfig::from_metadata(m)?, seed)?)),
        Some(other) => {
            Err(Error::config(format!("unknown model family {other:?} (expected vae, cvae, vqvae or hvae)")))
        }
    }
}

/// Encodes named f32 tensors and metadata as a safetensors file image.
pub fn encode(tensors: &[(String, &Tensor)], metadata: HashMap<String, String>) -> Result<Vec<u8>, Error> {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, t)| t.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, t), b)| {
            let view = TensorView::new(Dtype::F32, t.shape().to_vec(), b)
                .map_err(|e| Error::Checkpoint(format!("cannot encode tensor {name}: {e}")))?;
            Ok((name.clone(), view))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    safetensors::serialize(views, &Some(metadata))
        .map_err(|e| Error::Checkpoint(format!("cannot encode checkpoint: {e}")))
}

/// What a safetensors file holds: its tensors by name, in file order, and its metadata.
pub type Contents = (Vec<(String, Tensor)>, HashMap<String, String>);

/// Reads every tensor (F32 only) and the metadata of a safetensors file.
pub fn read_tensors(path: &Path) -> Result<Contents, Error> {
    read_with(path, decode)
}

/// Reads the metadata of a safetensors file alone (its tensors are not decoded).
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>, Error> {
    read_with(path, |bytes| {
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| {
            Error::Checkpoint(format!("not a readable safetensors checkpoint ({e}); expected a model.safetensors or checkpoint.safetensors written by vae-cli"))
        })?;
        Ok(meta.metadata().clone().unwrap_or_default())
    })
}

/// Reads the file at `path` and parses it with `parse`; a checkpoint error names the file.
fn read_with<T>(path: &Path, parse: impl FnOnce(&[u8]) -> Result<T, Error>) -> Result<T, Error> {
    let bytes = fs::read(path).map_err(|e| Error::io("read", path, e))?;
    parse(&bytes).map_err(|e| match e {
        Error::Checkpoint(m) => Error::Checkpoint(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// Parses a safetensors file image (F32 tensors only).
pub fn decode(bytes: &[u8]) -> Result<Contents, Error> {
    let not_ours = |e: safetensors::SafeTensorError| {
        Error::Checkpoint(format!("not a readable safetensors checkpoint ({e}); expected a model.safetensors or checkpoint.safetensors written by vae-cli"))
    };
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(not_ours)?;
    let st = SafeTensors::deserialize(bytes).map_err(not_ours)?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let mut tensors = Vec::new();
    let mut names: Vec<String> = st.names().into_iter().cloned().collect();
    names.sort(); // deterministic order; callers look tensors up by name
    for name in names {
        let view = st.tensor(&name).map_err(not_ours)?;
        if view.dtype() != Dtype::F32 {
            return Err(Error::Checkpoint(format!("tensor {name} has dtype {:?}; expected F32", view.dtype())));
        }
        let data: Vec<f32> =
            view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let t = Tensor::from_shape_vec(view.shape().to_vec(), data)
            .map_err(|e| Error::Checkpoint(format!("tensor {name}: {e}")))?;
        tensors.push((name, t));
    }
    Ok((tensors, metadata))
}

/// Saves a model (and optional extra tensors and metadata) to `path`, atomically.
pub fn save(
    path: &Path,
    model: &dyn Family,
    extra: &[(String, Tensor)],
    extra_metadata: &HashMap<String, String>,
) -> Result<(), Error> {
    // Parameters in PyTorch's layout (a state dict); optimizer state as the optimizer holds it.
    let state_dict: Vec<(String, Cow<Tensor>)> =
        model.params().iter_pytorch().map(|(n, t)| (n.to_string(), t)).collect();
    let mut tensors: Vec<(String, &Tensor)> = state_dict.iter().map(|(n, t)| (n.clone(), t.as_ref())).collect();
    tensors.extend(extra.iter().map(|(n, t)| (format!("{EXTRA_PREFIX}{n}"), t)));
    let mut metadata = extra_metadata.clone();
    metadata.extend(model.metadata());
    metadata.insert(FORMAT_KEY.into(), FORMAT.into());
    write_atomic(path, &encode(&tensors, metadata)?)
}

/// An optimizer's state tensors, named `<slot>.<k>` for parameter k (as `Optimizer::state`
/// names them), in PyTorch's layout of their parameters, so that `optim.m.k` in a file has the
/// shape of the parameter it belongs to. Names that do not end in a parameter index are left as
/// they are.
pub fn optimizer_state_to_file(params: &ParamStore, state: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    convert_state(params, state, |id, t| params.to_pytorch(id, &t).into_owned())
}

/// The inverse of [`optimizer_state_to_file`], for `Optimizer::load_state`.
pub fn optimizer_state_from_file(params: &ParamStore, state: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    convert_state(params, state, |id, t| params.from_pytorch(id, t))
}

fn convert_state(
    params: &ParamStore,
    state: Vec<(String, Tensor)>,
    f: impl Fn(ParamId, Tensor) -> Tensor,
) -> Vec<(String, Tensor)> {
    let param_of = |name: &str| {
        let k: usize = name.rsplit('.').next()?.parse().ok()?;
        (k < params.len()).then_some(ParamId(k))
    };
    state
        .into_iter()
        .map(|(name, t)| match param_of(&name) {
            Some(id) if t.ndim() == 2 => (name, f(id, t)),
            _ => (name, t),
        })
        .collect()
}

/// Loads a checkpoint written by [`save`], checking that every parameter the configuration
/// calls for is present with the right shape and that nothing else is there.
pub fn load(path: &Path) -> Result<Loaded, Error> {
    read_with(path, load_bytes)
}

/// [`load`] from the bytes of a file.
pub fn load_bytes(bytes: &[u8]) -> Result<Loaded, Error> {
    let (tensors, metadata) = decode_ours(bytes)?;
    let fail = Error::Checkpoint;
    match metadata.get("family").map(String::as_str) {
        None | Some("vae") | Some("cvae") => {}
        Some(other) => {
            return Err(fail(format!(
                "it holds a model of family {other}; this command decodes points of one Gaussian latent space and needs a vae or cvae"
            )))
        }
    }
    let config = VaeConfig::from_metadata(&metadata).map_err(|e| fail(e.to_string()))?;
    let model = Vae::new(config, &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0))
        .map_err(|e| fail(e.to_string()))?;
    let (model, extra) = restore(model, tensors).map_err(fail)?;
    Ok(Loaded { model, extra, metadata })
}

/// A checkpoint of any model family read back.
pub struct LoadedFamily {
    /// The model with its parameters restored.
    pub model: Box<dyn Family>,
    /// Tensors whose names start with [`EXTRA_PREFIX`] (the prefix removed).
    pub extra: Vec<(String, Tensor)>,
    /// Every metadata entry of the file.
    pub metadata: HashMap<String, String>,
}

/// Loads a checkpoint of any family (see [`family_from_metadata`]), with the checks
/// of [`load`].
pub fn load_family(path: &Path) -> Result<LoadedFamily, Error> {
    read_with(path, |bytes| {
        let (tensors, metadata) = decode_ours(bytes)?;
        let fail = |e: String| Error::Checkpoint(e);
        let mut model = family_from_metadata(&metadata).map_err(|e| fail(e.to_string()))?;
        let extra = restore_params(model.params_mut(), tensors).map_err(fail)?;
        Ok(LoadedFamily { model, extra, metadata })
    })
}

/// The tensors and metadata of a file, after checking that this engine wrote it.
fn decode_ours(bytes: &[u8]) -> Result<Contents, Error> {
    let (tensors, metadata) = decode(bytes)?;
    if metadata.get(FORMAT_KEY).map(String::as_str) != Some(FORMAT) {
        return Err(Error::Checkpoint(format!(
            "no model configuration in its metadata ({FORMAT_KEY:?} is {:?}, expected {FORMAT:?}); it was not written by vae-cli",
            metadata.get(FORMAT_KEY)
        )));
    }
    Ok((tensors, metadata))
}

/// Puts `tensors` into `model`'s parameters by name; returns the extra (`optim.*`) tensors.
/// The error lists every missing, unexpected or misshapen tensor.
pub fn restore(mut model: Vae, tensors: Vec<(String, Tensor)>) -> Result<(Vae, Vec<(String, Tensor)>), String> {
    let extra = restore_params(&mut model.params, tensors)?;
    Ok((model, extra))
}

/// [`restore`] for the parameters of any model family.
pub fn restore_params(
    params: &mut ParamStore,
    tensors: Vec<(String, Tensor)>,
) -> Result<Vec<(String, Tensor)>, String> {
    let mut problems = Vec::new();
    let mut extra = Vec::new();
    let mut seen = vec![false; params.len()];
    for (name, t) in tensors {
        if let Some(rest) = name.strip_prefix(EXTRA_PREFIX) {
            extra.push((rest.to_string(), t));
            continue;
        }
        match params.find(&name) {
            None => problems.push(format!("unexpected tensor {name} {:?}", t.shape())),
            Some(id) if params.pytorch_shape(id) != t.shape() => problems.push(format!(
                "tensor {name} has shape {:?}, the model expects {:?}",
                t.shape(),
                params.pytorch_shape(id)
            )),
            Some(id) => {
                seen[id.0] = true;
                params.values_mut()[id.0] = params.from_pytorch(id, t);
            }
        }
    }
    for (i, (name, _)) in params.iter().enumerate() {
        if !seen[i] {
            problems.push(format!("missing tensor {name} {:?}", params.pytorch_shape(ParamId(i))));
        }
    }
    if problems.is_empty() {
        Ok(extra)
    } else {
        Err(format!("does not match its model configuration: {}", problems.join("; ")))
    }
}
