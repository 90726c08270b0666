//! The relay driver: runs the sans-IO [`Relay`] of `signaling-core` over connections of any
//! transport. The relay's own types (configuration, join requests, close codes, the wire
//! protocol's documentation) are re-exported here from `signaling_core::relay`.
//!
//! [`RelayHandle`] is cheap to clone. For each accepted connection, of whatever transport, call
//! [`RelayHandle::serve`] (usually in its own task): it joins the room the connection asks for,
//! then handles its frames strictly in order, one at a time, until it ends. One timer task
//! serves the relay's timers.
//!
//! A connection's frames that arrive together (up to [`DriverConfig::burst`], taken with
//! [`Transport::try_recv`]) are handled together: one lock of the relay, one clock read, and
//! their forwards leave with one flush per receiver. After such a burst the task yields, so
//! that the receivers write it out while the next one is read.
//!
//! # Backpressure
//!
//! Each connection has an outgoing queue. When the relay's forwards fill a receiver's queue to
//! [`DriverConfig::send_queue`], the sender's task stops reading its socket until the receiver
//! has written the queue below that bound again, so TCP pushes back on the sender, as it would
//! through a plain forwarder, and nothing accepted is dropped while both sides keep reading.
//! A task keeps writing its own queue while it waits, so two peers flooding each other never
//! wait on one another.
//!
//! A receiver that takes nothing from its queue for [`DriverConfig::write_timeout`] while a
//! sender waits on it is a slow consumer: it is closed with [`close_code::SLOW_CONSUMER`] (its
//! peer may resume), and the senders read again. As a safety net, a queue that reaches four
//! times `send_queue` (the relay's own notices do not wait for room) closes its connection as a
//! slow consumer at once.
//!
//! In a room of more than two, a sender waits for every receiver of its last burst that is at
//! its bound (a frame with `to` only for that peer), so one slow reader slows the senders of
//! its room, for at most the write timeout, and no one else: other rooms never wait on it. Each
//! sender stops after the burst that filled a queue, so a queue holds at most `send_queue`
//! plus one [burst](DriverConfig::burst) per other member of the room (and the relay's
//! notices).
//!
//! # Leaving
//!
//! How a connection ends decides what the relay does with its peer: a clean end
//! ([`Transport::recv`] returns `Ok(None)`; for a WebSocket, a close frame with 1000 or 1001) is
//! a leave ([`Disconnect::Clean`]: the others hear `relay/left` at once and the place is free);
//! an error (reset or end without a close frame, another close code, a ping timeout, a failed
//! write) is a lost connection ([`Disconnect::Lost`]), whose peer may resume within
//! [`RelayConfig::resume_grace`].
//!
//! # Shutting down
//!
//! [`RelayHandle::shutdown`] ends a relay gracefully: every connection stops reading, writes out
//! what the relay had queued for it and closes with 1001 (going away), all within one drain
//! time; connections that [`serve`](RelayHandle::serve) is given afterwards are closed with 1001
//! at once. Stop accepting connections first (drop your listener), then await `shutdown`:
//!
//! ```no_run
//! # use std::time::Duration;
//! # use signaling::relay::RelayHandle;
//! # async fn demo(relay: RelayHandle) {
//! // On SIGTERM, after the accept loop has stopped:
//! let report = relay.shutdown(Duration::from_secs(5)).await;
//! println!(
//!     "closed {} of {} connections, cut {}, dropped {} frames",
//!     report.closed, report.connections, report.cut, report.dropped_frames
//! );
//! # }
//! ```
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::Duration;

use rustc_hash::FxHashMap;
use tokio::sync::{watch, Notify};
use tokio::time::Instant as TokioInstant;

use signaling_core::config::InvalidSetting;
pub use signaling_core::relay::*;

use crate::session::{now, sleep_until};
use crate::transport::{CloseCode, CloseReason, Frame, PeerInfo, Transport, TrySendError};

