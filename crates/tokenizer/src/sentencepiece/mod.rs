//! SentencePiece `.model` files (unigram and BPE types), encoded and decoded with the same
//! ids as the C++ library: the protobuf is read with `prost` ([`proto`]), text is
//! normalised as `normalizer.cc` does ([`normalizer`]), and segmentation runs on
//! Hugging Face's `Unigram` (Viterbi) or `BPE` model per whitespace-delimited piece.
//!
//! Known difference: the HF models can match a literal `<0xNN>` written in the input text
//! to a byte piece, which SentencePiece never does.

pub mod normalizer;
pub mod proto;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use prost::Message;
use tokenizers::models::bpe::BPE;
use tokenizers::models::unigram::Unigram;
use tokenizers::Model;

use crate::special::SpecialTokens;
use crate::{Result, TokenizerError};
use normalizer::{CharsMap, Normalizer, SPACE_SYMBOL};
use proto::piece_type;

enum Segmenter {
    Unigram(Unigram),
    Bpe(BPE),
}

/// A loaded SentencePiece model.
pub struct SpTokenizer {
    /// The original `.model` bytes: saved as-is, and hashed for the fingerprint.
    bytes: Vec<u8>,
    pieces: Vec<(String, i32)>,
    normalizer: Normalizer,
    segmenter: Segmenter,
    unk_surface: String,
    specials: SpecialTokens,
    model_type: &'static str,
}

/// Name given to pieces that must never be matched from text (control, unknown, unused).
fn reserved_name(id: usize) -> String {
    format!("\u{0}lmforge-reserved-{id}")
}

impl SpTokenizer {
    /// Parses a `.model` file's bytes; `path` is only used in error messages.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self> {
        let proto = proto::ModelProto::decode(bytes.as_slice()).map_err(|e| {
            TokenizerError::bad_file(path, format!("not a SentencePiece model: {e}"))
        })?;
        if proto.pieces.is_empty() {
            return Err(TokenizerError::bad_file(
                path,
                "SentencePiece model has no pieces",
            ));
        }
        let trainer = proto.trainer_spec.clone().unwrap_or_default();
        let norm = proto.normalizer_spec.clone().unwrap_or_default();
        let pieces: Vec<(String, i32)> = proto
            .pieces
            .iter()
            .map(|p| (p.piece().to_string(), p.r#type()))
            .collect();
        let n = pieces.len() as i32;
        let id_opt = |id: i32| (0..n).contains(&id).then_some(id as u32);
        let unk_id = id_opt(trainer.unk_id()).ok_or_else(|| {
            TokenizerError::bad_file(
                path,
                "SentencePiece model's unk_id is outside the vocabulary",
            )
        })?;
        let byte_fallback = trainer.byte_fallback();
        let seg_names: Vec<String> = pieces
            .iter()
            .enumerate()
            .map(|(i, (p, t))| match *t {
                piece_type::CONTROL | piece_type::UNKNOWN | piece_type::UNUSED => reserved_name(i),
                _ => p.clone(),
            })
            .collect();
        let (segmenter, model_type) = match trainer.model_type() {
            1 => {
                let vocab = seg_names
                    .iter()
                    .zip(&proto.pieces)
                    .map(|(s, p)| (s.clone(), p.score() as f64))
                    .collect();
                let u = Unigram::from(vocab, Some(unk_id as usize), byte_fallback)
                    .map_err(|e| TokenizerError::bad_file(path, e))?;
                (Segmenter::Unigram(u), "unigram")
            }
            2 => {
                let vocab: HashMap<String, u32> = seg_names
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.clone(), i as u32))
                    .collect();
                let merges = generate_merges(&seg_names, &vocab);
                let bpe = BPE::builder()
                    .vocab_and_merges(
                        vocab
                            .into_iter()
                            .collect::<tokenizers::models::bpe::Vocab>(),
                        merges,
                    )
                    .unk_token(reserved_name(unk_id as usize))
                    .fuse_unk(true)
                    .byte_fallback(byte_fallback)
                    .build()
                    .map_err(|e| TokenizerError::bad_file(path, e))?;
                (Segmenter::Bpe(bpe), "bpe")
            }
            other => {
                return Err(TokenizerError::bad_file(
                    path,
                    format!(
                    "SentencePiece model type {other} is not supported (only unigram=1 and bpe=2)"
                ),
                ))
            }
        };
        let charsmap = CharsMap::parse(norm.precompiled_charsmap())
            .ok_or_else(|| TokenizerError::bad_file(path, "corrupt precompiled_charsmap"))?;
        Ok(SpTokenizer {
            bytes,
            normalizer: Normalizer {
                charsmap,
                add_dummy_prefix: norm.add_dummy_prefix(),
                remove_extra_whitespaces: norm.remove_extra_whitespaces(),
                escape_whitespaces: norm.escape_whitespaces(),
                treat_whitespace_as_suffix: trainer.treat_whitespace_as_suffix(),
            },
            segmenter,
            unk_surface: trainer.unk_surface().to_string(),
            specials: SpecialTokens {
                pad: id_opt(trainer.pad_id()),
                unk: Some(unk_id),
                bos: id_opt(trainer.bos_id()),
                eos: id_opt(trainer.eos_id()),
            },
            pieces,
            model_type,
        })
    }

    /// The original `.model` bytes (saved as is, hashed for the fingerprint).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// `unigram` or `bpe`.
    pub fn model_type(&self) -> &'static str {
        self.model_type
    }

    /// Number of pieces, i.e. of ids.
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// The ids the model's trainer spec reserves for pad/unk/bos/eos.
    pub fn specials(&self) -> SpecialTokens {
        self.specials
    }

    /// Piece text for `id`.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.pieces.get(id as usize).map(|(p, _)| p.as_str())
    }

    /// Encodes like `SentencePieceProcessor::EncodeAsIds` (no bos/eos added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let normalized = self.normalizer.normalize(text);
        let mut ids = Vec::with_capacity(normalized.len() / 3);
        for segment in split_before_spaces(&normalized) {
            let tokens = match &self.segmenter {
                Segmenter::Unigram(u) => u.tokenize(segment),
                Segmenter::Bpe(b) => b.tokenize(segment),
            }
            .map_err(|e| TokenizerError::Hf(e.to_string()))?;
            ids.extend(tokens.into_iter().map(|t| t.id));
        }
        Ok(ids)
    }

    /// Decodes like `SentencePieceProcessor::DecodeIds`: control pieces vanish, `▁` becomes
    /// a space (the dummy-prefix space of the first piece is dropped), byte pieces become raw bytes.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut first = true;
        for &id in ids {
            let (piece, kind) =
                self.pieces
                    .get(id as usize)
                    .ok_or(TokenizerError::IdOutOfRange {
                        id: id as u64,
                        vocab_size: self.pieces.len(),
                    })?;
            let text: String = match *kind {
                piece_type::CONTROL => continue,
                piece_type::BYTE => {
                    if let Some(b) = parse_byte_piece(piece) {
                        out.push(b);
                        first = false;
                        continue;
                    }
                    piece.clone()
                }
                piece_type::UNKNOWN => self.unk_surface.clone(),
                _ => piece.replace(SPACE_SYMBOL, " "),
            };
            let text = if first
                && self.normalizer.add_dummy_prefix
                && !self.normalizer.treat_whitespace_as_suffix
                && *kind != piece_type::UNKNOWN
            {
                text.strip_prefix(' ').unwrap_or(&text).to_string()
            } else {
                text
            };
            first = false;
            out.extend_from_slice(text.as_bytes());
        }
        Ok(out)
    }
}

