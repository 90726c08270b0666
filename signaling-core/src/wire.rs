//! wire (in progress).
