//! One peer in a relay room: a WebRTC stack ([`StackHandle`]) driven through the library's
//! session driver over a WebSocket to the relay, with perfect negotiation, the role taken from
//! the relay's `relay/welcome`, and resume after a lost connection.
//!
//! The peer runs in a task of its own. Its owner gives it [`PeerCommand`]s and watches what it
//! reports through a [`PeerHandle`]: every [`PeerEvent`], stamped with the instant it happened,
//! and the data channel messages, checked one by one against what the sender sent.
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use signaling::session::{self, Session, SessionConfig, SessionError, SessionEvent};
use signaling::transport::CloseReason;
use signaling_core::negotiation::{Config, DropReason, Event};
use signaling_core::relay::Notice;
use signaling_core::wire::{Dialect, SdpKind};
use signaling_ws::{WsClient, WsConfig};
use tokio::sync::{mpsc, watch};

use super::stack::{StackError, StackEvent, StackHandle};
use super::tap::{Tap, TapHandle};
use super::Bounds;

/// How often, and how far apart, a peer tries to reconnect after losing its connection.
const RECONNECT_ATTEMPTS: u32 = 50;
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// Where and how a peer connects.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// A short name for reports (`webrtc-rs`, `str0m`).
    pub name: String,
    /// The relay's WebSocket endpoint, without query: `ws://127.0.0.1:8080/ws`.
    pub url: String,
    /// The room to join.
    pub room: String,
    /// Offer on our own when the welcome shows peers already in the room, and when a peer
    /// joins (what a peer that wants a call does; off for a peer told when to offer).
    pub offer_on_join: bool,
    /// Hold the frames that follow the welcome until our own offer (made because of the
    /// welcome) has gone out: the offers cross as if the wire were slow, so the call starts
    /// with a collision every time.
    pub glare_on_welcome: bool,
}

/// What a peer is told to do.
#[derive(Debug)]
pub enum PeerCommand {
    /// Make an offer with the pending changes.
    Offer,
    /// Hold the frames that arrive from now on (`true`) until told to let them through
    /// (`false`): what a slow wire does. Two peers that hold, offer, and let go have made
    /// crossing offers.
    HoldIncoming(bool),
    /// Restart ICE and offer. With `late_candidate`, the previous generation's candidate is
    /// sent once more right after the restart offer, as a candidate delayed on the wire would
    /// arrive.
    RestartIce {
        /// Send the old generation's candidate after the offer.
        late_candidate: bool,
    },
    /// Open a data channel (negotiated with the next offer when the call has none).
    OpenChannel(String),
    /// Add a media section for audio (negotiated with the next offer).
    AddAudio,
    /// Send `count` numbered messages on a data channel (see [`message`]).
    SendMessages {
        /// The channel.
        label: String,
        /// Numbers `first..first + count`.
        first: u32,
        /// How many.
        count: u32,
    },
}

/// Something a peer did or saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerEvent {
    /// The WebSocket to the relay opened (the first one, or one after a lost connection).
    WebSocketOpen {
        /// `true` for a connection that resumes the peer's place.
        resume: bool,
    },
    /// The relay welcomed us.
    Welcome {
        /// Our id.
        id: String,
        /// The perfect-negotiation role the relay gave us.
        polite: bool,
        /// Peers already in the room.
        peers: Vec<String>,
    },
    /// Another peer joined the room.
    Joined(String),
    /// Another peer left the room.
    Left(String),
    /// Frames from the relay are held (`true`) or let through again (`false`).
    Holding(bool),
    /// We sent an offer.
    OfferSent,
    /// The peer's offer collided with ours and we rolled ours back (polite).
    RolledBack,
    /// The peer's offer collided with ours and we ignored it (impolite).
    OfferIgnored,
    /// An offer/answer exchange finished.
    Negotiated,
    /// The peer restarted ICE; its new username fragment.
    RemoteIceRestart(String),
    /// A remote candidate was handed to the stack, with the ufrag of its ICE generation.
    CandidateApplied(Option<String>),
    /// A candidate that trickled behind the offer we ignored (impolite) named a section of
    /// that offer; the library refused it (and told the peer). Harmless.
    IgnoredOfferCandidate,
    /// The peer reported an error (the text of its `error` frame).
    RemoteError(String),
    /// The stack could not use a remote candidate (the candidate and why).
    CandidateRefused(String),
    /// The library dropped remote candidates instead of handing them to the stack.
    CandidatesDropped(DropReason, usize),
    /// The connection to the relay was lost; the session waits for a new one.
    TransportLost(String),
    /// A new connection carries the session again.
    Reattached,
    /// The stack reported this (connected, channel open, media).
    Stack(StackEvent),
    /// Something failed.
    Failed(String),
}