/// `<0x41>` → 0x41.
fn parse_byte_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}

/// Splits normalised text before each `▁`, the boundaries SentencePiece pieces never cross.
fn split_before_spaces(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let skip = if rest.starts_with(SPACE_SYMBOL) {
            SPACE_SYMBOL.len()
        } else {
            0
        };
        let end = rest[skip..]
            .find(SPACE_SYMBOL)
            .map(|i| i + skip)
            .unwrap_or(rest.len());
        let (seg, tail) = rest.split_at(end);
        rest = tail;
        Some(seg)
    })
}

/// BPE merges implied by a SentencePiece BPE vocabulary: every split of a piece into two
/// pieces, ordered by the merged piece's id (its score rank), as HF's converter does.
/// Only splits whose two halves have the byte length of some piece are looked up, so one
/// very long piece costs a few lookups, not one hash of the piece per character.
fn generate_merges(pieces: &[String], vocab: &HashMap<String, u32>) -> Vec<(String, String)> {
    let lengths: BTreeSet<usize> = pieces.iter().map(String::len).collect();
    let mut merges: Vec<(u32, usize, usize, String, String)> = Vec::new();
    for (id, piece) in pieces.iter().enumerate() {
        let mut local = Vec::new();
        let splits = lengths
            .range(1..piece.len().max(1))
            .copied()
            .filter(|&split| {
                lengths.contains(&(piece.len() - split)) && piece.is_char_boundary(split)
            });
        for split in splits {
            let (l, r) = piece.split_at(split);
            if let (Some(&li), Some(&ri)) = (vocab.get(l), vocab.get(r)) {
                local.push((li, ri, l.to_string(), r.to_string()));
            }
        }
        local.sort_by_key(|&(li, ri, _, _)| (li, ri));
        merges.extend(
            local
                .into_iter()
                .map(|(_, _, l, r)| (id as u32, l.chars().count(), r.chars().count(), l, r)),
        );
    }
    merges.sort_by_key(|m| (m.0, m.1, m.2));
    merges.into_iter().map(|(_, _, _, l, r)| (l, r)).collect()
}
