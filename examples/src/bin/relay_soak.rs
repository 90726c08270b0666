//! A soak of the relay: many WebSocket connections in rooms of two for a long while, with churn,
//! resumes, slow readers and garbage mixed in, checking that every frame the relay accepted
//! arrived exactly once, in order, and in its own room only; the relay's memory is sampled
//! every second. On 127.0.0.1 only.
//!
//! ```text
//! cargo build --release -p examples --bin relay --bin relay_soak
//! target/release/relay_soak run --connections 10000 --duration 600 --rss-csv rss.csv
//! target/release/relay_soak plot rss.csv            # the RSS over time, as text
//! ```
//!
//! `run` starts the `relay` binary found next to its own executable (`--relay-bin` to choose
//! another) as a child process, so that the RSS sampled is the relay's alone, with a
//! configuration that raises the rate limit for the slow readers' bursts and sets the resume
//! grace (`--resume-grace`); `--addr` uses a relay that is already running instead (no RSS
//! then). It raises its soft limit of open files to the hard limit first (the child inherits
//! it).
//!
//! # What happens
//!
//! 1. **Ramp.** `--connections` clients join `--connections / 2` rooms of two (the relay's
//!    default capacity), at most 128 handshakes at a time. Once all have their
//!    `relay/welcome` and a short settle, the relay's RSS gives the idle cost per connection.
//! 2. **Traffic** for `--duration` seconds. Every client sends data frames at `--rate` per
//!    second (with jitter), `{"type":"soak/data","value":"<room>:<peer id>:<seq>:<padding>"}`,
//!    `seq` counting from 0 for each peer id. At random (on average every `--event-every`
//!    seconds per client, one event at a time per room) a client does one of:
//!    - **resume**: drops its TCP connection without a close frame, waits a little (at most a
//!      third of the grace), and joins again with its resume token;
//!    - **leave** (churn): leaves cleanly, with `relay/leave` or with a close frame (1000), and
//!      joins the room again as a new peer (new id), retrying with backoff while the relay
//!      answers 4001 (room full: the other peer of the room may be rejoining at the same time);
//!    - **slow read**: stops reading for 1 to 3 s while its peer sends `--slow-burst` frames of
//!      `--slow-frame-bytes` at once;
//!    - **garbage**: sends invalid JSON or a spoofed `relay/joined` (the relay answers with an
//!      `error` frame, which must arrive; the spoof must never reach the other peer), or a
//!      binary frame or a frame over the relay's size limit (the relay closes with 1003 or
//!      1009; the client then resumes, or joins afresh if the relay refuses the resume).
//! 3. **Drain.** No new events, no new data; events under way finish; every client waits
//!    until it has everything its peers sent, but for a run the final check counts as
//!    `lost_at_drop` (a peer that dropped its connection right after handing it a frame, and
//!    then sent nothing more, never sends what would close the gap). A drain that times out
//!    fails the run, with a note for each client still waiting, and for what.
//! 4. **Final check**, then the summary; the exit status is non-zero if any check failed.
//!
//! # What "accepted" means, and the checks
//!
//! A data frame is *accepted for* a receiver R when the sender handed it to a connection that
//! the relay did not close (the sender did not break a limit with it or after it) and:
//! - R was in the room (joined, not leaving) when the relay routed the frame, or
//! - R was away and resumed within the grace: the relay queues frames for it (bounded: 64
//!   frames, 256 KiB, 30 s by default; the soak stays far below), or
//! - no one else was in the room, and R is the next peer to join: the frame waited in the
//!   room's mailbox (bounded the same way; a lone client sends at most [`MAILBOX_BUDGET`]
//!   frames, and a mailbox that is full answers `error`, counted as `mailbox_refused`).
//!
//! Not accepted, and so counted apart rather than as losses (each is what the relay documents
//! or cannot avoid):
//! - `lost_at_drop`: frames on the way through a connection that was dropped or closed
//!   abruptly: at the receiver, a run directly after the last frame it received before the
//!   drop, all sent before it resumed (the relay had written them to the dead socket; the
//!   protocol has no acknowledgement to replay them); at the sender, a run at the end of what
//!   it sent on the dropped connection, or on a connection the relay closed unexpectedly (it
//!   stops reading; the close itself is a failure).
//! - `lost_to_departed`: frames routed to a peer that closed its socket (1000, or a close by
//!   the relay) and was then kept for its resume grace, and dropped with it at the grace's
//!   end. A peer that leaves with `relay/leave` leaves at once: nothing may be lost then.
//!
//! Checked, each a failure when not zero:
//! - `losses`: an accepted frame never arrived (a gap in a sender's sequence at a receiver
//!   that is none of the above; a peer's frames missing when `relay/left` announces it; a
//!   peer's frames missing at the end; the first frame a new peer gets from the mailbox later
//!   than what its sender sent once it was alone);
//! - `duplicates`: a frame that arrived twice, or at two receivers; `out_of_order`: a frame
//!   that arrived after a later one from the same sender;
//! - `cross_room`: a frame of another room, or from a peer id never seen in this room;
//! - `late_frames`: a frame from a peer after its `relay/left`;
//! - `spoofs_forwarded`, `unexpected_frames`, `unexpected_errors`, `missing_errors`;
//! - `unexpected_closes`: a close the client did not cause; `slow_consumer_closes`: 4006
//!   while the client paused for less than [`WRITE_TIMEOUT`];
//! - `unaccounted`: frames sent minus frames received or counted above (a hole in the checks
//!   themselves);
//! - `resume_failed`: a resume within the grace refused after a plain drop;
//!   `join_failures`: a client that could not join again within the grace plus 30 s;
//!   `stuck_events`: a leave or a garbage close whose close never came.
//!
//! What the soak assumes of the relay is in one place, the constants below
//! [`WRITE_TIMEOUT`]; adjust them when the relay changes.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write as _};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use clap::{Parser, Subcommand};
use examples::load::{raise_nofile, vm_rss_kb};
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::time::{sleep, sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Error = Box<dyn std::error::Error + Send + Sync>;
type Ws = WebSocketStream<TcpStream>;

// ---------------------------------------------------------------------------------------------
// What the soak assumes of the relay. Keep every such assumption here.

/// A receiver that makes no progress for this long may be closed as a slow consumer (4006);
/// before, a full queue pushes back on the senders. A 4006 after a shorter pause is a failure.
/// (Today's relay closes at a full queue of 256 frames; the soak's default bursts fit in the
/// kernel's socket buffers, so that both pass.)
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a slow reader stops reading: well below [`WRITE_TIMEOUT`].
const SLOW_PAUSE: Range<f64> = 1.0..3.0;
/// Frames a client alone in its room sends into the mailbox before it waits for a peer: well
/// below the default `mailbox_frames` (64), which also bounds what a resuming peer's queue
/// holds.
const MAILBOX_BUDGET: u64 = 16;
/// The relay's largest frame (`max_frame_len`, default 64 KiB): one byte more is oversized.
const MAX_FRAME_LEN: usize = 64 * 1024;
/// Close codes: what a binary and an oversized frame get (the WebSocket transport's), a
/// refused join for a full room and a refused resume (the relay's), the slow consumer's.
const CLOSE_BINARY: u16 = 1003;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_ROOM_FULL: u16 = 4001;
const CLOSE_SLOW_CONSUMER: u16 = 4006;
const CLOSE_RESUME_FAILED: u16 = 4007;
/// A peer that closes with 1000 may keep its place for the whole resume grace (today it does;
/// a clean close is meant to free it at once): a new peer joining the room meanwhile gets 4001
/// and retries, for at most the grace and this much more.
const REJOIN_SLACK: Duration = Duration::from_secs(30);
/// A peer id the relay never hands out (ids count from `p1`), for spoofed relay messages.
const SPOOF_ID: &str = "p999999999";

// ---------------------------------------------------------------------------------------------
// Other constants of the soak itself.

/// Handshakes under way at once during the ramp.
const RAMP_CONCURRENCY: usize = 128;
/// The longest wait for a handshake and its welcome, for an expected `error` frame and for
/// an expected close.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);
/// After an event, the room stays quiet (no other event) this long.
const SETTLE: Duration = Duration::from_secs(1);
/// Frames waiting for one connection's writer task, at most.
const WRITER_QUEUE: usize = 256;
/// Failure descriptions kept for the summary.
const MAX_FAILURE_NOTES: usize = 20;
/// The prefix of every data frame.
const DATA_PREFIX: &str = r#"{"type":"soak/data","value":""#;

#[derive(Parser, Debug)]
#[command(about = "Soak of the relay: connections, churn, resumes, slow readers, garbage")]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Runs the soak and prints the summary; exits non-zero if a check failed.
    Run(RunArgs),
    /// Prints the RSS column of a CSV written by `run --rss-csv` as a text plot.
    Plot {
        /// The CSV file.
        path: PathBuf,
        /// Columns of the plot.
        #[arg(long, default_value_t = 72)]
        width: usize,
        /// Rows of the plot.
        #[arg(long, default_value_t = 14)]
        height: usize,
    },
}

