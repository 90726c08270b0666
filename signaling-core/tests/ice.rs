//! TURN REST credentials, `iceServers` assembly, `IpNet` and the candidate privacy policy.
#![allow(missing_docs)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use proptest::prelude::*;
use signaling_core::candidate::Candidate;
use signaling_core::ice::{
    CandidatePolicy, Filtered, IceServersConfig, IpNet, IpNetError, TurnConfigError,
    TurnCredentialError, TurnRestCredentials,
};

// ----- TURN REST -------------------------------------------------------------------------------

// Expected values computed independently, outside this crate:
//   python3 -c 'import hmac,hashlib,base64; print(base64.b64encode(hmac.new(b"secret",
//       b"1732406400:alice", hashlib.sha1).digest()).decode())'
//   echo -n "1732406400:alice" | openssl dgst -sha1 -hmac secret -binary | base64
// both print the same.
const VECTOR_SECRET: &[u8] = b"secret";
const VECTOR_USERNAME: &str = "1732406400:alice";
const VECTOR_CREDENTIAL: &str = "owzw19XyaJ8krQc1VoihruuBls4=";

fn net(s: &str) -> IpNet {
    match s.parse() {
        Ok(n) => n,
        Err(e) => panic!("{s:?} should parse: {e}"),
    }
}

fn turn(secret: &str, ttl: u64) -> TurnRestCredentials {
    match TurnRestCredentials::new(
        secret,
        Duration::from_secs(ttl),
        vec!["turn:turn.example.org:3478?transport=udp".into()],
    ) {
        Ok(t) => t,
        Err(e) => panic!("valid config refused: {e}"),
    }
}

#[test]
fn hmac_vector() {
    assert_eq!(
        TurnRestCredentials::credential(VECTOR_SECRET, VECTOR_USERNAME),
        VECTOR_CREDENTIAL
    );
    // Same procedure (python3 and openssl): a user name containing `:` and a key longer than
    // the SHA-1 block (hashed first by HMAC).
    assert_eq!(
        TurnRestCredentials::credential(b"north", "1700003600:bob:laptop"),
        "sPda7Ft2mBXYRsxDB8KaUTYwDPQ="
    );
    assert_eq!(
        TurnRestCredentials::credential(&[b'a'; 100], "1:x"),
        "8/aKpqyKrFYN7/UF8TI02P0UFe0="
    );
}

#[test]
fn issue_uses_expiry_not_creation_time() {
    let t = turn("secret", 86_400);
    let s = t.issue("alice", 1_732_406_400 - 86_400);
    assert_eq!(s.username.as_deref(), Some(VECTOR_USERNAME));
    assert_eq!(s.credential.as_deref(), Some(VECTOR_CREDENTIAL));
    assert_eq!(s.urls, vec!["turn:turn.example.org:3478?transport=udp"]);
}

#[test]
fn issue_saturates_at_u64_max() {
    let t = turn("secret", 10);
    let s = t.issue("x", u64::MAX - 3);
    assert_eq!(s.username, Some(format!("{}:x", u64::MAX)));
}

#[test]
fn verify_accepts_until_expiry_inclusive() {
    let ok =
        |now| TurnRestCredentials::verify(VECTOR_SECRET, VECTOR_USERNAME, VECTOR_CREDENTIAL, now);
    assert_eq!(ok(0), Ok(()));
    assert_eq!(ok(1_732_406_400), Ok(()));
    assert_eq!(
        ok(1_732_406_401),
        Err(TurnCredentialError::Expired {
            expiry: 1_732_406_400,
            now: 1_732_406_401
        })
    );
}

