//! The WHIP client end to end, everything on 127.0.0.1: the `whip_publish` flow (a str0m
//! publisher signalled by `signaling_http::whip_client`) publishes into the `media_server`'s
//! `/whip/NAME`, and a str0m player signalled by `WhipClient::play` on `/whep/NAME` receives
//! its RTP. The media server is an independent implementation of the other side: its counters
//! say what it took (a trickle `PATCH`, the deletions).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use examples::media_server::{MediaConfig, MediaServer};
use examples::whip_publish::Publisher;
use signaling_http::whip_client::{Play, WhipClient, WhipClientConfig};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;

/// Packets of video the player must receive.
const PACKETS: u64 = 10;
/// A bound on the whole exchange, so that a failure ends the test instead of hanging it.
const DEADLINE: Duration = Duration::from_secs(30);

async fn start_server() -> (Arc<MediaServer>, SocketAddr) {
    let server = Arc::new(MediaServer::new(MediaConfig::default()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.clone().run(listener, None));
    (server, addr)
}

/// A WHEP player on str0m: plays `url` and returns once `PACKETS` video packets arrived;
/// deletes its session.
async fn play(client: &WhipClient, url: &str) -> u64 {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = socket.local_addr().unwrap();
    let mut rtc = Rtc::builder().build(Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    let Play::Answered(mut session) = client.play(url, &offer.to_sdp_string()).await.unwrap()
    else {
        panic!("the media server answers WHEP offers itself")
    };
    let answer = SdpAnswer::from_sdp_string(session.answer()).unwrap();
    rtc.sdp_api().accept_answer(pending, answer).unwrap();
    let candidate = Candidate::host(local, "udp").unwrap();
    let text = candidate.to_sdp_string();
    rtc.add_local_candidate(candidate);
    let parsed =
        signaling_core::candidate::Candidate::parse(text.strip_prefix("a=").unwrap_or(&text))
            .unwrap();
    session.trickle(parsed).await.unwrap();
    session.end_of_candidates().await.unwrap();

    let mut packets = 0;
    let mut buf = vec![0u8; 2000];
    while packets < PACKETS {
        let timeout = loop {
            match rtc.poll_output().unwrap() {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    let _ = socket.send_to(&t.contents, t.destination).await;
                }
                Output::Event(Event::MediaData(_)) => packets += 1,
                Output::Event(_) => {}
            }
        };
        let wait = timeout.saturating_duration_since(Instant::now());
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let (n, source) = received.unwrap();
                if let Ok(receive) = Receive::new(Protocol::Udp, source, local, &buf[..n]) {
                    let _ = rtc.handle_input(Input::Receive(Instant::now(), receive));
                }
            }
            () = tokio::time::sleep(wait.max(Duration::from_micros(100))) => {
                let _ = rtc.handle_input(Input::Timeout(Instant::now()));
            }
        }
    }
    session.delete().await.unwrap();
    packets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_publisher_reaches_a_rust_player_through_the_media_server() {
    let (server, addr) = start_server().await;
    let client = WhipClient::new(WhipClientConfig::default()).unwrap();

    let publisher = Publisher::start(
        &client,
        &format!("http://{addr}/whip/cam"),
        "127.0.0.1".parse().unwrap(),
    )
    .await
    .unwrap();
    assert!(publisher
        .session()
        .url()
        .unwrap()
        .as_str()
        .starts_with(&format!("http://{addr}/whip/cam/")));
    let (stop, stopped) = oneshot::channel::<()>();
    let publishing = tokio::spawn(publisher.run(async {
        let _ = stopped.await;
    }));

    let packets = tokio::time::timeout(DEADLINE, play(&client, &format!("http://{addr}/whep/cam")))
        .await
        .expect("the player received media before the deadline");
    assert!(packets >= PACKETS);

    stop.send(()).unwrap();
    let report = publishing.await.unwrap().unwrap();
    assert!(report.connected);
    assert!(report.frames > 0);

    let stats = server.stats();
    // The publisher and the player each trickled their host candidate and end-of-candidates
    // after their 201, and deleted their session.
    assert_eq!(stats.whip.trickles, 2, "{:?}", stats.whip);
    assert_eq!(stats.whip.candidates, 1);
    assert_eq!(stats.whep.candidates, 1);
    assert_eq!((stats.whip.deleted, stats.whep.deleted), (1, 1));
    assert_eq!((stats.whip_sessions, stats.whep_sessions), (1, 1));
}
