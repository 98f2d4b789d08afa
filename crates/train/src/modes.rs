//! The seeds' workflow settings parsed into enums, and the checks of settings that
//! contradict each other (issue 14): each error names the settings involved and what to do.

use crate::config::TrainConfig;
use crate::{Result, TrainError};

/// Which tensors AdamW's weight decay touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecayScope {
    /// Tensors with ≥ 2 dims (nanoGPT's optimizer groups).
    Matrices,
    /// Every parameter (`torch.optim.AdamW(model.parameters())`).
    All,
}

/// The learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LrSchedule {
    /// Warmup then cosine decay (nanoGPT); flat when `decay_lr` is false.
    Cosine,
    /// `learning_rate` at every step.
    Constant,
    /// torch's `ReduceLROnPlateau` stepped with each evaluation's val loss.
    Plateau,
}

/// How evaluation batches are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalMode {
    /// The same `eval_iters` random batches every evaluation (comparable curves).
    Fixed,
    /// `eval_iters` fresh random batches every evaluation (JaneLM's `estimate_loss`).
    Random,
    /// The whole val split in consecutive windows, every token scored once.
    Full,
}

/// How the validation split is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValSplitMode {
    /// The last `val_fraction` of the token stream.
    Tail,
    /// The last `val_fraction` of the source files (at least one).
    Files,
    /// No validation split.
    None,
}

fn parse<T: Copy>(key: &str, value: &str, options: &[(&str, T)]) -> Result<T> {
    options
        .iter()
        .find(|(name, _)| *name == value)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            TrainError::Config(format!(
                "{key}: '{value}' is not one of {}",
                names.join(", ")
            ))
        })
}

impl TrainConfig {
    /// The parsed `weight_decay_scope`.
    pub fn decay_scope(&self) -> Result<DecayScope> {
        let opts = [("matrices", DecayScope::Matrices), ("all", DecayScope::All)];
        parse("weight_decay_scope", &self.weight_decay_scope, &opts)
    }

    /// The parsed `lr_schedule`.
    pub fn schedule(&self) -> Result<LrSchedule> {
        let opts = [
            ("cosine", LrSchedule::Cosine),
            ("constant", LrSchedule::Constant),
            ("plateau", LrSchedule::Plateau),
        ];
        parse("lr_schedule", &self.lr_schedule, &opts)
    }

    /// The parsed `eval_mode`.
    pub fn eval_mode(&self) -> Result<EvalMode> {
        let opts = [
            ("fixed", EvalMode::Fixed),
            ("random", EvalMode::Random),
            ("full", EvalMode::Full),
        ];
        parse("eval_mode", &self.eval_mode, &opts)
    }

    /// The parsed `val_split`.
    pub fn val_split_mode(&self) -> Result<ValSplitMode> {
        let opts = [
            ("tail", ValSplitMode::Tail),
            ("files", ValSplitMode::Files),
            ("none", ValSplitMode::None),
        ];
        parse("val_split", &self.val_split, &opts)
    }

    /// True when the run has a validation split.
    pub fn has_validation(&self) -> bool {
        self.val_split != "none"
    }
}

/// Checks the workflow settings' values and the combinations that contradict each other.
pub fn validate(cfg: &TrainConfig) -> Result<()> {
    let bad = |why: String| Err(TrainError::Config(why));
    let samplings = ["random", "sequential", "stride1", "per-document"];
    if !samplings.contains(&cfg.sampling.as_str()) {
        return bad(format!(
            "sampling: '{}' is not one of {}",
            cfg.sampling,
            samplings.join(", ")
        ));
    }
    cfg.decay_scope()?;
    let schedule = cfg.schedule()?;
    cfg.eval_mode()?;
    let split = cfg.val_split_mode()?;
    if cfg.adam_eps.is_nan() || cfg.adam_eps <= 0.0 {
        return bad(format!("adam_eps: must be positive, got {}", cfg.adam_eps));
    }
    let f = cfg.plateau_factor;
    if f.is_nan() || f <= 0.0 || f >= 1.0 {
        return bad(format!(
            "plateau_factor: must be between 0 and 1 (exclusive), got {}",
            cfg.plateau_factor
        ));
    }
    if cfg.stop_above_best.is_some_and(|t| t.is_nan() || t < 0.0) {
        return bad("stop_above_best: must be 0 or more".into());
    }
    if cfg.ckpt_every_epochs == Some(0) {
        return bad("ckpt_every_epochs: must be at least 1".into());
    }
    if cfg.sampling == "stride1" && cfg.max_epochs.is_none() {
        return bad(
            "sampling = stride1 runs by epochs (windows at every offset, each once per epoch): \
             set max_epochs (max_iters alone does not say when an epoch ends)"
                .into(),
        );
    }
    if split == ValSplitMode::None {
        let needs_val = [
            ("patience", cfg.patience.is_some()),
            ("stop_above_best", cfg.stop_above_best.is_some()),
            ("lr_schedule = plateau", schedule == LrSchedule::Plateau),
        ];
        if let Some((name, _)) = needs_val.iter().find(|(_, set)| *set) {
            return bad(format!(
                "val_split = none contradicts {name}: there is no validation loss to watch; \
                 drop {name} or choose val_split = tail or files"
            ));
        }
    }
    Ok(())
}
