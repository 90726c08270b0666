//! WHIP (RFC 9725) and WHEP (draft-ietf-wish-whep) conformance of `signaling_core::whip`.
//!
//! Each test is named after the section whose requirement it checks (`rfc9725_4_3_1_...`,
//! `whep_4_2_...`), and the expected status codes and headers are the texts', not the code's.
//! The `interop_` tests are the cases WHIP/WHEP implementers report trouble with.
// Tests take one base instant from the clock; the library itself never reads it. Helpers
// unwrap what the test itself wrote.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use signaling_core::ice::{IceServersConfig, TurnRestCredentials};
use signaling_core::whip::Endpoint;
use signaling_core::whip::{
    CloseCause, CompletionError, Config, EtagMode, Event, IceAnswer, Outcome, Rejection, Request,
    RestartFailure, SessionId,
};

const OFFER: &str = "v=0\r\n\
o=- 5228595038118931041 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
a=ice-options:trickle ice2\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
c=IN IP4 0.0.0.0\r\n\
a=ice-ufrag:EsAw\r\n\
a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=sendonly\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
m=video 0 UDP/TLS/RTP/SAVPF 96\r\n\
c=IN IP4 0.0.0.0\r\n\
a=ice-ufrag:EsAw\r\n\
a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\n\
a=setup:actpass\r\n\
a=mid:1\r\n\
a=bundle-only\r\n\
a=sendonly\r\n\
a=rtcp-mux\r\n\
a=rtpmap:96 VP8/90000\r\n";

/// The trickle PATCH body of RFC 9725 §4.3.2 (its candidates, its `mid`).
const TRICKLE: &str = "a=ice-ufrag:EsAw\r\n\
a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
a=mid:0\r\n\
a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\n\
a=candidate:3471623853 1 udp 2122194687 198.51.100.2 61765 typ host generation 0 ufrag EsAw network-id 2\r\n\
a=candidate:473322822 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active generation 0 ufrag EsAw network-id 1\r\n\
a=end-of-candidates\r\n";

/// The ICE restart PATCH body of RFC 9725 §4.3.3.
const RESTART: &str = "a=ice-ufrag:ysXw\r\na=ice-pwd:vw5LmwG4y/e6dPP/zAP9Gp5k\r\n";

const SDP: &str = "application/sdp";
const FRAG: &str = "application/trickle-ice-sdpfrag";
const T0: u64 = 1_700_000_000;

fn answer_for(offer: &str) -> String {
    offer
        .replace("sendonly", "recvonly")
        .replace("a=setup:actpass", "a=setup:passive")
        .replace("EsAw", "srv1")
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

struct Harness {
    ep: Endpoint,
    now: Instant,
}

impl Harness {
    fn new(config: Config) -> Self {
        Self {
            ep: Endpoint::new(config, [42; 32]),
            now: Instant::now(),
        }
    }

    fn endpoint(&mut self, method: Method, h: &[(&str, &str)], body: &str) -> Outcome {
        let h = headers(h);
        let req = Request::endpoint(&method, "/whip/cam", "cam", &h, body.as_bytes());
        self.ep.handle(&req, self.now)
    }

    fn session(
        &mut self,
        id: &str,
        method: Method,
        h: &[(&str, &str)],
        body: &str,
    ) -> Response<String> {
        let h = headers(h);
        let path = format!("/whip/cam/{id}");
        let req = Request::session(&method, &path, id, &h, body.as_bytes());
        respond(self.ep.handle(&req, self.now))
    }

    fn post(&mut self, h: &[(&str, &str)], body: &str) -> Outcome {
        self.endpoint(Method::POST, h, body)
    }

    /// POSTs the offer and accepts it: the 201 and the session id.
    fn create(&mut self) -> (Response<String>, SessionId) {
        let Outcome::Offer(offer) = self.post(&[("content-type", SDP)], OFFER) else {
            panic!("the offer was not handed to the application");
        };
        let response = self
            .ep
            .accept(&offer.session, &answer_for(&offer.sdp), T0)
            .unwrap();
        (response, offer.session)
    }

    fn patch(&mut self, id: &SessionId, if_match: Option<&str>, body: &str) -> Outcome {
        let mut h = vec![("content-type", FRAG)];
        if let Some(tag) = if_match {
            h.push(("if-match", tag));
        }
        let h = headers(&h);
        let path = format!("/whip/cam/{id}");
        let req = Request::session(&Method::PATCH, &path, id.as_str(), &h, body.as_bytes());
        self.ep.handle(&req, self.now)
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.ep.poll_event()).collect()
    }
}

fn respond(outcome: Outcome) -> Response<String> {
    match outcome {
        Outcome::Respond(r) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

fn header<'a>(r: &'a Response<String>, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

fn etag(r: &Response<String>) -> String {
    header(r, "etag").expect("an ETag").to_owned()
}

// ---- RFC 9725 §4.2: session setup -------------------------------------------------------------

#[test]
fn rfc9725_4_2_post_offer_gives_201_answer_location_and_strong_etag() {
    let mut h = Harness::new(Config::whip());
    let (r, id) = h.create();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "content-type"), Some(SDP));
    assert_eq!(r.body(), &answer_for(OFFER));
    assert_eq!(
        header(&r, "location"),
        Some(format!("/whip/cam/{id}").as_str())
    );
    let tag = etag(&r);
    assert!(
        tag.starts_with('"') && tag.ends_with('"') && !tag.starts_with("W/"),
        "{tag}"
    );
    assert_eq!(header(&r, "accept-patch"), Some(FRAG));
}

