//! sdp (in progress).
