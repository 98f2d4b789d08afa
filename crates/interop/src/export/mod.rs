//! Export an lmforge checkpoint to Hugging Face `transformers` or GGUF.
