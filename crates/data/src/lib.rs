//! lmforge-data
