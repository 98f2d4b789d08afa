//! Structure-aware mutations for the text formats: parse the JSON or TOML, change one value
//! (huge, negative, fractional, NaN/inf, wrong type, deleted, duplicated), write it back.
//! Inputs that no longer parse fall back to a textual edit of a number, so invalid files
//! keep getting mutated too.

use fastrand::Rng;
use serde_json::Value as Json;
use toml::Value as Toml;

/// Numbers that break size arithmetic, as they would be written in a file.
const NUMBER_TEXTS: [&str; 16] = [
    "0",
    "-1",
    "1",
    "65536",
    "4294967295",
    "4294967296",
    "1152921504606846976",
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "1e308",
    "1e999",
    "0.5",
    "NaN",
    "-0",
];

/// JSON values to drop in place of any node.
fn interesting_json(rng: &mut Rng, old: &Json) -> Json {
    match rng.u8(..14) {
        0 => Json::from(0),
        1 => Json::from(-1),
        2 => Json::from(1u64 << 60),
        3 => Json::from(u64::MAX),
        4 => Json::from(i64::MIN),
        5 => Json::from(1u64 << 32),
        6 => Json::from(1e308),
        7 => Json::from(0.5),
        8 => Json::from(""),
        9 => Json::from("x".repeat(1 + rng.usize(..2000))),
        10 => Json::Null,
        11 => Json::Array(vec![]),
        12 => Json::Array(vec![old.clone(); 1 + rng.usize(..8)]),
        _ => Json::Object(Default::default()),
    }
}

