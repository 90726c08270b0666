//! ICE candidate parsing and writing: browser examples, golden vectors, error cases, builder.
#![allow(missing_docs)]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Deserialize;
use signaling_core::candidate::{
    Address, Candidate, CandidateError, CandidateType, TcpType, TransportProtocol,
    MAX_CANDIDATE_LEN,
};

const CHROME_SRFLX: &str = "candidate:842163049 1 udp 1677729535 203.0.113.7 54400 typ srflx raddr 192.168.1.2 rport 54400 generation 0 ufrag EsAw network-id 1 network-cost 10";
const CHROME_HOST: &str = "candidate:4234997325 1 udp 2043278322 192.168.1.2 44323 typ host generation 0 ufrag EsAw network-id 1";
const CHROME_TCP: &str = "candidate:1467250027 1 tcp 1518280447 192.168.1.2 9 typ host tcptype active generation 0 ufrag EsAw network-id 1";
const CHROME_MDNS: &str = "candidate:2194195233 1 udp 2122260223 4c1b4e9f-3d1e-4f57-9d3c-2f5d0a6f1c2b.local 59046 typ host generation 0 ufrag 6fX4 network-cost 999";
const FIREFOX_UDP: &str = "candidate:0 1 UDP 2122252543 192.168.1.2 55423 typ host";
const FIREFOX_TCP: &str = "candidate:3 1 TCP 2105524479 192.168.1.2 9 typ host tcptype active";
const AIORTC: &str =
    "candidate:5ee3ad8f11a7a1f1e0b1d8b4cd4a6f5a 1 udp 2130706431 10.0.0.5 48637 typ host";
const RELAY_V6: &str = "candidate:1 1 udp 41819903 2001:db8::5 3478 typ relay raddr 203.0.113.7 rport 60000 generation 0";

