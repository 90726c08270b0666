//! The session driver, one test body run over the in-memory transport and over a real WebSocket
//! on 127.0.0.1: a Rust server is the answering peer of a seed-style browser client.
use std::time::Duration;

use signaling_core::negotiation::{Config, Event, NegotiationFailure, SignalingState};
use signaling_core::session::{self, SessionConfig, SessionEnd, SessionEvent};
use signaling_core::transport::{CloseReason, Frame, Transport};
use signaling_core::wire::{self, IceCandidate, Message, SdpKind};
use signaling_ws::{WsClient, WsConfig, WsServer};

fn sdp(ufrag: &str, version: u32) -> String {
    format!(
        "v=0\r\no=- 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
         m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:{ufrag}\r\na=ice-pwd:{ufrag}0123456789abcdefghij\r\na=mid:0\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:{ufrag}\r\na=ice-pwd:{ufrag}0123456789abcdefghij\r\na=mid:1\r\na=recvonly\r\na=rtpmap:111 opus/48000/2\r\n"
    )
}

fn candidate(n: u32) -> String {
    format!(
        "candidate:{n} 1 udp {} 192.0.2.{n} {} typ host generation 0",
        2_000_000_000 + n,
        40_000 + n
    )
}

fn frame(kind: &str, value: &str) -> Frame {
    serde_json::json!({"type": kind, "value": value})
        .to_string()
        .into()
}

