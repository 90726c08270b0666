//! What a server tells clients about ICE, and what it lets through of theirs.
//!
//! - [`TurnRestCredentials`]: short-lived TURN credentials in the "TURN REST API" scheme that
//!   coturn implements with `use-auth-secret` / `static-auth-secret`: the username is
//!   `"<expiry-unix-seconds>:<user>"` and the credential is `base64(HMAC-SHA1(secret, username))`.
//!   [`IceServersConfig`] assembles the `iceServers` list a client receives.
//! - [`CandidatePolicy`]: an IP-leak filter for candidates (drop host or mDNS candidates, relay
//!   only, deny or allow networks). It ships no hard-coded ranges: every network comes from
//!   configuration, with named sets ([`IpNet::private_v4`], [`IpNet::loopback`], ...) that a
//!   configuration can name (see [`IpNet::named`]).
//!
//! Everything here is pure: the current time is an argument (`now_unix_secs`), nothing reads a
//! clock.
//!
//! # Configuration
//!
//! The configuration types deserialize with serde and refuse unknown fields, so a typo in a
//! config file is an error rather than a silently ignored setting:
//!
//! ```
//! # use signaling_core::ice::{CandidatePolicy, IceServersConfig};
//! let ice: IceServersConfig = serde_json::from_str(r#"{
//!     "stun": ["stun:stun.example.org:3478"],
//!     "turn": {
//!         "secret": "north",
//!         "ttl_secs": 3600,
//!         "urls": ["turn:turn.example.org:3478?transport=udp"]
//!     }
//! }"#).unwrap();
//! let servers = ice.for_user("alice", 1_700_000_000);
//! assert_eq!(servers.len(), 2);
//! assert_eq!(servers[1].username.as_deref(), Some("1700003600:alice"));
//!
//! let policy: CandidatePolicy = serde_json::from_str(r#"{
//!     "drop_mdns": true,
//!     "deny": ["private-v4", "loopback", "fd00::/8", "192.0.2.7"],
//!     "check_related": true
//! }"#).unwrap();
//! assert_eq!(policy.deny.len(), 3 + 2 + 2);
//! ```
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use hmac::{KeyInit as _, Mac as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq as _;

use crate::candidate::{Address, Candidate, CandidateType};
use crate::wire::IceServer;

type HmacSha1 = hmac::Hmac<sha1::Sha1>;

// ---------------------------------------------------------------------------------------------
// TURN REST credentials
// ---------------------------------------------------------------------------------------------

/// The default credential lifetime: one day, as in coturn's documentation.
///
/// coturn checks the expiry on every authenticated request, including the `Refresh` that keeps
/// an allocation alive, so the lifetime must cover the longest call a client may hold.
pub const DEFAULT_TURN_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Issues TURN credentials in the TURN REST API scheme (coturn `use-auth-secret`).
///
/// The username is `"<expiry>:<user>"`, where `<expiry>` is a Unix time in seconds after which
/// the TURN server refuses the credential (coturn treats the number as an expiry, not as a
/// creation time), and the credential is `base64(HMAC-SHA1(secret, username))` with the
/// standard, padded base64 alphabet.
///
/// # User names
///
/// A user name may contain `:`. The expiry is the text before the *first* `:`, which is
/// unambiguous because the expiry is always written first; coturn reads it the same way (it
/// takes the part before the first separator as the timestamp when that part is all digits).
/// The user name is not interpreted otherwise; it is what the TURN server logs and, with
/// coturn's `--use-auth-secret`, what per-user quotas key on.
///
/// # Configuration
///
/// Deserializes from `{ "secret": "...", "ttl_secs": 86400, "urls": ["turn:..."] }` (`ttl_secs`
/// optional, default [`DEFAULT_TURN_TTL`]). The secret must be non-empty and there must be at
/// least one URL, each `turn:`, `turns:`, `stun:` or `stuns:`. `Debug` does not print the secret.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "TurnRestConfig")]
pub struct TurnRestCredentials {
    secret: String,
    ttl: Duration,
    urls: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TurnRestConfig {
    secret: String,
    #[serde(default = "default_ttl_secs")]
    ttl_secs: u64,
    urls: Vec<String>,
}

fn default_ttl_secs() -> u64 {
    DEFAULT_TURN_TTL.as_secs()
}

impl TryFrom<TurnRestConfig> for TurnRestCredentials {
    type Error = TurnConfigError;

    fn try_from(c: TurnRestConfig) -> Result<Self, Self::Error> {
        Self::new(c.secret, Duration::from_secs(c.ttl_secs), c.urls)
    }
}

impl fmt::Debug for TurnRestCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnRestCredentials")
            .field("secret", &"<redacted>")
            .field("ttl", &self.ttl)
            .field("urls", &self.urls)
            .finish()
    }
}

