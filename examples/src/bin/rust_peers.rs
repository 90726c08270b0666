//! Rust peers on two real WebRTC stacks (webrtc-rs 0.21 and str0m 0.25) through the relay.
//!
//! `rust_peers call` runs the Rust↔Rust call (glare, 1,000 messages each way, ICE restart,
//! resume after a reset socket; see `examples::peers::call`) against a relay given with
//! `--relay`, or one it starts in-process, and prints what happens and how long each step
//! took; with `--runs N` it repeats the call and prints medians.
//!
//! `rust_peers join` joins one room as one peer (str0m by default), offers when the room has
//! another peer (at once on its welcome, or when one joins), answers whatever the other peer
//! offers, and prints one line per event on stdout (`connected`, `channel-open`, `media`, ...)
//! until stdin closes: the Rust side of the browser scenario.
//!
//! ```text
//! cargo run --release -p examples --bin rust_peers -- call --runs 5
//! cargo run --release -p examples --bin rust_peers -- call --relay 127.0.0.1:8080
//! cargo run --release -p examples --bin rust_peers -- join --relay 127.0.0.1:8080 --room demo
//! ```
//!
//! Every address is on 127.0.0.1: the relay, the WebSockets and both stacks' ICE candidates.
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use examples::peers::call::{self, ms, CallOptions, CallReport, StackKind};
use examples::peers::peer::{self, PeerConfig, PeerEvent};
use examples::peers::stack::StackEvent;
use examples::peers::Bounds;
use examples::relay_server::{FileConfig, Server};
use signaling_ws::WsConfig;

#[derive(Parser, Debug)]
#[command(about = "Rust peers on webrtc-rs and str0m through the relay")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

/// The bounds (see `examples::peers::Bounds`).
#[derive(clap::Args, Debug, Clone, Copy)]
struct BoundArgs {
    /// Commands and events that may wait between a peer and its stack.
    #[arg(long, default_value_t = Bounds::default().stack_queue)]
    stack_queue: usize,
    /// Commands that may wait for a peer.
    #[arg(long, default_value_t = Bounds::default().command_queue)]
    command_queue: usize,
    /// Events a peer keeps (data channel messages are counted, not kept).
    #[arg(long, default_value_t = Bounds::default().event_log)]
    event_log: usize,
    /// Messages waiting for str0m's send buffer; KiB buffered per webrtc-rs data channel.
    #[arg(long, default_value_t = Bounds::default().send_buffer)]
    send_buffer: usize,
    /// Connections the link in front of the relay carries at once.
    #[arg(long, default_value_t = Bounds::default().link_connections)]
    link_connections: usize,
    /// Frames held to slip in after the next offer.
    #[arg(long, default_value_t = Bounds::default().injected_frames)]
    injected_frames: usize,
}

