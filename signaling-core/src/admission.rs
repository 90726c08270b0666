//! Who may connect: checks over the facts of a connection request.
//!
//! An [`Admission`] looks at a connection's [`PeerInfo`] (for a WebSocket server: the upgrade
//! request's path, query, lower-cased headers including `cookie` and `origin`, and the remote
//! address) and admits it or gives a [`Refusal`]. Browsers cannot set headers on a WebSocket, so
//! a token travels in the query string or in a cookie; [`TokenCheck`] reads either.
//!
//! Ready-made checks: [`TokenCheck`] (401), [`OriginAllowlist`] (403), [`AllowAll`]. Compose them
//! with a pair `(A, B)` or [`AllOf`], which check in order and return the first refusal, or
//! write a closure: any `Fn(&PeerInfo) -> Result<(), Refusal> + Send + Sync` is an
//! `Admission`. [`AdmissionConfig`] builds the usual combination from a config file.
//!
//! ```
//! use signaling_core::admission::{Admission, OriginAllowlist, Refusal, TokenCheck};
//! use signaling_core::transport::PeerInfo;
//!
//! let check = (
//!     OriginAllowlist::new(["https://example.org"]).unwrap(),
//!     TokenCheck::new(["s3cret"]).unwrap().query("token"),
//! );
//! let mut peer = PeerInfo::new("ws");
//! peer.query = Some("token=s3cret".into());
//! peer.headers.push(("origin".into(), "https://example.org".into()));
//! assert_eq!(check.admit(&peer), Ok(()));
//!
//! peer.query = None;
//! assert_eq!(check.admit(&peer), Err(Refusal::MISSING_TOKEN));
//! ```
//!
//! # Telling a browser why
//!
//! A browser learns nothing from a refused WebSocket handshake (its `close` event says 1006
//! whatever the HTTP status was). A server that wants the page to know the reason accepts the
//! upgrade and closes at once with [`Refusal::close_reason`]: code `4000 + status`
//! ([`CLOSE_UNAUTHORIZED`] = 4401, [`CLOSE_FORBIDDEN`] = 4403, the convention of e.g.
//! graphql-ws) and the reason's [wire name](RefusalReason::as_str) as the text.
use std::fmt;

use percent_encoding::percent_decode_str;
use serde::Deserialize;
use subtle::{Choice, ConstantTimeEq as _};

use crate::transport::{CloseCode, CloseReason, PeerInfo};

/// Decides whether a connection may proceed.
///
/// Implementations must be cheap and must not block: a transport calls `admit` while handling
/// the connection request. They see only what [`PeerInfo`] carries.
pub trait Admission: Send + Sync {
    /// `Ok(())` to admit the connection, or the refusal to answer with.
    fn admit(&self, peer: &PeerInfo) -> Result<(), Refusal>;
}

/// HTTP 401 Unauthorized: the credentials (token) are missing or wrong.
pub const UNAUTHORIZED: u16 = 401;
/// HTTP 403 Forbidden: the request is understood and not allowed (wrong Origin).
pub const FORBIDDEN: u16 = 403;
/// WebSocket close code 4401 (`4000 + 401`), for refusing after the upgrade.
pub const CLOSE_UNAUTHORIZED: CloseCode = CloseCode(4000 + UNAUTHORIZED);
/// WebSocket close code 4403 (`4000 + 403`), for refusing after the upgrade.
pub const CLOSE_FORBIDDEN: CloseCode = CloseCode(4000 + FORBIDDEN);

/// Why a connection was refused: an HTTP status for transports that have one (a WebSocket
/// server answers the upgrade request with it) and a reason.
///
/// The reason names only the failed check (`bad_token`), never a token or any other secret, so
/// it is safe to send to the client and to log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{status}: {reason}")]
pub struct Refusal {
    /// An HTTP status code: [`UNAUTHORIZED`] (401) for a missing or wrong token, [`FORBIDDEN`]
    /// (403) for a forbidden origin; a custom check picks its own (e.g. 429, 503).
    pub status: u16,
    /// Which check refused.
    pub reason: RefusalReason,
}

/// Which check refused a connection. [`as_str`](Self::as_str) gives a stable wire name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefusalReason {
    /// No token in any configured place (query parameter, cookie).
    MissingToken,
    /// A token was present and matched none of the expected tokens.
    BadToken,
    /// No `Origin` header, and the allowlist requires one.
    MissingOrigin,
    /// The `Origin` header is not on the allowlist.
    ForbiddenOrigin,
    /// A reason given by a custom check: a short, static, snake_case name.
    Other(&'static str),
}