/// Settings of the driver (the relay's own are in [`RelayConfig`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DriverConfig {
    /// Frames waiting to be written to one connection at which the peers forwarding to it stop
    /// reading until it has written some (see [Backpressure](self#backpressure)). A queue that
    /// reaches four times this bound closes its connection as a slow consumer. Default: 256.
    pub send_queue: usize,
    /// How long a connection that senders wait on may take nothing from its queue before it is
    /// closed as a slow consumer. Default: 10 s.
    pub write_timeout: Duration,
    /// Frames of one connection that arrived together and are handled together (under one
    /// lock of the relay), at most, before its task yields to the receivers' writers. Larger
    /// bursts mean fewer, larger writes; a burst much larger than a client's window of frames
    /// in flight stops reading and writing from overlapping (at 128, one pair of peers
    /// streaming with 128 frames in flight was forwarded at about half the rate). Keep it well
    /// below [`send_queue`](Self::send_queue): a queue may exceed its bound by one burst per
    /// sender, and four times the bound closes it. Default: 64.
    pub burst: usize,
    /// Frames written to one connection with one flush, at most. The transport still writes
    /// to the socket whenever its own buffer fills (see its configuration); what this bounds
    /// is how long the flush of a queue that keeps filling can wait. Default: 256 (a whole
    /// default queue: the writer drains it and flushes once).
    pub write_batch: usize,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            send_queue: 256,
            write_timeout: Duration::from_secs(10),
            burst: 64,
            write_batch: 256,
        }
    }
}

impl DriverConfig {
    /// Refuses settings that cannot work: a `send_queue`, `burst` or `write_batch` of 0. (A
    /// `burst` above `send_queue` works, but makes slow consumers of receivers that keep up:
    /// see [`burst`](Self::burst).)
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        InvalidSetting::check_nonzero(
            "send_queue",
            self.send_queue as u64,
            "every connection would be a slow consumer",
        )?;
        InvalidSetting::check_nonzero("burst", self.burst as u64, "no frame would be read")?;
        InvalidSetting::check_nonzero(
            "write_timeout",
            self.write_timeout
                .as_millis()
                .try_into()
                .unwrap_or(u64::MAX),
            "every connection that is written to would be a slow consumer",
        )?;
        InvalidSetting::check_nonzero(
            "write_batch",
            self.write_batch as u64,
            "no frame would be written",
        )?;
        Ok(())
    }
}

/// What the relay has for one connection: a bounded queue of frames, and a close that does not
/// wait behind that queue (a slow consumer's queue is full by definition). A plain deque behind
/// a lock, with one wake-up: an idle connection costs a few dozen bytes here, where a channel
/// would allocate its first block of slots up front.
#[derive(Default)]
struct Outbox {
    state: Mutex<OutState>,
    /// Wakes the connection's task: frames were put into an empty queue, or a close is asked.
    wake: Notify,
    /// Wakes the senders waiting for room: the task took frames out, or the connection ended.
    room: Notify,
}

#[derive(Default)]
struct OutState {
    frames: VecDeque<Frame>,
    /// Close at once: what is queued goes out only as far as the transport takes it without
    /// waiting.
    close: Option<CloseReason>,
    /// The relay is shutting down: write out what is queued, then close with 1001, all before
    /// this instant.
    shutdown: Option<TokioInstant>,
    /// When the task last took frames out (or the queue last became non-empty).
    progress: Option<TokioInstant>,
    /// The connection has ended: nobody waits on it any more.
    ended: bool,
    /// Frames taken out of the queue and dropped unwritten (by a close that did not wait).
    dropped: usize,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, OutState> {
        // Every mutation completes before the lock is released.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn close_requested(&self) -> Option<CloseReason> {
        self.lock().close.take()
    }

    fn shutdown_deadline(&self) -> Option<TokioInstant> {
        self.lock().shutdown
    }
}

struct Slot {
    outbox: Arc<Outbox>,
    /// Where senders stop ([`DriverConfig::send_queue`]).
    bound: usize,
}

impl Slot {
    /// Where the connection is closed at once.
    fn limit(&self) -> usize {
        self.bound.saturating_mul(4)
    }
}

/// The receivers at their bound after a sender's burst, which the sender waits on.
type Blocked = Vec<(ConnId, Arc<Outbox>, usize)>;

