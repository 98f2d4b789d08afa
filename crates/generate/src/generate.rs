//! KV-cached generation: the prompt is prefilled once, then each new token costs one
//! position's forward pass ([`lmforge_model::InferenceSession`]); text streams out through
//! a callback as soon as it is complete.

use std::ops::ControlFlow;
use std::time::Instant;

use lmforge_model::Gpt;
use lmforge_tokenizer::Tokenizer;

use crate::sampling::{Sampler, SamplingConfig};
use crate::stream::TextStream;
use crate::{GenerateError, Result};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// stop after this many new tokens
    pub max_new_tokens: usize,
    /// temperature, top-k, top-p and seed
    pub sampling: SamplingConfig,
    /// Stop (without printing it) when any of these strings appears.
    pub stop: Vec<String>,
    /// Learned positions past block_size: re-read the full last block for every token
    /// (nanoGPT's behaviour) instead of shifting the context by half a block.
    pub exact_context: bool,
    /// Never sample the end-of-text token, so exactly `max_new_tokens` are written unless a
    /// stop string ends it (JaneLM writes 10,000 tokens whatever the model would rather do).
    pub ignore_eos: bool,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// `max_new_tokens` were generated
    MaxTokens,
    /// the model produced the end-of-text token
    EndOfText,
    /// the text reached a `--stop` string
    StopString,
    /// the caller's step callback asked to stop ([`generate_steps`])
    Cancelled,
}

/// The result of one sample.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GenerateOutput {
    /// Generated text (without the prompt), exactly what was streamed.
    pub text: String,
    /// Generated ids (without the prompt).
    pub ids: Vec<u32>,
    /// tokens in the prompt
    pub prompt_tokens: usize,
    /// why generation ended
    pub stop_reason: StopReason,
    /// From the call until the first generated token was sampled.
    pub ms_to_first_token: f64,
    /// new tokens per second, prompt excluded
    pub tokens_per_s: f64,
    /// Things the user should know (e.g. a truncated prompt).
    pub warnings: Vec<String>,
}

/// Encodes a prompt for `model`. An empty prompt starts from the end-of-text token (which
/// separates documents in lmforge's training data, GPT-2's convention for a start token),
/// or from "\n" when the tokenizer has none. A prompt longer than `block_size` keeps its last
/// `block_size` tokens (with a warning). Characters a char tokenizer does not know are an error.
pub fn encode_prompt(
    tokenizer: &Tokenizer,
    prompt: &str,
    block_size: usize,
) -> Result<(Vec<u32>, Vec<String>)> {
    let mut warnings = Vec::new();
    // Whitespace the tokenizer cannot express (a word tokenizer that drops it, a char
    // vocabulary without it) starts from the start token, as an empty prompt does: JaneLM's
    // prompt " " then works with every tokenizer kind.
    if !prompt.is_empty() && prompt.trim().is_empty() && !expresses(tokenizer, prompt)? {
        warnings.push(format!(
            "the prompt {prompt:?} is no token of this tokenizer: starting from its start token"
        ));
        let (ids, _) = encode_prompt(tokenizer, "", block_size)?;
        return Ok((ids, warnings));
    }
    if let Tokenizer::Char(t) = tokenizer {
        let unknown = t.unknown_chars(prompt);
        if !unknown.is_empty() {
            let list: Vec<String> = unknown.iter().take(10).map(|c| format!("{c:?}")).collect();
            return Err(GenerateError::Prompt(format!(
                "the prompt contains characters this char tokenizer does not know: {} (use only characters from the training text, or train with a byte-level tokenizer such as --tokenizer bpe)",
                list.join(", ")
            )));
        }
    }
    let mut ids = if prompt.is_empty() {
        match tokenizer.eos_id() {
            Some(eos) => vec![eos],
            None => tokenizer.encode("\n")?,
        }
    } else {
        tokenizer.encode(prompt)?
    };
    if ids.is_empty() {
        return Err(GenerateError::Prompt(
            "the prompt encodes to no tokens".into(),
        ));
    }
    if ids.len() > block_size {
        warnings.push(format!(
            "the prompt has {} tokens, more than the model's block size {}: keeping the last {}",
            ids.len(),
            block_size,
            block_size
        ));
        ids.drain(..ids.len() - block_size);
    }
    Ok((ids, warnings))
}

