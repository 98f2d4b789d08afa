//! AdamW exactly as `torch.optim.AdamW` (decoupled weight decay, bias correction), applied
//! to the flat parameter buffer. Weight decay only touches tensors with ≥ 2 dims (nanoGPT's
//! `configure_optimizers` groups). Gradient clipping lives on the model
//! ([`Gpt::clip_grad_norm`](crate::Gpt::clip_grad_norm)); gradient accumulation is the
//! caller's `zero_grad` / `backward_scaled` schedule.

use crate::backend::cpu::Cpu;
use crate::backend::{AdamWStep, Backend, Segment};
use crate::error::{Error, Result};
use crate::model::Gpt;
use crate::ops::adamw::segments;
use crate::params::TensorInfo;

/// AdamW hyper-parameters (the learning rate is passed per step, for schedules).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    /// β1, the first moment's decay
    pub beta1: f32,
    /// β2, the second moment's decay
    pub beta2: f32,
    /// added to √v̂
    pub eps: f32,
    /// decoupled weight decay (tensors with ≥ 2 dims only)
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
pub struct AdamW<B: Backend = Cpu> {
    /// The hyper-parameters.
    pub config: AdamWConfig,
    /// `exp_avg` `[P]`, flat, parameter layout.
    pub m: B::Buf,
    /// `exp_avg_sq` `[P]`, flat, parameter layout.
    pub v: B::Buf,
    /// Number of steps taken (torch's `state["step"]`).
    pub step: u64,
    /// `(range, decays)` work items (whole tensors cut into chunks): one parallel loop per step.
    segments: Vec<Segment>,
}

impl<B: Backend> AdamW<B> {
    /// Fresh state (zero moments, step 0) for `model`.
    pub fn new(model: &Gpt<B>, config: AdamWConfig) -> Self {
        Self::for_tensors(model.backend(), &model.layout().tensors, config)
    }

    /// Fresh state for a flat parameter buffer laid out as `tensors` (any model kind, e.g.
    /// [`crate::seq2seq::Seq2seq`]).
    pub fn for_tensors(dev: &B, tensors: &[TensorInfo], config: AdamWConfig) -> Self {
        let n = tensors.iter().map(|t| t.len).sum();
        AdamW {
            config,
            m: dev.alloc(n),
            v: dev.alloc(n),
            step: 0,
            segments: segments(tensors.iter().map(|t| (t.range(), t.decays()))),
        }
    }

    /// Decays every tensor (biases and LayerNorm too), as `torch.optim.AdamW(
    /// model.parameters())` does, instead of only those with ≥ 2 dims.
    pub fn decay_every_tensor(&mut self) {
        for segment in &mut self.segments {
            segment.1 = true;
        }
    }

    /// One `optimizer.step()` with learning rate `lr` using the model's current gradients.
    pub fn step(&mut self, model: &mut Gpt<B>, lr: f32) -> Result<()> {
        let dev = &model.dev;
        dev.weights_changed();
        self.step_flat(dev, &mut model.params, &model.grads, lr)
    }

    /// [`AdamW::step`] on flat `params` and `grads` in the layout this state was made for.
    pub fn step_flat(
        &mut self,
        dev: &B,
        params: &mut B::Buf,
        grads: &B::Buf,
        lr: f32,
    ) -> Result<()> {
        let n = B::len(params);
        if B::len(&self.m) != n || B::len(&self.v) != n || B::len(grads) != n {
            return Err(Error::Optimizer(format!(
                "state has {} values, model has {n} parameters",
                B::len(&self.m)
            )));
        }
        self.step += 1;
        let c = self.config;
        // Scalars as torch computes them (Python floats, i.e. f64), then used in f32.
        let t = self.step as i32;
        let bc1 = 1.0 - (c.beta1 as f64).powi(t);
        let bc2 = 1.0 - (c.beta2 as f64).powi(t);
        let s = AdamWStep {
            lr,
            weight_decay: c.weight_decay,
            beta1: c.beta1,
            beta2: c.beta2,
            eps: c.eps,
            step_size: (lr as f64 / bc1) as f32,
            bc2_sqrt: bc2.sqrt() as f32,
        };
        let (p, g) = (B::dst(params, 0..n), B::src(grads, 0..n));
        let (m, v) = (B::dst(&mut self.m, 0..n), B::dst(&mut self.v, 0..n));
        let segments = &self.segments;
        B::enter(|| dev.adamw(p, g, m, v, segments, s));
        Ok(())
    }

    /// `(tensor name, state key, values)` for the moments (host copies): keys `exp_avg` and
    /// `exp_avg_sq`.
    pub fn named_state<'a>(
        &'a self,
        model: &'a Gpt<B>,
    ) -> impl Iterator<Item = (String, &'a [usize], Vec<f32>)> + 'a {
        let dev = model.backend();
        let (m, v) = (dev.host(&self.m), dev.host(&self.v));
        model.layout().tensors.iter().flat_map(move |t| {
            [
                (
                    format!("exp_avg.{}", t.name),
                    &t.shape[..],
                    m[t.range()].to_vec(),
                ),
                (
                    format!("exp_avg_sq.{}", t.name),
                    &t.shape[..],
                    v[t.range()].to_vec(),
                ),
            ]
        })
    }
}

impl<B: Backend> std::fmt::Debug for AdamW<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdamW")
            .field("config", &self.config)
            .field("step", &self.step)
            .finish_non_exhaustive()
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

    #[test]
    fn decay_every_tensor_also_decays_layernorm_weights() {
        let c = AdamWConfig {
            weight_decay: 0.5,
            ..AdamWConfig::default()
        };
        let mut m = Gpt::new(ModelConfig::preset("tiny").unwrap(), 1).unwrap();
        let mut opt = AdamW::new(&m, c);
        opt.decay_every_tensor();
        opt.step(&mut m, 0.1).unwrap();
        // zero gradients: only the decay moves a weight, 1 → 1 - lr·wd
        let ln = m.param("transformer.ln_f.weight").unwrap()[0];
        assert!((ln - 0.95).abs() < 1e-6, "{ln}");
    }
}
