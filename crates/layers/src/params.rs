//! The parameter store: every trainable tensor of a model, in order, under a stable name.
//!
//! Names and checkpoint files follow PyTorch's state dicts. A tensor may be kept in memory as
//! the transpose of its PyTorch layout ([`Layout::Transposed`]): the dense layer keeps W as
//! [in, out] so that y = x·W reads rows of W (see `Linear`). [`ParamStore::to_pytorch`] and
//! [`ParamStore::from_pytorch`] convert a parameter's value, gradient or optimizer state
//! between the two.

use std::borrow::Cow;

use vae_autodiff::{Gradients, Tape, Tensor, Var};

/// The position of a parameter in its [`ParamStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParamId(pub usize);

/// How a parameter is held in memory, relative to PyTorch's layout of the same tensor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// The same layout as PyTorch.
    #[default]
    AsPytorch,
    /// The transpose of PyTorch's 2-D layout ([out, in] in PyTorch, [in, out] here).
    Transposed,
}

/// Named trainable tensors, in the order they were created.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamStore {
    names: Vec<String>,
    values: Vec<Tensor>,
    layouts: Vec<Layout>,
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
        self.add_with_layout(name, value, Layout::AsPytorch)
    }

    /// Adds a 2-D parameter given in PyTorch's layout, to be kept transposed.
    ///
    /// # Panics
    /// If the name is taken, or `value` is not 2-D.
    #[track_caller]
    pub fn add_transposed(&mut self, name: &str, value: Tensor) -> ParamId {
        assert_eq!(
            value.ndim(),
            2,
            "ParamStore: only a matrix can be kept transposed, {name:?} is {:?}",
            value.shape()
        );
        let t = value.t().as_standard_layout().into_owned();
        self.add_with_layout(name, t, Layout::Transposed)
    }

    #[track_caller]
    fn add_with_layout(&mut self, name: &str, value: Tensor, layout: Layout) -> ParamId {
        assert!(self.find(name).is_none(), "ParamStore: parameter {name:?} already exists");
        self.names.push(name.to_string());
        self.values.push(value);
        self.layouts.push(layout);
        ParamId(self.values.len() - 1)
    }

    /// How the parameter is held in memory.
    pub fn layout(&self, id: ParamId) -> Layout {
        self.layouts[id.0]
    }

    /// `t`, a tensor in the memory layout of parameter `id` (its value, its gradient, an
    /// optimizer's state for it), in PyTorch's layout: borrowed unless it must be transposed.
    pub fn to_pytorch<'t>(&self, id: ParamId, t: &'t Tensor) -> Cow<'t, Tensor> {
        match self.layouts[id.0] {
            Layout::AsPytorch => Cow::Borrowed(t),
            Layout::Transposed => Cow::Owned(t.t().as_standard_layout().into_owned()),
        }
    }

    /// The inverse of [`ParamStore::to_pytorch`]: a tensor in PyTorch's layout of parameter
    /// `id`, in its memory layout.
    pub fn from_pytorch(&self, id: ParamId, t: Tensor) -> Tensor {
        match self.layouts[id.0] {
            Layout::AsPytorch => t,
            Layout::Transposed => t.t().as_standard_layout().into_owned(),
        }
    }

    /// The shape of parameter `id` in PyTorch's layout.
    pub fn pytorch_shape(&self, id: ParamId) -> Vec<usize> {
        let mut shape = self.values[id.0].shape().to_vec();
        if self.layouts[id.0] == Layout::Transposed {
            shape.reverse();
        }
        shape
    }

    /// (name, value in PyTorch's layout) pairs in creation order: a PyTorch state dict.
    pub fn iter_pytorch(&self) -> impl Iterator<Item = (&str, Cow<'_, Tensor>)> {
        self.iter().enumerate().map(|(i, (name, t))| (name, self.to_pytorch(ParamId(i), t)))
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

    /// (name, value) pairs in creation order, each value in its memory layout.
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
        ParamVars { params: self.values.iter().map(|v| tape.param(v)).collect(), derived: Vec::new() }
    }
}

/// The tape handles of a store's parameters, indexed by [`ParamId`], and of any values
/// derived from the parameters alone that a model computed once for several tapes (see
/// [`ParamVars::with_derived`]).
#[derive(Clone, Debug)]
pub struct ParamVars {
    params: Vec<Var>,
    derived: Vec<Var>,
}

impl ParamVars {
    /// The handle of a parameter.
    pub fn var(&self, id: ParamId) -> Var {
        self.params[id.0]
    }

    /// The same handles, with `derived`: values that depend on the parameters alone (a
    /// VampPrior's components, its pseudo-inputs encoded), computed once on another tape and
    /// recorded on this one as leaves, so that a step's chunks do not each compute them again.
    /// What each derived value means is the model's to say.
    pub fn with_derived(mut self, derived: Vec<Var>) -> Self {
        self.derived = derived;
        self
    }

    /// The derived values recorded on this tape (none unless [`ParamVars::with_derived`] gave
    /// some).
    pub fn derived(&self) -> &[Var] {
        &self.derived
    }

    /// Moves the parameters' gradients out of `grads`, in store order; a parameter that did
    /// not reach the loss gets zeros.
    pub fn gradients(&self, tape: &Tape, mut grads: Gradients) -> Vec<Tensor> {
        self.params.iter().map(|&v| grads.take(v).unwrap_or_else(|| Tensor::zeros(tape.value(v).raw_dim()))).collect()
    }
}
