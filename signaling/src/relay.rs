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
//! Each connection has a bounded outgoing queue ([`DriverConfig::send_queue`]). A connection
//! whose queue is full when the relay has something for it is a slow consumer: it is closed
//! with [`close_code::SLOW_CONSUMER`], so that the relay's
//! memory stays bounded whatever the peers do.
//!
//! How a connection ends decides what the relay does with its peer: a clean end
//! ([`Transport::recv`] returns `Ok(None)`; for a WebSocket, a close frame with 1000 or 1001) is
//! a leave ([`Disconnect::Clean`]: the others hear `relay/left` at once and the place is free);
//! an error (reset or end without a close frame, another close code, a ping timeout, a failed
//! write) is a lost connection ([`Disconnect::Lost`]), whose peer may resume within
//! [`RelayConfig::resume_grace`].
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;

use rustc_hash::FxHashMap;
use tokio::sync::{watch, Notify};
use tokio::time::Instant as TokioInstant;

pub use signaling_core::relay::*;

use crate::session::{now, sleep_until};
use crate::transport::{CloseReason, Frame, PeerInfo, Transport, TrySendError};

/// Settings of the driver (the relay's own are in [`RelayConfig`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DriverConfig {
    /// Frames waiting to be written to one connection before it counts as a slow consumer.
    /// Default: 256.
    pub send_queue: usize,
    /// Frames of one connection that arrived together and are handled together (under one
    /// lock of the relay), at most, before its task yields to the receivers' writers. Larger
    /// bursts mean fewer, larger writes; a burst much larger than a client's window of frames
    /// in flight stops reading and writing from overlapping (at 128, one pair of peers
    /// streaming with 128 frames in flight was forwarded at about half the rate). Keep it well
    /// below [`send_queue`](Self::send_queue): a receiver whose queue cannot take a whole burst
    /// is a slow consumer. Default: 64.
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
            burst: 64,
            write_batch: 256,
        }
    }
}

/// What the relay has for one connection: a bounded queue of frames, and a close that does not
/// wait behind that queue (a slow consumer's queue is full by definition). A plain deque behind
/// a lock, with one wake-up: an idle connection costs a few dozen bytes here, where a channel
/// would allocate its first block of slots up front.
#[derive(Default)]
struct Outbox {
    state: Mutex<OutState>,
    wake: Notify,
}

#[derive(Default)]
struct OutState {
    frames: VecDeque<Frame>,
    close: Option<CloseReason>,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, OutState> {
        // Every mutation completes before the lock is released.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn close_requested(&self) -> Option<CloseReason> {
        self.lock().close.take()
    }
}

struct Slot {
    outbox: Arc<Outbox>,
    bound: usize,
}

struct Shared {
    relay: Relay,
    conns: FxHashMap<ConnId, Slot>,
    next_conn: u64,
    /// The relay's next timer, for the timer task.
    deadline: watch::Sender<Option<TokioInstant>>,
    /// The last deadline sent on `deadline`.
    last_deadline: Option<std::time::Instant>,
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
                        s.relay.handle_timeout(now());
                        dispatch(&mut s);
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