impl RefusalReason {
    /// The wire name: `missing_token`, `bad_token`, `missing_origin`, `forbidden_origin`, or the
    /// custom name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::BadToken => "bad_token",
            Self::MissingOrigin => "missing_origin",
            Self::ForbiddenOrigin => "forbidden_origin",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Refusal {
    /// 401, no token.
    pub const MISSING_TOKEN: Self = Self::new(UNAUTHORIZED, RefusalReason::MissingToken);
    /// 401, wrong token.
    pub const BAD_TOKEN: Self = Self::new(UNAUTHORIZED, RefusalReason::BadToken);
    /// 403, no Origin header where one is required.
    pub const MISSING_ORIGIN: Self = Self::new(FORBIDDEN, RefusalReason::MissingOrigin);
    /// 403, Origin not on the allowlist.
    pub const FORBIDDEN_ORIGIN: Self = Self::new(FORBIDDEN, RefusalReason::ForbiddenOrigin);

    /// A refusal with this status and reason.
    pub const fn new(status: u16, reason: RefusalReason) -> Self {
        Self { status, reason }
    }

    /// A custom refusal: `status` and a short, static, snake_case reason.
    pub const fn other(status: u16, reason: &'static str) -> Self {
        Self::new(status, RefusalReason::Other(reason))
    }

    /// The WebSocket close code for refusing after the upgrade: `4000 + status` when the
    /// status is an HTTP status (100..=999), otherwise 1008 (policy violation).
    pub fn close_code(&self) -> CloseCode {
        if (100..=999).contains(&self.status) {
            CloseCode(4000 + self.status)
        } else {
            CloseCode::POLICY_VIOLATION
        }
    }

    /// The close to send when refusing after the upgrade: [`close_code`](Self::close_code) and
    /// the reason's wire name.
    pub fn close_reason(&self) -> CloseReason {
        CloseReason::new(self.close_code(), self.reason.as_str())
    }
}

/// Admits every connection. For development, or when a front proxy authenticates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllowAll;

impl Admission for AllowAll {
    fn admit(&self, _peer: &PeerInfo) -> Result<(), Refusal> {
        Ok(())
    }
}

impl<F> Admission for F
where
    F: Fn(&PeerInfo) -> Result<(), Refusal> + Send + Sync,
{
    fn admit(&self, peer: &PeerInfo) -> Result<(), Refusal> {
        self(peer)
    }
}

/// Checks `A`, then `B`; the first refusal wins.
impl<A: Admission, B: Admission> Admission for (A, B) {
    fn admit(&self, peer: &PeerInfo) -> Result<(), Refusal> {
        self.0.admit(peer)?;
        self.1.admit(peer)
    }
}

/// Checks each in order; the first refusal wins. Empty admits everything.
pub struct AllOf(pub Vec<Box<dyn Admission>>);

impl Admission for AllOf {
    fn admit(&self, peer: &PeerInfo) -> Result<(), Refusal> {
        self.0.iter().try_for_each(|a| a.admit(peer))
    }
}

impl fmt::Debug for AllOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AllOf({} checks)", self.0.len())
    }
}

/// Why an admission configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdmissionConfigError {
    /// An expected token is empty: it would admit `?token=` with no value.
    #[error("an expected token is empty")]
    EmptyToken,
    /// An expected token is longer than [`MAX_TOKEN_LEN`].
    #[error("an expected token is longer than {MAX_TOKEN_LEN} bytes")]
    TokenTooLong,
    /// A token check was configured with no tokens: it would refuse everyone (or, in a config
    /// file, `token_query`/`token_cookie` were set but `tokens` was forgotten).
    #[error("token check without any expected token")]
    NoTokens,
    /// Tokens were configured but neither a query parameter nor a cookie to read them from.
    #[error("tokens configured without `token_query` or `token_cookie`")]
    NoTokenSource,
    /// An allowlist entry is not an origin (`scheme://host[:port]`, no path).
    #[error("{origin:?} is not an origin (scheme://host[:port])")]
    BadOrigin {
        /// The offending entry.
        origin: String,
    },
}

/// The longest token [`TokenCheck`] accepts, expected or presented, in bytes. A longer
/// presented token is refused without comparing.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Admits a connection that presents one of the expected tokens in a query parameter and/or a
/// cookie; otherwise 401 ([`Refusal::MISSING_TOKEN`] or [`Refusal::BAD_TOKEN`]).
///
/// - **Query**: the first parameter with the configured name, percent-decoded (RFC 3986: `%XX`
///   only; `+` stays `+`, so a base64 token sent without encoding still matches), compared as
///   bytes.
/// - **Cookie**: the first cookie with the configured name, compared as sent (no decoding).
/// - With both configured, every token present is tried; one match admits.
/// - Several expected tokens allow rotation without downtime.
/// - Comparison is constant-time in the content and length of the expected tokens: every
///   expected token is compared over the full length of the longer of the two, without an
///   early exit, and lengths are compared in constant time too.
///
/// `Debug` does not print the tokens.
#[derive(Clone)]
pub struct TokenCheck {
    tokens: Vec<Vec<u8>>,
    query: Option<String>,
    cookie: Option<String>,
}

