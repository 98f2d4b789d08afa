//! Choosing the next token from logits: greedy (temperature 0), temperature, top-k and
//! top-p (nucleus), from a seeded generator so a seed always gives the same text.

use crate::{GenerateError, Result};

/// How to pick tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingConfig {
    /// 0 = greedy; otherwise logits are divided by it.
    pub temperature: f32,
    /// Keep only the k most likely tokens.
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability reaches p, in (0, 1].
    pub top_p: Option<f32>,
    /// RNG seed: the same seed gives the same text
    pub seed: u64,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            temperature: 0.8,
            top_k: Some(200),
            top_p: None,
            seed: 1337,
        }
    }
}

impl SamplingConfig {
    /// Checks the ranges, naming the flag.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(GenerateError::InvalidOption(format!(
                "--temperature must be ≥ 0 (got {})",
                self.temperature
            )));
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(GenerateError::InvalidOption(format!(
                    "--top-p must be in (0, 1] (got {p})"
                )));
            }
        }
        if self.top_k == Some(0) {
            return Err(GenerateError::InvalidOption(
                "--top-k must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// A seeded sampler with reusable scratch space.
pub struct Sampler {
    /// the settings it samples with
    pub config: SamplingConfig,
    state: u64,
    /// (probability, id) scratch.
    cand: Vec<(f32, u32)>,
}

impl Sampler {
    /// a sampler for `config` (refuses invalid settings)
    pub fn new(config: SamplingConfig) -> Result<Sampler> {
        config.validate()?;
        Ok(Sampler {
            config,
            state: config.seed ^ 0x9E37_79B9_7F4A_7C15,
            cand: Vec::new(),
        })
    }

    /// Uniform in [0, 1) (SplitMix64).
    fn uniform(&mut self) -> f32 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Picks the next token id from `logits` (`[V]`).
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let cfg = self.config;
        if cfg.temperature == 0.0 || cfg.top_k == Some(1) {
            return argmax(logits);
        }
        self.cand.clear();
        self.cand.extend(
            logits
                .iter()
                .enumerate()
                .map(|(i, &l)| (l / cfg.temperature, i as u32)),
        );
        // Most likely first (ties by id, for determinism).
        let by_logit = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if let Some(k) = cfg.top_k {
            if k < self.cand.len() {
                self.cand.select_nth_unstable_by(k - 1, by_logit);
                self.cand.truncate(k);
            }
        }
        self.cand.sort_unstable_by(by_logit);
        // Softmax over the candidates.
        let max = self.cand[0].0;
        let mut sum = 0.0f32;
        for c in &mut self.cand {
            c.0 = (c.0 - max).exp();
            sum += c.0;
        }
        for c in &mut self.cand {
            c.0 /= sum;
        }
        if let Some(p) = cfg.top_p {
            let mut cum = 0.0;
            let mut keep = self.cand.len();
            for (i, c) in self.cand.iter().enumerate() {
                cum += c.0;
                if cum >= p {
                    keep = i + 1;
                    break;
                }
            }
            self.cand.truncate(keep);
            let total: f32 = self.cand.iter().map(|c| c.0).sum();
            for c in &mut self.cand {
                c.0 /= total;
            }
        }
        let mut r = self.uniform();
        for c in &self.cand {
            if r < c.0 {
                return c.1;
            }
            r -= c.0;
        }
        self.cand.last().map(|c| c.1).unwrap_or(0)
    }

    /// The candidate set (id, probability) left after top-k / top-p by the last [`Sampler::sample`].
    pub fn last_candidates(&self) -> impl Iterator<Item = (u32, f32)> + '_ {
        self.cand.iter().map(|&(p, id)| (id, p))
    }
}

/// Index of the largest logit (first on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(temperature: f32, top_k: Option<usize>, top_p: Option<f32>, seed: u64) -> Sampler {
        Sampler::new(SamplingConfig {
            temperature,
            top_k,
            top_p,
            seed,
        })
        .unwrap()
    }

    #[test]
    fn top_k_one_equals_greedy() {
        let logits = [0.1, 2.0, -1.0, 1.9, 0.0];
        let mut s = sampler(1.0, Some(1), None, 7);
        for _ in 0..20 {
            assert_eq!(s.sample(&logits), argmax(&logits));
        }
        let mut g = sampler(0.0, None, None, 7);
        assert_eq!(g.sample(&logits), 1);
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        // probabilities ≈ [0.5, 0.3, 0.15, 0.05] for these logits
        let probs: [f32; 4] = [0.5, 0.3, 0.15, 0.05];
        let logits: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
        let mut s = sampler(1.0, None, Some(0.75), 3);
        for _ in 0..200 {
            let id = s.sample(&logits);
            assert!(
                id <= 1,
                "0.5 + 0.3 ≥ 0.75, so only ids 0 and 1 may be drawn, got {id}"
            );
            let kept: Vec<u32> = s.last_candidates().map(|(id, _)| id).collect();
            assert_eq!(kept, [0, 1]);
        }
        let mut s = sampler(1.0, None, Some(0.5), 3);
        s.sample(&logits);
        assert_eq!(
            s.last_candidates().count(),
            1,
            "p = 0.5 is reached by the first token alone"
        );
    }

    #[test]
    fn same_seed_same_draws_and_temperature_sharpens() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let draw = |seed, t| {
            let mut s = sampler(t, None, None, seed);
            (0..100).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(5, 1.0), draw(5, 1.0));
        assert_ne!(draw(5, 1.0), draw(6, 1.0));
        let best = argmax(&logits);
        let cold = draw(5, 0.05).iter().filter(|&&i| i == best).count();
        let hot = draw(5, 2.0).iter().filter(|&&i| i == best).count();
        assert!(cold > hot);
    }

    #[test]
    fn rejects_bad_ranges() {
        for (t, p) in [(-1.0, None), (1.0, Some(0.0)), (1.0, Some(1.5))] {
            assert!(Sampler::new(SamplingConfig {
                temperature: t,
                top_k: None,
                top_p: p,
                seed: 0
            })
            .is_err());
        }
    }
}