#[test]
fn rfc9725_4_2_sessions_get_distinct_unguessable_urls() {
    let mut h = Harness::new(Config::whip());
    let ids: Vec<SessionId> = (0..50).map(|_| h.create().1).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
    for id in &ids {
        assert!(id.as_str().len() >= 22, "{id}");
        assert!(id
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }
    // Another key gives other ids.
    let mut other = Harness::new(Config::whip());
    other.ep = Endpoint::new(Config::whip(), [43; 32]);
    assert_ne!(other.create().1, ids[0]);
}

#[test]
fn rfc9725_4_2_post_other_content_type_is_415_with_accept_post() {
    let mut h = Harness::new(Config::whip());
    let r = respond(h.post(&[("content-type", "text/plain")], OFFER));
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(header(&r, "accept-post"), Some(SDP));
    let r = respond(h.post(&[], OFFER));
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(h.ep.session_count(), 0);
}

#[test]
fn rfc9725_4_2_content_type_parameters_and_case_are_accepted() {
    let mut h = Harness::new(Config::whip());
    let outcome = h.post(&[("content-type", "Application/SDP; charset=utf-8")], OFFER);
    assert!(matches!(outcome, Outcome::Offer(_)), "{outcome:?}");
}

#[test]
fn rfc9725_4_2_malformed_offer_is_400() {
    let mut h = Harness::new(Config::whip());
    for body in ["", "hello", "v=0\r\ns=-\r\n", "\u{0}\u{1}"] {
        let r = respond(h.post(&[("content-type", SDP)], body));
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body:?}");
    }
    assert_eq!(h.ep.session_count(), 0);
}

#[test]
fn interop_json_in_place_of_sdp_is_refused_with_a_clear_400() {
    let mut h = Harness::new(Config::whip());
    let body = format!(
        "{{\"type\":\"offer\",\"sdp\":{}}}",
        serde_json::to_string(OFFER).unwrap()
    );
    let r = respond(h.post(&[("content-type", SDP)], &body));
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.body().contains("JSON"), "{}", r.body());
}

#[test]
fn rfc9725_4_2_oversized_offer_is_413() {
    let mut config = Config::whip();
    config.max_sdp_len = 100;
    let mut h = Harness::new(config);
    let r = respond(h.post(&[("content-type", SDP)], OFFER));
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn rfc9725_4_2_delete_is_200_and_ends_the_session() {
    let mut h = Harness::new(Config::whip());
    let (_, id) = h.create();
    let r = h.session(id.as_str(), Method::DELETE, &[], "");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        h.events(),
        vec![Event::Closed {
            session: id.clone(),
            cause: CloseCause::Deleted
        }]
    );
    let r = h.session(id.as_str(), Method::DELETE, &[], "");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = h.session(
        id.as_str(),
        Method::PATCH,
        &[("content-type", FRAG), ("if-match", "*")],
        RESTART,
    );
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[test]
fn rfc9725_4_3_1_delete_ignores_if_match() {
    let mut h = Harness::new(Config::whip());
    let (_, id) = h.create();
    let r = h.session(
        id.as_str(),
        Method::DELETE,
        &[("if-match", "\"stale\"")],
        "",
    );
    assert_eq!(r.status(), StatusCode::OK);
}

#[test]
fn rfc9725_4_1_get_and_head_answer_2xx_without_content() {
    let mut h = Harness::new(Config::whip());
    for method in [Method::GET, Method::HEAD] {
        let r = respond(h.endpoint(method.clone(), &[], ""));
        assert!(r.status().is_success(), "{method}");
        assert!(r.body().is_empty());
    }
    let (_, id) = h.create();
    for method in [Method::GET, Method::HEAD] {
        let r = h.session(id.as_str(), method.clone(), &[], "");
        assert!(r.status().is_success(), "{method}");
        assert!(r.body().is_empty());
    }
    assert!(h.ep.contains(&id));
}

#[test]
fn rfc9110_15_5_6_other_methods_are_405_with_allow() {
    let mut h = Harness::new(Config::whip());
    for method in [Method::PUT, Method::PATCH, Method::DELETE] {
        let r = respond(h.endpoint(method.clone(), &[], ""));
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert!(header(&r, "allow").unwrap().contains("POST"));
    }
    let (_, id) = h.create();
    for method in [Method::POST, Method::PUT] {
        let r = h.session(id.as_str(), method.clone(), &[("content-type", SDP)], OFFER);
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        let allow = header(&r, "allow").unwrap();
        assert!(
            allow.contains("PATCH") && allow.contains("DELETE"),
            "{allow}"
        );
    }
}

#[test]
fn rfc9725_4_2_options_is_200_with_accept_post() {
    let mut h = Harness::new(Config::whip());
    let r = respond(h.endpoint(Method::OPTIONS, &[], ""));
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "accept-post"), Some(SDP));
}

// ---- CORS (RFC 9725 §4.2 refers to FETCH) ------------------------------------------------------

