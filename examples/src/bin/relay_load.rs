//! Load figures for the relay, on 127.0.0.1 only: forwarding throughput against a raw
//! tokio-tungstenite forwarder, and memory per idle connection.
//!
//! ```text
//! cargo build --release -p examples --bin relay_load
//! target/release/relay_load run                     # everything, twice; the table goes to stdout
//! target/release/relay_load run --only throughput --repeat 3 --duration 5
//! target/release/relay_load run --only rss --idle-conns 10000
//! ```
//!
//! `run` is the client side. For every measurement it starts a fresh server as a child process
//! (`relay_load serve --kind relay|baseline`, this same executable), pinned to `--server-core`
//! (default 0), and pins its own thread to `--client-core` (default 1). Both sides run a tokio
//! current-thread runtime on their main thread, so each side is exactly one thread on one core
//! (the same as `taskset -c 0 relay_load serve ...` and `taskset -c 1 relay_load run ...`).
//!
//! The two servers:
//! - `relay`: the `relay` binary's WebSocket path: TCP accept, `signaling_ws::accept_stream` with
//!   the binary's default `WsConfig` (64 KiB frames, 2 KiB read buffer, 4 KiB receive
//!   blocks, pings every 20 s), then `join_request_from_peer` and `RelayHandle::serve` with the
//!   binary's default `DriverConfig` (send queue 256, bursts of 64, write batches of 256). The
//!   relay configuration is the default but for the rate limit, raised for the load:
//!   `rate_per_sec = 10000000`, `rate_burst = 10000000` (see [`RELAY_TOML`]). It runs the
//!   binary's own server code (`examples::relay_server::Server`) on a current-thread runtime
//!   pinned to one core. Its WebSockets are tungstenite's, driven by the TCP socket's readiness
//!   (see `signaling_ws`), not through tokio-tungstenite's adapter as the baseline's are.
//! - `axum` (with `--axum`): the relay mounted in an axum app, as a user of `signaling-http`
//!   writes it: `Router::new().route("/ws", signaling_http::relay::route(handle))` served by
//!   `signaling_http::tls::serve` (plain TCP), `AxumWsConfig::default()` and
//!   `DriverConfig::default()`, the same relay configuration as `relay`. Its WebSockets are
//!   axum's (tokio-tungstenite), two tasks per connection.
//! - `baseline`: what a user would otherwise write: a raw tokio-tungstenite forwarder with
//!   tungstenite's default settings (`WebSocketConfig::default()`: 128 KiB read buffer, 128 KiB
//!   write buffer). It pairs the two connections of a room, then forwards each direction with
//!   `stream.forward(sink)`.
//!
//! Throughput: `pairs` rooms of two clients; client A sends a stream of frames of exactly
//! `size` bytes (`{"type":"load/data","value":"0000000042 xxx..."}`, numbered), the server
//! forwards them to B, B counts them and checks their numbers. One direction only. With
//! `--mode open` (the default) A sends as fast as TCP takes them, with no window: the server's
//! backpressure is all that holds A back. With `--mode window`, A keeps at most `--window` frames
//! in flight (sent and not yet counted by B). After `--warmup` seconds, the frames B receives
//! during `--duration` seconds are counted. The server's and client's CPU use over the same
//! interval is reported from `/proc/PID/schedstat`. Then A stops, and B gets up to 10 s to
//! receive the rest: `lost` counts frames A's socket took that B never received, `disorder`
//! frames that arrived out of order or twice.
//!
//! Memory: the server's `VmRSS` (`/proc/PID/status`) once it listens, and again after
//! `--idle-conns` clients (rooms of two; with the relay each client has received its
//! `relay/welcome`) have connected and stayed idle for `--settle` seconds; the difference
//! divided by the count. Kernel socket buffers are not part of a process's RSS.
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use examples::load::{payload, raise_nofile, spawn_server, vm_rss_kb, StreamCount};
use examples::relay_server::{FileConfig, Server};
use futures::{SinkExt, StreamExt};
use signaling::relay::{DriverConfig, RelayHandle};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The relay configuration used for the load: the defaults, with the rate limit raised.
const RELAY_TOML: &str = "[relay]\nrate_per_sec = 10000000\nrate_burst = 10000000\n";

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser, Debug)]
#[command(about = "Throughput and memory figures for the relay against a raw forwarder")]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Runs the measurements (client side) and prints the table.
    Run(RunArgs),
    /// Runs one server (started by `run`); prints `listening ADDR`, ends when stdin closes.
    Serve {
        /// Which server.
        #[arg(long, value_enum)]
        kind: Kind,
        /// Core to pin the server's thread to (none: no pinning).
        #[arg(long)]
        core: Option<usize>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Kind {
    Relay,
    Axum,
    Baseline,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Relay => "relay",
            Kind::Axum => "axum",
            Kind::Baseline => "baseline",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Open,
    Window,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Only {
    Throughput,
    Rss,
}

#[derive(clap::Args, Debug, Clone)]
struct RunArgs {
    /// Frame sizes in bytes.
    #[arg(long, value_delimiter = ',', default_value = "300,3000")]
    sizes: Vec<usize>,
    /// Numbers of client pairs.
    #[arg(long, value_delimiter = ',', default_value = "1,100")]
    pairs: Vec<usize>,
    /// Seconds of warm-up before counting.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds of counting.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// How the senders send: as fast as TCP allows (`open`), or with a window of frames in
    /// flight (`window`).
    #[arg(long, value_enum, default_value_t = Mode::Open)]
    mode: Mode,
    /// Frames in flight per pair, at most, with `--mode window`.
    #[arg(long, default_value_t = 128)]
    window: u64,
    /// Repetitions of each measurement (relay and baseline alternate); the summary gives
    /// medians.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Idle connections for the memory figure.
    #[arg(long, default_value_t = 10_000)]
    idle_conns: usize,
    /// Seconds the idle connections stay idle before the memory is read.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// Core for the server process.
    #[arg(long, default_value_t = 0)]
    server_core: usize,
    /// Core for this (client) process.
    #[arg(long, default_value_t = 1)]
    client_core: usize,
    /// Only one of the two measurements.
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// Also measure the relay mounted in axum (`signaling-http`).
    #[arg(long)]
    axum: bool,
}

impl RunArgs {
    /// The servers measured, in the order they run; the relay first, the baseline last.
    fn kinds(&self) -> Vec<Kind> {
        let mut kinds = vec![Kind::Relay];
        if self.axum {
            kinds.push(Kind::Axum);
        }
        kinds.push(Kind::Baseline);
        kinds
    }
}

fn main() -> Result<(), Error> {
    let args = Args::parse();
    raise_nofile();
    match args.command {
        Cmd::Serve { kind, core } => serve_main(kind, core),
        Cmd::Run(run) => run_main(&run),
    }
}

fn pin(core: usize) -> Result<(), Error> {
    // Not `get_core_ids`: it lists only the cores of the current mask, which a child inherits.
    if core
        >= std::thread::available_parallelism()
            .map_or(1, usize::from)
            .max(2)
    {
        return Err(format!("no core {core}").into());
    }
    if core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        Ok(())
    } else {
        Err(format!("cannot pin to core {core}").into())
    }
}

fn current_thread() -> Result<tokio::runtime::Runtime, Error> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn tungstenite_config() -> WebSocketConfig {
    // The same settings `signaling_ws` derives from the relay binary's defaults.
    WebSocketConfig::default()
        .read_buffer_size(2048)
        .write_buffer_size(8 * 1024)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024))
}

