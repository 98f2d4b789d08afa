//! lmforge-fuzz: a mutation fuzzer for every file lmforge loads from a user.
//!
//! Stable Rust, no coverage instrumentation: seeds are real files (repository fixtures and
//! files written by the crates' own save functions), mutated by [`mutate`] (bit flips,
//! interesting integers, truncation, splicing, chunk copies) and, for JSON and TOML, by
//! [`structured`] (values replaced by huge, negative, NaN or wrongly typed ones, keys
//! deleted or duplicated). Each input runs under [`engine`]'s guard:
//!
//! - a panic is caught (`catch_unwind`) and reported with the input;
//! - an execution over the time budget is reported as slow; one over the hang limit stops
//!   the process with its replay command;
//! - [`alloc_guard`] caps the process's live memory, so a loader that trusts a size field
//!   (a header claiming 2^60 tokens) aborts with the case instead of eating the machine.
//!
//! Every case is rebuilt from its 64-bit case seed (`lmforge-fuzz TARGET --replay SEED`).
//! [`targets`] lists one target per loader. `cargo test -p lmforge-fuzz` runs a short
//! deterministic pass over all of them; `cargo run --release -p lmforge-fuzz -- all --secs
//! 180` is the long run (see docs/fuzzing.md).

#![warn(missing_docs)]

pub mod alloc_guard;
pub mod engine;
pub mod mutate;
pub mod structured;
pub mod targets;

pub use engine::{run, Finding, Problem, Report, RunOptions, Target, Verdict};
pub use targets::TARGETS;

#[global_allocator]
static ALLOC: alloc_guard::CappedAlloc = alloc_guard::CappedAlloc;
