//! `signaling_core::whip::client` against the server engine `signaling_core::whip::Endpoint`,
//! in memory: every request the client builds goes straight into `Endpoint::handle`, and the
//! response comes back. The server is an independent implementation of the other side, so
//! the tests assert on what *it* saw (its events, its sessions), and on what the RFC 9725 and
//! WHEP texts say the client must do.
// Tests take one base instant from the clock; the library itself never reads it. Helpers
// unwrap what the test itself wrote.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]
use std::time::{Duration, Instant};

use http::{Method, Response, StatusCode};
use signaling_core::candidate::Candidate;
use signaling_core::whip::client::{
    ClientConfig, ClientError, ClientEvent, ClientSession, RemoteIce, RequestKind, ResponseError,
    RetryAfter, Transmit, Url,
};
use signaling_core::whip::{
    CloseCause, Config, Endpoint, Event, IceAnswer, Outcome, Rejection, Request, SessionId,
};

/// A publisher's offer. The mids are words, not numbers: nothing may assume a numeric mid.
const OFFER: &str = "v=0\r\n\
o=- 1 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE audio video\r\n\
a=ice-options:trickle\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
c=IN IP4 0.0.0.0\r\n\
a=ice-ufrag:cli1\r\n\
a=ice-pwd:clientpassword0123456789\r\n\
a=setup:actpass\r\n\
a=mid:audio\r\n\
a=sendonly\r\n\
a=rtpmap:111 opus/48000/2\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
c=IN IP4 0.0.0.0\r\n\
a=ice-ufrag:cli1\r\n\
a=ice-pwd:clientpassword0123456789\r\n\
a=setup:actpass\r\n\
a=mid:video\r\n\
a=bundle-only\r\n\
a=sendonly\r\n\
a=rtpmap:96 VP8/90000\r\n";

const BASE: &str = "http://127.0.0.1:8080";
const T0: u64 = 1_700_000_000;

fn answer_for(offer: &str) -> String {
    offer
        .replace("sendonly", "recvonly")
        .replace("a=setup:actpass", "a=setup:passive")
        .replace("cli1", "srv1")
        .replace("clientpassword", "serverpassword")
}

/// A WHEP player's offer.
fn player_offer() -> String {
    OFFER.replace("sendonly", "recvonly")
}

fn candidate(n: u8) -> Candidate {
    Candidate::parse(&format!(
        "candidate:{n} 1 udp 2122260223 192.0.2.{n} 5000{n} typ host"
    ))
    .unwrap()
}

/// What the server's application does with an offer.
#[derive(Clone, Copy)]
enum OfferPolicy {
    Accept,
    CounterOffer,
    NotLive(Duration),
}

/// The server side: the engine, and the application's decisions.
struct Server {
    endpoint: Endpoint,
    now: Instant,
    policy: OfferPolicy,
    /// The ICE answer for the next restart.
    restart_answer: IceAnswer,
    /// The stream names of the offers seen, and their bearer tokens.
    offers: Vec<(String, Option<String>)>,
    /// Redirect `POST`s to this path (307) unless they already go there.
    redirect_to: Option<String>,
    /// A middlebox on the response path that weakens entity-tags, as some proxies do.
    weaken_etags: bool,
}

impl Server {
    fn new(config: Config) -> Self {
        Self {
            endpoint: Endpoint::new(config, [9; 32]),
            now: Instant::now(),
            policy: OfferPolicy::Accept,
            restart_answer: server_ice("srv2", 1),
            offers: Vec::new(),
            redirect_to: None,
            weaken_etags: false,
        }
    }

