//! The parts of SentencePiece's `sentencepiece_model.proto` (proto2) that encoding and
//! decoding need, declared by hand for `prost` (no protoc). Field numbers and defaults
//! follow the upstream schema; unknown fields are skipped.

/// `ModelProto`: the whole `.model` file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    /// The vocabulary: piece `i` has id `i`.
    #[prost(message, repeated, tag = "1")]
    pub pieces: Vec<Piece>,
    /// How the model was trained (model type, special ids, byte fallback).
    #[prost(message, optional, tag = "2")]
    pub trainer_spec: Option<TrainerSpec>,
    /// How text is normalised before segmentation.
    #[prost(message, optional, tag = "3")]
    pub normalizer_spec: Option<NormalizerSpec>,
}

/// `ModelProto.SentencePiece`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Piece {
    /// The piece's text (`▁` for a space).
    #[prost(string, optional, tag = "1")]
    pub piece: Option<String>,
    /// Unigram log probability, or BPE merge priority.
    #[prost(float, optional, tag = "2")]
    pub score: Option<f32>,
    /// NORMAL=1, UNKNOWN=2, CONTROL=3, USER_DEFINED=4, UNUSED=5, BYTE=6.
    #[prost(int32, optional, tag = "3", default = "1")]
    pub r#type: Option<i32>,
}

/// `TrainerSpec` (only the fields used at encode/decode time).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrainerSpec {
    /// UNIGRAM=1, BPE=2, WORD=3, CHAR=4.
    #[prost(int32, optional, tag = "3", default = "1")]
    pub model_type: Option<i32>,
    /// Vocabulary size the trainer aimed for.
    #[prost(int32, optional, tag = "4", default = "8000")]
    pub vocab_size: Option<i32>,
    /// Space marker at the end of words instead of the start.
    #[prost(bool, optional, tag = "24", default = "false")]
    pub treat_whitespace_as_suffix: Option<bool>,
    /// Unknown characters are spelled as `<0xNN>` byte pieces instead of `<unk>`.
    #[prost(bool, optional, tag = "35", default = "false")]
    pub byte_fallback: Option<bool>,
    /// Id of `<unk>`.
    #[prost(int32, optional, tag = "40", default = "0")]
    pub unk_id: Option<i32>,
    /// Id of the beginning-of-sequence token (-1: none).
    #[prost(int32, optional, tag = "41", default = "1")]
    pub bos_id: Option<i32>,
    /// Id of the end-of-sequence token (-1: none).
    #[prost(int32, optional, tag = "42", default = "2")]
    pub eos_id: Option<i32>,
    /// Id of the padding token (-1: none).
    #[prost(int32, optional, tag = "43", default = "-1")]
    pub pad_id: Option<i32>,
    /// Text that decoding prints for `<unk>`.
    #[prost(string, optional, tag = "44", default = " \u{2047} ")]
    pub unk_surface: Option<String>,
}

/// `NormalizerSpec`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NormalizerSpec {
    /// Normaliser name (`nmt_nfkc`, `identity`, ...).
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// The normaliser's rewrite table, compiled by the SentencePiece trainer.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub precompiled_charsmap: Option<Vec<u8>>,
    /// Prepend a space to the text.
    #[prost(bool, optional, tag = "3", default = "true")]
    pub add_dummy_prefix: Option<bool>,
    /// Trim and collapse runs of spaces.
    #[prost(bool, optional, tag = "4", default = "true")]
    pub remove_extra_whitespaces: Option<bool>,
    /// Write spaces as `▁`.
    #[prost(bool, optional, tag = "5", default = "true")]
    pub escape_whitespaces: Option<bool>,
}

/// Piece types, as in the schema.
pub mod piece_type {
    /// An ordinary piece, matched from text.
    pub const NORMAL: i32 = 1;
    /// The `<unk>` piece.
    pub const UNKNOWN: i32 = 2;
    /// A control symbol such as `<s>`: never matched from text, decodes to nothing.
    pub const CONTROL: i32 = 3;
    /// A piece the user forced into the vocabulary: always matched whole.
    pub const USER_DEFINED: i32 = 4;
    /// A reserved id that is never produced.
    pub const UNUSED: i32 = 5;
    /// A byte-fallback piece `<0xNN>`.
    pub const BYTE: i32 = 6;
}
