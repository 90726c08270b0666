//! Frame round trip (client -> server -> client, 300-byte text frames) through `WsConnection`
//! on both ends, against a raw tokio-tungstenite echo on the same runtime setup: each variant
//! runs its client and its echo server on one current-thread runtime (one OS thread, no
//! cross-thread wake-ups), which compares the per-frame work of the two and keeps the noise of
//! a shared machine low.
//!
//! The raw variant uses the same tungstenite settings as `WsConfig::default()` (read buffer,
//! write buffer, size limits): tungstenite's own default read buffer of 128 KiB is zero-filled
//! before every read and would make the baseline slower than it needs to be.
//!
//! `cargo bench -p signaling-ws --bench ws`
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use futures::{SinkExt, StreamExt};
use signaling::transport::Transport;
use signaling_ws::tungstenite::protocol::WebSocketConfig;
use signaling_ws::tungstenite::Message;
use signaling_ws::{WsClient, WsConfig, WsConnection, WsServer};
use tokio::runtime::Runtime;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The tungstenite settings `WsConfig::default()` amounts to.
fn raw_config() -> WebSocketConfig {
    let config = WsConfig::default();
    WebSocketConfig::default()
        .read_buffer_size(config.read_buffer_size)
        .write_buffer_size(config.write_buffer_size)
        .max_message_size(Some(config.max_message_size))
        .max_frame_size(Some(config.max_frame_size))
}

fn frame() -> String {
    let mut frame = String::from(r#"{"type":"webrtc/candidate","value":"candidate:"#);
    while frame.len() < 298 {
        frame.push('x');
    }
    frame.push_str("\"}");
    assert_eq!(frame.len(), 300);
    frame
}

type RawClient =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// signaling-ws on both ends: a `WsServer` echo and a `WsClient`.
fn setup_signaling_ws(rt: &Runtime) -> WsConnection {
    rt.block_on(async {
        let mut server = WsServer::bind("127.0.0.1:0", WsConfig::default())
            .await
            .unwrap();
        let addr = server.local_addr();
        tokio::spawn(async move {
            while let Some(mut conn) = server.accept().await {
                tokio::spawn(async move {
                    while let Ok(Some(frame)) = conn.recv().await {
                        if conn.send(frame).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        WsClient::connect(&format!("ws://{addr}/"), WsConfig::default())
            .await
            .unwrap()
    })
}

/// Raw tokio-tungstenite on both ends.
fn setup_raw(rt: &Runtime) -> RawClient {
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let mut ws = tokio_tungstenite::accept_async_with_config(stream, Some(raw_config()))
                .await
                .unwrap();
            while let Some(Ok(message)) = ws.next().await {
                if message.is_text() && ws.send(message).await.is_err() {
                    break;
                }
            }
        });
        let (ws, _) = tokio_tungstenite::connect_async_with_config(
            format!("ws://{addr}/"),
            Some(raw_config()),
            true,
        )
        .await
        .unwrap();
        ws
    })
}

fn run_signaling_ws(rt: &Runtime, client: &mut WsConnection, frame: &str, iters: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            client.send(frame.into()).await.unwrap();
            let echoed = client.recv().await.unwrap().unwrap();
            assert_eq!(echoed.len(), 300);
        }
        start.elapsed()
    })
}

fn run_raw(rt: &Runtime, client: &mut RawClient, frame: &str, iters: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            client.send(Message::text(frame.to_owned())).await.unwrap();
            let echoed = client.next().await.unwrap().unwrap();
            assert_eq!(echoed.len(), 300);
        }
        start.elapsed()
    })
}

fn round_trip(c: &mut Criterion) {
    let frame = frame();
    let ws_rt = runtime();
    let mut ws_client = setup_signaling_ws(&ws_rt);
    let raw_rt = runtime();
    let mut raw_client = setup_raw(&raw_rt);

    let mut group = c.benchmark_group("ws_round_trip_300B");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("signaling_ws", |b| {
        b.iter_custom(|iters| run_signaling_ws(&ws_rt, &mut ws_client, &frame, iters))
    });
    group.bench_function("raw_tokio_tungstenite", |b| {
        b.iter_custom(|iters| run_raw(&raw_rt, &mut raw_client, &frame, iters))
    });
    group.finish();

    // On a shared machine the load drifts between the two measurements above; alternating short
    // runs of both gives a ratio taken under the same conditions.
    let mut ratios: Vec<f64> = (0..41)
        .map(|_| {
            let ws = run_signaling_ws(&ws_rt, &mut ws_client, &frame, 2000);
            let raw = run_raw(&raw_rt, &mut raw_client, &frame, 2000);
            ws.as_secs_f64() / raw.as_secs_f64()
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "interleaved (41 x 2,000 round trips each): signaling_ws / raw_tokio_tungstenite \
         median {:.3}, quartiles {:.3} .. {:.3}",
        ratios[20], ratios[10], ratios[30]
    );
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