    /// Answers one request as an HTTP server routing `/{prefix}/{stream}` to the endpoint
    /// and `/{prefix}/{stream}/{session}` to a session would.
    fn serve(&mut self, request: &http::Request<String>) -> Response<String> {
        let url = Url::parse(&request.uri().to_string()).unwrap();
        let path = url.path().to_owned();
        if let Some(to) = &self.redirect_to {
            if request.method() == Method::POST && path != *to {
                return Response::builder()
                    .status(StatusCode::TEMPORARY_REDIRECT)
                    .header("location", to.as_str())
                    .body(String::new())
                    .unwrap();
            }
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let body = request.body().as_bytes();
        let headers = request.headers();
        let method = request.method();
        let outcome = match segments.as_slice() {
            [_, stream] => {
                let r = Request::endpoint(method, &path, stream, headers, body);
                self.endpoint.handle(&r, self.now)
            }
            [_, _, id] => {
                let r = Request::session(method, &path, id, headers, body);
                self.endpoint.handle(&r, self.now)
            }
            _ => panic!("no route for {path}"),
        };
        let mut response = match outcome {
            Outcome::Respond(response) => response,
            Outcome::Offer(offer) => {
                self.offers
                    .push((offer.stream.clone(), offer.bearer.clone()));
                match self.policy {
                    OfferPolicy::Accept => self
                        .endpoint
                        .accept(&offer.session, &answer_for(&offer.sdp), T0)
                        .unwrap(),
                    OfferPolicy::CounterOffer => self
                        .endpoint
                        .counter_offer(&offer.session, &server_offer(), self.now, T0)
                        .unwrap(),
                    OfferPolicy::NotLive(after) => {
                        self.endpoint.not_live(&offer.session, after).unwrap()
                    }
                }
            }
            Outcome::Restart(restart) => self
                .endpoint
                .restarted(&restart.session, &self.restart_answer)
                .unwrap(),
        };
        if self.weaken_etags {
            if let Some(tag) = response.headers().get("etag").cloned() {
                let weak = format!("W/{}", tag.to_str().unwrap());
                response.headers_mut().insert("etag", weak.parse().unwrap());
            }
        }
        response
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.endpoint.poll_event()).collect()
    }
}

fn server_ice(ufrag: &str, n: u8) -> IceAnswer {
    IceAnswer {
        ufrag: ufrag.to_owned(),
        pwd: format!("{ufrag}serverpassword12345678"),
        lite: true,
        options: None,
        candidates: vec![Candidate::parse(&format!(
            "candidate:9{n} 1 udp 2130706431 198.51.100.{n} 4000{n} typ host"
        ))
        .unwrap()],
    }
}

/// A WHEP server's counter-offer: it sends, the player receives.
fn server_offer() -> String {
    OFFER
        .replace("cli1", "srvo")
        .replace("clientpassword", "serverofferpwd")
}

fn session(config: ClientConfig, path: &str) -> ClientSession {
    ClientSession::new(config, Url::parse(&format!("{BASE}{path}")).unwrap())
}

/// Sends every request the client has, in order, and hands each response back.
fn pump(client: &mut ClientSession, server: &mut Server) -> Vec<ClientEvent> {
    while let Some(t) = client.poll_transmit() {
        let response = server.serve(&t.request);
        client.handle_response(t.id, &response);
    }
    std::iter::from_fn(|| client.poll_event()).collect()
}