/// `ln p(id)` under `softmax(logits)`, and the `n` most likely ids with their `ln p` into
/// `top` (most likely first, ties by id). `n = 0` computes nothing and returns 0.
fn top_log_probs(logits: &[f32], id: u32, n: usize, top: &mut Vec<(u32, f32)>) -> f32 {
    top.clear();
    if n == 0 {
        return 0.0;
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_z = max + logits.iter().map(|&l| (l - max).exp()).sum::<f32>().ln();
    for (i, &l) in logits.iter().enumerate() {
        let entry = (i as u32, l - log_z);
        let pos = top.partition_point(|&(j, p)| p > entry.1 || (p == entry.1 && j < entry.0));
        if pos < n {
            if top.len() == n {
                top.pop();
            }
            top.insert(pos, entry);
        }
    }
    logits
        .get(id as usize)
        .map_or(f32::NEG_INFINITY, |&l| l - log_z)
}

/// True when `text` encodes to at least one token and, for a char tokenizer, every
/// character is in its vocabulary.
fn expresses(tokenizer: &Tokenizer, text: &str) -> Result<bool> {
    if let Tokenizer::Char(t) = tokenizer {
        if !t.unknown_chars(text).is_empty() {
            return Ok(false);
        }
    }
    Ok(!tokenizer.encode(text)?.is_empty())
}

/// Generates one sample after `prompt`, calling `on_text` with each complete piece of text.
pub fn generate(
    model: &Gpt,
    tokenizer: &Tokenizer,
    prompt: &str,
    opts: &GenerateOptions,
    on_text: &mut dyn FnMut(&str),
) -> Result<GenerateOutput> {
    generate_steps(model, tokenizer, prompt, opts, 0, &mut |step| {
        if !step.text.is_empty() {
            on_text(step.text);
        }
        ControlFlow::Continue(())
    })
}

/// One sampled token, as [`generate_steps`] reports it.
#[derive(Debug)]
pub struct Step<'a> {
    /// The sampled id (never the end-of-text id: that ends generation without a step).
    pub id: u32,
    /// Text this token completed (empty while a character or a possible stop string is
    /// incomplete; the held-back text comes with a later step or the final one).
    pub text: &'a str,
    /// `ln p(id)` under the model's distribution (temperature 1, before top-k/top-p);
    /// `0.0` when `top_logprobs` is 0 (not computed).
    pub logprob: f32,
    /// The `top_logprobs` most likely ids with their `ln p`, most likely first.
    pub top: &'a [(u32, f32)],
}

