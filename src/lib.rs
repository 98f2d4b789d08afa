//! lmforge: from raw text to a trained GPT-style language model and generated text.
//!
//! The library is organised as one crate per stage, re-exported here; the `lmforge`
//! binary ([`cli`]) is a thin layer over these public functions. `examples/library.rs`
//! runs prepare → train → generate through them.
//!
//! | stage | crate | what it does |
//! |---|---|---|
//! | [`corpus`] | `lmforge-corpus` | which files a user means, read as UTF-8 |
//! | [`tokenizer`] | `lmforge-tokenizer` | char, word, BPE, unigram, tiktoken, SentencePiece |
//! | [`data`] | `lmforge-data` | tokenize once into memory-mapped token files; training batches |
//! | [`model`] | `lmforge-model` | the GPT and its CPU compute engine |
//! | [`checkpoint`] | `lmforge-checkpoint` | checkpoint folders: write, find, load, training state |
//! | [`train`] | `lmforge-train` | the training run: loop, resume, metrics, run-folder safety |
//! | [`generate`] | `lmforge-generate` | sampling, streaming generation, evaluation |
//! | [`files`] | `lmforge-files` | atomic file writes, the run-folder lock |
//! | [`interop`] | `lmforge-interop` | export to Hugging Face / GGUF, import GPT-2 and nanoGPT checkpoints |
//! | [`serve`] | `lmforge-serve` | OpenAI-compatible HTTP server and web playground |

pub mod cli;

pub use lmforge_checkpoint as checkpoint;
pub use lmforge_corpus as corpus;
pub use lmforge_data as data;
pub use lmforge_files as files;
pub use lmforge_generate as generate;
pub use lmforge_interop as interop;
pub use lmforge_model as model;
pub use lmforge_serve as serve;
pub use lmforge_tokenizer as tokenizer;
pub use lmforge_train as train;
