//! Reading settings: the config file and `--key value` overrides into a [`TrainConfig`].
//!
//! Precedence: built-in defaults < `--config run.toml` < command-line overrides (dashes or
//! underscores). The list of keys, which are unset by default and how a command-line value
//! is typed all come from the [`TrainConfig`] type itself, so there is no list to keep in
//! step by hand.

use std::path::Path;

use crate::config::TrainConfig;
use crate::workflows;
use crate::{Result, TrainError};

impl TrainConfig {
    /// Builds a config: defaults, then `file` (if any), then `overrides` (`--key value`,
    /// `--key=value`, or a bare `--flag` meaning true). An empty `name` is filled from the
    /// data ([`TrainConfig::run_name`]).
    pub fn resolve(file: Option<&Path>, overrides: &[String]) -> Result<TrainConfig> {
        let mut table = match file {
            Some(p) => read_table(p)?,
            None => toml::Table::new(),
        };
        for (key, value) in parse_overrides(overrides)? {
            table.insert(key, value);
        }
        // a workflow preset sits between the defaults and the file / command line
        let workflow = table
            .get("preset")
            .and_then(|p| p.as_str())
            .and_then(workflows::find);
        if let Some(w) = workflow {
            let mut layered = workflows::table(w);
            layered.extend(table);
            table = layered;
        }
        let origin = file
            .map(|p| format!("{}: ", p.display()))
            .unwrap_or_default();
        let mut cfg = from_table(table).map_err(|e| TrainError::Config(format!("{origin}{e}")))?;
        cfg.name = cfg.run_name();
        cfg.validate()?;
        Ok(cfg)
    }

    /// Loads a resolved `config.toml` saved in a run folder.
    pub fn load(path: &Path) -> Result<TrainConfig> {
        Self::resolve(Some(path), &[])
    }
}

/// Every setting's key, in declaration order (from the type's serde description).
pub fn all_keys() -> &'static [&'static str] {
    serde_aux::serde_introspection::serde_introspect::<TrainConfig>()
}

/// Settings that are unset by default (absent from the default TOML).
pub fn optional_keys() -> Vec<&'static str> {
    let defaults = default_table();
    all_keys()
        .iter()
        .copied()
        .filter(|k| !defaults.contains_key(*k))
        .collect()
}

fn default_table() -> toml::Table {
    toml::Table::try_from(TrainConfig::default()).unwrap_or_default()
}

fn read_table(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| TrainError::io(path, format!("cannot read config: {e}")))?;
    text.parse::<toml::Table>().map_err(|e| {
        TrainError::Config(format!("{}: invalid TOML: {}", path.display(), e.message()))
    })
}

/// Deserialises a settings table; a type error names the setting it is about.
fn from_table(table: toml::Table) -> std::result::Result<TrainConfig, String> {
    let whole: std::result::Result<TrainConfig, _> = toml::Value::Table(table.clone()).try_into();
    whole.map_err(|e: toml::de::Error| {
        let culprit = table
            .iter()
            .find_map(|(k, v)| single_setting_error(k, v).map(|e| format!("{k}: {e}")));
        culprit.unwrap_or_else(|| e.message().replace('\n', " "))
    })
}

/// The error of deserialising `key = value` alone (defaults for the rest), if any.
fn single_setting_error(key: &str, value: &toml::Value) -> Option<String> {
    let mut one = toml::Table::new();
    one.insert(key.to_string(), value.clone());
    toml::Value::Table(one)
        .try_into::<TrainConfig>()
        .err()
        .map(|e| e.message().replace('\n', " "))
}

/// Turns `--max-iters 200 --n-layer=2 --log-scale` into TOML key/values.
pub fn parse_overrides(args: &[String]) -> Result<Vec<(String, toml::Value)>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(TrainError::Config(format!(
                "unexpected argument '{arg}': settings are given as --key value"
            )));
        };
        let (key, mut raw) = match flag.split_once('=') {
            Some((k, v)) => (k.to_string(), vec![v.to_string()]),
            None => (flag.to_string(), vec![]),
        };
        let key = match key.replace('-', "_").as_str() {
            "out" => "out_dir".to_string(),
            k => k.to_string(),
        };
        if !all_keys().contains(&key.as_str()) {
            return Err(TrainError::Config(format!(
                "unknown setting --{} (see `lmforge train --help` for the list)",
                key.replace('_', "-")
            )));
        }
        // Values: up to the next --flag; only `data` takes several.
        while let Some(v) = args.get(i + 1).filter(|n| !n.starts_with("--")) {
            if !raw.is_empty() && key != "data" {
                break;
            }
            raw.push(v.clone());
            i += 1;
        }
        out.push((key.clone(), typed_value(&key, raw)?));
        i += 1;
    }
    Ok(out)
}