/// Why a [`TurnRestCredentials`] configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TurnConfigError {
    /// The shared secret is empty: anyone could mint credentials. Configure the secret that the
    /// TURN server has as `static-auth-secret`.
    #[error("the TURN shared secret is empty")]
    EmptySecret,
    /// No URL to hand out.
    #[error("no TURN/STUN URL configured")]
    NoUrls,
    /// A URL does not start with `turn:`, `turns:`, `stun:` or `stuns:` (RFC 7065 / RFC 7064).
    #[error("URL {url:?} is not a turn:, turns:, stun: or stuns: URL")]
    BadScheme {
        /// The offending URL.
        url: String,
    },
}

/// Why [`TurnRestCredentials::verify`] refused a username/credential pair.
///
/// The checks run in the order malformed → mismatch → expired, so [`Expired`](Self::Expired)
/// is only reported for a credential that was genuinely issued with the secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TurnCredentialError {
    /// The username is not `"<expiry>:<user>"` with `<expiry>` a run of at most 20 ASCII digits
    /// that fits a `u64`.
    #[error("username is not `<expiry>:<user>`")]
    MalformedUsername,
    /// The credential is not `base64(HMAC-SHA1(secret, username))`.
    #[error("credential does not match the username")]
    Mismatch,
    /// The credential is genuine but its expiry is in the past.
    #[error("credential expired at {expiry} (now {now})")]
    Expired {
        /// The expiry from the username, Unix seconds.
        expiry: u64,
        /// The time the check ran at, Unix seconds.
        now: u64,
    },
}

impl TurnRestCredentials {
    /// Credentials from the shared secret, the lifetime of each issued credential, and the
    /// `turn:`/`turns:`/`stun:` URLs to hand out with them.
    pub fn new(
        secret: impl Into<String>,
        ttl: Duration,
        urls: Vec<String>,
    ) -> Result<Self, TurnConfigError> {
        let secret = secret.into();
        if secret.is_empty() {
            return Err(TurnConfigError::EmptySecret);
        }
        if urls.is_empty() {
            return Err(TurnConfigError::NoUrls);
        }
        if let Some(url) = urls.iter().find(|u| !has_ice_scheme(u)) {
            return Err(TurnConfigError::BadScheme { url: url.clone() });
        }
        Ok(Self { secret, ttl, urls })
    }

    /// The lifetime of an issued credential.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The URLs handed out with each credential.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// A credential for `user`, valid until `now_unix_secs + ttl` (saturating).
    #[must_use]
    pub fn issue(&self, user: &str, now_unix_secs: u64) -> IceServer {
        let expiry = now_unix_secs.saturating_add(self.ttl.as_secs());
        let username = format!("{expiry}:{user}");
        let credential = Self::credential(self.secret.as_bytes(), &username);
        IceServer {
            urls: self.urls.clone(),
            username: Some(username),
            credential: Some(credential),
        }
    }