/// Paths (object keys / array indices) to every node, root first.
fn json_paths(v: &Json, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(prefix.clone());
    match v {
        Json::Object(m) => {
            for (k, child) in m {
                prefix.push(Step::Key(k.clone()));
                json_paths(child, prefix, out);
                prefix.pop();
            }
        }
        Json::Array(a) => {
            // Big arrays (vocabularies): a sample of elements is enough.
            for i in (0..a.len()).step_by((a.len() / 64).max(1)) {
                prefix.push(Step::Index(i));
                json_paths(&a[i], prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn json_at<'a>(v: &'a mut Json, path: &[Step]) -> Option<&'a mut Json> {
    path.iter().try_fold(v, |node, step| match step {
        Step::Key(k) => node.get_mut(k.as_str()),
        Step::Index(i) => node.get_mut(*i),
    })
}

/// One structural JSON mutation; `None` when `text` is not JSON.
fn mutate_json(rng: &mut Rng, text: &[u8]) -> Option<Vec<u8>> {
    let mut root: Json = serde_json::from_slice(text).ok()?;
    let mut paths = Vec::new();
    json_paths(&root, &mut Vec::new(), &mut paths);
    let path = paths[rng.usize(..paths.len())].clone();
    let op = rng.u8(..4);
    if op == 0 && !path.is_empty() {
        // Delete the node from its parent.
        let (last, parent_path) = path.split_last()?;
        match (json_at(&mut root, parent_path)?, last) {
            (Json::Object(m), Step::Key(k)) => {
                m.remove(k);
            }
            (Json::Array(a), Step::Index(i)) if *i < a.len() => {
                a.remove(*i);
            }
            _ => {}
        }
    } else if op == 1 {
        // Duplicate array elements / rename an object key.
        match json_at(&mut root, &path)? {
            Json::Array(a) if !a.is_empty() => {
                let e = a[rng.usize(..a.len())].clone();
                let at = rng.usize(..=a.len());
                a.insert(at, e);
            }
            Json::Object(m) if !m.is_empty() => {
                let k = m.keys().nth(rng.usize(..m.len()))?.clone();
                let v = m.remove(&k)?;
                m.insert(format!("{k}_"), v);
            }
            _ => {}
        }
    } else {
        let node = json_at(&mut root, &path)?;
        *node = interesting_json(rng, node);
    }
    if rng.bool() {
        serde_json::to_vec_pretty(&root).ok()
    } else {
        serde_json::to_vec(&root).ok()
    }
}

/// TOML values to drop in place of a setting.
fn interesting_toml(rng: &mut Rng) -> Toml {
    match rng.u8(..14) {
        0 => Toml::Integer(0),
        1 => Toml::Integer(-1),
        2 => Toml::Integer(1 << 60),
        3 => Toml::Integer(i64::MAX),
        4 => Toml::Integer(i64::MIN),
        5 => Toml::Integer(1 << 32),
        6 => Toml::Float(f64::NAN),
        7 => Toml::Float(f64::INFINITY),
        8 => Toml::Float(-1e308),
        9 => Toml::Float(0.5),
        10 => Toml::String(String::new()),
        11 => Toml::String("x".repeat(1 + rng.usize(..2000))),
        12 => Toml::Boolean(true),
        _ => Toml::Array(vec![]),
    }
}

/// One structural TOML mutation on a top-level key; `None` when `text` is not TOML.
fn mutate_toml(rng: &mut Rng, text: &[u8]) -> Option<Vec<u8>> {
    let mut table: toml::Table = std::str::from_utf8(text).ok()?.parse().ok()?;
    let key = match table.len() {
        0 => "n_layer".to_string(),
        n => table.keys().nth(rng.usize(..n))?.clone(),
    };
    match rng.u8(..6) {
        0 => {
            table.remove(&key);
        }
        1 => {
            // Settings the seed leaves at their defaults.
            const KEYS: [&str; 8] = [
                "n_embd",
                "n_head",
                "block_size",
                "vocab_size",
                "mlp_ratio",
                "max_epochs",
                "threads",
                "tokenizer_vocab_size",
            ];
            table.insert(KEYS[rng.usize(..KEYS.len())].into(), interesting_toml(rng));
        }
        _ => {
            table.insert(key, interesting_toml(rng));
        }
    }
    toml::to_string(&table).ok().map(String::into_bytes)
}

/// Replaces one number written in `text` (digits with sign, point, exponent) by a
/// troublesome one; `false` when the text has no number.
fn replace_number_text(rng: &mut Rng, data: &mut Vec<u8>) -> bool {
    let is_num = |b: u8| b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'e' | b'E' | b'+');
    let starts: Vec<usize> = (0..data.len())
        .filter(|&i| data[i].is_ascii_digit() && (i == 0 || !is_num(data[i - 1])))
        .collect();
    if starts.is_empty() {
        return false;
    }
    let start = starts[rng.usize(..starts.len())];
    let end = (start..data.len())
        .find(|&i| !is_num(data[i]))
        .unwrap_or(data.len());
    let text = NUMBER_TEXTS[rng.usize(..NUMBER_TEXTS.len())];
    data.splice(start..end, text.bytes());
    true
}

/// Which structure a target's files have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Binary (safetensors, SentencePiece protobuf, token files): byte mutations only.
    Binary,
    /// JSON text.
    Json,
    /// TOML text.
    Toml,
}

/// Applies one structure-aware mutation for `format`; `false` when none applied (binary
/// formats, or text with nothing to change), so the caller falls back to a byte mutation.
pub fn mutate_structured(rng: &mut Rng, format: Format, data: &mut Vec<u8>) -> bool {
    let structural = match format {
        Format::Binary => return false,
        Format::Json if rng.bool() => mutate_json(rng, data),
        Format::Toml if rng.bool() => mutate_toml(rng, data),
        _ => None,
    };
    match structural {
        Some(new) => {
            *data = new;
            true
        }
        None => replace_number_text(rng, data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_mutations_keep_parsing_and_change_the_value() {
        let seed = br#"{"vocab_size": 88, "chars": ["a", "b"], "nested": {"x": 1}}"#;
        let mut changed = 0;
        for s in 0..200 {
            let mut rng = Rng::with_seed(s);
            if let Some(out) = mutate_json(&mut rng, seed) {
                let v: Json = serde_json::from_slice(&out).unwrap();
                let orig: Json = serde_json::from_slice(seed).unwrap();
                changed += usize::from(v != orig);
            }
        }
        assert!(
            changed > 150,
            "only {changed} of 200 mutations changed the JSON"
        );
    }

    #[test]
    fn toml_and_text_mutations_change_the_file() {
        let seed = b"n_layer = 4\nlearning_rate = 1e-3\nname = \"baby\"\n".to_vec();
        let mut rng = Rng::with_seed(3);
        let mut differed = 0;
        for _ in 0..100 {
            let mut d = seed.clone();
            assert!(mutate_structured(&mut rng, Format::Toml, &mut d));
            differed += usize::from(d != seed);
        }
        assert!(differed > 80, "{differed}");
        let mut d = b"no digits here".to_vec();
        assert!(!replace_number_text(&mut rng, &mut d));
    }
}
