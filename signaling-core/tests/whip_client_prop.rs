//! Property tests of the WHIP/WHEP client's header readers: `Link: <...>; rel="ice-server"`
//! (RFC 9725 §4.6, RFC 8288) and relative `Location` resolution (RFC 3986 §5.2, §5.4).
//!
//! Oracles: the server engine's own `Link` writer fed with generated servers and credentials;
//! a quoted-string writer written here from RFC 9110 §5.6.4 for arbitrary credentials; and the
//! table of RFC 3986 §5.4's examples.
// Tests take one base instant from the clock; the library itself never reads it. Helpers
// unwrap what the test itself wrote.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Method, Response};
use proptest::prelude::*;
use signaling_core::ice::{IceServersConfig, TurnRestCredentials};
use signaling_core::whip::client::{
    parse_ice_server_links, resolve_location, ClientConfig, ClientEvent, ClientSession,
    ResponseError, Url,
};
use signaling_core::whip::{Config, Endpoint, Outcome, Request};
use signaling_core::wire::IceServer;

const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=sendonly\r\n";

/// One `(url, username, credential)` per URL: what a list of ICE servers says, however its
/// URLs are grouped into entries.
fn flatten(servers: &[IceServer]) -> Vec<(String, Option<String>, Option<String>)> {
    servers
        .iter()
        .flat_map(|s| {
            s.urls
                .iter()
                .map(|u| (u.clone(), s.username.clone(), s.credential.clone()))
        })
        .collect()
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9]{0,6}){0,2}",
        (any::<[u8; 4]>()).prop_map(|b| format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])),
    ]
}

fn ice_url(schemes: &'static [&'static str]) -> impl Strategy<Value = String> {
    (
        proptest::sample::select(schemes),
        host(),
        proptest::option::of(1u16..),
        proptest::option::of(proptest::sample::select(&["udp", "tcp"][..])),
    )
        .prop_map(|(scheme, host, port, transport)| {
            let mut url = format!("{scheme}:{host}");
            if let Some(port) = port {
                url.push_str(&format!(":{port}"));
            }
            if let Some(t) = transport {
                url.push_str(&format!("?transport={t}"));
            }
            url
        })
}