    /// `base64(HMAC-SHA1(secret, username))`, standard alphabet with padding: the password a
    /// TURN server with `use-auth-secret` expects for `username`.
    #[must_use]
    pub fn credential(secret: &[u8], username: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(mac(secret, username))
    }

    /// Checks a username/credential pair against `secret` at `now_unix_secs`, as the TURN
    /// server would: the username must be `"<expiry>:<user>"`, the credential must match
    /// (compared in constant time), and the expiry must not be before `now_unix_secs` (a
    /// credential is still valid during its expiry second, as in coturn).
    pub fn verify(
        secret: &[u8],
        username: &str,
        credential: &str,
        now_unix_secs: u64,
    ) -> Result<(), TurnCredentialError> {
        let expiry = parse_expiry(username).ok_or(TurnCredentialError::MalformedUsername)?;
        let expected = Self::credential(secret, username);
        // Credentials have a fixed public length (28 bytes), so only the content must be
        // compared without early exit; `ct_eq` on slices of different lengths is false.
        if !bool::from(expected.as_bytes().ct_eq(credential.as_bytes())) {
            return Err(TurnCredentialError::Mismatch);
        }
        if expiry < now_unix_secs {
            return Err(TurnCredentialError::Expired {
                expiry,
                now: now_unix_secs,
            });
        }
        Ok(())
    }
}

fn mac(secret: &[u8], username: &str) -> [u8; 20] {
    // HMAC takes keys of any length (longer ones are hashed), so `new_from_slice` cannot fail.
    #[allow(clippy::expect_used)]
    let mut m = HmacSha1::new_from_slice(secret).expect("HMAC accepts keys of any length");
    m.update(username.as_bytes());
    m.finalize().into_bytes().into()
}

fn parse_expiry(username: &str) -> Option<u64> {
    let (ts, _user) = username.split_once(':')?;
    if ts.is_empty() || ts.len() > 20 || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    ts.parse().ok()
}

fn has_ice_scheme(url: &str) -> bool {
    ["turn:", "turns:", "stun:", "stuns:"].iter().any(|s| {
        url.get(..s.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(s))
    })
}

/// The `iceServers` a server hands to each client: STUN URLs as they are, and TURN URLs with a
/// freshly issued [`TurnRestCredentials`] credential.
///
/// Deserializes from `{ "stun": [...], "turn": { ... } }`; both fields are optional. Clients
/// never choose these servers: a server that forwards a client's `ice_servers` to other peers
/// would let that client point them at any host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IceServersConfig {
    /// `stun:` URLs, handed out as one entry without credentials (omitted when empty).
    pub stun: Vec<String>,
    /// TURN servers with REST-API credentials.
    pub turn: Option<TurnRestCredentials>,
}