struct Shared {
    relay: Relay,
    conns: FxHashMap<ConnId, Slot>,
    next_conn: u64,
    /// The relay's next timer, for the timer task.
    deadline: watch::Sender<Option<TokioInstant>>,
    /// The last deadline sent on `deadline`.
    last_deadline: Option<std::time::Instant>,
    /// Set once [`RelayHandle::shutdown`] has begun.
    shutdown: Option<Shutdown>,
    /// Frames dropped from connections' queues unwritten (see [`RelayStatus::dropped_frames`]).
    dropped: u64,
}

/// A shutdown in progress (or over).
struct Shutdown {
    deadline: TokioInstant,
    report: ShutdownReport,
    /// The connections still being served, for the `shutdown` futures waiting for none.
    remaining: watch::Sender<usize>,
}

/// How long [`RelayHandle::shutdown`] waits past the drain time for the tasks of connections
/// cut off at the deadline to end (they end as soon as they run: dropping a transport does not
/// wait).
pub const SHUTDOWN_MARGIN: Duration = Duration::from_millis(100);

/// What [`RelayHandle::shutdown`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Connections being served when the shutdown began.
    pub connections: usize,
    /// Of those, the ones closed with 1001 (going away) after everything the relay had queued
    /// for them was written, within the drain time.
    pub closed: usize,
    /// Of those, the ones that ended otherwise: cut off when the drain time ran out (a peer
    /// that did not read what was queued for it, or did not answer the close), or ended by
    /// their transport failing or their peer closing first.
    pub cut: usize,
    /// Frames the relay still held for the cut connections, which were dropped.
    pub dropped_frames: usize,
    /// Of the connections, the ones whose task had not ended when `shutdown` returned: a `serve` future
    /// that is not being polled, or a runtime too busy to run it within
    /// [`SHUTDOWN_MARGIN`]. They end as soon as their task runs.
    pub unfinished: usize,
    /// Connections handed to [`serve`](RelayHandle::serve) after the shutdown began, closed
    /// with 1001 at once.
    pub refused: usize,
}

/// A snapshot of a running relay, from [`RelayHandle::status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStatus {
    /// The relay's counters.
    pub stats: RelayStats,
    /// Peers, connected or waiting to resume.
    pub peers: usize,
    /// Rooms.
    pub rooms: usize,
    /// Connections being served (joined, not yet ended).
    pub connections: usize,
    /// Frames the relay had queued for a connection that ended before writing them: one closed
    /// by the relay (a slow consumer, a broken limit) or lost (reset, failed write), or cut
    /// off by a shutdown. Counted when the connection ends; the relay's own counters
    /// ([`RelayStats::forwarded`]) count these frames as sent.
    pub dropped_frames: u64,
    /// Whether [`RelayHandle::shutdown`] has begun.
    pub shutting_down: bool,
}

/// A running relay. Clone it into each connection's task.
#[derive(Clone)]
pub struct RelayHandle {
    shared: Arc<Mutex<Shared>>,
    config: DriverConfig,
}

impl std::fmt::Debug for RelayHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("RelayHandle")
            .field("peers", &s.relay.peer_count())
            .field("rooms", &s.relay.room_count())
            .field("connections", &s.conns.len())
            .finish()
    }
}

