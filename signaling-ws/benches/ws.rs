//! Round-trip benchmark (filled in below).
fn main() {}