fn parse(s: &str) -> Candidate {
    match Candidate::parse(s) {
        Ok(c) => c,
        Err(e) => panic!("{s:?} should parse: {e}"),
    }
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> Address {
    Address::Ip(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
}

#[test]
fn all_examples_round_trip_exactly() {
    for s in [
        CHROME_SRFLX,
        CHROME_HOST,
        CHROME_TCP,
        CHROME_MDNS,
        FIREFOX_UDP,
        FIREFOX_TCP,
        AIORTC,
        RELAY_V6,
    ] {
        let c = parse(s);
        assert_eq!(c.to_string(), s);
        assert_eq!(c.as_str(), s);
        assert_eq!(s.parse::<Candidate>(), Ok(c.clone()));
        assert_eq!(parse(&format!("a={s}")), c, "a= prefix is dropped");
    }
}

#[test]
fn chrome_srflx_fields() {
    let c = parse(CHROME_SRFLX);
    assert_eq!(c.foundation(), "842163049");
    assert_eq!(c.component(), 1);
    assert_eq!(c.transport(), &TransportProtocol::Udp);
    assert_eq!(c.transport_str(), "udp");
    assert_eq!(c.priority(), 1_677_729_535);
    assert_eq!(c.address(), &v4(203, 0, 113, 7));
    assert_eq!(c.address_str(), "203.0.113.7");
    assert_eq!(c.port(), 54400);
    assert_eq!(c.kind(), CandidateType::Srflx);
    assert_eq!(c.related_address(), Some(&v4(192, 168, 1, 2)));
    assert_eq!(c.related_port(), Some(54400));
    assert_eq!(c.tcp_type(), None);
    assert_eq!(c.ufrag(), Some("EsAw"));
    assert_eq!(c.generation(), Some(0));
    assert_eq!(c.extension("network-id"), Some("1"));
    assert_eq!(c.extension("network-cost"), Some("10"));
    assert_eq!(c.extension("nope"), None);
    let pairs: Vec<(&str, &str)> = c.extensions().collect();
    assert_eq!(
        pairs,
        [
            ("generation", "0"),
            ("ufrag", "EsAw"),
            ("network-id", "1"),
            ("network-cost", "10")
        ]
    );
    assert_eq!(c.extensions().len(), 4);
    let owned: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(c.extensions().to_vec(), owned);
}

#[test]
fn chrome_host_and_tcp_fields() {
    let c = parse(CHROME_HOST);
    assert_eq!(c.kind(), CandidateType::Host);
    assert_eq!(c.related_address(), None);
    assert_eq!(c.related_port(), None);
    assert_eq!(c.extension("network-id"), Some("1"));

    let c = parse(CHROME_TCP);
    assert_eq!(c.transport(), &TransportProtocol::Tcp);
    assert_eq!(c.port(), 9);
    assert_eq!(c.tcp_type(), Some(TcpType::Active));
    // tcptype is listed among the extensions, in its position.
    assert_eq!(c.extensions().next(), Some(("tcptype", "active")));
    assert_eq!(c.extensions().len(), 4);
    assert_eq!(c.ufrag(), Some("EsAw"));
}

#[test]
fn chrome_mdns_fields() {
    let c = parse(CHROME_MDNS);
    let name = "4c1b4e9f-3d1e-4f57-9d3c-2f5d0a6f1c2b.local";
    assert_eq!(c.address(), &Address::Fqdn(name.to_owned()));
    assert!(c.address().is_mdns());
    assert_eq!(c.address().ip(), None);
    assert_eq!(c.ufrag(), Some("6fX4"));
    assert_eq!(c.extension("network-cost"), Some("999"));
    assert_eq!(c.extension("network-id"), None);
    assert!(Address::Fqdn("X.LOCAL".into()).is_mdns());
    assert!(!Address::Fqdn("example.com".into()).is_mdns());
    assert!(!v4(1, 2, 3, 4).is_mdns());
}

#[test]
fn firefox_fields_keep_spelling() {
    let c = parse(FIREFOX_UDP);
    assert_eq!(c.foundation(), "0");
    assert_eq!(c.transport(), &TransportProtocol::Udp);
    assert_eq!(c.transport_str(), "UDP");
    assert_eq!(c.extensions().len(), 0);
    assert!(c.extensions().is_empty());
    assert_eq!(c.ufrag(), None);
    assert_eq!(c.generation(), None);

    let c = parse(FIREFOX_TCP);
    assert_eq!(c.transport(), &TransportProtocol::Tcp);
    assert_eq!(c.transport_str(), "TCP");
    assert_eq!(c.tcp_type(), Some(TcpType::Active));
    // Same candidate spelled differently is a different value (equality is textual).
    assert_ne!(c, parse(&FIREFOX_TCP.replace("TCP", "tcp")));
}

#[test]
fn aiortc_and_relay_v6_fields() {
    let c = parse(AIORTC);
    assert_eq!(c.foundation(), "5ee3ad8f11a7a1f1e0b1d8b4cd4a6f5a");
    assert_eq!(c.priority(), 2_130_706_431);
    assert_eq!(
        c.address().ip(),
        Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)))
    );

    let c = parse(RELAY_V6);
    assert_eq!(c.kind(), CandidateType::Relay);
    assert_eq!(
        c.address().ip(),
        Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 5)))
    );
    assert_eq!(c.related_address(), Some(&v4(203, 0, 113, 7)));
    assert_eq!(c.related_port(), Some(60000));
    assert_eq!(c.generation(), Some(0));
    assert_eq!(c.ufrag(), None);
}

#[test]
fn non_canonical_ipv6_text_is_kept() {
    let s = "candidate:1 1 udp 2122197247 2001:DB8:0::1 5000 typ host";
    let c = parse(s);
    assert_eq!(c.to_string(), s);
    assert_eq!(c.address_str(), "2001:DB8:0::1");
    assert_eq!(
        c.address().ip(),
        Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)))
    );
}

#[test]
fn keywords_are_case_insensitive_and_kept() {
    let s = "candidate:1 1 Udp 5 192.0.2.1 7 TYP Host RADDR 192.0.2.2 RPORT 8 TCPTYPE SO";
    let c = parse(s);
    assert_eq!(c.to_string(), s);
    assert_eq!(c.kind(), CandidateType::Host);
    assert_eq!(c.related_port(), Some(8));
    assert_eq!(c.tcp_type(), Some(TcpType::So));
}

#[test]
fn other_transport_and_type_hold_tokens() {
    let c = parse("candidate:1 1 dtls 5 192.0.2.1 7 typ weird");
    assert_eq!(c.transport(), &TransportProtocol::Other("dtls".into()));
    assert_eq!(c.kind(), CandidateType::Other("weird".into()));
    assert_eq!(c.kind_ref().as_str(), "weird");
}

