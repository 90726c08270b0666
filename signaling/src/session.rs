//! The session driver: one [`Negotiation`] run over any [`Transport`].
//!
//! [`spawn`] starts a task that owns the transport and the state machine. It handles the
//! connection's frames strictly in order, one at a time, arms the negotiation's timer, and sends
//! what the negotiation transmits. The application talks to it through a [`Session`] handle:
//! commands in (what its own WebRTC stack did), events out (what to apply to it).
//!
//! This is how a Rust server *is* the answering peer of a browser client:
//!
//! ```no_run
//! # async fn demo(conn: impl signaling::transport::Transport + 'static) {
//! use signaling_core::negotiation::{Config, Event};
//! use signaling::session::{self, SessionEvent};
//! use signaling_core::wire::SdpKind;
//!
//! let mut session = session::spawn(conn, Config::default(), session::SessionConfig::default());
//! while let Some(event) = session.next_event().await {
//!     match event {
//!         SessionEvent::Negotiation(Event::ApplyRemoteDescription(offer)) => {
//!             // Apply `offer.sdp` to the WebRTC stack and create an answer...
//!             let answer_sdp = String::from("v=0\r\n...");
//!             session.set_local_description(SdpKind::Answer, answer_sdp).await.ok();
//!         }
//!         SessionEvent::Negotiation(Event::AddRemoteCandidate(c)) => {
//!             // stack.add_ice_candidate(&c.init) ...
//!             let _ = c;
//!         }
//!         SessionEvent::Closed(end) => { let _ = end; break; }
//!         _ => {}
//!     }
//! }
//! # }
//! ```
//!
//! # Resume
//!
//! With [`SessionConfig::reattach`] on, a lost connection does not end the session: the
//! application gets [`SessionEvent::TransportLost`], the negotiation and its timers live on,
//! frames it sends wait (bounded by [`SessionConfig::detached_queue`]), and
//! [`Session::attach`] hands the session a new connection (say, a new WebSocket to a relay with
//! the resume token its `relay/welcome` gave). Frames the peer sent while no connection was
//! attached are the transport's or the relay's to keep (the relay queues them for a resuming
//! peer).
//!
//! # Bounds and backpressure
//!
//! Commands wait for room in a bounded queue ([`SessionConfig::command_queue`]). Events wait in
//! a bounded queue ([`SessionConfig::event_queue`]); while it is full the driver stops reading
//! the transport (so a slow application slows the peer down instead of growing memory) but keeps
//! serving commands, so an application that is busy sending a command never deadlocks with a
//! driver that is busy delivering an event.
use std::collections::VecDeque;
use std::fmt;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant as TokioInstant;

use signaling_core::negotiation::{
    ApiError, Config, Event, Negotiation, Output, SignalingState, Stats,
};
use signaling_core::wire::{IceCandidate, SdpKind};

use crate::transport::{CloseReason, Frame, Transport, TransportError};

/// Settings of the driver (the negotiation itself is set by [`Config`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Commands that may wait for the driver. Default: 32.
    pub command_queue: usize,
    /// Events that may wait for the application before the driver stops reading the transport.
    /// Default: 256.
    pub event_queue: usize,
    /// Keep the session when its connection is lost, for [`Session::attach`] to give it a new
    /// one (see the [module docs](self#resume)). Default: off (a lost connection ends it).
    pub reattach: bool,
    /// Frames that may wait for a new connection while none is attached; one more ends the
    /// session ([`SessionEnd::DetachedQueueFull`]). Default: 256.
    pub detached_queue: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            command_queue: 32,
            event_queue: 256,
            reattach: false,
            detached_queue: 256,
        }
    }
}

impl SessionConfig {
    /// Sets whether a lost connection leaves the session waiting for [`Session::attach`].
    pub fn with_reattach(mut self, reattach: bool) -> Self {
        self.reattach = reattach;
        self
    }

    /// Sets the bound on frames waiting while no connection is attached.
    pub fn with_detached_queue(mut self, frames: usize) -> Self {
        self.detached_queue = frames;
        self
    }
}

/// What the driver reports to the application.
#[derive(Debug)]
#[non_exhaustive]
pub enum SessionEvent {
    /// An event of the negotiation (apply this description, add this candidate, ...).
    Negotiation(Event),
    /// The connection was lost and the session waits for [`Session::attach`] (only with
    /// [`SessionConfig::reattach`]). Why it was lost.
    TransportLost(SessionEnd),
    /// The session ended; no more events follow.
    Closed(SessionEnd),
}

