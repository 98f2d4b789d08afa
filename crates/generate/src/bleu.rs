//! Corpus BLEU exactly as sacreBLEU 2.x computes it with its defaults (`BLEU()`:
//! tokenizer `13a`, `smooth_method="exp"`, case-sensitive, max n-gram order 4,
//! `effective_order=False`), so figures printed by `lmforge eval` are comparable with
//! published ones. No well-kept Rust crate does this (the `bleuscore` crate follows Hugging
//! Face's `evaluate`, whose smoothing and brevity penalty differ), so this is a line-by-line
//! port, checked against sacreBLEU's own figures on a committed fixture
//! (`tools/make_bleu_fixture.py`).
//!
//! The score is `BP · exp(¼ Σₙ log pₙ)` over corpus totals, with `pₙ = 100·correctₙ/totalₙ`,
//! a zero `correctₙ` replaced by `100 / (2ᵏ·totalₙ)` (k counting the zeros so far: the
//! NIST "exp" smoothing), `BP = exp(1 − ref_len/sys_len)` when the system is shorter, and 0
//! when nothing matches at all.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;

/// Highest n-gram order.
pub const MAX_ORDER: usize = 4;

/// A corpus BLEU score with its sufficient statistics (sacreBLEU's `BLEUScore`).
#[derive(Debug, Clone, PartialEq)]
pub struct Bleu {
    /// BLEU in 0..=100.
    pub score: f64,
    /// Matched n-grams of each order (clipped by the reference counts).
    pub correct: [u64; MAX_ORDER],
    /// Hypothesis n-grams of each order.
    pub total: [u64; MAX_ORDER],
    /// Smoothed n-gram precisions in percent.
    pub precisions: [f64; MAX_ORDER],
    /// Brevity penalty.
    pub bp: f64,
    /// Hypothesis tokens.
    pub sys_len: u64,
    /// Reference tokens (the closest reference's length per segment).
    pub ref_len: u64,
}

impl std::fmt::Display for Bleu {
    /// sacreBLEU's line: `BLEU = 12.34 45.6/23.4/12.3/6.7 (BP = 1.000 ratio = 1.020 hyp_len = 51 ref_len = 50)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.precisions;
        write!(
            f,
            "BLEU = {:.2} {:.1}/{:.1}/{:.1}/{:.1} (BP = {:.3} ratio = {:.3} hyp_len = {} ref_len = {})",
            self.score,
            p[0],
            p[1],
            p[2],
            p[3],
            self.bp,
            self.sys_len as f64 / (self.ref_len.max(1)) as f64,
            self.sys_len,
            self.ref_len
        )
    }
}

/// sacreBLEU's `13a` tokenizer (mteval-v13a): unescape a few XML entities, split off
/// punctuation, and periods/commas unless next to a digit, and dashes after a digit.
pub fn tokenize_13a(line: &str) -> String {
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let mut line = format!(" {line} ");
    for (re, repl) in rules() {
        line = re.replace_all(&line, *repl).into_owned();
    }
    py_split(&line).collect::<Vec<_>>().join(" ")
}

