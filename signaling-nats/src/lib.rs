//! Cluster backbone for the signaling relay: relay nodes that share rooms through NATS.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "testing")]
pub mod testing;