/// The text of message `n` on channel `label`: what the sender sends and the receiver expects.
pub fn message(label: &str, n: u32) -> Vec<u8> {
    format!(
        "{label} #{n:05} {}",
        "0123456789abcdef".repeat(1 + (n % 4) as usize)
    )
    .into_bytes()
}

/// Messages received on one channel, checked in order against [`message`].
#[derive(Clone, Debug, Default)]
pub struct Inbox {
    /// Messages received in order so far.
    pub count: u32,
    /// The first message that was not the next one expected (its number, and what came).
    pub mismatch: Option<(u32, String)>,
    /// When the first message arrived.
    pub first_at: Option<Instant>,
    /// When the last message arrived.
    pub last_at: Option<Instant>,
}

/// What a peer reported so far.
#[derive(Debug, Default)]
pub struct Observed {
    /// Events, oldest first (at most [`Bounds::event_log`]; older ones are dropped).
    pub log: Vec<(Instant, PeerEvent)>,
    /// The bound of `log`.
    pub max_log: usize,
    /// Events dropped from the front of the log.
    pub dropped: usize,
    /// Data channel messages per channel.
    pub inboxes: HashMap<String, Inbox>,
    /// The peer's task ended.
    pub ended: bool,
}

impl Observed {
    /// The first event at or after position `from` (counted since the start, dropped ones
    /// included) that `pick` accepts.
    pub fn find<T>(
        &self,
        from: usize,
        mut pick: impl FnMut(&PeerEvent) -> Option<T>,
    ) -> Option<(Instant, T)> {
        let start = from.saturating_sub(self.dropped);
        self.log[start.min(self.log.len())..]
            .iter()
            .find_map(|(at, e)| pick(e).map(|t| (*at, t)))
    }

    /// The position the next event will have (for [`Observed::find`]).
    pub fn mark(&self) -> usize {
        self.dropped + self.log.len()
    }

    fn push(&mut self, event: PeerEvent) {
        if self.log.len() >= self.max_log.max(1) {
            self.log.remove(0);
            self.dropped += 1;
        }
        self.log.push((Instant::now(), event));
    }
}

/// A peer's task did not show what was waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitError {
    /// The peer.
    pub peer: String,
    /// What was waited for.
    pub what: String,
    /// How long.
    pub waited: Duration,
    /// The last events it reported, for the report.
    pub recent: Vec<String>,
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: no {} within {:?}; last events:\n  {}",
            self.peer,
            self.what,
            self.waited,
            self.recent.join("\n  ")
        )
    }
}

impl std::error::Error for WaitError {}

/// The owner's side of a peer.
#[derive(Debug)]
pub struct PeerHandle {
    name: String,
    commands: mpsc::Sender<PeerCommand>,
    observed: Arc<Mutex<Observed>>,
    changed: watch::Receiver<u64>,
}

impl PeerHandle {
    /// The peer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Gives the peer a command (waits while its queue is full). `false` if the peer is gone.
    pub async fn command(&self, command: PeerCommand) -> bool {
        self.commands.send(command).await.is_ok()
    }

    /// Looks at what the peer reported so far.
    pub fn observed<T>(&self, look: impl FnOnce(&Observed) -> T) -> T {
        match self.observed.lock() {
            Ok(o) => look(&o),
            Err(poisoned) => look(&poisoned.into_inner()),
        }
    }

    /// The position the next event will have.
    pub fn mark(&self) -> usize {
        self.observed(Observed::mark)
    }

