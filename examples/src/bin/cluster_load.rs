//! Figures for relay nodes that share rooms through NATS, on 127.0.0.1 only: the same
//! measurements with both peers of a room on one node (*same node*) and with the two peers on
//! two nodes (*cross node*), in one run.
//!
//! ```text
//! cargo build --release -p examples --bin cluster_load
//! target/release/cluster_load run                       # everything; the table goes to stdout
//! target/release/cluster_load run --repeat 5 --duration 5 --idle-conns 10000
//! ```
//!
//! `run` starts a private `nats-server` (Debian's, with JetStream, on a free port), then the
//! servers as child processes (`cluster_load serve`, this same executable): nodes `n1` and
//! `n2` of one cluster, and for the memory figure also `n0`, a relay without a cluster. Each
//! server is the `relay` binary's WebSocket path (`signaling_ws::accept_stream`, the relay's
//! default settings but for the rate limit, raised for the load) on a tokio current-thread
//! runtime, with [`ClusterNode::serve`] in front of the relay when it has a node name.
//!
//! In every room the first peer joins `n1`, so `n1` runs the room; the second peer joins `n1`
//! (same node) or `n2` (cross node), and is then proxied by `n2` over NATS.
//!
//! - **Throughput**: `pairs` rooms; the first peer sends frames of `--size` bytes as fast as
//!   TCP takes them (backpressure is all that holds it back), the second counts them and checks
//!   their order. Frames received per second over `--duration`, after `--warmup`; and frames
//!   per CPU second of all the servers together (both nodes and NATS, from `/proc/PID/stat`).
//!   Afterwards the rest is waited for: `lost` counts frames sent and never received,
//!   `disorder` frames out of order or twice.
//! - **Round trip**: one room; the first peer sends a frame, the second sends it back, and the
//!   first sends the next only then. p50 and p99 of `--rtt-samples` round trips.
//! - **Join**: the time from the TCP connect to the `relay/welcome` frame, for a room's first
//!   peer (on `n1`: the room is placed, which writes the room's entry to the NATS key-value
//!   bucket) and for its second peer (on `n1` or `n2`). `--joins` rooms, one at a time.
//! - **Room placement rate**: 64 clients at a time join fresh rooms, half on `n1` and half on
//!   `n2`, each closing once welcomed: rooms placed per second (each one key-value create, and
//!   a delete when released).
//! - **NATS messages per forwarded frame**: in separate runs of the throughput and round trip
//!   measurements, cross node, a subscriber to every node's inbox subject counts the messages
//!   the nodes exchange. Heartbeats (one per node per second) are not counted.
//! - **Idle memory**: `--idle-conns` clients in rooms of two, idle for `--settle` seconds: the
//!   growth of the servers' `VmRSS` divided by the connections. Measured on fresh processes:
//!   `n0` (a relay without a cluster), one cluster node (same node), and two cluster nodes with
//!   each room's first peer on one and its second on the other (cross node; both processes'
//!   growth counts).
//!
//! Repetitions alternate same node and cross node; the table gives medians.
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use examples::load::{number, payload, raise_nofile, spawn_server, vm_rss_kb, StreamCount};
use futures::{SinkExt, StreamExt};
use signaling::relay::{join_request_from_peer, RelayHandle};
use signaling_core::admission::AllowAll;
use signaling_nats::testing::NatsServer;
use signaling_nats::{ClusterConfig, ClusterNode};
use signaling_ws::{accept_stream, WsConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The relay configuration of the servers: the defaults, with the rate limit raised.
const RELAY_TOML: &str = "[relay]\nrate_per_sec = 10000000\nrate_burst = 10000000\n";

type Error = Box<dyn std::error::Error + Send + Sync>;
type Ws = WebSocketStream<TcpStream>;

#[derive(Parser, Debug)]
#[command(about = "Same-node and cross-node figures for relay nodes sharing rooms through NATS")]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Runs the measurements and prints the table.
    Run(RunArgs),
    /// Runs one server (started by `run`); prints `listening ADDR`, ends when stdin closes.
    Serve {
        /// The NATS server; without it, a relay without a cluster.
        #[arg(long)]
        nats: Option<String>,
        /// The node's name.
        #[arg(long, default_value = "n1")]
        node: String,
    },
}

