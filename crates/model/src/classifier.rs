//! The fused, chunked classifier: `lm_head`, softmax, cross-entropy and their gradients
//! computed a chunk of rows at a time, so the `[N, V]` logits of a batch are never
//! materialised (llm.c's fused classifier; Liger's fused linear cross-entropy).
//!
//! For each chunk of `m` rows of `x = ln_f(..)`:
//! 1. `logits = x_chunk·Wᵀ (+ b)`                    `[m,V]` in the one chunk buffer
//! 2. fused softmax + cross-entropy in place: row losses, and `logits ← dlogits`
//! 3. with gradients: `dx_chunk = dlogits·W` `[m,C]`, `dW += dlogitsᵀ·x_chunk` `[V,C]`
//!    (or `dWᵀ += x_chunkᵀ·dlogits` `[C,V]` where the backend computes that faster)
//!    (and `db += Σ_rows dlogits` `[V]` when the untied head has a bias, `head_bias`)
//!
//! Why the gradients are taken in the forward and *staged* here (not written to the model's
//! gradients, not recomputed in backward): the head product is most of a step at a real
//! vocabulary (4 layers × 256 wide at V = 200,019: ~95 % of the FLOPs), so recomputing the
//! logits in backward would cost a fourth head product (+33 %). Staging `dx [N,C]` and
//! `dW [V,C]` costs `(N + V)·C` floats instead of the `2·N·V` the full logits and dlogits took,
//! and keeps the forward free of side effects on the model's gradients: `zero_grad` may run
//! between forward and backward, `backward_scaled(s)` scales the staged pair (as it scaled
//! dlogits before), and an evaluation ([`Gpt::loss`](crate::Gpt::loss)) skips step 3
//! entirely, one head product per row instead of three.
//!
//! Shapes: `N` rows of the shard, `C` = n_embd, `V` = vocabulary, `m` ≤ chunk rows.

use crate::backend::{Backend, GradLayout};

/// Bytes of logits one chunk may hold when the chunk size is automatic
/// ([`Gpt::set_classifier_chunk`](crate::Gpt::set_classifier_chunk)): at most 671 rows at
/// V = 200,019, 2,671 at 50,257, every row of a character model ([`chunk_rows`] then shares
/// the rows evenly among the chunks). Not an L2-sized chunk: each
/// chunk's weight-gradient product reads and writes all of `dW [V,C]` (205 MB at 200,019 ×
/// 256), so thin chunks turn that product memory-bound; measured in `docs/performance.md`.
pub const CHUNK_BYTES: usize = 512 << 20;

/// Fewest rows an automatic chunk holds, whatever the vocabulary: the head's weight-gradient
/// product `dlogitsᵀ·x` has the chunk's rows as its inner dimension, and each chunk reads and
/// writes all of `dW [V,C]`, so very thin chunks turn it memory-bound.
pub const MIN_CHUNK_ROWS: usize = 64;

/// Rows per chunk: `requested` when non-zero, else the `n` rows split evenly into as few chunks
/// as fit [`CHUNK_BYTES`] each (at least [`MIN_CHUNK_ROWS`] rows): 4 × 512 rather than
/// 3 × 671 + 35 at o200k_base — a thin last chunk costs nearly a whole pass over the head
/// weight and its gradient for a sliver of rows. Never more than the `n` rows there are.
pub fn chunk_rows(requested: usize, n: usize, v: usize) -> usize {
    let rows = if requested == 0 {
        let most = (CHUNK_BYTES / (4 * v.max(1))).max(MIN_CHUNK_ROWS);
        n.div_ceil(n.div_ceil(most).max(1))
    } else {
        requested
    };
    rows.clamp(1, n.max(1))
}

/// The classifier's buffers for one batch shard (sized once per shape, reused every step).
pub(crate) struct HeadBufs<B: Backend> {
    /// one chunk's logits, overwritten by its dlogits `[chunk, V]`
    pub logits: B::Buf,
    /// one chunk's per-row losses `[chunk]`
    pub row_loss: B::Buf,
    /// staged `d loss / d x` for every row of the shard `[N, C]` (empty until gradients are
    /// first asked for)
    pub dx: B::Buf,
    /// staged `d loss / d W` of `lm_head` `[V, C]`, or `[C, V]` when `dw_transposed` (empty
    /// until gradients are first asked for)
    pub dw: B::Buf,
    /// `dw` holds `dWᵀ` (the backend's choice, [`Backend::head_grad_transposed`])
    pub dw_transposed: bool,
    /// staged `d loss / d b` of `lm_head.bias` `[V]` (empty unless the head has a bias)
    pub db: B::Buf,
}

impl<B: Backend> HeadBufs<B> {
    /// Empty buffers (sized by [`HeadBufs::plan`]).
    pub(crate) fn new(dev: &B) -> Self {
        HeadBufs {
            logits: dev.alloc(0),
            row_loss: dev.alloc(0),
            dx: dev.alloc(0),
            dw: dev.alloc(0),
            dw_transposed: false,
            db: dev.alloc(0),
        }
    }

