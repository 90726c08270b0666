//! Measures resident memory per idle connection: opens N client connections to a server in the
//! same process and compares RSS before and after (Linux only: reads `/proc/self/status`).
//!
//! `cargo run --release -p signaling-ws --example idle_rss -- [connections] [read_buffer_bytes]`
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use signaling_ws::{WsClient, WsConfig, WsServer};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let read_buffer: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4096);
    let config = WsConfig::default().with_read_buffer_size(read_buffer);

    let mut server = WsServer::bind("127.0.0.1:0", config.clone()).await.unwrap();
    let addr = server.local_addr();
    let url = format!("ws://{addr}/");
    // Warm up allocator and runtime with one connection.
    let warm = WsClient::connect(&url, config.clone()).await.unwrap();
    let warm_server = server.accept().await.unwrap();

    let before = rss_kib();
    let mut clients = Vec::with_capacity(n);
    let mut servers = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(WsClient::connect(&url, config.clone()).await.unwrap());
        servers.push(server.accept().await.unwrap());
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let after = rss_kib();
    let per_pair = (after.saturating_sub(before)) as f64 * 1024.0 / n as f64;
    println!(
        "{n} idle connections (client + server end each), read_buffer_size {read_buffer} B: \
         RSS {before} KiB -> {after} KiB, {per_pair:.0} B per connection pair, \
         {:.0} B per connection end",
        per_pair / 2.0
    );
    drop((warm, warm_server, clients, servers));
}
