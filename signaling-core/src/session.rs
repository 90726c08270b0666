//! The async session driver (feature `tokio`): one [`Negotiation`] run over any [`Transport`].
//!
//! [`spawn`] starts a task that owns the transport and the state machine. It handles the
//! connection's frames strictly in order, one at a time, arms the negotiation's timer, and sends
//! what the negotiation transmits. The application talks to it through a [`Session`] handle:
//! commands in (what its own WebRTC stack did), events out (what to apply to it).
//!
//! This is how a Rust server *is* the answering peer of a browser client:
//!
//! ```no_run
//! # async fn demo(conn: impl signaling_core::transport::Transport + 'static) {
//! use signaling_core::negotiation::{Config, Event};
//! use signaling_core::session::{self, SessionEvent};
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

use crate::negotiation::{ApiError, Config, Event, Negotiation, Output, SignalingState, Stats};
use crate::transport::{CloseReason, Frame, Transport, TransportError};
use crate::wire::{IceCandidate, SdpKind};

/// Settings of the driver (the negotiation itself is set by [`Config`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Commands that may wait for the driver. Default: 32.
    pub command_queue: usize,
    /// Events that may wait for the application before the driver stops reading the transport.
    /// Default: 256.
    pub event_queue: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            command_queue: 32,
            event_queue: 256,
        }
    }
}

/// What the driver reports to the application.
#[derive(Debug)]
#[non_exhaustive]
pub enum SessionEvent {
    /// An event of the negotiation (apply this description, add this candidate, ...).
    Negotiation(Event),
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
}

impl fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionEnd::PeerClosed => f.write_str("the peer closed the connection"),
            SessionEnd::LocalClose => f.write_str("closed locally"),
            SessionEnd::Transport(e) => write!(f, "transport error: {e}"),
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
}

enum Command {
    StartOffer(oneshot::Sender<Result<(), ApiError>>),
    SetLocal(SdpKind, String, oneshot::Sender<Result<(), ApiError>>),
    Rollback(oneshot::Sender<Result<(), ApiError>>),
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
            Command::SetLocal(..) => "SetLocal",
            Command::Rollback(_) => "Rollback",
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
        transport,
        negotiation: Negotiation::new(config),
        commands: cmd_rx,
        events: ev_tx,
        pending: VecDeque::new(),
        max_pending: session.event_queue.max(1),
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

struct Driver<T> {
    transport: T,
    negotiation: Negotiation,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<SessionEvent>,
    /// Events produced but not yet taken by the application.
    pending: VecDeque<SessionEvent>,
    max_pending: usize,
}

impl<T: Transport> Driver<T> {
    async fn run(mut self) {
        let end = loop {
            let deadline = self.negotiation.next_timeout().map(TokioInstant::from_std);
            let reading = self.pending.len() < self.max_pending;
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
                frame = self.transport.recv(), if reading => Step::Frame(frame),
                () = sleep_until(deadline) => Step::Timeout,
            };
            match step {
                Step::Continue => {}
                Step::End(end) => break end,
                Step::Command(Some(Command::Close(reason))) => {
                    let _ = self.transport.close(reason).await;
                    break SessionEnd::LocalClose;
                }
                Step::Command(Some(cmd)) => self.command(cmd),
                Step::Command(None) => {
                    let _ = self.transport.close(CloseReason::normal()).await;
                    break SessionEnd::LocalClose;
                }
                Step::Frame(Ok(Some(frame))) => {
                    let now = now();
                    self.negotiation.handle_frame(now, &frame);
                }
                Step::Frame(Ok(None)) => break SessionEnd::PeerClosed,
                Step::Frame(Err(e)) => break SessionEnd::Transport(e),
                Step::Timeout => {
                    let now = now();
                    self.negotiation.handle_timeout(now);
                }
            }
            if let Err(e) = self.drain().await {
                break SessionEnd::Transport(e);
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
            Command::SetLocal(kind, sdp, tx) => {
                drop(tx.send(n.set_local_description(now, kind, sdp)));
            }
            Command::Rollback(tx) => drop(tx.send(n.rollback(now))),
            Command::AddCandidate(c, tx) => drop(tx.send(n.add_local_candidate(c))),
            Command::EndOfCandidates(tx) => drop(tx.send(n.end_of_local_candidates())),
            Command::State(tx) => drop(tx.send((n.signaling_state(), n.stats()))),
            // Handled by the loop.
            Command::Close(_) => {}
        }
    }

    /// Sends what the negotiation transmits, in order, and queues its events.
    async fn drain(&mut self) -> Result<(), TransportError> {
        loop {
            match self.negotiation.poll_output() {
                Output::Transmit(frame) => self.transport.send(frame.into()).await?,
                Output::Event(e) => self.pending.push_back(SessionEvent::Negotiation(e)),
                Output::Timeout(_) => return Ok(()),
            }
        }
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
