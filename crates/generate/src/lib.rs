//! lmforge-generate
