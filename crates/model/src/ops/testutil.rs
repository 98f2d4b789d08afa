//! Finite-difference gradient checking shared by the op tests.

use crate::rng::Rng;

/// `n` values ~ N(0, scale²), deterministic in `seed`.
pub fn randn(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| (r.normal() as f32) * scale).collect()
}

/// `Σ out·w` in f64: a scalar objective whose gradient w.r.t. `out` is `w`.
pub fn weighted_sum(out: &[f32], w: &[f32]) -> f64 {
    out.iter().zip(w).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// Compare `analytic` with central differences of `f` around `x` on (up to) `max_checks`
/// coordinates spread over the tensor; panics naming the tensor and index on mismatch.
pub fn check_grad(
    name: &str,
    x: &[f32],
    analytic: &[f32],
    mut f: impl FnMut(&[f32]) -> f64,
    eps: f32,
    tol: f64,
) {
    assert_eq!(x.len(), analytic.len(), "{name}: gradient length");
    let mut xp = x.to_vec();
    let step = (x.len() / 64).max(1);
    let mut checked = 0;
    for i in (0..x.len()).step_by(step) {
        let orig = xp[i];
        xp[i] = orig + eps;
        let fp = f(&xp);
        xp[i] = orig - eps;
        let fm = f(&xp);
        xp[i] = orig;
        let fd = (fp - fm) / (2.0 * eps as f64);
        let an = analytic[i] as f64;
        assert!(
            (fd - an).abs() <= tol * (1.0 + fd.abs().max(an.abs())),
            "{name}[{i}]: finite difference {fd} vs analytic {an}"
        );
        checked += 1;
    }
    assert!(checked > 0);
}