    /// Waits until `check` finds what it looks for in what the peer reported, for at most
    /// `limit`.
    pub async fn wait<T>(
        &mut self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut(&Observed) -> Option<T>,
    ) -> Result<T, WaitError> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(found) = self.observed(&mut check) {
                return Ok(found);
            }
            let ended = self.observed(|o| o.ended);
            let changed = tokio::time::timeout_at(deadline, self.changed.changed()).await;
            if ended || !matches!(changed, Ok(Ok(()))) {
                if let Some(found) = self.observed(&mut check) {
                    return Ok(found);
                }
                let recent = self.observed(|o| {
                    o.log[o.log.len().saturating_sub(12)..]
                        .iter()
                        .map(|(_, e)| format!("{e:?}"))
                        .collect()
                });
                return Err(WaitError {
                    peer: self.name.clone(),
                    what: what.to_owned(),
                    waited: started.elapsed(),
                    recent,
                });
            }
        }
    }

    /// Waits for the first event at or after `from` that `pick` accepts; when it happened and
    /// what `pick` made of it.
    pub async fn wait_event<T>(
        &mut self,
        what: &str,
        from: usize,
        limit: Duration,
        mut pick: impl FnMut(&PeerEvent) -> Option<T>,
    ) -> Result<(Instant, T), WaitError> {
        self.wait(what, limit, |o| o.find(from, &mut pick)).await
    }

    /// Waits until `count` messages arrived in order on `label`; its inbox then.
    pub async fn wait_messages(
        &mut self,
        label: &str,
        count: u32,
        limit: Duration,
    ) -> Result<Inbox, WaitError> {
        let what = format!("{count} messages on {label:?}");
        self.wait(&what, limit, |o| {
            let inbox = o.inboxes.get(label)?;
            (inbox.count >= count || inbox.mismatch.is_some()).then(|| inbox.clone())
        })
        .await
    }
}

/// Starts a peer on `stack`: connects to the relay, joins the room, and runs until the handle
/// is dropped. Its commands wait in a queue of [`Bounds::command_queue`]; it keeps
/// [`Bounds::event_log`] events.
pub async fn start(
    config: PeerConfig,
    stack: StackHandle,
    ws: WsConfig,
    bounds: Bounds,
) -> Result<PeerHandle, signaling_ws::ConnectError> {
    let (cmd_tx, cmd_rx) = mpsc::channel(bounds.command_queue.max(1));
    let observed = Arc::new(Mutex::new(Observed {
        max_log: bounds.event_log,
        ..Observed::default()
    }));
    let (changed_tx, changed_rx) = watch::channel(0u64);
    let reporter = Reporter {
        name: config.name.clone(),
        observed: observed.clone(),
        changed: changed_tx,
    };
    let tap = TapHandle::new(bounds.injected_frames);
    let conn = WsClient::new(config.url.clone())
        .query_param("room", config.room.clone())
        .config(ws.clone())
        .open()
        .await?;
    reporter.report(PeerEvent::WebSocketOpen { resume: false });
    let transport = Tap::new(conn, &tap);
    if config.glare_on_welcome {
        tap.hold_after_first();
    }
    // The relay tells the role; until its welcome the session waits as the polite side (it
    // makes no offer before that).
    let negotiation = Config::new(true).with_dialect(Dialect::BROWSER);
    let session = session::spawn(
        transport,
        negotiation,
        SessionConfig::default().with_reattach(true),
    );
    let name = config.name.clone();
    let task = PeerTask {
        config,
        ws,
        session,
        stack,
        commands: cmd_rx,
        reporter,
        tap,
        resume_token: None,
        want_offer: false,
        retry_offer: false,
        local_sdp: None,
        last_local_candidate: None,
        glare_pending: false,
    };
    tokio::spawn(task.run());
    Ok(PeerHandle {
        name,
        commands: cmd_tx,
        observed,
        changed: changed_rx,
    })
}

struct Reporter {
    name: String,
    observed: Arc<Mutex<Observed>>,
    changed: watch::Sender<u64>,
}

impl Reporter {
    fn with(&self, change: impl FnOnce(&mut Observed)) {
        match self.observed.lock() {
            Ok(mut o) => change(&mut o),
            Err(poisoned) => change(&mut poisoned.into_inner()),
        }
        self.changed.send_modify(|n| *n += 1);
    }

