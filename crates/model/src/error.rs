//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in lmforge-model that a caller could cause or observe.
/// (Each variant's fields are the values its message names: the file, tensor, id, position.)
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration field has an unusable value.
    #[error("invalid model config: {field}: {msg}")]
    Config { field: &'static str, msg: String },
    /// Unknown preset name.
    #[error("unknown model preset {0:?} (known: {1})")]
    UnknownPreset(String, String),
    /// Batch/sequence shapes that do not fit the model or the inputs.
    #[error("shape error: {0}")]
    Shape(String),
    /// A token id outside the vocabulary.
    #[error("token id {id} at position {pos} is outside the vocabulary (vocab_size {vocab})")]
    TokenOutOfRange { id: u32, pos: usize, vocab: usize },
    /// A target outside the vocabulary (and not the ignore index -1).
    #[error("target {target} at position {pos} is outside the vocabulary (vocab_size {vocab}); use -1 to ignore")]
    TargetOutOfRange {
        target: i32,
        pos: usize,
        vocab: usize,
    },
    /// The loss came out NaN or infinite.
    #[error("loss is not finite ({0})")]
    NonFiniteLoss(f32),
    /// `backward()` needs a preceding `forward()` with targets.
    #[error("backward() called without a preceding forward() with targets")]
    NoForward,
    /// Missing tensor in a checkpoint.
    #[error("{file}: missing tensor {name:?}")]
    MissingTensor { file: PathBuf, name: String },
    /// Tensor with the wrong shape.
    #[error("{file}: tensor {name:?} has shape {got:?}, expected {want:?}")]
    TensorShape {
        file: PathBuf,
        name: String,
        got: Vec<usize>,
        want: Vec<usize>,
    },
    /// Tensor with the wrong dtype.
    #[error("{file}: tensor {name:?} has dtype {got}, expected {want}")]
    TensorDtype {
        file: PathBuf,
        name: String,
        got: String,
        want: &'static str,
    },
    /// Malformed safetensors file.
    #[error("{file}: {msg}")]
    Safetensors { file: PathBuf, msg: String },
    /// Malformed JSON.
    #[error("{file}: {source}")]
    Json {
        file: PathBuf,
        source: serde_json::Error,
    },
    /// I/O failure with the path involved.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Optimizer state that does not belong to this model.
    #[error("optimizer state: {0}")]
    Optimizer(String),
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
