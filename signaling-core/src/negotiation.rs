//! negotiation (in progress).