// ---------------------------------------------------------------------------------------------
// Server side

fn serve_main(kind: Kind, core: Option<usize>) -> Result<(), Error> {
    if let Some(core) = core {
        pin(core)?;
    }
    // End with the parent: stdin closes when it exits or drops the pipe.
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        std::process::exit(0);
    });
    let rt = current_thread()?;
    rt.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening {addr}")?;
            out.flush()?;
        }
        match kind {
            Kind::Relay => relay_server(listener).await,
            Kind::Axum => axum_server(listener).await,
            Kind::Baseline => baseline_server(listener).await,
        }
    })
}

/// The `relay` binary's server (`examples::relay_server::Server`: request head read, WebSocket
/// upgrade, relay), with its default settings but the rate limit raised for the load.
async fn relay_server(listener: TcpListener) -> Result<(), Error> {
    let config = FileConfig::from_toml(RELAY_TOML)?;
    let server = Arc::new(Server::new(config)?);
    server.run(listener).await?;
    Ok(())
}

/// The relay at `/ws` of an axum app (see the module docs).
async fn axum_server(listener: TcpListener) -> Result<(), Error> {
    let config = FileConfig::from_toml(RELAY_TOML)?;
    let relay = RelayHandle::new(config.relay, DriverConfig::default());
    let app = axum::Router::new().route("/ws", signaling_http::relay::route(relay));
    signaling_http::tls::serve(listener, app, None).await;
    Ok(())
}

