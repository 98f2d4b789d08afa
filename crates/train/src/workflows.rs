//! Workflow presets: `--preset janelm` sets every setting of one of the four PyTorch
//! projects lmforge replaces (issue 14), so their run is one command. A preset is a layer of
//! settings between the built-in defaults and the config file / command line, so any of its
//! values can still be overridden (`--preset janelm --max-iters 500`). The saved
//! `config.toml` keeps `preset = "janelm"` and every resolved value.
//!
//! Each preset's values, and where a seed does not say and lmforge had to choose, are
//! explained in `docs/recipes/<preset>.md`.

/// A workflow preset: its name, what it reproduces, and its settings as TOML.
#[derive(Debug, Clone, Copy)]
pub struct Workflow {
    /// The `--preset` name.
    pub name: &'static str,
    /// One line for `lmforge train --help`.
    pub summary: &'static str,
    /// The settings it sets (TOML, keys of [`crate::TrainConfig`]).
    pub settings: &'static str,
}

/// The four seeds' workflows.
pub const WORKFLOWS: &[Workflow] = &[
    Workflow {
        name: "lm-arabic",
        summary: "the LM seed: o200k_base, block 256, batch 8, AdamW 1e-4 (wd 0.01 on all), \
                  clip 1.0, 5,000 steps, no validation, one random window per file per row",
        settings: r#"
tokenizer = "tiktoken:o200k_base"
n_layer = 6
n_head = 6
n_embd = 384
block_size = 256
dropout = 0.0
batch_size = 8
max_iters = 5000
learning_rate = 1e-4
lr_schedule = "constant"
warmup_iters = 0
weight_decay = 0.01
weight_decay_scope = "all"
beta1 = 0.9
beta2 = 0.999
adam_eps = 1e-8
grad_clip = 1.0
val_split = "none"
sampling = "per-document"
eval_interval = 500
eval_iters = 20
"#,
    },
    Workflow {
        name: "llm-from-scratch",
        summary: "the LLM From Scratch seed: word tokenizer (lowercased, no whitespace), d_model \
                  512, 8 heads, 6 layers, d_ff 2048, seq 512, dropout 0.1, sinusoidal positions, \
                  batch 32, lr 3e-4, 10 epochs, full validation each epoch, epoch-N every 5",
        settings: r#"
tokenizer = "word"
word_lowercase = true
word_keep_whitespace = false
n_layer = 6
n_head = 8
n_embd = 512
mlp_ratio = 4
block_size = 512
dropout = 0.1
pos_encoding = "sinusoidal"
tie_embeddings = false
batch_size = 32
max_epochs = 10.0
learning_rate = 3e-4
lr_schedule = "constant"
warmup_iters = 0
weight_decay = 0.01
weight_decay_scope = "all"
beta1 = 0.9
beta2 = 0.999
grad_clip = 1.0
sampling = "sequential"
val_split = "files"
eval_mode = "full"
eval_every_epoch = true
eval_interval = 1000000000
ckpt_every_epochs = 5
"#,
    },
    Workflow {
        name: "gpt-transformers",
        summary: "the GPT and Transformer Models seed: BPE, post-LN, ReLU, no q/k/v bias, \
                  sinusoidal + RoPE, embed 384, 6 layers, 6 heads, seq 256, dropout 0.2, untied, \
                  AdamW 1e-4 (0.9, 0.98, eps 1e-9), no schedule or clipping, stride-1 windows",
        settings: r#"
tokenizer = "bpe"
n_layer = 6
n_head = 6
n_embd = 384
mlp_ratio = 4
block_size = 256
dropout = 0.2
norm = "post"
activation = "relu"
qkv_bias = false
pos_encoding = "sinusoidal+rope"
tie_embeddings = false
batch_size = 64
max_epochs = 10.0
learning_rate = 1e-4
lr_schedule = "constant"
warmup_iters = 0
weight_decay = 0.01
weight_decay_scope = "all"
beta1 = 0.9
beta2 = 0.98
adam_eps = 1e-9
grad_clip = 0.0
sampling = "stride1"
eval_mode = "full"
eval_interval = 500
eval_every_epoch = true
ckpt_every_epochs = 5
"#,
    },
    Workflow {
        name: "janelm",
        summary: "JaneLM: 6 pre-LN blocks, 512 wide, 4 heads, context 96, dropout 0.4, GELU, \
                  learned positions, untied head with bias, AdamW 1e-4 (wd 0.01 on all), \
                  constant LR, no clipping, batch 32, 250 fresh batches every 250 steps, stop \
                  at best + 0.075, 15,000 steps",
        settings: r#"
tokenizer = "char"
n_layer = 6
n_head = 4
n_embd = 512
block_size = 96
dropout = 0.4
activation = "gelu"
pos_encoding = "learned"
norm = "pre"
qkv_bias = false
tie_embeddings = false
head_bias = true
batch_size = 32
max_iters = 15000
learning_rate = 1e-4
lr_schedule = "constant"
warmup_iters = 0
weight_decay = 0.01
weight_decay_scope = "all"
beta1 = 0.9
beta2 = 0.999
grad_clip = 0.0
eval_interval = 250
eval_iters = 250
eval_mode = "random"
stop_above_best = 0.075
sample_prompt = " "
"#,
    },
];

/// The workflow preset called `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Workflow> {
    WORKFLOWS.iter().find(|w| w.name == name)
}

/// The model preset a workflow's model starts from: every shape setting is in the
/// workflow, so this only supplies the rest (`baby`'s).
pub const MODEL_BASE: &str = "baby";

/// A workflow's settings as a table (its `preset` key set to its name).
pub fn table(w: &Workflow) -> toml::Table {
    // The texts are constants checked by a test; a parse failure would be a build bug.
    let mut t: toml::Table = w.settings.parse().unwrap_or_default();
    t.insert("preset".into(), toml::Value::String(w.name.into()));
    t
}

/// `lmforge train --help`'s list of workflow presets.
pub fn help() -> String {
    WORKFLOWS
        .iter()
        .map(|w| format!("  {:<18} {}", w.name, w.summary))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_and_names_only_real_settings() {
        let keys = crate::settings::all_keys();
        for w in WORKFLOWS {
            let t: toml::Table = w
                .settings
                .parse()
                .unwrap_or_else(|e| panic!("{}: {e}", w.name));
            for k in t.keys() {
                assert!(
                    keys.contains(&k.as_str()),
                    "{}: unknown setting {k}",
                    w.name
                );
            }
        }
    }
}
