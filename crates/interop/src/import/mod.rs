//! Import a Hugging Face GPT-2 folder or a nanoGPT / PyTorch checkpoint.
