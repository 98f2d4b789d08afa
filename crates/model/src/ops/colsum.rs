//! Column reductions over rows for parameter gradients: bias grads `db[j] += Σ_n dout[n,j]` and
//! LayerNorm's `dw[j] += Σ_n dout[n,j]·x̂[n,j]`, `db[j] += Σ_n dout[n,j]`.
//!
//! Shapes: `dout, x [N, W]`; `mean, rstd [N]`; `dw, db [W]`.
//! Each task owns one chunk of `CHUNK` columns and walks all rows in order, so the sums are
//! bitwise the same for any thread count. A 64-wide chunk is one 256-byte read per row and
//! eight AVX2 accumulators, which keeps these passes memory-bound rather than latency-bound.

use rayon::prelude::*;

/// Columns per task.
pub const CHUNK: usize = 64;

/// `acc[j] += Σ_n rows[n·stride + c0 + j]` for `j < L` (`L` fixed so the accumulators stay in
/// registers).
#[inline(always)]
fn sum_rows<const L: usize>(acc: &mut [f32], rows: &[f32], stride: usize, c0: usize, n: usize) {
    let mut a = [0.0f32; L];
    for r in 0..n {
        let row = &rows[r * stride + c0..r * stride + c0 + L];
        for j in 0..L {
            a[j] += row[j];
        }
    }
    for (o, a) in acc.iter_mut().zip(a) {
        *o += a;
    }
}

crate::simd_fn! {
    fn column_chunk(acc: &mut [f32], rows: &[f32], stride: usize, c0: usize, n: usize) {
        if acc.len() == CHUNK {
            sum_rows::<CHUNK>(acc, rows, stride, c0, n);
        } else {
            for (j, a) in acc.iter_mut().enumerate() {
                let mut s = 0.0f32;
                for r in 0..n {
                    s += rows[r * stride + c0 + j];
                }
                *a += s;
            }
        }
    }
}

/// `out[j] += Σ_n rows[n, j]` for `rows [N, out.len()]`.
pub fn add_column_sums(out: &mut [f32], rows: &[f32]) {
    let w = out.len();
    if w == 0 {
        return;
    }
    let n = rows.len() / w;
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(ci, acc)| column_chunk(acc, rows, w, ci * CHUNK, n));
}

/// LayerNorm's `dw += Σ_n dout·x̂` and `db += Σ_n dout` for `L` columns from `c0`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn ln_rows<const L: usize>(
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    dout: &[f32],
    x: &[f32],
    mean: &[f32],
    rstd: &[f32],
    stride: usize,
    c0: usize,
) {
    let (mut aw, mut ab) = ([0.0f32; L], [0.0f32; L]);
    for (r, (&m, &s)) in mean.iter().zip(rstd).enumerate() {
        let d = &dout[r * stride + c0..r * stride + c0 + L];
        let x = &x[r * stride + c0..r * stride + c0 + L];
        for j in 0..L {
            aw[j] += d[j] * ((x[j] - m) * s);
            ab[j] += d[j];
        }
    }
    for (o, a) in dw.iter_mut().zip(aw) {
        *o += a;
    }
    if let Some(db) = db {
        for (o, a) in db.iter_mut().zip(ab) {
            *o += a;
        }
    }
}

crate::simd_fn! {
    fn ln_chunk(
        dw: &mut [f32],
        db: Option<&mut [f32]>,
        dout: &[f32],
        x: &[f32],
        mean: &[f32],
        rstd: &[f32],
        stride: usize,
        c0: usize,
    ) {
        if dw.len() == CHUNK {
            ln_rows::<CHUNK>(dw, db, dout, x, mean, rstd, stride, c0);
        } else {
            // a narrow last chunk: one column at a time, same per-column order as above
            let mut db = db;
            for j in 0..dw.len() {
                let (mut sw, mut sb) = (0.0f32, 0.0f32);
                for (r, (&m, &s)) in mean.iter().zip(rstd).enumerate() {
                    let i = r * stride + c0 + j;
                    sw += dout[i] * ((x[i] - m) * s);
                    sb += dout[i];
                }
                dw[j] += sw;
                if let Some(db) = db.as_deref_mut() {
                    db[j] += sb;
                }
            }
        }
    }
}

/// LayerNorm parameter grads over `N = mean.len()` rows of width `dw.len()`.
pub fn add_layernorm_param_grads(
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    dout: &[f32],
    x: &[f32],
    mean: &[f32],
    rstd: &[f32],
) {
    let w = dw.len();
    match db {
        Some(db) => dw
            .par_chunks_mut(CHUNK)
            .zip(db.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(ci, (dw, db))| ln_chunk(dw, Some(db), dout, x, mean, rstd, w, ci * CHUNK)),
        None => dw
            .par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(ci, dw)| ln_chunk(dw, None, dout, x, mean, rstd, w, ci * CHUNK)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::randn;

    /// Both reductions against plain f64 sums, for widths with and without a partial chunk.
    #[test]
    fn sums_match_plain_loops() {
        for (n, w) in [(7, 5), (33, 64), (19, 130), (3, 200)] {
            let dout = randn(n * w, 1, 1.0);
            let x = randn(n * w, 2, 1.0);
            let mean = randn(n, 3, 1.0);
            let rstd: Vec<f32> = randn(n, 4, 1.0).iter().map(|v| v.abs() + 0.5).collect();
            let mut db = vec![1.0f32; w];
            add_column_sums(&mut db, &dout);
            let (mut lw, mut lb) = (vec![0.5f32; w], vec![-0.5f32; w]);
            add_layernorm_param_grads(&mut lw, Some(&mut lb), &dout, &x, &mean, &rstd);
            let mut lw2 = vec![0.5f32; w];
            add_layernorm_param_grads(&mut lw2, None, &dout, &x, &mean, &rstd);
            for j in 0..w {
                let col = |f: &dyn Fn(usize) -> f64| (0..n).map(f).sum::<f64>();
                let s = col(&|r| dout[r * w + j] as f64);
                let sx = col(&|r| {
                    let i = r * w + j;
                    dout[i] as f64 * ((x[i] - mean[r]) as f64 * rstd[r] as f64)
                });
                assert!(
                    (db[j] as f64 - (1.0 + s)).abs() < 1e-4,
                    "bias n={n} w={w} j={j}"
                );
                assert!(
                    (lb[j] as f64 - (s - 0.5)).abs() < 1e-4,
                    "ln db n={n} w={w} j={j}"
                );
                assert!(
                    (lw[j] as f64 - (0.5 + sx)).abs() < 1e-4,
                    "ln dw n={n} w={w} j={j}"
                );
                assert_eq!(lw[j], lw2[j]);
            }
        }
    }
}