impl RelayHandle {
    /// Starts a relay (and its timer task) on the current tokio runtime.
    pub fn new(config: RelayConfig, driver: DriverConfig) -> Self {
        let (deadline, mut deadline_rx) = watch::channel(None);
        let shared = Arc::new(Mutex::new(Shared {
            relay: Relay::new(config),
            conns: FxHashMap::default(),
            next_conn: 0,
            deadline,
            last_deadline: None,
            shutdown: None,
            dropped: 0,
        }));
        // The timer task holds the relay weakly and ends with the last handle (which drops the
        // watch sender).
        let weak = Arc::downgrade(&shared);
        tokio::spawn(async move {
            loop {
                let next = *deadline_rx.borrow_and_update();
                tokio::select! {
                    changed = deadline_rx.changed() => if changed.is_err() { return },
                    () = sleep_until(next) => {
                        let Some(shared) = weak.upgrade() else { return };
                        let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
                        if s.shutdown.is_some() {
                            // Connections close with 1001 now, not for being idle.
                            return;
                        }
                        s.relay.handle_timeout(now());
                        dispatch(&mut s, None);
                    }
                }
            }
        });
        Self {
            shared,
            config: driver,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // The relay's state stays consistent across a panic in another connection's task
        // (every mutation completes before the lock is released), so a poisoned lock is usable.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `room` has peers (connected or waiting to resume) or frames waiting in its
    /// mailbox.
    pub fn room_in_use(&self, room: &str) -> bool {
        self.lock().relay.room_in_use(room)
    }

    /// Numbers the peers that join from now on from `first` at least: see
    /// [`Relay::number_peers_from`].
    pub fn number_peers_from(&self, first: u64) {
        self.lock().relay.number_peers_from(first);
    }

    /// Runs one connection: joins the room its request names (see
    /// [`join_request_from_peer`]), then relays its frames until it ends. Returns when the
    /// connection is over. Dropping the future ends the connection as if its transport had
    /// failed (its peer keeps its place for the resume grace).
    ///
    /// After [`shutdown`](Self::shutdown) has begun, the connection is closed with 1001 at once.
    pub async fn serve<T: Transport>(&self, mut transport: T, request: JoinRequest) {
        let outbox = Arc::new(Outbox::default());
        let joined = {
            let mut s = self.lock();
            if let Some(shutdown) = &mut s.shutdown {
                shutdown.report.refused += 1;
                Err(Refused::ShuttingDown(shutdown.deadline))
            } else {
                s.next_conn += 1;
                let conn = ConnId(s.next_conn);
                s.conns.insert(
                    conn,
                    Slot {
                        outbox: outbox.clone(),
                        bound: self.config.send_queue.max(1),
                    },
                );
                let joined = s.relay.join(now(), conn, request).map(|_| conn);
                if joined.is_err() {
                    s.conns.remove(&conn);
                }
                dispatch(&mut s, None);
                joined.map_err(Refused::Relay)
            }
        };
        let conn = match joined {
            Ok(conn) => conn,
            Err(Refused::Relay(reason)) => {
                tracing::debug!(%reason, "join refused");
                let _ = transport.close(reason).await;
                return;
            }
            Err(Refused::ShuttingDown(deadline)) => {
                tracing::debug!("join refused: shutting down");
                let close = transport.close(going_away());
                let _ = tokio::time::timeout_at(deadline, close).await;
                return;
            }
        };
        // From here on, the connection gives its place up however `serve` ends.
        let mut served = Served {
            handle: self,
            conn,
            outbox: &outbox,
            ended: Some(Disconnect::Lost),
            drained: false,
        };
        match self.relay_frames(&mut transport, conn, &outbox).await {
            Ended::Lost => {}
            Ended::Left => served.ended = Some(Disconnect::Clean),
            Ended::Closed => served.ended = None,
            Ended::ShuttingDown(deadline) => {
                served.ended = None;
                served.drained = drain(&mut transport, &outbox, deadline).await;
            }
        }
    }

    /// Relays one joined connection's frames (in) and what the relay has for it (out) until
    /// it ends.
    async fn relay_frames<T: Transport>(
        &self,
        transport: &mut T,
        conn: ConnId,
        outbox: &Outbox,
    ) -> Ended {
        let mut burst: Vec<Frame> = Vec::new();
        let mut blocked: Blocked = Vec::new();
        let burst_max = self.config.burst.max(1);
        let write_batch = self.config.write_batch.max(1);
        loop {
            tokio::select! {
                biased;
                () = outbox.wake.notified() => {
                    match write_queue(transport, outbox, write_batch).await {
                        Wrote::Idle => {}
                        Wrote::Failed => return Ended::Lost,
                        Wrote::Close(reason) => {
                            let _ = transport.close(reason).await;
                            return Ended::Closed;
                        }
                        Wrote::ShuttingDown(deadline) => return Ended::ShuttingDown(deadline),
                    }
                }
                // A sender waiting for room reads nothing: TCP pushes back on its peer.
                () = wait_for_room(&blocked, self.config.write_timeout), if !blocked.is_empty() => {
                    self.unblock(&mut blocked);
                }
                frame = transport.recv(), if blocked.is_empty() => {
                    let mut end = match frame {
                        Ok(Some(frame)) => {
                            burst.push(frame);
                            None
                        }
                        Ok(None) => Some(None),
                        Err(e) => Some(Some(e)),
                    };
                    // Take the frames that are already here, without waiting: they are handled
                    // under one lock and one clock read, and their forwards leave together.
                    while end.is_none() && burst.len() < burst_max {
                        match transport.try_recv() {
                            Poll::Ready(Ok(Some(frame))) => burst.push(frame),
                            Poll::Ready(Ok(None)) => end = Some(None),
                            Poll::Ready(Err(e)) => end = Some(Some(e)),
                            Poll::Pending => break,
                        }
                    }
                    let full = burst.len() >= burst_max;
                    if !burst.is_empty() {
                        let mut s = self.lock();
                        let now = now();
                        for frame in burst.drain(..) {
                            s.relay.handle_frame(now, conn, frame);
                        }
                        dispatch(&mut s, Some(&mut blocked));
                    }
                    match end {
                        // The peer closed cleanly (1000 or 1001): it left.
                        Some(None) => return Ended::Left,
                        Some(Some(e)) => {
                            tracing::debug!(%conn, error = %e, "connection lost");
                            return Ended::Lost;
                        }
                        // More may be waiting: let the receivers' tasks write this burst
                        // first, so that reading and writing overlap.
                        None if full => tokio::task::yield_now().await,
                        None => {}
                    }
                }
            }
        }
    }

    /// Forgets the receivers that have room again (or ended), and closes as slow consumers
    /// those that took nothing from their queue for the write timeout.
    fn unblock(&self, blocked: &mut Blocked) {
        let timeout = self.config.write_timeout;
        let mut stalled = Vec::new();
        blocked.retain(|(conn, outbox, bound)| {
            let out = outbox.lock();
            if has_room(&out, *bound) {
                return false;
            }
            if out.progress.is_some_and(|at| at.elapsed() >= timeout) {
                stalled.push(*conn);
                return false;
            }
            true
        });
        if !stalled.is_empty() {
            let mut s = self.lock();
            for conn in stalled {
                tracing::debug!(%conn, "slow consumer: no progress for the write timeout");
                s.relay.slow_consumer(now(), conn);
            }
            dispatch(&mut s, None);
        }
    }

    /// Shuts the relay down gracefully, within `drain`:
    ///
    /// 1. From now on, [`serve`](Self::serve) closes new connections with 1001 at once, and
    ///    the relay's timers stop (no connection is closed as idle any more).
    /// 2. Every connection being served stops reading, writes out what the relay had queued
    ///    for it (frames already read from any peer are still routed and delivered), and
    ///    closes with 1001 (going away), waiting for its peer's close frame as its transport
    ///    does.
    /// 3. At the end of `drain`, connections not done yet are cut off: their transport is
    ///    dropped with what was still queued for it.
    ///
    /// Returns once every connection has ended, and at the latest [`SHUTDOWN_MARGIN`] after
    /// `drain`, with what happened. Stop accepting connections before calling it. The rooms
    /// and peers are not told of each other's departure: the relay is going away as a whole,
    /// and serves nothing more. A second call does not start another shutdown: it waits for
    /// the first and returns its report.
    pub async fn shutdown(&self, drain: Duration) -> ShutdownReport {
        let mut remaining = {
            let mut s = self.lock();
            let s = &mut *s;
            match &s.shutdown {
                Some(shutdown) => shutdown.remaining.subscribe(),
                None => {
                    let deadline = TokioInstant::now() + drain;
                    for slot in s.conns.values() {
                        slot.outbox.lock().shutdown = Some(deadline);
                        slot.outbox.wake.notify_one();
                    }
                    let (remaining, rx) = watch::channel(s.conns.len());
                    s.shutdown = Some(Shutdown {
                        deadline,
                        report: ShutdownReport {
                            connections: s.conns.len(),
                            ..ShutdownReport::default()
                        },
                        remaining,
                    });
                    tracing::debug!(connections = s.conns.len(), ?drain, "shutting down");
                    rx
                }
            }
        };
        let deadline = self
            .lock()
            .shutdown
            .as_ref()
            .map_or_else(TokioInstant::now, |s| s.deadline);
        let all_ended = remaining.wait_for(|n| *n == 0);
        let _ = tokio::time::timeout_at(deadline + SHUTDOWN_MARGIN, all_ended).await;
        let s = self.lock();
        let mut report = s.shutdown.as_ref().map(|s| s.report).unwrap_or_default();
        report.unfinished = s.conns.len();
        report
    }

    /// Counters and sizes, for monitoring.
    pub fn status(&self) -> RelayStatus {
        let s = self.lock();
        RelayStatus {
            stats: s.relay.stats(),
            peers: s.relay.peer_count(),
            rooms: s.relay.room_count(),
            connections: s.conns.len(),
            dropped_frames: s.dropped,
            shutting_down: s.shutdown.is_some(),
        }
    }
}

/// Why a connection did not join.
enum Refused {
    /// The relay refused it, with this close reason.
    Relay(CloseReason),
    /// The relay is shutting down; the drain ends at this instant.
    ShuttingDown(TokioInstant),
}

/// How a joined connection's relaying ended.
enum Ended {
    /// Its transport failed (reset, end without a close frame, a close code other than 1000 or
    /// 1001, a ping timeout, a failed write): its peer may resume.
    Lost,
    /// Its peer closed cleanly: it left.
    Left,
    /// The relay closed it.
    Closed,
    /// The relay is shutting down: write out what is queued and close before this instant.
    ShuttingDown(TokioInstant),
}

/// What writing out a connection's queue came to.
enum Wrote {
    /// The queue was seen empty.
    Idle,
    /// The transport failed.
    Failed,
    /// The relay asks for the connection to be closed with this reason.
    Close(CloseReason),
    /// The relay is shutting down (see [`Ended::ShuttingDown`]).
    ShuttingDown(TokioInstant),
}

/// The close reason of a shutdown.
fn going_away() -> CloseReason {
    CloseReason::new(CloseCode::GOING_AWAY, "server shutting down")
}

/// Writes what the relay queued for a connection until the queue is seen empty (the relay
/// wakes the connection's task only when it puts a frame into an empty queue, or asks for a
/// close).
async fn write_queue<T: Transport>(
    transport: &mut T,
    outbox: &Outbox,
    write_batch: usize,
) -> Wrote {
    loop {
        // Under the queue's lock, frames go to the transport's own queue as far as it takes
        // them without waiting (never more than a write batch); the last of the batch, or one
        // the transport refused, is sent after the lock is released, and its `send` flushes
        // them all.
        let last = {
            let mut out = outbox.lock();
            if let Some(reason) = out.close.take() {
                // What was queued before the close goes out with it, as far as the transport
                // takes it without waiting (a slow consumer's does not).
                while let Some(frame) = out.frames.pop_front() {
                    if transport.try_send(frame).is_err() {
                        // This frame, and those behind it.
                        out.dropped += 1;
                        break;
                    }
                }
                out.dropped += out.frames.len();
                out.frames.clear();
                return Wrote::Close(reason);
            }
            if let Some(deadline) = out.shutdown {
                // The queue is written out by `drain`.
                return Wrote::ShuttingDown(deadline);
            }
            let mut left = out.frames.len().min(write_batch);
            let mut last = None;
            while let Some(frame) = out.frames.pop_front() {
                left = left.saturating_sub(1);
                if left == 0 {
                    last = Some(frame);
                    break;
                }
                match transport.try_send(frame) {
                    Ok(()) => {}
                    // The transport's own queue is full: `send` waits for room.
                    Err(TrySendError::Full(frame)) => {
                        last = Some(frame);
                        break;
                    }
                    Err(_) => return Wrote::Failed,
                }
            }
            if last.is_none() && out.frames.capacity() > 0 {
                // Nothing more to write: an idle connection holds no queue buffer.
                out.frames = VecDeque::new();
            }
            out.progress = Some(TokioInstant::now());
            outbox.room.notify_waiters();
            last
        };
        let Some(last) = last else {
            return Wrote::Idle;
        };
        // A close (a slow consumer's, say) must not wait behind a send that cannot finish.
        let mut send = transport.send(last);
        loop {
            tokio::select! {
                sent = &mut send => {
                    if sent.is_err() {
                        return Wrote::Failed;
                    }
                    break;
                }
                () = outbox.wake.notified() => {
                    if let Some(reason) = outbox.close_requested() {
                        return Wrote::Close(reason);
                    }
                    if let Some(deadline) = outbox.shutdown_deadline() {
                        // The frame being sent is part of what a shutdown delivers: let it
                        // finish within the drain time.
                        return match tokio::time::timeout_at(deadline, &mut send).await {
                            Ok(Err(_)) => Wrote::Failed,
                            Ok(Ok(())) | Err(_) => Wrote::ShuttingDown(deadline),
                        };
                    }
                    // New frames: taken by the next round.
                }
            }
        }
    }
}

/// Writes out what the relay queued for a connection, then closes it with 1001, before
/// `deadline`. `true` if all of it was done in time.
async fn drain<T: Transport>(transport: &mut T, outbox: &Outbox, deadline: TokioInstant) -> bool {
    let drained = async {
        loop {
            // Frames already read from other peers may still be routed here: take them too.
            let next = outbox.lock().frames.pop_front();
            let Some(frame) = next else { break };
            match transport.try_send(frame) {
                Ok(()) => {}
                Err(TrySendError::Full(frame)) => transport.send(frame).await?,
                Err(TrySendError::Failed(e)) => return Err(e),
            }
        }
        // Writes out the transport's own queue first.
        transport.close(going_away()).await
    };
    matches!(tokio::time::timeout_at(deadline, drained).await, Ok(Ok(())))
}

/// A joined connection's place in the relay, given up when its `serve` ends or is dropped.
struct Served<'a> {
    handle: &'a RelayHandle,
    conn: ConnId,
    outbox: &'a Outbox,
    /// How the connection ended, to tell the relay; `None` when the relay closed it.
    ended: Option<Disconnect>,
    /// Closed with 1001 after its queue was written out, in a shutdown.
    drained: bool,
}

impl Drop for Served<'_> {
    fn drop(&mut self) {
        let unwritten = {
            let mut out = self.outbox.lock();
            out.ended = true;
            out.frames.len()
        };
        self.outbox.room.notify_waiters();
        let mut s = self.handle.lock();
        let s = &mut *s;
        s.conns.remove(&self.conn);
        s.dropped += (unwritten + self.outbox.lock().dropped) as u64;
        match &mut s.shutdown {
            Some(shutdown) => {
                if self.drained {
                    shutdown.report.closed += 1;
                } else {
                    shutdown.report.cut += 1;
                    shutdown.report.dropped_frames += unwritten;
                }
                shutdown.remaining.send_replace(s.conns.len());
            }
            None => {
                if let Some(how) = self.ended {
                    s.relay.disconnected(now(), self.conn, how);
                }
            }
        }
        dispatch(s, None);
    }
}

