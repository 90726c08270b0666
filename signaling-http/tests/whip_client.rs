//! The async `WhipClient` against the axum WHIP endpoint (`signaling_http::whip`) on
//! 127.0.0.1: publish, trickle, restart ICE, delete, asserting on what the server's
//! application heard.
#![allow(clippy::unwrap_used)]

use std::future::IntoFuture;
use std::net::SocketAddr;

use axum::Router;
use signaling_core::candidate::Candidate;
use signaling_core::whip::{CloseCause, Config, Event, IceAnswer, SessionId};
use signaling_http::whip::{WhipEndpoint, WhipEvent};
use signaling_http::whip_client::{WhipClient, WhipClientConfig};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const OFFER: &str = "v=0\r\n\
o=- 1 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
c=IN IP4 0.0.0.0\r\n\
a=ice-ufrag:cli1\r\n\
a=ice-pwd:clientpassword0123456789\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=sendonly\r\n\
a=rtpmap:96 VP8/90000\r\n";

fn answer_for(offer: &str) -> String {
    offer
        .replace("sendonly", "recvonly")
        .replace("a=setup:actpass", "a=setup:passive")
        .replace("cli1", "srv1")
}

fn candidate(n: u8) -> Candidate {
    Candidate::parse(&format!(
        "candidate:{n} 1 udp 2122260223 192.0.2.{n} 5000{n} typ host"
    ))
    .unwrap()
}

fn server_ice() -> IceAnswer {
    IceAnswer {
        ufrag: "srv2".to_owned(),
        pwd: "serverpassword2abcdefghij".to_owned(),
        candidates: vec![
            Candidate::parse("candidate:9 1 udp 2130706431 127.0.0.1 40000 typ host").unwrap(),
        ],
        ..IceAnswer::default()
    }
}

/// What the server's application heard, in order (offers and restarts by their content).
#[derive(Debug, PartialEq)]
enum Heard {
    Offer {
        stream: String,
        sdp: String,
    },
    Restart {
        ufrag: String,
        candidates: Vec<Candidate>,
    },
    Candidates {
        candidates: Vec<Candidate>,
        end: bool,
    },
    Closed(SessionId, CloseCause),
}

async fn start() -> (SocketAddr, mpsc::UnboundedReceiver<Heard>) {
    let (endpoint, mut events) = WhipEndpoint::new(Config::whip());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            let heard = match event {
                WhipEvent::Offer(request) => {
                    let offer = request.offer().clone();
                    request.accept(answer_for(&offer.sdp));
                    Heard::Offer {
                        stream: offer.stream,
                        sdp: offer.sdp,
                    }
                }
                WhipEvent::Restart(request) => {
                    let restart = request.restart().clone();
                    request.restarted(server_ice());
                    Heard::Restart {
                        ufrag: restart.ufrag,
                        candidates: restart.candidates.into_iter().map(|(_, c)| c).collect(),
                    }
                }
                WhipEvent::Event(Event::Candidates {
                    candidates,
                    end_of_candidates,
                    ..
                }) => Heard::Candidates {
                    candidates: candidates.into_iter().map(|(_, c)| c).collect(),
                    end: end_of_candidates,
                },
                WhipEvent::Event(Event::Closed { session, cause }) => Heard::Closed(session, cause),
                other => panic!("unexpected {other:?}"),
            };
            if tx.send(heard).is_err() {
                return;
            }
        }
    });
    let app = Router::new().nest("/whip", endpoint.router());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(signaling_http::tls::serve(listener, app, None).into_future());
    (addr, rx)
}

#[tokio::test]
async fn publish_trickle_restart_delete_over_http() {
    let (addr, mut heard) = start().await;
    let client = WhipClient::new(WhipClientConfig::default()).unwrap();
    let mut session = client
        .publish(&format!("http://{addr}/whip/cam"), OFFER)
        .await
        .unwrap();
    assert_eq!(session.answer(), answer_for(OFFER));
    let url = session.url().unwrap().clone();
    assert!(url
        .as_str()
        .starts_with(&format!("http://{addr}/whip/cam/")));
    assert!(session.etag().is_some());
    assert_eq!(
        heard.recv().await.unwrap(),
        Heard::Offer {
            stream: "cam".to_owned(),
            sdp: OFFER.to_owned()
        }
    );

    session.trickle(candidate(1)).await.unwrap();
    session.trickle(candidate(2)).await.unwrap();
    session.end_of_candidates().await.unwrap();
    for (candidates, end) in [
        (vec![candidate(1)], false),
        (vec![candidate(2)], false),
        (vec![], true),
    ] {
        assert_eq!(
            heard.recv().await.unwrap(),
            Heard::Candidates { candidates, end }
        );
    }

    let old_etag = session.etag().unwrap().to_owned();
    let remote = session
        .restart_ice("cli2", "clientpassword2x0123456", vec![candidate(3)], false)
        .await
        .unwrap();
    let expected = server_ice();
    assert_eq!(remote.ufrag, expected.ufrag);
    assert_eq!(remote.pwd, expected.pwd);
    assert_eq!(
        remote.candidates,
        [(Some("0".to_owned()), expected.candidates[0].clone())]
    );
    assert_ne!(session.etag().unwrap(), old_etag);
    assert_eq!(
        heard.recv().await.unwrap(),
        Heard::Restart {
            ufrag: "cli2".to_owned(),
            candidates: vec![candidate(3)]
        }
    );
    // Trickle goes on under the new entity-tag.
    session.trickle(candidate(4)).await.unwrap();
    assert_eq!(
        heard.recv().await.unwrap(),
        Heard::Candidates {
            candidates: vec![candidate(4)],
            end: false
        }
    );

    session.delete().await.unwrap();
    let id = SessionId::from(url.path_segments().unwrap().next_back().unwrap());
    assert_eq!(
        heard.recv().await.unwrap(),
        Heard::Closed(id, CloseCause::Deleted)
    );
    assert!(session.core().is_closed());
}