impl IceServersConfig {
    /// The `iceServers` list for `user` at `now_unix_secs`: the STUN entry first (if any),
    /// then the TURN entry (if configured).
    #[must_use]
    pub fn for_user(&self, user: &str, now_unix_secs: u64) -> Vec<IceServer> {
        let mut out = Vec::with_capacity(2);
        if !self.stun.is_empty() {
            out.push(IceServer {
                urls: self.stun.clone(),
                username: None,
                credential: None,
            });
        }
        if let Some(turn) = &self.turn {
            out.push(turn.issue(user, now_unix_secs));
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// IP networks
// ---------------------------------------------------------------------------------------------

/// An IPv4 or IPv6 network in CIDR notation: an address whose host bits are zero, and a prefix
/// length.
///
/// - Parses `"10.0.0.0/8"`, `"fd00::/8"`, and a single address (`"192.168.1.7"` is
///   `192.168.1.7/32`, `"::1"` is `::1/128`). Host bits set (`"10.0.0.1/8"`) are an error, not
///   silently masked: in a deny list such an entry is more likely a typo than intent. Use
///   [`IpNet::trunc`] to mask deliberately.
/// - `Display` always writes the prefix (`192.168.1.7/32`), and parsing that text gives the same
///   network back.
/// - [`IpNet::contains`] treats IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) as the IPv4
///   address they carry, in both directions: `::ffff:10.1.2.3` is inside `10.0.0.0/8`, and
///   `10.1.2.3` is inside `::ffff:0:0/96`. Deprecated IPv4-compatible addresses (`::a.b.c.d`)
///   are not translated.
/// - Serde reads and writes the text form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// Why an [`IpNet`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IpNetError {
    /// The address part is not an IPv4 or IPv6 address.
    #[error("invalid IP address")]
    BadAddress,
    /// The prefix after `/` is not 1 to 3 ASCII digits.
    #[error("invalid prefix length")]
    BadPrefix,
    /// The prefix is longer than the address (32 for IPv4, 128 for IPv6).
    #[error("prefix /{prefix} is longer than {max} bits")]
    PrefixTooLong {
        /// The prefix given.
        prefix: u16,
        /// 32 or 128.
        max: u8,
    },
    /// Bits after the prefix are set (`10.0.0.1/8`). Write the network address, or use
    /// [`IpNet::trunc`].
    #[error("host bits set after the prefix")]
    HostBitsSet,
}

const fn v4net(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> IpNet {
    IpNet {
        addr: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        prefix,
    }
}

const fn v6net(segments: [u16; 8], prefix: u8) -> IpNet {
    let [a, b, c, d, e, f, g, h] = segments;
    IpNet {
        addr: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
        prefix,
    }
}

impl IpNet {
    /// A network from its address and prefix length; refuses a prefix longer than the address
    /// and set host bits.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, IpNetError> {
        let net = Self::trunc(addr, prefix)?;
        if net.addr != addr {
            return Err(IpNetError::HostBitsSet);
        }
        Ok(net)
    }

    /// The network of `prefix` bits containing `addr`: host bits are cleared. Refuses only a
    /// prefix longer than the address.
    pub fn trunc(addr: IpAddr, prefix: u8) -> Result<Self, IpNetError> {
        let max = max_prefix(addr);
        if prefix > max {
            return Err(IpNetError::PrefixTooLong {
                prefix: prefix.into(),
                max,
            });
        }
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(prefix))),
        };
        Ok(Self { addr, prefix })
    }

    /// The network address (host bits zero).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is inside this network. IPv4-mapped IPv6 addresses count as their IPv4
    /// address (see the [type documentation](IpNet)).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => contains32(net, self.prefix, ip),
            (IpAddr::V4(net), IpAddr::V6(ip)) => ip
                .to_ipv4_mapped()
                .is_some_and(|ip| contains32(net, self.prefix, ip)),
            (IpAddr::V6(net), IpAddr::V6(ip)) => contains128(net, self.prefix, ip),
            (IpAddr::V6(net), IpAddr::V4(ip)) => contains128(net, self.prefix, ip.to_ipv6_mapped()),
        }
    }

    /// The RFC 1918 private IPv4 networks: `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`.
    /// Config name `"private-v4"`.
    pub const fn private_v4() -> [IpNet; 3] {
        [
            v4net(10, 0, 0, 0, 8),
            v4net(172, 16, 0, 0, 12),
            v4net(192, 168, 0, 0, 16),
        ]
    }

    /// Loopback: `127.0.0.0/8` (RFC 1122) and `::1/128` (RFC 4291). Config name `"loopback"`.
    pub const fn loopback() -> [IpNet; 2] {
        [v4net(127, 0, 0, 0, 8), v6net([0, 0, 0, 0, 0, 0, 0, 1], 128)]
    }

    /// Link-local: `169.254.0.0/16` (RFC 3927) and `fe80::/10` (RFC 4291). Config name
    /// `"link-local"`.
    pub const fn link_local() -> [IpNet; 2] {
        [
            v4net(169, 254, 0, 0, 16),
            v6net([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
        ]
    }

    /// IPv6 unique local addresses: `fc00::/7` (RFC 4193). Config name `"ula-v6"`.
    pub const fn ula_v6() -> IpNet {
        v6net([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7)
    }

    /// Carrier-grade NAT shared address space: `100.64.0.0/10` (RFC 6598). Config name
    /// `"cgnat"`.
    pub const fn cgnat() -> IpNet {
        v4net(100, 64, 0, 0, 10)
    }

    /// The networks of a named set, as a configuration may write them in a network list
    /// ([`CandidatePolicy::deny`] / [`CandidatePolicy::allow`]): `"private-v4"`, `"loopback"`,
    /// `"link-local"`, `"ula-v6"`, `"cgnat"`. `None` for any other name.
    pub fn named(name: &str) -> Option<Vec<IpNet>> {
        Some(match name {
            "private-v4" => Self::private_v4().to_vec(),
            "loopback" => Self::loopback().to_vec(),
            "link-local" => Self::link_local().to_vec(),
            "ula-v6" => vec![Self::ula_v6()],
            "cgnat" => vec![Self::cgnat()],
            _ => return None,
        })
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

fn contains32(net: Ipv4Addr, prefix: u8, ip: Ipv4Addr) -> bool {
    u32::from(ip) & mask32(prefix) == u32::from(net)
}

fn contains128(net: Ipv6Addr, prefix: u8, ip: Ipv6Addr) -> bool {
    u128::from(ip) & mask128(prefix) == u128::from(net)
}

impl FromStr for IpNet {
    type Err = IpNetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        // std's parsers refuse zone ids, brackets and zero-padded IPv4 octets.
        let addr = IpAddr::from_str(addr).map_err(|_| IpNetError::BadAddress)?;
        let prefix = match prefix {
            None => max_prefix(addr),
            Some(p) => {
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(IpNetError::BadPrefix);
                }
                let n: u16 = p.parse().map_err(|_| IpNetError::BadPrefix)?;
                u8::try_from(n)
                    .ok()
                    .filter(|&n| n <= max_prefix(addr))
                    .ok_or(IpNetError::PrefixTooLong {
                        prefix: n,
                        max: max_prefix(addr),
                    })?
            }
        };
        Self::new(addr, prefix)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for IpNet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse()
            .map_err(|e| serde::de::Error::custom(format_args!("network {s:?}: {e}")))
    }
}

/// Reads a list of networks where each entry is a CIDR text, a single address, or the name of a
/// set from [`IpNet::named`].
fn net_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let entries = <Vec<String>>::deserialize(d)?;
    let mut out = Vec::with_capacity(entries.len());
    for e in &entries {
        match IpNet::named(e) {
            Some(set) => out.extend(set),
            None => out.push(e.parse().map_err(|err| {
                serde::de::Error::custom(format_args!(
                    "network {e:?}: {err} (or use a named set: private-v4, loopback, \
                     link-local, ula-v6, cgnat)"
                ))
            })?),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Candidate policy
// ---------------------------------------------------------------------------------------------

/// Which ICE candidates may pass (an IP-leak filter). The default lets everything through.
///
/// [`check`](Self::check) applies the rules in this order; the first that matches decides:
///
/// 1. `relay_only`: anything but `typ relay` is [`Filtered::NotRelay`].
/// 2. `drop_host`: `typ host` is [`Filtered::Host`] (mDNS host candidates included).
/// 3. `drop_mdns`: a `*.local` connection address is [`Filtered::Mdns`].
/// 4. `deny`: a connection address inside a listed network is [`Filtered::Denied`]; with
///    `check_related`, so is a related address (`raddr`) inside one, which is how a srflx or
///    relay candidate leaks the private address behind it. Chrome's placeholder `raddr 0.0.0.0`
///    is checked like any other address, so only a deny entry that covers it (`0.0.0.0/8`)
///    drops it.
/// 5. `allow`: when non-empty, a connection address outside every listed network is
///    [`Filtered::NotAllowed`]. A name address (mDNS or other FQDN) cannot be inside a network
///    and is therefore not allowed: the list fails closed. `allow` looks at the connection
///    address only, never at `raddr`.
///
/// Deny entries do not match name addresses (there is no IP to compare); use `drop_mdns` for
/// those.
///
/// Deserializes from `{ drop_host, drop_mdns, relay_only, deny, allow, check_related }`, every
/// field optional; a network list entry is a CIDR text (`"10.0.0.0/8"`), a single address
/// (`"192.168.1.7"`), or a named set (`"private-v4"`, see [`IpNet::named`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CandidatePolicy {
    /// Drop `typ host` candidates.
    pub drop_host: bool,
    /// Drop candidates whose connection address is an mDNS name (`*.local`).
    pub drop_mdns: bool,
    /// Drop everything but `typ relay`.
    pub relay_only: bool,
    /// Drop candidates whose connection address (and, with `check_related`, related address) is
    /// inside one of these networks.
    #[serde(deserialize_with = "net_list")]
    pub deny: Vec<IpNet>,
    /// When non-empty, only candidates whose connection address is inside one of these networks
    /// pass.
    #[serde(deserialize_with = "net_list")]
    pub allow: Vec<IpNet>,
    /// Also check the related address (`raddr`) against `deny`.
    pub check_related: bool,
}

/// Why [`CandidatePolicy::check`] dropped a candidate. Not an error of the peer: the candidate
/// is valid, the server's policy does not forward it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Filtered {
    /// A host candidate, and the policy drops host candidates.
    #[error("host candidate dropped by policy")]
    Host,
    /// An mDNS (`*.local`) address, and the policy drops those.
    #[error("mDNS candidate dropped by policy")]
    Mdns,
    /// Not a relay candidate, and the policy is relay-only.
    #[error("non-relay candidate dropped by relay-only policy")]
    NotRelay,
    /// An address inside a denied network.
    #[error("{} inside denied network {net}", if *.related { "related address" } else { "address" })]
    Denied {
        /// The first deny entry that matched.
        net: IpNet,
        /// Whether it was the related address (`raddr`) that matched, not the connection
        /// address.
        related: bool,
    },
    /// The connection address is outside every allowed network (or is a name).
    #[error("address outside the allowed networks")]
    NotAllowed,
}

impl CandidatePolicy {
    /// A policy that lets every candidate through (same as `Default`).
    pub fn allow_all() -> Self {
        Self::default()
    }

    /// Whether the policy lets every candidate through, so callers can skip it.
    pub fn is_allow_all(&self) -> bool {
        *self == Self::default()
    }

    /// Checks one candidate; `Err` says why the policy drops it. See the
    /// [type documentation](CandidatePolicy) for the order of the rules.
    pub fn check(&self, c: &Candidate) -> Result<(), Filtered> {
        let kind = c.kind_ref();
        if self.relay_only && *kind != CandidateType::Relay {
            return Err(Filtered::NotRelay);
        }
        if self.drop_host && *kind == CandidateType::Host {
            return Err(Filtered::Host);
        }
        let addr = c.address();
        if self.drop_mdns && addr.is_mdns() {
            return Err(Filtered::Mdns);
        }
        if let Some(net) = self.denied(addr) {
            return Err(Filtered::Denied {
                net,
                related: false,
            });
        }
        if self.check_related {
            if let Some(net) = c.related_address().and_then(|r| self.denied(r)) {
                return Err(Filtered::Denied { net, related: true });
            }
        }
        if !self.allow.is_empty() {
            let allowed = addr
                .ip()
                .is_some_and(|ip| self.allow.iter().any(|n| n.contains(ip)));
            if !allowed {
                return Err(Filtered::NotAllowed);
            }
        }
        Ok(())
    }

    fn denied(&self, addr: &Address) -> Option<IpNet> {
        let ip = addr.ip()?;
        self.deny.iter().copied().find(|n| n.contains(ip))
    }
}
