//! Learning-rate schedule: linear warmup, then cosine decay to `min_lr` at `decay_iters`,
//! then constant — nanoGPT's `get_lr`.

/// The learning rate for optimizer step `it` (0-based).
pub fn lr_at(
    it: usize,
    lr: f32,
    min_lr: f32,
    warmup: usize,
    decay_iters: usize,
    decay: bool,
) -> f32 {
    if !decay {
        return lr;
    }
    if it < warmup {
        return lr * (it + 1) as f32 / (warmup + 1) as f32;
    }
    if it > decay_iters {
        return min_lr;
    }
    let span = decay_iters.saturating_sub(warmup).max(1) as f32;
    let ratio = (it - warmup) as f32 / span;
    let coeff = 0.5 * (1.0 + (std::f32::consts::PI * ratio).cos());
    min_lr + coeff * (lr - min_lr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_then_floor() {
        let f = |it| lr_at(it, 1e-3, 1e-4, 100, 2000, true);
        assert!((f(0) - 1e-3 / 101.0).abs() < 1e-9);
        assert!((f(99) - 1e-3 * 100.0 / 101.0).abs() < 1e-9);
        assert!((f(100) - 1e-3).abs() < 1e-9);
        assert!(
            (f(1050) - 5.5e-4).abs() < 1e-6,
            "midpoint is the mean of lr and min_lr"
        );
        assert!((f(2000) - 1e-4).abs() < 1e-9);
        assert_eq!(f(5000), 1e-4);
        assert!((1..2000).all(|i| f(i) <= f(i - 1) || i <= 100));
        assert_eq!(lr_at(500, 1e-3, 1e-4, 100, 2000, false), 1e-3);
    }
}
