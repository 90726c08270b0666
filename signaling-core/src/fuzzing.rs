//! Entry points for the fuzz targets in `fuzz/` (compiled with `cfg(fuzzing)`), also replayed
//! over the checked-in corpora by this crate's unit tests on every test run.
//!
//! Each function must never panic, whatever the input.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::candidate::Candidate;
use crate::ice::CandidatePolicy;
use crate::negotiation::{Config, Negotiation, Output};
use crate::relay::{
    close_code, ConnId, Disconnect, JoinRequest, PeerId, Relay, RelayConfig, RelayOutput,
    RelayStats, TYPE_JOINED, TYPE_LEAVE, TYPE_LEFT,
};
use crate::sdp::SdpFacts;
use crate::sdpfrag::{FragLimits, SdpFrag};
use crate::transport::CloseCode;
use crate::wire::{self, Description, Dialect, IceCandidate, Message, RawFrame, SdpKind};

/// Decodes a frame through the typed and the forwarding path; re-encodes what decodes.
pub fn wire(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = wire::decode(s) {
        for d in [Dialect::GO2RTC, Dialect::GO2RTC_V2, Dialect::BROWSER] {
            let again = wire::encode(&m, d);
            // Whatever we write, we read back.
            assert!(
                wire::decode_with_limit(&again, usize::MAX).is_ok(),
                "{again}"
            );
        }
    }
    if let Ok(raw) = RawFrame::parse(s, wire::DEFAULT_MAX_FRAME_LEN) {
        let _ = raw.decode();
        let _ = raw.write_with_from("peer");
    }
}

/// Parses a candidate; a parsed candidate must write back exactly (minus an `a=` prefix).
pub fn candidate(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Candidate::parse(s) {
        let text = c.to_string();
        assert_eq!(text, s.strip_prefix("a=").unwrap_or(s));
        assert_eq!(Candidate::parse(&text).as_ref(), Ok(&c));
    }
}

/// Extracts SDP facts.
pub fn sdp(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(f) = SdpFacts::parse(s) {
        let _ = f.default_mid(None);
        let _ = f.ice_credentials();
        for i in 0..f.sections().len() {
            let mid = f.mid_at(i);
            if let Some(m) = mid {
                assert_eq!(f.index_of_mid(m), Some(i));
            }
        }
    }
}

/// Parses an SDP fragment; a parsed fragment must write back to text that parses to an equal
/// fragment, and that text must be its own canonical form.
pub fn sdpfrag(data: &[u8]) {
    let Ok(frag) = SdpFrag::parse_bytes(data, &FragLimits::default()) else {
        return;
    };
    let text = frag.to_string();
    // The written form may be longer than the input (LF becomes CRLF), never more lines or
    // candidates: re-read it without the length bound.
    let limits = FragLimits {
        max_len: usize::MAX,
        ..FragLimits::default()
    };
    let again = SdpFrag::parse_with(&text, &limits);
    assert_eq!(again.as_ref(), Ok(&frag), "{text}");
    assert_eq!(again.map(|f| f.to_string()).as_deref(), Ok(text.as_str()));
}

/// What the texts require of a WHIP/WHEP answer whatever the request was: a status of
/// 200..=599; a `201` with the session's `Location`, its entity-tag and the SDP answer (RFC 9725
/// §4.2); a `406` counter-offer with `Location` and the server's offer (WHEP §4.2); a `204`
/// without content (RFC 9110 §15.3.5); a `401` with `WWW-Authenticate` (RFC 9110 §15.5.2); a
/// `405` with `Allow` (RFC 9110 §15.5.6); a `503` with `Retry-After` (RFC 9725 §4.5, as the
/// endpoint documents it always sends one).
fn check_whip_response(response: &http::Response<String>) {
    use http::header::{ALLOW, ETAG, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE};

    let status = response.status().as_u16();
    assert!((200..600).contains(&status), "{status}");
    let has = |name| response.headers().contains_key(name);
    let body = !response.body().is_empty();
    let ok = match status {
        201 => has(LOCATION) && has(ETAG) && body,
        204 => !body,
        401 => has(WWW_AUTHENTICATE),
        405 => has(ALLOW),
        406 => has(LOCATION) && body,
        503 => has(RETRY_AFTER),
        _ => true,
    };
    assert!(ok, "{status} without what it must carry: {response:?}");
}