fn server_candidates(events: &[Event]) -> Vec<(Option<String>, Candidate, bool)> {
    events
        .iter()
        .flat_map(|e| match e {
            Event::Candidates {
                candidates,
                end_of_candidates,
                ..
            } => candidates
                .iter()
                .map(|(mid, c)| (mid.clone(), c.clone(), *end_of_candidates))
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

fn published(server: &mut Server) -> ClientSession {
    let mut client = session(ClientConfig::whip(), "/whip/cam");
    client.offer(OFFER).unwrap();
    let events = pump(&mut client, server);
    assert!(
        matches!(events[..], [ClientEvent::Answered { .. }]),
        "{events:?}"
    );
    client
}

fn session_id(client: &ClientSession) -> SessionId {
    let url = client.session_url().unwrap();
    SessionId::from(url.path_segments().unwrap().next_back().unwrap())
}

// ---------------------------------------------------------------------------------------------
// Publish (RFC 9725 §4.2)
// ---------------------------------------------------------------------------------------------

#[test]
fn publish_creates_the_session_the_server_answered() {
    let mut server = Server::new(Config::whip());
    let mut client = session(ClientConfig::whip(), "/whip/cam");
    client.offer(OFFER).unwrap();
    let post = client.poll_transmit().unwrap();
    assert_eq!(post.kind, RequestKind::Offer);
    assert_eq!(post.request.method(), Method::POST);
    assert_eq!(post.request.headers()["content-type"], "application/sdp");
    assert!(!post.request.headers().contains_key("authorization"));
    assert_eq!(post.request.body(), OFFER);
    let response = server.serve(&post.request);
    client.handle_response(post.id, &response);

    let events: Vec<_> = std::iter::from_fn(|| client.poll_event()).collect();
    assert_eq!(
        events,
        [ClientEvent::Answered {
            sdp: answer_for(OFFER),
            ice_servers: Vec::new()
        }]
    );
    // The server sends `Location` as an absolute path; the client resolves it against the
    // URL it posted to (RFC 9110 §10.2.2).
    let location = response.headers()["location"].to_str().unwrap();
    assert!(location.starts_with("/whip/cam/"));
    assert_eq!(
        client.session_url().unwrap().as_str(),
        format!("{BASE}{location}")
    );
    assert_eq!(
        client.etag(),
        Some(response.headers()["etag"].to_str().unwrap())
    );
    assert!(server.endpoint.contains(&session_id(&client)));
    assert_eq!(server.offers, [("cam".to_owned(), None)]);
    assert!(client.is_established());
}

#[test]
fn a_bearer_token_goes_on_every_request_and_the_server_holds_the_session_to_it() {
    let mut server = Server::new(Config::whip());
    let config = ClientConfig::whip().with_bearer_token(Some("s3cret".to_owned()));
    let mut client = session(config, "/whip/cam");
    client.offer(OFFER).unwrap();
    pump(&mut client, &mut server);
    assert_eq!(server.offers[0].1.as_deref(), Some("s3cret"));
    // The engine answers 401 to a PATCH or DELETE without the POST's token: these pass.
    client.add_local_candidate(candidate(1)).unwrap();
    let events = pump(&mut client, &mut server);
    assert!(matches!(
        events[..],
        [ClientEvent::CandidatesSent { count: 1, .. }]
    ));
    client.delete().unwrap();
    let t = client.poll_transmit().unwrap();
    assert_eq!(t.request.headers()["authorization"], "Bearer s3cret");
    client.handle_response(t.id, &server.serve(&t.request));
    assert_eq!(client.poll_event(), Some(ClientEvent::Deleted));
}

#[test]
fn rfc9725_4_5_a_307_is_followed_with_the_same_post_and_the_session_resolved_against_the_new_url() {
    let mut server = Server::new(Config::whip());
    server.redirect_to = Some("/ingest/cam".to_owned());
    let config = ClientConfig::whip().with_bearer_token(Some("tok".to_owned()));
    let mut client = session(config, "/whip/cam");
    client.offer(OFFER).unwrap();
    let first = client.poll_transmit().unwrap();
    let response = server.serve(&first.request);
    assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
    client.handle_response(first.id, &response);
    let second = client.poll_transmit().unwrap();
    assert_eq!(second.kind, RequestKind::Offer);
    assert_eq!(second.request.method(), Method::POST);
    assert_eq!(
        second.request.uri().to_string(),
        format!("{BASE}/ingest/cam")
    );
    assert_eq!(second.request.body(), OFFER);
    // Same origin: the token goes along.
    assert_eq!(second.request.headers()["authorization"], "Bearer tok");
    let response = server.serve(&second.request);
    client.handle_response(second.id, &response);
    assert!(matches!(
        client.poll_event(),
        Some(ClientEvent::Answered { .. })
    ));
    assert!(client
        .session_url()
        .unwrap()
        .as_str()
        .starts_with(&format!("{BASE}/ingest/cam/")));
    assert_eq!(server.offers, [("cam".to_owned(), Some("tok".to_owned()))]);
}

#[test]
fn redirects_are_bounded_and_never_downgrade_to_http() {
    let mut server = Server::new(Config::whip());
    // A redirect loop: every POST goes elsewhere.
    let mut client = session(ClientConfig::whip().with_max_redirects(2), "/whip/a");
    client.offer(OFFER).unwrap();
    let mut n = 0;
    while let Some(t) = client.poll_transmit() {
        n += 1;
        let to = if n % 2 == 0 { "/whip/a" } else { "/whip/b" };
        server.redirect_to = None;
        let response = Response::builder()
            .status(308)
            .header("location", to)
            .body(String::new())
            .unwrap();
        client.handle_response(t.id, &response);
    }
    assert_eq!(n, 3, "the first POST and two redirects");
    assert!(matches!(
        client.poll_event(),
        Some(ClientEvent::Failed {
            error: ResponseError::TooManyRedirects(2),
            ..
        })
    ));

    let mut client = ClientSession::new(
        ClientConfig::whip(),
        Url::parse("https://example.com/whip/a").unwrap(),
    );
    client.offer(OFFER).unwrap();
    let t = client.poll_transmit().unwrap();
    let response = Response::builder()
        .status(307)
        .header("location", "http://example.com/whip/a")
        .body(String::new())
        .unwrap();
    client.handle_response(t.id, &response);
    assert!(client.poll_transmit().is_none());
    assert!(matches!(
        client.poll_event(),
        Some(ClientEvent::Failed {
            error: ResponseError::InsecureRedirect,
            ..
        })
    ));
}

#[test]
fn a_redirect_to_another_origin_drops_the_token_unless_allowed() {
    for across in [false, true] {
        let mut config = ClientConfig::whip().with_bearer_token(Some("tok".to_owned()));
        config.token_across_origins = across;
        let mut client = session(config, "/whip/cam");
        client.offer(OFFER).unwrap();
        let t = client.poll_transmit().unwrap();
        let response = Response::builder()
            .status(307)
            .header("location", "http://127.0.0.2:8080/whip/cam")
            .body(String::new())
            .unwrap();
        client.handle_response(t.id, &response);
        let t = client.poll_transmit().unwrap();
        assert_eq!(t.request.headers().contains_key("authorization"), across);
    }
}

// ---------------------------------------------------------------------------------------------
// Trickle (RFC 9725 §4.3.2)
// ---------------------------------------------------------------------------------------------

#[test]
fn rfc9725_4_3_2_candidates_before_the_201_go_in_one_aggregated_patch_with_the_etag() {
    let mut server = Server::new(Config::whip());
    let mut client = session(ClientConfig::whip(), "/whip/cam");
    client.offer(OFFER).unwrap();
    client.add_local_candidate(candidate(1)).unwrap();
    client.add_local_candidate(candidate(2)).unwrap();
    let post = client.poll_transmit().unwrap();
    // Nothing else may go out before the session URL and entity-tag are known.
    assert!(client.poll_transmit().is_none());
    client.add_local_candidate(candidate(3)).unwrap();
    let response = server.serve(&post.request);
    client.handle_response(post.id, &response);
    assert_eq!(client.buffered_candidates(), 3);

    let patch = client.poll_transmit().unwrap();
    assert_eq!(patch.kind, RequestKind::Trickle);
    assert!(client.poll_transmit().is_none(), "one aggregated PATCH");
    assert_eq!(patch.request.method(), Method::PATCH);
    assert_eq!(
        patch.request.headers()["content-type"],
        "application/trickle-ice-sdpfrag"
    );
    assert_eq!(
        patch.request.headers()["if-match"],
        response.headers()["etag"]
    );
    assert_eq!(
        patch.request.uri().to_string(),
        client.session_url().unwrap().as_str()
    );
    let answer = server.serve(&patch.request);
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    client.handle_response(patch.id, &answer);

    let seen = server_candidates(&server.events());
    let expected: Vec<_> = (1..=3)
        .map(|n| (Some("audio".to_owned()), candidate(n), false))
        .collect();
    assert_eq!(seen, expected, "the first m-section's mid, in order");
    assert_eq!(server.endpoint.stats().trickles, 1);
    let events: Vec<_> = std::iter::from_fn(|| client.poll_event()).collect();
    assert!(matches!(
        events[..],
        [
            ClientEvent::Answered { .. },
            ClientEvent::CandidatesSent {
                count: 3,
                end_of_candidates: false
            }
        ]
    ));

    // end-of-candidates, and nothing after it (RFC 8838 §13).
    client.end_of_candidates().unwrap();
    let events = pump(&mut client, &mut server);
    assert_eq!(
        events,
        [ClientEvent::CandidatesSent {
            count: 0,
            end_of_candidates: true
        }]
    );
    assert!(matches!(
        server.events()[..],
        [Event::Candidates {
            end_of_candidates: true,
            ..
        }]
    ));
    assert_eq!(
        client.add_local_candidate(candidate(4)),
        Err(ClientError::EndedCandidates)
    );
}

#[test]
fn the_candidate_buffer_is_bounded_and_pushes_back() {
    let mut client = session(
        ClientConfig::whip().with_max_buffered_candidates(2),
        "/whip/cam",
    );
    assert_eq!(
        client.add_local_candidate(candidate(1)),
        Err(ClientError::NoSession)
    );
    client.offer(OFFER).unwrap();
    client.add_local_candidate(candidate(1)).unwrap();
    client.add_local_candidate(candidate(2)).unwrap();
    assert_eq!(
        client.add_local_candidate(candidate(3)),
        Err(ClientError::BufferFull(2))
    );
    // A candidate of another ICE session (RFC 8838 §15).
    let other = Candidate::parse(
        "candidate:1 1 udp 2122260223 192.0.2.1 50001 typ host generation 0 ufrag zzzz",
    )
    .unwrap();
    let mut client = session(ClientConfig::whip(), "/whip/cam");
    client.offer(OFFER).unwrap();
    assert_eq!(
        client.add_local_candidate(other),
        Err(ClientError::OtherGeneration)
    );
}

#[test]
fn lenient_about_200_to_a_trickle_and_204_to_a_delete() {
    let mut server = Server::new(Config::whip());
    let mut client = published(&mut server);
    client.add_local_candidate(candidate(1)).unwrap();
    let t = client.poll_transmit().unwrap();
    client.handle_response(t.id, &Response::builder().status(200).body("").unwrap());
    assert_eq!(
        client.poll_event(),
        Some(ClientEvent::CandidatesSent {
            count: 1,
            end_of_candidates: false
        })
    );
    client.delete().unwrap();
    let t = client.poll_transmit().unwrap();
    client.handle_response(t.id, &Response::builder().status(204).body("").unwrap());
    assert_eq!(client.poll_event(), Some(ClientEvent::Deleted));
}

// ---------------------------------------------------------------------------------------------
// ICE restart (RFC 9725 §4.3.3)
// ---------------------------------------------------------------------------------------------

#[test]
fn rfc9725_4_3_3_restart_sends_new_credentials_and_takes_the_servers_new_ice_and_etag() {
    let mut server = Server::new(Config::whip());
    let mut client = published(&mut server);
    let old_etag = client.etag().unwrap().to_owned();
    let fresh = Candidate::parse(
        "candidate:7 1 udp 2122260223 192.0.2.7 50007 typ host generation 0 ufrag cli2",
    )
    .unwrap();
    client
        .restart_ice(
            "cli2",
            "clientpassword2X0123456",
            vec![fresh.clone()],
            false,
        )
        .unwrap();
    let t = client.poll_transmit().unwrap();
    assert_eq!(t.kind, RequestKind::Restart);
    assert_eq!(t.request.headers()["if-match"], "*");
    // A candidate gathered during the restart waits for its answer.
    client.add_local_candidate(candidate(8)).unwrap();
    assert!(client.poll_transmit().is_none());

    let response = server.serve(&t.request);
    assert_eq!(response.status(), StatusCode::OK);
    client.handle_response(t.id, &response);
    let new_etag = response.headers()["etag"].to_str().unwrap();
    assert_ne!(new_etag, old_etag);
    assert_eq!(client.etag(), Some(new_etag));
    let expected = server_ice("srv2", 1);
    assert_eq!(
        client.poll_event(),
        Some(ClientEvent::IceRestarted(RemoteIce {
            ufrag: expected.ufrag.clone(),
            pwd: expected.pwd.clone(),
            lite: true,
            options: None,
            candidates: vec![(Some("audio".to_owned()), expected.candidates[0].clone())],
            end_of_candidates: true,
        }))
    );

    // The buffered candidate now goes out under the new entity-tag, and the server takes it
    // for the new ICE session.
    let events = pump(&mut client, &mut server);
    assert_eq!(
        events,
        [ClientEvent::CandidatesSent {
            count: 1,
            end_of_candidates: false
        }]
    );
    let seen = server_candidates(&server.events());
    assert_eq!(seen, [(Some("audio".to_owned()), candidate(8), false)]);
    assert_eq!(server.endpoint.stats().restarts, 1);
}

#[test]
fn rfc9725_4_3_3_the_answer_to_a_superseded_restart_is_ignored() {
    let mut server = Server::new(Config::whip());
    let mut client = published(&mut server);
    client
        .restart_ice("cliA", "clientpasswordAX0123456", Vec::new(), false)
        .unwrap();
    let a = client.poll_transmit().unwrap();
    let response_a = server.serve(&a.request);
    client
        .restart_ice("cliB", "clientpasswordBX0123456", Vec::new(), false)
        .unwrap();
    let b = client.poll_transmit().unwrap();
    server.restart_answer = server_ice("srvB", 2);
    let response_b = server.serve(&b.request);
    // The answers come back in the other order, and A's late.
    client.handle_response(b.id, &response_b);
    client.handle_response(a.id, &response_a);
    let events: Vec<_> = std::iter::from_fn(|| client.poll_event()).collect();
    assert!(
        matches!(&events[..], [ClientEvent::IceRestarted(ice)] if ice.ufrag == "srvB"),
        "{events:?}"
    );
    assert_eq!(client.etag(), response_b.headers()["etag"].to_str().ok());
    // The server's current ICE session is B's: a trickle under B's entity-tag is taken.
    let b_candidate = Candidate::parse(
        "candidate:5 1 udp 2122260223 192.0.2.5 50005 typ host generation 0 ufrag cliB",
    )
    .unwrap();
    client.add_local_candidate(b_candidate.clone()).unwrap();
    let events = pump(&mut client, &mut server);
    assert!(matches!(
        events[..],
        [ClientEvent::CandidatesSent { count: 1, .. }]
    ));
    assert_eq!(
        server_candidates(&server.events()),
        [(Some("audio".to_owned()), b_candidate, false)]
    );
}

#[test]
fn rfc9725_4_3_1_a_stale_etag_is_a_typed_error_and_an_ice_restart_recovers() {
    let mut server = Server::new(Config::whip());
    // A proxy on the way turns the entity-tags weak; a weak tag never matches If-Match
    // (RFC 9110 §13.1.1), so the client's tag is stale from the start.
    server.weaken_etags = true;
    let mut client = published(&mut server);
    assert!(client.etag().unwrap().starts_with("W/"));
    client.add_local_candidate(candidate(1)).unwrap();
    let events = pump(&mut client, &mut server);
    assert!(
        matches!(
            events[..],
            [ClientEvent::Failed {
                kind: RequestKind::Trickle,
                error: ResponseError::StaleEtag,
                ..
            }]
        ),
        "{events:?}"
    );
    assert!(server_candidates(&server.events()).is_empty());
    assert_eq!(
        client.add_local_candidate(candidate(2)),
        Err(ClientError::RestartNeeded)
    );

    // The restart needs no entity-tag; its answer carries a fresh one.
    server.weaken_etags = false;
    client
        .restart_ice("cli3", "clientpassword3X0123456", vec![candidate(3)], false)
        .unwrap();
    let events = pump(&mut client, &mut server);
    assert!(matches!(events[..], [ClientEvent::IceRestarted(_)]));
    client.add_local_candidate(candidate(4)).unwrap();
    let events = pump(&mut client, &mut server);
    assert!(matches!(
        events[..],
        [ClientEvent::CandidatesSent { count: 1, .. }]
    ));
    let restarts: Vec<_> = server.events();
    assert_eq!(
        server_candidates(&restarts),
        [(Some("audio".to_owned()), candidate(4), false)]
    );
}

#[test]
fn a_restart_without_an_answer_leaves_the_session_needing_another() {
    let mut server = Server::new(Config::whip());
    let mut client = published(&mut server);
    client
        .restart_ice("cli4", "clientpassword4X0123456", Vec::new(), false)
        .unwrap();
    let t = client.poll_transmit().unwrap();
    // The server did it, but the answer was lost.
    let _ = server.serve(&t.request);
    client.handle_failure(t.id);
    assert!(matches!(
        client.poll_event(),
        Some(ClientEvent::Failed {
            kind: RequestKind::Restart,
            error: ResponseError::NoResponse,
            ..
        })
    ));
    assert_eq!(
        client.add_local_candidate(candidate(1)),
        Err(ClientError::RestartNeeded)
    );
    client
        .restart_ice("cli5", "clientpassword5X0123456", Vec::new(), false)
        .unwrap();
    let events = pump(&mut client, &mut server);
    assert!(matches!(events[..], [ClientEvent::IceRestarted(_)]));
    client.add_local_candidate(candidate(1)).unwrap();
    let events = pump(&mut client, &mut server);
    assert!(matches!(
        events[..],
        [ClientEvent::CandidatesSent { count: 1, .. }]
    ));
}

// ---------------------------------------------------------------------------------------------
// WHEP
// ---------------------------------------------------------------------------------------------

#[test]
fn whep_counter_offer_is_answered_by_patch_and_the_server_hears_the_answer() {
    let mut server = Server::new(Config::whep());
    server.policy = OfferPolicy::CounterOffer;
    let mut client = session(ClientConfig::whep(), "/whep/live");
    client.offer(&player_offer()).unwrap();
    let events = pump(&mut client, &mut server);
    let [ClientEvent::CounterOffer {
        sdp, valid_until, ..
    }] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(*sdp, server_offer());
    assert_eq!(*valid_until, None, "the draft's default lifetime");
    assert!(!client.is_established());

    let answer = sdp
        .replace("a=sendonly", "a=recvonly")
        .replace("a=setup:actpass", "a=setup:active")
        .replace("srvo", "ans1")
        .replace("serverofferpwd", "playeranswerpw");
    client.answer_counter_offer(&answer).unwrap();
    let t = client.poll_transmit().unwrap();
    assert_eq!(t.kind, RequestKind::CounterAnswer);
    assert_eq!(t.request.method(), Method::PATCH);
    assert_eq!(t.request.headers()["content-type"], "application/sdp");
    let response = server.serve(&t.request);
    client.handle_response(t.id, &response);
    assert_eq!(client.poll_event(), Some(ClientEvent::CounterAnswered));
    let id = session_id(&client);
    assert_eq!(
        server.events(),
        [Event::Answer {
            session: id,
            sdp: answer.clone()
        }]
    );

    // Trickle now goes with the answer's ICE credentials, which the server took as the
    // player's: it accepts the candidates.
    let c = Candidate::parse(
        "candidate:3 1 udp 2122260223 192.0.2.3 50003 typ host generation 0 ufrag ans1",
    )
    .unwrap();
    client.add_local_candidate(c.clone()).unwrap();
    let t = client.poll_transmit().unwrap();
    assert!(t.request.body().contains("a=ice-ufrag:ans1"));
    client.handle_response(t.id, &server.serve(&t.request));
    assert_eq!(
        server_candidates(&server.events()),
        [(Some("audio".to_owned()), c, false)]
    );
}

#[test]
fn whep_409_not_live_carries_retry_after_and_the_offer_can_be_retried() {
    let mut server = Server::new(Config::whep());
    server.policy = OfferPolicy::NotLive(Duration::from_secs(3));
    let mut client = session(ClientConfig::whep(), "/whep/live");
    client.offer(&player_offer()).unwrap();
    let events = pump(&mut client, &mut server);
    let [ClientEvent::Failed {
        kind: RequestKind::Offer,
        error,
        ..
    }] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert!(matches!(error, ResponseError::Conflict { .. }));
    assert_eq!(
        error.retry_after(),
        Some(RetryAfter::Delay(Duration::from_secs(3)))
    );
    assert_eq!(error.status(), Some(StatusCode::CONFLICT));
    assert_eq!(server.endpoint.session_count(), 0);

    // The stream went live; the same offer again.
    server.policy = OfferPolicy::Accept;
    client.offer(&player_offer()).unwrap();
    let events = pump(&mut client, &mut server);
    assert!(matches!(events[..], [ClientEvent::Answered { .. }]));
    assert_eq!(server.endpoint.session_count(), 1);
}

#[test]
fn rfc9725_4_5_503_when_full_carries_retry_after() {
    let mut server = Server::new(Config::whip().with_max_sessions(1));
    let _first = published(&mut server);
    let mut client = session(ClientConfig::whip(), "/whip/cam");
    client.offer(OFFER).unwrap();
    let events = pump(&mut client, &mut server);
    let [ClientEvent::Failed { error, .. }] = &events[..] else {
        panic!("{events:?}")
    };
    // The engine's default Retry-After for a full endpoint is 5 s.
    assert_eq!(
        *error,
        ResponseError::Unavailable {
            retry_after: Some(RetryAfter::Delay(Duration::from_secs(5)))
        }
    );
}

#[test]
fn refusals_are_typed() {
    let mut server = Server::new(Config::whip());
    let mut client = session(ClientConfig::whip(), "/whip/cam");
    client.offer(OFFER).unwrap();
    let post = client.poll_transmit().unwrap();
    let Outcome::Offer(offer) = server.endpoint.handle(
        &Request::endpoint(
            &Method::POST,
            "/whip/cam",
            "cam",
            post.request.headers(),
            post.request.body().as_bytes(),
        ),
        server.now,
    ) else {
        panic!()
    };
    let response = server
        .endpoint
        .reject(&offer.session, Rejection::Unauthorized)
        .unwrap();
    client.handle_response(post.id, &response);
    assert!(matches!(
        client.poll_event(),
        Some(ClientEvent::Failed {
            error: ResponseError::Unauthorized,
            ..
        })
    ));
    // Any other refusal keeps its status and its text, on one line.
    let mut client = published(&mut server);
    client.delete().unwrap();
    let t = client.poll_transmit().unwrap();
    let response = Response::builder()
        .status(500)
        .body("the media server\n failed")
        .unwrap();
    client.handle_response(t.id, &response);
    assert_eq!(
        client.poll_event(),
        Some(ClientEvent::Failed {
            request: t.id,
            kind: RequestKind::Delete,
            error: ResponseError::Rejected {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: "the media server failed".to_owned()
            }
        })
    );
    // A failed DELETE leaves the session to delete again.
    assert!(client.is_established());
}

// ---------------------------------------------------------------------------------------------
// Delete (RFC 9725 §4.2)
// ---------------------------------------------------------------------------------------------

#[test]
fn delete_ends_the_session_on_the_server_and_refuses_further_commands() {
    let mut server = Server::new(Config::whip());
    let mut client = published(&mut server);
    let id = session_id(&client);
    client.add_local_candidate(candidate(1)).unwrap();
    client.delete().unwrap();
    let t: Transmit = client.poll_transmit().unwrap();
    assert_eq!(
        t.kind,
        RequestKind::Delete,
        "buffered candidates are dropped"
    );
    assert_eq!(t.request.method(), Method::DELETE);
    assert!(!t.request.headers().contains_key("if-match"));
    let response = server.serve(&t.request);
    assert_eq!(response.status(), StatusCode::OK);
    client.handle_response(t.id, &response);
    assert_eq!(client.poll_event(), Some(ClientEvent::Deleted));
    assert!(client.is_closed());
    assert_eq!(
        server.events(),
        [Event::Closed {
            session: id.clone(),
            cause: CloseCause::Deleted
        }]
    );
    assert!(!server.endpoint.contains(&id));
    assert_eq!(client.delete(), Err(ClientError::Closed));
    assert_eq!(
        client.add_local_candidate(candidate(2)),
        Err(ClientError::Closed)
    );
    assert_eq!(
        client.restart_ice("cli9", "clientpassword9X0123456", Vec::new(), false),
        Err(ClientError::Closed)
    );
}

#[test]
fn a_404_to_delete_means_the_session_is_gone_already() {
    let mut server = Server::new(Config::whip());
    let mut client = published(&mut server);
    assert!(server.endpoint.close(&session_id(&client)));
    client.delete().unwrap();
    let events = pump(&mut client, &mut server);
    assert_eq!(events, [ClientEvent::Deleted]);
}

#[test]
fn a_delete_while_the_offer_is_out_deletes_the_session_the_server_creates() {
    let mut server = Server::new(Config::whip());
    let mut client = session(ClientConfig::whip(), "/whip/cam");
    assert_eq!(client.delete(), Err(ClientError::NoSession));
    client.offer(OFFER).unwrap();
    let post = client.poll_transmit().unwrap();
    client.delete().unwrap();
    let response = server.serve(&post.request);
    client.handle_response(post.id, &response);
    assert_eq!(server.endpoint.session_count(), 1);
    let events = pump(&mut client, &mut server);
    assert_eq!(
        events,
        [ClientEvent::Deleted],
        "no Answered for a deleted session"
    );
    assert_eq!(server.endpoint.session_count(), 0);
    assert!(matches!(
        server.events()[..],
        [Event::Closed {
            cause: CloseCause::Deleted,
            ..
        }]
    ));

    // An offer that fails leaves nothing to delete.
    server.endpoint = Endpoint::new(Config::whip().with_max_sessions(0), [1; 32]);
    let mut client = session(ClientConfig::whip(), "/whip/cam");
    client.offer(OFFER).unwrap();
    client.delete().unwrap();
    let events = pump(&mut client, &mut server);
    assert!(matches!(
        events[..],
        [ClientEvent::Failed {
            error: ResponseError::Unavailable { .. },
            ..
        }]
    ));
    assert!(client.is_closed());
}