#[derive(clap::Args, Debug, Clone)]
struct RunArgs {
    /// Client pairs for the throughput.
    #[arg(long, value_delimiter = ',', default_value = "1,50")]
    pairs: Vec<usize>,
    /// Frame size in bytes.
    #[arg(long, default_value_t = 300)]
    size: usize,
    /// Seconds of warm-up before counting.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds of counting.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Repetitions of each measurement (same node and cross node alternate).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Round trips measured.
    #[arg(long, default_value_t = 2000)]
    rtt_samples: usize,
    /// Rooms joined one at a time for the join latency.
    #[arg(long, default_value_t = 200)]
    joins: usize,
    /// Idle connections for the memory figure.
    #[arg(long, default_value_t = 4000)]
    idle_conns: usize,
    /// Seconds the idle connections stay idle before the memory is read.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
}

fn main() -> Result<(), Error> {
    let args = Args::parse();
    raise_nofile();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match args.command {
        Cmd::Serve { nats, node } => rt.block_on(serve(nats, node)),
        Cmd::Run(run) => rt.block_on(run_all(&run)),
    }
}

// ---------------------------------------------------------------------------------------------
// Server side

async fn serve(nats: Option<String>, node: String) -> Result<(), Error> {
    // End with the parent: stdin closes when it exits or drops the pipe.
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        std::process::exit(0);
    });
    let config: examples::relay_server::FileConfig = toml::from_str(RELAY_TOML)?;
    let relay = RelayHandle::new(config.relay, Default::default());
    let cluster = match nats {
        Some(url) => Some(ClusterNode::start(ClusterConfig::new(url, node), relay.clone()).await?),
        None => None,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening {}", listener.local_addr()?)?;
        out.flush()?;
    }
    let ws = Arc::new(WsConfig::default());
    loop {
        let (stream, addr) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (ws, relay, cluster) = (ws.clone(), relay.clone(), cluster.clone());
        tokio::spawn(async move {
            let Ok(conn) = accept_stream(stream, Some(addr), &ws, &AllowAll).await else {
                return;
            };
            let Some(request) =
                join_request_from_peer(signaling::transport::Transport::peer(&conn))
            else {
                return;
            };
            match cluster {
                Some(node) => node.serve(conn, request).await,
                None => relay.serve(conn, request).await,
            }
        });
    }
}

/// A server child process.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

impl ServerProcess {
    fn start(nats: Option<&str>, node: &str) -> Result<Self, Error> {
        let mut args = vec!["serve", "--node", node];
        if let Some(url) = nats {
            args.extend(["--nats", url]);
        }
        let (child, addr) = spawn_server(&args)?;
        Ok(Self { child, addr })
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Client side

async fn connect(addr: SocketAddr, room: &str) -> Result<Ws, Error> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let url = format!("ws://{addr}/ws?room={room}");
    let (ws, _) = tokio_tungstenite::client_async(url, stream).await?;
    Ok(ws)
}

/// Connects and waits for the relay's welcome.
async fn join(addr: SocketAddr, room: &str) -> Result<Ws, Error> {
    let mut ws = connect(addr, room).await?;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.starts_with(r#"{"type":"relay/welcome""#) => {
                return Ok(ws);
            }
            Ok(Some(Ok(_))) => {}
            other => return Err(format!("no welcome in room {room}: {other:?}").into()),
        }
    }
}

/// CPU time (user + system) of a process, in seconds, from `/proc/PID/stat`.
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Where the rooms' peers are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    Same,
    Cross,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::Same => "same node",
            Layout::Cross => "cross node",
        }
    }
}

struct Setup {
    nats: NatsServer,
    n1: ServerProcess,
    n2: ServerProcess,
    tag: String,
}

impl Setup {
    fn second(&self, layout: Layout) -> SocketAddr {
        match layout {
            Layout::Same => self.n1.addr,
            Layout::Cross => self.n2.addr,
        }
    }

    fn pids(&self) -> [String; 3] {
        [
            self.n1.pid(),
            self.n2.pid(),
            self.nats.pid().map(|p| p.to_string()).unwrap_or_default(),
        ]
    }

    fn cpu(&self) -> f64 {
        self.pids().iter().map(|p| cpu_secs(p)).sum()
    }
}

struct Throughput {
    rate: f64,
    per_cpu: f64,
    lost: u64,
    disorder: u64,
}