#[derive(clap::Args, Debug, Clone)]
struct RunArgs {
    /// WebSocket connections held (two per room).
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Rooms; rooms hold two peers, so this must be half the connections (the default).
    #[arg(long)]
    rooms: Option<usize>,
    /// Seconds of traffic (after the ramp, before the drain).
    #[arg(long, default_value_t = 600.0)]
    duration: f64,
    /// Data frames per second per client.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Mean seconds between events (resume, leave, slow read, garbage) per client.
    #[arg(long, default_value_t = 120.0)]
    event_every: f64,
    /// Frames a client sends at once while its peer reads slowly.
    #[arg(long, default_value_t = 200)]
    slow_burst: u64,
    /// Bytes of padding in each of those frames.
    #[arg(long, default_value_t = 1024)]
    slow_frame_bytes: usize,
    /// The relay's resume grace in seconds (set in the spawned relay's configuration; with
    /// `--addr`, give the external relay's).
    #[arg(long, default_value_t = 30.0)]
    resume_grace: f64,
    /// Seed of the event schedule.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Use the relay at this address instead of spawning one (no RSS figures then).
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// The `relay` binary to spawn; default: next to this executable.
    #[arg(long)]
    relay_bin: Option<PathBuf>,
    /// Writes the relay's RSS, sampled every second, to this CSV file.
    #[arg(long)]
    rss_csv: Option<PathBuf>,
    /// The longest wait, in seconds, for the drain (events finishing, frames arriving).
    #[arg(long, default_value_t = 120.0)]
    drain_timeout: f64,
    /// The kinds of events mixed in.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "resume,leave,close,slow,json,spoof,binary,oversized"
    )]
    events: Vec<EventKind>,
}

/// The events a client may do; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum EventKind {
    /// Drop the TCP connection without a close frame, and resume.
    Resume,
    /// Leave with `relay/leave`, and join again as a new peer.
    Leave,
    /// Leave with a close frame (1000), and join again as a new peer.
    Close,
    /// Stop reading for a while, as the peer sends a burst.
    Slow,
    /// Send invalid JSON.
    Json,
    /// Send a spoofed `relay/joined`.
    Spoof,
    /// Send a binary frame.
    Binary,
    /// Send a frame over the relay's size limit.
    Oversized,
}

impl EventKind {
    /// How often each kind is picked, relative to the others.
    fn weight(self) -> u64 {
        match self {
            EventKind::Resume => 30,
            EventKind::Leave | EventKind::Close => 12,
            EventKind::Slow => 20,
            EventKind::Json | EventKind::Spoof => 7,
            EventKind::Binary | EventKind::Oversized => 6,
        }
    }
}