/// [`generate`] for servers: `on_step` sees every sampled token (its id, the text it
/// completed and, when `top_logprobs > 0`, log-probabilities) and may stop generation
/// early with `ControlFlow::Break` (a client went away). Text held back at the end comes
/// as a last step with `id` of the last token and `top` empty.
pub fn generate_steps(
    model: &Gpt,
    tokenizer: &Tokenizer,
    prompt: &str,
    opts: &GenerateOptions,
    top_logprobs: usize,
    on_step: &mut dyn FnMut(&Step) -> ControlFlow<()>,
) -> Result<GenerateOutput> {
    let start = Instant::now();
    let mut sampler = Sampler::new(opts.sampling)?;
    let (mut history, warnings) = encode_prompt(tokenizer, prompt, model.config().block_size)?;
    let prompt_tokens = history.len();
    let eos = tokenizer.eos_id();
    // Padding and begin-of-sequence ids never occur inside training text: never sample them.
    let specials = tokenizer.special_tokens();
    let banned_eos = eos.filter(|_| opts.ignore_eos);
    let banned: Vec<usize> = [specials.pad, specials.bos, banned_eos]
        .into_iter()
        .flatten()
        .filter(|&id| Some(id) != eos || opts.ignore_eos)
        .map(|id| id as usize)
        .collect();
    let mut masked = Vec::new();
    let mut top = Vec::with_capacity(top_logprobs);
    let mut session = model.session();
    session.set_exact_context(opts.exact_context);
    let mut stream = TextStream::new(tokenizer, opts.stop.clone());
    let mut ids = Vec::with_capacity(opts.max_new_tokens);
    let mut stop_reason = StopReason::MaxTokens;
    let mut first_token_ms = 0.0;
    let mut gen_start = Instant::now();
    // A padded vocabulary (nanoGPT's 50304 rows for GPT-2's 50257 ids) has rows no text
    // ever trained; sample only among the tokenizer's ids.
    let n_ids = tokenizer.vocab_size();
    for i in 0..opts.max_new_tokens {
        let all = session.next_logits(&history)?;
        let logits = &all[..n_ids.min(all.len())];
        let id = if banned.is_empty() {
            sampler.sample(logits)
        } else {
            masked.clear();
            masked.extend_from_slice(logits);
            for &b in &banned {
                if let Some(l) = masked.get_mut(b) {
                    *l = f32::NEG_INFINITY;
                }
            }
            sampler.sample(&masked)
        };
        if i == 0 {
            first_token_ms = start.elapsed().as_secs_f64() * 1e3;
            gen_start = Instant::now();
        }
        if Some(id) == eos {
            stop_reason = StopReason::EndOfText;
            break;
        }
        let logprob = top_log_probs(logits, id, top_logprobs, &mut top);
        history.push(id);
        ids.push(id);
        let chunk = stream.push(id)?;
        let step = Step {
            id,
            text: &chunk,
            logprob,
            top: &top,
        };
        if on_step(&step).is_break() {
            stop_reason = StopReason::Cancelled;
            break;
        }
        if stream.stopped {
            stop_reason = StopReason::StopString;
            break;
        }
    }
    let rest = stream.finish()?;
    if !rest.is_empty() && stop_reason != StopReason::Cancelled {
        let id = ids.last().copied().unwrap_or(0);
        let _ = on_step(&Step {
            id,
            text: &rest,
            logprob: 0.0,
            top: &[],
        });
    }
    if stream.stopped && stop_reason != StopReason::Cancelled {
        stop_reason = StopReason::StopString;
    }
    let secs = gen_start.elapsed().as_secs_f64();
    let n_after_first = ids.len().saturating_sub(1);
    Ok(GenerateOutput {
        text: stream.text,
        tokens_per_s: if secs > 0.0 && n_after_first > 0 {
            n_after_first as f64 / secs
        } else {
            0.0
        },
        ids,
        prompt_tokens,
        stop_reason,
        ms_to_first_token: first_token_ms,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lmforge_tokenizer::{train, TrainKind, WordOptions};

    #[test]
    fn a_single_space_prompt_works_for_every_tokenizer_kind() {
        let text = ["the cat sat on the mat. the dog sat on the log.\n"];
        let nospace = ["abcabc"];
        let word_seed = match train(TrainKind::Word, Some(20), &text).unwrap() {
            Tokenizer::Word(w) => Tokenizer::Word(w.with_options(WordOptions {
                lowercase: true,
                keep_whitespace: false,
            })),
            _ => unreachable!("a word tokenizer"),
        };
        let kinds = [
            (train(TrainKind::Char, None, &text).unwrap(), false),
            (train(TrainKind::Char, None, &nospace).unwrap(), true),
            (train(TrainKind::Word, Some(20), &text).unwrap(), false),
            (word_seed, true),
            (train(TrainKind::Bpe, Some(300), &text).unwrap(), false),
            (Tokenizer::load("tiktoken:gpt2").unwrap(), false),
        ];
        for (tok, falls_back) in kinds {
            let (ids, warnings) = encode_prompt(&tok, " ", 8).unwrap();
            assert!(!ids.is_empty(), "{}", tok.kind());
            assert_eq!(
                !warnings.is_empty(),
                falls_back,
                "{}: {warnings:?}",
                tok.kind()
            );
            if !falls_back {
                assert_eq!(tok.decode(&ids).unwrap(), " ", "{}", tok.kind());
            }
        }
    }
}