#[test]
fn interop_cors_preflight_allows_the_protocol_methods_and_headers() {
    let mut h = Harness::new(Config::whip());
    let pre = [
        ("origin", "https://app.example"),
        ("access-control-request-method", "POST"),
        (
            "access-control-request-headers",
            "content-type, authorization",
        ),
    ];
    let r = respond(h.endpoint(Method::OPTIONS, &pre, ""));
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "access-control-allow-origin"), Some("*"));
    assert!(header(&r, "access-control-allow-methods")
        .unwrap()
        .contains("POST"));
    let allowed = header(&r, "access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    for name in ["content-type", "authorization", "if-match"] {
        assert!(allowed.contains(name), "{allowed}");
    }
    let (_, id) = h.create();
    let pre = [
        ("origin", "https://app.example"),
        ("access-control-request-method", "PATCH"),
    ];
    let r = h.session(id.as_str(), Method::OPTIONS, &pre, "");
    let methods = header(&r, "access-control-allow-methods").unwrap();
    assert!(
        methods.contains("PATCH") && methods.contains("DELETE"),
        "{methods}"
    );
}

#[test]
fn interop_cors_exposes_location_etag_link_on_the_201() {
    let mut config = Config::whip();
    config.ice_servers = Some(IceServersConfig {
        stun: vec!["stun:stun.example.net".into()],
        turn: None,
    });
    let mut h = Harness::new(config);
    let Outcome::Offer(offer) = h.post(
        &[("content-type", SDP), ("origin", "https://app.example")],
        OFFER,
    ) else {
        panic!()
    };
    let r = h.ep.accept(&offer.session, &answer_for(OFFER), T0).unwrap();
    let exposed: Vec<String> = header(&r, "access-control-expose-headers")
        .unwrap()
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    for name in ["location", "etag", "link", "accept-patch"] {
        assert!(
            exposed.iter().any(|e| e == name),
            "{name} not in {exposed:?}"
        );
    }
}

#[test]
fn interop_cors_origin_not_allowed_is_403() {
    let config = Config::whip().with_allowed_origins(Some(vec!["https://good.example".into()]));
    let mut h = Harness::new(config);
    let r = respond(h.post(
        &[("content-type", SDP), ("origin", "https://evil.example")],
        OFFER,
    ));
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(h.ep.session_count(), 0);
    let outcome = h.post(
        &[("content-type", SDP), ("origin", "https://good.example")],
        OFFER,
    );
    assert!(matches!(outcome, Outcome::Offer(_)));
    let r = respond(h.endpoint(Method::OPTIONS, &[("origin", "https://good.example")], ""));
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://good.example")
    );
    assert_eq!(header(&r, "vary"), Some("Origin"));
}

// ---- RFC 9725 §4.3.1: PATCH and entity-tags ----------------------------------------------------

#[test]
fn rfc9725_4_3_1_patch_without_if_match_is_428_in_strict_mode() {
    let mut h = Harness::new(Config::whip());
    let (_, id) = h.create();
    let r = respond(h.patch(&id, None, TRICKLE));
    assert_eq!(r.status(), StatusCode::PRECONDITION_REQUIRED);
    assert!(h.events().is_empty());
}

#[test]
fn interop_lenient_mode_takes_a_trickle_without_if_match() {
    let mut h = Harness::new(Config::whip().with_etag(EtagMode::Lenient));
    let (_, id) = h.create();
    let r = respond(h.patch(&id, None, TRICKLE));
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(h.events().len(), 1);
    // A wrong entity-tag is still refused: it names an ICE session that does not exist.
    let r = respond(h.patch(&id, Some("\"nope\""), TRICKLE));
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
}

#[test]
fn rfc9725_4_3_1_patch_with_a_stale_etag_is_412() {
    let mut h = Harness::new(Config::whip());
    let (created, id) = h.create();
    let r = respond(h.patch(&id, Some("\"not-the-tag\""), TRICKLE));
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    let weak = format!("W/{}", etag(&created));
    let r = respond(h.patch(&id, Some(&weak), TRICKLE));
    assert_eq!(
        r.status(),
        StatusCode::PRECONDITION_FAILED,
        "weak tags never match strongly"
    );
    let list = format!("\"other\", {}", etag(&created));
    let r = respond(h.patch(&id, Some(&list), TRICKLE));
    assert_eq!(
        r.status(),
        StatusCode::NO_CONTENT,
        "a list holding the tag matches"
    );
}

#[test]
fn rfc9725_4_3_1_no_patch_support_is_405() {
    let mut h = Harness::new(Config::whip().with_patch(false, false));
    let (created, id) = h.create();
    assert_eq!(header(&created, "accept-patch"), None);
    let r = respond(h.patch(&id, Some(&etag(&created)), TRICKLE));
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(!header(&r, "allow").unwrap().contains("PATCH"));
}

#[test]
fn rfc9725_4_3_1_unsupported_patch_kind_is_422() {
    let mut h = Harness::new(Config::whip().with_patch(true, false));
    let (created, id) = h.create();
    let r = respond(h.patch(&id, Some("*"), RESTART));
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = respond(h.patch(&id, Some(&etag(&created)), TRICKLE));
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let mut h = Harness::new(Config::whip().with_patch(false, true));
    let (created, id) = h.create();
    let r = respond(h.patch(&id, Some(&etag(&created)), TRICKLE));
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(matches!(
        h.patch(&id, Some("*"), RESTART),
        Outcome::Restart(_)
    ));
}