fn main() -> Result<(), Error> {
    match Args::parse().command {
        Cmd::Plot {
            path,
            width,
            height,
        } => {
            let samples = read_csv(&path)?;
            let mut out = std::io::stdout().lock();
            write!(out, "{}", plot(&samples, width, height))?;
            Ok(())
        }
        Cmd::Run(args) => {
            raise_nofile();
            let passed = run(args)?;
            if !passed {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Counters

macro_rules! counts {
    ($($variant:ident = $name:literal, $failure:literal;)*) => {
        /// What the soak counts. Failures must stay zero.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        enum Count { $($variant),* }

        impl Count {
            const ALL: &'static [Count] = &[$(Count::$variant),*];

            fn name(self) -> &'static str {
                match self { $(Count::$variant => $name),* }
            }

            fn is_failure(self) -> bool {
                match self { $(Count::$variant => $failure),* }
            }
        }
    };
}

counts! {
    FramesSent = "frames_sent", false;
    FramesReceived = "frames_received", false;
    Losses = "losses", true;
    Duplicates = "duplicates", true;
    OutOfOrder = "out_of_order", true;
    CrossRoom = "cross_room", true;
    LateFrames = "late_frames", true;
    SpoofsForwarded = "spoofs_forwarded", true;
    UnexpectedFrames = "unexpected_frames", true;
    UnexpectedErrors = "unexpected_errors", true;
    MissingErrors = "missing_errors", true;
    UnexpectedCloses = "unexpected_closes", true;
    SlowConsumerCloses = "slow_consumer_closes", true;
    ResumeFailed = "resume_failed", true;
    JoinFailures = "join_failures", true;
    StuckEvents = "stuck_events", true;
    LostAtDrop = "lost_at_drop", false;
    LostToDeparted = "lost_to_departed", false;
    MailboxRefused = "mailbox_refused", false;
    Resumes = "resumes", false;
    Leaves = "leaves", false;
    CloseLeaves = "close_leaves", false;
    SlowReads = "slow_reads", false;
    GarbageJson = "garbage_json", false;
    GarbageSpoof = "garbage_spoof", false;
    GarbageBinary = "garbage_binary", false;
    GarbageOversized = "garbage_oversized", false;
    GarbageResumeRefused = "garbage_resume_refused", false;
    RoomFullRetries = "room_full_retries", false;
    SlowBurstFrames = "slow_burst_frames", false;
}

/// The phases of a run, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Ramp,
    Traffic,
    Draining,
    Final,
}

/// What all clients share.
struct Soak {
    addr: SocketAddr,
    args: RunArgs,
    counts: Vec<AtomicU64>,
    closes: Mutex<BTreeMap<String, u64>>,
    notes: Mutex<Vec<String>>,
    /// Clients joined (holding a connection that got its welcome).
    held: AtomicI64,
    /// Clients that joined during the ramp, and clients that gave up.
    ramped: AtomicUsize,
    retired: AtomicUsize,
    /// Clients that, while draining, have everything their peers sent; and those done with
    /// the final check.
    quiet: AtomicI64,
    done: AtomicUsize,
    phase: watch::Receiver<Phase>,
    /// The spawned relay's process id.
    relay_pid: Option<u32>,
}

impl Soak {
    fn new(
        addr: SocketAddr,
        args: RunArgs,
        phase: watch::Receiver<Phase>,
        relay_pid: Option<u32>,
    ) -> Self {
        Soak {
            addr,
            args,
            counts: Count::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            closes: Mutex::default(),
            notes: Mutex::default(),
            held: AtomicI64::new(0),
            ramped: AtomicUsize::new(0),
            retired: AtomicUsize::new(0),
            quiet: AtomicI64::new(0),
            done: AtomicUsize::new(0),
            phase,
            relay_pid,
        }
    }

    fn add(&self, count: Count, n: u64) {
        self.counts[count as usize].fetch_add(n, Ordering::Relaxed);
    }

    fn get(&self, count: Count) -> u64 {
        self.counts[count as usize].load(Ordering::Relaxed)
    }

    /// Counts a failure and keeps its description (the first few).
    fn fail(&self, count: Count, n: u64, note: impl FnOnce() -> String) {
        self.add(count, n);
        let mut notes = lock(&self.notes);
        if notes.len() < MAX_FAILURE_NOTES {
            notes.push(format!("{}={n}: {}", count.name(), note()));
        }
    }

    /// Keeps a note that comes with a failure counted elsewhere (the first few).
    fn note(&self, note: String) {
        let mut notes = lock(&self.notes);
        if notes.len() < MAX_FAILURE_NOTES {
            notes.push(note);
        }
    }

    fn close_seen(&self, code: Option<u16>) {
        let key = code.map_or_else(|| "none".to_owned(), |c| c.to_string());
        *lock(&self.closes).entry(key).or_default() += 1;
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every mutation completes before the lock is released.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// The room book: what the clients of a room know of each other's sending

/// How a receiver left its room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Departure {
    /// `relay/leave`: at once, nothing routed to it is lost.
    Leave,
    /// A close frame, or a close by the relay, or a refused resume: the relay dropped what it
    /// had queued for it (and, but for a close frame with 1000 or 1001, kept its place for the
    /// grace).
    Closed,
}

/// One peer id's sending, as its client records it.
#[derive(Debug)]
struct Sender {
    id: String,
    /// Frames handed to its connections: the next sequence number.
    sent: u64,
    /// The client moved on to another id (it left, or its resume was refused).
    gone: bool,
    /// `sent` when the client last learned it was alone: from there on, frames wait in the
    /// mailbox for the next peer.
    alone_from: u64,
    /// For each receiver that joined after it: the first frame that must reach that receiver.
    must_from: HashMap<String, u64>,
    /// The lowest sequence number no departed receiver has received.
    undelivered_from: u64,
    /// How its last receiver left.
    last_departure: Option<Departure>,
    /// The frames it sent on a connection it dropped abruptly (the last such connection).
    dropped: Option<Range<u64>>,
    /// The relay refused one of its frames with "mailbox full".
    mailbox_refused: bool,
}

impl Sender {
    fn new(id: String) -> Self {
        Self {
            id,
            sent: 0,
            gone: false,
            alone_from: 0,
            must_from: HashMap::new(),
            undelivered_from: 0,
            last_departure: None,
            dropped: None,
            mailbox_refused: false,
        }
    }
}

#[derive(Debug)]
struct Book {
    /// Every id of the room, in order of joining (gone ones pruned beyond a few).
    senders: Vec<Sender>,
    /// An event is under way in the room.
    busy: bool,
    /// The room is quiet until then.
    free_at: Instant,
    /// A client reading slowly, asking its peer for a burst.
    burst_for: Option<String>,
}

impl Book {
    fn sender(&self, id: &str) -> Option<&Sender> {
        self.senders.iter().find(|s| s.id == id)
    }

    fn sender_mut(&mut self, id: &str) -> Option<&mut Sender> {
        self.senders.iter_mut().find(|s| s.id == id)
    }

    fn add(&mut self, id: &str) {
        self.senders.push(Sender::new(id.to_owned()));
        // Bounded: gone ids are needed only until their `relay/left`, long past after a few
        // more have come and gone.
        while self.senders.len() > 8 {
            match self.senders.iter().position(|s| s.gone) {
                Some(i) => drop(self.senders.remove(i)),
                None => break,
            }
        }
    }
}

struct Room {
    name: Arc<str>,
    book: Mutex<Book>,
    /// Wakes the client of each slot (0, 1) for its peer's burst request.
    wake: [Notify; 2],
}

// ---------------------------------------------------------------------------------------------
// A client

/// What a receiver knows of one sender.
#[derive(Debug)]
struct Tracker {
    /// The next sequence number expected.
    next: u64,
    /// Until the first frame: what the first frame may be (see [`Opening`]).
    opening: Option<Opening>,
    /// The first frame received and how many frames before it were counted as lost to a
    /// departed receiver (checked again once the sender's `must_from` is known).
    first: Option<(u64, u64)>,
    /// After a resume: frames up to here may be missing right after the last one received.
    excuse_upto: Option<u64>,
    /// Gaps seen (the most recent few), to tell a late frame from a duplicate.
    gaps: Vec<Range<u64>>,
}

/// A new receiver's expectation of a sender's first frame.
#[derive(Debug, Clone, Copy)]
struct Opening {
    /// The lowest sequence number no earlier receiver got.
    from: u64,
    /// How the earlier receiver left.
    departure: Option<Departure>,
    mailbox_refused: bool,
}

impl Opening {
    fn of(sender: &Sender) -> Self {
        Opening {
            from: sender.undelivered_from,
            departure: sender.last_departure,
            mailbox_refused: sender.mailbox_refused,
        }
    }

    /// Counts the frames from `from` up to `first` (the first that arrived, or the first that
    /// must arrive): lost at a drop, to a departed receiver, to a full mailbox, or a loss.
    /// Returns how many were counted as lost to a departed receiver.
    fn account(self, soak: &Soak, first: u64, at_drop: bool, note: impl FnOnce() -> String) -> u64 {
        let gap = first.saturating_sub(self.from);
        if gap == 0 {
            return 0;
        }
        if at_drop {
            soak.add(Count::LostAtDrop, gap);
        } else if self.departure == Some(Departure::Closed) {
            soak.add(Count::LostToDeparted, gap);
            return gap;
        } else if self.mailbox_refused {
            soak.add(Count::MailboxRefused, gap);
        } else {
            soak.fail(Count::Losses, gap, note);
        }
        0
    }
}

impl Tracker {
    fn new(sender: &Sender) -> Self {
        Self {
            next: sender.undelivered_from,
            opening: Some(Opening::of(sender)),
            first: None,
            excuse_upto: None,
            gaps: Vec::new(),
        }
    }
}

/// How a connection ended.
#[derive(Debug)]
enum End {
    /// The run is over.
    Final,
    /// The client dropped it abruptly (a resume event), or gave up waiting for a close.
    Dropped,
    /// The client left cleanly.
    Left(Departure),
    /// The relay closed it (`None`: no close frame); `expected` when the client's garbage
    /// asked for it; `paused`: the longest the client stopped reading on this connection.
    Closed {
        code: Option<u16>,
        expected: bool,
        paused: Duration,
    },
}

/// The event under way on a connection.
#[derive(Debug, Clone, Copy)]
enum Ongoing {
    None,
    SlowRead {
        until: Instant,
        since: Instant,
    },
    AwaitError {
        deadline: Instant,
    },
    AwaitClose {
        code: u16,
        deadline: Instant,
    },
    Leaving {
        departure: Departure,
        deadline: Instant,
    },
}

/// What a connection's writer task sends.
enum Out {
    Frame(Message),
    /// Data frames `seqs` of `id`, padded with `pad` bytes.
    Burst {
        id: Arc<str>,
        seqs: Range<u64>,
        pad: usize,
    },
}

struct Client {
    soak: Arc<Soak>,
    room: Arc<Room>,
    slot: usize,
    rng: Rng,
    phase: watch::Receiver<Phase>,
    id: Arc<str>,
    token: String,
    trackers: HashMap<String, Tracker>,
    /// Ids whose `relay/left` arrived.
    left: HashSet<String>,
    partner: Option<String>,
    /// Frames sent since the client learned it is alone.
    alone_sent: u64,
    /// `sent` when the current connection began.
    conn_start: u64,
    next_event: Instant,
}

enum JoinError {
    Refused(u16),
    Failed(String),
}

struct Welcome {
    id: String,
    token: String,
    peers: Vec<String>,
}

impl Client {
    fn book(&self) -> MutexGuard<'_, Book> {
        lock(&self.room.book)
    }

    fn schedule_event(&mut self) {
        let mean = self.soak.args.event_every.max(0.1);
        self.next_event = Instant::now() + Duration::from_secs_f64(self.rng.exp(mean));
    }

    /// The whole life of the client.
    async fn run(mut self, ramp: Arc<Semaphore>) {
        let joined = {
            let _permit = ramp.acquire().await;
            self.join_fresh().await
        };
        let Some(mut ws) = joined else {
            self.retire();
            return;
        };
        self.soak.ramped.fetch_add(1, Ordering::Relaxed);
        if self.phase.wait_for(|p| *p >= Phase::Traffic).await.is_err() {
            return;
        }
        self.schedule_event();
        loop {
            let end = self.session(ws).await;
            let next = match end {
                End::Final => return,
                End::Dropped => {
                    let max = (self.soak.args.resume_grace / 3.0).clamp(0.2, 3.0);
                    sleep(Duration::from_secs_f64(self.rng.range(0.1..max))).await;
                    self.resume(false).await
                }
                End::Closed {
                    code,
                    expected,
                    paused,
                } => {
                    if !expected {
                        // The relay stopped reading this connection: what the client sent
                        // last may never have been read (not accepted).
                        self.dropped();
                        if code == Some(CLOSE_SLOW_CONSUMER) && paused < WRITE_TIMEOUT {
                            self.soak.fail(Count::SlowConsumerCloses, 1, || {
                                format!(
                                    "{} {} closed with 4006 after a pause of {paused:?}",
                                    self.room.name, self.id
                                )
                            });
                        } else if code == Some(CLOSE_SLOW_CONSUMER) {
                            // Paused longer than the write timeout: the relay may close it.
                        } else {
                            self.soak.fail(Count::UnexpectedCloses, 1, || {
                                format!("{} {} closed with {code:?}", self.room.name, self.id)
                            });
                        }
                    }
                    sleep(Duration::from_millis(self.rng.below(500))).await;
                    self.resume(expected).await
                }
                End::Left(departure) => {
                    self.depart(departure);
                    sleep(Duration::from_millis(self.rng.below(1000))).await;
                    self.join_fresh().await
                }
            };
            let Some(next) = next else {
                self.retire();
                return;
            };
            ws = next;
            self.release_room();
        }
    }

    /// Gives up: the client no longer takes part.
    fn retire(&mut self) {
        self.release_room();
        self.soak.retired.fetch_add(1, Ordering::Relaxed);
    }

    fn claim_room(&self) -> bool {
        let mut book = self.book();
        if book.busy || Instant::now() < book.free_at {
            return false;
        }
        book.busy = true;
        true
    }

    fn release_room(&self) {
        let mut book = self.book();
        book.busy = false;
        book.free_at = Instant::now() + SETTLE;
    }

    /// Joins the room as a new peer, retrying while the room is full; `None` after the
    /// rejoin budget.
    async fn join_fresh(&mut self) -> Option<Ws> {
        let budget = Duration::from_secs_f64(self.soak.args.resume_grace) + REJOIN_SLACK;
        let deadline = Instant::now() + budget;
        let mut backoff = Duration::from_millis(250);
        loop {
            let why = match join(self.soak.addr, &self.room.name, None).await {
                Ok((ws, welcome)) => {
                    self.become_peer(welcome);
                    return Some(ws);
                }
                Err(JoinError::Refused(code)) => {
                    self.soak.close_seen(Some(code));
                    if code == CLOSE_ROOM_FULL {
                        self.soak.add(Count::RoomFullRetries, 1);
                    }
                    format!("refused with {code}")
                }
                Err(JoinError::Failed(e)) => e,
            };
            if Instant::now() + backoff > deadline {
                self.soak.fail(Count::JoinFailures, 1, || {
                    format!("{}: cannot join within {budget:?}: {why}", self.room.name)
                });
                return None;
            }
            sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// Takes the identity a fresh welcome gives.
    fn become_peer(&mut self, welcome: Welcome) {
        self.id = welcome.id.into();
        self.token = welcome.token;
        self.trackers.clear();
        self.left.clear();
        self.conn_start = 0;
        self.alone_sent = 0;
        self.partner = welcome.peers.first().cloned();
        let mut book = self.book();
        book.add(&self.id);
        if let (Some(me), Some(partner)) = (book.sender_mut(&self.id), &self.partner) {
            // Joining an occupied room: everything it sends is for that peer.
            me.must_from.insert(partner.clone(), 0);
        }
    }

    /// Resumes with the token (after a drop, or after a close the client caused when
    /// `after_garbage`); joins afresh when the relay refuses.
    async fn resume(&mut self, after_garbage: bool) -> Option<Ws> {
        let token = self.token.clone();
        let mut attempts = 0;
        loop {
            attempts += 1;
            match join(self.soak.addr, &self.room.name, Some(&token)).await {
                Ok((ws, welcome)) => {
                    self.soak.add(Count::Resumes, 1);
                    if welcome.id != *self.id {
                        self.soak.fail(Count::ResumeFailed, 1, || {
                            format!("{}: resumed {} as {}", self.room.name, self.id, welcome.id)
                        });
                        self.depart(Departure::Closed);
                        self.become_peer(welcome);
                        return Some(ws);
                    }
                    self.resumed(welcome);
                    return Some(ws);
                }
                Err(JoinError::Refused(code)) => {
                    self.soak.close_seen(Some(code));
                    if after_garbage && code == CLOSE_RESUME_FAILED {
                        self.soak.add(Count::GarbageResumeRefused, 1);
                    } else {
                        self.soak.fail(Count::ResumeFailed, 1, || {
                            format!("{} {}: resume refused with {code}", self.room.name, self.id)
                        });
                    }
                    break;
                }
                Err(JoinError::Failed(e)) if attempts >= 3 => {
                    self.soak.fail(Count::ResumeFailed, 1, || {
                        format!("{} {}: resume failed: {e}", self.room.name, self.id)
                    });
                    break;
                }
                Err(JoinError::Failed(_)) => sleep(Duration::from_millis(200)).await,
            }
        }
        self.depart(Departure::Closed);
        self.join_fresh().await
    }

    /// The same peer, on a new connection: what was in flight to the old one may be missing.
    fn resumed(&mut self, welcome: Welcome) {
        self.token = welcome.token;
        let book = lock(&self.room.book);
        self.conn_start = book.sender(&self.id).map_or(0, |s| s.sent);
        for sender in book.senders.iter().filter(|s| !s.gone && *s.id != *self.id) {
            let tracker = self
                .trackers
                .entry(sender.id.clone())
                .or_insert_with(|| Tracker::new(sender));
            tracker.excuse_upto = Some(sender.sent);
        }
        drop(book);
        match welcome.peers.first() {
            Some(p) => self.partner = Some(p.clone()),
            None if self.partner.is_some() => self.now_alone(),
            None => {}
        }
    }

    /// The client learned it is alone in the room.
    fn now_alone(&mut self) {
        self.partner = None;
        self.alone_sent = 0;
        let mut book = self.book();
        if let Some(me) = book.sender_mut(&self.id) {
            me.alone_from = me.sent;
        }
    }

    /// The client leaves its peer id behind: records what it received, for the next receiver.
    fn depart(&mut self, departure: Departure) {
        let mut book = lock(&self.room.book);
        let id = self.id.to_string();
        let trackers = std::mem::take(&mut self.trackers);
        for (sender, tracker) in &trackers {
            self.settle_opening(&book, sender, tracker);
        }
        for sender in book.senders.iter_mut().filter(|s| s.id != id && !s.gone) {
            match (trackers.get(&sender.id), sender.must_from.get(&id).copied()) {
                (Some(t), _) => sender.undelivered_from = sender.undelivered_from.max(t.next),
                (None, Some(must_from)) => {
                    // Nothing arrived. What was sent before the sender knew of this receiver is
                    // counted as the receiver before it left (it may leave differently); from
                    // `must_from` on, the frames wait for the next receiver.
                    let opening = Opening::of(sender);
                    opening.account(&self.soak, must_from, false, || {
                        format!(
                            "{} {id}: {} sent {must_from} before it knew of this peer",
                            self.room.name, sender.id
                        )
                    });
                    sender.undelivered_from = sender.undelivered_from.max(must_from);
                }
                // The sender did not know of this receiver yet: the frames it sent went to the
                // mailbox, still to be counted as the last departure says.
                (None, None) => continue,
            }
            sender.last_departure = Some(departure);
            sender.mailbox_refused = false;
            sender.must_from.remove(&id);
        }
        if let Some(me) = book.sender_mut(&id) {
            me.gone = true;
        }
        drop(book);
        self.left.clear();
        self.partner = None;
    }

    /// Checks a tracker's first frame against the sender's `must_from`, once known: the
    /// frames from there on waited in the mailbox and must all have arrived.
    fn settle_opening(&self, book: &Book, sender: &str, tracker: &Tracker) {
        let (Some((first, excused)), Some(must_from)) = (
            tracker.first,
            book.sender(sender)
                .and_then(|s| s.must_from.get(&*self.id).copied()),
        ) else {
            return;
        };
        let lost = first.saturating_sub(must_from).min(excused);
        if lost > 0 {
            self.soak.counts[Count::LostToDeparted as usize].fetch_sub(lost, Ordering::Relaxed);
            self.soak.fail(Count::Losses, lost, || {
                format!(
                    "{} {}: first frame from {sender} is {first}, but everything from {must_from} \
                     went to the mailbox",
                    self.room.name, self.id
                )
            });
        }
    }

    /// Runs one connection until it ends.
    async fn session(&mut self, ws: Ws) -> End {
        let (sink, mut stream) = ws.split();
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        let writer = AbortOnDrop(tokio::spawn(write_loop(sink, rx, self.room.name.clone())));
        let _held = Held::new(&self.soak);
        let mut ongoing = Ongoing::None;
        let mut quiet = false;
        let mut paused = Duration::ZERO;
        let mut send_at = Instant::now() + self.send_interval();
        let end = loop {
            let phase = *self.phase.borrow_and_update();
            if phase == Phase::Final {
                if !quiet {
                    self.not_drained(ongoing);
                }
                self.final_check();
                break End::Final;
            }
            let now = Instant::now();
            let mut wake = now + Duration::from_secs(3600);
            let may_send = phase == Phase::Traffic
                && matches!(ongoing, Ongoing::None | Ongoing::SlowRead { .. })
                && (self.partner.is_some() || self.alone_sent < MAILBOX_BUDGET);
            if may_send {
                wake = wake.min(send_at);
            }
            if phase == Phase::Traffic && matches!(ongoing, Ongoing::None) {
                wake = wake.min(self.next_event);
            }
            match ongoing {
                Ongoing::None => {}
                Ongoing::SlowRead { until, .. } => wake = wake.min(until),
                Ongoing::AwaitError { deadline }
                | Ongoing::AwaitClose { deadline, .. }
                | Ongoing::Leaving { deadline, .. } => wake = wake.min(deadline),
            }
            if phase == Phase::Draining {
                wake = wake.min(now + Duration::from_millis(200));
            }
            let reading = !matches!(ongoing, Ongoing::SlowRead { .. });
            tokio::select! {
                biased;
                changed = self.phase.changed() => {
                    if changed.is_err() {
                        break End::Final;
                    }
                }
                () = self.room.wake[self.slot].notified() => self.serve_burst(&tx),
                msg = stream.next(), if reading => match msg {
                    Some(Ok(Message::Text(text))) => self.on_text(&text, &mut ongoing),
                    Some(Ok(Message::Close(frame))) => {
                        let code = frame.map(|f| u16::from(f.code));
                        self.soak.close_seen(code);
                        break match ongoing {
                            Ongoing::Leaving { departure, .. } if code == Some(1000) => {
                                End::Left(departure)
                            }
                            Ongoing::AwaitClose { code: want, .. } => End::Closed {
                                code,
                                expected: code == Some(want),
                                paused,
                            },
                            _ => End::Closed { code, expected: false, paused },
                        };
                    }
                    Some(Ok(Message::Binary(_))) => {
                        self.soak.fail(Count::UnexpectedFrames, 1, || "a binary frame".into());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => {
                        self.soak.close_seen(None);
                        break End::Closed { code: None, expected: false, paused };
                    }
                },
                () = sleep_until(wake) => {
                    let now = Instant::now();
                    match ongoing {
                        Ongoing::SlowRead { until, since } if now >= until => {
                            paused = paused.max(now - since);
                            self.book().burst_for = None;
                            ongoing = Ongoing::None;
                            self.release_room();
                        }
                        Ongoing::AwaitError { deadline } if now >= deadline => {
                            self.soak.fail(Count::MissingErrors, 1, || {
                                format!("{} {}: no error for garbage", self.room.name, self.id)
                            });
                            ongoing = Ongoing::None;
                            self.release_room();
                        }
                        Ongoing::AwaitClose { deadline, .. } | Ongoing::Leaving { deadline, .. }
                            if now >= deadline =>
                        {
                            self.soak.fail(Count::StuckEvents, 1, || {
                                format!("{} {}: no close, {ongoing:?}", self.room.name, self.id)
                            });
                            self.dropped();
                            break End::Dropped;
                        }
                        _ => {}
                    }
                    if may_send && now >= send_at {
                        self.send_data(&tx);
                        send_at = now + self.send_interval();
                    }
                    if phase == Phase::Traffic
                        && matches!(ongoing, Ongoing::None)
                        && now >= self.next_event
                    {
                        match self.start_event(&tx) {
                            Some(Some(next)) => ongoing = next,
                            Some(None) => break End::Dropped,
                            None => {}
                        }
                    }
                    if phase == Phase::Draining {
                        let now_quiet = matches!(ongoing, Ongoing::None) && self.caught_up();
                        if now_quiet != quiet {
                            quiet = now_quiet;
                            let delta = if quiet { 1 } else { -1 };
                            self.soak.quiet.fetch_add(delta, Ordering::Relaxed);
                        }
                    }
                }
            }
        };
        if quiet {
            self.soak.quiet.fetch_sub(1, Ordering::Relaxed);
        }
        if matches!(end, End::Dropped) {
            // No close frame: the socket goes away with both halves.
            drop(writer);
            drop(stream);
        } else if matches!(end, End::Final) {
            self.soak.done.fetch_add(1, Ordering::Relaxed);
        }
        end
    }

    fn send_interval(&mut self) -> Duration {
        let mean = 1.0 / self.soak.args.rate.max(0.001);
        Duration::from_secs_f64(self.rng.range(0.5 * mean..1.5 * mean))
    }

    /// Sends one data frame, if the writer has room.
    fn send_data(&mut self, tx: &mpsc::Sender<Out>) {
        let Ok(permit) = tx.try_reserve() else {
            return;
        };
        let seq = {
            let mut book = self.book();
            let Some(me) = book.sender_mut(&self.id) else {
                return;
            };
            me.sent += 1;
            me.sent - 1
        };
        if self.partner.is_none() {
            self.alone_sent += 1;
        }
        self.soak.add(Count::FramesSent, 1);
        permit.send(Out::Frame(Message::text(data_frame(
            &self.room.name,
            &self.id,
            seq,
            0,
        ))));
    }

    /// The peer asked for a burst (it reads slowly meanwhile).
    fn serve_burst(&mut self, tx: &mpsc::Sender<Out>) {
        let Ok(permit) = tx.try_reserve() else {
            return;
        };
        let n = self.soak.args.slow_burst;
        let seqs = {
            let mut book = self.book();
            let asked = book.burst_for.is_some() && book.burst_for == self.partner;
            if !asked {
                return;
            }
            book.burst_for = None;
            let Some(me) = book.sender_mut(&self.id) else {
                return;
            };
            me.sent += n;
            me.sent - n..me.sent
        };
        self.soak.add(Count::FramesSent, n);
        self.soak.add(Count::SlowBurstFrames, n);
        permit.send(Out::Burst {
            id: self.id.clone(),
            seqs,
            pad: self.soak.args.slow_frame_bytes,
        });
    }

    /// Starts a random event if the room is free: `Some(Some(ongoing))` for an event that runs
    /// on this connection, `Some(None)` when the connection is to be dropped, `None` when no
    /// event started.
    fn start_event(&mut self, tx: &mpsc::Sender<Out>) -> Option<Option<Ongoing>> {
        if self.partner.is_none() || !self.claim_room() {
            self.next_event = Instant::now() + Duration::from_secs(1);
            return None;
        }
        self.schedule_event();
        let now = Instant::now();
        let deadline = now + REPLY_TIMEOUT;
        let send = |m: Message| tx.try_send(Out::Frame(m)).is_ok();
        let kinds = &self.soak.args.events;
        let mut pick = self.rng.below(kinds.iter().map(|k| k.weight()).sum());
        let kind = kinds
            .iter()
            .copied()
            .find(|k| {
                let hit = pick < k.weight();
                pick = pick.saturating_sub(k.weight());
                hit
            })
            .unwrap_or(EventKind::Resume);
        let ongoing = match kind {
            EventKind::Resume => {
                self.dropped();
                return Some(None);
            }
            EventKind::Leave => {
                self.soak.add(Count::Leaves, 1);
                send(Message::text(r#"{"type":"relay/leave"}"#)).then_some(Ongoing::Leaving {
                    departure: Departure::Leave,
                    deadline,
                })
            }
            EventKind::Close => {
                self.soak.add(Count::CloseLeaves, 1);
                let close = CloseFrame {
                    code: WsCloseCode::Normal,
                    reason: "".into(),
                };
                // A clean close frees the slot at once, but what the relay had queued for this
                // peer when it read the close is dropped with the connection.
                send(Message::Close(Some(close))).then_some(Ongoing::Leaving {
                    departure: Departure::Closed,
                    deadline,
                })
            }
            EventKind::Slow => {
                self.soak.add(Count::SlowReads, 1);
                self.book().burst_for = Some(self.id.to_string());
                self.room.wake[1 - self.slot].notify_one();
                let pause = Duration::from_secs_f64(self.rng.range(SLOW_PAUSE));
                Some(Ongoing::SlowRead {
                    until: now + pause,
                    since: now,
                })
            }
            EventKind::Json => {
                self.soak.add(Count::GarbageJson, 1);
                send(Message::text(r#"{"type":"soak/data","value":"#))
                    .then_some(Ongoing::AwaitError { deadline })
            }
            EventKind::Spoof => {
                self.soak.add(Count::GarbageSpoof, 1);
                let spoof = format!(r#"{{"type":"relay/joined","value":{{"id":"{SPOOF_ID}"}}}}"#);
                send(Message::text(spoof)).then_some(Ongoing::AwaitError { deadline })
            }
            EventKind::Binary => {
                self.soak.add(Count::GarbageBinary, 1);
                send(Message::binary(vec![0xff; 32])).then_some(Ongoing::AwaitClose {
                    code: CLOSE_BINARY,
                    deadline,
                })
            }
            EventKind::Oversized => {
                self.soak.add(Count::GarbageOversized, 1);
                let big = format!(
                    r#"{{"type":"soak/big","value":"{}"}}"#,
                    "x".repeat(MAX_FRAME_LEN)
                );
                send(Message::text(big)).then_some(Ongoing::AwaitClose {
                    code: CLOSE_TOO_BIG,
                    deadline,
                })
            }
        };
        if ongoing.is_none() {
            // The writer is full: try again later.
            self.release_room();
        }
        Some(ongoing)
    }

    /// Records the frames sent on this connection, which is being dropped abruptly: a run at
    /// their end may never reach the relay.
    fn dropped(&mut self) {
        let mut book = self.book();
        if let Some(me) = book.sender_mut(&self.id) {
            me.dropped = Some(self.conn_start..me.sent);
        }
    }

    fn on_text(&mut self, text: &str, ongoing: &mut Ongoing) {
        if text.starts_with(DATA_PREFIX) {
            match parse_data(text) {
                Some((room, sender, seq)) => self.on_data(room, sender, seq),
                None => self.soak.fail(Count::UnexpectedFrames, 1, || {
                    format!("bad data frame {text:.80}")
                }),
            }
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            self.soak.fail(Count::UnexpectedFrames, 1, || {
                format!("not JSON: {text:.80}")
            });
            return;
        };
        let id = v["value"]["id"].as_str().unwrap_or_default();
        match v["type"].as_str().unwrap_or_default() {
            "relay/joined" | "relay/left" if id == SPOOF_ID => {
                self.soak.fail(Count::SpoofsForwarded, 1, || {
                    format!("{} {} got {text:.80}", self.room.name, self.id)
                });
            }
            "relay/joined" => {
                self.partner = Some(id.to_owned());
                let mut book = self.book();
                if let Some(me) = book.sender_mut(&self.id) {
                    me.must_from.insert(id.to_owned(), me.alone_from);
                }
            }
            "relay/left" => self.on_left(id),
            "error" => {
                let value = v["value"].as_str().unwrap_or_default();
                if value.starts_with("soak/data: mailbox full") {
                    self.soak.add(Count::MailboxRefused, 1);
                    if let Some(me) = self.book().sender_mut(&self.id) {
                        me.mailbox_refused = true;
                    }
                } else if let Ongoing::AwaitError { .. } = ongoing {
                    *ongoing = Ongoing::None;
                    self.release_room();
                } else {
                    self.soak.fail(Count::UnexpectedErrors, 1, || {
                        format!("{} {} got {text:.120}", self.room.name, self.id)
                    });
                }
            }
            _ => self.soak.fail(Count::UnexpectedFrames, 1, || {
                format!("{} {} got {text:.120}", self.room.name, self.id)
            }),
        }
    }

    /// `relay/left`: everything the peer sent before it left must have arrived.
    fn on_left(&mut self, id: &str) {
        let tracker = self.trackers.remove(id);
        let book = lock(&self.room.book);
        if let Some(t) = &tracker {
            self.settle_opening(&book, id, t);
        }
        if let Some(sender) = book.sender(id) {
            self.account_missing(sender, tracker.as_ref(), "left");
        }
        drop(book);
        self.left.insert(id.to_owned());
        if self.partner.as_deref() == Some(id) {
            self.now_alone();
        }
    }

    fn on_data(&mut self, room: &str, sender: &str, seq: u64) {
        self.soak.add(Count::FramesReceived, 1);
        let where_ = || format!("{} {} from {sender} seq {seq}", self.room.name, self.id);
        if room != &*self.room.name || sender == &*self.id {
            self.soak.fail(Count::CrossRoom, 1, || {
                format!("{} (room {room})", where_())
            });
            return;
        }
        if self.left.contains(sender) {
            self.soak.fail(Count::LateFrames, 1, where_);
            return;
        }
        let book = lock(&self.room.book);
        let Some(book_sender) = book.sender(sender) else {
            drop(book);
            self.soak.fail(Count::CrossRoom, 1, || {
                format!("{}: unknown sender", where_())
            });
            return;
        };
        let dropped = book_sender.dropped.clone();
        let tracker = self
            .trackers
            .entry(sender.to_owned())
            .or_insert_with(|| Tracker::new(book_sender));
        drop(book);
        let soak = &self.soak;
        if let Some(opening) = tracker.opening.take() {
            if seq < opening.from {
                tracker.next = seq + 1;
                soak.fail(Count::Duplicates, 1, || {
                    format!("{}: an earlier receiver got it", where_())
                });
                return;
            }
            let at_drop = tracker.excuse_upto.is_some_and(|u| seq <= u)
                || dropped.is_some_and(|d| seq == d.end && opening.from >= d.start);
            let excused = opening.account(soak, seq, at_drop, || {
                format!("{}: first frame, expected {}", where_(), opening.from)
            });
            tracker.first = Some((seq, excused));
            tracker.next = seq + 1;
            tracker.excuse_upto = None;
            return;
        }
        if seq == tracker.next {
            tracker.next += 1;
            tracker.excuse_upto = None;
        } else if seq < tracker.next {
            match tracker.gaps.iter().position(|g| g.contains(&seq)) {
                Some(_) => soak.fail(Count::OutOfOrder, 1, || {
                    format!("{}: after {}", where_(), tracker.next - 1)
                }),
                None => soak.fail(Count::Duplicates, 1, || {
                    format!("{}: after {}", where_(), tracker.next - 1)
                }),
            }
        } else {
            let gap = seq - tracker.next;
            let at_drop = tracker.excuse_upto.is_some_and(|u| seq <= u)
                || dropped.is_some_and(|d| seq == d.end && tracker.next >= d.start);
            if at_drop {
                soak.add(Count::LostAtDrop, gap);
            } else {
                soak.fail(Count::Losses, gap, || {
                    format!(
                        "{}: expected {} ({})",
                        where_(),
                        tracker.next,
                        match tracker.excuse_upto {
                            Some(upto) =>
                                format!("first frame since a resume, which excused up to {upto}"),
                            None => "on the same connection".to_owned(),
                        }
                    )
                });
                if tracker.gaps.len() >= 8 {
                    tracker.gaps.remove(0);
                }
                tracker.gaps.push(tracker.next..seq);
            }
            tracker.next = seq + 1;
            tracker.excuse_upto = None;
        }
    }

    /// Whether everything the other peers of the room sent has arrived, but for a run the
    /// final check counts as lost at a drop (see [`Self::lost_at_drop`]): no data is sent while
    /// draining, so such a run never arrives, and waiting for it would never end.
    fn caught_up(&self) -> bool {
        self.waiting_for().is_none()
    }

    /// The first other peer of the room whose frames have not all arrived (see
    /// [`Self::caught_up`]): its id, what this receiver expects next and what it sent.
    fn waiting_for(&self) -> Option<(String, u64, u64)> {
        let book = self.book();
        book.senders
            .iter()
            .filter(|s| !s.gone && *s.id != *self.id && !self.left.contains(&s.id))
            .find_map(|s| {
                let tracker = self.trackers.get(&s.id);
                let next = self.expected_next(s);
                let done = next >= s.sent || Self::lost_at_drop(s, tracker, next);
                (!done).then(|| (s.id.clone(), next, s.sent))
            })
    }

    /// Whether the frames of `sender` from `next` on, all it has sent, are a run lost at a
    /// drop: in flight to this receiver's dropped connection (up to the tracker's excuse), or
    /// the last the sender handed to a connection it then dropped abruptly (the drop aborts
    /// the connection's writer, and the relay need not read what reached a reset socket).
    fn lost_at_drop(sender: &Sender, tracker: Option<&Tracker>, next: u64) -> bool {
        tracker
            .and_then(|t| t.excuse_upto)
            .is_some_and(|u| sender.sent <= u)
            || sender
                .dropped
                .as_ref()
                .is_some_and(|d| next >= d.start && sender.sent == d.end)
    }

    fn expected_next(&self, sender: &Sender) -> u64 {
        match self.trackers.get(&sender.id) {
            Some(t) => t.next,
            None => sender
                .must_from
                .get(&*self.id)
                .copied()
                .unwrap_or(sender.undelivered_from),
        }
    }

    /// At the end of a drain that timed out, for a client that was not quiet: why.
    fn not_drained(&self, ongoing: Ongoing) {
        let why = match (ongoing, self.waiting_for()) {
            (Ongoing::None, Some((sender, next, sent))) => {
                format!("waiting for {sender}: expects {next}, it sent {sent}")
            }
            (Ongoing::None, None) => "caught up since the drain ended".to_owned(),
            (ongoing, _) => format!("{ongoing:?}"),
        };
        self.soak.note(format!(
            "not quiet: {} {} (peer {:?}, left {:?}): {why}",
            self.room.name, self.id, self.partner, self.left
        ));
    }

    /// At the end: everything the other peers sent has arrived.
    fn final_check(&self) {
        let book = self.book();
        for sender in book
            .senders
            .iter()
            .filter(|s| !s.gone && *s.id != *self.id && !self.left.contains(&s.id))
        {
            let tracker = self.trackers.get(&sender.id);
            if let Some(t) = tracker {
                self.settle_opening(&book, &sender.id, t);
            }
            self.account_missing(sender, tracker, "at the end");
        }
    }

    /// Counts the frames of `sender`, which sends no more to this receiver (it left, or the
    /// run ended), that did not arrive: lost at a drop when they are the last it sent on a
    /// dropped connection or were in flight to this receiver's dropped one; else losses.
    fn account_missing(&self, sender: &Sender, tracker: Option<&Tracker>, when: &str) {
        let next = match tracker {
            Some(t) => t.next,
            None => {
                // Nothing arrived. What was sent before the sender knew of this receiver went
                // to a receiver that left; from `must_from` on, everything is for this one.
                let opening = Opening::of(sender);
                match sender.must_from.get(&*self.id) {
                    Some(&must_from) => {
                        opening.account(&self.soak, must_from, false, || {
                            format!(
                                "{} {}: {} sent {} before it knew of this peer",
                                self.room.name, self.id, sender.id, must_from
                            )
                        });
                        must_from.max(opening.from)
                    }
                    None => opening.from,
                }
            }
        };
        let missing = sender.sent.saturating_sub(next);
        if missing == 0 {
            return;
        }
        if Self::lost_at_drop(sender, tracker, next) {
            self.soak.add(Count::LostAtDrop, missing);
        } else {
            self.soak.fail(Count::Losses, missing, || {
                format!(
                    "{} {}: {when}, {} sent {}, received up to {next}",
                    self.room.name, self.id, sender.id, sender.sent
                )
            });
        }
    }
}

/// Counts a connection as held while it lives.
struct Held(Arc<Soak>);

impl Held {
    fn new(soak: &Arc<Soak>) -> Self {
        soak.held.fetch_add(1, Ordering::Relaxed);
        Self(soak.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::Relaxed);
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Writes what the client hands it, in order, flushing when nothing more is waiting.
async fn write_loop(mut sink: SplitSink<Ws, Message>, mut rx: mpsc::Receiver<Out>, room: Arc<str>) {
    while let Some(out) = rx.recv().await {
        let written = match out {
            Out::Frame(m) => sink.feed(m).await.is_ok(),
            Out::Burst { id, seqs, pad } => {
                let mut ok = true;
                for seq in seqs {
                    let frame = Message::text(data_frame(&room, &id, seq, pad));
                    if sink.feed(frame).await.is_err() {
                        ok = false;
                        break;
                    }
                }
                ok
            }
        };
        if !written || (rx.is_empty() && sink.flush().await.is_err()) {
            return;
        }
    }
}

fn data_frame(room: &str, id: &str, seq: u64, pad: usize) -> String {
    format!(r#"{DATA_PREFIX}{room}:{id}:{seq}:{}"}}"#, "x".repeat(pad))
}

/// Room, sender and sequence number of a data frame.
fn parse_data(text: &str) -> Option<(&str, &str, u64)> {
    let value = text.strip_prefix(DATA_PREFIX)?.strip_suffix(r#""}"#)?;
    let mut parts = value.splitn(4, ':');
    let room = parts.next()?;
    let sender = parts.next()?;
    let seq = parts.next()?.parse().ok()?;
    Some((room, sender, seq))
}

fn ws_config() -> WebSocketConfig {
    // Small buffers, as `relay_load`'s clients: thousands of them share one process.
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(8 * 1024)
        .max_message_size(Some(MAX_FRAME_LEN))
        .max_frame_size(Some(MAX_FRAME_LEN))
}

/// Connects and waits for the welcome (or the close that refuses the join).
async fn join(
    addr: SocketAddr,
    room: &str,
    resume: Option<&str>,
) -> Result<(Ws, Welcome), JoinError> {
    let attempt = async {
        let failed = |e: &dyn std::fmt::Display| JoinError::Failed(e.to_string());
        let stream = TcpStream::connect(addr).await.map_err(|e| failed(&e))?;
        let _ = stream.set_nodelay(true);
        let url = match resume {
            Some(token) => format!("ws://{addr}/ws?room={room}&resume={token}"),
            None => format!("ws://{addr}/ws?room={room}"),
        };
        let (mut ws, _) =
            tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config()))
                .await
                .map_err(|e| failed(&e))?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    return match parse_welcome(&text) {
                        Some(w) => Ok((ws, w)),
                        None => Err(JoinError::Failed(format!("not a welcome: {text:.80}"))),
                    };
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(JoinError::Refused(
                        frame.map_or(1005, |f| u16::from(f.code)),
                    ));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(failed(&e)),
                None => return Err(JoinError::Failed("closed before the welcome".into())),
            }
        }
    };
    timeout(REPLY_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| Err(JoinError::Failed("no welcome in time".into())))
}

fn parse_welcome(text: &str) -> Option<Welcome> {
    let v: Value = serde_json::from_str(text).ok()?;
    if v["type"] != "relay/welcome" {
        return None;
    }
    let value = &v["value"];
    Some(Welcome {
        id: value["id"].as_str()?.to_owned(),
        token: value["resume"].as_str()?.to_owned(),
        peers: value["peers"]
            .as_array()?
            .iter()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect(),
    })
}

/// SplitMix64: the soak's schedule is reproducible from `--seed` (the timing is not).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn range(&mut self, r: Range<f64>) -> f64 {
        r.start + (r.end - r.start) * self.unit()
    }

    /// Exponentially distributed, with this mean.
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
}

// ---------------------------------------------------------------------------------------------
// The relay process and its memory

struct RelayProc {
    child: Child,
    addr: SocketAddr,
    config: PathBuf,
}

impl RelayProc {
    fn start(bin: &Path, args: &RunArgs) -> Result<Self, Error> {
        let rooms = args.connections / 2;
        let toml = format!(
            "[relay]\nrate_per_sec = 1000\nrate_burst = {}\nresume_grace = {}\nmax_peers = {}\n\
             max_rooms = {}\n[websocket]\nmax_connections = {}\n",
            (2 * args.slow_burst).max(10_000),
            args.resume_grace,
            (2 * args.connections + 1000).max(20_000),
            (rooms + 1000).max(10_000),
            (2 * args.connections + 1000).max(20_000),
        );
        let config = std::env::temp_dir().join(format!("relay_soak-{}.toml", std::process::id()));
        std::fs::write(&config, &toml)?;
        let mut child = Command::new(bin)
            .args(["--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let addr = loop {
            let Some(line) = lines.next() else {
                return Err("the relay ended before listening".into());
            };
            let line = line?;
            eprintln!("relay: {line}");
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.split_whitespace().next().unwrap_or_default().parse()?;
            }
        };
        // Pass the relay's log on (warnings, say).
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                eprintln!("relay: {line}");
            }
        });
        Ok(Self {
            child,
            addr,
            config,
        })
    }
}

impl Drop for RelayProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

/// One sample of the relay's memory.
#[derive(Clone, Copy, Debug)]
struct Sample {
    secs: f64,
    rss_kb: u64,
}

/// Samples the relay's RSS every second (and the soak's counters, into the CSV) until `stop`.
fn sample_rss(
    pid: u32,
    soak: Arc<Soak>,
    csv: Option<PathBuf>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Result<Vec<Sample>, String>> {
    std::thread::spawn(move || {
        let mut file = match &csv {
            Some(path) => {
                let mut f =
                    std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
                writeln!(f, "secs,rss_kb,connections,frames_sent,frames_received")
                    .map_err(|e| e.to_string())?;
                Some(f)
            }
            None => None,
        };
        let start = std::time::Instant::now();
        let mut samples = Vec::new();
        let mut tick = 0u32;
        while !stop.load(Ordering::Relaxed) {
            if let Some(rss_kb) = vm_rss_kb(pid) {
                let secs = start.elapsed().as_secs_f64();
                samples.push(Sample { secs, rss_kb });
                if let Some(f) = &mut file {
                    writeln!(
                        f,
                        "{secs:.1},{rss_kb},{},{},{}",
                        soak.held.load(Ordering::Relaxed),
                        soak.get(Count::FramesSent),
                        soak.get(Count::FramesReceived)
                    )
                    .map_err(|e| e.to_string())?;
                }
            }
            tick += 1;
            let next = start + Duration::from_secs(u64::from(tick));
            std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
        }
        Ok(samples)
    })
}

fn read_csv(path: &Path) -> Result<Vec<Sample>, Error> {
    let text = std::fs::read_to_string(path)?;
    let mut samples = Vec::new();
    for line in text.lines().skip(1) {
        let mut fields = line.split(',');
        let (Some(secs), Some(rss)) = (fields.next(), fields.next()) else {
            continue;
        };
        samples.push(Sample {
            secs: secs.parse()?,
            rss_kb: rss.parse()?,
        });
    }
    Ok(samples)
}

/// The RSS over time as a text plot: each column the largest sample of its time slice.
fn plot(samples: &[Sample], width: usize, height: usize) -> String {
    let (width, height) = (width.max(8), height.max(2));
    let Some(last) = samples.last() else {
        return "(no samples)\n".to_owned();
    };
    let mib = |kb: u64| kb as f64 / 1024.0;
    let lo = samples.iter().map(|s| s.rss_kb).min().unwrap_or(0);
    let hi = samples.iter().map(|s| s.rss_kb).max().unwrap_or(0);
    let (lo, hi) = (mib(lo).floor(), mib(hi).ceil().max(mib(lo).floor() + 1.0));
    let span = last.secs.max(1.0);
    let mut columns = vec![None::<f64>; width];
    for s in samples {
        let c = ((s.secs / span) * (width - 1) as f64).round() as usize;
        let col = &mut columns[c.min(width - 1)];
        *col = Some(col.map_or(mib(s.rss_kb), |v: f64| v.max(mib(s.rss_kb))));
    }
    // Columns without a sample take their left neighbour's value.
    let mut carry = None;
    for col in &mut columns {
        match col {
            Some(v) => carry = Some(*v),
            None => *col = carry,
        }
    }
    const EIGHTHS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let mut out = String::new();
    for row in (0..height).rev() {
        let label = if row == height - 1 {
            format!("{hi:>7.0} MiB ┤")
        } else if row == 0 {
            format!("{lo:>7.0} MiB ┤")
        } else {
            format!("{:>11} │", "")
        };
        out.push_str(&label);
        for col in &columns {
            let filled = col.map_or(0.0, |v| (v - lo) / (hi - lo) * height as f64);
            let eighths = ((filled - row as f64) * 8.0).round().clamp(0.0, 8.0) as usize;
            out.push(EIGHTHS[eighths]);
        }
        out.push('\n');
    }
    out.push_str(&format!("{:>11} └{}\n", "", "─".repeat(width)));
    let end = format!("{:.0} s", last.secs);
    out.push_str(&format!(
        "{:>13}0 s{}{end}\n",
        "",
        " ".repeat(width.saturating_sub(3 + end.len()))
    ));
    out
}

// ---------------------------------------------------------------------------------------------
// The run

fn run(args: RunArgs) -> Result<bool, Error> {
    if args.connections < 2 || !args.connections.is_multiple_of(2) {
        return Err("--connections must be even (rooms of two)".into());
    }
    let rooms = args.connections / 2;
    if args.rooms.is_some_and(|r| r != rooms) {
        return Err(format!(
            "rooms hold two peers: {} connections make {rooms} rooms",
            args.connections
        )
        .into());
    }
    let relay = match args.addr {
        Some(_) => None,
        None => {
            let bin = match &args.relay_bin {
                Some(bin) => bin.clone(),
                None => std::env::current_exe()?
                    .parent()
                    .ok_or("no directory of the executable")?
                    .join("relay"),
            };
            Some(RelayProc::start(&bin, &args)?)
        }
    };
    let addr = match (&relay, args.addr) {
        (Some(r), _) => r.addr,
        (None, Some(addr)) => addr,
        (None, None) => return Err("no relay".into()),
    };
    let pid = relay.as_ref().map(|r| r.child.id());
    let rss_at_listen = pid.and_then(vm_rss_kb);
    let (phase_tx, phase) = watch::channel(Phase::Ramp);
    let soak = Arc::new(Soak::new(addr, args.clone(), phase, pid));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = pid.map(|pid| sample_rss(pid, soak.clone(), args.rss_csv.clone(), stop.clone()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = std::time::Instant::now();
    let report = rt.block_on(drive(soak.clone(), phase_tx, rooms));
    rt.shutdown_timeout(Duration::from_secs(2));
    let elapsed = started.elapsed();
    let rss_final = pid.and_then(vm_rss_kb);
    stop.store(true, Ordering::Relaxed);
    let samples = match sampler {
        Some(s) => s.join().map_err(|_| "the sampler panicked")??,
        None => Vec::new(),
    };
    drop(relay);
    let mut out = std::io::stdout().lock();
    let passed = summary(
        &mut out,
        &soak,
        &report,
        &samples,
        rss_at_listen,
        rss_final,
        elapsed,
    )?;
    Ok(passed)
}

/// What the driver saw.
struct Report {
    rooms: usize,
    ramped: usize,
    ramp_secs: f64,
    rss_idle_kb: Option<u64>,
    peak_held: i64,
    held_at_end: i64,
    drained: bool,
    drain_secs: f64,
}

async fn drive(soak: Arc<Soak>, phase: watch::Sender<Phase>, rooms: usize) -> Report {
    let args = &soak.args;
    let tag = std::process::id() % 100_000;
    let ramp = Arc::new(Semaphore::new(RAMP_CONCURRENCY));
    let mut clients = tokio::task::JoinSet::new();
    let start = Instant::now();
    for r in 0..rooms {
        let room = Arc::new(Room {
            name: format!("soak{tag}-{r}").into(),
            book: Mutex::new(Book {
                senders: Vec::new(),
                busy: false,
                free_at: start,
                burst_for: None,
            }),
            wake: [Notify::new(), Notify::new()],
        });
        for slot in 0..2 {
            let client = Client {
                soak: soak.clone(),
                room: room.clone(),
                slot,
                rng: Rng(
                    args.seed ^ ((r as u64) << 1 | slot as u64).wrapping_mul(0x2545_f491_4f6c_dd1d)
                ),
                phase: soak.phase.clone(),
                id: "".into(),
                token: String::new(),
                trackers: HashMap::new(),
                left: HashSet::new(),
                partner: None,
                alone_sent: 0,
                conn_start: 0,
                next_event: start,
            };
            clients.spawn(client.run(ramp.clone()));
        }
    }
    let total = rooms * 2;
    let mut last_note = Instant::now();
    while soak.ramped.load(Ordering::Relaxed) + soak.retired.load(Ordering::Relaxed) < total {
        if last_note.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "relay_soak: {} of {total} joined",
                soak.ramped.load(Ordering::Relaxed)
            );
            last_note = Instant::now();
        }
        sleep(Duration::from_millis(50)).await;
    }
    let ramp_secs = start.elapsed().as_secs_f64();
    let ramped = soak.ramped.load(Ordering::Relaxed);
    sleep(Duration::from_secs(2)).await;
    let rss_idle_kb = soak.relay_pid.and_then(vm_rss_kb);
    eprintln!(
        "relay_soak: {ramped} joined in {ramp_secs:.1} s; traffic for {} s",
        args.duration
    );
    let _ = phase.send(Phase::Traffic);
    let traffic_end = Instant::now() + Duration::from_secs_f64(args.duration);
    let mut peak_held = 0;
    let mut next_note = Instant::now() + Duration::from_secs(30);
    while Instant::now() < traffic_end {
        peak_held = peak_held.max(soak.held.load(Ordering::Relaxed));
        if Instant::now() >= next_note {
            next_note += Duration::from_secs(30);
            eprintln!(
                "relay_soak: {:.0} s: held {} sent {} received {} losses {}",
                args.duration - (traffic_end - Instant::now()).as_secs_f64(),
                soak.held.load(Ordering::Relaxed),
                soak.get(Count::FramesSent),
                soak.get(Count::FramesReceived),
                soak.get(Count::Losses)
            );
        }
        sleep(Duration::from_millis(100)).await;
    }
    let held_at_end = soak.held.load(Ordering::Relaxed);
    let _ = phase.send(Phase::Draining);
    let drain_start = Instant::now();
    let drain_end = drain_start + Duration::from_secs_f64(args.drain_timeout);
    let mut drained = false;
    while Instant::now() < drain_end {
        let live = total - soak.retired.load(Ordering::Relaxed);
        if soak.quiet.load(Ordering::Relaxed) >= live as i64 {
            drained = true;
            break;
        }
        sleep(Duration::from_millis(100)).await;
    }
    let drain_secs = drain_start.elapsed().as_secs_f64();
    let _ = phase.send(Phase::Final);
    let final_end = Instant::now() + Duration::from_secs(10);
    while soak.done.load(Ordering::Relaxed) + soak.retired.load(Ordering::Relaxed) < total
        && Instant::now() < final_end
    {
        sleep(Duration::from_millis(50)).await;
    }
    clients.abort_all();
    Report {
        rooms,
        ramped,
        ramp_secs,
        rss_idle_kb,
        peak_held,
        held_at_end,
        drained,
        drain_secs,
    }
}

fn summary(
    out: &mut impl std::io::Write,
    soak: &Soak,
    report: &Report,
    samples: &[Sample],
    rss_at_listen: Option<u64>,
    rss_final: Option<u64>,
    elapsed: Duration,
) -> Result<bool, Error> {
    let args = &soak.args;
    writeln!(out, "# relay_soak summary")?;
    writeln!(
        out,
        "setup: connections={} rooms={} duration={}s rate={}/s event_every={}s slow_burst={}x{}B \
         resume_grace={}s seed={} wall={:.0}s",
        args.connections,
        report.rooms,
        args.duration,
        args.rate,
        args.event_every,
        args.slow_burst,
        args.slow_frame_bytes,
        args.resume_grace,
        args.seed,
        elapsed.as_secs_f64()
    )?;
    writeln!(
        out,
        "connections: joined_in_ramp={} ramp={:.1}s peak_held={} held_at_end_of_traffic={} \
         drained={} drain={:.1}s",
        report.ramped,
        report.ramp_secs,
        report.peak_held,
        report.held_at_end,
        report.drained,
        report.drain_secs
    )?;
    let line = |filter: &dyn Fn(Count) -> bool| {
        Count::ALL
            .iter()
            .filter(|c| filter(**c))
            .map(|c| format!("{}={}", c.name(), soak.get(*c)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    use Count::*;
    writeln!(
        out,
        "frames: {}",
        line(&|c| matches!(c, FramesSent | FramesReceived | SlowBurstFrames))
    )?;
    writeln!(out, "checks: {}", line(&|c| c.is_failure()))?;
    writeln!(
        out,
        "explained: {}",
        line(&|c| matches!(c, LostAtDrop | LostToDeparted | MailboxRefused))
    )?;
    // Every frame sent is received, or counted as lost (explained or not); duplicates are
    // received twice.
    let accounted = (soak.get(FramesReceived)
        + soak.get(Losses)
        + soak.get(LostAtDrop)
        + soak.get(LostToDeparted)
        + soak.get(MailboxRefused))
    .saturating_sub(soak.get(Duplicates)) as i64;
    let unaccounted = soak.get(FramesSent) as i64 - accounted;
    writeln!(out, "unaccounted={unaccounted}")?;
    writeln!(
        out,
        "events: {}",
        line(&|c| matches!(
            c,
            Resumes
                | Leaves
                | CloseLeaves
                | SlowReads
                | GarbageJson
                | GarbageSpoof
                | GarbageBinary
                | GarbageOversized
                | GarbageResumeRefused
                | RoomFullRetries
        ))
    )?;
    let closes = lock(&soak.closes)
        .iter()
        .map(|(code, n)| format!("{code}={n}"))
        .collect::<Vec<_>>()
        .join(" ");
    writeln!(out, "closes_seen_by_clients: {closes}")?;
    if let Some(listen) = rss_at_listen {
        let min = samples.iter().map(|s| s.rss_kb).min().unwrap_or(0);
        let max = samples.iter().map(|s| s.rss_kb).max().unwrap_or(0);
        let idle = report.rss_idle_kb;
        let per_conn = idle.map_or(0.0, |i| {
            (i.saturating_sub(listen) * 1024) as f64 / report.ramped.max(1) as f64
        });
        writeln!(
            out,
            "rss_kb: at_listen={listen} idle_after_ramp={} idle_per_connection={per_conn:.0}B \
             min={min} max={max} final={} samples={}",
            idle.unwrap_or(0),
            rss_final.unwrap_or(0),
            samples.len()
        )?;
        write!(out, "{}", plot(samples, 72, 12))?;
    }
    let notes = lock(&soak.notes);
    if !notes.is_empty() {
        writeln!(out, "failures (the first {}):", notes.len())?;
        for n in notes.iter() {
            writeln!(out, "  {n}")?;
        }
    }
    let failed: u64 = Count::ALL
        .iter()
        .filter(|c| c.is_failure())
        .map(|c| soak.get(*c))
        .sum();
    let passed =
        failed == 0 && unaccounted == 0 && report.drained && report.ramped == args.connections;
    writeln!(out, "result={}", if passed { "pass" } else { "FAIL" })?;
    out.flush()?;
    Ok(passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soak() -> Soak {
        let (_tx, phase) = watch::channel(Phase::Ramp);
        let args = match Args::try_parse_from(["relay_soak", "run"])
            .expect("defaults")
            .command
        {
            Cmd::Run(args) => args,
            Cmd::Plot { .. } => unreachable!("parsed `run`"),
        };
        Soak::new(([127, 0, 0, 1], 1).into(), args, phase, None)
    }

    #[test]
    fn data_frames_round_trip_and_others_do_not_parse() {
        let frame = data_frame("soak1-7", "p12", 345, 10);
        assert_eq!(parse_data(&frame), Some(("soak1-7", "p12", 345)));
        assert_eq!(parse_data(r#"{"type":"soak/data","value":"a:b"}"#), None);
        assert_eq!(parse_data(r#"{"type":"soak/data","value":"#), None);
        assert_eq!(
            parse_data(r#"{"type":"relay/left","value":{"id":"p1"}}"#),
            None
        );
    }

    #[test]
    fn a_first_frame_after_a_gap_is_a_loss_unless_a_departure_or_drop_explains_it() {
        let opening = |departure| Opening {
            from: 5,
            departure,
            mailbox_refused: false,
        };
        let s = soak();
        // No gap: nothing counted.
        assert_eq!(opening(None).account(&s, 5, false, String::new), 0);
        assert_eq!(s.get(Count::Losses), 0);
        // After a peer that left with relay/leave, nothing may be missing.
        opening(Some(Departure::Leave)).account(&s, 8, false, String::new);
        assert_eq!(s.get(Count::Losses), 3);
        // After a peer that closed (and kept its grace), the gap went with it.
        let excused = opening(Some(Departure::Closed)).account(&s, 8, false, String::new);
        assert_eq!((excused, s.get(Count::LostToDeparted)), (3, 3));
        // In flight at a drop.
        opening(Some(Departure::Leave)).account(&s, 7, true, String::new);
        assert_eq!((s.get(Count::LostAtDrop), s.get(Count::Losses)), (2, 3));
    }

    #[test]
    fn the_plot_spans_min_to_max_over_the_whole_run() {
        let samples: Vec<Sample> = (0..100u32)
            .map(|i| Sample {
                secs: f64::from(i),
                rss_kb: 10_240 + u64::from(i) * 103,
            })
            .collect();
        let text = plot(&samples, 40, 5);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 7);
        assert!(lines[0].starts_with("     20 MiB"), "{text}");
        assert!(lines[4].starts_with("     10 MiB"), "{text}");
        assert!(lines[6].ends_with("99 s"), "{text}");
        // Rising: the last column is full in every row, the first only at the bottom.
        assert!(lines[..5].iter().all(|l| l.ends_with('█')), "{text}");
        assert!(lines[0].chars().nth(13) == Some(' '), "{text}");
        assert_eq!(plot(&[], 40, 5), "(no samples)\n");
    }
}
