//! candidate (in progress).
