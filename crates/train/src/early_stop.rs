//! Early stopping: stop when the validation loss has not improved by at least `min_delta`
//! for `patience` evaluations in a row, or (JaneLM's rule) as soon as it exceeds the best so
//! far by more than `stop_above_best`.

use lmforge_checkpoint::EarlyStopState;
use serde::{Deserialize, Serialize};

/// Early-stopping state (saved in `state.json` so a resumed run keeps counting).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// evaluations without improvement before stopping (None: never stop)
    pub patience: Option<usize>,
    /// how much lower a val loss must be to count as better
    pub min_delta: f32,
    /// the best val loss so far
    pub best: Option<f32>,
    /// Evaluations since the last improvement.
    pub bad_evals: usize,
    /// Stop when val loss exceeds the best by more than this (a setting, not saved state).
    #[serde(default)]
    pub stop_above_best: Option<f32>,
}

impl EarlyStopping {
    /// a fresh tracker
    pub fn new(patience: Option<usize>, min_delta: f32) -> Self {
        EarlyStopping {
            patience,
            min_delta,
            best: None,
            bad_evals: 0,
            stop_above_best: None,
        }
    }

    /// Records an evaluation; returns (improved, stop).
    pub fn update(&mut self, val_loss: f32) -> (bool, bool) {
        let improved = match self.best {
            None => true,
            Some(b) => val_loss < b - self.min_delta,
        };
        if improved {
            self.best = Some(val_loss);
            self.bad_evals = 0;
        } else {
            self.bad_evals += 1;
        }
        let above = |tol: f32| self.best.is_some_and(|b| val_loss > b + tol);
        let stop = self.patience.is_some_and(|p| self.bad_evals >= p)
            || self.stop_above_best.is_some_and(above);
        (improved, stop)
    }
}

impl From<EarlyStopState> for EarlyStopping {
    fn from(s: EarlyStopState) -> Self {
        EarlyStopping {
            patience: s.patience,
            min_delta: s.min_delta,
            best: s.best,
            bad_evals: s.bad_evals,
            stop_above_best: None,
        }
    }
}

impl From<&EarlyStopping> for EarlyStopState {
    fn from(e: &EarlyStopping) -> Self {
        EarlyStopState {
            patience: e.patience,
            min_delta: e.min_delta,
            best: e.best,
            bad_evals: e.bad_evals,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_after_patience_evals_without_improvement() {
        let mut es = EarlyStopping::new(Some(3), 0.01);
        let curve = [2.0, 1.5, 1.2, 1.195, 1.21, 1.19, 1.25];
        let stops: Vec<bool> = curve.iter().map(|&v| es.update(v).1).collect();
        // 1.195 and 1.19 improve by < min_delta over 1.2: three bad evals end at index 5.
        assert_eq!(stops, [false, false, false, false, false, true, true]);
        assert_eq!(es.best, Some(1.2));
    }

    #[test]
    fn never_stops_without_patience() {
        let mut es = EarlyStopping::new(None, 0.0);
        assert!((0..100).all(|i| !es.update(i as f32).1));
    }

    #[test]
    fn stops_when_val_exceeds_the_best_by_more_than_the_tolerance() {
        let mut es = EarlyStopping::new(None, 0.0);
        es.stop_above_best = Some(0.075);
        let curve = [2.0, 1.5, 1.57, 1.574, 1.576, 1.4];
        let stops: Vec<bool> = curve.iter().map(|&v| es.update(v).1).collect();
        // 1.57 and 1.574 are within 0.075 of the best 1.5; 1.576 is above it by more.
        assert_eq!(stops, [false, false, false, false, true, false]);
    }
}
