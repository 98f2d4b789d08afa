//! lmforge-model
pub mod bench;
pub mod config;
pub mod device;
pub mod error;
pub mod infer;
pub mod io;
pub mod model;
pub mod ops;
pub mod optim;
pub mod params;
pub mod rng;

pub use config::{Activation, ModelConfig, PosEncoding};
pub use error::{Error, Result};
pub use infer::InferenceSession;
pub use model::Gpt;
pub use optim::{AdamW, AdamWConfig};
