//! # lmforge-model
//!
//! nanoGPT's GPT with a hand-written CPU engine: forward, backward, AdamW, safetensors
//! checkpoints in nanoGPT's `state_dict` layout, KV-cached inference, and a training
//! benchmark. Proven against PyTorch by `tests/torch_fixture.rs` (logits, loss, every
//! gradient and three AdamW steps within 1e-4, for learned/no-bias/RoPE/sinusoidal models).
//!
//! ## Training
//! ```
//! use lmforge_model::{AdamW, AdamWConfig, Gpt, ModelConfig};
//! let cfg = ModelConfig::preset("tiny")?;            // or serde from config.json
//! let mut model = Gpt::new(cfg, 1337)?;               // nanoGPT init, seeded
//! let mut opt = AdamW::new(&model, AdamWConfig::default());
//! let (b, t) = (2, 8);
//! let idx = vec![1u32; b * t];
//! let targets = vec![2i32; b * t];                    // -1 = ignored
//! model.zero_grad();
//! let loss = model.forward(&idx, Some(&targets), b, t)?.expect("targets given");
//! model.backward()?;                                  // backward_scaled(1/k) to accumulate
//! let norm = model.clip_grad_norm(1.0);               // pre-clip norm, like torch
//! opt.step(&mut model, 6e-4)?;                        // lr per step (schedules)
//! # let _ = (loss, norm);
//! # Ok::<(), lmforge_model::Error>(())
//! ```
//! A NaN/Inf loss comes back as [`Error::NonFiniteLoss`]. Evaluation: `set_training(false)`
//! (dropout off) and [`Gpt::loss`] (no gradients staged). The head runs as a fused, chunked
//! classifier ([`classifier`]): the `[B·T, V]` logits exist only after a `forward` without
//! targets ([`Gpt::logits`], for small inputs); generation keeps the last row's.
//!
//! ## Checkpoints ([`io`])
//! `save_model_dir` / `load_model_dir` (`config.json` + `model.safetensors`),
//! `save_optimizer` / `load_optimizer` (`optimizer.safetensors`: `exp_avg.<name>`,
//! `exp_avg_sq.<name>`, `step`). Files are written to `*.tmp` and renamed.
//!
//! ## Generation ([`infer`])
//! `let mut s = model.session(); let logits = s.next_logits(&history)?;` — pass the whole
//! token history each time; the session feeds only what is new, slides the window (RoPE,
//! sinusoidal) or re-prefills the last `block_size` tokens (learned positions).
//!
//! ## Engine
//! - [`backend`]: the device seam. A [`Backend`] owns a buffer type and every op the model
//!   runs (forward, backward, AdamW, grad norm, shard sums, KV-cached decode attention);
//!   [`Gpt`], [`AdamW`] and [`InferenceSession`] are generic over it and default to [`Cpu`].
//!   A new backend passes [`backend::conformance`] against plain reference code.
//! - [`ops`]: the CPU backend's kernels, one file per op, forward and backward side by side, shapes in the docs, each with
//!   a finite-difference test. Attention is flash-style (per-row logsumexp only).
//! - Memory: parameters, gradients and AdamW moments are flat buffers sharing one layout
//!   ([`params`]); activations are planned once per (batch, block) shape and reused — no
//!   allocation inside a training step after the first.
//! - Threads: the global rayon pool (the CLI sizes it). A small model splits the batch into
//!   one shard per thread, each running whole forward/backward passes with single-threaded
//!   products, then sums the shards' gradients in order ([`Gpt::set_batch_shards`]);
//!   a large one runs each op over the whole batch: matmuls split over the pool, attention
//!   splits (batch, head) pairs, elementwise ops split rows. All parameter-gradient reductions
//!   run in a fixed order, so the same seed and thread count give the same bits.
//! - One pass: `pass.rs` is the forward and backward of one batch shard, op after op; KV-cached
//!   decoding is a mode of the same per-layer code (`acts.rs` holds the buffer plan).
//! - Matmul: [`ops::matmul`]; candidates and measurements are in `docs/performance.md`.

#![warn(missing_docs)]

mod acts;
pub mod backend;
pub mod bench;
pub mod classifier;
pub mod config;
pub mod dtype;
pub mod error;
pub mod infer;
pub mod io;
pub mod model;
pub mod ops;
pub mod optim;
pub mod params;
mod pass;
pub mod rng;
pub mod seq2seq;

pub use backend::{cpu::Cpu, Backend};
pub use config::{Activation, ModelConfig, Norm, PosEncoding};
pub use dtype::{DtypeArg, Precision};
pub use error::{Error, Result};
pub use infer::InferenceSession;
pub use model::Gpt;
pub use optim::{AdamW, AdamWConfig};