#[test]
fn rfc9725_4_3_1_patch_with_another_content_type_is_415() {
    let mut h = Harness::new(Config::whip());
    let (created, id) = h.create();
    let tag = etag(&created);
    let r = h.session(
        id.as_str(),
        Method::PATCH,
        &[("content-type", SDP), ("if-match", &tag)],
        TRICKLE,
    );
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(header(&r, "accept-patch"), Some(FRAG));
}

#[test]
fn interop_json_in_place_of_an_sdpfrag_is_a_clear_400() {
    let mut h = Harness::new(Config::whip());
    let (created, id) = h.create();
    let body = r#"{"candidate":"candidate:1 1 udp 1 192.0.2.1 1 typ host","sdpMid":"0"}"#;
    let r = respond(h.patch(&id, Some(&etag(&created)), body));
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(
        r.body().to_ascii_lowercase().contains("json"),
        "{}",
        r.body()
    );
}

// ---- RFC 9725 §4.3.2: trickle ICE --------------------------------------------------------------

#[test]
fn rfc9725_4_3_2_trickle_is_204_without_body_or_etag() {
    let mut h = Harness::new(Config::whip());
    let (created, id) = h.create();
    let r = respond(h.patch(&id, Some(&etag(&created)), TRICKLE));
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.body().is_empty());
    assert_eq!(header(&r, "etag"), None);
    let events = h.events();
    let [Event::Candidates {
        session,
        candidates,
        end_of_candidates,
    }] = events.as_slice()
    else {
        panic!("{events:?}")
    };
    assert_eq!(session, &id);
    assert!(end_of_candidates);
    let ports: Vec<u16> = candidates.iter().map(|(_, c)| c.port()).collect();
    assert_eq!(
        ports,
        [61764, 61765, 9],
        "every candidate, in order, TCP included"
    );
    assert!(candidates
        .iter()
        .all(|(mid, _)| mid.as_deref() == Some("0")));
}

#[test]
fn interop_mid_is_a_token_not_a_number() {
    let mut h = Harness::new(Config::whip());
    let (created, id) = h.create();
    let body = TRICKLE.replace("a=mid:0", "a=mid:audio");
    let r = respond(h.patch(&id, Some(&etag(&created)), &body));
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let Some(Event::Candidates { candidates, .. }) = h.ep.poll_event() else {
        panic!()
    };
    assert_eq!(candidates[0].0.as_deref(), Some("audio"));
}

#[test]
fn rfc8838_15_candidates_of_another_ice_session_are_dropped_silently() {
    let mut h = Harness::new(Config::whip());
    let (created, id) = h.create();
    let body = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
        a=candidate:1 1 udp 2122260223 192.0.2.1 5000 typ host ufrag OLD1\r\n\
        a=candidate:2 1 udp 2122260223 192.0.2.1 5001 typ host ufrag EsAw\r\n\
        a=candidate:3 1 udp 2122260223 host.local 5002 typ host\r\n";
    let r = respond(h.patch(&id, Some(&etag(&created)), body));
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let Some(Event::Candidates {
        candidates,
        end_of_candidates,
        ..
    }) = h.ep.poll_event()
    else {
        panic!()
    };
    let ports: Vec<u16> = candidates.iter().map(|(_, c)| c.port()).collect();
    assert_eq!(ports, [5001, 5002]);
    assert!(!end_of_candidates);
    assert_eq!(h.ep.stats().dropped_candidates, 1);
}

