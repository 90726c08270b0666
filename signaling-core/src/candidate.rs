//! Temporary minimal candidate parsing (replaced by the full RFC 8839 parser).
#![allow(missing_docs)]
use std::fmt;

pub const MAX_CANDIDATE_LEN: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Candidate {
    raw: String,
    ufrag: Option<(usize, usize)>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CandidateError {
    #[error("bad candidate")]
    Bad,
}

impl Candidate {
    pub fn parse(s: &str) -> Result<Candidate, CandidateError> {
        let s = s.strip_prefix("a=").unwrap_or(s);
        if !s.starts_with("candidate:")
            || s.len() > MAX_CANDIDATE_LEN
            || s.contains(['\r', '\n', '\0'])
        {
            return Err(CandidateError::Bad);
        }
        let toks: Vec<&str> = s.split(' ').collect();
        if toks.len() < 8 || toks[6] != "typ" {
            return Err(CandidateError::Bad);
        }
        let mut ufrag = None;
        let mut off = 0;
        for (i, t) in toks.iter().enumerate() {
            if *t == "ufrag" {
                if let Some(v) = toks.get(i + 1) {
                    let start = off + t.len() + 1;
                    ufrag = Some((start, start + v.len()));
                }
            }
            off += t.len() + 1;
        }
        Ok(Candidate {
            raw: s.to_owned(),
            ufrag,
        })
    }
    pub fn ufrag(&self) -> Option<&str> {
        self.ufrag.map(|(a, b)| &self.raw[a..b])
    }
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}
