//! The CPU backend's prepared Linear weights: each weight's bf16 preparation
//! ([`PreparedWeight`]) made at its first use after a parameter write and reused by every
//! later product until the next write — the forward `x·Wᵀ`, the backward `dY·W`, every
//! classifier chunk, every batch shard and micro-batch of the step.
//!
//! Entries are keyed by the weight's address and length in the parameter buffer and carry the
//! epoch they were made in; [`WeightCache::invalidate`] advances the epoch, so a stale entry
//! is prepared again (into its own buffers: no allocation after the first step). Shards share
//! entries: the first to find one stale prepares it under the entry's write lock, the others
//! wait for it and then read side by side.

use crate::ops::matmul::{Bf16Kernel, PreparedWeight};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// One weight's preparation and the epoch it was made in.
#[derive(Default)]
struct Entry {
    epoch: u64,
    weight: PreparedWeight,
}

/// An entry shared by the shards: read side by side, prepared under the write lock.
type Shared = Arc<RwLock<Entry>>;

/// Prepared weights by `(address, length)` (see the module docs).
#[derive(Default)]
pub(super) struct WeightCache {
    on: bool,
    epoch: AtomicU64,
    entries: Mutex<HashMap<(usize, usize), Shared>>,
}

impl fmt::Debug for WeightCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.entries.lock().map_or(0, |e| e.len());
        f.debug_struct("WeightCache")
            .field("on", &self.on)
            .field("entries", &n)
            .finish()
    }
}

impl WeightCache {
    /// Turn keeping on or off (off drops every entry).
    pub(super) fn set_on(&mut self, on: bool) {
        self.on = on;
        if !on {
            self.entries
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
    }

    /// Every entry is stale from now on.
    pub(super) fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Run `f` with `w [oc, c]` prepared for `kern` — kept from earlier in this epoch or made
    /// now — or with `None` when keeping is off.
    pub(super) fn with<R>(
        &self,
        kern: Bf16Kernel,
        w: &[f32],
        c: usize,
        f: impl FnOnce(Option<&PreparedWeight>) -> R,
    ) -> R {
        if !self.on || c == 0 {
            return f(None);
        }
        let entry = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(entries.entry((w.as_ptr() as usize, w.len())).or_default())
        };
        let epoch = self.epoch.load(Ordering::Acquire);
        let fresh = |e: &Entry| e.epoch == epoch && e.weight.kernel() == Some(kern);
        {
            let e = entry.read().unwrap_or_else(PoisonError::into_inner);
            if fresh(&e) {
                return f(Some(&e.weight));
            }
        }
        {
            let mut e = entry.write().unwrap_or_else(PoisonError::into_inner);
            if !fresh(&e) {
                e.weight.prepare(kern, w, w.len() / c, c);
                e.epoch = epoch;
            }
        }
        let e = entry.read().unwrap_or_else(PoisonError::into_inner);
        f(Some(&e.weight))
    }
}
