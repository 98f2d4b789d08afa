//! [`Tokenizer`]: the one type every later stage (prepare, train, generate, eval) uses.

use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::char_level::CharTokenizer;
use crate::hf::{HfKind, HfTokenizer};
use crate::parallel::{split_for_parallel, CHUNK_BYTES};
use crate::sentencepiece::SpTokenizer;
use crate::special::{SpecialTokens, TRAINED_SPECIALS};
use crate::tiktoken::{TiktokenTokenizer, ENCODINGS};
use crate::word::{WordOptions, WordTokenizer};
use crate::{Result, TokenizerError};

/// Any tokenizer lmforge supports. Cheap to share behind `&` across threads.
pub enum Tokenizer {
    /// One id per character (nanoGPT's shakespeare_char).
    Char(CharTokenizer),
    /// Words, punctuation and whitespace runs, capped by frequency.
    Word(WordTokenizer),
    /// Byte-level BPE or unigram, stored as a Hugging Face `tokenizer.json`.
    Hf(Box<HfTokenizer>),
    /// A built-in OpenAI encoding.
    Tiktoken(TiktokenTokenizer),
    /// A SentencePiece `.model` file.
    SentencePiece(Box<SpTokenizer>),
}

/// Format version of lmforge's own tokenizer JSON.
const FILE_VERSION: u32 = 1;

/// lmforge's own tokenizer file (char, word, and a pointer to a built-in tiktoken encoding).
#[derive(Serialize, Deserialize)]
struct LmforgeFile {
    lmforge_tokenizer: u32,
    #[serde(flatten)]
    body: LmforgeBody,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum LmforgeBody {
    Char {
        specials: Vec<String>,
        chars: Vec<char>,
    },
    Word {
        specials: Vec<String>,
        words: Vec<String>,
        #[serde(default, skip_serializing_if = "is_false")]
        lowercase: bool,
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        keep_whitespace: bool,
    },
    Tiktoken {
        encoding: String,
    },
}

impl Tokenizer {
    /// Loads a tokenizer from a spec: `tiktoken:<name>` (or a bare encoding name such as
    /// `o200k_base` when no such file exists), a tokenizer file (lmforge JSON, HF
    /// `tokenizer.json`, SentencePiece `.model`), or a folder holding `tokenizer.json` /
    /// `tokenizer.model` (a prepared data folder or a checkpoint).
    pub fn load(spec: &str) -> Result<Tokenizer> {
        if let Some(name) = spec.strip_prefix("tiktoken:") {
            return Ok(Tokenizer::Tiktoken(TiktokenTokenizer::new(name)?));
        }
        let path = Path::new(spec);
        if !path.exists() {
            if ENCODINGS.contains(&spec) {
                return Ok(Tokenizer::Tiktoken(TiktokenTokenizer::new(spec)?));
            }
            let known = ENCODINGS
                .iter()
                .map(|e| format!("tiktoken:{e}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(TokenizerError::UnknownName {
                name: spec.to_string(),
                known: format!("{known} (no file or folder '{spec}' exists)"),
            });
        }
        if path.is_dir() {
            for name in ["tokenizer.json", "tokenizer.model"] {
                let p = path.join(name);
                if p.is_file() {
                    return Self::load_file(&p);
                }
            }
            return Err(TokenizerError::bad_file(
                path,
                "folder has no tokenizer.json or tokenizer.model",
            ));
        }
        Self::load_file(path)
    }

