//! The exported candidate strategies work from outside the crate (needs `--features proptest`).
#![cfg(feature = "proptest")]
#![allow(missing_docs)]

use proptest::prelude::*;
use signaling_core::candidate::strategy::{candidate, candidate_string};
use signaling_core::candidate::Candidate;

proptest! {
    #[test]
    fn exported_candidate_round_trips(c in candidate()) {
        let text = c.to_string();
        prop_assert_eq!(Candidate::parse(&text), Ok(c));
    }

    #[test]
    fn exported_string_reserializes_byte_for_byte(s in candidate_string()) {
        let c = Candidate::parse(&s);
        prop_assert!(c.is_ok(), "{:?}: {:?}", s, c);
        prop_assert_eq!(c.map(|c| c.to_string()), Ok(s));
    }
}
