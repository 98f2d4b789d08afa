//! lmforge-model
pub mod config;
pub mod device;
pub mod model;
pub mod optim;
pub mod params;
pub mod error;
pub mod io;
pub mod ops;
pub mod rng;

pub use config::{Activation, ModelConfig, PosEncoding};
pub use error::{Error, Result};
pub use model::Gpt;
pub use optim::{AdamW, AdamWConfig};