/// A quoted-string (RFC 9110 §5.6.4): `"` and `\` escaped.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A link-value as RFC 8288 §3 allows it to be written: parameters in any order, names in
/// any case, optional whitespace around `;` and `=`.
fn link_value(
    url: &str,
    creds: &Option<(String, String)>,
    upper: bool,
    spaces: bool,
    creds_first: bool,
) -> String {
    let sp = if spaces { " " } else { "" };
    let name = |n: &str| {
        if upper {
            n.to_ascii_uppercase()
        } else {
            n.to_owned()
        }
    };
    let rel = format!("{}{sp}={sp}\"ice-server\"", name("rel"));
    let mut params = vec![rel];
    if let Some((user, cred)) = creds {
        let c = vec![
            format!("{}={}", name("username"), quoted(user)),
            format!("{}={}", name("credential"), quoted(cred)),
            format!("{}=\"password\"", name("credential-type")),
        ];
        if creds_first {
            params.splice(0..0, c);
        } else {
            params.extend(c);
        }
    }
    let mut out = format!("<{url}>");
    for p in params {
        out.push_str(&format!("{sp};{sp}{p}"));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// What the server engine writes for generated STUN/TURN servers and TURN REST
    /// credentials, the client reads back: every URL, with the credentials issued for it.
    #[test]
    fn the_engines_link_headers_round_trip(
        stun in proptest::collection::vec(ice_url(&["stun", "stuns"]), 0..4),
        turn in proptest::option::of((
            proptest::collection::vec(ice_url(&["turn", "turns"]), 1..4),
            "[ -~]{1,40}",
            1u64..100_000,
        )),
        unix_time in 1_600_000_000u64..2_000_000_000,
    ) {
        let turn = turn.map(|(urls, secret, ttl)| {
            TurnRestCredentials::new(secret, Duration::from_secs(ttl), urls).unwrap()
        });
        let servers = IceServersConfig { stun, turn };
        let mut endpoint = Endpoint::new(
            Config::whip().with_ice_servers(Some(servers.clone())),
            [1; 32],
        );
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/sdp"));
        let request = Request::endpoint(&Method::POST, "/whip/s", "s", &headers, OFFER.as_bytes());
        let Outcome::Offer(offer) = endpoint.handle(&request, Instant::now()) else {
            panic!("the offer is valid")
        };
        let response = endpoint.accept(&offer.session, OFFER, unix_time).unwrap();
        let expected = servers.for_user(offer.session.as_str(), unix_time);

        let parsed = parse_ice_server_links(response.headers(), 64);
        prop_assert_eq!(flatten(&parsed), flatten(&expected));

        // And through a session's 201.
        let mut client = ClientSession::new(
            ClientConfig::whip(),
            Url::parse("http://127.0.0.1/whip/s").unwrap(),
        );
        client.offer(OFFER).unwrap();
        let t = client.poll_transmit().unwrap();
        client.handle_response(t.id, &response);
        prop_assert_eq!(flatten(client.ice_servers()), flatten(&expected));
    }

    /// Arbitrary credentials (quotes, backslashes, commas, semicolons, angle brackets),
    /// written as RFC 8288 and RFC 9110 allow, several links to a header or one a header.
    #[test]
    fn quoted_credentials_and_link_lists_round_trip(
        links in proptest::collection::vec(
            (
                ice_url(&["stun", "stuns", "turn", "turns"]),
                proptest::option::of(("[ -~]{0,24}", "[ -~]{0,24}")),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
            ),
            1..6,
        ),
        one_header in any::<bool>(),
        max in 1usize..8,
    ) {
        let values: Vec<String> = links
            .iter()
            .map(|(url, creds, upper, spaces, first)| link_value(url, creds, *upper, *spaces, *first))
            .collect();
        let mut headers = HeaderMap::new();
        if one_header {
            headers.insert("link", HeaderValue::from_str(&values.join(", ")).unwrap());
        } else {
            for v in &values {
                headers.append("link", HeaderValue::from_str(v).unwrap());
            }
        }
        let expected: Vec<IceServer> = links
            .iter()
            .take(max)
            .map(|(url, creds, ..)| IceServer {
                urls: vec![url.clone()],
                username: creds.as_ref().map(|c| c.0.clone()),
                credential: creds.as_ref().map(|c| c.1.clone()),
            })
            .collect();
        prop_assert_eq!(parse_ice_server_links(&headers, max), expected);
    }

    /// Links of another relation, or to another scheme, are not ICE servers.
    #[test]
    fn other_links_are_skipped(
        url in ice_url(&["stun", "turn"]),
        rel in "(next|preconnect|alternate|ice-servers)",
        other in "(https|http|ftp)://[a-z]{1,8}/[a-z]{0,8}",
    ) {
        let value = format!(
            "<{url}>; rel=\"{rel}\", <{other}>; rel=\"ice-server\", <{url}>; rel=\"x ice-server\""
        );
        let mut headers = HeaderMap::new();
        headers.insert("link", HeaderValue::from_str(&value).unwrap());
        let parsed = parse_ice_server_links(&headers, 16);
        prop_assert_eq!(flatten(&parsed), vec![(url, None, None)]);
    }

    /// Any header text: never a panic, never more than asked for.
    #[test]
    fn arbitrary_link_text_never_panics(
        pieces in proptest::collection::vec(
            prop_oneof![
                proptest::sample::select(&[
                    "<", ">", "\"", "\\", ";", ",", "=", " ", "rel", "ice-server",
                    "\"ice-server\"", "username", "credential", "credential-type",
                    "turn:", "stun:", "password",
                ][..]).prop_map(str::to_owned),
                "[ -~]{0,6}",
            ],
            0..40,
        ),
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        max in 0usize..4,
    ) {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&pieces.concat()) {
            headers.append("link", v);
        }
        if let Ok(v) = HeaderValue::from_bytes(&bytes) {
            headers.append("link", v);
        }
        prop_assert!(parse_ice_server_links(&headers, max).len() <= max);
    }
}

// ---------------------------------------------------------------------------------------------
// Location resolution
// ---------------------------------------------------------------------------------------------