type Waiting = Arc<Mutex<std::collections::HashMap<String, WebSocketStream<TcpStream>>>>;

/// A raw forwarder: pairs the two connections of a room and forwards frames both ways.
async fn baseline_server(listener: TcpListener) -> Result<(), Error> {
    let waiting: Waiting = Arc::default();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let waiting = waiting.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let mut room = None;
            // The callback's signature is tungstenite's.
            #[allow(clippy::result_large_err)]
            let callback = |req: &Request, resp: Response| {
                room = req.uri().query().and_then(|q| {
                    q.split('&')
                        .find_map(|kv| kv.strip_prefix("room="))
                        .map(str::to_owned)
                });
                Ok(resp)
            };
            let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                return;
            };
            let Some(room) = room else { return };
            let other = {
                let mut w = waiting.lock().unwrap_or_else(|e| e.into_inner());
                match w.remove(&room) {
                    Some(other) => other,
                    None => {
                        w.insert(room, ws);
                        return;
                    }
                }
            };
            let (a_tx, a_rx) = ws.split();
            let (b_tx, b_rx) = other.split();
            tokio::spawn(a_rx.forward(b_tx));
            let _ = b_rx.forward(a_tx).await;
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Client side

struct ServerProc {
    child: Child,
    addr: SocketAddr,
}

impl ServerProc {
    fn start(kind: Kind, core: usize) -> Result<Self, Error> {
        let core = core.to_string();
        let (child, addr) = spawn_server(&["serve", "--kind", kind.name(), "--core", &core])?;
        Ok(Self { child, addr })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Nanoseconds the process's main thread has run on a CPU, and has waited runnable for one
/// (time taken by other processes on the same core).
fn cpu_ns(pid: &str) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap_or_default();
    let mut fields = s.split_whitespace().map(|v| v.parse().unwrap_or(0));
    (fields.next().unwrap_or(0), fields.next().unwrap_or(0))
}

fn percent(a: (u64, u64), b: (u64, u64), secs: f64) -> (f64, f64) {
    let pct = |x: u64, y: u64| y.saturating_sub(x) as f64 / 1e9 / secs * 100.0;
    (pct(a.0, b.0), pct(a.1, b.1))
}

fn load1() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

async fn connect(addr: SocketAddr, room: &str) -> Result<WebSocketStream<TcpStream>, Error> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let url = format!("ws://{addr}/ws?room={room}");
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(tungstenite_config()))
            .await?;
    Ok(ws)
}

struct Throughput {
    rate: f64,
    /// CPU use and run-queue wait, in percent of the interval.
    server_cpu: (f64, f64),
    client_cpu: (f64, f64),
    load: String,
    /// Frames sent and never received.
    lost: u64,
    /// Frames received out of order or twice.
    disorder: u64,
}