async fn throughput(
    setup: &Setup,
    layout: Layout,
    pairs: usize,
    args: &RunArgs,
    run: usize,
) -> Result<Throughput, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut counts = Vec::new();
    let mut senders = Vec::new();
    // Ended at the end of the measurement, which closes the connections.
    let mut readers = Vec::new();
    for p in 0..pairs {
        let room = format!(
            "tp-{}-{run}-{}-{pairs}-{p}",
            setup.tag,
            layout.name().replace(' ', "")
        );
        let a = join(setup.n1.addr, &room).await?;
        let b = join(setup.second(layout), &room).await?;
        let count = Arc::new(StreamCount::default());
        counts.push(count.clone());
        let (mut a_tx, mut a_rx) = a.split();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(_)) = a_rx.next().await {}
        }));
        let (b_tx, mut b_rx) = b.split();
        let size = args.size;
        {
            let count = count.clone();
            readers.push(tokio::spawn(async move {
                let _keep = b_tx;
                let mut next = 0;
                while let Some(Ok(msg)) = b_rx.next().await {
                    if let Message::Text(t) = msg {
                        count.receive(&mut next, &t, size);
                    }
                }
            }));
        }
        let stop = stop.clone();
        senders.push(tokio::spawn(async move {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    if a_tx.feed(Message::Text(payload(size, sent))).await.is_err() {
                        return;
                    }
                    sent += 1;
                }
                if a_tx.flush().await.is_err() {
                    return;
                }
                count.sent.store(sent, Ordering::Relaxed);
            }
        }));
    }
    let total = |f: fn(&StreamCount) -> &AtomicU64| {
        counts
            .iter()
            .map(|c| f(c).load(Ordering::Relaxed))
            .sum::<u64>()
    };
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let (n0, cpu0, t0) = (total(|c| &c.received), setup.cpu(), Instant::now());
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let (n1, cpu1, secs) = (
        total(|c| &c.received),
        setup.cpu(),
        t0.elapsed().as_secs_f64(),
    );
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        let _ = tokio::time::timeout(Duration::from_secs(10), sender).await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while total(|c| &c.received) < total(|c| &c.sent) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for reader in readers {
        reader.abort();
    }
    let frames = n1.saturating_sub(n0) as f64;
    Ok(Throughput {
        rate: frames / secs,
        per_cpu: frames / (cpu1 - cpu0).max(0.01),
        lost: total(|c| &c.sent).saturating_sub(total(|c| &c.received)),
        disorder: total(|c| &c.disorder),
    })
}

/// Round trips, in microseconds, sorted.
async fn round_trips(
    setup: &Setup,
    layout: Layout,
    samples: usize,
    run: usize,
) -> Result<Vec<f64>, Error> {
    let room = format!("rtt-{}-{run}-{}", setup.tag, layout.name().replace(' ', ""));
    let mut a = join(setup.n1.addr, &room).await?;
    let b = join(setup.second(layout), &room).await?;
    let (mut b_tx, mut b_rx) = b.split();
    // The second peer sends back every data frame.
    let echo = tokio::spawn(async move {
        while let Some(Ok(msg)) = b_rx.next().await {
            if let Message::Text(t) = msg {
                if number(&t).is_some() && b_tx.send(Message::Text(t)).await.is_err() {
                    return;
                }
            }
        }
    });
    let mut times = Vec::with_capacity(samples);
    let warmup = 100;
    for seq in 0..(samples + warmup) as u64 {
        let start = Instant::now();
        a.send(Message::Text(payload(100, seq))).await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), a.next()).await {
                Ok(Some(Ok(Message::Text(t)))) if number(&t) == Some(seq) => break,
                Ok(Some(Ok(_))) => {}
                other => return Err(format!("round trip {seq}: {other:?}").into()),
            }
        }
        if seq >= warmup as u64 {
            times.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    echo.abort();
    times.sort_by(f64::total_cmp);
    Ok(times)
}

/// Join latencies in microseconds, sorted: (first peers, second peers).
async fn joins(
    setup: &Setup,
    layout: Layout,
    count: usize,
    run: usize,
) -> Result<(Vec<f64>, Vec<f64>), Error> {
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for i in 0..count {
        let room = format!(
            "join-{}-{run}-{}-{i}",
            setup.tag,
            layout.name().replace(' ', "")
        );
        let start = Instant::now();
        let mut a = join(setup.n1.addr, &room).await?;
        first.push(start.elapsed().as_secs_f64() * 1e6);
        let start = Instant::now();
        let mut b = join(setup.second(layout), &room).await?;
        second.push(start.elapsed().as_secs_f64() * 1e6);
        let _ = a.close(None).await;
        let _ = b.close(None).await;
    }
    first.sort_by(f64::total_cmp);
    second.sort_by(f64::total_cmp);
    Ok((first, second))
}