    /// Runs one connection: joins the room its request names (see
    /// [`join_request_from_peer`]), then relays its frames until it ends. Returns when the
    /// connection is over.
    pub async fn serve<T: Transport>(&self, mut transport: T, request: JoinRequest) {
        let outbox = Arc::new(Outbox::default());
        let joined = {
            let mut s = self.lock();
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
            dispatch(&mut s);
            joined
        };
        let conn = match joined {
            Ok(conn) => conn,
            Err(reason) => {
                tracing::debug!(%reason, "join refused");
                let _ = transport.close(reason).await;
                return;
            }
        };
        // How the connection ended, to tell the relay; `None` once the relay itself closed it.
        let mut ended = Some(Disconnect::Lost);
        let mut burst: Vec<Frame> = Vec::new();
        let burst_max = self.config.burst.max(1);
        let write_batch = self.config.write_batch.max(1);
        'conn: loop {
            tokio::select! {
                biased;
                () = outbox.wake.notified() => {
                    // Write until the queue is seen empty: the relay wakes this task only
                    // when it puts a frame into an empty queue (or asks for a close).
                    loop {
                        // Under the queue's lock, frames go to the transport's own queue as far
                        // as it takes them without waiting (never more than a write batch);
                        // the last of the batch, or one the transport refused, is sent after
                        // the lock is released, and its `send` flushes them all.
                        let (close, last) = {
                            let mut out = outbox.lock();
                            match out.close.take() {
                                Some(reason) => {
                                    // What was queued before the close goes out with it, as far
                                    // as the transport takes it without waiting (a slow
                                    // consumer's does not).
                                    while let Some(frame) = out.frames.pop_front() {
                                        if transport.try_send(frame).is_err() {
                                            break;
                                        }
                                    }
                                    out.frames.clear();
                                    (Some(reason), None)
                                }
                                None => {
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
                                            // The transport's own queue is full: `send` waits
                                            // for room.
                                            Err(TrySendError::Full(frame)) => {
                                                last = Some(frame);
                                                break;
                                            }
                                            Err(_) => break 'conn,
                                        }
                                    }
                                    if last.is_none() && out.frames.capacity() > 0 {
                                        // Nothing more to write: an idle connection holds no
                                        // queue buffer.
                                        out.frames = VecDeque::new();
                                    }
                                    (None, last)
                                }
                            }
                        };
                        if let Some(reason) = close {
                            let _ = transport.close(reason).await;
                            ended = None;
                            break 'conn;
                        }
                        let Some(last) = last else { break };
                        // A close (a slow consumer's, say) must not wait behind a send that
                        // cannot finish.
                        let mut send = transport.send(last);
                        let close = loop {
                            tokio::select! {
                                sent = &mut send => {
                                    if sent.is_err() {
                                        break 'conn;
                                    }
                                    break None;
                                }
                                () = outbox.wake.notified() => {
                                    match outbox.close_requested() {
                                        Some(reason) => break Some(reason),
                                        // New frames: taken by the next round of this loop.
                                        None => continue,
                                    }
                                }
                            }
                        };
                        drop(send);
                        if let Some(reason) = close {
                            let _ = transport.close(reason).await;
                            ended = None;
                            break 'conn;
                        }
                    }
                }
                frame = transport.recv() => {
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
                        dispatch(&mut s);
                    }
                    match end {
                        // The peer closed cleanly (1000 or 1001): it left.
                        Some(None) => {
                            ended = Some(Disconnect::Clean);
                            break;
                        }
                        Some(Some(e)) => {
                            tracing::debug!(%conn, error = %e, "connection lost");
                            break;
                        }
                        // More may be waiting: let the receivers' tasks write this burst
                        // first, so that reading and writing overlap.
                        None if full => tokio::task::yield_now().await,
                        None => {}
                    }
                }
            }
        }
        let mut s = self.lock();
        s.conns.remove(&conn);
        if let Some(how) = ended {
            s.relay.disconnected(now(), conn, how);
        }
        dispatch(&mut s);
    }

    /// Counters and sizes, for monitoring.
    pub fn status(&self) -> RelayStatus {
        let s = self.lock();
        RelayStatus {
            stats: s.relay.stats(),
            peers: s.relay.peer_count(),
            rooms: s.relay.room_count(),
            connections: s.conns.len(),
        }
    }
}

/// Drains the relay's outputs into the connections' queues.
fn dispatch(s: &mut Shared) {
    // Consecutive frames for one connection (a burst forwarded to the same peer) go into its
    // queue under one lock.
    let mut open: Option<Open<'_>> = None;
    let Shared {
        relay,
        conns,
        last_deadline,
        deadline,
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
                let Some(o) = open.as_mut() else { continue };
                if o.queue.frames.len() >= o.slot.bound {
                    open = None;
                    relay.slow_consumer(now(), conn);
                    continue;
                }
                o.queue.frames.push_back(frame);
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