#[test]
fn verify_rejects_wrong_and_malformed() {
    let v = |secret: &[u8], user: &str, cred: &str| {
        TurnRestCredentials::verify(secret, user, cred, 1_700_000_000)
    };
    assert_eq!(
        v(b"other", VECTOR_USERNAME, VECTOR_CREDENTIAL),
        Err(TurnCredentialError::Mismatch)
    );
    assert_eq!(
        v(VECTOR_SECRET, "1732406400:mallory", VECTOR_CREDENTIAL),
        Err(TurnCredentialError::Mismatch)
    );
    assert_eq!(
        v(
            VECTOR_SECRET,
            VECTOR_USERNAME,
            "owzw19XyaJ8krQc1VoihruuBls4"
        ),
        Err(TurnCredentialError::Mismatch)
    );
    assert_eq!(
        v(VECTOR_SECRET, VECTOR_USERNAME, ""),
        Err(TurnCredentialError::Mismatch)
    );
    // An expired credential with the wrong MAC is a mismatch, not "expired".
    assert_eq!(
        TurnRestCredentials::verify(b"other", VECTOR_USERNAME, VECTOR_CREDENTIAL, u64::MAX),
        Err(TurnCredentialError::Mismatch)
    );
    for bad in [
        "alice",
        "alice:1732406400",
        ":alice",
        "-1:alice",
        "+1:alice",
        " 1:alice",
        "99999999999999999999:alice",
        "123456789012345678901:alice",
        "",
    ] {
        assert_eq!(
            v(VECTOR_SECRET, bad, VECTOR_CREDENTIAL),
            Err(TurnCredentialError::MalformedUsername),
            "{bad:?}"
        );
    }
}

#[test]
fn user_names_may_contain_colons() {
    let t = turn("north", 3600);
    let s = t.issue("bob:laptop", 1_700_000_000);
    assert_eq!(s.username.as_deref(), Some("1700003600:bob:laptop"));
    assert_eq!(
        s.credential.as_deref(),
        Some("sPda7Ft2mBXYRsxDB8KaUTYwDPQ=")
    );
    assert_eq!(
        TurnRestCredentials::verify(
            b"north",
            "1700003600:bob:laptop",
            "sPda7Ft2mBXYRsxDB8KaUTYwDPQ=",
            1_700_000_001
        ),
        Ok(())
    );
}

#[test]
fn turn_config_is_validated() {
    let urls = || vec!["turns:turn.example.org:5349".to_owned()];
    assert_eq!(
        TurnRestCredentials::new("", Duration::ZERO, urls()),
        Err(TurnConfigError::EmptySecret)
    );
    assert_eq!(
        TurnRestCredentials::new("s", Duration::ZERO, vec![]),
        Err(TurnConfigError::NoUrls)
    );
    assert_eq!(
        TurnRestCredentials::new("s", Duration::ZERO, vec!["http://x".into()]),
        Err(TurnConfigError::BadScheme {
            url: "http://x".into()
        })
    );
    let t = turn("hunter2", 1);
    assert!(!format!("{t:?}").contains("hunter2"));
}

#[test]
fn ice_servers_config_from_json() {
    let cfg: IceServersConfig = serde_json::from_str(
        r#"{"stun":["stun:stun.example.org:3478"],
            "turn":{"secret":"secret","urls":["turn:t.example.org"]}}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let list = cfg.for_user("alice", 1_732_406_400 - 86_400);
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].urls, vec!["stun:stun.example.org:3478"]);
    assert_eq!(list[0].username, None);
    assert_eq!(list[1].username.as_deref(), Some(VECTOR_USERNAME));
    assert_eq!(list[1].credential.as_deref(), Some(VECTOR_CREDENTIAL));
    // Serialized as the browser's RTCIceServer.
    let json = serde_json::to_value(&list[1]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        json,
        serde_json::json!({"urls":["turn:t.example.org"],"username":VECTOR_USERNAME,
                           "credential":VECTOR_CREDENTIAL})
    );

    assert!(IceServersConfig::default().for_user("a", 0).is_empty());
    for bad in [
        r#"{"turn":{"secret":"","urls":["turn:x"]}}"#,
        r#"{"turn":{"secret":"s","urls":[]}}"#,
        r#"{"turn":{"secret":"s","urls":["turn:x"],"ttl":5}}"#,
        r#"{"stunn":[]}"#,
    ] {
        assert!(
            serde_json::from_str::<IceServersConfig>(bad).is_err(),
            "{bad}"
        );
    }
}

// ----- IpNet -----------------------------------------------------------------------------------

