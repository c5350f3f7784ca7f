//! The one error type of the I/O boundaries (configurations, data files, checkpoints). Every
//! message says what was expected and what was found.

use std::fmt;
use std::path::Path;

/// What went wrong at an I/O boundary.
#[derive(Debug)]
pub enum Error {
    /// A model configuration that is incomplete or inconsistent.
    Config(String),
    /// A data file that is missing, malformed or inconsistent.
    Data(String),
    /// A checkpoint that cannot be read or does not fit the model.
    Checkpoint(String),
    /// A training run that cannot go on: a diverged step, a run folder that is taken, a
    /// report its watcher could not write.
    Run(String),
    /// An operating-system error on a file.
    Io {
        /// What we were doing, with the file's path.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn config(msg: String) -> Self {
        Error::Config(msg)
    }

    /// A training run that cannot go on, and why.
    pub fn run(msg: impl Into<String>) -> Self {
        Error::Run(msg.into())
    }

    /// An I/O error while `doing` something with `path`.
    pub fn io(doing: &str, path: &Path, source: std::io::Error) -> Self {
        Error::Io { context: format!("{doing} {}", path.display()), source }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(m) => write!(f, "invalid model configuration: {m}"),
            Error::Data(m) => write!(f, "{m}"),
            Error::Checkpoint(m) | Error::Run(m) => write!(f, "{m}"),
            Error::Io { context, source } => write!(f, "cannot {context}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