/// Runs a sequence of HTTP requests and application completions, read from the bytes, through
/// a WHIP or WHEP endpoint: whatever a client sends (methods, headers, bodies, session ids), the
/// endpoint keeps within its session bound and every answer is one the texts allow (see
/// [`check_whip_response`]).
pub fn whip(data: &[u8]) {
    use crate::whip::{self, Endpoint, IceAnswer, Outcome, Rejection, Request, RestartFailure};
    use http::{HeaderMap, HeaderValue, Method};

    let mut bytes = data.iter().copied();
    let Some(first) = bytes.next() else { return };
    let mut config = if first & 1 == 0 {
        whip::Config::whip()
    } else {
        whip::Config::whep()
    };
    config = config
        .with_max_sessions(usize::from(first >> 5) + 1)
        .with_patch(first & 2 == 0, first & 4 == 0)
        .with_etag(if first & 8 == 0 {
            whip::EtagMode::Strict
        } else {
            whip::EtagMode::Lenient
        });
    let max_sessions = config.max_sessions;
    let mut endpoint = Endpoint::new(config, [first; 32]);
    // The endpoint reads no clock: one base instant, then time moves by the input.
    #[allow(clippy::disallowed_methods)]
    let mut now = Instant::now();
    let mut sessions: Vec<String> = Vec::new();
    let mut etags: Vec<String> = Vec::new();
    let mut pending = None;
    while let Some(op) = bytes.next() {
        let arg = bytes.next().unwrap_or(0);
        // A body: the next `arg % 64 * 4` bytes, lossily as text.
        let take = |bytes: &mut dyn Iterator<Item = u8>, n: u8| -> Vec<u8> {
            bytes.take(usize::from(n % 64) * 4).collect()
        };
        let pick = |list: &[String], i: u8| list.get(usize::from(i) % list.len().max(1)).cloned();
        let outcome = match op % 10 {
            0 | 1 => {
                let mut body = if op % 10 == 0 {
                    sdp_text("fuzz", u64::from(arg), arg % 3 + 1).into_bytes()
                } else {
                    Vec::new()
                };
                body.extend(take(&mut bytes, arg));
                let mut headers = HeaderMap::new();
                let kind = ["application/sdp", "text/plain", "application/SDP; x=1"];
                headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static(kind[usize::from(arg) % 3]),
                );
                if arg & 0x40 != 0 {
                    headers.insert(
                        http::header::AUTHORIZATION,
                        HeaderValue::from_static("Bearer t"),
                    );
                }
                let request = Request::endpoint(&Method::POST, "/whip/s", "s", &headers, &body);
                endpoint.handle(&request, now)
            }
            2..=4 => {
                let id = pick(&sessions, arg).unwrap_or_default();
                let body = take(&mut bytes, arg);
                let mut headers = HeaderMap::new();
                let ctype = if arg & 1 == 0 {
                    crate::sdpfrag::MEDIA_TYPE
                } else {
                    "application/sdp"
                };
                headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ctype));
                let tag = match arg % 4 {
                    0 => pick(&etags, arg.wrapping_add(op)),
                    1 => Some("*".to_owned()),
                    2 => Some(String::from_utf8_lossy(&body).into_owned()),
                    _ => None,
                };
                if let Some(Ok(tag)) = tag.map(|t| HeaderValue::from_str(&t)) {
                    headers.insert(http::header::IF_MATCH, tag);
                }
                let method = [
                    Method::PATCH,
                    Method::DELETE,
                    Method::OPTIONS,
                    Method::GET,
                    Method::PUT,
                ][usize::from(op % 10 - 2 + (arg >> 6)) % 5]
                    .clone();
                let path = format!("/whip/s/{id}");
                let request = Request::session(&method, &path, &id, &headers, &body);
                endpoint.handle(&request, now)
            }
            5 => {
                let Some(id) = pending.take() else { continue };
                let result = match arg % 5 {
                    0 => endpoint.accept(&id, &sdp_text("ans", 1, 1), 1_700_000_000),
                    1 => endpoint.reject(&id, Rejection::Conflict("taken".into())),
                    2 => endpoint.counter_offer(&id, &sdp_text("co", 1, 1), now, 1_700_000_000),
                    3 => endpoint.not_live(&id, Duration::from_secs(u64::from(arg))),
                    _ => endpoint.accept(&id, "not an sdp", 0),
                };
                if let Ok(response) = result {
                    if let Some(tag) = response.headers().get(http::header::ETAG) {
                        etags.push(tag.to_str().unwrap_or_default().to_owned());
                    }
                    Outcome::Respond(response)
                } else {
                    continue;
                }
            }
            6 => {
                let Some(id) = pick(&sessions, arg) else {
                    continue;
                };
                let id = whip::SessionId::from(id.as_str());
                let result = if arg & 1 == 0 {
                    let answer = IceAnswer {
                        ufrag: "abcd".into(),
                        pwd: "0123456789012345678901".into(),
                        lite: arg & 2 == 0,
                        ..IceAnswer::default()
                    };
                    endpoint.restarted(&id, &answer)
                } else {
                    endpoint.restart_failed(&id, RestartFailure::Internal("no".into()))
                };
                match result {
                    Ok(response) => Outcome::Respond(response),
                    Err(_) => continue,
                }
            }
            7 => {
                now += Duration::from_secs(u64::from(arg % 40));
                endpoint.handle_timeout(now);
                continue;
            }
            8 => {
                while endpoint.poll_event().is_some() {}
                continue;
            }
            _ => {
                let Some(id) = pick(&sessions, arg) else {
                    continue;
                };
                endpoint.close(&whip::SessionId::from(id.as_str()));
                continue;
            }
        };
        match outcome {
            Outcome::Respond(response) => {
                check_whip_response(&response);
                if let Some(tag) = response.headers().get(http::header::ETAG) {
                    etags.push(tag.to_str().unwrap_or_default().to_owned());
                }
            }
            Outcome::Offer(offer) => {
                sessions.push(offer.session.to_string());
                pending = Some(offer.session);
            }
            Outcome::Restart(restart) => sessions.push(restart.session.to_string()),
        }
        assert!(endpoint.session_count() <= max_sessions);
        if sessions.len() > 64 {
            sessions.drain(..32);
        }
        if etags.len() > 64 {
            etags.drain(..32);
        }
    }
}

/// Runs a sequence of commands and peer frames, read from the bytes, through a negotiation.
pub fn negotiation(data: &[u8]) {
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    let Some(flags) = next() else {
        return;
    };
    let dialect = match flags % 3 {
        0 => Dialect::GO2RTC,
        1 => Dialect::GO2RTC_V2,
        _ => Dialect::BROWSER,
    };
    let config = Config::new(flags & 4 != 0)
        .with_dialect(dialect)
        .with_max_pending_candidates(8)
        .with_max_candidates(16)
        .with_negotiation_timeout(Duration::from_secs(10));
    let mut n = Negotiation::new(config);
    // The one clock read of the fuzz harness: a base instant; everything after is derived.
    #[allow(clippy::disallowed_methods)]
    let mut now = Instant::now();
    let mut version = 1u64;
    while let Some(op) = next() {
        let arg = next().unwrap_or(0);
        version += 1;
        let ufrag = UFRAGS[usize::from(arg % 4)];
        match op % 12 {
            0 => {
                let _ = n.start_offer(now);
            }
            1..=3 => {
                let kind =
                    [SdpKind::Offer, SdpKind::Answer, SdpKind::Pranswer][usize::from(op % 12 - 1)];
                let _ = n.set_local_description(now, kind, sdp_text(ufrag, version, arg % 3 + 1));
            }
            4 => {
                let _ = n.rollback(now);
            }
            5 => {
                let _ = n.add_local_candidate(now, candidate_init(arg, ufrag));
            }
            6 => {
                let _ = n.end_of_local_candidates(now);
            }
            7 => {
                // Raw bytes from the input as a frame.
                let len = usize::from(arg);
                let mut raw = Vec::with_capacity(len);
                for _ in 0..len {
                    match next() {
                        Some(b) => raw.push(b),
                        None => break,
                    }
                }
                n.handle_frame(now, &String::from_utf8_lossy(&raw));
            }
            8 => {
                let kind =
                    [SdpKind::Offer, SdpKind::Answer, SdpKind::Pranswer][usize::from(arg % 3)];
                let d = Description::new(kind, sdp_text(ufrag, version, arg % 3 + 1));
                n.handle_frame(now, &wire::encode(&Message::Description(d), dialect));
            }
            9 => {
                let m = if arg & 0x80 != 0 {
                    Message::EndOfCandidates(Default::default())
                } else {
                    Message::Candidate(candidate_init(arg, ufrag))
                };
                n.handle_frame(now, &wire::encode(&m, Dialect::BROWSER));
            }
            10 => {
                now += Duration::from_secs(u64::from(arg));
                n.handle_timeout(now);
            }
            _ => {
                if arg == 0 {
                    n.close();
                }
            }
        }
        // Draining always ends, with a bounded number of outputs.
        let mut drained = 0;
        while !matches!(n.poll_output(), Output::Timeout(_)) {
            drained += 1;
            assert!(drained < 10_000, "poll_output does not settle");
        }
    }
}

