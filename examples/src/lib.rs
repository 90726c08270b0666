//! Runnable examples and binaries for the signaling crates; see `src/bin/`.