    /// Grow the buffers for chunks of `chunk` rows over `n` rows (`grads`: also the staged
    /// gradients, `bias`: the head's bias gradient among them). Only grows, so a training
    /// step allocates nothing.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn plan(
        &mut self,
        dev: &B,
        n: usize,
        c: usize,
        v: usize,
        chunk: usize,
        grads: bool,
        bias: bool,
    ) {
        let g = usize::from(grads);
        for (buf, len) in [
            (&mut self.logits, chunk * v),
            (&mut self.row_loss, chunk),
            (&mut self.dx, g * n * c),
            (&mut self.dw, g * v * c),
            (&mut self.db, g * usize::from(bias) * v),
        ] {
            if B::len(buf) < len {
                *buf = dev.alloc(len);
            }
        }
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        4 * [&self.logits, &self.row_loss, &self.dx, &self.dw, &self.db]
            .iter()
            .map(|b| B::len(b))
            .sum::<usize>()
    }
}

/// What one classifier pass is given: the head input and weight and the targets.
pub(crate) struct Inputs<'a, B: Backend> {
    /// `ln_f` output: its first `N·C` floats are `[N, C]`
    pub x: &'a B::Buf,
    /// `lm_head` weight `[V, C]`
    pub w: B::Src<'a>,
    /// `lm_head.bias` `[V]` (`head_bias` models only)
    pub b: Option<B::Src<'a>>,
    /// `[N]`, −1 = ignored
    pub targets: &'a [i32],
    /// valid targets in the whole batch (the mean's divisor)
    pub n_valid: usize,
    pub c: usize,
    pub v: usize,
    /// rows per chunk
    pub chunk: usize,
}

/// Loss of the shard's rows, summed (the mean's numerator). With `grads`, also stages
/// `d (Σ loss / n_valid) / d x` in `bufs.dx` and the head weight's (and bias's) gradient in
/// `bufs.dw` (`bufs.db`), overwritten, not accumulated — `dWᵀ [C,V]` where the backend
/// prefers it ([`Backend::head_grad_transposed`]; `bufs.dw_transposed` says which).
pub(crate) fn run<B: Backend>(
    dev: &B,
    bufs: &mut HeadBufs<B>,
    inp: &Inputs<B>,
    grads: bool,
) -> f64 {
    let (n, c, v) = (inp.targets.len(), inp.c, inp.v);
    let transposed = dev.head_grad_transposed(c, v);
    let layout = GradLayout::transposed_if(transposed);
    if grads {
        bufs.dw_transposed = transposed;
        dev.zero(B::dst(&mut bufs.dw, 0..v * c));
        if inp.b.is_some() {
            dev.zero(B::dst(&mut bufs.db, 0..v));
        }
    }
    let mut total = 0.0;
    let mut r0 = 0;
    while r0 < n {
        let m = inp.chunk.min(n - r0);
        let x = B::src(inp.x, r0 * c..(r0 + m) * c);
        dev.linear_forward(B::dst(&mut bufs.logits, 0..m * v), x, inp.w, inp.b, c);
        let logits = B::dst(&mut bufs.logits, 0..m * v);
        let row_loss = B::dst(&mut bufs.row_loss, 0..m);
        let tg = &inp.targets[r0..r0 + m];
        total += dev.cross_entropy(logits, row_loss, tg, v, inp.n_valid);
        if grads {
            let dl = B::src(&bufs.logits, 0..m * v);
            let (dx, dw) = (
                B::dst(&mut bufs.dx, r0 * c..(r0 + m) * c),
                B::dst(&mut bufs.dw, 0..v * c),
            );
            let db = inp.b.map(|_| B::dst(&mut bufs.db, 0..v));
            dev.linear_backward_with(layout, Some(dx), dw, db, dl, x, inp.w, c, false);
        }
        r0 += m;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_chunks_are_even_and_within_the_byte_budget() {
        // o200k_base, batch 8 × block 256: 671 rows fit; four even chunks, not 3 × 671 + 35
        assert_eq!(chunk_rows(0, 2048, 200_019), 512);
        for (n, v) in [
            (2048, 200_019),
            (3072, 50_257),
            (2049, 200_019),
            (7, 65),
            (1, 10),
        ] {
            let rows = chunk_rows(0, n, v);
            let chunks = n.div_ceil(rows);
            let cap = (CHUNK_BYTES / (4 * v)).max(MIN_CHUNK_ROWS);
            assert!(rows <= cap.min(n), "{n} rows, V {v}: {rows} per chunk");
            // as few chunks as the budget allows, the last short by less than one row a chunk
            assert_eq!(chunks, n.div_ceil(cap), "{n} rows, V {v}");
            let last = n - (chunks - 1) * rows;
            assert!(
                last + chunks > rows,
                "{n} rows, V {v}: last chunk {last} of {rows}"
            );
        }
        // an explicit request is kept (clamped to the rows there are)
        assert_eq!(chunk_rows(100, 2048, 200_019), 100);
        assert_eq!(chunk_rows(5000, 2048, 200_019), 2048);
    }
}