/// Why a session ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum SessionEnd {
    /// The peer closed the connection cleanly.
    PeerClosed,
    /// The application closed the session ([`Session::close`], or by dropping the handle).
    LocalClose,
    /// The transport failed (the peer vanished, closed with an error code, sent something the
    /// transport refuses, ...).
    Transport(TransportError),
    /// No connection was attached and more frames waited than [`SessionConfig::detached_queue`].
    DetachedQueueFull,
}

impl fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionEnd::PeerClosed => f.write_str("the peer closed the connection"),
            SessionEnd::LocalClose => f.write_str("closed locally"),
            SessionEnd::Transport(e) => write!(f, "transport error: {e}"),
            SessionEnd::DetachedQueueFull => {
                f.write_str("too many frames waited for a new connection")
            }
        }
    }
}

/// A command could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The negotiation refused it (see [`ApiError`]); nothing changed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The session has ended.
    #[error("the session has ended")]
    Ended,
    /// [`Session::attach`] while a connection is attached.
    #[error("a connection is attached already")]
    Attached,
}

enum Command {
    StartOffer(oneshot::Sender<Result<(), ApiError>>),
    CancelOffer(oneshot::Sender<Result<(), ApiError>>),
    SetLocal(SdpKind, String, oneshot::Sender<Result<(), ApiError>>),
    Rollback(oneshot::Sender<Result<(), ApiError>>),
    Reject(String, oneshot::Sender<Result<(), ApiError>>),
    SetPolite(bool, oneshot::Sender<()>),
    Attach(
        Box<dyn Transport>,
        oneshot::Sender<Result<(), SessionError>>,
    ),
    AddCandidate(IceCandidate, oneshot::Sender<Result<(), ApiError>>),
    EndOfCandidates(oneshot::Sender<Result<(), ApiError>>),
    State(oneshot::Sender<(SignalingState, Stats)>),
    Close(CloseReason),
}

/// The application's handle on a running session. Dropping it closes the session (with code
/// 1000).
#[derive(Debug)]
pub struct Session {
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<SessionEvent>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Command::StartOffer(_) => "StartOffer",
            Command::CancelOffer(_) => "CancelOffer",
            Command::SetLocal(..) => "SetLocal",
            Command::Rollback(_) => "Rollback",
            Command::Reject(..) => "Reject",
            Command::SetPolite(..) => "SetPolite",
            Command::Attach(..) => "Attach",
            Command::AddCandidate(..) => "AddCandidate",
            Command::EndOfCandidates(_) => "EndOfCandidates",
            Command::State(_) => "State",
            Command::Close(_) => "Close",
        })
    }
}

/// Starts a session over `transport` on the current tokio runtime.
pub fn spawn<T: Transport + 'static>(
    transport: T,
    config: Config,
    session: SessionConfig,
) -> Session {
    let (cmd_tx, cmd_rx) = mpsc::channel(session.command_queue.max(1));
    let (ev_tx, ev_rx) = mpsc::channel(session.event_queue.max(1));
    let driver = Driver {
        transport: Some(Box::new(transport)),
        negotiation: Negotiation::new(config),
        commands: cmd_rx,
        events: ev_tx,
        pending: VecDeque::new(),
        max_pending: session.event_queue.max(1),
        reattach: session.reattach,
        detached: VecDeque::new(),
        max_detached: session.detached_queue,
    };
    let task = tokio::spawn(driver.run());
    Session {
        commands: cmd_tx,
        events: ev_rx,
        task: Some(task),
    }
}

impl Session {
    /// The next event; `None` after [`SessionEvent::Closed`] was delivered.
    ///
    /// Cancel-safe: dropping the future before it completes loses no event, so it can wait in
    /// a `select!` beside the application's own sockets and timers.
    pub async fn next_event(&mut self) -> Option<SessionEvent> {
        self.events.recv().await
    }

