//! In-memory round trip against a raw tokio mpsc round trip in the same run.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use signaling::transport::Transport;
use tokio::sync::mpsc;

const FRAME: &str = r#"{"type":"webrtc/candidate","value":"candidate:842163049 1 udp 1677729535 203.0.113.7 54400 typ srflx raddr 192.168.1.2 rport 54400 generation 0 ufrag EsAw network-id 1 network-cost 10"}"#;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("round_trip");

    // Baseline: a String through a bounded tokio channel to an echo task and back.
    let (to_echo, mut echo_in) = mpsc::channel::<String>(64);
    let (echo_out, mut from_echo) = mpsc::channel::<String>(64);
    rt.spawn(async move {
        while let Some(f) = echo_in.recv().await {
            if echo_out.send(f).await.is_err() {
                break;
            }
        }
    });
    g.bench_function("tokio_mpsc", |b| {
        b.iter(|| {
            rt.block_on(async {
                to_echo.send(FRAME.into()).await.expect("send");
                from_echo.recv().await.expect("recv")
            })
        })
    });

    let (mut client, mut server) = signaling_mem::pair();
    rt.spawn(async move {
        while let Ok(Some(f)) = server.recv().await {
            if server.send(f).await.is_err() {
                break;
            }
        }
    });
    g.bench_function("mem_pair", |b| {
        b.iter(|| {
            rt.block_on(async {
                client.send(FRAME.into()).await.expect("send");
                client.recv().await.expect("recv").expect("open")
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
