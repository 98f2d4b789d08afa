//! lmforge-train
