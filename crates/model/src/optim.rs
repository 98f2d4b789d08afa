//! AdamW exactly as `torch.optim.AdamW` (decoupled weight decay, bias correction), applied
//! to the flat parameter buffer. Weight decay only touches tensors with ≥ 2 dims (nanoGPT's
//! `configure_optimizers` groups). Gradient clipping lives on the model
//! ([`Gpt::clip_grad_norm`](crate::Gpt::clip_grad_norm)); gradient accumulation is the
//! caller's `zero_grad` / `backward_scaled` schedule.

use crate::error::{Error, Result};
use crate::model::Gpt;
use crate::ops::matmul::SendPtr;
use rayon::prelude::*;
use std::ops::Range;

/// AdamW hyper-parameters (the learning rate is passed per step, for schedules).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

impl Default for AdamWConfig {
    /// nanoGPT's defaults: betas (0.9, 0.95), eps 1e-8, weight decay 0.1.
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        }
    }
}

/// Optimizer state: first/second moments in the model's parameter layout, and the step count.
#[derive(Clone, Debug)]
pub struct AdamW {
    pub config: AdamWConfig,
    /// `exp_avg`, flat, parameter layout.
    pub m: Vec<f32>,
    /// `exp_avg_sq`, flat, parameter layout.
    pub v: Vec<f32>,
    /// Number of steps taken (torch's `state["step"]`).
    pub step: u64,
    /// `(range, decays)` work items of at most `CHUNK` values: one parallel loop per step.
    chunks: Vec<(Range<usize>, bool)>,
}

const CHUNK: usize = 1 << 14;

crate::simd_fn! {
    /// torch order: `p *= 1 - lr·wd`; `m.lerp_(g, 1-β1)`; `v = v·β2 + (1-β2)·g²`;
    /// `p -= step_size · m / (√v/√bc2 + eps)`.
    fn update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: [f32; 7]) {
        let [decay, one_m_b1, b2, one_m_b2, step_size, bc2_sqrt, eps] = k;
        // equal lengths up front: no bounds checks in the loop, so it vectorises
        let n = p.len();
        let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
        for i in 0..n {
            let gi = g[i];
            let mi = m[i] + one_m_b1 * (gi - m[i]);
            let vi = v[i] * b2 + one_m_b2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            p[i] = p[i] * decay - step_size * (mi / (vi.sqrt() / bc2_sqrt + eps));
        }
    }
}

impl AdamW {
    /// Fresh state (zero moments, step 0) for `model`.
    pub fn new(model: &Gpt, config: AdamWConfig) -> Self {
        let n = model.num_params();
        let mut chunks = Vec::new();
        for t in &model.layout().tensors {
            let r = t.range();
            for s in r.clone().step_by(CHUNK) {
                chunks.push((s..(s + CHUNK).min(r.end), t.decays()));
            }
        }
        AdamW {
            config,
            m: vec![0.0; n],
            v: vec![0.0; n],
            step: 0,
            chunks,
        }
    }

    /// One `optimizer.step()` with learning rate `lr` using the model's current gradients.
    pub fn step(&mut self, model: &mut Gpt, lr: f32) -> Result<()> {
        crate::model::on_pool(|| self.step_impl(model, lr))
    }

