//! The conformance suite every backend must pass (filled in below).