impl fmt::Debug for TokenCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCheck")
            .field("tokens", &format_args!("<{} redacted>", self.tokens.len()))
            .field("query", &self.query)
            .field("cookie", &self.cookie)
            .finish()
    }
}

impl TokenCheck {
    /// A check for these expected tokens, reading from nowhere yet: add a source with
    /// [`query`](Self::query) and/or [`cookie`](Self::cookie) (without one, every connection is
    /// refused as [`Refusal::MISSING_TOKEN`]). Refuses an empty list, an empty token, and a
    /// token longer than [`MAX_TOKEN_LEN`].
    pub fn new<I, T>(tokens: I) -> Result<Self, AdmissionConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let tokens: Vec<Vec<u8>> = tokens.into_iter().map(|t| t.as_ref().to_vec()).collect();
        if tokens.is_empty() {
            return Err(AdmissionConfigError::NoTokens);
        }
        if tokens.iter().any(Vec::is_empty) {
            return Err(AdmissionConfigError::EmptyToken);
        }
        if tokens.iter().any(|t| t.len() > MAX_TOKEN_LEN) {
            return Err(AdmissionConfigError::TokenTooLong);
        }
        Ok(Self {
            tokens,
            query: None,
            cookie: None,
        })
    }

    /// Also reads the token from this query parameter.
    #[must_use]
    pub fn query(mut self, name: impl Into<String>) -> Self {
        self.query = Some(name.into());
        self
    }

    /// Also reads the token from this cookie.
    #[must_use]
    pub fn cookie(mut self, name: impl Into<String>) -> Self {
        self.cookie = Some(name.into());
        self
    }

    fn matches(&self, presented: &[u8]) -> bool {
        if presented.len() > MAX_TOKEN_LEN {
            return false;
        }
        let mut any = Choice::from(0);
        for expected in &self.tokens {
            any |= ct_eq_padded(expected, presented);
        }
        any.into()
    }
}

impl Admission for TokenCheck {
    fn admit(&self, peer: &PeerInfo) -> Result<(), Refusal> {
        let from_query = self
            .query
            .as_deref()
            .and_then(|n| peer.query_param(n))
            .map(|v| percent_decode_str(v).collect::<Vec<u8>>());
        let from_cookie = self.cookie.as_deref().and_then(|n| peer.cookie(n));
        if from_query.is_none() && from_cookie.is_none() {
            return Err(Refusal::MISSING_TOKEN);
        }
        // Evaluate both sources (no short-circuit) so timing does not say which one matched.
        let q = from_query.as_deref().is_some_and(|t| self.matches(t));
        let c = from_cookie.is_some_and(|t| self.matches(t.as_bytes()));
        if q | c {
            Ok(())
        } else {
            Err(Refusal::BAD_TOKEN)
        }
    }
}

/// Equality of two byte strings that takes time depending only on the longer length: the
/// content is compared byte by byte over that length (the shorter padded with zeros) and the
/// lengths are compared in constant time, all without early exit.
fn ct_eq_padded(a: &[u8], b: &[u8]) -> Choice {
    let n = a.len().max(b.len());
    let mut eq = (a.len() as u64).ct_eq(&(b.len() as u64));
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        eq &= x.ct_eq(&y);
    }
    eq
}

/// Admits a connection whose `Origin` header is on the list; otherwise 403.
///
/// The Origin check is what stops cross-site WebSocket hijacking: a page on another site can
/// open a WebSocket to this server, and the browser attaches this site's cookies to it, but it
/// cannot forge the `Origin` header.
///
/// - Entries are exact origins, `scheme://host[:port]` (`https://example.org`,
///   `http://127.0.0.1:8080`), compared ASCII case-insensitively; a trailing `/` in an entry is
///   dropped. Ports are not normalized: browsers omit the scheme's default port, so write
///   `https://example.org`, not `https://example.org:443`. An opaque origin (`null`) matches
///   only a literal `"null"` entry (which is rarely wise).
/// - **No `Origin` header is admitted by default.** Browsers send `Origin` on every WebSocket
///   handshake, so a request without one does not come from a browser, and a non-browser client
///   could send any `Origin` it likes: refusing it protects nothing against hijacking and only
///   breaks native clients and tools. For browsers-only deployments, turn it off with
///   [`allow_missing`](Self::allow_missing)`(false)` ([`Refusal::MISSING_ORIGIN`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginAllowlist {
    origins: Vec<String>,
    allow_missing: bool,
}

