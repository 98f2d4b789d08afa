//! A small deterministic RNG (SplitMix64) for initialisation, and a counter-based hash for
//! dropout masks (so masks need no storage and do not depend on thread scheduling).

/// SplitMix64 generator with Box–Muller normals.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
    spare: Option<f64>,
}

impl Rng {
    /// a generator seeded with `seed`
    pub fn new(seed: u64) -> Self {
        Rng {
            state: seed ^ 0x5EED_1F0E_u64.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            spare: None,
        }
    }

    /// the next 64 random bits
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.state)
    }

    /// Uniform in [0, 1) with 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal.
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let th = std::f64::consts::TAU * u2;
        self.spare = Some(r * th.sin());
        r * th.cos()
    }
}

/// The SplitMix64 finaliser: a good 64-bit mixing function.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_moments_and_determinism() {
        let mut a = Rng::new(7);
        let xs: Vec<f64> = (0..100_000).map(|_| a.normal()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.02,
            "{mean} {var}"
        );
        let mut b = Rng::new(7);
        assert_eq!(
            xs[..10],
            (0..10).map(|_| b.normal()).collect::<Vec<_>>()[..]
        );
        assert_ne!(Rng::new(8).next_u64(), Rng::new(7).next_u64());
    }
}
