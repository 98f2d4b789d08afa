//! Files that are never half-written, and run folders with one writer.
//!
//! - [`atomic`]: the one way lmforge writes a file — into a temporary file in the same
//!   folder, `fsync`, rename over the target, `fsync` the folder. A reader sees the old file
//!   or the new one, never a mix; a crash or error leaves no temporary file behind.
//! - [`lock`]: an exclusive lock on a run folder ([`RunLock`]), so two training processes
//!   never interleave their writes into one folder.
//!
//! This crate depends on no other lmforge crate; errors are [`std::io::Error`]s that the
//! caller wraps with its own context (which file, which flag).
#![warn(missing_docs)]

pub mod atomic;
pub mod lock;

pub use atomic::{replace_with_synced, sync_dir, write_atomic, write_atomic_with};
pub use lock::{LockError, RunLock};