const UFRAGS: [&str; 4] = ["AAAA", "BBBB", "CCCC", "DDDD"];

fn sdp_text(ufrag: &str, version: u64, sections: u8) -> String {
    let mut s = format!(
        "v=0\r\no=- 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE{}\r\n",
        (0..sections).map(|i| format!(" {i}")).collect::<String>()
    );
    for i in 0..sections {
        s.push_str(&format!(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:{ufrag}\r\na=ice-pwd:{ufrag}{ufrag}{ufrag}{ufrag}{ufrag}{ufrag}\r\na=mid:{i}\r\n"
        ));
    }
    s
}

fn candidate_init(arg: u8, ufrag: &str) -> IceCandidate {
    let mut c = IceCandidate::new(format!(
        "candidate:{arg} 1 udp {} 192.0.2.{arg} {} typ host generation 0 ufrag {ufrag}",
        2_000_000_000u32 + u32::from(arg),
        40_000 + u16::from(arg)
    ));
    if arg & 1 != 0 {
        c.sdp_mid = Some((arg % 4).to_string().into());
    }
    if arg & 2 != 0 {
        c.sdp_m_line_index = Some(u16::from(arg % 5));
    }
    c
}

// ---------------------------------------------------------------------------------------------
// Relay routing

/// Runs a byte-coded sequence of joins (fresh, and resumes with right and wrong tokens), frames
/// (`webrtc/*`, unknown types, `relay/*`, garbage; with and without `to`), clean leaves, lost
/// connections, slow-consumer events and time steps through a [`Relay`], and checks every output
/// against a model of who is where:
///
/// - **isolation**: a frame reaches only peers of its sender's room, never the sender, and only
///   its `to` peer when it names one;
/// - **at most once** per receiving peer, and **in order** per sender (the order the relay
///   forwards in: as sent, except that the ordering guard moves held candidates behind the
///   sender's first description);
/// - **exactly once** to every peer that was connected from before the frame was forwarded to
///   the end (never away, never gone), for every frame the relay accepted (no `error` back, no
///   close, not filtered). Frames that wait in a mailbox or for an away peer may be dropped for
///   documented reasons (bounds, age) and carry no such obligation;
/// - the relay's notices (`relay/welcome` with the right id and peers, `relay/joined`,
///   `relay/left` at once for a clean leave and only after the grace for a lost connection),
///   join outcomes (room full, limits, resume), invalid `webrtc/*` frames refused when
///   validation is on, and the relay's peer and room counts, against the model.
///
/// Every data frame carries a unique sequence number in its payload (see [`relay_marker`]).
pub fn relay(data: &[u8]) {
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    let (Some(a), Some(b)) = (next(), next()) else {
        return;
    };
    let mut h = RelayHarness::new(relay_fuzz_config(a, b));
    while let Some(op) = next() {
        let arg = next().unwrap_or(0);
        match op % 12 {
            0 => h.join(ROOMS[usize::from(arg % 3)], None),
            1 => {
                let token = match h.tokens.len() {
                    0 => None,
                    len if arg & 0x80 == 0 => Some(h.tokens[usize::from(arg) % len].clone()),
                    _ => None,
                };
                let (token, room) = match token {
                    Some((token, _, room)) if arg & 0x40 == 0 => (token, room),
                    Some((token, _, _)) => (token, ROOMS[usize::from(arg >> 2) % 3]),
                    None => (format!("{:032x}", u128::MAX - u128::from(h.step)), ROOMS[0]),
                };
                h.join(room, Some(token));
            }
            2..=4 => {
                let kind = next().unwrap_or(0);
                let to = next().unwrap_or(0);
                h.data_frame(arg, kind, to);
            }
            5 => h.disconnect(arg, Disconnect::Clean),
            6 => h.disconnect(arg, Disconnect::Lost),
            7 => h.slow_consumer(arg),
            8 => h.advance(Duration::from_millis(u64::from(arg) * 100)),
            9 => {
                let len = usize::from(arg % 96);
                let raw: Vec<u8> = (0..len).map_while(|_| next()).collect();
                let conn = next().unwrap_or(0);
                h.garbage(conn, &String::from_utf8_lossy(&raw));
            }
            10 => {
                let kind = if arg & 1 == 0 {
                    TYPE_LEAVE
                } else {
                    "relay/other"
                };
                h.frame(arg >> 1, format!(r#"{{"type":"{kind}"}}"#), None);
            }
            _ => {
                // Something on a connection the relay has closed (or never had).
                h.frame(arg | 0x80, r#"{"type":"x","value":0}"#.to_owned(), None);
            }
        }
        h.check_counts();
    }
    h.finish();
}

const ROOMS: [&str; 3] = ["a", "b", "c"];

/// The relay settings a run uses, from its first two bytes: small bounds, so that the limits
/// are reached.
fn relay_fuzz_config(a: u8, b: u8) -> RelayConfig {
    let small_mailbox = a & 32 != 0;
    let slow_rate = a & 96 == 96;
    RelayConfig {
        room_capacity: [2, 2, 3, 4][usize::from(a & 3)],
        ordering_guard: a & 4 == 0,
        validate_frames: a & 8 == 0,
        resume_grace: if a & 16 != 0 {
            Duration::ZERO
        } else {
            Duration::from_secs(5)
        },
        mailbox_frames: if small_mailbox { 3 } else { 16 },
        mailbox_bytes: if small_mailbox { 600 } else { 64 * 1024 },
        mailbox_age: Duration::from_secs(10),
        rate_per_sec: if slow_rate { 2 } else { 1000 },
        rate_burst: if slow_rate { 6 } else { 1000 },
        privacy: CandidatePolicy {
            drop_host: a & 128 != 0,
            ..CandidatePolicy::default()
        },
        max_peers: 2 + usize::from(b & 7),
        max_rooms: 1 + usize::from((b >> 3) & 3),
        guard_frames: 1 + usize::from((b >> 5) & 3),
        max_frame_len: if b & 0xc0 == 0xc0 { 300 } else { 64 * 1024 },
        idle_timeout: Duration::from_secs(60),
        ..RelayConfig::default()
    }
}

/// The sequence number a data frame of the harness carries, read back from a frame as the relay
/// forwards it (from the type and the value only: the relay may rewrite the envelope). `None`
/// for anything else.
pub fn relay_marker(frame: &str) -> Option<u64> {
    let raw = RawFrame::parse(frame, usize::MAX).ok()?;
    let value = raw.value_json()?;
    let digits = |s: &str| -> Option<u64> {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        s[..end].parse().ok()
    };
    let in_sdp = |sdp: &str| sdp.split_once("\no=- ").and_then(|(_, rest)| digits(rest));
    match raw.kind() {
        "x" => digits(
            serde_json::from_str::<String>(value)
                .ok()?
                .strip_prefix('n')?,
        ),
        wire::TYPE_OFFER | wire::TYPE_ANSWER => {
            in_sdp(&serde_json::from_str::<String>(value).ok()?)
        }
        wire::TYPE_WEBRTC => {
            #[derive(serde::Deserialize)]
            struct V2 {
                sdp: String,
            }
            in_sdp(&serde_json::from_str::<V2>(value).ok()?.sdp)
        }
        wire::TYPE_CANDIDATE => {
            #[derive(serde::Deserialize)]
            #[serde(untagged)]
            enum Value {
                Text(String),
                Object {
                    candidate: String,
                    #[serde(rename = "sdpMid")]
                    mid: Option<String>,
                },
            }
            match serde_json::from_str::<Value>(value).ok()? {
                Value::Text(c) => digits(c.strip_prefix("candidate:")?),
                Value::Object { candidate, mid } if candidate.is_empty() => {
                    digits(mid?.strip_prefix('n')?)
                }
                Value::Object { candidate, .. } => digits(candidate.strip_prefix("candidate:")?),
            }
        }
        _ => None,
    }
}

/// A data frame of the harness, with its sequence number `n`. `kind` picks the type and whether
/// it is valid; returns the frame and whether validation must refuse it.
fn relay_data_frame(n: u64, kind: u8, to: Option<&str>) -> (String, bool) {
    let sdp = |nul: bool| {
        format!(
            "v=0\\r\\no=- {n} 1 IN IP4 127.0.0.1\\r\\ns={}\\r\\nt=0 0\\r\\n",
            if nul { "\\u0000" } else { "-" }
        )
    };
    let candidate = if n.is_multiple_of(2) {
        format!(
            "candidate:{n} 1 udp 2122260223 192.0.2.{} {} typ host",
            n % 250 + 1,
            40_000 + n % 20_000
        )
    } else {
        format!(
            "candidate:{n} 1 udp 1686052863 198.51.100.{} {} typ srflx raddr 192.0.2.1 rport 9",
            n % 250 + 1,
            40_000 + n % 20_000
        )
    };
    let (kind, value, invalid) = match kind % 12 {
        0 => ("x", format!(r#""n{n}""#), false),
        1 => (wire::TYPE_OFFER, format!(r#""{}""#, sdp(false)), false),
        2 => (wire::TYPE_ANSWER, format!(r#""{}""#, sdp(false)), false),
        3 => (
            wire::TYPE_WEBRTC,
            format!(r#"{{"type":"offer","sdp":"{}"}}"#, sdp(false)),
            false,
        ),
        4 => (wire::TYPE_CANDIDATE, format!(r#""{candidate}""#), false),
        5 => (
            wire::TYPE_CANDIDATE,
            format!(r#"{{"candidate":"{candidate}","sdpMid":"0","sdpMLineIndex":0}}"#),
            false,
        ),
        6 => (
            wire::TYPE_CANDIDATE,
            format!(r#"{{"candidate":"","sdpMid":"n{n}"}}"#),
            false,
        ),
        7 => (
            wire::TYPE_CANDIDATE,
            format!(r#""{candidate}\r\na=ice-ufrag:evil""#),
            true,
        ),
        8 => (wire::TYPE_OFFER, format!(r#""{}""#, sdp(true)), true),
        9 => (
            wire::TYPE_CANDIDATE,
            format!(r#""{candidate}","note":"\ud800""#),
            true,
        ),
        10 => (wire::TYPE_CANDIDATE, format!(r#""candidate:{n} x""#), true),
        _ => (
            "x",
            format!(
                r#""n{n} {}""#,
                "y".repeat(usize::try_from(n % 400).unwrap_or(0))
            ),
            false,
        ),
    };
    let to = to.map(|to| format!(r#","to":"{to}""#)).unwrap_or_default();
    (
        format!(r#"{{"type":"{kind}","value":{value}{to}}}"#),
        invalid,
    )
}

/// A peer as the model sees it.
#[derive(Debug)]
struct ModelPeer {
    room: &'static str,
    /// `None` while away (lost, may resume).
    conn: Option<ConnId>,
    token: String,
    away_since: Option<Instant>,
    /// The step since which the peer has been connected without interruption.
    connected_since: u64,
    /// Whether one of its descriptions was accepted (the ordering guard lets its candidates
    /// through from then on).
    described: bool,
    /// Its candidates the guard holds (their sequence numbers).
    held: Vec<u64>,
    /// How many of its frames the relay has forwarded (the forwarding order).
    forwarded: u64,
}

/// A data frame the harness sent.
#[derive(Debug)]
struct SentFrame {
    sender: PeerId,
    room: &'static str,
    /// `Some(None)`: a `to` that names no peer.
    to: Option<Option<PeerId>>,
    text: String,
    /// The step it was forwarded at and its place in its sender's forwarding order (`None`:
    /// refused, dropped before routing, or still held).
    forwarded: Option<(u64, u64)>,
}

/// What a step expects of the relay's output.
enum Expect {
    /// A connection joins: this outcome (the peer id when it resumes).
    Join {
        conn: ConnId,
        outcome: Result<Option<PeerId>, CloseCode>,
    },
    /// A frame from a connection (with its sequence number, and whether validation must refuse
    /// it).
    Frame {
        conn: ConnId,
        text: String,
        n: Option<u64>,
        invalid: bool,
    },
    /// Anything else.
    Other,
}

struct RelayHarness {
    relay: Relay,
    config: RelayConfig,
    now: Instant,
    step: u64,
    next_conn: u64,
    next_n: u64,
    /// Connections the relay has, and their peers.
    open: BTreeMap<ConnId, PeerId>,
    /// Every connection ever made (to pick closed ones too).
    all_conns: Vec<ConnId>,
    peers: BTreeMap<PeerId, ModelPeer>,
    /// Room members in join order.
    rooms: BTreeMap<&'static str, Vec<PeerId>>,
    /// Every peer id ever seen (for `to`).
    ids: Vec<PeerId>,
    /// Every token handed out: token, its peer, its room.
    tokens: Vec<(String, PeerId, &'static str)>,
    frames: BTreeMap<u64, SentFrame>,
    /// The relay's counters after the last step.
    stats: RelayStats,
    /// Deliveries per (frame, receiving peer).
    delivered: BTreeMap<(u64, PeerId), u32>,
    /// The last forwarding place delivered per (sender, receiver).
    last: BTreeMap<(PeerId, PeerId), u64>,
}

impl RelayHarness {
    fn new(config: RelayConfig) -> Self {
        Self {
            relay: Relay::new(config.clone()),
            config,
            // The one clock read of the harness: a base instant; everything after is derived.
            #[allow(clippy::disallowed_methods)]
            now: Instant::now(),
            step: 0,
            next_conn: 0,
            next_n: 0,
            open: BTreeMap::new(),
            all_conns: Vec::new(),
            peers: BTreeMap::new(),
            rooms: BTreeMap::new(),
            ids: Vec::new(),
            tokens: Vec::new(),
            frames: BTreeMap::new(),
            stats: RelayStats::default(),
            delivered: BTreeMap::new(),
            last: BTreeMap::new(),
        }
    }

    /// An open connection (or, with the high bit of `pick` set, any connection ever made).
    fn pick_conn(&self, pick: u8) -> Option<ConnId> {
        if pick & 0x80 != 0 && !self.all_conns.is_empty() {
            return Some(self.all_conns[usize::from(pick & 0x7f) % self.all_conns.len()]);
        }
        let open: Vec<ConnId> = self.open.keys().copied().collect();
        (!open.is_empty()).then(|| open[usize::from(pick) % open.len()])
    }

    fn join(&mut self, room: &'static str, resume: Option<String>) {
        self.step += 1;
        self.next_conn += 1;
        let conn = ConnId(self.next_conn);
        self.all_conns.push(conn);
        let fresh = format!("{:032x}", self.next_conn);
        let outcome = match &resume {
            Some(token) => {
                let owner = self.tokens.iter().find(|(t, _, _)| t == token);
                match owner {
                    Some((_, id, r))
                        if *r == room && self.peers.get(id).is_some_and(|p| p.token == *token) =>
                    {
                        Ok(Some(*id))
                    }
                    _ => Err(close_code::RESUME_FAILED),
                }
            }
            None => {
                let members = self.rooms.get(room).map_or(0, Vec::len);
                if members >= self.config.room_capacity {
                    Err(close_code::ROOM_FULL)
                } else if members == 0 && self.rooms.len() >= self.config.max_rooms {
                    Err(close_code::TOO_MANY_ROOMS)
                } else if self.peers.len() >= self.config.max_peers {
                    Err(close_code::TOO_MANY_PEERS)
                } else {
                    Ok(None)
                }
            }
        };
        let mut request = JoinRequest::new(room, fresh.clone());
        if let Some(token) = resume {
            request = request.with_resume(token);
        }
        let result = self.relay.join(self.now, conn, request);
        match (&outcome, &result) {
            (Ok(expected), Ok(id)) => {
                if let Some(expected) = expected {
                    assert_eq!(id, expected, "a resume keeps the id");
                }
            }
            (Err(code), Err(reason)) => assert_eq!(*code, reason.code, "join refused: {reason}"),
            _ => panic!("join of {conn} to {room}: expected {outcome:?}, got {result:?}"),
        }
        let expect = Expect::Join { conn, outcome };
        let Ok(id) = result else {
            self.settle(&expect, Vec::new());
            return;
        };
        let resumed = outcome == Ok(Some(id));
        let mut joined = Vec::new();
        let mut replaced = None;
        if resumed {
            let step = self.step;
            let Some(peer) = self.peers.get_mut(&id) else {
                unreachable!("a resumed peer is in the model");
            };
            // The old connection, if any, is closed with REPLACED (checked with the outputs).
            replaced = peer.conn.replace(conn);
            if replaced.is_none() {
                peer.connected_since = step;
            }
            peer.away_since = None;
            peer.token = fresh.clone();
        } else {
            assert!(
                self.ids.iter().all(|old| old.0 < id.0),
                "a fresh id: {id} after {:?}",
                self.ids
            );
            self.ids.push(id);
            self.peers.insert(
                id,
                ModelPeer {
                    room,
                    conn: Some(conn),
                    token: fresh.clone(),
                    away_since: None,
                    connected_since: self.step,
                    described: false,
                    held: Vec::new(),
                    forwarded: 0,
                },
            );
            self.rooms.entry(room).or_default().push(id);
            joined.push(id);
        }
        self.open.insert(conn, id);
        self.tokens.push((fresh, id, room));
        self.settle_with(&expect, Vec::new(), joined);
        if let Some(old) = replaced {
            assert!(
                !self.open.contains_key(&old),
                "{old} was not closed as replaced"
            );
        }
    }

    /// A data frame of the harness from the connection `pick` chooses.
    fn data_frame(&mut self, pick: u8, kind: u8, to: u8) {
        let Some(conn) = self.pick_conn(pick) else {
            return;
        };
        let sender = self.open.get(&conn).copied();
        let to_text = match to % 8 {
            0..=4 => None,
            5 if !self.ids.is_empty() => {
                Some(self.ids[usize::from(to >> 3) % self.ids.len()].to_string())
            }
            6 => Some("zz".to_owned()),
            _ => sender
                .and_then(|s| {
                    let room = self.peers.get(&s)?.room;
                    self.rooms.get(room)?.iter().find(|p| **p != s).copied()
                })
                .map(|p| p.to_string()),
        };
        self.next_n += 1;
        let n = self.next_n;
        let (text, invalid) = relay_data_frame(n, kind, to_text.as_deref());
        if let Some(sender) = sender {
            let room = self.peers.get(&sender).map_or("", |p| p.room);
            self.frames.insert(
                n,
                SentFrame {
                    sender,
                    room,
                    to: to_text.map(|t| t.parse::<PeerId>().ok()),
                    text: text.clone(),
                    forwarded: None,
                },
            );
        }
        self.send(conn, text, Some(n), invalid);
    }

    /// Garbage (never carrying a sequence number) from the connection `pick` chooses.
    fn garbage(&mut self, pick: u8, text: &str) {
        if relay_marker(text).is_some() {
            return;
        }
        self.frame(pick, text.to_owned(), None);
    }

    fn frame(&mut self, pick: u8, text: String, n: Option<u64>) {
        if let Some(conn) = self.pick_conn(pick) {
            self.send(conn, text, n, false);
        }
    }

    fn send(&mut self, conn: ConnId, text: String, n: Option<u64>, invalid: bool) {
        self.step += 1;
        self.relay.handle_frame(self.now, conn, text.as_str());
        let expect = Expect::Frame {
            conn,
            text,
            n,
            invalid,
        };
        self.settle(&expect, Vec::new());
    }

    fn disconnect(&mut self, pick: u8, how: Disconnect) {
        let Some(conn) = self.pick_conn(pick) else {
            return;
        };
        self.step += 1;
        self.relay.disconnected(self.now, conn, how);
        let removed = self.conn_ended(conn, how);
        self.settle(&Expect::Other, removed);
    }

    fn slow_consumer(&mut self, pick: u8) {
        let Some(conn) = self.pick_conn(pick) else {
            return;
        };
        self.step += 1;
        self.relay.slow_consumer(self.now, conn);
        // The close is checked with the other outputs; the model changes as for a loss.
        self.settle(&Expect::Other, Vec::new());
    }

    fn advance(&mut self, by: Duration) {
        self.step += 1;
        self.now += by;
        self.relay.handle_timeout(self.now);
        let grace = self.config.resume_grace;
        let now = self.now;
        let expired: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.away_since.is_some_and(|at| at + grace <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            self.remove(*id);
        }
        self.settle(&Expect::Other, expired);
    }

    /// The model's side of a connection that ended (by the driver's report or the relay's
    /// slow-consumer close); returns the peer if it is gone.
    fn conn_ended(&mut self, conn: ConnId, how: Disconnect) -> Vec<PeerId> {
        let Some(id) = self.open.remove(&conn) else {
            return Vec::new();
        };
        if how == Disconnect::Clean || self.config.resume_grace.is_zero() {
            self.remove(id);
            return vec![id];
        }
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.conn = None;
            peer.away_since = Some(self.now);
        }
        Vec::new()
    }

    fn remove(&mut self, id: PeerId) {
        let Some(peer) = self.peers.remove(&id) else {
            return;
        };
        if let Some(conn) = peer.conn {
            self.open.remove(&conn);
        }
        if let Some(members) = self.rooms.get_mut(peer.room) {
            members.retain(|p| *p != id);
            if members.is_empty() {
                self.rooms.remove(peer.room);
            }
        }
    }

    fn settle(&mut self, expect: &Expect, removed: Vec<PeerId>) {
        self.settle_with(expect, removed, Vec::new());
    }

    /// Drains the relay after a step and checks its outputs against the model; updates the
    /// model with what the outputs tell (refusals, closes).
    fn settle_with(&mut self, expect: &Expect, mut removed: Vec<PeerId>, joined: Vec<PeerId>) {
        let before = std::mem::replace(&mut self.stats, self.relay.stats());
        let mut outputs = Vec::new();
        loop {
            match self.relay.poll_output() {
                RelayOutput::Timeout(_) => break,
                other => outputs.push(other),
            }
            assert!(outputs.len() < 100_000, "poll_output does not settle");
        }
        let after = self.stats;
        // Connected at the start of the step (as the model had it before the outputs).
        let connected_before: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.conn.is_some() && p.connected_since < self.step)
            .map(|(id, _)| *id)
            .collect();

        // 1. What became of the frame of this step.
        if let Expect::Frame {
            conn,
            text,
            n,
            invalid,
        } = expect
        {
            let Some(&sender) = self.open.get(conn) else {
                assert!(outputs.is_empty(), "{conn} is not open: {outputs:?}");
                return;
            };
            let raw = RawFrame::parse(text, usize::MAX).ok();
            let kind = raw
                .as_ref()
                .map(|r| r.kind().to_owned())
                .unwrap_or_default();
            // The errors about this frame (`"<its type>: ..."`; a description's released
            // candidates that cannot be routed are refused as `webrtc/candidate`).
            let errors = outputs
                .iter()
                .filter(|o| match o {
                    RelayOutput::Transmit { conn: c, frame } if c == conn => {
                        let v: serde_json::Value = serde_json::from_str(frame).unwrap_or_default();
                        let about = v["value"].as_str().unwrap_or_default();
                        v["type"] == "error"
                            && (raw.is_none() || about.starts_with(&format!("{kind}: ")))
                    }
                    _ => false,
                })
                .count();
            let closed = outputs
                .iter()
                .any(|o| matches!(o, RelayOutput::Close { conn: c, .. } if c == conn));
            let filtered = after.filtered > before.filtered;
            if *invalid && self.config.validate_frames && !closed {
                assert_eq!(errors, 1, "invalid frame not refused: {text}");
                assert_eq!(after.invalid, before.invalid + 1, "{text}");
            }
            assert!(errors <= 1, "one error per frame: {outputs:?}");
            let accepted = errors == 0 && !closed && !filtered && !kind.starts_with("relay/");
            if accepted {
                if let Some(raw) = raw {
                    self.accepted(sender, &raw, *n);
                }
            }
        }

        // 2. The outputs, in order.
        let mut welcomed = Vec::new();
        let mut notices: Vec<(PeerId, &'static str, PeerId)> = Vec::new();
        let mut notice_rooms = Vec::new();
        for output in outputs {
            match output {
                RelayOutput::Transmit { conn, frame } => {
                    let Some(&receiver) = self.open.get(&conn) else {
                        panic!("a frame for {conn}, which is not open: {frame}");
                    };
                    let text: &str = &frame;
                    if let Some(value) = text
                        .strip_prefix(r#"{"type":"relay/welcome","value":"#)
                        .and_then(|v| v.strip_suffix('}'))
                    {
                        self.check_welcome(expect, conn, receiver, value);
                        welcomed.push(conn);
                        continue;
                    }
                    if let Some(kind) = [TYPE_JOINED, TYPE_LEFT]
                        .into_iter()
                        .find(|k| text.starts_with(&format!(r#"{{"type":"{k}""#)))
                    {
                        let about: serde_json::Value =
                            serde_json::from_str(text).unwrap_or_default();
                        let about = about["value"]["id"]
                            .as_str()
                            .and_then(|s| s.parse::<PeerId>().ok());
                        let Some(about) = about else {
                            panic!("a notice without an id: {text}");
                        };
                        notices.push((receiver, kind, about));
                        notice_rooms.push(self.peers.get(&receiver).map_or("", |p| p.room));
                        continue;
                    }
                    // The relay's answer to the frame of this step (an `error` frame another
                    // peer sent is forwarded like any unknown type).
                    let answers = matches!(expect, Expect::Frame { conn: c, .. } if *c == conn);
                    if answers && text.starts_with(r#"{"type":"error""#) {
                        continue;
                    }
                    self.check_delivery(receiver, text);
                }
                RelayOutput::Close { conn, reason } => {
                    assert!(
                        self.open.contains_key(&conn),
                        "close of {conn}, which is not open: {reason}"
                    );
                    if reason.code == close_code::REPLACED {
                        assert!(
                            matches!(
                                expect,
                                Expect::Join {
                                    outcome: Ok(Some(_)),
                                    ..
                                }
                            ),
                            "replaced outside a resume"
                        );
                        self.open.remove(&conn);
                    } else if reason.code == close_code::SLOW_CONSUMER {
                        removed.extend(self.conn_ended(conn, Disconnect::Lost));
                    } else if let Some(id) = self.open.get(&conn).copied() {
                        self.remove(id);
                        removed.push(id);
                    }
                }
                RelayOutput::Timeout(_) => {}
            }
        }
        if let Expect::Join {
            conn,
            outcome: Ok(_),
        } = expect
        {
            assert_eq!(welcomed, vec![*conn], "one welcome, to the new connection");
        } else {
            assert!(welcomed.is_empty(), "a welcome without a join");
        }

        // 3. Notices: exactly the joins and removals of this step, to every member of the
        //    room connected throughout it, once.
        let connected_after = |h: &Self, p: &PeerId| {
            connected_before.contains(p) && h.peers.get(p).is_some_and(|m| m.conn.is_some())
        };
        let mut expected = Vec::new();
        for (kind, ids) in [(TYPE_JOINED, &joined), (TYPE_LEFT, &removed)] {
            for about in ids.iter() {
                let room = self.room_of_frame_peer(*about);
                for member in self.rooms.get(room).into_iter().flatten() {
                    if member != about && connected_after(self, member) {
                        expected.push((*member, kind, *about));
                    }
                }
            }
        }
        for (notice, room) in notices.iter().zip(notice_rooms) {
            let (receiver, kind, about) = notice;
            let listed = if *kind == TYPE_JOINED {
                &joined
            } else {
                &removed
            };
            assert!(
                listed.contains(about),
                "{kind} about {about} to {receiver}, which did not happen: {notices:?}"
            );
            assert_eq!(
                room,
                self.room_of_frame_peer(*about),
                "a notice to {receiver} about {about} of another room"
            );
        }
        let mut got: Vec<_> = notices
            .into_iter()
            .filter(|(r, _, _)| connected_after(self, r))
            .collect();
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "notices (receiver, type, about)");
    }

    /// The room a peer was in (peers that are gone are remembered by their frames' tokens).
    fn room_of_frame_peer(&self, id: PeerId) -> &'static str {
        self.peers
            .get(&id)
            .map(|p| p.room)
            .or_else(|| {
                self.tokens
                    .iter()
                    .find(|(_, p, _)| *p == id)
                    .map(|(_, _, r)| *r)
            })
            .unwrap_or("")
    }

    /// A frame of `sender` was accepted: it is held by the ordering guard, or forwarded now
    /// (releasing what the guard held, after a description).
    fn accepted(&mut self, sender: PeerId, raw: &RawFrame<'_>, n: Option<u64>) {
        let step = self.step;
        let guard = self.config.ordering_guard;
        let Some(peer) = self.peers.get_mut(&sender) else {
            return;
        };
        let mut forwarded = Vec::new();
        if raw.is_candidate() && guard && !peer.described {
            peer.held.extend(n);
        } else {
            forwarded.extend(n);
            if raw.is_description() && !peer.described {
                peer.described = true;
                forwarded.append(&mut peer.held);
            }
        }
        for n in forwarded {
            peer.forwarded += 1;
            if let Some(frame) = self.frames.get_mut(&n) {
                frame.forwarded = Some((step, peer.forwarded));
            }
        }
    }

    fn check_welcome(&self, expect: &Expect, conn: ConnId, receiver: PeerId, value: &str) {
        let Expect::Join {
            conn: joining,
            outcome: Ok(_),
        } = expect
        else {
            panic!("a welcome outside a join: {value}");
        };
        assert_eq!(conn, *joining, "the welcome goes to the joining connection");
        #[derive(serde::Deserialize)]
        struct W {
            id: String,
            room: String,
            peers: Vec<String>,
        }
        let w: W = serde_json::from_str(value).unwrap_or_else(|e| panic!("{e}: {value}"));
        assert_eq!(w.id, receiver.to_string());
        let room = self.peers.get(&receiver).map_or("", |p| p.room);
        assert_eq!(w.room, room);
        let others: Vec<String> = self
            .rooms
            .get(room)
            .into_iter()
            .flatten()
            .filter(|p| **p != receiver)
            .map(PeerId::to_string)
            .collect();
        assert_eq!(
            w.peers, others,
            "the welcome lists the others in join order"
        );
    }

    fn check_delivery(&mut self, receiver: PeerId, text: &str) {
        let Some(n) = relay_marker(text) else {
            // Garbage a peer sent, forwarded as an unknown type: not tracked.
            return;
        };
        let Some(sent) = self.frames.get(&n) else {
            panic!("a frame no connected peer sent: {text}");
        };
        let receiver_room = self.peers.get(&receiver).map_or("", |p| p.room);
        assert_eq!(
            sent.room, receiver_room,
            "isolation: {text} reached {receiver}"
        );
        assert_ne!(
            sent.sender, receiver,
            "a frame went back to its sender: {text}"
        );
        if let Some(to) = sent.to {
            assert_eq!(to, Some(receiver), "{text} reached {receiver}");
        }
        let Some((_, place)) = sent.forwarded else {
            panic!("{text} reached {receiver} but was refused, dropped or is held");
        };
        if self.config.room_capacity <= 2 {
            assert_eq!(text, sent.text, "forwarded byte for byte");
        } else {
            let raw = RawFrame::parse(text, usize::MAX).ok();
            let from = raw.as_ref().and_then(|r| r.from().map(str::to_owned));
            assert_eq!(
                from,
                Some(sent.sender.to_string()),
                "stamped with its sender: {text}"
            );
            assert!(
                raw.is_some_and(|r| r.to().is_none()),
                "`to` removed: {text}"
            );
        }
        let count = self.delivered.entry((n, receiver)).or_default();
        *count += 1;
        assert_eq!(*count, 1, "{text} reached {receiver} twice");
        let last = self.last.entry((sent.sender, receiver)).or_default();
        assert!(
            *last < place,
            "order: {text} (place {place}) after place {last}"
        );
        *last = place;
    }

    /// The relay's counts agree with the model.
    fn check_counts(&self) {
        assert_eq!(
            self.relay.peer_count(),
            self.peers.len(),
            "{:?}",
            self.peers
        );
        assert_eq!(
            self.relay.room_count(),
            self.rooms.len(),
            "{:?}",
            self.rooms
        );
    }

    /// Every frame forwarded while a peer of its room was connected, and that stayed
    /// connected since, reached that peer exactly once.
    fn finish(&self) {
        for (n, sent) in &self.frames {
            let Some((at, _)) = sent.forwarded else {
                continue;
            };
            for member in self.rooms.get(sent.room).into_iter().flatten() {
                let Some(peer) = self.peers.get(member) else {
                    continue;
                };
                let present = peer.conn.is_some() && peer.connected_since < at;
                let addressed = sent.to.is_none_or(|to| to == Some(*member));
                if present && addressed && *member != sent.sender {
                    assert_eq!(
                        self.delivered.get(&(*n, *member)).copied().unwrap_or(0),
                        1,
                        "{} never reached {member}",
                        sent.text
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Inputs for the `relay` target from a small deterministic generator (xorshift64*):
    /// random settings, then operations weighted towards joins and data frames (uniform bytes
    /// mostly leave rooms empty).
    fn random_inputs(seed: u64, count: usize) -> Vec<Vec<u8>> {
        let mut state = seed.max(1);
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        };
        (0..count)
            .map(|_| {
                let mut input = vec![next(), next()];
                let ops = 4 + usize::from(next() % 60);
                for _ in 0..ops {
                    let roll = next();
                    let op = match roll {
                        0..=59 => 0,               // join
                        60..=74 => 1,              // resume
                        75..=179 => 2,             // data frame
                        180..=191 => 5 + roll % 3, // clean, lost, slow consumer
                        192..=219 => 8,            // time
                        220..=229 => 9,            // garbage
                        230..=239 => 10,           // relay/*
                        _ => 11,                   // on a closed connection
                    };
                    input.push(op);
                    input.push(next());
                    match op {
                        2 => input.extend([next(), next()]),
                        9 => {
                            let len = usize::from(input[input.len() - 1] % 96);
                            input.extend((0..=len).map(|_| next()));
                        }
                        _ => {}
                    }
                }
                input
            })
            .collect()
    }

    /// Random operation sequences through the relay harness (the model's own smoke test; the
    /// checked-in corpus is what the fuzzer grew from such inputs).
    #[test]
    fn relay_random_sequences() {
        for input in random_inputs(0x5eed, 3000) {
            super::relay(&input);
        }
    }

    /// Writes a seed corpus for the `relay` target: `SIGNALING_WRITE_RELAY_CORPUS=<dir>
    /// cargo test -p signaling-core --lib write_relay_corpus -- --ignored`.
    #[test]
    #[ignore = "writes files; run by hand"]
    fn write_relay_corpus() {
        let Ok(dir) = std::env::var("SIGNALING_WRITE_RELAY_CORPUS") else {
            return;
        };
        std::fs::create_dir_all(&dir).expect("corpus directory");
        for (i, input) in random_inputs(0xc0ffee, 300).into_iter().enumerate() {
            std::fs::write(Path::new(&dir).join(format!("seed-{i:03}")), input)
                .expect("corpus file");
        }
    }

    /// Replays every checked-in corpus file (and every pinned crash) through its target.
    #[test]
    fn replay_fuzz_corpora() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        type Target = fn(&[u8]);
        let targets: [(&str, Target); 7] = [
            ("wire", super::wire),
            ("whip", super::whip),
            ("candidate", super::candidate),
            ("sdp", super::sdp),
            ("sdpfrag", super::sdpfrag),
            ("negotiation", super::negotiation),
            ("relay", super::relay),
        ];
        let mut total = 0;
        for (name, target) in targets {
            for dir in [
                root.join("corpus").join(name),
                root.join("regressions").join(name),
            ] {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for entry in entries {
                    let path = entry.expect("corpus entry").path();
                    let data = std::fs::read(&path).expect("corpus file");
                    target(&data);
                    total += 1;
                }
            }
        }
        assert!(
            total >= 40,
            "only {total} corpus files found under {}",
            root.display()
        );
    }
}