    async fn call<R>(
        &self,
        make: impl FnOnce(oneshot::Sender<R>) -> Command,
    ) -> Result<R, SessionError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| SessionError::Ended)?;
        rx.await.map_err(|_| SessionError::Ended)
    }

    /// Perfect negotiation's `makingOffer`: see [`Negotiation::start_offer`].
    pub async fn start_offer(&self) -> Result<(), SessionError> {
        Ok(self.call(Command::StartOffer).await??)
    }

    /// The stack could not make the announced offer: see [`Negotiation::cancel_offer`].
    pub async fn cancel_offer(&self) -> Result<(), SessionError> {
        Ok(self.call(Command::CancelOffer).await??)
    }

    /// The stack applied a local description: see [`Negotiation::set_local_description`].
    pub async fn set_local_description(
        &self,
        kind: SdpKind,
        sdp: String,
    ) -> Result<(), SessionError> {
        Ok(self.call(|tx| Command::SetLocal(kind, sdp, tx)).await??)
    }

    /// Rolls back: see [`Negotiation::rollback`].
    pub async fn rollback(&self) -> Result<(), SessionError> {
        Ok(self.call(Command::Rollback).await??)
    }

    /// The stack could not apply the remote offer: see
    /// [`Negotiation::reject_remote_description`] (back to `stable`, an `error` frame to the
    /// peer).
    pub async fn reject_remote_description(
        &self,
        reason: impl Into<String>,
    ) -> Result<(), SessionError> {
        let reason = reason.into();
        Ok(self.call(|tx| Command::Reject(reason, tx)).await??)
    }

    /// Sets the perfect-negotiation role: see [`Negotiation::set_polite`].
    pub async fn set_polite(&self, polite: bool) -> Result<(), SessionError> {
        self.call(|tx| Command::SetPolite(polite, tx)).await
    }

    /// Gives the session a new connection after [`SessionEvent::TransportLost`]. Frames that
    /// waited go out on it first, in order. Fails with [`SessionError::Attached`] while a
    /// connection is attached (the new one is dropped).
    pub async fn attach<T: Transport + 'static>(&self, transport: T) -> Result<(), SessionError> {
        self.call(|tx| Command::Attach(Box::new(transport), tx))
            .await?
    }

    /// The stack gathered a candidate: see [`Negotiation::add_local_candidate`].
    pub async fn add_local_candidate(&self, candidate: IceCandidate) -> Result<(), SessionError> {
        Ok(self
            .call(|tx| Command::AddCandidate(candidate, tx))
            .await??)
    }

    /// The stack finished gathering: see [`Negotiation::end_of_local_candidates`].
    pub async fn end_of_local_candidates(&self) -> Result<(), SessionError> {
        Ok(self.call(Command::EndOfCandidates).await??)
    }

    /// The negotiation's signaling state and counters.
    pub async fn state(&self) -> Result<(SignalingState, Stats), SessionError> {
        self.call(Command::State).await
    }

    /// Closes the session and its transport with `reason`, and waits for the driver to finish.
    pub async fn close(mut self, reason: CloseReason) {
        let _ = self.commands.send(Command::Close(reason)).await;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

struct Driver {
    /// The connection; `None` while detached (waiting for [`Session::attach`]).
    transport: Option<Box<dyn Transport>>,
    negotiation: Negotiation,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<SessionEvent>,
    /// Events produced but not yet taken by the application.
    pending: VecDeque<SessionEvent>,
    max_pending: usize,
    /// Keep the session when the connection is lost.
    reattach: bool,
    /// Frames waiting for a connection while detached.
    detached: VecDeque<Frame>,
    max_detached: usize,
}

impl Driver {
    async fn run(mut self) {
        let end = loop {
            let deadline = self.negotiation.next_timeout().map(TokioInstant::from_std);
            let reading = self.transport.is_some() && self.pending.len() < self.max_pending;
            let step = tokio::select! {
                // Deliver events first: the application is waiting for them.
                biased;
                permit = self.events.reserve(), if !self.pending.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(e) = self.pending.pop_front() {
                            permit.send(e);
                        }
                        Step::Continue
                    }
                    // Nobody listens any more: the handle was dropped.
                    Err(_) => Step::End(SessionEnd::LocalClose),
                },
                cmd = self.commands.recv() => Step::Command(cmd),
                frame = recv(&mut self.transport), if reading => Step::Frame(frame),
                () = sleep_until(deadline) => Step::Timeout,
            };
            let lost = match step {
                Step::Continue => None,
                Step::End(end) => break end,
                Step::Command(Some(Command::Close(reason))) => {
                    if let Some(t) = self.transport.as_mut() {
                        let _ = t.close(reason).await;
                    }
                    break SessionEnd::LocalClose;
                }
                Step::Command(Some(Command::Attach(mut transport, tx))) => {
                    if self.transport.is_some() {
                        let _ = tx.send(Err(SessionError::Attached));
                        None
                    } else {
                        let _ = tx.send(Ok(()));
                        let mut lost = None;
                        while let Some(frame) = self.detached.pop_front() {
                            if let Err(e) = transport.send(frame).await {
                                lost = Some(SessionEnd::Transport(e));
                                break;
                            }
                        }
                        self.transport = Some(transport);
                        lost
                    }
                }
                Step::Command(Some(cmd)) => {
                    self.command(cmd);
                    None
                }
                Step::Command(None) => {
                    if let Some(t) = self.transport.as_mut() {
                        let _ = t.close(CloseReason::normal()).await;
                    }
                    break SessionEnd::LocalClose;
                }
                Step::Frame(Ok(Some(frame))) => {
                    let now = now();
                    self.negotiation.handle_frame(now, &frame);
                    None
                }
                Step::Frame(Ok(None)) => Some(SessionEnd::PeerClosed),
                Step::Frame(Err(e)) => Some(SessionEnd::Transport(e)),
                Step::Timeout => {
                    let now = now();
                    self.negotiation.handle_timeout(now);
                    None
                }
            };
            let lost = match lost {
                Some(lost) => Some(lost),
                None => self.drain().await.err().map(SessionEnd::Transport),
            };
            if let Some(lost) = lost {
                if !self.reattach {
                    break lost;
                }
                tracing::debug!(%lost, "connection lost; waiting for a new one");
                self.transport = None;
                self.pending.push_back(SessionEvent::TransportLost(lost));
            }
            if self.detached.len() > self.max_detached {
                break SessionEnd::DetachedQueueFull;
            }
        };
        tracing::debug!(%end, "session ended");
        self.negotiation.close();
        // The final event goes out even if the queue is full: wait for room (the application
        // reading, or dropping the handle).
        for e in self.pending.drain(..) {
            if self.events.send(e).await.is_err() {
                return;
            }
        }
        let _ = self.events.send(SessionEvent::Closed(end)).await;
    }

    fn command(&mut self, cmd: Command) {
        let now = now();
        let n = &mut self.negotiation;
        match cmd {
            Command::StartOffer(tx) => drop(tx.send(n.start_offer(now))),
            Command::CancelOffer(tx) => drop(tx.send(n.cancel_offer(now))),
            Command::SetLocal(kind, sdp, tx) => {
                drop(tx.send(n.set_local_description(now, kind, sdp)));
            }
            Command::Rollback(tx) => drop(tx.send(n.rollback(now))),
            Command::Reject(reason, tx) => {
                drop(tx.send(n.reject_remote_description(now, &reason)));
            }
            Command::SetPolite(polite, tx) => {
                n.set_polite(polite);
                let _ = tx.send(());
            }
            Command::AddCandidate(c, tx) => drop(tx.send(n.add_local_candidate(now, c))),
            Command::EndOfCandidates(tx) => drop(tx.send(n.end_of_local_candidates(now))),
            Command::State(tx) => drop(tx.send((n.signaling_state(), n.stats()))),
            // Handled by the loop.
            Command::Close(_) | Command::Attach(..) => {}
        }
    }

    /// Sends what the negotiation transmits, in order (or keeps it while detached), and queues
    /// its events.
    async fn drain(&mut self) -> Result<(), TransportError> {
        loop {
            match self.negotiation.poll_output() {
                Output::Transmit(frame) => {
                    let frame = Frame::from(frame);
                    let Some(t) = self.transport.as_mut() else {
                        self.detached.push_back(frame);
                        continue;
                    };
                    // A frame that could not be sent waits for the next connection (a cheap
                    // copy: frames share their text).
                    let copy = self.reattach.then(|| frame.clone());
                    if let Err(e) = t.send(frame).await {
                        self.detached.extend(copy);
                        self.keep_unsent();
                        return Err(e);
                    }
                }
                Output::Event(e) => self.pending.push_back(SessionEvent::Negotiation(e)),
                Output::Timeout(_) => return Ok(()),
            }
        }
    }

    /// After a failed send: the rest of the negotiation's output is kept (frames for the next
    /// connection, events for the application).
    fn keep_unsent(&mut self) {
        loop {
            match self.negotiation.poll_output() {
                Output::Transmit(frame) => self.detached.push_back(frame.into()),
                Output::Event(e) => self.pending.push_back(SessionEvent::Negotiation(e)),
                Output::Timeout(_) => return,
            }
        }
    }
}

/// The next frame of the attached connection (never completes while detached: the branch is
/// disabled then).
async fn recv(transport: &mut Option<Box<dyn Transport>>) -> Result<Option<Frame>, TransportError> {
    match transport {
        Some(t) => t.recv().await,
        None => std::future::pending().await,
    }
}

/// What woke the driver.
enum Step {
    Continue,
    End(SessionEnd),
    Command(Option<Command>),
    Frame(Result<Option<Frame>, TransportError>),
    Timeout,
}

/// Sleeps until `deadline`, or forever without one (a `select!` branch that never fires).
pub(crate) async fn sleep_until(deadline: Option<TokioInstant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The time handed to the sans-IO state machines: tokio's clock, so that tests can pause and
/// advance it.
pub(crate) fn now() -> std::time::Instant {
    TokioInstant::now().into_std()
}