/// Rooms placed per second: clients join fresh rooms on `n1` and `n2` alternately (each join
/// places a room: one key-value create), `in_flight` at a time, for `secs`; each client
/// closes once welcomed (the room is released later). Returns (joins per second, p99 µs).
async fn join_rate(setup: &Setup, in_flight: usize, secs: f64) -> Result<(f64, f64), Error> {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..in_flight {
        let addr = if w % 2 == 0 {
            setup.n1.addr
        } else {
            setup.n2.addr
        };
        let (done, stop, tag) = (done.clone(), stop.clone(), setup.tag.clone());
        workers.push(tokio::spawn(async move {
            let mut times = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                let Ok(mut ws) = join(addr, &format!("rate-{tag}-{w}-{i}")).await else {
                    break;
                };
                times.push(start.elapsed().as_secs_f64() * 1e6);
                done.fetch_add(1, Ordering::Relaxed);
                let _ = ws.close(None).await;
                i += 1;
            }
            times
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let joined = done.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let mut times = Vec::new();
    for worker in workers {
        times.extend(worker.await.unwrap_or_default());
    }
    times.sort_by(f64::total_cmp);
    Ok((joined as f64 / secs, quantile(&times, 0.99)))
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    quantile(&values, 0.5)
}

/// Counts the messages published to the nodes' inboxes while `work` runs.
async fn inbox_messages<F, T>(nats: &str, work: F) -> Result<(u64, T), Error>
where
    F: std::future::Future<Output = Result<T, Error>>,
{
    let client = async_nats::connect(nats).await?;
    let mut inboxes = client.subscribe("signaling.node.>").await?;
    client.flush().await?;
    let seen = Arc::new(AtomicU64::new(0));
    let counting = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while inboxes.next().await.is_some() {
                seen.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let out = work.await?;
    // Let the last messages arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    counting.abort();
    Ok((seen.load(Ordering::Relaxed), out))
}

/// Idle connections in rooms of two: first peers on `first`, second peers on `second`.
/// Returns the servers' RSS growth per connection, in bytes.
async fn idle_rss(
    first: &ServerProcess,
    second: &ServerProcess,
    count: usize,
    settle: f64,
    tag: &str,
) -> Result<f64, Error> {
    let pids: Vec<String> = if first.pid() == second.pid() {
        vec![first.pid()]
    } else {
        vec![first.pid(), second.pid()]
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before: u64 = pids.iter().map(|p| vm_rss_kb(p).unwrap_or(0)).sum();
    let mut held = Vec::with_capacity(count);
    for i in 0..count / 2 {
        let room = format!("idle-{tag}-{i}");
        held.push(join(first.addr, &room).await?);
        held.push(join(second.addr, &room).await?);
    }
    let readers: Vec<_> = held
        .into_iter()
        .map(|mut ws| tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} }))
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(settle)).await;
    let after: u64 = pids.iter().map(|p| vm_rss_kb(p).unwrap_or(0)).sum();
    for reader in readers {
        reader.abort();
    }
    Ok(after.saturating_sub(before) as f64 * 1024.0 / (count / 2 * 2) as f64)
}

async fn run_all(args: &RunArgs) -> Result<(), Error> {
    let nats = NatsServer::start()?;
    let url = nats.url();
    let n1 = ServerProcess::start(Some(&url), "n1")?;
    let n2 = ServerProcess::start(Some(&url), "n2")?;
    let setup = Setup {
        nats,
        n1,
        n2,
        tag: std::process::id().to_string(),
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "# cluster_load: nats-server + nodes n1, n2 (current-thread runtimes, not pinned) + this \
         client on {} cores; relay config: {}; {} B frames; medians of {} runs",
        std::thread::available_parallelism().map_or(0, usize::from),
        RELAY_TOML.trim().replace('\n', ", "),
        args.size,
        args.repeat,
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "| measurement | same node | cross node | cross / same |\n|---|---|---|---|"
    )?;
    let layouts = [Layout::Same, Layout::Cross];
    for &pairs in &args.pairs {
        let mut rates = [Vec::new(), Vec::new()];
        let mut per_cpu = [Vec::new(), Vec::new()];
        let (mut lost, mut disorder) = ([0u64; 2], [0u64; 2]);
        for run in 0..args.repeat {
            for (i, &layout) in layouts.iter().enumerate() {
                let t = throughput(&setup, layout, pairs, args, run).await?;
                rates[i].push(t.rate);
                per_cpu[i].push(t.per_cpu);
                lost[i] += t.lost;
                disorder[i] += t.disorder;
            }
        }
        let [same, cross] = rates.map(median);
        writeln!(
            out,
            "| throughput, {pairs} pair(s), frames/s | {same:.0} | {cross:.0} | {:.2} |",
            cross / same
        )?;
        let [same, cross] = per_cpu.map(median);
        writeln!(
            out,
            "| frames per CPU second (both nodes + NATS), {pairs} pair(s) | {same:.0} | \
             {cross:.0} | {:.2} |",
            cross / same
        )?;
        writeln!(
            out,
            "| lost / out of order, {pairs} pair(s), all runs | {} / {} | {} / {} | |",
            lost[0], disorder[0], lost[1], disorder[1]
        )?;
    }
    let mut p50 = [Vec::new(), Vec::new()];
    let mut p99 = [Vec::new(), Vec::new()];
    for run in 0..args.repeat {
        for (i, &layout) in layouts.iter().enumerate() {
            let times = round_trips(&setup, layout, args.rtt_samples, run).await?;
            p50[i].push(quantile(&times, 0.5));
            p99[i].push(quantile(&times, 0.99));
        }
    }
    for (name, values) in [("p50", p50), ("p99", p99)] {
        let [same, cross] = values.map(median);
        writeln!(
            out,
            "| round trip {name}, µs | {same:.0} | {cross:.0} | {:.2} |",
            cross / same
        )?;
    }
    let mut first = Vec::new();
    let mut second = [Vec::new(), Vec::new()];
    for run in 0..args.repeat {
        for (i, &layout) in layouts.iter().enumerate() {
            let (f, s) = joins(&setup, layout, args.joins, run).await?;
            first.extend(f);
            second[i].extend(s);
        }
    }
    first.sort_by(f64::total_cmp);
    for s in &mut second {
        s.sort_by(f64::total_cmp);
    }
    for (name, q) in [("p50", 0.5), ("p99", 0.99)] {
        let (same, cross) = (quantile(&second[0], q), quantile(&second[1], q));
        writeln!(
            out,
            "| join of a room's second peer, {name}, µs | {same:.0} | {cross:.0} | {:.2} |",
            cross / same
        )?;
    }
    writeln!(
        out,
        "| join of a room's first peer (places the room), p50 / p99, µs | {:.0} / {:.0} | | |",
        quantile(&first, 0.5),
        quantile(&first, 0.99)
    )?;

    let (rate, p99) = join_rate(&setup, 64, args.duration).await?;
    writeln!(
        out,
        "| rooms placed per second over both nodes, 64 joins in flight (p99 join, µs) | | \
         {rate:.0} ({p99:.0}) | |"
    )?;

    // NATS messages per forwarded frame, cross node, in runs of their own.
    let one = RunArgs {
        repeat: 1,
        ..args.clone()
    };
    let (messages, received) = inbox_messages(&url, async {
        let t = throughput(&setup, Layout::Cross, 1, &one, 1000).await?;
        Ok(t.rate * one.duration)
    })
    .await?;
    writeln!(
        out,
        "| NATS messages per forwarded frame, bulk one way (1 pair) | | {:.3} | |",
        messages as f64 / received.max(1.0)
    )?;
    let rtts = 500;
    let (messages, _) =
        inbox_messages(&url, round_trips(&setup, Layout::Cross, rtts, 1000)).await?;
    writeln!(
        out,
        "| NATS messages per forwarded frame, round trips (1 frame each way) | | {:.3} | |",
        messages as f64 / ((rtts + 100) * 2) as f64
    )?;

    // Idle memory, on fresh processes (the ones above have grown their heaps under load).
    drop(setup.n1);
    drop(setup.n2);
    let n0 = ServerProcess::start(None, "n0")?;
    let single = idle_rss(&n0, &n0, args.idle_conns, args.settle, "n0").await?;
    drop(n0);
    let r1 = ServerProcess::start(Some(&url), "r1")?;
    let same = idle_rss(&r1, &r1, args.idle_conns, args.settle, "same").await?;
    drop(r1);
    let r1 = ServerProcess::start(Some(&url), "r1")?;
    let r2 = ServerProcess::start(Some(&url), "r2")?;
    let cross = idle_rss(&r1, &r2, args.idle_conns, args.settle, "cross").await?;
    writeln!(
        out,
        "| idle RSS per connection, bytes ({} connections; a relay without a cluster: \
         {single:.0}) | {same:.0} | {cross:.0} | {:.2} |",
        args.idle_conns,
        cross / same
    )?;
    Ok(())
}