/// RFC 3986 §5.4.1 (normal) and §5.4.2 (abnormal) examples, against the base
/// `http://a/b/c/d;p?q`, with the base's `scheme://authority` written as `{base}` and its
/// scheme as `{scheme}`. Results are compared as URLs, so `http://g` and `http://g/` (an
/// empty path is `/` for http, RFC 9110 §4.2.3) are one. `g:h` resolves to a URL a WHIP
/// session cannot have (not http), and `http:g` is left out: RFC 3986 §5.4.2 allows either
/// result, and a URL with another base scheme makes it an absolute `http:` URL.
const RFC3986_5_4: &[(&str, &str)] = &[
    // §5.4.1
    ("g", "{base}/b/c/g"),
    ("./g", "{base}/b/c/g"),
    ("g/", "{base}/b/c/g/"),
    ("/g", "{base}/g"),
    ("//g", "{scheme}://g"),
    ("?y", "{base}/b/c/d;p?y"),
    ("g?y", "{base}/b/c/g?y"),
    ("#s", "{base}/b/c/d;p?q"),
    ("g#s", "{base}/b/c/g"),
    ("g?y#s", "{base}/b/c/g?y"),
    (";x", "{base}/b/c/;x"),
    ("g;x", "{base}/b/c/g;x"),
    ("g;x?y#s", "{base}/b/c/g;x?y"),
    ("", "{base}/b/c/d;p?q"),
    (".", "{base}/b/c/"),
    ("./", "{base}/b/c/"),
    ("..", "{base}/b/"),
    ("../", "{base}/b/"),
    ("../g", "{base}/b/g"),
    ("../..", "{base}/"),
    ("../../", "{base}/"),
    ("../../g", "{base}/g"),
    // §5.4.2
    ("../../../g", "{base}/g"),
    ("../../../../g", "{base}/g"),
    ("/./g", "{base}/g"),
    ("/../g", "{base}/g"),
    ("g.", "{base}/b/c/g."),
    (".g", "{base}/b/c/.g"),
    ("g..", "{base}/b/c/g.."),
    ("..g", "{base}/b/c/..g"),
    ("./../g", "{base}/b/g"),
    ("./g/.", "{base}/b/c/g/"),
    ("g/./h", "{base}/b/c/g/h"),
    ("g/../h", "{base}/b/c/h"),
    ("g;x=1/./y", "{base}/b/c/g;x=1/y"),
    ("g;x=1/../y", "{base}/b/c/y"),
    ("g?y/./x", "{base}/b/c/g?y/./x"),
    ("g?y/../x", "{base}/b/c/g?y/../x"),
    ("g#s/./x", "{base}/b/c/g"),
    ("g#s/../x", "{base}/b/c/g"),
];

fn authority() -> impl Strategy<Value = (String, String)> {
    (
        proptest::sample::select(&["http", "https"][..]),
        "[a-z][a-z0-9]{0,8}(\\.[a-z]{1,5}){0,2}",
        proptest::option::of(1024u16..),
    )
        .prop_map(|(scheme, host, port)| {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            (scheme.to_owned(), format!("{scheme}://{host}{port}"))
        })
}

#[test]
fn rfc3986_5_4_examples_against_the_rfcs_base() {
    let base = Url::parse("http://a/b/c/d;p?q").unwrap();
    for (reference, expected) in RFC3986_5_4 {
        let expected = expected
            .replace("{base}", "http://a")
            .replace("{scheme}", "http");
        let resolved = resolve_location(&base, reference).unwrap();
        assert_eq!(resolved, Url::parse(&expected).unwrap(), "{reference:?}");
    }
    assert!(matches!(
        resolve_location(&base, "g:h"),
        Err(ResponseError::BadLocation(_))
    ));
}

proptest! {
    /// Every example holds for any http(s) base authority, through a session's `201` (but the
    /// empty reference: an empty `Location` is taken as none, [`ResponseError::MissingLocation`]).
    #[test]
    fn rfc3986_5_4_examples_hold_for_any_base_through_a_201(
        (scheme, base) in authority(),
        example in proptest::sample::select(RFC3986_5_4),
    ) {
        let (reference, expected) = example;
        prop_assume!(!reference.is_empty());
        let endpoint = Url::parse(&format!("{base}/b/c/d;p?q")).unwrap();
        let mut client = ClientSession::new(ClientConfig::whip(), endpoint);
        client.offer(OFFER).unwrap();
        let t = client.poll_transmit().unwrap();
        let response = Response::builder()
            .status(201)
            .header("location", reference)
            .body(OFFER)
            .unwrap();
        client.handle_response(t.id, &response);
        let expected = expected.replace("{base}", &base).replace("{scheme}", &scheme);
        let answered = matches!(client.poll_event(), Some(ClientEvent::Answered { .. }));
        prop_assert!(answered);
        prop_assert_eq!(client.session_url(), Some(&Url::parse(&expected).unwrap()));
    }

    /// An absolute http(s) `Location` is the session URL, whatever the base.
    #[test]
    fn an_absolute_location_is_taken_as_is(
        (_, base) in authority(),
        (_, other) in authority(),
        path in "(/[a-z0-9]{1,6}){1,4}",
    ) {
        let endpoint = Url::parse(&format!("{base}/whip/x")).unwrap();
        let target = format!("{other}{path}");
        prop_assert_eq!(
            resolve_location(&endpoint, &target).unwrap(),
            Url::parse(&target).unwrap()
        );
    }
}