    fn report(&self, event: PeerEvent) {
        tracing::debug!(peer = %self.name, ?event, "peer event");
        self.with(|o| o.push(event));
    }

    fn message(&self, label: String, data: &[u8]) {
        self.with(|o| {
            let inbox = o.inboxes.entry(label.clone()).or_default();
            let now = Instant::now();
            inbox.first_at.get_or_insert(now);
            inbox.last_at = Some(now);
            if inbox.mismatch.is_some() {
                return;
            }
            if data == message(&label, inbox.count).as_slice() {
                inbox.count += 1;
            } else {
                inbox.mismatch = Some((inbox.count, String::from_utf8_lossy(data).into_owned()));
            }
        });
    }
}

struct PeerTask {
    config: PeerConfig,
    ws: WsConfig,
    session: Session,
    stack: StackHandle,
    commands: mpsc::Receiver<PeerCommand>,
    reporter: Reporter,
    tap: TapHandle,
    resume_token: Option<String>,
    /// An offer was asked for while one could not be made (not `stable`): made on the next
    /// `Negotiated`.
    want_offer: bool,
    /// Our offer was rolled back: offered again on the next `Negotiated` if the stack still
    /// has changes to negotiate.
    retry_offer: bool,
    /// The last local description set.
    local_sdp: Option<String>,
    /// The last local candidate sent.
    last_local_candidate: Option<String>,
    /// The frames after the welcome are held until our first offer is out.
    glare_pending: bool,
}

/// What woke the peer's task.
enum Wake {
    Session(Option<SessionEvent>),
    Stack(Option<StackEvent>),
    Command(Option<PeerCommand>),
}

impl PeerTask {
    async fn run(mut self) {
        self.glare_pending = self.config.glare_on_welcome;
        loop {
            let wake = tokio::select! {
                e = self.session.next_event() => Wake::Session(e),
                e = self.stack.next_event() => Wake::Stack(e),
                c = self.commands.recv() => Wake::Command(c),
            };
            let result = match wake {
                Wake::Session(Some(SessionEvent::Negotiation(e))) => self.negotiation(e).await,
                Wake::Session(Some(SessionEvent::TransportLost(why))) => {
                    self.reporter
                        .report(PeerEvent::TransportLost(why.to_string()));
                    self.reconnect().await
                }
                Wake::Session(Some(SessionEvent::Closed(why))) => {
                    self.reporter
                        .report(PeerEvent::Failed(format!("session ended: {why}")));
                    break;
                }
                Wake::Session(Some(_)) => Ok(()),
                Wake::Stack(Some(e)) => self.stack_event(e).await,
                Wake::Command(Some(c)) => self.command(c).await,
                // The stack's task or the owner is gone.
                Wake::Session(None) | Wake::Stack(None) | Wake::Command(None) => break,
            };
            if let Err(e) = result {
                self.reporter.report(PeerEvent::Failed(e.to_string()));
            }
        }
        self.session.close(CloseReason::normal()).await;
        self.reporter.with(|o| o.ended = true);
    }