async fn throughput(
    addr: SocketAddr,
    server_pid: &str,
    args: &RunArgs,
    size: usize,
    pairs: usize,
) -> Result<Throughput, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut counts: Vec<Arc<StreamCount>> = Vec::new();
    let mut senders = Vec::new();
    let tag = std::process::id();
    for p in 0..pairs {
        let room = format!("load-{tag}-{p}");
        let a = connect(addr, &room).await?;
        let b = connect(addr, &room).await?;
        let count = Arc::new(StreamCount::default());
        counts.push(count.clone());
        let (mut a_tx, mut a_rx) = a.split();
        // A reads what the relay tells it (welcome, joined) and answers pings.
        tokio::spawn(async move { while let Some(Ok(_)) = a_rx.next().await {} });
        let (b_tx, mut b_rx) = b.split();
        {
            let count = count.clone();
            tokio::spawn(async move {
                let _keep = b_tx;
                let mut next = 0;
                while let Some(Ok(msg)) = b_rx.next().await {
                    if let Message::Text(t) = msg {
                        count.receive(&mut next, &t, size);
                    }
                }
            });
        }
        let stop = stop.clone();
        let (mode, window) = (args.mode, args.window);
        senders.push(tokio::spawn(async move {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let room = match mode {
                    // Frames are fed in batches and flushed: the flush waits while TCP is full.
                    Mode::Open => 64,
                    Mode::Window => {
                        let inflight = sent - count.received.load(Ordering::Relaxed);
                        if inflight >= window {
                            count.arrived.notified().await;
                            continue;
                        }
                        window - inflight
                    }
                };
                for _ in 0..room {
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
            count.sent.store(sent, Ordering::Relaxed);
        }));
    }
    let total = |f: fn(&StreamCount) -> &AtomicU64| {
        counts
            .iter()
            .map(|c| f(c).load(Ordering::Relaxed))
            .sum::<u64>()
    };
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let (n0, s0, c0, t0) = (
        total(|c| &c.received),
        cpu_ns(server_pid),
        cpu_ns("self"),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let (n1, s1, c1, elapsed) = (
        total(|c| &c.received),
        cpu_ns(server_pid),
        cpu_ns("self"),
        t0.elapsed().as_secs_f64(),
    );
    let load = load1();
    stop.store(true, Ordering::Relaxed);
    for c in &counts {
        c.arrived.notify_one();
    }
    // The senders finish their batch; then everything sent gets a while to arrive.
    for sender in senders {
        let _ = tokio::time::timeout(Duration::from_secs(10), sender).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while total(|c| &c.received) < total(|c| &c.sent) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if n1 == n0 {
        return Err(format!("no frame forwarded (frame={size}B pairs={pairs})").into());
    }
    Ok(Throughput {
        rate: (n1 - n0) as f64 / elapsed,
        server_cpu: percent(s0, s1, elapsed),
        client_cpu: percent(c0, c1, elapsed),
        load,
        lost: total(|c| &c.sent).saturating_sub(total(|c| &c.received)),
        disorder: total(|c| &c.disorder),
    })
}

impl Throughput {
    /// Frames forwarded per second of server CPU time: less sensitive than the rate to CPU
    /// time taken by other processes on the server's core.
    fn per_cpu(&self) -> f64 {
        self.rate / (self.server_cpu.0 / 100.0).max(1e-9)
    }
}

struct Rss {
    before_kb: u64,
    after_kb: u64,
    joined: usize,
    load: String,
}

async fn idle_rss(
    kind: Kind,
    addr: SocketAddr,
    server_pid: &str,
    args: &RunArgs,
) -> Result<Rss, Error> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before_kb = vm_rss_kb(server_pid).ok_or("no VmRSS")?;
    let joined = Arc::new(AtomicU64::new(0));
    let limit = Arc::new(Semaphore::new(128));
    let tag = std::process::id();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.idle_conns {
        let permit = limit.clone().acquire_owned().await?;
        let joined = joined.clone();
        let room = format!("idle-{tag}-{}", i / 2);
        tasks.spawn(async move {
            let ws = connect(addr, &room).await;
            drop(permit);
            let Ok(mut ws) = ws else { return };
            if kind == Kind::Baseline {
                joined.fetch_add(1, Ordering::Relaxed);
            }
            // Read (and answer pings) until the end.
            while let Some(Ok(msg)) = ws.next().await {
                if let Message::Text(t) = msg {
                    if t.starts_with(r#"{"type":"relay/welcome""#) {
                        joined.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while (joined.load(Ordering::Relaxed) as usize) < args.idle_conns && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let after_kb = vm_rss_kb(server_pid).ok_or("no VmRSS")?;
    let load = load1();
    tasks.abort_all();
    Ok(Rss {
        before_kb,
        after_kb,
        joined: joined.load(Ordering::Relaxed) as usize,
        load,
    })
}

fn run_main(args: &RunArgs) -> Result<(), Error> {
    pin(args.client_core)?;
    let mut out = std::io::stdout().lock();
    let nofile = rlimit::Resource::NOFILE.get().map_or(0, |(soft, _)| soft);
    writeln!(
        out,
        "# relay_load: server pinned to core {}, clients to core {}, current-thread runtimes; \
         RLIMIT_NOFILE={nofile}; relay config: {}; mode {:?}",
        args.server_core,
        args.client_core,
        RELAY_TOML.trim().replace('\n', ", "),
        args.mode,
    )?;
    let mut summary = Vec::new();
    if args.only != Some(Only::Rss) {
        for &size in &args.sizes {
            for &pairs in &args.pairs {
                let kinds = args.kinds();
                let mut rates = vec![Vec::new(); kinds.len()];
                let mut effs = vec![Vec::new(); kinds.len()];
                let mut lost = vec![0u64; kinds.len()];
                for rep in 1..=args.repeat {
                    for (i, &kind) in kinds.iter().enumerate() {
                        let server = ServerProc::start(kind, args.server_core)?;
                        let pid = server.pid().to_string();
                        let rt = current_thread()?;
                        let t = rt.block_on(throughput(server.addr, &pid, args, size, pairs))?;
                        drop(rt);
                        drop(server);
                        writeln!(
                            out,
                            "sample throughput server={} frame={size}B pairs={pairs} rep={rep} \
                             rate={:.0}/s per_server_cpu_s={:.0} server_cpu={:.0}% server_runq_wait={:.0}% \
                             client_cpu={:.0}% client_runq_wait={:.0}% lost={} disorder={} load1={}",
                            kind.name(),
                            t.rate,
                            t.per_cpu(),
                            t.server_cpu.0,
                            t.server_cpu.1,
                            t.client_cpu.0,
                            t.client_cpu.1,
                            t.lost,
                            t.disorder,
                            t.load
                        )?;
                        out.flush()?;
                        rates[i].push(t.rate);
                        effs[i].push(t.per_cpu());
                        lost[i] += t.lost + t.disorder;
                    }
                }
                let last = kinds.len() - 1;
                let (r, b) = (median(&rates[0]), median(&rates[last]));
                let (re, be) = (median(&effs[0]), median(&effs[last]));
                if args.axum {
                    let (a, ae) = (median(&rates[1]), median(&effs[1]));
                    summary.push(format!(
                        "throughput frame={size}B pairs={pairs} axum={a:.0}/s ratio_to_relay={:.2} \
                         ratio_to_baseline={:.2} axum_per_cpu_s={ae:.0} \
                         cpu_per_frame_ratio_to_relay={:.2} axum_lost={} reps={}",
                        a / r,
                        a / b,
                        re / ae,
                        lost[1],
                        args.repeat
                    ));
                }
                summary.push(format!(
                    "throughput frame={size}B pairs={pairs} relay={r:.0}/s baseline={b:.0}/s \
                     ratio={:.2} relay_per_cpu_s={re:.0} baseline_per_cpu_s={be:.0} \
                     cpu_per_frame_ratio={:.2} relay_lost={} baseline_lost={} reps={}",
                    r / b,
                    be / re,
                    lost[0],
                    lost[last],
                    args.repeat
                ));
            }
        }
    }
    if args.only != Some(Only::Throughput) {
        let kinds = args.kinds();
        let mut per = vec![Vec::new(); kinds.len()];
        for rep in 1..=args.repeat {
            for (i, &kind) in kinds.iter().enumerate() {
                let server = ServerProc::start(kind, args.server_core)?;
                let pid = server.pid().to_string();
                let rt = current_thread()?;
                let m = rt.block_on(idle_rss(kind, server.addr, &pid, args))?;
                drop(rt);
                drop(server);
                let bytes =
                    (m.after_kb.saturating_sub(m.before_kb) * 1024) as f64 / m.joined.max(1) as f64;
                writeln!(
                    out,
                    "sample rss server={} conns={} joined={} rep={rep} before={}kB after={}kB \
                     per_conn={bytes:.0}B load1={}",
                    kind.name(),
                    args.idle_conns,
                    m.joined,
                    m.before_kb,
                    m.after_kb,
                    m.load
                )?;
                out.flush()?;
                per[i].push(bytes);
            }
        }
        for (i, kind) in kinds.iter().enumerate() {
            summary.push(format!(
                "rss server={} conns={} rooms_of=2 per_conn={:.0}B reps={}",
                kind.name(),
                args.idle_conns,
                median(&per[i]),
                args.repeat
            ));
        }
    }
    writeln!(out, "# summary (medians)")?;
    for line in summary {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}