#[test]
fn generation_must_be_a_number() {
    let c = parse("candidate:1 1 udp 5 192.0.2.1 7 typ host generation x");
    assert_eq!(c.generation(), None);
    let c = parse("candidate:1 1 udp 5 192.0.2.1 7 typ host generation 4294967296");
    assert_eq!(c.generation(), None);
    let c = parse("candidate:1 1 udp 5 192.0.2.1 7 typ host generation 4294967295");
    assert_eq!(c.generation(), Some(u32::MAX));
}

#[test]
fn raddr_and_rport_are_each_optional() {
    let c = parse("candidate:1 1 udp 5 192.0.2.1 7 typ srflx raddr 10.0.0.1");
    assert_eq!(c.related_address(), Some(&v4(10, 0, 0, 1)));
    assert_eq!(c.related_port(), None);
    let c = parse("candidate:1 1 udp 5 192.0.2.1 7 typ srflx rport 9 generation 0");
    assert_eq!(c.related_address(), None);
    assert_eq!(c.related_port(), Some(9));
    assert_eq!(c.generation(), Some(0));
}

#[test]
fn bounds_are_inclusive() {
    let c = parse(
        "candidate:12345678901234567890123456789012 256 udp 4294967295 192.0.2.1 65535 typ host",
    );
    assert_eq!(c.foundation().len(), 32);
    assert_eq!(c.component(), 256);
    assert_eq!(c.priority(), u32::MAX);
    assert_eq!(c.port(), u16::MAX);
    let c = parse("candidate:a+/Z 1 udp 0 192.0.2.1 0 typ host");
    assert_eq!(c.foundation(), "a+/Z");
}

#[test]
fn errors_are_precise() {
    use CandidateError as E;
    let e = |s: &str| Candidate::parse(s).err();
    assert_eq!(e(""), Some(E::Empty));
    assert_eq!(
        e("candidate:1 1 udp 5 192.0.2.1 7 typ host\r\n"),
        Some(E::ForbiddenCharacter {
            byte: b'\r',
            offset: 40
        })
    );
    assert_eq!(
        e("candidate:1 1 udp 5 192.0.2.1"),
        Some(E::MissingField { field: "port" })
    );
    assert_eq!(
        e("candidate:1 1"),
        Some(E::MissingField { field: "transport" })
    );
    assert_eq!(
        e("candidate:1 1 udp x 192.0.2.1 7 typ host"),
        Some(E::InvalidNumber { field: "priority" })
    );
    assert_eq!(
        e("candidate:1 1 udp 1 192.0.2.1 77777 typ host"),
        Some(E::OutOfRange { field: "port" })
    );
    assert_eq!(
        e("candidate:1 1 udp 1 192.0.2.1 7 typ srflx raddr 1.2.3.4 rport x"),
        Some(E::InvalidNumber { field: "rport" })
    );
    assert_eq!(
        e("candidate:1 1 udp 1 1.2.3.4.5 7 typ host"),
        Some(E::InvalidAddress {
            field: "connection-address"
        })
    );
    assert_eq!(
        e("candidate:1 1 udp 1 192.0.2.1 7 typ srflx raddr 1.2.3 rport 1"),
        Some(E::InvalidAddress { field: "raddr" })
    );
    // Offsets count from the start of the caller's input, `a=` included.
    assert_eq!(
        e("candidate:1 1 udp 1 192.0.2.1 7 typ host  x"),
        Some(E::ExtraWhitespace { offset: 41 })
    );
    assert_eq!(
        e("a=candidate:1 1 udp 1 192.0.2.1 7 typ host  x"),
        Some(E::ExtraWhitespace { offset: 43 })
    );
    assert_eq!(
        e("candidate:1 1 udp 1 192.0.2.1 7 typ host ufrag"),
        Some(E::MissingValue { offset: 41 })
    );
}

#[test]
fn length_bound_is_enforced_first() {
    let base = "candidate:1 1 udp 5 192.0.2.1 7 typ host x ";
    let mut s = String::from(base);
    s.push_str(&"y".repeat(MAX_CANDIDATE_LEN - base.len()));
    assert_eq!(s.len(), MAX_CANDIDATE_LEN);
    assert_eq!(parse(&s).to_string(), s);
    s.push('y');
    assert_eq!(
        Candidate::parse(&s),
        Err(CandidateError::TooLong {
            len: MAX_CANDIDATE_LEN + 1,
            max: MAX_CANDIDATE_LEN
        })
    );
    // CR/LF/NUL is reported even on overlong input.
    s.push('\n');
    assert!(matches!(
        Candidate::parse(&s),
        Err(CandidateError::ForbiddenCharacter { byte: b'\n', .. })
    ));
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    candidate: String,
    #[serde(rename = "type")]
    kind: String,
    address: String,
    port: u16,
    transport: String,
    ufrag: Option<String>,
    tcptype: Option<String>,
    raddr: Option<String>,
    rport: Option<u16>,
    generation: Option<u32>,
}

