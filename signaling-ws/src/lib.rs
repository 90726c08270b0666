//! Placeholder; built in a later step.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
