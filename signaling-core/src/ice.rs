//! Temporary stand-in for the ICE servers / privacy module.
#![allow(missing_docs)]
use crate::candidate::Candidate;
use crate::wire::IceServer;

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub struct CandidatePolicy {
    pub drop_host: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filtered {
    Host,
}

impl CandidatePolicy {
    pub fn check(&self, c: &Candidate) -> Result<(), Filtered> {
        if self.drop_host && c.kind() == crate::candidate::CandidateType::Host {
            return Err(Filtered::Host);
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct IceServersConfig {
    pub stun: Vec<String>,
}

impl IceServersConfig {
    pub fn for_user(&self, _user: &str, _now: u64) -> Vec<IceServer> {
        vec![IceServer { urls: self.stun.clone(), username: None, credential: None }]
    }
}
