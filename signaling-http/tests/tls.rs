//! The relay and the app's own route served over TLS on 127.0.0.1, with a self-signed
//! certificate made for the test: the clients trust that certificate alone, and speak TLS
//! through rustls' client, WebSocket through tokio-tungstenite.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use rustls::RootCertStore;
use signaling_core::whip;
use signaling_http::tls::{load_pem, ServeConfig, TlsError};
use signaling_http::whip::{WhipEndpoint, WhipEvent};
use support::{http_get, http_request, read_until_closed, App, ANSWER, HELLO, HOST, OFFER, WAIT};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A self-signed certificate for `localhost`, written as PEM files.
struct Certificate {
    der: rustls::pki_types::CertificateDer<'static>,
    cert_path: PathBuf,
    key_path: PathBuf,
}

fn make_certificate() -> Certificate {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "tls-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, made.cert.pem()).unwrap();
    std::fs::write(&key_path, made.signing_key.serialize_pem()).unwrap();
    Certificate {
        der: made.cert.der().clone(),
        cert_path,
        key_path,
    }
}

/// A client that trusts `certificate` alone and offers ALPN `http/1.1`.
fn connector(certificate: &Certificate) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(certificate.der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

async fn tls_connect(app: &App, connector: &TlsConnector) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(app.addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

async fn wss_join(
    app: &App,
    connector: &TlsConnector,
    room: &str,
) -> (WebSocketStream<TlsStream<TcpStream>>, serde_json::Value) {
    let stream = tls_connect(app, connector).await;
    let url = format!("wss://localhost/ws?room={room}");
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    let welcome = next_text(&mut ws).await;
    let welcome: serde_json::Value = serde_json::from_str(&welcome).unwrap();
    assert_eq!(welcome["type"], "relay/welcome", "{welcome}");
    (ws, welcome["value"].clone())
}

async fn next_text(ws: &mut WebSocketStream<TlsStream<TcpStream>>) -> String {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no hang")
        {
            Some(Ok(Message::Text(text))) => return text.as_str().to_owned(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn the_apps_route_the_relay_and_whip_are_served_on_one_tls_port() {
    let certificate = make_certificate();
    let config = load_pem(&certificate.cert_path, &certificate.key_path).unwrap();
    let (whip, mut events) = WhipEndpoint::new(whip::Config::whip());
    let app = App::start(Some(config), |router, _| {
        router.nest("/whip", whip.router())
    })
    .await;
    let connector = connector(&certificate);
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if let WhipEvent::Offer(offer) = event {
                let answer = offer.offer().sdp.replace("sendonly", "recvonly");
                offer.accept(answer);
            }
        }
    });

    // WHIP on the same port: an offer in, the answer and the session URL out, then DELETE.
    let mut stream = tls_connect(&app, &connector).await;
    let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
               m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=sendonly\r\n";
    let created = http_request(
        &mut stream,
        "POST",
        "/whip/cam",
        &[("Content-Type", "application/sdp")],
        sdp,
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.head);
    assert_eq!(created.body, sdp.replace("sendonly", "recvonly"));
    let location = created.header("location").unwrap().to_owned();
    let mut stream = tls_connect(&app, &connector).await;
    assert_eq!(
        http_request(&mut stream, "DELETE", &location, &[], "")
            .await
            .status,
        200
    );

    let mut stream = tls_connect(&app, &connector).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let hello = http_get(&mut stream, "/hello").await;
    assert_eq!(
        (hello.status, hello.body.as_str()),
        (200, HELLO),
        "{}",
        hello.head
    );

    let (mut a, welcome_a) = wss_join(&app, &connector, "secure").await;
    let (mut b, welcome_b) = wss_join(&app, &connector, "secure").await;
    assert_eq!(welcome_b["peers"], serde_json::json!([welcome_a["id"]]));
    let joined: serde_json::Value = serde_json::from_str(&next_text(&mut a).await).unwrap();
    assert_eq!(joined["type"], "relay/joined");

    a.send(Message::text(OFFER)).await.unwrap();
    a.send(Message::text(HOST)).await.unwrap();
    assert_eq!(next_text(&mut b).await, OFFER);
    assert_eq!(next_text(&mut b).await, HOST);
    b.send(Message::text(ANSWER)).await.unwrap();
    assert_eq!(next_text(&mut a).await, ANSWER);
    a.close(None).await.unwrap();
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_gets_no_connection() {
    let certificate = make_certificate();
    let config = load_pem(&certificate.cert_path, &certificate.key_path).unwrap();
    let app = App::start(Some(config), |router, _| router).await;
    // Trusts another certificate for the same name.
    let stranger = connector(&make_certificate());
    let tcp = TcpStream::connect(app.addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let refused = stranger.connect(name, tcp).await;
    assert!(refused.is_err());
    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut tcp).await;
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
}

#[tokio::test]
async fn a_client_that_does_not_finish_the_tls_handshake_in_time_is_cut_off() {
    let certificate = make_certificate();
    let config = load_pem(&certificate.cert_path, &certificate.key_path).unwrap();
    let serve = ServeConfig::default().with_tls_handshake_timeout(Duration::from_millis(100));
    let app = App::start_with(Some(config), serve, |router, _| router).await;
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    assert!(read_until_closed(&mut silent).await.is_empty());
}

#[test]
fn load_pem_says_what_is_wrong_with_the_files() {
    let good = make_certificate();
    let other = make_certificate();
    let dir = good.cert_path.parent().unwrap();
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let missing = dir.join("missing.pem");

    assert!(load_pem(&good.cert_path, &good.key_path).is_ok());
    assert!(matches!(
        load_pem(&missing, &good.key_path),
        Err(TlsError::Certificates { path, .. }) if path == missing
    ));
    assert!(matches!(
        load_pem(&empty, &good.key_path),
        Err(TlsError::NoCertificates { path }) if path == empty
    ));
    // A certificate where the key should be.
    assert!(matches!(
        load_pem(&good.cert_path, &good.cert_path),
        Err(TlsError::PrivateKey { path, .. }) if path == good.cert_path
    ));
    // A key that is not the certificate's.
    assert!(matches!(
        load_pem(&good.cert_path, &other.key_path),
        Err(TlsError::Config(_))
    ));
}