#[test]
fn bounded_candidates_per_session() {
    let mut config = Config::whip();
    config.max_candidates_per_session = 2;
    let mut h = Harness::new(config);
    let (created, id) = h.create();
    let tag = etag(&created);
    assert_eq!(
        respond(h.patch(&id, Some(&tag), TRICKLE)).status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        respond(h.patch(&id, Some(&tag), TRICKLE)).status(),
        StatusCode::NO_CONTENT
    );
    let taken: usize = h
        .events()
        .iter()
        .map(|e| match e {
            Event::Candidates { candidates, .. } => candidates.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(taken, 2);
}

#[test]
fn bounded_event_queue_refuses_with_503_and_takes_nothing() {
    let mut config = Config::whip();
    config.max_events = 1;
    let mut h = Harness::new(config);
    let (created, id) = h.create();
    let tag = etag(&created);
    assert_eq!(
        respond(h.patch(&id, Some(&tag), TRICKLE)).status(),
        StatusCode::NO_CONTENT
    );
    let r = respond(h.patch(&id, Some(&tag), TRICKLE));
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(header(&r, "retry-after").is_some());
    assert_eq!(h.events().len(), 1);
    assert_eq!(
        respond(h.patch(&id, Some(&tag), TRICKLE)).status(),
        StatusCode::NO_CONTENT
    );
}

// ---- RFC 9725 §4.3.3: ICE restarts -------------------------------------------------------------

fn server_ice() -> IceAnswer {
    IceAnswer {
        ufrag: "289b31b754eaa438".into(),
        pwd: "0b66f472495ef0ccac7bda653ab6be49ea13114472a5d10a".into(),
        lite: true,
        options: None,
        candidates: vec!["candidate:1 1 UDP 2130706431 198.51.100.1 39132 typ host"
            .parse()
            .unwrap()],
    }
}

#[test]
fn rfc9725_4_3_3_restart_is_200_with_the_new_credentials_and_a_new_etag() {
    let mut h = Harness::new(Config::whip());
    let (created, id) = h.create();
    let old = etag(&created);
    let Outcome::Restart(restart) = h.patch(&id, Some("*"), RESTART) else {
        panic!()
    };
    assert_eq!(restart.session, id);
    assert_eq!(
        (restart.ufrag.as_str(), restart.pwd.as_str()),
        ("ysXw", "vw5LmwG4y/e6dPP/zAP9Gp5k")
    );
    let r = h.ep.restarted(&id, &server_ice()).unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-type"), Some(FRAG));
    let new = etag(&r);
    assert_ne!(new, old);
    let frag = signaling_core::sdpfrag::SdpFrag::parse(r.body()).unwrap();
    assert_eq!(frag.ufrag(), Some("289b31b754eaa438"));
    assert_eq!(
        frag.pwd(),
        Some("0b66f472495ef0ccac7bda653ab6be49ea13114472a5d10a")
    );
    assert!(frag.ice().lite());
    assert_eq!(frag.candidates().count(), 1);
    // The old ICE session is gone: its tag fails, the new one works.
    assert_eq!(
        respond(h.patch(&id, Some(&old), TRICKLE)).status(),
        StatusCode::PRECONDITION_FAILED
    );
    let body = TRICKLE
        .replace("EsAw", "ysXw")
        .replace("bP+XJMM09aR8AiX1jdukzR6Y", "vw5LmwG4y/e6dPP/zAP9Gp5k");
    assert_eq!(
        respond(h.patch(&id, Some(&new), &body)).status(),
        StatusCode::NO_CONTENT
    );
    // Candidates of the old ufrag after the restart are dropped.
    let late = TRICKLE
        .split_once("m=")
        .map(|(_, rest)| format!("m={rest}"))
        .unwrap();
    assert_eq!(
        respond(h.patch(&id, Some(&new), &late)).status(),
        StatusCode::NO_CONTENT
    );
    let events = h.events();
    assert_eq!(events.len(), 2, "{events:?}");
    let Event::Candidates { candidates, .. } = &events[1] else {
        panic!()
    };
    assert!(candidates.is_empty());
}

#[test]
fn interop_a_quoted_star_is_the_wildcard_too() {
    let mut h = Harness::new(Config::whip());
    let (_, id) = h.create();
    let outcome = h.patch(&id, Some("\"*\""), RESTART);
    assert!(matches!(outcome, Outcome::Restart(_)), "{outcome:?}");
}

#[test]
fn rfc9725_4_3_3_a_failed_restart_keeps_the_session_and_its_ice_session() {
    let mut h = Harness::new(Config::whip());
    let (created, id) = h.create();
    let tag = etag(&created);
    let Outcome::Restart(_) = h.patch(&id, Some("*"), RESTART) else {
        panic!()
    };
    let r =
        h.ep.restart_failed(&id, RestartFailure::Unavailable(Duration::from_secs(2)))
            .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&r, "retry-after"), Some("2"));
    assert!(h.ep.contains(&id));
    assert_eq!(
        respond(h.patch(&id, Some(&tag), TRICKLE)).status(),
        StatusCode::NO_CONTENT
    );
    // And a retry may succeed.
    let Outcome::Restart(_) = h.patch(&id, Some("*"), RESTART) else {
        panic!()
    };
    assert_eq!(
        h.ep.restarted(&id, &server_ice()).unwrap().status(),
        StatusCode::OK
    );
}

#[test]
fn rfc9725_4_3_3_restart_without_new_credentials_is_422() {
    let mut h = Harness::new(Config::whip());
    let (_, id) = h.create();
    let body = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n";
    let r = respond(h.patch(&id, Some("*"), body));
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[test]
fn whep_4_4_3_new_credentials_with_the_current_etag_are_a_restart() {
    let mut h = Harness::new(Config::whep());
    let Outcome::Offer(offer) = h.post(
        &[("content-type", SDP)],
        &OFFER.replace("sendonly", "recvonly"),
    ) else {
        panic!()
    };
    let created = h.ep.accept(&offer.session, &answer_for(OFFER), T0).unwrap();
    let outcome = h.patch(&offer.session, Some(&etag(&created)), RESTART);
    assert!(matches!(outcome, Outcome::Restart(_)), "{outcome:?}");
}

#[test]
fn completion_calls_check_what_is_waiting() {
    let mut h = Harness::new(Config::whip());
    let (_, id) = h.create();
    assert_eq!(
        h.ep.restarted(&id, &server_ice()).unwrap_err(),
        CompletionError::NotWaiting(id.clone())
    );
    assert_eq!(
        h.ep.accept(&id, OFFER, T0).unwrap_err(),
        CompletionError::NotWaiting(id.clone())
    );
    assert_eq!(
        h.ep.counter_offer(&id, OFFER, h.now, T0).unwrap_err(),
        CompletionError::NotWhep
    );
    let Outcome::Offer(offer) = h.post(&[("content-type", SDP)], OFFER) else {
        panic!()
    };
    assert!(matches!(
        h.ep.accept(&offer.session, "not sdp", T0),
        Err(CompletionError::BadSdp(_))
    ));
    assert!(h.ep.accept(&offer.session, &answer_for(OFFER), T0).is_ok());
}

// ---- RFC 9725 §4.5, §4.6, §4.7 ---------------------------------------------------------------

#[test]
fn rfc9725_4_5_a_full_endpoint_answers_503_with_retry_after() {
    let mut h = Harness::new(Config::whip().with_max_sessions(2));
    h.create();
    let Outcome::Offer(_) = h.post(&[("content-type", SDP)], OFFER) else {
        panic!()
    };
    let r = respond(h.post(&[("content-type", SDP)], OFFER));
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&r, "retry-after"), Some("5"));
}

