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
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::Duration;

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
            write_timeout: Duration::from_secs(10),
            burst: 64,
            write_batch: 256,
        }
    }
}

/// What the relay has for one connection: a bounded queue of frames, and a close that does not
/// wait behind that queue (a slow consumer's queue is full by definition). A plain deque behind
/// a lock, with two wake-ups: an idle connection costs a few dozen bytes here, where a channel
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
    close: Option<CloseReason>,
    /// When the task last took frames out (or the queue last became non-empty).
    progress: Option<TokioInstant>,
    /// The connection has ended: nobody waits on it any more.
    ended: bool,
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
            dispatch(&mut s, None);
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
        let mut lost = true;
        let mut burst: Vec<Frame> = Vec::new();
        let mut blocked: Blocked = Vec::new();
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
                                    out.progress = Some(TokioInstant::now());
                                    outbox.room.notify_waiters();
                                    (None, last)
                                }
                            }
                        };
                        if let Some(reason) = close {
                            let _ = transport.close(reason).await;
                            lost = false;
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
                            lost = false;
                            break 'conn;
                        }
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
                        Some(None) => break,
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
        {
            let mut out = outbox.lock();
            out.ended = true;
            out.frames = VecDeque::new();
        }
        outbox.room.notify_waiters();
        let mut s = self.lock();
        s.conns.remove(&conn);
        if lost {
            s.relay.disconnected(now(), conn);
        }
        dispatch(&mut s, None);
    }

    /// Forgets the receivers that have room again (or ended), and closes as slow consumers
    /// those that took nothing from their queue for the write timeout.
    fn unblock(&self, blocked: &mut Blocked) {
        let timeout = self.config.write_timeout;
        let mut stalled = Vec::new();
        blocked.retain(|(conn, outbox, bound)| {
            let out = outbox.lock();
            if out.ended || out.close.is_some() || out.frames.len() < *bound {
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
        if out.ended || out.close.is_some() || out.frames.len() < *bound {
            return;
        }
        out.progress.unwrap_or_else(TokioInstant::now) + timeout
    };
    tokio::select! {
        () = notified => {}
        () = tokio::time::sleep_until(deadline) => {}
    }
}

/// Drains the relay's outputs into the connections' queues. With `blocked`, the receivers
/// whose queue is at its bound are added there (once each), for the sender to wait on.
fn dispatch(s: &mut Shared, mut blocked: Option<&mut Blocked>) {
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
                if o.queue.frames.len() >= o.slot.limit() {
                    open = None;
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