impl From<BoundArgs> for Bounds {
    fn from(a: BoundArgs) -> Self {
        Bounds {
            stack_queue: a.stack_queue,
            command_queue: a.command_queue,
            event_log: a.event_log,
            send_buffer: a.send_buffer,
            link_connections: a.link_connections,
            injected_frames: a.injected_frames,
        }
    }
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// The Rust↔Rust call: glare, messages, ICE restart, resume.
    Call {
        /// The relay (host:port on 127.0.0.1); without it, one is started in-process.
        #[arg(long)]
        relay: Option<SocketAddr>,
        /// Calls to run (timings are printed as medians).
        #[arg(long, default_value_t = 1)]
        runs: u32,
        /// Messages each way.
        #[arg(long, default_value_t = 1000)]
        messages: u32,
        /// The stack that joins first (impolite; it restarts ICE and loses its socket).
        #[arg(long, value_enum, default_value_t = Stack::WebrtcRs)]
        first: Stack,
        /// Seconds any one step may take.
        #[arg(long, default_value_t = 20.0)]
        step_limit: f64,
        #[command(flatten)]
        bounds: BoundArgs,
    },
    /// One peer joining a room, for a call with another client (the demo page).
    Join {
        /// The relay (host:port on 127.0.0.1).
        #[arg(long)]
        relay: SocketAddr,
        /// The room.
        #[arg(long)]
        room: String,
        /// The stack.
        #[arg(long, value_enum, default_value_t = Stack::Str0m)]
        stack: Stack,
        /// Offer at once on the welcome, and hold what follows it until the offer is out: the
        /// call starts with two crossing offers (the other peer's, waiting in the room, and
        /// ours).
        #[arg(long)]
        glare: bool,
        #[command(flatten)]
        bounds: BoundArgs,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Stack {
    /// webrtc-rs 0.21.
    WebrtcRs,
    /// str0m 0.25.
    Str0m,
}

impl From<Stack> for StackKind {
    fn from(s: Stack) -> Self {
        match s {
            Stack::WebrtcRs => StackKind::WebrtcRs,
            Stack::Str0m => StackKind::Str0m,
        }
    }
}

/// A line on stdout (the report is this binary's output).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() -> ExitCode {
    examples::init_logging("warn");
    let cli = Cli::parse();
    let result = match cli.mode {
        Mode::Call {
            relay,
            runs,
            messages,
            first,
            step_limit,
            bounds,
        } => {
            let options = CallOptions {
                relay: relay.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
                room: String::new(),
                messages,
                first: first.into(),
                step_limit: Duration::from_secs_f64(step_limit),
                bounds: bounds.into(),
            };
            calls(relay.is_some(), runs, options).await
        }
        Mode::Join {
            relay,
            room,
            stack,
            glare,
            bounds,
        } => join(relay, room, stack.into(), glare, bounds.into()).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("FAILED: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// Starts the relay on 127.0.0.1 in-process; its address.
async fn local_relay() -> Result<SocketAddr, Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = Arc::new(Server::new(FileConfig::default())?);
    tokio::spawn(server.run(listener));
    Ok(addr)
}

/// Runs `runs` calls with `template` (its room is set per run; without `given_relay`, a relay
/// is started in-process and its address used).
async fn calls(
    given_relay: bool,
    runs: u32,
    template: CallOptions,
) -> Result<(), Box<dyn std::error::Error>> {
    let relay = if given_relay {
        template.relay
    } else {
        let addr = local_relay().await?;
        say(&format!("relay started in-process on {addr}"));
        addr
    };
    let first = template.first;
    if !relay.ip().is_loopback() {
        return Err("the relay must be on a loopback address".into());
    }
    wait_for(relay).await?;
    let mut reports = Vec::new();
    for run in 1..=runs.max(1) {
        say(&format!(
            "run {run}: {} (first) and {}",
            first.name(),
            first.other().name()
        ));
        let options = CallOptions {
            relay,
            room: format!("rust-peers-{}-{run}", std::process::id()),
            ..template.clone()
        };
        let started = Instant::now();
        let report = call::run(&options, |line| say(&format!("  {line}"))).await?;
        say(&format!(
            "  run {run} passed in {:.2} s",
            started.elapsed().as_secs_f64()
        ));
        reports.push(report);
    }
    summary(&reports);
    Ok(())
}

/// Waits until the relay accepts connections (it may be starting beside us), for at most
/// [`RELAY_WAIT`].
async fn wait_for(relay: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = Instant::now() + RELAY_WAIT;
    loop {
        match tokio::net::TcpStream::connect(relay).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("no relay at {relay} after {RELAY_WAIT:?}: {e}").into())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// How long to wait for a relay that is starting.
const RELAY_WAIT: Duration = Duration::from_secs(10);

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn summary(reports: &[CallReport]) {
    let pick = |f: &dyn Fn(&CallReport) -> Duration| median(reports.iter().map(f).collect());
    say(&format!("medians of {} run(s):", reports.len()));
    say(&format!(
        "  second WebSocket open -> first data channel open {:.1} ms; -> both channels open at both ends {:.1} ms",
        ms(pick(&|r| r.ws_to_channel.0)),
        ms(pick(&|r| r.ws_to_channel.1))
    ));
    if let Some(r) = reports.first() {
        say(&format!(
            "  {} messages each way: {:.1} ms",
            r.messages.0,
            ms(pick(&|r| r.messages.1))
        ));
    }
    say(&format!(
        "  ICE restart -> data flowing again: {:.1} ms",
        ms(pick(&|r| r.restart_recovery))
    ));
    say(&format!(
        "  resume: reset -> welcome on the new connection {:.1} ms; reset -> first message on the new channel {:.1} ms",
        ms(pick(&|r| r.resume.0)),
        ms(pick(&|r| r.resume.1))
    ));
}

/// The Rust side of the browser scenario: one peer in `room`, reporting on stdout.
async fn join(
    relay: SocketAddr,
    room: String,
    kind: StackKind,
    glare: bool,
    bounds: Bounds,
) -> Result<(), Box<dyn std::error::Error>> {
    if !relay.ip().is_loopback() {
        return Err("the relay must be on a loopback address".into());
    }
    wait_for(relay).await?;
    let stack = kind.spawn(bounds).await?;
    // A data channel rides with our offer (or, if the other peer's offer wins, with the offer
    // made once its exchange is over). Queued before joining: the welcome may ask for an
    // offer at once.
    stack.open_channel("rust-peer").await?;
    let config = PeerConfig {
        name: kind.name().to_owned(),
        url: format!("ws://{relay}/ws"),
        room,
        offer_on_join: true,
        glare_on_welcome: glare,
    };
    let mut peer = peer::start(config, stack, WsConfig::default(), bounds).await?;
    // Runs until stdin closes (its owner is done), read on a thread of its own.
    let (closed_tx, mut closed) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = closed_tx.send(());
    });
    let mut seen = 0;
    let mut ws_open = None;
    loop {
        let waited = peer.wait("an event", Duration::from_secs(3600), |o| {
            (o.mark() > seen).then(|| {
                let from = seen.saturating_sub(o.dropped);
                o.log[from.min(o.log.len())..].to_vec()
            })
        });
        let events = tokio::select! {
            events = waited => events?,
            _ = &mut closed => return Ok(()),
        };
        seen += events.len();
        for (at, event) in events {
            let since_open = |at: Instant| {
                ws_open.map_or(0.0, |open: Instant| ms(at.saturating_duration_since(open)))
            };
            let line = match &event {
                PeerEvent::WebSocketOpen { resume } => {
                    ws_open = Some(at);
                    format!("ws-open resume={resume}")
                }
                PeerEvent::Welcome { polite, peers, .. } => {
                    format!("welcome polite={polite} peers={}", peers.len())
                }
                PeerEvent::Stack(StackEvent::Connected) => {
                    format!("connected {:.1} ms after ws-open", since_open(at))
                }
                PeerEvent::Stack(StackEvent::ChannelOpen(label)) => {
                    format!(
                        "channel-open {label} {:.1} ms after ws-open",
                        since_open(at)
                    )
                }
                PeerEvent::Stack(StackEvent::Media { mid, kind, packets }) => {
                    format!("media mid={mid} kind={kind} packets={packets}")
                }
                PeerEvent::RolledBack => "collision rolled-back".to_owned(),
                PeerEvent::OfferIgnored => "collision ignored".to_owned(),
                PeerEvent::CandidateApplied(_) => continue,
                other => format!("{other:?}"),
            };
            say(&line);
        }
    }
}