#[test]
fn golden_vectors() {
    let vectors: Vec<Vector> =
        serde_json::from_str(include_str!("vectors/candidates.json")).expect("valid vector file");
    assert!(vectors.len() >= 15);
    for v in vectors {
        let c = Candidate::parse(&v.candidate)
            .unwrap_or_else(|e| panic!("vector {} should parse: {e}", v.name));
        let expected = v.candidate.strip_prefix("a=").unwrap_or(&v.candidate);
        assert_eq!(c.to_string(), expected, "{}", v.name);
        assert_eq!(c.kind().as_str(), v.kind, "{}", v.name);
        assert_eq!(c.address_str(), v.address, "{}", v.name);
        assert_eq!(
            c.address(),
            &Address::parse(&v.address).expect("vector address"),
            "{}",
            v.name
        );
        assert_eq!(c.port(), v.port, "{}", v.name);
        assert_eq!(c.transport().as_str(), v.transport, "{}", v.name);
        assert_eq!(c.ufrag(), v.ufrag.as_deref(), "{}", v.name);
        assert_eq!(
            c.tcp_type().map(TcpType::as_str),
            v.tcptype.as_deref(),
            "{}",
            v.name
        );
        assert_eq!(
            c.related_address(),
            v.raddr.as_deref().and_then(Address::parse).as_ref(),
            "{}",
            v.name
        );
        assert_eq!(c.related_port(), v.rport, "{}", v.name);
        assert_eq!(c.generation(), v.generation, "{}", v.name);
    }
}

#[derive(Deserialize)]
struct BadVector {
    candidate: String,
    error: String,
}

#[test]
fn bad_vectors() {
    let vectors: Vec<BadVector> = serde_json::from_str(include_str!("vectors/bad_candidates.json"))
        .expect("valid vector file");
    assert!(vectors.len() >= 30);
    for v in vectors {
        match Candidate::parse(&v.candidate) {
            Ok(c) => panic!(
                "{:?} should fail with {}, parsed as {c:?}",
                v.candidate, v.error
            ),
            Err(e) => assert_eq!(e.kind_name(), v.error, "{:?}: {e}", v.candidate),
        }
    }
}

#[test]
fn builder_makes_parseable_candidates() {
    let c = Candidate::new(
        "842163049",
        1,
        TransportProtocol::Udp,
        1_677_729_535,
        v4(203, 0, 113, 7),
        54400,
        CandidateType::Srflx,
    )
    .and_then(|c| c.with_related(v4(192, 168, 1, 2), 54400))
    .and_then(|c| c.with_extension("generation", "0"))
    .and_then(|c| c.with_extension("ufrag", "EsAw"))
    .and_then(|c| c.with_extension("network-id", "1"))
    .and_then(|c| c.with_extension("network-cost", "10"))
    .expect("valid parts");
    assert_eq!(c, parse(CHROME_SRFLX));

    let c = Candidate::new(
        "1467250027",
        1,
        TransportProtocol::Tcp,
        1_518_280_447,
        v4(192, 168, 1, 2),
        9,
        CandidateType::Host,
    )
    .and_then(|c| c.with_tcp_type(TcpType::Active))
    .and_then(|c| c.with_extension("generation", "0"))
    .and_then(|c| c.with_extension("ufrag", "EsAw"))
    .and_then(|c| c.with_extension("network-id", "1"))
    .expect("valid parts");
    assert_eq!(c, parse(CHROME_TCP));

    // with_tcp_type replaces in place; with_related goes before the extensions.
    let c = c
        .with_tcp_type(TcpType::Passive)
        .and_then(|c| c.with_related(v4(10, 0, 0, 1), 1))
        .expect("valid parts");
    assert_eq!(
        c.to_string(),
        "candidate:1467250027 1 tcp 1518280447 192.168.1.2 9 typ host raddr 10.0.0.1 rport 1 tcptype passive generation 0 ufrag EsAw network-id 1"
    );
    let c = c.with_related(v4(10, 0, 0, 2), 2).expect("valid parts");
    assert_eq!(c.related_address(), Some(&v4(10, 0, 0, 2)));
    assert_eq!(c.related_port(), Some(2));
    assert_eq!(c.tcp_type(), Some(TcpType::Passive));
    assert_eq!(c.extensions().len(), 4);
}