#[test]
fn rfc9725_4_6_link_headers_carry_stun_and_turn_rest_credentials() {
    let turn = TurnRestCredentials::new(
        "s3cret",
        Duration::from_secs(3600),
        vec!["turn:turn.example.net?transport=udp".into()],
    )
    .unwrap();
    let config = Config::whip().with_ice_servers(Some(IceServersConfig {
        stun: vec!["stun:stun.example.net".into()],
        turn: Some(turn),
    }));
    let mut h = Harness::new(config);
    let (r, id) = h.create();
    let links: Vec<&str> = r
        .headers()
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(links.len(), 2, "{links:?}");
    assert_eq!(links[0], "<stun:stun.example.net>; rel=\"ice-server\"");
    let username = format!("{}:{id}", T0 + 3600);
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"s3cret").unwrap();
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(
        links[1],
        format!(
            "<turn:turn.example.net?transport=udp>; rel=\"ice-server\"; username=\"{username}\"; \
             credential=\"{credential}\"; credential-type=\"password\""
        )
    );
    // Not on a CORS preflight, and by default not on OPTIONS at all.
    let r = respond(h.endpoint(Method::OPTIONS, &[], ""));
    assert!(r.headers().get("link").is_none());
}

#[test]
fn rfc9725_4_7_bearer_token_of_the_post_guards_the_session() {
    let mut h = Harness::new(Config::whip());
    let Outcome::Offer(offer) = h.post(
        &[("content-type", SDP), ("authorization", "Bearer t0ken")],
        OFFER,
    ) else {
        panic!()
    };
    assert_eq!(offer.bearer.as_deref(), Some("t0ken"));
    let id = offer.session.clone();
    h.ep.accept(&id, &answer_for(OFFER), T0).unwrap();
    let r = h.session(id.as_str(), Method::DELETE, &[], "");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&r, "www-authenticate"), Some("Bearer"));
    let r = h.session(
        id.as_str(),
        Method::DELETE,
        &[("authorization", "Bearer wrong")],
        "",
    );
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = h.session(
        id.as_str(),
        Method::DELETE,
        &[("authorization", "Bearer t0ken")],
        "",
    );
    assert_eq!(r.status(), StatusCode::OK);
}