impl OriginAllowlist {
    /// An allowlist of these origins; refuses an entry that is not `scheme://host[:port]`.
    pub fn new<I, S>(origins: I) -> Result<Self, AdmissionConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let origins = origins
            .into_iter()
            .map(|o| normalize_origin(o.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            origins,
            allow_missing: true,
        })
    }

    /// Whether a request without an `Origin` header is admitted (default `true`; see the type
    /// documentation).
    #[must_use]
    pub fn allow_missing(mut self, allow: bool) -> Self {
        self.allow_missing = allow;
        self
    }
}

fn normalize_origin(o: &str) -> Result<String, AdmissionConfigError> {
    let bad = || AdmissionConfigError::BadOrigin {
        origin: o.to_owned(),
    };
    if o == "null" {
        return Ok(o.to_owned());
    }
    let trimmed = o.strip_suffix('/').unwrap_or(o);
    let (scheme, rest) = trimmed.split_once("://").ok_or_else(bad)?;
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    let rest_ok = !rest.is_empty()
        && !rest.bytes().any(|b| {
            matches!(b, b'/' | b'?' | b'#' | b'@')
                || b.is_ascii_whitespace()
                || b.is_ascii_control()
        });
    if scheme_ok && rest_ok {
        Ok(trimmed.to_ascii_lowercase())
    } else {
        Err(bad())
    }
}

impl Admission for OriginAllowlist {
    fn admit(&self, peer: &PeerInfo) -> Result<(), Refusal> {
        match peer.origin() {
            None if self.allow_missing => Ok(()),
            None => Err(Refusal::MISSING_ORIGIN),
            Some(origin) => {
                let origin = origin.trim();
                if self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
                    Ok(())
                } else {
                    Err(Refusal::FORBIDDEN_ORIGIN)
                }
            }
        }
    }
}

/// Configuration for the ready-made checks, as a relay's config file holds it:
///
/// ```toml
/// [admission]
/// tokens = ["..."]
/// token_query = "token"
/// token_cookie = "token"
/// origins = ["http://127.0.0.1:8080"]
/// allow_missing_origin = true
/// ```
///
/// Every field is optional; unknown fields are refused. [`build`](Self::build) turns it into a
/// check: the Origin allowlist first (if `origins` is non-empty), then the token check (if
/// `tokens` is non-empty). Origin goes first so that a cross-site request is refused with 403
/// whatever cookie the browser attached, without ever comparing that cookie. An empty
/// configuration admits everyone ([`AllowAll`]).
///
/// `Debug` does not print the tokens.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionConfig {
    /// Expected tokens (several, for rotation).
    pub tokens: Vec<String>,
    /// The query parameter carrying the token.
    pub token_query: Option<String>,
    /// The cookie carrying the token.
    pub token_cookie: Option<String>,
    /// Allowed origins, `scheme://host[:port]`.
    pub origins: Vec<String>,
    /// Whether a request without an `Origin` header passes the origin check (default `true`;
    /// see [`OriginAllowlist`]). Ignored when `origins` is empty.
    pub allow_missing_origin: bool,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            tokens: Vec::new(),
            token_query: None,
            token_cookie: None,
            origins: Vec::new(),
            allow_missing_origin: true,
        }
    }
}

impl fmt::Debug for AdmissionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdmissionConfig")
            .field("tokens", &format_args!("<{} redacted>", self.tokens.len()))
            .field("token_query", &self.token_query)
            .field("token_cookie", &self.token_cookie)
            .field("origins", &self.origins)
            .field("allow_missing_origin", &self.allow_missing_origin)
            .finish()
    }
}

impl AdmissionConfig {
    /// Builds the configured checks (see the type documentation for the order). Refuses
    /// tokens without a source, a source without tokens, empty or overlong tokens, and
    /// malformed origins.
    pub fn build(&self) -> Result<Box<dyn Admission>, AdmissionConfigError> {
        let mut checks: Vec<Box<dyn Admission>> = Vec::new();
        if !self.origins.is_empty() {
            checks.push(Box::new(
                OriginAllowlist::new(&self.origins)?.allow_missing(self.allow_missing_origin),
            ));
        }
        let has_source = self.token_query.is_some() || self.token_cookie.is_some();
        match (self.tokens.is_empty(), has_source) {
            (true, false) => {}
            (true, true) => return Err(AdmissionConfigError::NoTokens),
            (false, false) => return Err(AdmissionConfigError::NoTokenSource),
            (false, true) => {
                let mut t = TokenCheck::new(&self.tokens)?;
                t.query.clone_from(&self.token_query);
                t.cookie.clone_from(&self.token_cookie);
                checks.push(Box::new(t));
            }
        }
        Ok(match checks.len() {
            0 => Box::new(AllowAll),
            1 => checks.remove(0),
            _ => Box::new(AllOf(checks)),
        })
    }
}