    async fn negotiation(&mut self, event: Event) -> Result<(), StepError> {
        match event {
            Event::ApplyRemoteDescription(desc) => {
                match self.stack.apply_remote(desc.kind, desc.sdp).await {
                    Ok(Some(answer)) => {
                        self.local_sdp = Some(answer.clone());
                        self.session
                            .set_local_description(SdpKind::Answer, answer)
                            .await?;
                    }
                    Ok(None) => {}
                    Err(e) if desc.kind == SdpKind::Offer => {
                        // The peer hears why, and may offer again.
                        self.session.reject_remote_description(e.message).await?;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Event::Rollback => {
                self.stack.rollback().await?;
                self.reporter.report(PeerEvent::RolledBack);
                // Perfect negotiation: what our abandoned offer carried is offered again
                // once the peer's exchange is over (if the stack still needs an offer for it).
                self.retry_offer = true;
            }
            Event::OfferIgnored => self.reporter.report(PeerEvent::OfferIgnored),
            Event::AddRemoteCandidate(c) => {
                let ufrag = c.init.username_fragment.as_deref().map(str::to_owned);
                let text = c.init.candidate.clone();
                match self.stack.add_remote_candidate(c.init).await {
                    Ok(()) => self.reporter.report(PeerEvent::CandidateApplied(ufrag)),
                    // A candidate the stack cannot use (a browser's mDNS `.local` name, which
                    // neither stack resolves here): the call goes on with the others.
                    Err(e) => self
                        .reporter
                        .report(PeerEvent::CandidateRefused(format!("{text}: {e}"))),
                }
            }
            Event::RemoteIceRestart { username_fragment } => {
                self.reporter
                    .report(PeerEvent::RemoteIceRestart(username_fragment));
            }
            // Trickled behind an offer this side ignored: the library drops them quietly.
            Event::CandidatesDropped {
                reason: DropReason::IgnoredOffer,
                ..
            } => self.reporter.report(PeerEvent::IgnoredOfferCandidate),
            Event::CandidatesDropped { reason, count } => {
                self.reporter
                    .report(PeerEvent::CandidatesDropped(reason, count));
            }
            Event::Negotiated => {
                self.reporter.report(PeerEvent::Negotiated);
                let asked = std::mem::take(&mut self.want_offer);
                let retry = std::mem::take(&mut self.retry_offer);
                if asked || (retry && self.stack.has_changes().await?) {
                    self.offer().await?;
                }
            }
            Event::NegotiationFailed(f) => {
                self.reporter
                    .report(PeerEvent::Failed(format!("negotiation failed: {f:?}")));
            }
            Event::PeerError(e) => {
                self.reporter.report(PeerEvent::Failed(format!(
                    "the peer sent something invalid: {e}"
                )));
            }
            Event::RemoteError(e) => self.reporter.report(PeerEvent::RemoteError(e.text)),
            Event::Message(m) => match Notice::parse(&m) {
                // The negotiation took its role from the welcome already.
                Some(Notice::Welcome(w)) => {
                    self.resume_token = Some(w.resume.clone());
                    let others = !w.peers.is_empty();
                    self.reporter.report(PeerEvent::Welcome {
                        id: w.id,
                        polite: w.polite,
                        peers: w.peers,
                    });
                    if self.config.offer_on_join && others {
                        self.offer().await?;
                    }
                    if self.glare_pending {
                        self.glare_pending = false;
                        self.tap.release();
                    }
                }
                Some(Notice::Joined { id }) => {
                    self.reporter.report(PeerEvent::Joined(id));
                    if self.config.offer_on_join {
                        self.offer().await?;
                    }
                }
                Some(Notice::Left { id }) => self.reporter.report(PeerEvent::Left(id)),
                _ => {}
            },
            _ => {}
        }
        Ok(())
    }

    async fn stack_event(&mut self, event: StackEvent) -> Result<(), StepError> {
        match event {
            StackEvent::LocalCandidate(c) => {
                // `candidate:<foundation> <component> <transport> <priority> <address> ...`
                let address = c.candidate.split_whitespace().nth(4).unwrap_or_default();
                if address
                    .parse::<std::net::IpAddr>()
                    .map_or(true, |ip| !ip.is_loopback())
                {
                    self.reporter.report(PeerEvent::Failed(format!(
                        "a local candidate off loopback (not sent): {}",
                        c.candidate
                    )));
                    return Ok(());
                }
                self.last_local_candidate = Some(c.candidate.clone());
                self.session.add_local_candidate(c).await?;
            }
            StackEvent::EndOfCandidates => {
                // Before any local description there is nothing to end (webrtc-rs reports
                // gathering complete at the start too).
                let _ = self.session.end_of_local_candidates().await;
            }
            StackEvent::Message { label, data } => self.reporter.message(label, &data),
            other => self.reporter.report(PeerEvent::Stack(other)),
        }
        Ok(())
    }

    async fn command(&mut self, command: PeerCommand) -> Result<(), StepError> {
        match command {
            PeerCommand::Offer => self.offer().await?,
            PeerCommand::HoldIncoming(hold) => {
                if hold {
                    self.tap.hold_after_first();
                } else {
                    self.tap.release();
                }
                self.reporter.report(PeerEvent::Holding(hold));
            }
            PeerCommand::RestartIce { late_candidate } => {
                if late_candidate {
                    if let Some(frame) = self.old_generation_candidate() {
                        self.tap.after_next_offer(frame);
                    }
                }
                self.stack.restart_ice().await?;
                self.offer().await?;
            }
            PeerCommand::OpenChannel(label) => self.stack.open_channel(&label).await?,
            PeerCommand::AddAudio => self.stack.add_audio().await?,
            PeerCommand::SendMessages {
                label,
                first,
                count,
            } => {
                for n in first..first.saturating_add(count) {
                    self.stack.send(&label, message(&label, n)).await?;
                }
            }
        }
        Ok(())
    }

    /// Perfect negotiation's offer: `makingOffer`, then the stack's offer, then the session
    /// sends it. A colliding offer that wins meanwhile makes `set_local_description` fail; the
    /// `Rollback` event that follows rolls the stack back.
    async fn offer(&mut self) -> Result<(), StepError> {
        if self.session.start_offer().await.is_err() {
            // Not stable: offer once the exchange in progress is over.
            self.want_offer = true;
            return Ok(());
        }
        let sdp = match self.stack.create_offer().await {
            Ok(sdp) => sdp,
            Err(e) => {
                // The pattern's `finally`: the peer's offers must not count as collisions.
                self.session.cancel_offer().await?;
                return Err(e.into());
            }
        };
        self.local_sdp = Some(sdp.clone());
        match self
            .session
            .set_local_description(SdpKind::Offer, sdp)
            .await
        {
            Ok(()) => self.reporter.report(PeerEvent::OfferSent),
            // The peer's offer won the collision: the Rollback event is on its way.
            Err(SessionError::Api(_)) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Our last candidate as the previous ICE generation sent it: object form with that
    /// generation's ufrag and the first m-section's mid.
    fn old_generation_candidate(&self) -> Option<String> {
        let candidate = self.last_local_candidate.as_deref()?;
        let sdp = self.local_sdp.as_deref()?;
        let attribute = |name: &str| {
            sdp.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
        };
        let ufrag = attribute("a=ice-ufrag:")?;
        let mid = attribute("a=mid:")?;
        let value = serde_json::json!({
            "candidate": candidate,
            "sdpMid": mid,
            "sdpMLineIndex": 0,
            "usernameFragment": ufrag,
        });
        Some(serde_json::json!({"type": "webrtc/candidate", "value": value}).to_string())
    }

    /// A new WebSocket with our resume token, handed to the session.
    async fn reconnect(&mut self) -> Result<(), StepError> {
        let token = self.resume_token.clone().ok_or(StepError::NoResumeToken)?;
        for _ in 0..RECONNECT_ATTEMPTS {
            let client = WsClient::new(self.config.url.clone())
                .query_param("room", self.config.room.clone())
                .query_param("resume", token.clone())
                .config(self.ws.clone());
            match client.open().await {
                Ok(conn) => {
                    self.reporter
                        .report(PeerEvent::WebSocketOpen { resume: true });
                    self.session.attach(Tap::new(conn, &self.tap)).await?;
                    self.reporter.report(PeerEvent::Reattached);
                    return Ok(());
                }
                Err(e) => tracing::debug!(error = %e, "reconnect failed; retrying"),
            }
            tokio::time::sleep(RECONNECT_PAUSE).await;
        }
        Err(StepError::Reconnect)
    }
}

/// Why a step of a peer failed.
#[derive(Debug)]
enum StepError {
    Stack(StackError),
    Session(SessionError),
    NoResumeToken,
    Reconnect,
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::Stack(e) => write!(f, "{e}"),
            StepError::Session(e) => write!(f, "session: {e}"),
            StepError::NoResumeToken => f.write_str("connection lost before any welcome"),
            StepError::Reconnect => write!(
                f,
                "could not reconnect in {RECONNECT_ATTEMPTS} attempts {RECONNECT_PAUSE:?} apart"
            ),
        }
    }
}

impl From<StackError> for StepError {
    fn from(e: StackError) -> Self {
        StepError::Stack(e)
    }
}

impl From<SessionError> for StepError {
    fn from(e: SessionError) -> Self {
        StepError::Session(e)
    }
}