/// Waits until the first receiver in `blocked` may have room: its task took frames out, it
/// ended, or the write timeout since its last progress passed. The caller then looks again
/// ([`RelayHandle::unblock`]).
async fn wait_for_room(blocked: &Blocked, timeout: Duration) {
    let Some((_, outbox, bound)) = blocked.first() else {
        return;
    };
    let notified = outbox.room.notified();
    tokio::pin!(notified);
    // Registered before looking, so that a wake-up between the look and the wait is not lost.
    notified.as_mut().enable();
    let deadline = {
        let out = outbox.lock();
        if has_room(&out, *bound) {
            return;
        }
        out.progress.unwrap_or_else(TokioInstant::now) + timeout
    };
    tokio::select! {
        () = notified => {}
        () = tokio::time::sleep_until(deadline) => {}
    }
}

/// Whether senders waiting on this queue may read again.
fn has_room(out: &OutState, bound: usize) -> bool {
    out.ended || out.close.is_some() || out.shutdown.is_some() || out.frames.len() < bound
}

/// Drains the relay's outputs into the connections' queues. With `blocked`, the receivers
/// whose queue is at its bound are added there (once each), for the sender to wait on.
fn dispatch(s: &mut Shared, mut blocked: Option<&mut Blocked>) {
    // Consecutive frames for one connection (a burst forwarded to the same peer) go into its
    // queue under one lock.
    let mut open: Option<Open<'_>> = None;
    // Connections closed as slow consumers while draining.
    let mut slowed: Vec<ConnId> = Vec::new();
    let Shared {
        relay,
        conns,
        last_deadline,
        deadline,
        dropped,
        ..
    } = s;
    loop {
        match relay.poll_output() {
            RelayOutput::Transmit { conn, frame } => {
                if open.as_ref().is_some_and(|o| o.conn != conn) {
                    open = None;
                }
                if open.is_none() {
                    open = conns.get(&conn).map(|slot| Open::new(conn, slot));
                }
                if slowed.contains(&conn) {
                    // Closed as a slow consumer in this drain: what follows would leave a hole
                    // in its stream.
                    *dropped += 1;
                    continue;
                }
                let Some(o) = open.as_mut() else {
                    // Its connection ended (its task gone) before the relay heard of it.
                    *dropped += 1;
                    continue;
                };
                if o.queue.frames.len() >= o.slot.limit() {
                    open = None;
                    slowed.push(conn);
                    *dropped += 1;
                    relay.slow_consumer(now(), conn);
                    continue;
                }
                if o.queue.frames.is_empty() {
                    o.queue.progress = Some(TokioInstant::now());
                }
                o.queue.frames.push_back(frame);
                if o.queue.frames.len() >= o.slot.bound {
                    if let Some(blocked) = blocked.as_deref_mut() {
                        if !blocked.iter().any(|(c, ..)| *c == conn) {
                            blocked.push((conn, o.slot.outbox.clone(), o.slot.bound));
                        }
                    }
                }
            }
            RelayOutput::Close { conn, reason } => {
                open = None;
                if let Some(slot) = conns.get(&conn) {
                    slot.outbox.lock().close = Some(reason);
                    slot.outbox.wake.notify_one();
                }
            }
            RelayOutput::Timeout(at) => {
                // Most inputs leave the next timer where it was: compare before touching the
                // watch channel (which takes a lock).
                if at != *last_deadline {
                    *last_deadline = at;
                    let at = at.map(TokioInstant::from_std);
                    deadline.send_if_modified(|d| {
                        let changed = *d != at;
                        *d = at;
                        changed
                    });
                }
                return;
            }
        }
    }
}