/// The TOML value for a command-line setting: what the setting's type accepts — the text
/// read as a TOML literal (`3e-4`, `true`, `12`), else as a string (`--name 123`).
fn typed_value(key: &str, raw: Vec<String>) -> Result<toml::Value> {
    if key == "data" {
        return Ok(toml::Value::Array(
            raw.into_iter().map(toml::Value::String).collect(),
        ));
    }
    let Some(text) = raw.into_iter().next() else {
        return Ok(toml::Value::Boolean(true));
    };
    let literal = parse_literal(&text);
    let mut first_error = None;
    for candidate in literal
        .into_iter()
        .chain([toml::Value::String(text.clone())])
    {
        match single_setting_error(key, &candidate) {
            None => return Ok(candidate),
            Some(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(TrainError::Config(format!(
        "--{} {text}: {}",
        key.replace('_', "-"),
        first_error.unwrap_or_default()
    )))
}

fn parse_literal(raw: &str) -> Option<toml::Value> {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn defaults_file_then_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("run.toml");
        std::fs::write(
            &file,
            "max_iters = 500\nlearning_rate = 3e-4\nname = \"from-file\"\n",
        )
        .unwrap();
        let cfg = TrainConfig::resolve(
            Some(&file),
            &s(&[
                "--max-iters",
                "200",
                "--n-layer=2",
                "--log-scale",
                "--preset",
                "tiny",
                "--data",
                "a.txt",
                "b/*.txt",
                "--out",
                "runs/x",
            ]),
        )
        .unwrap();
        assert_eq!(cfg.data, ["a.txt", "b/*.txt"]);
        assert_eq!(cfg.out_dir, Some(PathBuf::from("runs/x")));
        assert_eq!(cfg.max_iters, 200, "command line beats the file");
        assert_eq!(cfg.learning_rate, 3e-4, "file beats defaults");
        assert_eq!(cfg.name, "from-file");
        assert_eq!(cfg.n_layer, Some(2));
        assert!(cfg.log_scale);
        assert_eq!(cfg.batch_size, 12, "defaults fill the rest");
        let m = cfg.model_config(70).unwrap();
        assert_eq!((m.n_layer, m.n_embd, m.vocab_size), (2, 16, 70));
        // Round trip through the saved form.
        let saved = dir.path().join("config.toml");
        std::fs::write(&saved, cfg.to_toml().unwrap()).unwrap();
        assert_eq!(TrainConfig::load(&saved).unwrap(), cfg);
    }

    #[test]
    fn bad_settings_name_the_field() {
        let err = |args: &[&str]| {
            TrainConfig::resolve(None, &s(args))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(&["--max-iterz", "3"]),
            "unknown setting --max-iterz (see `lmforge train --help` for the list)"
        );
        assert_eq!(
            err(&["--batch-size", "0"]),
            "batch_size: must be at least 1"
        );
        assert!(err(&["--pos-encoding", "alibi"]).contains("pos_encoding"));
        let e = err(&["--n-head", "5"]);
        assert!(e.contains("n_head") || e.contains("n_embd"), "{e}");
        let e = TrainConfig::resolve(None, &s(&["--vocab-size", "10"]))
            .unwrap()
            .model_config(65)
            .unwrap_err()
            .to_string();
        assert!(e.contains("smaller than the tokenizer"), "{e}");
    }

    #[test]
    fn a_non_numeric_value_names_the_setting() {
        let e = TrainConfig::resolve(None, &s(&["--learning-rate", "abc"]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--learning-rate abc: "), "{e}");
        assert!(e.contains("expected f32"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("run.toml");
        std::fs::write(&file, "max_iters = 10\nbeta2 = \"abc\"\n").unwrap();
        let e = TrainConfig::resolve(Some(&file), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("run.toml: beta2: invalid type"), "{e}");
    }

    #[test]
    fn strings_that_look_like_numbers_stay_strings() {
        let cfg =
            TrainConfig::resolve(None, &s(&["--name", "123", "--sample-prompt", "1.5"])).unwrap();
        assert_eq!(
            (cfg.name.as_str(), cfg.sample_prompt.as_str()),
            ("123", "1.5")
        );
    }

    #[test]
    fn key_lists_come_from_the_type() {
        let keys = all_keys();
        assert!(keys.contains(&"learning_rate") && keys.contains(&"init_from"));
        assert_eq!(keys.len(), default_table().len() + optional_keys().len());
        let optional = optional_keys();
        for k in ["out_dir", "n_layer", "patience", "init_from", "threads"] {
            assert!(optional.contains(&k), "{k} is unset by default");
        }
        assert!(!optional.contains(&"learning_rate"));
    }

    #[test]
    fn floats_are_printed_as_written() {
        let cfg = TrainConfig::resolve(None, &s(&["--learning-rate", "0.001", "--min-lr", "6e-5"]))
            .unwrap();
        let text = cfg.to_toml().unwrap();
        assert!(text.contains("learning_rate = 0.001\n"), "{text}");
        assert!(text.contains("beta2 = 0.99\n"), "{text}");
        assert!(
            text.contains("min_lr = 6e-5\n") || text.contains("min_lr = 0.00006\n"),
            "{text}"
        );
        // no f64 widening of an f32 (0.0010000000474974513); adam_eps = 1e-8 is exact
        assert!(text.contains("adam_eps = 0.00000001\n"), "{text}");
        assert!(!text.contains("00000004"), "{text}");
    }

    #[test]
    fn the_default_name_follows_the_data() {
        let name = |args: &[&str]| TrainConfig::resolve(None, &s(args)).unwrap().name;
        assert_eq!(name(&[]), "shakespeare-char");
        assert_eq!(
            name(&[
                "--data",
                "shards/arabic_*.txt",
                "--tokenizer",
                "tiktoken:o200k_base"
            ]),
            "arabic-o200k_base"
        );
        assert_eq!(name(&["--data-dir", "data/wiki103/"]), "wiki103");
        assert_eq!(name(&["--name", "mine", "--data", "x.txt"]), "mine");
    }
}
