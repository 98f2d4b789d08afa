//! The encoder–decoder Transformer (Vaswani et al.) on the same engine as the GPT: separate
//! source and target embeddings (or one shared), learned or sinusoidal positions and/or RoPE,
//! dropout on the embeddings, attention probabilities and residual branches, N encoder
//! blocks (self-attention with a key padding mask + MLP), N decoder blocks (causal
//! self-attention + cross-attention over the encoder output + MLP), pre- or post-LN, and a
//! tied or untied output layer.
//!
//! Every op goes through the [`Backend`](crate::Backend) seam except RoPE, which calls
//! [`crate::ops::rope::apply_cols`] directly (it rotates the separate q `[N,C]` and kv `[N,2C]`
//! rows of cross-attention, a layout the seam's `rope` on `qkv [N,3C]` lacks); the two new ops are
//! [`crate::ops::cross_attention`] (query length ≠ key length, key padding mask; also the
//! encoder's padded self-attention). Training is teacher forcing: the decoder reads
//! `<bos> + target` and predicts `target + <eos>`; padding targets are ignored by the loss.
//! Proven against PyTorch by `tests/torch_seq2seq.rs` (fixtures from
//! `tools/torch_seq2seq_reference.py`).
//!
//! ```
//! use lmforge_model::seq2seq::{Seq2seq, Seq2seqBatch, Seq2seqConfig};
//! let cfg = Seq2seqConfig::new(10, 10, 1, 2, 8, 6, 6);
//! let mut m = Seq2seq::new(cfg, 1)?;
//! let (src, tgt_in, tgt_out) = ([3, 4, 5, 0], [1, 5, 4, 3], [5, 4, 3, 2]);
//! let batch = Seq2seqBatch { batch: 1, src_len: 4, tgt_len: 4, src: &src, tgt_in: &tgt_in, tgt_out: &tgt_out, src_pad_id: 0 };
//! m.zero_grad();
//! let loss = m.forward(&batch)?;
//! m.backward()?;
//! # assert!(loss > 0.0);
//! # Ok::<(), lmforge_model::Error>(())
//! ```

mod acts;
mod branch;
pub mod config;
pub mod decoder;
pub mod io;
pub mod model;
pub mod params;
mod sublayer;

pub use config::{Arch, Norm, Seq2seqConfig};
pub use decoder::CachedDecoder;
pub use model::{Seq2seq, Seq2seqBatch};