/// A connection's queue, locked while frames for it are being put in.
struct Open<'a> {
    conn: ConnId,
    slot: &'a Slot,
    queue: MutexGuard<'a, OutState>,
    /// The queue was empty when locked: its task may be asleep.
    was_empty: bool,
}

impl<'a> Open<'a> {
    fn new(conn: ConnId, slot: &'a Slot) -> Self {
        let queue = slot.outbox.lock();
        let was_empty = queue.frames.is_empty();
        Open {
            conn,
            slot,
            queue,
            was_empty,
        }
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        // The connection's task writes until it sees its queue empty, so only frames put into
        // an empty queue need to wake it.
        if self.was_empty && !self.queue.frames.is_empty() {
            // The lock is released right after this, when the guard drops: a task woken on
            // another thread waits at most that long for it.
            self.slot.outbox.wake.notify_one();
        }
    }
}

/// Builds a [`JoinRequest`] from a connection's request: the room from the `room` query
/// parameter, a resume token from `resume`, both percent-decoded; a fresh random token; the
/// current Unix time. `None` when there is no room parameter.
pub fn join_request_from_peer(peer: &PeerInfo) -> Option<JoinRequest> {
    let room = peer.query_value("room")?;
    let mut request = JoinRequest::new(room, fresh_token());
    if let Some(resume) = peer.query_value("resume") {
        request = request.with_resume(resume);
    }
    let unix = std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .map_or(0, |d| d.as_secs());
    Some(request.with_unix_time(unix))
}

/// 16 random bytes from the operating system, hex-encoded.
pub fn fresh_token() -> String {
    let mut bytes = [0u8; 16];
    // Without OS randomness no unguessable token can be made; an all-zero token would be
    // guessable, so fail loudly rather than hand one out.
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    let mut s = String::with_capacity(32);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