#[test]
fn ipnet_parse_and_display() {
    assert_eq!(net("10.0.0.0/8").to_string(), "10.0.0.0/8");
    assert_eq!(net("192.168.1.7").to_string(), "192.168.1.7/32");
    assert_eq!(net("fd00::/8").to_string(), "fd00::/8");
    assert_eq!(net("::1").to_string(), "::1/128");
    assert_eq!(net("0.0.0.0/0").to_string(), "0.0.0.0/0");
    assert_eq!("10.0.0.1/8".parse::<IpNet>(), Err(IpNetError::HostBitsSet));
    assert_eq!("fd00::1/8".parse::<IpNet>(), Err(IpNetError::HostBitsSet));
    assert_eq!(
        "10.0.0.0/33".parse::<IpNet>(),
        Err(IpNetError::PrefixTooLong {
            prefix: 33,
            max: 32
        })
    );
    assert_eq!(
        "::/300".parse::<IpNet>(),
        Err(IpNetError::PrefixTooLong {
            prefix: 300,
            max: 128
        })
    );
    for bad_prefix in [
        "10.0.0.0/",
        "10.0.0.0/+8",
        "10.0.0.0/-8",
        "10.0.0.0/1000",
        "::/ 8",
    ] {
        assert_eq!(
            bad_prefix.parse::<IpNet>(),
            Err(IpNetError::BadPrefix),
            "{bad_prefix}"
        );
    }
    for bad_addr in [
        "",
        "10.0.0",
        "010.0.0.0/8",
        "fe80::1%eth0",
        "[::1]",
        "example.org/8",
        "/8",
    ] {
        assert_eq!(
            bad_addr.parse::<IpNet>(),
            Err(IpNetError::BadAddress),
            "{bad_addr}"
        );
    }
    assert_eq!(
        IpNet::trunc(
            "10.1.2.3"
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            8
        ),
        Ok(net("10.0.0.0/8"))
    );
}

#[test]
fn ipnet_named_sets() {
    let s = |v: &[IpNet]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(
        s(&IpNet::private_v4()),
        ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
    );
    assert_eq!(s(&IpNet::loopback()), ["127.0.0.0/8", "::1/128"]);
    assert_eq!(s(&IpNet::link_local()), ["169.254.0.0/16", "fe80::/10"]);
    assert_eq!(IpNet::ula_v6().to_string(), "fc00::/7");
    assert_eq!(IpNet::cgnat().to_string(), "100.64.0.0/10");
    assert_eq!(
        IpNet::named("private-v4"),
        Some(IpNet::private_v4().to_vec())
    );
    assert_eq!(IpNet::named("cgnat"), Some(vec![IpNet::cgnat()]));
    assert_eq!(IpNet::named("private"), None);
}

#[test]
fn ipnet_contains_and_mapped_addresses() {
    let ip = |s: &str| -> IpAddr { s.parse().unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED)) };
    let n = net("10.0.0.0/8");
    assert!(n.contains(ip("10.255.1.2")));
    assert!(!n.contains(ip("11.0.0.0")));
    assert!(n.contains(ip("::ffff:10.1.2.3")));
    assert!(
        !n.contains(ip("::10.1.2.3")),
        "IPv4-compatible is not mapped"
    );
    assert!(!n.contains(ip("fd00::1")));
    assert!(net("::ffff:0:0/96").contains(ip("10.1.2.3")));
    assert!(net("fd00::/8").contains(ip("fd12:3456::1")));
    assert!(!net("fd00::/8").contains(ip("fe80::1")));
    assert!(net("0.0.0.0/0").contains(ip("1.2.3.4")));
    assert!(!net("0.0.0.0/0").contains(ip("2001:db8::1")));
    assert!(
        net("::/0").contains(ip("1.2.3.4")),
        "v4 is inside ::/0 as a mapped address"
    );
}

