//! The WHIP/WHEP adapter over real HTTP on 127.0.0.1: requests go in as bytes, the application
//! answers through the events, and the responses are read off the wire.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use signaling_core::whip::{CloseCause, Config, Event, IceAnswer};
use signaling_http::whip::{WhipEndpoint, WhipEvent, WhipEvents};
use support::{http_request, HttpResponse, WAIT};
use tokio::net::{TcpListener, TcpStream};

const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:EsAw\r\n\
a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\na=setup:actpass\r\na=mid:0\r\na=sendonly\r\n\
a=rtpmap:96 VP8/90000\r\n";

const TRICKLE: &str = "a=ice-ufrag:EsAw\r\na=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n\
a=candidate:1 1 udp 2122260223 127.0.0.1 61764 typ host ufrag EsAw\r\na=end-of-candidates\r\n";

/// One request on a fresh connection to `addr`.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpResponse {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    http_request(&mut tcp, method, path, headers, body).await
}

async fn serve(config: Config) -> (SocketAddr, WhipEndpoint, WhipEvents) {
    let (whip, events) = WhipEndpoint::new(config);
    let app = Router::new().nest("/api/whip", whip.router());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, whip, events)
}

async fn next(events: &mut WhipEvents) -> WhipEvent {
    tokio::time::timeout(WAIT, events.next())
        .await
        .expect("an event")
        .expect("the endpoint is alive")
}

#[tokio::test]
async fn publish_trickle_restart_and_delete_over_http() {
    let (addr, whip, mut events) = serve(Config::whip()).await;
    let app = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            match next(&mut events).await {
                WhipEvent::Offer(request) => {
                    assert_eq!(request.offer().stream, "cam 1");
                    let answer = request.offer().sdp.replace("sendonly", "recvonly");
                    request.accept(answer);
                }
                WhipEvent::Restart(request) => {
                    assert_eq!(request.restart().ufrag, "ysXw");
                    request.restarted(IceAnswer {
                        ufrag: "srv2".into(),
                        pwd: "0123456789abcdef0123456789".into(),
                        lite: true,
                        ..IceAnswer::default()
                    });
                }
                WhipEvent::Event(event) => {
                    let closed = matches!(event, Event::Closed { .. });
                    seen.push(event);
                    if closed {
                        return seen;
                    }
                }
                other => panic!("{other:?}"),
            }
        }
    });

    let created = request(
        addr,
        "POST",
        "/api/whip/cam%201",
        &[("Content-Type", "application/sdp")],
        OFFER,
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.head);
    assert_eq!(created.body, OFFER.replace("sendonly", "recvonly"));
    let location = created.header("location").unwrap().to_owned();
    assert!(location.starts_with("/api/whip/cam%201/"), "{location}");
    let etag = created.header("etag").unwrap().to_owned();
    assert_eq!(whip.session_count(), 1);

    let headers = [
        ("Content-Type", "application/trickle-ice-sdpfrag"),
        ("If-Match", etag.as_str()),
    ];
    let trickled = request(addr, "PATCH", &location, &headers, TRICKLE).await;
    assert_eq!(trickled.status, 204, "{}", trickled.head);

    let headers = [
        ("Content-Type", "application/trickle-ice-sdpfrag"),
        ("If-Match", "*"),
    ];
    let restart = "a=ice-ufrag:ysXw\r\na=ice-pwd:vw5LmwG4y/e6dPP/zAP9Gp5k\r\n";
    let restarted = request(addr, "PATCH", &location, &headers, restart).await;
    assert_eq!(restarted.status, 200, "{}", restarted.head);
    assert!(
        restarted.body.contains("a=ice-ufrag:srv2"),
        "{}",
        restarted.body
    );
    assert!(
        restarted.body.contains("a=mid:0"),
        "the offer's section is echoed"
    );
    assert_ne!(restarted.header("etag"), Some(etag.as_str()));

    let deleted = request(addr, "DELETE", &location, &[], "").await;
    assert_eq!(deleted.status, 200);
    let seen = app.await.unwrap();
    assert!(
        matches!(&seen[0], Event::Candidates { candidates, end_of_candidates: true, .. } if candidates.len() == 1)
    );
    assert!(matches!(
        &seen[1],
        Event::Closed {
            cause: CloseCause::Deleted,
            ..
        }
    ));
    assert_eq!(whip.session_count(), 0);
    assert_eq!(
        request(addr, "DELETE", &location, &[], "").await.status,
        404
    );
}

#[tokio::test]
async fn an_offer_the_application_does_not_answer_is_503() {
    let (addr, whip, mut events) =
        serve(Config::whip().with_answer_timeout(Duration::from_millis(200))).await;
    let held = tokio::spawn(async move {
        // Takes the offer and sits on it.
        let event = next(&mut events).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(event);
        events
    });
    let r = request(
        addr,
        "POST",
        "/api/whip/cam",
        &[("Content-Type", "application/sdp")],
        OFFER,
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.head);
    assert!(r.header("retry-after").is_some());
    assert_eq!(whip.session_count(), 0);
    let mut events = held.await.unwrap();
    // An offer dropped unanswered is a 500, not a hang.
    let dropper = tokio::spawn(async move { drop(next(&mut events).await) });
    let r = request(
        addr,
        "POST",
        "/api/whip/cam",
        &[("Content-Type", "application/sdp")],
        OFFER,
    )
    .await;
    assert_eq!(r.status, 500, "{}", r.head);
    dropper.await.unwrap();
}

#[tokio::test]
async fn oversized_bodies_are_413_and_preflights_expose_the_headers() {
    let mut config = Config::whip();
    config.max_sdp_len = 1024;
    let (addr, _whip, _events) = serve(config).await;
    let big = "a".repeat(64 * 1024);
    let r = request(
        addr,
        "POST",
        "/api/whip/cam",
        &[("Content-Type", "application/sdp")],
        &big,
    )
    .await;
    assert_eq!(r.status, 413);
    let preflight = [
        ("Origin", "https://player.example"),
        ("Access-Control-Request-Method", "POST"),
    ];
    let r = request(addr, "OPTIONS", "/api/whip/cam", &preflight, "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r
        .header("access-control-allow-methods")
        .unwrap()
        .contains("POST"));
    assert_eq!(r.header("accept-post"), Some("application/sdp"));
}
