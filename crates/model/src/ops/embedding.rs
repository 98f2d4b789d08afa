//! Token embedding plus (optional) additive position table.
//!
//! Forward:  `out[b,t,:] = wte[idx[b,t],:] + pos[t,:]`
//!   idx `[B,T]`, wte `[V,C]`, pos `[≥T,C]` (learned `wpe` or the fixed sinusoidal table), out `[B,T,C]`.
//! Backward: `dwte[idx[b,t],:] += dout[b,t,:]`, `dwpe[t,:] += Σ_b dout[b,t,:]` (learned only).
//! Weight-gradient sums run over rows in index order inside fixed column chunks, so they are
//! bitwise independent of the thread count.

use rayon::prelude::*;

/// Column chunk for deterministic parallel reductions over rows.
pub const COL_CHUNK: usize = 16;

/// `out[n,:] = wte[idx[n],:] + pos[n % t,:]`; ids must already be validated `< V`.
pub fn forward(out: &mut [f32], idx: &[u32], wte: &[f32], pos: Option<&[f32]>, t: usize, c: usize) {
    out.par_chunks_mut(c)
        .zip(idx.par_iter())
        .enumerate()
        .for_each(|(n, (o, &id))| {
            let e = &wte[id as usize * c..id as usize * c + c];
            match pos {
                Some(p) => {
                    let p = &p[(n % t) * c..(n % t) * c + c];
                    for ((o, e), p) in o.iter_mut().zip(e).zip(p) {
                        *o = e + p;
                    }
                }
                None => o.copy_from_slice(e),
            }
        });
}

/// Accumulate `dwte` (and `dwpe` when given) from `dout [B·T, C]`.
pub fn backward(
    dwte: &mut [f32],
    dwpe: Option<&mut [f32]>,
    dout: &[f32],
    idx: &[u32],
    t: usize,
    c: usize,
) {
    // Each task owns a column chunk of every row of dwte: no races, fixed summation order.
    let n = idx.len();
    let dwte_ptr = crate::ops::sendptr::SendPtr(dwte.as_mut_ptr());
    let v_rows = dwte.len() / c;
    (0..c.div_ceil(COL_CHUNK)).into_par_iter().for_each(|ci| {
        let c0 = ci * COL_CHUNK;
        let c1 = (c0 + COL_CHUNK).min(c);
        let p = dwte_ptr;
        for (row, &id) in idx.iter().enumerate().take(n) {
            debug_assert!((id as usize) < v_rows);
            let d = &dout[row * c + c0..row * c + c1];
            // SAFETY: columns c0..c1 of dwte are touched only by this task; id < V was
            // validated by the caller.
            let w =
                unsafe { std::slice::from_raw_parts_mut(p.0.add(id as usize * c + c0), c1 - c0) };
            for (w, d) in w.iter_mut().zip(d) {
                *w += d;
            }
        }
    });
    if let Some(dwpe) = dwpe {
        let b = n / t;
        dwpe[..t * c]
            .par_chunks_mut(c)
            .enumerate()
            .for_each(|(ti, w)| {
                for bi in 0..b {
                    let d = &dout[(bi * t + ti) * c..(bi * t + ti) * c + c];
                    for (w, d) in w.iter_mut().zip(d) {
                        *w += d;
                    }
                }
            });
    }
}

/// Vaswani table `[rows, C]`: `PE[p,2i] = sin(p/10000^(2i/C))`, `PE[p,2i+1] = cos(·)`.
pub fn sinusoidal_table(rows: usize, c: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; rows * c];
    for p in 0..rows {
        sinusoidal_row(p, &mut t[p * c..p * c + c]);
    }
    t
}

/// One row of the sinusoidal table for absolute position `p` (computed in f64).
pub fn sinusoidal_row(p: usize, row: &mut [f32]) {
    let c = row.len();
    for i in 0..c / 2 {
        let freq = 10000f64.powf(-((2 * i) as f64) / c as f64);
        let a = p as f64 * freq;
        row[2 * i] = a.sin() as f32;
        row[2 * i + 1] = a.cos() as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::*;

    #[test]
    fn gradients_match_finite_differences() {
        let (b, t, c, v) = (2, 3, 5, 4);
        let idx = [1u32, 3, 1, 0, 2, 1];
        let wte = randn(v * c, 1, 1.0);
        let wpe = randn(t * c, 2, 1.0);
        let w = randn(b * t * c, 3, 1.0);
        let mut dwte = vec![0.0; v * c];
        let mut dwpe = vec![0.0; t * c];
        backward(&mut dwte, Some(&mut dwpe), &w, &idx, t, c);
        let f = |wte: &[f32], wpe: &[f32]| {
            let mut out = vec![0.0; b * t * c];
            forward(&mut out, &idx, wte, Some(wpe), t, c);
            weighted_sum(&out, &w)
        };
        check_grad("wte", &wte, &dwte, |x| f(x, &wpe), 1e-2, 1e-3);
        check_grad("wpe", &wpe, &dwpe, |x| f(&wte, x), 1e-2, 1e-3);
        // token 3 used once, token 1 three times: its row is the sum of three rows of w
        for k in 0..c {
            let want = w[c + k];
            assert!((dwte[3 * c + k] - want).abs() < 1e-6);
        }
    }

    #[test]
    fn sinusoidal_matches_formula() {
        let tab = sinusoidal_table(7, 8);
        assert_eq!(tab[0], 0.0);
        assert_eq!(tab[1], 1.0);
        let want = (5.0f64 / 10000f64.powf(4.0 / 8.0)).cos() as f32;
        assert!((tab[5 * 8 + 5] - want).abs() < 1e-7);
    }
}