#[test]
fn builder_validates() {
    use CandidateError as E;
    let mk = |f: &str, comp: u16, t: TransportProtocol, a: Address, k: CandidateType| {
        Candidate::new(f, comp, t, 1, a, 1, k).err()
    };
    let ip = || v4(192, 0, 2, 1);
    assert_eq!(
        mk("", 1, TransportProtocol::Udp, ip(), CandidateType::Host),
        Some(E::InvalidFoundation)
    );
    assert_eq!(
        mk("a b", 1, TransportProtocol::Udp, ip(), CandidateType::Host),
        Some(E::InvalidFoundation)
    );
    assert_eq!(
        mk("1", 0, TransportProtocol::Udp, ip(), CandidateType::Host),
        Some(E::OutOfRange {
            field: "component-id"
        })
    );
    assert_eq!(
        mk(
            "1",
            1,
            TransportProtocol::Other("udp 1".into()),
            ip(),
            CandidateType::Host
        ),
        Some(E::InvalidTransport)
    );
    assert_eq!(
        mk(
            "1",
            1,
            TransportProtocol::Udp,
            ip(),
            CandidateType::Other("host raddr".into())
        ),
        Some(E::InvalidCandidateType)
    );
    assert_eq!(
        mk(
            "1",
            1,
            TransportProtocol::Udp,
            Address::Fqdn("1.2.3.4".into()),
            CandidateType::Host
        ),
        Some(E::InvalidAddress {
            field: "connection-address"
        })
    );
    assert_eq!(
        mk(
            "1",
            1,
            TransportProtocol::Udp,
            Address::Fqdn("a b.local".into()),
            CandidateType::Host
        ),
        Some(E::InvalidAddress {
            field: "connection-address"
        })
    );
    let c = parse(FIREFOX_UDP);
    assert!(matches!(
        c.clone().with_extension("a b", "1"),
        Err(E::InvalidExtensionName { .. })
    ));
    assert!(matches!(
        c.clone().with_extension("x", "1 2"),
        Err(E::InvalidExtensionValue { .. })
    ));
    assert!(matches!(
        c.clone().with_extension("x", "1\r\na=x"),
        Err(E::InvalidExtensionValue { .. })
    ));
    assert!(matches!(
        c.clone().with_extension("x", ""),
        Err(E::InvalidExtensionValue { .. })
    ));
    assert_eq!(
        c.clone().with_extension("raddr", "1.2.3.4"),
        Err(E::MisplacedAttribute { name: "raddr" })
    );
    assert_eq!(
        c.clone().with_extension("RPORT", "1"),
        Err(E::MisplacedAttribute { name: "rport" })
    );
    assert_eq!(
        c.clone().with_extension("tcptype", "x"),
        Err(E::InvalidTcpType)
    );
    assert!(matches!(
        c.clone()
            .with_extension("x", &"y".repeat(MAX_CANDIDATE_LEN)),
        Err(E::TooLong { .. })
    ));
    assert_eq!(
        c.with_related(Address::Fqdn("::1".into()), 1),
        Err(E::InvalidAddress { field: "raddr" })
    );
}

#[test]
fn eq_and_hash_follow_the_text() {
    let set: HashSet<Candidate> = [CHROME_SRFLX, CHROME_HOST, CHROME_SRFLX]
        .into_iter()
        .map(parse)
        .collect();
    assert_eq!(set.len(), 2);
    let a = parse(CHROME_SRFLX);
    assert_eq!(a.clone(), a);
}

#[test]
fn serde_as_a_string() {
    let c = parse(CHROME_MDNS);
    let json = serde_json::to_string(&c).expect("serializes");
    assert_eq!(json, format!("\"{CHROME_MDNS}\""));
    let back: Candidate = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(back, c);
    assert!(serde_json::from_str::<Candidate>("\"candidate:\"").is_err());
}

#[test]
fn error_messages_and_names() {
    let e = Candidate::parse("candidate:1 0 udp 1 192.0.2.1 7 typ host").expect_err("bad");
    assert_eq!(e.kind_name(), "out_of_range");
    assert_eq!(e.to_string(), "`component-id` out of range");
    let dbg = format!("{:?}", parse(CHROME_TCP));
    assert!(dbg.contains("tcptype"));
}
