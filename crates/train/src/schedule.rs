//! Learning-rate schedule: linear warmup, then cosine decay to `min_lr` at `decay_iters`,
//! then constant — nanoGPT's `get_lr`; and torch's `ReduceLROnPlateau` ([`plateau_step`]).

use lmforge_checkpoint::PlateauState;

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

/// torch's `ReduceLROnPlateau(mode="min", factor, patience)` with its other defaults
/// (`threshold = 1e-4` relative, `cooldown = 0`, `min_lr = 0`, `eps = 1e-8`), stepped with
/// the val loss of every evaluation. Returns true when the rate was reduced.
///
/// An evaluation improves when `val < best·(1 − 1e-4)`; after more than `patience`
/// evaluations without improvement the rate is multiplied by `factor` and the count restarts.
pub fn plateau_step(state: &mut PlateauState, val_loss: f32, factor: f32, patience: usize) -> bool {
    const THRESHOLD: f32 = 1e-4;
    const EPS: f32 = 1e-8;
    let improved = state.best.is_none_or(|b| val_loss < b * (1.0 - THRESHOLD));
    if improved {
        state.best = Some(val_loss);
        state.bad_evals = 0;
    } else {
        state.bad_evals += 1;
    }
    if state.bad_evals <= patience {
        return false;
    }
    state.bad_evals = 0;
    let reduced = (state.lr * factor).max(0.0);
    if state.lr - reduced > EPS {
        state.lr = reduced;
        return true;
    }
    false
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

    #[test]
    fn plateau_reduces_after_patience_bad_evals_like_torch() {
        // torch: ReduceLROnPlateau(opt, factor=0.5, patience=2) stepped with these losses
        // gives lrs 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25 (improvement needs < best·(1-1e-4)).
        let mut s = PlateauState {
            lr: 1.0,
            best: None,
            bad_evals: 0,
        };
        let losses = [3.0, 2.0, 2.0, 1.9999, 2.5, 1.0, 1.0, 1.0, 1.0];
        let lrs: Vec<f32> = losses
            .iter()
            .map(|&l| {
                plateau_step(&mut s, l, 0.5, 2);
                s.lr
            })
            .collect();
        assert_eq!(lrs, [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25]);
        assert_eq!(s.best, Some(1.0));
    }
}
