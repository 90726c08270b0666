//! Temporary minimal SDP facts (replaced by the full scanner).
#![allow(missing_docs)]

pub const DEFAULT_MAX_SDP_LEN: usize = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdpFacts {
    sections: Vec<MediaSection>,
    bundle: Vec<Vec<String>>,
    ufrag: Option<String>,
    pwd: Option<String>,
    eoc: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaSection {
    mid: Option<String>,
    ufrag: Option<String>,
    pwd: Option<String>,
    eoc: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    #[error("sdp too long")]
    TooLong { len: usize, max: usize },
    #[error("bad sdp")]
    Bad,
}

impl SdpFacts {
    pub fn parse(sdp: &str) -> Result<SdpFacts, SdpError> {
        Self::parse_with_limit(sdp, DEFAULT_MAX_SDP_LEN)
    }
    pub fn parse_with_limit(sdp: &str, max: usize) -> Result<SdpFacts, SdpError> {
        if sdp.len() > max {
            return Err(SdpError::TooLong {
                len: sdp.len(),
                max,
            });
        }
        if !sdp.starts_with("v=0") {
            return Err(SdpError::Bad);
        }
        let mut f = SdpFacts {
            sections: vec![],
            bundle: vec![],
            ufrag: None,
            pwd: None,
            eoc: false,
        };
        for line in sdp.lines() {
            let line = line.trim_end_matches('\r');
            if line.starts_with("m=") {
                f.sections.push(MediaSection {
                    mid: None,
                    ufrag: None,
                    pwd: None,
                    eoc: false,
                });
            } else if let Some(v) = line.strip_prefix("a=group:BUNDLE ") {
                f.bundle.push(v.split(' ').map(str::to_owned).collect());
            } else if let Some(v) = line.strip_prefix("a=mid:") {
                if let Some(s) = f.sections.last_mut() {
                    s.mid = Some(v.to_owned())
                }
            } else if let Some(v) = line.strip_prefix("a=ice-ufrag:") {
                match f.sections.last_mut() {
                    Some(s) => s.ufrag = Some(v.to_owned()),
                    None => f.ufrag = Some(v.to_owned()),
                }
            } else if let Some(v) = line.strip_prefix("a=ice-pwd:") {
                match f.sections.last_mut() {
                    Some(s) => s.pwd = Some(v.to_owned()),
                    None => f.pwd = Some(v.to_owned()),
                }
            } else if line == "a=end-of-candidates" {
                match f.sections.last_mut() {
                    Some(s) => s.eoc = true,
                    None => f.eoc = true,
                }
            }
        }
        Ok(f)
    }
    pub fn sections(&self) -> &[MediaSection] {
        &self.sections
    }
    pub fn bundle_groups(&self) -> &[Vec<String>] {
        &self.bundle
    }
    pub fn ice_credentials(&self) -> Option<(&str, &str)> {
        for s in &self.sections {
            if let (Some(u), Some(p)) = (
                s.ufrag.as_deref().or(self.ufrag.as_deref()),
                s.pwd.as_deref().or(self.pwd.as_deref()),
            ) {
                return Some((u, p));
            }
        }
        Some((self.ufrag.as_deref()?, self.pwd.as_deref()?))
    }
    pub fn default_mid(&self, ufrag: Option<&str>) -> Option<&str> {
        if let Some(g) = self.bundle.first() {
            if let Some(m) = g.first() {
                return Some(m);
            }
        }
        if let Some(u) = ufrag {
            for s in &self.sections {
                if s.ufrag.as_deref().or(self.ufrag.as_deref()) == Some(u) {
                    return s.mid.as_deref();
                }
            }
        }
        self.sections.first()?.mid.as_deref()
    }
    pub fn mid_at(&self, index: usize) -> Option<&str> {
        self.sections.get(index)?.mid.as_deref()
    }
    pub fn index_of_mid(&self, mid: &str) -> Option<usize> {
        self.sections
            .iter()
            .position(|s| s.mid.as_deref() == Some(mid))
    }
    pub fn end_of_candidates(&self) -> bool {
        self.eoc || (!self.sections.is_empty() && self.sections.iter().all(|s| s.eoc))
    }
}

impl MediaSection {
    pub fn mid(&self) -> Option<&str> {
        self.mid.as_deref()
    }
}