#[test]
fn application_refusals_map_to_their_status_codes() {
    let cases = [
        (Rejection::Unauthorized, StatusCode::UNAUTHORIZED),
        (Rejection::NotFound, StatusCode::NOT_FOUND),
        (
            Rejection::NotAcceptable("two video tracks".into()),
            StatusCode::NOT_ACCEPTABLE,
        ),
        (
            Rejection::Unprocessable("setup:active".into()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Rejection::Conflict("the stream has a publisher".into()),
            StatusCode::CONFLICT,
        ),
        (
            Rejection::Unavailable(Duration::from_secs(3)),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
    ];
    let mut h = Harness::new(Config::whip());
    for (rejection, status) in cases {
        let Outcome::Offer(offer) = h.post(&[("content-type", SDP)], OFFER) else {
            panic!()
        };
        let r = h.ep.reject(&offer.session, rejection).unwrap();
        assert_eq!(r.status(), status);
        assert!(!h.ep.contains(&offer.session));
    }
}

#[test]
fn an_unanswered_offer_times_out() {
    let mut h = Harness::new(Config::whip().with_answer_timeout(Duration::from_secs(10)));
    let Outcome::Offer(offer) = h.post(&[("content-type", SDP)], OFFER) else {
        panic!()
    };
    assert_eq!(h.ep.poll_timeout(), Some(h.now + Duration::from_secs(10)));
    h.ep.handle_timeout(h.now + Duration::from_secs(9));
    assert!(h.ep.contains(&offer.session));
    h.ep.handle_timeout(h.now + Duration::from_secs(10));
    assert!(!h.ep.contains(&offer.session));
    assert!(h.ep.accept(&offer.session, &answer_for(OFFER), T0).is_err());
    assert_eq!(h.ep.poll_timeout(), None);
}

// ---- WHEP --------------------------------------------------------------------------------------

fn whep_offer() -> String {
    OFFER.replace("sendonly", "recvonly")
}

#[test]
fn whep_4_2_offer_and_201() {
    let mut h = Harness::new(Config::whep());
    let Outcome::Offer(offer) = h.post(&[("content-type", SDP)], &whep_offer()) else {
        panic!()
    };
    let answer = whep_offer().replace("recvonly", "sendonly");
    let r = h.ep.accept(&offer.session, &answer, T0).unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(header(&r, "location").is_some());
}

#[test]
fn whep_4_2_a_sendonly_offer_is_refused() {
    let mut h = Harness::new(Config::whep());
    let r = respond(h.post(&[("content-type", SDP)], OFFER));
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[test]
fn whep_4_2_counter_offer_is_406_with_location_then_patch_answer_is_204() {
    let mut h = Harness::new(Config::whep());
    let Outcome::Offer(offer) = h.post(&[("content-type", SDP)], &whep_offer()) else {
        panic!()
    };
    let server_offer = answer_for(OFFER);
    let r =
        h.ep.counter_offer(&offer.session, &server_offer, h.now, T0)
            .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_ACCEPTABLE);
    assert_eq!(
        header(&r, "content-type"),
        Some(SDP),
        "30 s validity: no valid-until"
    );
    assert_eq!(r.body(), &server_offer);
    let location = header(&r, "location").unwrap().to_owned();
    assert!(location.ends_with(offer.session.as_str()));
    let player_answer = whep_offer().replace("a=setup:actpass", "a=setup:active");
    let r = h.session(
        offer.session.as_str(),
        Method::PATCH,
        &[("content-type", SDP)],
        &player_answer,
    );
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        h.events(),
        vec![Event::Answer {
            session: offer.session.clone(),
            sdp: player_answer
        }]
    );
}

#[test]
fn whep_4_2_counter_offer_with_another_validity_says_valid_until() {
    let mut config = Config::whep();
    config.counter_offer_ttl = Duration::from_secs(10);
    let mut h = Harness::new(config);
    let Outcome::Offer(offer) = h.post(&[("content-type", SDP)], &whep_offer()) else {
        panic!()
    };
    let r =
        h.ep.counter_offer(&offer.session, &answer_for(OFFER), h.now, 784_111_777 - 10)
            .unwrap();
    // RFC 9110 §5.6.7's own example date.
    assert_eq!(
        header(&r, "content-type"),
        Some("application/sdp; valid-until=\"Sun, 06 Nov 1994 08:49:37 GMT\"")
    );
}

#[test]
fn whep_4_2_an_unanswered_counter_offer_expires() {
    let mut h = Harness::new(Config::whep());
    let Outcome::Offer(offer) = h.post(&[("content-type", SDP)], &whep_offer()) else {
        panic!()
    };
    h.ep.counter_offer(&offer.session, &answer_for(OFFER), h.now, T0)
        .unwrap();
    h.ep.handle_timeout(h.now + Duration::from_secs(30));
    assert_eq!(
        h.events(),
        vec![Event::Closed {
            session: offer.session.clone(),
            cause: CloseCause::Expired
        }]
    );
    let r = h.session(
        offer.session.as_str(),
        Method::PATCH,
        &[("content-type", SDP)],
        &whep_offer(),
    );
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[test]
fn whep_4_2_a_stream_not_live_is_409_with_retry_after() {
    let mut h = Harness::new(Config::whep());
    let Outcome::Offer(offer) = h.post(&[("content-type", SDP)], &whep_offer()) else {
        panic!()
    };
    let r =
        h.ep.not_live(&offer.session, Duration::from_secs(4))
            .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(header(&r, "retry-after"), Some("4"));
    assert!(!h.ep.contains(&offer.session));
}

#[test]
fn whip_has_no_counter_offer_or_not_live() {
    let mut h = Harness::new(Config::whip());
    let Outcome::Offer(offer) = h.post(&[("content-type", SDP)], OFFER) else {
        panic!()
    };
    assert_eq!(
        h.ep.not_live(&offer.session, Duration::from_secs(1))
            .unwrap_err(),
        CompletionError::NotWhep
    );
}

// ---- The state machine against a model -------------------------------------------------------

mod model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Copy, Debug)]
    enum Tag {
        Current,
        Stale,
        Missing,
        Star,
    }

    #[derive(Clone, Debug)]
    enum Op {
        Post,
        Accept(usize),
        Reject(usize),
        Patch(usize, Tag),
        FinishRestart(usize, bool),
        Delete(usize),
        Get(usize),
        Wait(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let tag = prop_oneof![
            Just(Tag::Current),
            Just(Tag::Stale),
            Just(Tag::Missing),
            Just(Tag::Star)
        ];
        prop_oneof![
            3 => Just(Op::Post),
            3 => (0..6usize).prop_map(Op::Accept),
            1 => (0..6usize).prop_map(Op::Reject),
            5 => (0..6usize, tag).prop_map(|(i, t)| Op::Patch(i, t)),
            2 => (0..6usize, any::<bool>()).prop_map(|(i, ok)| Op::FinishRestart(i, ok)),
            1 => (0..6usize).prop_map(Op::Delete),
            1 => (0..6usize).prop_map(Op::Get),
            1 => (1..8u64).prop_map(Op::Wait),
        ]
    }

    /// What the model knows of a session the test created.
    struct Known {
        id: SessionId,
        answered: bool,
        created_at: Instant,
        etag: Option<String>,
        restarting: Option<Instant>,
        /// The client's ufrag of the current ICE session.
        ufrag: &'static str,
        gone: bool,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Random requests and completions: every status is the one RFC 9725's rules give for
        /// the model's view of the session, and the endpoint's session count matches it.
        #[test]
        fn statuses_follow_the_rules(ops in proptest::collection::vec(op(), 1..60)) {
            let max = 4;
            let timeout = Duration::from_secs(10);
            let mut h = Harness::new(Config::whip().with_max_sessions(max).with_answer_timeout(timeout));
            let mut known: Vec<Known> = Vec::new();
            for op in ops {
                let live = known.iter().filter(|k| !k.gone).count();
                match op {
                    Op::Post => match h.post(&[("content-type", SDP)], OFFER) {
                        Outcome::Offer(offer) => {
                            prop_assert!(live < max, "accepted past the bound");
                            known.push(Known { id: offer.session, answered: false, created_at: h.now, etag: None, restarting: None, ufrag: "EsAw", gone: false });
                        }
                        Outcome::Respond(r) => {
                            prop_assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
                            prop_assert_eq!(live, max);
                        }
                        other => prop_assert!(false, "{:?}", other),
                    },
                    Op::Accept(i) | Op::Reject(i) => {
                        let Some(k) = known.get_mut(i) else { continue };
                        let waiting = !k.gone && !k.answered;
                        let result = if matches!(op, Op::Accept(_)) {
                            h.ep.accept(&k.id, &answer_for(OFFER), T0)
                        } else {
                            h.ep.reject(&k.id, Rejection::Forbidden)
                        };
                        prop_assert_eq!(result.is_ok(), waiting);
                        if let Ok(r) = result {
                            if r.status() == StatusCode::CREATED {
                                k.answered = true;
                                k.etag = Some(etag(&r));
                            } else {
                                prop_assert_eq!(r.status(), StatusCode::FORBIDDEN);
                                k.gone = true;
                            }
                        }
                    }
                    Op::Patch(i, tag) => {
                        let Some(k) = known.get_mut(i) else { continue };
                        let current = k.etag.clone().unwrap_or_else(|| "\"x\"".into());
                        // The client trickles with its current ICE session's credentials.
                        let trickle = TRICKLE
                            .replace("EsAw", k.ufrag)
                            .replace("bP+XJMM09aR8AiX1jdukzR6Y", if k.ufrag == "EsAw" { "bP+XJMM09aR8AiX1jdukzR6Y" } else { "vw5LmwG4y/e6dPP/zAP9Gp5k" });
                        let (if_match, body) = match tag {
                            Tag::Current => (Some(current.as_str()), trickle.as_str()),
                            Tag::Stale => (Some("\"stale\""), TRICKLE),
                            Tag::Missing => (None, TRICKLE),
                            Tag::Star => (Some("*"), RESTART),
                        };
                        let outcome = h.patch(&k.id, if_match, body);
                        let expected = if k.gone {
                            StatusCode::NOT_FOUND
                        } else if !k.answered {
                            StatusCode::CONFLICT
                        } else {
                            match tag {
                                Tag::Missing => StatusCode::PRECONDITION_REQUIRED,
                                Tag::Stale => StatusCode::PRECONDITION_FAILED,
                                Tag::Current => StatusCode::NO_CONTENT,
                                Tag::Star if k.restarting.is_some() => StatusCode::CONFLICT,
                                Tag::Star => StatusCode::OK, // handed to the application
                            }
                        };
                        match outcome {
                            Outcome::Restart(r) => {
                                prop_assert_eq!(expected, StatusCode::OK);
                                prop_assert_eq!(r.ufrag.as_str(), "ysXw");
                                k.restarting = Some(h.now);
                            }
                            Outcome::Respond(r) => prop_assert_eq!(r.status(), expected),
                            other => prop_assert!(false, "{:?}", other),
                        }
                    }
                    Op::FinishRestart(i, ok) => {
                        let Some(k) = known.get_mut(i) else { continue };
                        let waiting = !k.gone && k.restarting.is_some();
                        let result = if ok {
                            h.ep.restarted(&k.id, &server_ice())
                        } else {
                            h.ep.restart_failed(&k.id, RestartFailure::Internal("no".into()))
                        };
                        prop_assert_eq!(result.is_ok(), waiting);
                        if let Ok(r) = result {
                            k.restarting = None;
                            if ok {
                                prop_assert_eq!(r.status(), StatusCode::OK);
                                let new = etag(&r);
                                prop_assert_ne!(Some(&new), k.etag.as_ref());
                                k.etag = Some(new);
                                k.ufrag = "ysXw";
                            } else {
                                prop_assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
                            }
                        }
                    }
                    Op::Delete(i) | Op::Get(i) => {
                        let Some(k) = known.get_mut(i) else { continue };
                        let method = if matches!(op, Op::Delete(_)) { Method::DELETE } else { Method::GET };
                        let r = h.session(k.id.as_str(), method.clone(), &[], "");
                        if k.gone {
                            prop_assert_eq!(r.status(), StatusCode::NOT_FOUND);
                        } else if method == Method::DELETE {
                            prop_assert_eq!(r.status(), StatusCode::OK);
                            k.gone = true;
                        } else {
                            prop_assert_eq!(r.status(), StatusCode::NO_CONTENT);
                        }
                    }
                    Op::Wait(secs) => {
                        h.now += Duration::from_secs(secs);
                        h.ep.handle_timeout(h.now);
                        for k in known.iter_mut().filter(|k| !k.gone && !k.answered) {
                            if k.created_at + timeout <= h.now {
                                k.gone = true;
                            }
                        }
                        for k in known.iter_mut() {
                            if k.restarting.is_some_and(|at| at + timeout <= h.now) {
                                k.restarting = None;
                            }
                        }
                    }
                }
                let live = known.iter().filter(|k| !k.gone).count();
                prop_assert_eq!(h.ep.session_count(), live);
            }
        }
    }
}