    fn step_impl(&mut self, model: &mut Gpt, lr: f32) -> Result<()> {
        let (params, grads) = model.params_and_grads_mut();
        if params.len() != self.m.len() || self.v.len() != self.m.len() {
            return Err(Error::Optimizer(format!(
                "state has {} values, model has {} parameters",
                self.m.len(),
                params.len()
            )));
        }
        self.step += 1;
        let c = self.config;
        // Scalars as torch computes them (Python floats, i.e. f64), then used in f32.
        let t = self.step as i32;
        let bc1 = 1.0 - (c.beta1 as f64).powi(t);
        let bc2 = 1.0 - (c.beta2 as f64).powi(t);
        let step_size = (lr as f64 / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        let (pp, mp, vp) = (
            SendPtr(params.as_mut_ptr()),
            SendPtr(self.m.as_mut_ptr()),
            SendPtr(self.v.as_mut_ptr()),
        );
        let grads: &[f32] = grads;
        self.chunks.par_iter().for_each(|(r, decays)| {
            let (pp, mp, vp) = (pp, mp, vp);
            let decay = if *decays {
                1.0 - lr * c.weight_decay
            } else {
                1.0
            };
            let k = [
                decay,
                1.0 - c.beta1,
                c.beta2,
                1.0 - c.beta2,
                step_size,
                bc2_sqrt,
                c.eps,
            ];
            // SAFETY: the chunks are disjoint ranges inside the three equally long buffers
            // (lengths checked above).
            let (p, m, v) = unsafe {
                (
                    std::slice::from_raw_parts_mut(pp.0.add(r.start), r.len()),
                    std::slice::from_raw_parts_mut(mp.0.add(r.start), r.len()),
                    std::slice::from_raw_parts_mut(vp.0.add(r.start), r.len()),
                )
            };
            update(p, &grads[r.clone()], m, v, k);
        });
        Ok(())
    }

    /// `(tensor name, state key, values)` for the moments: keys `exp_avg` and `exp_avg_sq`.
    pub fn named_state<'a>(
        &'a self,
        model: &'a Gpt,
    ) -> impl Iterator<Item = (String, &'a [usize], &'a [f32])> {
        model.layout().tensors.iter().flat_map(move |t| {
            [
                (
                    format!("exp_avg.{}", t.name),
                    &t.shape[..],
                    &self.m[t.range()],
                ),
                (
                    format!("exp_avg_sq.{}", t.name),
                    &t.shape[..],
                    &self.v[t.range()],
                ),
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;

    /// Reference single-tensor AdamW in f64 following torch's formulas.
    #[test]
    fn matches_reference_formulas_and_skips_decay_for_1d() {
        let cfg = ModelConfig::preset("tiny").unwrap();
        let mut m = Gpt::new(cfg, 1).unwrap();
        let n = m.num_params();
        for (i, g) in m.grads_mut().iter_mut().enumerate() {
            *g = ((i * 37 % 101) as f32 - 50.0) * 1e-3;
        }
        let p0 = m.params().to_vec();
        let c = AdamWConfig {
            beta1: 0.8,
            beta2: 0.9,
            eps: 1e-6,
            weight_decay: 0.5,
        };
        let mut opt = AdamW::new(&m, c);
        let lr = 0.01f64;
        let (mut mm, mut vv) = (vec![0.0f64; n], vec![0.0f64; n]);
        let mut p: Vec<f64> = p0.iter().map(|&x| x as f64).collect();
        let decays: Vec<bool> = {
            let mut d = vec![false; n];
            for t in &m.layout().tensors {
                d[t.range()].fill(t.decays());
            }
            d
        };
        for step in 1..=3 {
            opt.step(&mut m, lr as f32).unwrap();
            for i in 0..n {
                let g = m.grads()[i] as f64;
                if decays[i] {
                    p[i] *= 1.0 - lr * 0.5;
                }
                mm[i] = 0.8 * mm[i] + 0.2 * g;
                vv[i] = 0.9 * vv[i] + 0.1 * g * g;
                let bc1 = 1.0 - 0.8f64.powi(step);
                let bc2 = 1.0 - 0.9f64.powi(step);
                p[i] -= lr / bc1 * mm[i] / (vv[i].sqrt() / bc2.sqrt() + 1e-6);
            }
        }
        for (i, (&got, want)) in m.params().iter().zip(&p).enumerate() {
            assert!((got as f64 - want).abs() < 1e-5, "param {i}");
        }
        // LayerNorm weights (1-D, initialised to 1) are not decayed: with g = 0 they stay put
        let mut m2 = Gpt::new(ModelConfig::preset("tiny").unwrap(), 1).unwrap();
        let mut opt2 = AdamW::new(&m2, c);
        opt2.step(&mut m2, 0.1).unwrap();
        assert_eq!(m2.param("transformer.ln_f.weight").unwrap()[0], 1.0);
        assert!(m2.param("transformer.wte.weight").unwrap()[0].abs() < p0[0].abs());
        assert_eq!(opt2.step, 1);
    }
}
