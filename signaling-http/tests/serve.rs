//! The bounds of `tls::serve` on 127.0.0.1: connections at once, clients that send nothing,
//! request heads that are too large, and what a graceful shutdown does with open connections.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use axum::routing::get;
use signaling_http::tls::ServeConfig;
use support::{http_get, read_until_closed, App, HELLO, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

#[tokio::test]
async fn at_most_max_connections_are_served_at_once() {
    let config = ServeConfig::default().with_max_connections(1);
    let app = App::start_with(None, config, |router, _| router).await;
    // The first connection holds the only place while it sends nothing.
    let first = TcpStream::connect(app.addr).await.unwrap();
    let mut second = TcpStream::connect(app.addr).await.unwrap();
    second
        .write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let waiting = tokio::time::timeout(Duration::from_millis(300), second.read(&mut byte)).await;
    assert!(waiting.is_err(), "answered while the first held the place");
    drop(first);
    let answer = String::from_utf8(read_until_closed(&mut second).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(HELLO), "{answer}");
}

#[tokio::test]
async fn a_client_that_sends_no_request_head_in_time_is_cut_off() {
    let config = ServeConfig::default().with_header_read_timeout(Duration::from_millis(100));
    let app = App::start_with(None, config, |router, _| router).await;
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    let answer = read_until_closed(&mut silent).await;
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    // Half a head, then nothing.
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /hello HTTP/1.1\r\nHost: loc")
        .await
        .unwrap();
    let answer = read_until_closed(&mut slow).await;
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
}

#[tokio::test]
async fn a_request_head_over_the_limit_is_refused() {
    let config = ServeConfig::default().with_max_header_bytes(ServeConfig::MIN_HEADER_BYTES);
    let app = App::start_with(None, config, |router, _| router).await;
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    let cookie = "a".repeat(2 * ServeConfig::MIN_HEADER_BYTES);
    let request = format!("GET /hello HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}\r\n\r\n");
    // The server may close before it has read everything: the write can fail.
    let _ = tcp.write_all(request.as_bytes()).await;
    let answer = String::from_utf8_lossy(&read_until_closed(&mut tcp).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_cuts_requests_that_outlast_the_drain_time() {
    let (started, mut handler_started) = mpsc::channel::<()>(1);
    // Long enough for the idle connection to close, short enough for the test.
    let config = ServeConfig::default().with_drain_timeout(Duration::from_secs(2));
    let mut app = App::start_with(None, config, move |router, _| {
        router.route(
            "/forever",
            get(move || {
                let started = started.clone();
                async move {
                    let _ = started.send(()).await;
                    std::future::pending::<&'static str>().await
                }
            }),
        )
    })
    .await;
    // A kept-alive connection, idle after its response.
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut response = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, idle.read(&mut response))
        .await
        .unwrap()
        .unwrap();
    assert!(response[..n].starts_with(b"HTTP/1.1 200"));
    // A request that never finishes.
    let mut busy = TcpStream::connect(app.addr).await.unwrap();
    busy.write_all(b"GET /forever HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    tokio::time::timeout(WAIT, handler_started.recv())
        .await
        .unwrap()
        .unwrap();

    let report = app.shut_down().await;
    assert_eq!((report.connections, report.cut), (2, 1), "{report:?}");
    assert!(read_until_closed(&mut idle).await.is_empty());
    assert!(read_until_closed(&mut busy).await.is_empty());
    assert!(TcpStream::connect(app.addr).await.is_err());
}

#[tokio::test]
async fn the_apps_route_answers_and_an_unknown_path_gets_404() {
    let app = App::start(None, |router, _| router).await;
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    let hello = http_get(&mut tcp, "/hello").await;
    assert_eq!(hello.status, 200);
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    assert_eq!(http_get(&mut tcp, "/nowhere").await.status, 404);
}
