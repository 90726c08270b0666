//! Measures the resident memory of idle server-side connections (Linux only: reads
//! `/proc/self/status` and pins processes with `taskset`).
//!
//! The server runs in this process and the clients in a child process (this program started
//! again with `clients`), so the figure is the server's alone. The server is pinned to CPU 0 and
//! the clients to CPU 1 (when `taskset` is available). The server reads its VmRSS before it
//! starts listening, accepts N connections, gives each one a task that waits in `recv` (as an
//! application's connection task does, which keeps the keepalive running), waits for them to
//! settle and reads VmRSS again. The difference divided by N is the cost of one idle server
//! connection (the kernel's socket buffers are not part of RSS).
//!
//! ```text
//! ulimit -n 20000   # each process needs N + a few descriptors
//! cargo run --release -p signaling-ws --example idle_rss -- [connections] [read_buffer_bytes]
//! ```
//!
//! Defaults: 5000 connections, the default `WsConfig::read_buffer_size`.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use signaling::transport::Transport;
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

fn fd_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Pins every thread of this process to `cpu` (threads started later inherit it).
fn pin_self(cpu: usize) {
    let pinned = Command::new("taskset")
        .args([
            "-a",
            "-c",
            "-p",
            &cpu.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status();
    if !matches!(pinned, Ok(status) if status.success()) {
        eprintln!("taskset not available: running unpinned");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("clients") {
        pin_self(1);
        let addr = args[1].clone();
        let n: usize = args[2].parse().unwrap();
        runtime().block_on(clients(addr, n));
        return;
    }
    pin_self(0);
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(5000);
    let config = match args.get(1).and_then(|a| a.parse().ok()) {
        Some(bytes) => WsConfig::default().with_read_buffer_size(bytes),
        None => WsConfig::default(),
    };
    if let Some(limit) = fd_limit() {
        if limit < n + 64 {
            eprintln!(
                "open file limit {limit} is too low for {n} connections: run `ulimit -n {}` first",
                n + 100
            );
            std::process::exit(1);
        }
    }
    runtime().block_on(server(n, config));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn server(n: usize, config: WsConfig) {
    let read_buffer = config.read_buffer_size;
    let mut tasks = Vec::with_capacity(n);
    let before = rss_kib();
    let mut server = WsServer::bind("127.0.0.1:0", config).await.unwrap();
    let addr = server.local_addr();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["clients", &addr.to_string(), &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..n {
        let mut conn = server.accept().await.unwrap();
        tasks.push(tokio::spawn(async move {
            while let Ok(Some(frame)) = conn.recv().await {
                if conn.send(frame).await.is_err() {
                    break;
                }
            }
        }));
    }
    // Wait for the client process to report all connections open, then let things settle.
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib();
    let per_connection = after.saturating_sub(before) as f64 * 1024.0 / n as f64;
    println!(
        "{n} idle server connections (one task waiting in recv each), read_buffer_size \
         {read_buffer} B: server RSS {before} KiB -> {after} KiB, {per_connection:.0} B per \
         connection (load average {})",
        load_average(),
    );
    let alive = tasks.iter().filter(|t| !t.is_finished()).count();
    // Closing the child's stdin ends it.
    drop(child.stdin.take());
    let _ = child.wait();
    assert_eq!(alive, n, "connections failed while idle");
}

async fn clients(addr: String, n: usize) {
    let url = format!("ws://{addr}/");
    let limit = Arc::new(tokio::sync::Semaphore::new(64));
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..n {
        let url = url.clone();
        let limit = limit.clone();
        opening.spawn(async move {
            let _permit = limit.acquire().await.unwrap();
            let mut conn = WsClient::connect(&url, WsConfig::default()).await.unwrap();
            // Keep a `recv` pending so the client answers the server's pings.
            tokio::spawn(async move { while let Ok(Some(_)) = conn.recv().await {} });
        });
    }
    while let Some(done) = opening.join_next().await {
        done.unwrap();
    }
    println!("open");
    std::io::stdout().flush().unwrap();
    // Stay until the server closes our stdin.
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        let _ = std::io::stdin().read_line(&mut sink);
    })
    .await
    .unwrap();
}