/// The test body: `client` behaves like the seed client; the server side runs a session whose
/// application answers.
async fn seed_client_is_answered<S, C>(server_conn: S, mut client: C)
where
    S: Transport + 'static,
    C: Transport,
{
    let mut session = session::spawn(server_conn, Config::default(), SessionConfig::default());
    let app = tokio::spawn(async move {
        let mut applied = Vec::new();
        while let Some(event) = session.next_event().await {
            match event {
                SessionEvent::Negotiation(Event::ApplyRemoteDescription(d)) => {
                    assert_eq!(d.kind, SdpKind::Offer);
                    session
                        .set_local_description(SdpKind::Answer, sdp("SeRv", 1))
                        .await
                        .expect("answer");
                    for n in 100..103 {
                        session
                            .add_local_candidate(IceCandidate::new(candidate(n)))
                            .await
                            .expect("candidate");
                    }
                    session.end_of_local_candidates().await.expect("end");
                }
                SessionEvent::Negotiation(Event::AddRemoteCandidate(c)) => {
                    assert_eq!(c.init.sdp_mid.as_deref(), Some("0"));
                    applied.push(c.init.candidate);
                }
                SessionEvent::Closed(end) => {
                    assert!(matches!(end, SessionEnd::PeerClosed), "{end}");
                    return applied;
                }
                _ => {}
            }
        }
        panic!("no Closed event");
    });

    // The seed client: a candidate can reach the wire before the offer.
    client
        .send(frame("webrtc/candidate", &candidate(1)))
        .await
        .expect("send");
    client
        .send(frame("webrtc/offer", &sdp("SeEd", 2)))
        .await
        .expect("send");
    client
        .send(frame("webrtc/candidate", &candidate(2)))
        .await
        .expect("send");
    client
        .send(r#"{"type":"mse","value":"ignored"}"#.into())
        .await
        .expect("send");

    let mut received = Vec::new();
    while received.len() < 5 {
        let f = client.recv().await.expect("recv").expect("open");
        received.push(wire::decode(&f).expect("decodes"));
    }
    assert!(matches!(&received[0], Message::Description(d) if d.kind == SdpKind::Answer));
    for (i, m) in received[1..4].iter().enumerate() {
        assert_eq!(
            m,
            &Message::Candidate(IceCandidate::new(candidate(100 + i as u32)))
        );
    }
    assert!(matches!(received[4], Message::EndOfCandidates(_)));

    client.close(CloseReason::normal()).await.expect("close");
    let applied = tokio::time::timeout(Duration::from_secs(10), app)
        .await
        .expect("session ends")
        .expect("app task");
    assert_eq!(applied, vec![candidate(1), candidate(2)]);
}

#[tokio::test]
async fn over_memory() {
    let (server, client) = signaling_mem::pair();
    seed_client_is_answered(server, client).await;
}

#[tokio::test]
async fn over_websocket() {
    let mut server = WsServer::bind("127.0.0.1:0", WsConfig::default())
        .await
        .expect("bind");
    let url = format!("ws://{}/api/ws", server.local_addr());
    let client = WsClient::connect(&url, WsConfig::default())
        .await
        .expect("connect");
    let conn = server.accept().await.expect("accepted");
    seed_client_is_answered(conn, client).await;
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_offer_fails_after_the_timeout_without_real_time_passing() {
    let (server, mut client) = signaling_mem::pair();
    let config = Config::new(false).with_negotiation_timeout(Duration::from_secs(30));
    let mut session = session::spawn(server, config, SessionConfig::default());
    session.start_offer().await.expect("stable");
    session
        .set_local_description(SdpKind::Offer, sdp("SeRv", 2))
        .await
        .expect("offer");
    let offer = client.recv().await.expect("recv").expect("open");
    assert!(offer.starts_with(r#"{"type":"webrtc/offer""#));
    let started = tokio::time::Instant::now();
    loop {
        match session.next_event().await.expect("open") {
            SessionEvent::Negotiation(Event::NegotiationFailed(NegotiationFailure::Timeout {
                state,
            })) => {
                assert_eq!(state, SignalingState::HaveLocalOffer);
                break;
            }
            SessionEvent::Closed(end) => panic!("closed: {end}"),
            _ => {}
        }
    }
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    let (state, _) = session.state().await.expect("running");
    assert_eq!(state, SignalingState::HaveLocalOffer);
    session.close(CloseReason::normal()).await;
    assert_eq!(client.recv().await.expect("clean close"), None);
}

#[tokio::test]
async fn a_slow_application_slows_the_peer_instead_of_growing_memory() {
    let config = signaling_mem::MemConfig::default().with_queue(4);
    let (server, mut client) = signaling_mem::pair_with(
        &config,
        signaling_core::transport::PeerInfo::new("mem"),
        signaling_core::transport::PeerInfo::new("mem"),
    );
    let mut s = SessionConfig::default();
    s.event_queue = 2;
    let mut session = session::spawn(server, Config::default(), s);
    client
        .send(frame("webrtc/offer", &sdp("SeEd", 2)))
        .await
        .expect("send");
    // Nobody reads events: the driver stops reading, the transport queue fills, try_send fails.
    let mut sent = 0;
    let full = loop {
        match client.try_send(frame("webrtc/candidate", &candidate(sent + 1))) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        if sent > 100 {
            panic!("the driver kept reading without bound");
        }
        tokio::task::yield_now().await;
    };
    assert!(
        matches!(full, signaling_core::transport::TrySendError::Full(_)),
        "{full}"
    );
    // Commands are still served while events wait.
    assert!(session.state().await.is_ok());
    // Reading the events lets everything through.
    let mut added = 0;
    while added < sent {
        if let Some(SessionEvent::Negotiation(Event::AddRemoteCandidate(_))) =
            session.next_event().await
        {
            added += 1;
        }
    }
}

/// The next event, within 10 s.
async fn next(session: &mut session::Session) -> SessionEvent {
    tokio::time::timeout(Duration::from_secs(10), session.next_event())
        .await
        .expect("an event in time")
        .expect("the session is running")
}

/// The next frame the peer receives, decoded, within 10 s.
async fn received(conn: &mut impl Transport) -> Message {
    let frame = tokio::time::timeout(Duration::from_secs(10), conn.recv())
        .await
        .expect("a frame in time")
        .expect("no transport error")
        .expect("a frame, not the end");
    wire::decode(&frame).expect("a valid frame")
}

/// A client whose WebSocket dies mid-negotiation keeps its session: the connection is lost
/// (abruptly, no close frame), what it sends meanwhile waits, and a new WebSocket picks up
/// where the old one stopped; the answer arriving on it completes the negotiation.
#[tokio::test]
async fn a_session_survives_its_connection_with_reattach() {
    let mut server = WsServer::bind("127.0.0.1:0", WsConfig::default())
        .await
        .expect("bind");
    let url = format!("ws://{}/ws", server.local_addr());
    let first = WsClient::connect(&url, WsConfig::default())
        .await
        .expect("connect");
    let mut peer = server.accept().await.expect("accepted");
    let config = SessionConfig::default().with_reattach(true);
    let mut session = session::spawn(first, Config::new(false), config);

    session.start_offer().await.expect("stable");
    session
        .set_local_description(SdpKind::Offer, sdp("OfFr", 1))
        .await
        .expect("offer");
    assert!(
        matches!(received(&mut peer).await, Message::Description(d) if d.kind == SdpKind::Offer)
    );

    // The server side vanishes without a close frame.
    drop(peer);
    let lost = loop {
        match next(&mut session).await {
            SessionEvent::TransportLost(end) => break end,
            SessionEvent::Negotiation(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(!matches!(lost, SessionEnd::LocalClose), "{lost}");
    // Sent while detached: it waits.
    session
        .add_local_candidate(IceCandidate::new(candidate(1)))
        .await
        .expect("candidate");

    let second = WsClient::connect(&url, WsConfig::default())
        .await
        .expect("connect again");
    let mut peer = server.accept().await.expect("accepted again");
    session.attach(second).await.expect("attached");
    assert!(
        matches!(received(&mut peer).await, Message::Candidate(c) if c.candidate == candidate(1)),
        "what waited goes out first"
    );
    let third = signaling_mem::pair().0;
    assert_eq!(
        session.attach(third).await,
        Err(session::SessionError::Attached)
    );
    peer.send(frame("webrtc/answer", &sdp("AnSw", 1)))
        .await
        .expect("answer");
    loop {
        if let SessionEvent::Negotiation(Event::ApplyRemoteDescription(d)) =
            next(&mut session).await
        {
            assert_eq!(d.kind, SdpKind::Answer);
            break;
        }
    }
    let (state, _) = session.state().await.expect("running");
    assert_eq!(state, SignalingState::Stable);
}

/// Without reattach, a lost connection ends the session.
#[tokio::test]
async fn without_reattach_a_lost_connection_ends_the_session() {
    let (peer, mine) = signaling_mem::pair();
    let mut session = session::spawn(mine, Config::default(), SessionConfig::default());
    drop(peer);
    loop {
        match next(&mut session).await {
            SessionEvent::Closed(_) => break,
            SessionEvent::TransportLost(_) => panic!("reattach is off"),
            SessionEvent::Negotiation(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}
