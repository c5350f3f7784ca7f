//! The parameter store: every trainable tensor of a model, in order, under a stable name.

use vae_autodiff::{Gradients, Tape, Tensor, Var};

/// The position of a parameter in its [`ParamStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParamId(pub usize);

/// Named trainable tensors, in the order they were created.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamStore {
    names: Vec<String>,
    values: Vec<Tensor>,
}

impl ParamStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a parameter.
    ///
    /// # Panics
    /// If the name is taken: names identify tensors in checkpoints.
    #[track_caller]
    pub fn add(&mut self, name: &str, value: Tensor) -> ParamId {
        assert!(self.find(name).is_none(), "ParamStore: parameter {name:?} already exists");
        self.names.push(name.to_string());
        self.values.push(value);
        ParamId(self.values.len() - 1)
    }

    /// The parameter's value.
    pub fn get(&self, id: ParamId) -> &Tensor {
        &self.values[id.0]
    }

    /// The parameter's name.
    pub fn name(&self, id: ParamId) -> &str {
        &self.names[id.0]
    }

    /// The id of the parameter called `name`, if any.
    pub fn find(&self, name: &str) -> Option<ParamId> {
        self.names.iter().position(|n| n == name).map(ParamId)
    }

    /// Number of parameter tensors.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the store holds no parameter.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Number of scalar parameters.
    pub fn num_scalars(&self) -> usize {
        self.values.iter().map(Tensor::len).sum()
    }

    /// (name, value) pairs in creation order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.names.iter().map(String::as_str).zip(&self.values)
    }

    /// All values, in creation order.
    pub fn values(&self) -> &[Tensor] {
        &self.values
    }

    /// All values, for an optimizer to update in place.
    pub fn values_mut(&mut self) -> &mut [Tensor] {
        &mut self.values
    }

    /// Records every parameter on `tape`, borrowed, and returns their handles.
    pub fn on_tape<'p>(&'p self, tape: &mut Tape<'p>) -> ParamVars {
        ParamVars(self.values.iter().map(|v| tape.param(v)).collect())
    }
}

/// The tape handles of a store's parameters, indexed by [`ParamId`].
#[derive(Clone, Debug)]
pub struct ParamVars(Vec<Var>);

impl ParamVars {
    /// The handle of a parameter.
    pub fn var(&self, id: ParamId) -> Var {
        self.0[id.0]
    }

    /// Moves the parameters' gradients out of `grads`, in store order; a parameter that did
    /// not reach the loss gets zeros.
    pub fn gradients(&self, tape: &Tape, mut grads: Gradients) -> Vec<Tensor> {
        self.0.iter().map(|&v| grads.take(v).unwrap_or_else(|| Tensor::zeros(tape.value(v).raw_dim()))).collect()
    }
}