    /// Loads a tokenizer file, detecting its format from the content.
    pub fn load_file(path: &Path) -> Result<Tokenizer> {
        let bytes = std::fs::read(path)
            .map_err(|e| TokenizerError::bad_file(path, format!("cannot read: {e}")))?;
        let looks_json = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        if !looks_json {
            return Ok(Tokenizer::SentencePiece(Box::new(SpTokenizer::from_bytes(
                path, bytes,
            )?)));
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            TokenizerError::bad_file(
                path,
                format!(
                    "not UTF-8 JSON at byte offset {}",
                    e.utf8_error().valid_up_to()
                ),
            )
        })?;
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            TokenizerError::bad_file(path, format!("corrupted tokenizer file: {e}"))
        })?;
        if value.get("lmforge_tokenizer").is_some() {
            let file: LmforgeFile = serde_json::from_value(value).map_err(|e| {
                TokenizerError::bad_file(path, format!("corrupted lmforge tokenizer file: {e}"))
            })?;
            if file.lmforge_tokenizer != FILE_VERSION {
                return Err(TokenizerError::bad_file(
                    path,
                    format!(
                        "tokenizer file version {} is not supported (expected {FILE_VERSION})",
                        file.lmforge_tokenizer
                    ),
                ));
            }
            return match file.body {
                LmforgeBody::Char { specials, chars } => {
                    check_specials(path, &specials)?;
                    Ok(Tokenizer::Char(CharTokenizer::from_chars(chars)))
                }
                LmforgeBody::Word {
                    specials,
                    words,
                    lowercase,
                    keep_whitespace,
                } => {
                    check_specials(path, &specials)?;
                    let options = WordOptions {
                        lowercase,
                        keep_whitespace,
                    };
                    Ok(Tokenizer::Word(
                        WordTokenizer::from_words(words).with_options(options),
                    ))
                }
                LmforgeBody::Tiktoken { encoding } => {
                    Ok(Tokenizer::Tiktoken(TiktokenTokenizer::new(&encoding)?))
                }
            };
        }
        if value.get("model").is_some() {
            return Ok(Tokenizer::Hf(Box::new(HfTokenizer::from_json(
                path, &text,
            )?)));
        }
        Err(TokenizerError::bad_file(path, "not a tokenizer file (expected an lmforge tokenizer, a Hugging Face tokenizer.json or a SentencePiece .model)"))
    }

    /// The file's bytes as [`Tokenizer::save`] writes them.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let body = match self {
            Tokenizer::Char(t) => LmforgeBody::Char {
                specials: TRAINED_SPECIALS.iter().map(|s| s.to_string()).collect(),
                chars: t.vocab().chars,
            },
            Tokenizer::Word(t) => LmforgeBody::Word {
                specials: TRAINED_SPECIALS.iter().map(|s| s.to_string()).collect(),
                words: t.vocab().words,
                lowercase: t.options().lowercase,
                keep_whitespace: t.options().keep_whitespace,
            },
            Tokenizer::Tiktoken(t) => LmforgeBody::Tiktoken {
                encoding: t.name().to_string(),
            },
            Tokenizer::Hf(t) => return Ok(t.json.clone().into_bytes()),
            Tokenizer::SentencePiece(t) => return Ok(t.bytes().to_vec()),
        };
        let file = LmforgeFile {
            lmforge_tokenizer: FILE_VERSION,
            body,
        };
        serde_json::to_vec(&file)
            .map_err(|e| TokenizerError::Invalid(format!("cannot serialise tokenizer: {e}")))
    }

    /// Writes the tokenizer to `path` atomically (temp file + rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes()?)
    }

    /// Conventional file name inside a data or checkpoint folder.
    pub fn file_name(&self) -> &'static str {
        match self {
            Tokenizer::SentencePiece(_) => "tokenizer.model",
            _ => "tokenizer.json",
        }
    }

    /// Kind as shown to users: `char`, `word`, `bpe`, `unigram`, `tiktoken:<name>`,
    /// `sentencepiece:<unigram|bpe>`.
    pub fn kind(&self) -> String {
        match self {
            Tokenizer::Char(_) => "char".into(),
            Tokenizer::Word(_) => "word".into(),
            Tokenizer::Hf(t) => match t.kind {
                HfKind::Bpe => "bpe".into(),
                HfKind::Unigram => "unigram".into(),
                HfKind::Other => "huggingface".into(),
            },
            Tokenizer::Tiktoken(t) => format!("tiktoken:{}", t.name()),
            Tokenizer::SentencePiece(t) => format!("sentencepiece:{}", t.model_type()),
        }
    }

    /// Number of token ids (specials included): the model's minimum vocabulary.
    pub fn vocab_size(&self) -> usize {
        match self {
            Tokenizer::Char(t) => t.vocab_size(),
            Tokenizer::Word(t) => t.vocab_size(),
            Tokenizer::Hf(t) => t.vocab_size(),
            Tokenizer::Tiktoken(t) => t.vocab_size(),
            Tokenizer::SentencePiece(t) => t.vocab_size(),
        }
    }

    /// The ids of the special tokens this tokenizer has.
    pub fn special_tokens(&self) -> SpecialTokens {
        match self {
            Tokenizer::Char(_) | Tokenizer::Word(_) => SpecialTokens::TRAINED,
            Tokenizer::Hf(t) => t.specials(),
            Tokenizer::Tiktoken(t) => t.specials(),
            Tokenizer::SentencePiece(t) => t.specials(),
        }
    }

    /// End-of-text id, used between documents and to stop generation.
    pub fn eos_id(&self) -> Option<u32> {
        self.special_tokens().eos
    }

    /// Stable content hash (16 hex digits): same vocabulary and rules ⇒ same fingerprint.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.kind().as_bytes());
        h.update([0]);
        match self {
            Tokenizer::Tiktoken(t) => h.update(t.name().as_bytes()),
            _ => h.update(self.to_bytes().unwrap_or_default()),
        }
        hex::encode(&h.finalize()[..8])
    }

    /// Encodes text (special-token text is encoded as ordinary text, except by HF kinds,
    /// which recognise their added tokens).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(match self {
            Tokenizer::Char(t) => t.encode(text),
            Tokenizer::Word(t) => t.encode(text),
            Tokenizer::Hf(t) => t.encode(text)?,
            Tokenizer::Tiktoken(t) => t.encode(text),
            Tokenizer::SentencePiece(t) => t.encode(text)?,
        })
    }

    /// Encodes a large text on all cores; the result equals [`Tokenizer::encode`].
    pub fn encode_parallel(&self, text: &str) -> Result<Vec<u32>> {
        let splittable = !matches!(self, Tokenizer::SentencePiece(_))
            && !matches!(self, Tokenizer::Hf(t) if t.kind != HfKind::Bpe);
        if !splittable || text.len() <= CHUNK_BYTES {
            return self.encode(text);
        }
        let chunks = split_for_parallel(text, CHUNK_BYTES);
        let parts: Vec<Vec<u32>> = chunks
            .par_iter()
            .map(|c| self.encode(c))
            .collect::<Result<_>>()?;
        Ok(parts.concat())
    }

    /// Encodes many documents in parallel.
    pub fn encode_batch<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Vec<Vec<u32>>> {
        texts
            .par_iter()
            .map(|t| self.encode_parallel(t.as_ref()))
            .collect()
    }

    fn check_ids(&self, ids: &[u32]) -> Result<()> {
        let n = self.vocab_size();
        match ids.iter().find(|&&id| id as usize >= n) {
            Some(&id) => Err(TokenizerError::IdOutOfRange {
                id: id as u64,
                vocab_size: n,
            }),
            None => Ok(()),
        }
    }

    /// The UTF-8 bytes the ids stand for; a sequence may end inside a character (byte-level
    /// kinds), which matters when streaming.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        self.check_ids(ids)?;
        Ok(match self {
            Tokenizer::Char(t) => ids
                .iter()
                .filter_map(|&i| t.token(i))
                .collect::<String>()
                .into_bytes(),
            Tokenizer::Word(t) => t.decode(ids).into_bytes(),
            Tokenizer::Hf(t) => t.decode(ids)?.into_bytes(),
            Tokenizer::Tiktoken(t) => t.decode_bytes(ids)?,
            Tokenizer::SentencePiece(t) => t.decode_bytes(ids)?,
        })
    }

    /// Decodes ids to text; invalid UTF-8 (a partial character) becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.decode_bytes(ids)?).into_owned())
    }

    /// The text of a single token as stored in the vocabulary, for display.
    pub fn token_text(&self, id: u32) -> Option<String> {
        match self {
            Tokenizer::Char(t) => t.token(id),
            Tokenizer::Word(t) => t.token(id).map(str::to_string),
            Tokenizer::Hf(t) => t.token(id),
            Tokenizer::Tiktoken(t) => t
                .decode_bytes(&[id])
                .ok()
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
            Tokenizer::SentencePiece(t) => t.token(id).map(str::to_string),
        }
    }
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("kind", &self.kind())
            .field("vocab_size", &self.vocab_size())
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

fn check_specials(path: &Path, specials: &[String]) -> Result<()> {
    if specials
        .iter()
        .map(String::as_str)
        .eq(TRAINED_SPECIALS.iter().copied())
    {
        Ok(())
    } else {
        Err(TokenizerError::bad_file(
            path,
            format!("unexpected special tokens {specials:?} (expected {TRAINED_SPECIALS:?})"),
        ))
    }
}

/// Writes `bytes` to `path` atomically (the shared [`lmforge_files::write_atomic`]: temp
/// file in the same folder, fsync, rename, fsync of the folder), so a reader never sees a
/// half-written file and a failure leaves no file behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    lmforge_files::write_atomic(path, bytes).map_err(|source| TokenizerError::Write {
        path: path.display().to_string(),
        source,
    })
}

fn is_false(v: &bool) -> bool {
    !*v
}

fn is_true(v: &bool) -> bool {
    *v
}

fn yes() -> bool {
    true
}
