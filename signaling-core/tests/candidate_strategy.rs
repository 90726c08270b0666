//! Candidates written from fields a generator chose parse back to exactly those fields, and
//! the exported strategies work from outside the crate (needs `--features proptest`).
#![cfg(feature = "proptest")]
#![allow(missing_docs)]

use proptest::prelude::*;
use signaling_core::candidate::strategy::{
    address, candidate, extension, foundation, kind, tcp_type, transport,
};
use signaling_core::candidate::{Address, Candidate, CandidateType, TcpType, TransportProtocol};

/// The fields of one candidate line, as chosen.
#[derive(Debug, Clone)]
struct Parts {
    foundation: String,
    component: u16,
    transport: TransportProtocol,
    priority: u32,
    address: Address,
    port: u16,
    kind: CandidateType,
    related: Option<(Address, u16)>,
    tcp_type: Option<TcpType>,
    extensions: Vec<(String, String)>,
}

fn parts() -> impl Strategy<Value = Parts> {
    (
        (foundation(), 1u16..=256, transport(), any::<u32>()),
        (address(), any::<u16>(), kind()),
        proptest::option::of((address(), any::<u16>())),
        proptest::option::of(tcp_type()),
        proptest::collection::vec(extension(), 0..6),
    )
        .prop_map(
            |(
                (foundation, component, transport, priority),
                (address, port, kind),
                related,
                tcp_type,
                extensions,
            )| Parts {
                foundation,
                component,
                transport,
                priority,
                address,
                port,
                kind,
                related,
                tcp_type,
                extensions,
            },
        )
}

/// RFC 8839 §5.1, written out with `format!` from the parts (not by the crate).
fn line(p: &Parts) -> String {
    let mut s = format!(
        "candidate:{} {} {} {} {} {} typ {}",
        p.foundation, p.component, p.transport, p.priority, p.address, p.port, p.kind
    );
    if let Some((a, port)) = &p.related {
        s += &format!(" raddr {a} rport {port}");
    }
    if let Some(t) = p.tcp_type {
        s += &format!(" tcptype {t}");
    }
    for (k, v) in &p.extensions {
        s += &format!(" {k} {v}");
    }
    s
}

/// What the parser must report for a transport or type token: the four (two) known names in
/// any case, else the token as written.
fn expected_transport(t: &TransportProtocol) -> TransportProtocol {
    match t.as_str().to_ascii_lowercase().as_str() {
        "udp" => TransportProtocol::Udp,
        "tcp" => TransportProtocol::Tcp,
        _ => t.clone(),
    }
}

proptest! {
    #[test]
    fn a_line_parses_to_the_fields_it_was_written_from(p in parts(), sdp_prefix: bool) {
        let text = line(&p);
        let input = if sdp_prefix { format!("a={text}") } else { text.clone() };
        let c = Candidate::parse(&input);
        prop_assert!(c.is_ok(), "{:?}: {:?}", input, c);
        let Ok(c) = c else { unreachable!() };
        prop_assert_eq!(c.as_str(), text.as_str(), "the text is kept, without `a=`");
        prop_assert_eq!(c.foundation(), p.foundation.as_str());
        prop_assert_eq!(c.component(), p.component);
        prop_assert_eq!(c.transport(), &expected_transport(&p.transport));
        prop_assert_eq!(c.transport_str(), p.transport.as_str());
        prop_assert_eq!(c.priority(), p.priority);
        prop_assert_eq!(c.address(), &p.address);
        prop_assert_eq!(c.address_str(), p.address.to_string());
        prop_assert_eq!(c.port(), p.port);
        prop_assert_eq!(c.kind_ref(), &p.kind);
        prop_assert_eq!(c.related_address(), p.related.as_ref().map(|(a, _)| a));
        prop_assert_eq!(c.related_port(), p.related.as_ref().map(|(_, port)| *port));
        prop_assert_eq!(c.tcp_type(), p.tcp_type);
        let mut extensions: Vec<(String, String)> = p
            .tcp_type
            .map(|t| ("tcptype".to_owned(), t.to_string()))
            .into_iter()
            .collect();
        extensions.extend(p.extensions.iter().cloned());
        let got: Vec<(String, String)> = c
            .extensions()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        prop_assert_eq!(&got, &extensions);
        let first_ufrag = p.extensions.iter().find(|(k, _)| k == "ufrag").map(|(_, v)| v.as_str());
        prop_assert_eq!(c.ufrag(), first_ufrag);
        let first_generation = p
            .extensions
            .iter()
            .find(|(k, _)| k == "generation")
            .and_then(|(_, v)| v.parse().ok());
        prop_assert_eq!(c.generation(), first_generation);
    }

    /// The builder writes what the parts say, in RFC 8839 order.
    #[test]
    fn the_builder_writes_the_same_line(p in parts()) {
        let built = Candidate::new(
            &p.foundation, p.component, p.transport.clone(), p.priority,
            p.address.clone(), p.port, p.kind.clone(),
        )
        .and_then(|c| match &p.related {
            Some((a, port)) => c.with_related(a.clone(), *port),
            None => Ok(c),
        })
        .and_then(|c| match p.tcp_type {
            Some(t) => c.with_tcp_type(t),
            None => Ok(c),
        })
        .and_then(|c| p.extensions.iter().try_fold(c, |c, (k, v)| c.with_extension(k, v)));
        prop_assert_eq!(built.map(|c| c.to_string()), Ok(line(&p)));
    }

    #[test]
    fn the_exported_strategy_gives_valid_candidates(c in candidate()) {
        prop_assert!(Candidate::parse(c.as_str()).is_ok(), "{}", c);
    }
}