#[test]
fn ipnet_serde() {
    let v: Vec<IpNet> =
        serde_json::from_str(r#"["10.0.0.0/8","192.168.1.7"]"#).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v, vec![net("10.0.0.0/8"), net("192.168.1.7/32")]);
    assert_eq!(
        serde_json::to_string(&v).unwrap_or_default(),
        r#"["10.0.0.0/8","192.168.1.7/32"]"#
    );
    assert!(serde_json::from_str::<IpNet>(r#""10.0.0.1/8""#).is_err());
}

fn arb_net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (any::<u32>(), 0u8..=32).prop_map(|(a, p)| IpNet::trunc(IpAddr::V4(a.into()), p)),
        (any::<u128>(), 0u8..=128).prop_map(|(a, p)| IpNet::trunc(IpAddr::V6(a.into()), p)),
    ]
    .prop_filter_map("prefix in range", Result::ok)
}

proptest! {
    #[test]
    fn ipnet_display_round_trips(n in arb_net()) {
        prop_assert_eq!(n.to_string().parse::<IpNet>(), Ok(n));
    }

    #[test]
    fn ipnet_contains_v4_matches_reference(a in any::<u32>(), p in 0u8..=32, x in any::<u32>(), near in any::<bool>()) {
        let x = if near && p < 32 { (a & !(u32::MAX >> p)) | (x & (u32::MAX >> p)) } else { x };
        let n = IpNet::trunc(IpAddr::V4(a.into()), p).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // Reference: compare the top `p` bits by shifting (no masks).
        let expect = p == 0 || (a >> (32 - u32::from(p))) == (x >> (32 - u32::from(p)));
        prop_assert_eq!(n.contains(IpAddr::V4(x.into())), expect);
        prop_assert_eq!(n.contains(IpAddr::V6(Ipv4Addr::from(x).to_ipv6_mapped())), expect);
        // The network's own address is inside.
        prop_assert!(n.contains(n.addr()));
    }

    #[test]
    fn ipnet_contains_v6_matches_reference(a in any::<u128>(), p in 0u8..=128, x in any::<u128>(), near in any::<bool>()) {
        // Half of the cases share the prefix, so both outcomes are exercised.
        let x = if near && p < 128 { (a & !(u128::MAX >> p)) | (x & (u128::MAX >> p)) } else { x };
        let n = IpNet::trunc(IpAddr::V6(a.into()), p).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let expect = p == 0 || (a >> (128 - u32::from(p))) == (x >> (128 - u32::from(p)));
        prop_assert_eq!(n.contains(IpAddr::V6(x.into())), expect);
    }

}

// ----- Candidate policy ------------------------------------------------------------------------

const CHROME_SRFLX: &str = "candidate:842163049 1 udp 1677729535 203.0.113.7 54400 typ srflx raddr 192.168.1.2 rport 54400 generation 0 ufrag EsAw network-id 1 network-cost 10";
const CHROME_HOST: &str = "candidate:4234997325 1 udp 2043278322 192.168.1.2 44323 typ host generation 0 ufrag EsAw network-id 1";
const CHROME_MDNS: &str = "candidate:2194195233 1 udp 2122260223 4c1b4e9f-3d1e-4f57-9d3c-2f5d0a6f1c2b.local 59046 typ host generation 0 ufrag 6fX4 network-cost 999";
const CHROME_SRFLX_HIDDEN: &str = "candidate:1813185545 1 udp 1685921535 203.0.113.7 61012 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag 6fX4 network-cost 999";
const CHROME_RELAY: &str = "candidate:3010290624 1 udp 41885695 198.51.100.20 57220 typ relay raddr 203.0.113.7 rport 61012 generation 0 ufrag 6fX4 network-cost 999";
const CHROME_HOST_V6: &str = "candidate:3394016544 1 udp 2122197247 2001:db8:1:2::9 50601 typ host generation 0 ufrag EsAw network-id 2";
const CHROME_HOST_ULA: &str = "candidate:1145023913 1 udp 2122197247 fd12:3456:789a::5 50602 typ host generation 0 ufrag EsAw network-id 3";
const CHROME_TCP_HOST: &str = "candidate:1467250027 1 tcp 1518280447 192.168.1.2 9 typ host tcptype active generation 0 ufrag EsAw network-id 1";

fn cand(s: &str) -> Candidate {
    Candidate::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn policy(json: &str) -> CandidatePolicy {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

#[test]
fn default_policy_allows_everything() {
    let p = CandidatePolicy::default();
    assert!(p.is_allow_all());
    assert_eq!(policy("{}"), p);
    for c in [
        CHROME_SRFLX,
        CHROME_HOST,
        CHROME_MDNS,
        CHROME_SRFLX_HIDDEN,
        CHROME_RELAY,
        CHROME_HOST_V6,
        CHROME_HOST_ULA,
        CHROME_TCP_HOST,
    ] {
        assert_eq!(p.check(&cand(c)), Ok(()), "{c}");
    }
}

#[test]
fn drop_host_and_mdns() {
    let p = policy(r#"{"drop_host":true}"#);
    assert_eq!(p.check(&cand(CHROME_HOST)), Err(Filtered::Host));
    assert_eq!(p.check(&cand(CHROME_TCP_HOST)), Err(Filtered::Host));
    assert_eq!(p.check(&cand(CHROME_MDNS)), Err(Filtered::Host));
    assert_eq!(p.check(&cand(CHROME_SRFLX)), Ok(()));
    assert_eq!(p.check(&cand(CHROME_RELAY)), Ok(()));

    let p = policy(r#"{"drop_mdns":true}"#);
    assert_eq!(p.check(&cand(CHROME_MDNS)), Err(Filtered::Mdns));
    assert_eq!(p.check(&cand(CHROME_HOST)), Ok(()));
}

#[test]
fn relay_only() {
    let p = policy(r#"{"relay_only":true}"#);
    assert_eq!(p.check(&cand(CHROME_RELAY)), Ok(()));
    for c in [CHROME_HOST, CHROME_SRFLX, CHROME_MDNS, CHROME_HOST_V6] {
        assert_eq!(p.check(&cand(c)), Err(Filtered::NotRelay), "{c}");
    }
}

#[test]
fn deny_private_ranges_with_related_address() {
    let p = policy(r#"{"deny":["private-v4","ula-v6"]}"#);
    assert_eq!(
        p.check(&cand(CHROME_HOST)),
        Err(Filtered::Denied {
            net: net("192.168.0.0/16"),
            related: false
        })
    );
    assert_eq!(
        p.check(&cand(CHROME_HOST_ULA)),
        Err(Filtered::Denied {
            net: net("fc00::/7"),
            related: false
        })
    );
    assert_eq!(p.check(&cand(CHROME_HOST_V6)), Ok(()));
    // Deny does not match names.
    assert_eq!(p.check(&cand(CHROME_MDNS)), Ok(()));
    // Without check_related, the srflx candidate passes although its raddr is private.
    assert_eq!(p.check(&cand(CHROME_SRFLX)), Ok(()));

    let p = policy(r#"{"deny":["private-v4"],"check_related":true}"#);
    assert_eq!(
        p.check(&cand(CHROME_SRFLX)),
        Err(Filtered::Denied {
            net: net("192.168.0.0/16"),
            related: true
        })
    );
    // Chrome's placeholder raddr 0.0.0.0 is not private.
    assert_eq!(p.check(&cand(CHROME_SRFLX_HIDDEN)), Ok(()));
    assert_eq!(p.check(&cand(CHROME_RELAY)), Ok(()));

    // A single address in the deny list.
    let p = policy(r#"{"deny":["203.0.113.7"],"check_related":true}"#);
    assert_eq!(
        p.check(&cand(CHROME_RELAY)),
        Err(Filtered::Denied {
            net: net("203.0.113.7/32"),
            related: true
        })
    );
}

#[test]
fn allow_list_fails_closed_on_names() {
    let p = policy(r#"{"allow":["198.51.100.0/24","2001:db8::/32"]}"#);
    assert_eq!(p.check(&cand(CHROME_RELAY)), Ok(()));
    assert_eq!(p.check(&cand(CHROME_HOST_V6)), Ok(()));
    assert_eq!(p.check(&cand(CHROME_SRFLX)), Err(Filtered::NotAllowed));
    assert_eq!(p.check(&cand(CHROME_MDNS)), Err(Filtered::NotAllowed));
}

#[test]
fn rule_order() {
    // relay_only is checked before drop_host, drop_mdns before deny, deny before allow.
    let p = policy(r#"{"relay_only":true,"drop_host":true}"#);
    assert_eq!(p.check(&cand(CHROME_HOST)), Err(Filtered::NotRelay));
    let p = policy(r#"{"drop_mdns":true,"allow":["10.0.0.0/8"]}"#);
    assert_eq!(p.check(&cand(CHROME_MDNS)), Err(Filtered::Mdns));
    let p = policy(r#"{"deny":["192.168.1.0/24"],"allow":["10.0.0.0/8"]}"#);
    assert!(matches!(
        p.check(&cand(CHROME_HOST)),
        Err(Filtered::Denied { .. })
    ));
}

#[test]
fn policy_config_errors() {
    for bad in [
        r#"{"deny":["10.0.0.1/8"]}"#,
        r#"{"deny":["private"]}"#,
        r#"{"allow":["10.0.0.0/33"]}"#,
        r#"{"drop_hosts":true}"#,
        r#"{"deny":"10.0.0.0/8"}"#,
    ] {
        assert!(
            serde_json::from_str::<CandidatePolicy>(bad).is_err(),
            "{bad}"
        );
    }
    let e = serde_json::from_str::<CandidatePolicy>(r#"{"deny":["10.0.0.1/8"]}"#)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("10.0.0.1/8") && e.contains("host bits"), "{e}");
}