fn rules() -> &'static [(Regex, &'static str); 4] {
    static RULES: OnceLock<[(Regex, &'static str); 4]> = OnceLock::new();
    RULES.get_or_init(|| {
        // The patterns are constants: they compile (the fixture test runs every one).
        let re = |p: &str| Regex::new(p).unwrap_or_else(|e| panic!("13a pattern {p}: {e}"));
        [
            (re(r"([\{-\~\[-\` -\&\(-\+\:-@/])"), " ${1} "),
            (re(r"([^0-9])([\.,])"), "${1} ${2} "),
            (re(r"([\.,])([^0-9])"), " ${1} ${2}"),
            (re(r"([0-9])(-)"), "${1} ${2} "),
        ]
    })
}

/// Python's `str.isspace`: Rust's `char::is_whitespace` plus the ASCII information
/// separators U+001C..U+001F, which Python's `str.split()` also splits on.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()` (no argument).
fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(py_space).filter(|w| !w.is_empty())
}

type Ngrams<'a> = HashMap<&'a [&'a str], u64>;

fn ngrams<'a>(tokens: &'a [&'a str]) -> Ngrams<'a> {
    let mut m = HashMap::new();
    for n in 1..=MAX_ORDER {
        for w in tokens.windows(n) {
            *m.entry(w).or_insert(0) += 1;
        }
    }
    m
}

/// Corpus BLEU of `hyps` against one reference each (`refs[i]` for `hyps[i]`). Lines are
/// right-stripped and 13a-tokenized, as sacreBLEU does. Panics if the lengths differ
/// (a caller bug: the evaluation pairs them).
pub fn corpus_bleu<H: AsRef<str>, R: AsRef<str>>(hyps: &[H], refs: &[R]) -> Bleu {
    assert_eq!(hyps.len(), refs.len(), "one reference per hypothesis");
    let (mut correct, mut total) = ([0u64; MAX_ORDER], [0u64; MAX_ORDER]);
    let (mut sys_len, mut ref_len) = (0u64, 0u64);
    for (h, r) in hyps.iter().zip(refs) {
        let h = tokenize_13a(h.as_ref().trim_end_matches(py_space));
        let r = tokenize_13a(r.as_ref().trim_end_matches(py_space));
        let ht: Vec<&str> = py_split(&h).collect();
        let rt: Vec<&str> = py_split(&r).collect();
        sys_len += ht.len() as u64;
        ref_len += rt.len() as u64;
        let rn = ngrams(&rt);
        for (g, c) in ngrams(&ht) {
            total[g.len() - 1] += c;
            correct[g.len() - 1] += c.min(rn.get(g).copied().unwrap_or(0));
        }
    }
    from_stats(correct, total, sys_len, ref_len)
}

/// sacreBLEU's `compute_bleu` with `smooth_method="exp"`, `effective_order=False`.
pub fn from_stats(
    correct: [u64; MAX_ORDER],
    total: [u64; MAX_ORDER],
    sys_len: u64,
    ref_len: u64,
) -> Bleu {
    let bp = if sys_len < ref_len {
        if sys_len > 0 {
            (1.0 - ref_len as f64 / sys_len as f64).exp()
        } else {
            0.0
        }
    } else {
        1.0
    };
    let mut precisions = [0.0f64; MAX_ORDER];
    let mut out = Bleu {
        score: 0.0,
        correct,
        total,
        precisions,
        bp,
        sys_len,
        ref_len,
    };
    if correct.iter().all(|&c| c == 0) {
        return out;
    }
    let mut smooth = 1.0f64;
    for n in 0..MAX_ORDER {
        if total[n] == 0 {
            break;
        }
        precisions[n] = if correct[n] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * total[n] as f64)
        } else {
            100.0 * correct[n] as f64 / total[n] as f64
        };
    }
    // sacreBLEU's my_log: log(0) is -9999999999 (a zero precision zeroes the score).
    let log = |p: f64| if p == 0.0 { -9_999_999_999.0 } else { p.ln() };
    let mean = precisions.iter().map(|&p| log(p)).sum::<f64>() / MAX_ORDER as f64;
    out.score = bp * mean.exp();
    out.precisions = precisions;
    out
}

/// Share of hypotheses equal to their reference after trimming whitespace at both ends.
pub fn exact_match<H: AsRef<str>, R: AsRef<str>>(hyps: &[H], refs: &[R]) -> f64 {
    if hyps.is_empty() {
        return 0.0;
    }
    let hits = hyps
        .iter()
        .zip(refs)
        .filter(|(h, r)| h.as_ref().trim() == r.as_ref().trim())
        .count();
    hits as f64 / hyps.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_corpus_scores_100_and_disjoint_scores_0() {
        let refs = ["the cat sat on the mat", "a dog barked loudly today"];
        let b = corpus_bleu(&refs, &refs);
        assert!((b.score - 100.0).abs() < 1e-9, "{b}");
        let b = corpus_bleu(&["x y z w v", "q r s t u"], &refs);
        assert_eq!(b.score, 0.0);
        assert_eq!(exact_match(&["a ", "b"], &["a", "c"]), 0.5);
    }

    #[test]
    fn tokenizer_splits_punctuation_but_not_numbers() {
        assert_eq!(tokenize_13a("Hello, world!"), "Hello , world !");
        assert_eq!(tokenize_13a("1,000.5 and 3-4"), "1,000.5 and 3 - 4");
        assert_eq!(tokenize_13a("&quot;hi&quot; it's"), "\" hi \" it's");
    }
}
