//! The Rust↔Rust call through the relay, step by step, with what each step must show and how
//! long it took:
//!
//! 1. **Glare.** Both peers join one room (the first is impolite, the one joining the occupied
//!    room polite, as the relay's welcome says) and make an offer at the same moment: each holds
//!    what arrives until both offers are on the wire (as a slow wire would), so each offer
//!    collides with the other. The
//!    polite side must roll back, the impolite side must ignore the peer's offer, and each
//!    side's data channel must open (the polite side's with the call the impolite offer made).
//! 2. **Data.** Numbered messages both ways, each checked in order and byte for byte.
//! 3. **ICE restart.** The first peer restarts ICE; its previous generation's candidate follows
//!    the restart offer on the wire, as a late candidate would. The other side must see
//!    `RemoteIceRestart`, the library must drop the late candidate (`CandidatesDropped`) and
//!    hand the stack only candidates of the new generation, and data must flow afterwards.
//! 4. **Resume.** The first peer's WebSocket is reset mid-call (a TCP reset, no close frame);
//!    it reconnects with its resume token and the session carries on over the new connection.
//!    Then it adds an audio section and a new data channel and offers: the other side must get
//!    the new m-section, the new channel must open and carry messages.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use signaling_core::negotiation::DropReason;
use signaling_ws::WsConfig;

use super::link::Link;
use super::peer::{self, PeerCommand, PeerConfig, PeerEvent, PeerHandle, WaitError};
use super::stack::{StackEvent, StackHandle};
use super::{str0m_stack, webrtc_stack, Bounds};

/// Settings of one call.
#[derive(Clone, Debug)]
pub struct CallOptions {
    /// The relay's address (its WebSocket endpoint is `ws://ADDR/ws`).
    pub relay: SocketAddr,
    /// The room (unique per call).
    pub room: String,
    /// Messages each way in step 2.
    pub messages: u32,
    /// Which stack joins first (and so is impolite, restarts ICE and loses its socket).
    pub first: StackKind,
    /// How long any one wait may take.
    pub step_limit: Duration,
    /// The bounds of the peers, their stacks and the link.
    pub bounds: Bounds,
}

/// A WebRTC stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackKind {
    /// webrtc-rs 0.21 (the `webrtc` crate).
    WebrtcRs,
    /// str0m 0.25.
    Str0m,
}

impl StackKind {
    /// The stack's name.
    pub fn name(self) -> &'static str {
        match self {
            StackKind::WebrtcRs => "webrtc-rs",
            StackKind::Str0m => "str0m",
        }
    }

    /// The other stack.
    pub fn other(self) -> Self {
        match self {
            StackKind::WebrtcRs => StackKind::Str0m,
            StackKind::Str0m => StackKind::WebrtcRs,
        }
    }

    /// Starts this stack.
    pub async fn spawn(self, bounds: Bounds) -> Result<StackHandle, CallError> {
        let stack = match self {
            StackKind::WebrtcRs => webrtc_stack::spawn(bounds).await,
            StackKind::Str0m => str0m_stack::spawn(bounds).await,
        };
        stack.map_err(|e| CallError::Setup(e.to_string()))
    }
}

/// What a call showed, with its timings.
#[derive(Clone, Debug)]
pub struct CallReport {
    /// The first (impolite) peer's stack.
    pub first: StackKind,
    /// Step 1: from the second peer's WebSocket open (when the call can begin) to the first
    /// data channel open, and to both channels open at both ends.
    pub ws_to_channel: (Duration, Duration),
    /// Step 1: the collisions seen: the first peer ignored an offer, the second rolled back.
    pub collisions: (usize, usize),
    /// Step 2: messages each way, and the time from the first send to the last arrival.
    pub messages: (u32, Duration),
    /// Step 3: from the restart command to the first message after it arriving. About 1 s
    /// when that message was first sent before the new candidate pair carried packets: SCTP
    /// then resends it after its retransmission timeout (1 s at least).
    pub restart_recovery: Duration,
    /// Step 3: late candidates of the old generation the second peer's library dropped.
    pub stale_dropped: usize,
    /// Step 3: candidates applied after the restart, all of the new generation.
    pub new_candidates: usize,
    /// Step 4: from the reset to the new connection's welcome, and to the first message on the
    /// channel opened after the resume.
    pub resume: (Duration, Duration),
}

/// Why a call failed.
#[derive(Debug)]
pub enum CallError {
    /// A stack or connection could not start.
    Setup(String),
    /// A peer did not show what a step needs.
    Wait(WaitError),
    /// A step showed something wrong.
    Check(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Setup(e) => write!(f, "setup: {e}"),
            CallError::Wait(e) => write!(f, "{e}"),
            CallError::Check(e) => write!(f, "check failed: {e}"),
        }
    }
}

impl std::error::Error for CallError {}

impl From<WaitError> for CallError {
    fn from(e: WaitError) -> Self {
        CallError::Wait(e)
    }
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), CallError> {
    if ok {
        Ok(())
    } else {
        Err(CallError::Check(what()))
    }
}

/// The label of the data channel a stack opens in step 1.
pub fn channel_of(kind: StackKind) -> String {
    format!("from-{}", kind.name())
}

/// The label of the data channel opened after the resume.
pub const AFTER_RESUME: &str = "after-resume";

/// Runs the four steps; `progress` hears a line per step.
pub async fn run(
    options: &CallOptions,
    mut progress: impl FnMut(&str),
) -> Result<CallReport, CallError> {
    let limit = options.step_limit;
    let (first_kind, second_kind) = (options.first, options.first.other());
    // The first peer reaches the relay through a link that step 4 cuts.
    let bounds = options.bounds;
    let link = Link::start(options.relay, bounds.link_connections)
        .await
        .map_err(|e| CallError::Setup(format!("link: {e}")))?;
    let config = |name: &str, addr: SocketAddr| PeerConfig {
        name: name.to_owned(),
        url: format!("ws://{addr}/ws"),
        room: options.room.clone(),
        offer_on_join: false,
        glare_on_welcome: false,
    };
    let ws = WsConfig::default();
    let mut a = peer::start(
        config(first_kind.name(), link.addr()),
        first_kind.spawn(bounds).await?,
        ws.clone(),
        bounds,
    )
    .await
    .map_err(|e| CallError::Setup(e.to_string()))?;
    let welcome = |e: &PeerEvent| match e {
        PeerEvent::Welcome { polite, .. } => Some(*polite),
        _ => None,
    };
    let (_, a_polite) = a.wait_event("welcome", 0, limit, welcome).await?;
    let mut b = peer::start(
        config(second_kind.name(), options.relay),
        second_kind.spawn(bounds).await?,
        ws,
        bounds,
    )
    .await
    .map_err(|e| CallError::Setup(e.to_string()))?;
    let (_, b_polite) = b.wait_event("welcome", 0, limit, welcome).await?;
    a.wait_event("relay/joined", 0, limit, |e| {
        matches!(e, PeerEvent::Joined(_)).then_some(())
    })
    .await?;
    check(!a_polite && b_polite, || {
        format!("roles from the welcome: first polite={a_polite}, second polite={b_polite}")
    })?;
    progress(&format!(
        "both in room {}: {} impolite, {} polite",
        options.room,
        a.name(),
        b.name()
    ));

    // Step 1: glare.
    let (a_label, b_label) = (channel_of(first_kind), channel_of(second_kind));
    a.command(PeerCommand::OpenChannel(a_label.clone())).await;
    b.command(PeerCommand::OpenChannel(b_label.clone())).await;
    // Both offers go out before either peer reads the other's: each holds what arrives until
    // both have sent theirs, as a slow wire would.
    let (a_mark, b_mark) = (a.mark(), b.mark());
    for p in [&a, &b] {
        p.command(PeerCommand::HoldIncoming(true)).await;
    }
    let holding = |e: &PeerEvent| matches!(e, PeerEvent::Holding(true)).then_some(());
    a.wait_event("holding", a_mark, limit, holding).await?;
    b.wait_event("holding", b_mark, limit, holding).await?;
    for p in [&a, &b] {
        p.command(PeerCommand::Offer).await;
    }
    let sent = |e: &PeerEvent| matches!(e, PeerEvent::OfferSent).then_some(());
    a.wait_event("its offer sent", a_mark, limit, sent).await?;
    b.wait_event("its offer sent", b_mark, limit, sent).await?;
    for p in [&a, &b] {
        p.command(PeerCommand::HoldIncoming(false)).await;
    }
    let opened = |label: &str| {
        let label = label.to_owned();
        move |e: &PeerEvent| match e {
            PeerEvent::Stack(StackEvent::ChannelOpen(l)) if *l == label => Some(()),
            _ => None,
        }
    };
    for label in [&a_label, &b_label] {
        a.wait_event(&format!("channel {label} open"), 0, limit, opened(label))
            .await?;
        b.wait_event(&format!("channel {label} open"), 0, limit, opened(label))
            .await?;
    }
    // The call can start once the second peer is in the room: from its WebSocket opening to
    // the first data channel open (either side), and to all four channel ends open.
    let ws_open = b
        .observed(|o| {
            o.find(0, |e| {
                matches!(e, PeerEvent::WebSocketOpen { .. }).then_some(())
            })
        })
        .map(|(at, ())| at);
    let mut opened_at = Vec::new();
    for p in [&a, &b] {
        for label in [&a_label, &b_label] {
            if let Some((at, ())) = p.observed(|o| o.find(0, opened(label))) {
                opened_at.push(at);
            }
        }
    }
    let since = |from: Option<Instant>, to: Option<Instant>| match (from, to) {
        (Some(f), Some(t)) => t.saturating_duration_since(f),
        _ => Duration::ZERO,
    };
    let ws_to_channel = (
        since(ws_open, opened_at.iter().min().copied()),
        since(ws_open, opened_at.iter().max().copied()),
    );
    let count = |p: &PeerHandle, event: PeerEvent| {
        p.observed(|o| o.log.iter().filter(|(_, e)| *e == event).count())
    };
    let collisions = (
        count(&a, PeerEvent::OfferIgnored),
        count(&b, PeerEvent::RolledBack),
    );
    check(collisions.0 >= 1 && collisions.1 >= 1, || {
        format!(
            "no collision: {} ignored {} offers, {} rolled back {} times",
            a.name(),
            collisions.0,
            b.name(),
            collisions.1
        )
    })?;
    progress(&format!(
        "1. glare: {} ignored the colliding offer, {} rolled back; from the second \
         WebSocket open: first data channel open {:.1} ms, both channels open at both ends \
         {:.1} ms",
        a.name(),
        b.name(),
        ms(ws_to_channel.0),
        ms(ws_to_channel.1)
    ));

    // Step 2: messages both ways.
    let n = options.messages;
    let started = Instant::now();
    a.command(PeerCommand::SendMessages {
        label: a_label.clone(),
        first: 0,
        count: n,
    })
    .await;
    b.command(PeerCommand::SendMessages {
        label: b_label.clone(),
        first: 0,
        count: n,
    })
    .await;
    let at_b = b.wait_messages(&a_label, n, limit).await?;
    let at_a = a.wait_messages(&b_label, n, limit).await?;
    for (inbox, who) in [(&at_b, b.name()), (&at_a, a.name())] {
        check(inbox.mismatch.is_none() && inbox.count == n, || {
            format!(
                "{who} received {} of {n} in order; then {:?}",
                inbox.count, inbox.mismatch
            )
        })?;
    }
    let last = at_a.last_at.max(at_b.last_at);
    let messages_time = since(Some(started), last);
    progress(&format!(
        "2. {n} messages each way, all in order and intact, in {:.1} ms",
        ms(messages_time)
    ));

    // Step 3: ICE restart with a late candidate of the old generation.
    let a_mark = a.mark();
    let b_mark = b.mark();
    let started = Instant::now();
    a.command(PeerCommand::RestartIce {
        late_candidate: true,
    })
    .await;
    let (_, new_ufrag) = b
        .wait_event("RemoteIceRestart", b_mark, limit, |e| match e {
            PeerEvent::RemoteIceRestart(u) => Some(u.clone()),
            _ => None,
        })
        .await?;
    let (_, stale_dropped) = b
        .wait_event("the late candidate dropped", b_mark, limit, |e| match e {
            PeerEvent::CandidatesDropped(DropReason::StaleGeneration, n) => Some(*n),
            _ => None,
        })
        .await?;
    a.wait_event("the restart answered", a_mark, limit, |e| {
        matches!(e, PeerEvent::Negotiated).then_some(())
    })
    .await?;
    a.command(PeerCommand::SendMessages {
        label: a_label.clone(),
        first: n,
        count: 10,
    })
    .await;
    let inbox = b.wait_messages(&a_label, n + 10, limit).await?;
    check(inbox.mismatch.is_none(), || {
        format!("after the restart: {:?}", inbox.mismatch)
    })?;
    let restart_recovery = b
        .observed(|o| o.inboxes.get(&a_label).and_then(|i| i.last_at))
        .map_or(Duration::ZERO, |t| t.saturating_duration_since(started));
    // A candidate of a new generation is trickled (str0m sends its own once an exchange gives
    // it new credentials; webrtc-rs keeps its candidates, which its description carries): wait
    // for one to be handed to a stack on either side.
    let trickled = |mark: usize| {
        move |o: &super::peer::Observed| {
            let mut restarted = false;
            o.log[mark.saturating_sub(o.dropped).min(o.log.len())..]
                .iter()
                .any(|(_, e)| match e {
                    PeerEvent::RemoteIceRestart(_) => {
                        restarted = true;
                        false
                    }
                    PeerEvent::CandidateApplied(_) => restarted,
                    _ => false,
                })
                .then_some(())
        }
    };
    let what = "a trickled candidate of the new generation";
    tokio::select! {
        found = a.wait(what, limit, trickled(a_mark)) => found?,
        found = b.wait(what, limit, trickled(b_mark)) => found?,
    }
    // On each side, the candidates handed to the stack after the peer's restart (both sides
    // restart: the answer has new credentials too) are all of the new generation.
    let after_restart = |p: &PeerHandle| {
        p.observed(|o| {
            let mut ufrag: Option<String> = None;
            let mut applied = Vec::new();
            for (_, e) in o.log.iter() {
                match e {
                    PeerEvent::RemoteIceRestart(u) => {
                        ufrag = Some(u.clone());
                        applied.clear();
                    }
                    PeerEvent::CandidateApplied(u) if ufrag.is_some() => applied.push(u.clone()),
                    _ => {}
                }
            }
            (ufrag, applied)
        })
    };
    let mut new_candidates = 0;
    for p in [&a, &b] {
        let (ufrag, applied) = after_restart(p);
        check(applied.iter().all(|u| *u == ufrag), || {
            format!(
                "{}: candidates applied after the restart (new ufrag {ufrag:?}): {applied:?}",
                p.name()
            )
        })?;
        new_candidates += applied.len();
    }
    check(new_candidates >= 1, || {
        "no candidate of the new generation was trickled after the restart".to_owned()
    })?;
    progress(&format!(
        "3. ICE restart: {} saw RemoteIceRestart (ufrag {new_ufrag}), dropped {stale_dropped} \
         late candidate(s) of the old generation; {new_candidates} trickled candidate(s) of the \
         new generations applied, no other; data flowed again {:.1} ms after the restart began",
        b.name(),
        ms(restart_recovery)
    ));

    // Step 4: the first peer's socket is reset; it resumes; a renegotiation follows.
    let a_mark = a.mark();
    let b_mark = b.mark();
    let cut_at = Instant::now();
    link.cut();
    a.wait_event("TransportLost", a_mark, limit, |e| {
        matches!(e, PeerEvent::TransportLost(_)).then_some(())
    })
    .await?;
    let (welcome_at, polite) = a
        .wait_event("the welcome after resuming", a_mark, limit, welcome)
        .await?;
    check(!polite, || "the resumed peer lost its role".to_owned())?;
    a.command(PeerCommand::AddAudio).await;
    a.command(PeerCommand::OpenChannel(AFTER_RESUME.to_owned()))
        .await;
    a.command(PeerCommand::Offer).await;
    b.wait_event("the new audio section", b_mark, limit, |e| match e {
        PeerEvent::Stack(StackEvent::Media { kind, .. }) if kind == "audio" => Some(()),
        _ => None,
    })
    .await?;
    a.wait_event(
        "the channel opened after the resume",
        a_mark,
        limit,
        opened(AFTER_RESUME),
    )
    .await?;
    a.command(PeerCommand::SendMessages {
        label: AFTER_RESUME.to_owned(),
        first: 0,
        count: 10,
    })
    .await;
    let inbox = b.wait_messages(AFTER_RESUME, 10, limit).await?;
    check(inbox.mismatch.is_none() && inbox.count == 10, || {
        format!("after the resume: {:?}", inbox.mismatch)
    })?;
    let resume = (
        welcome_at.saturating_duration_since(cut_at),
        since(Some(cut_at), inbox.first_at),
    );
    progress(&format!(
        "4. resume: {}'s socket reset; welcomed back {:.1} ms later; renegotiated (audio \
         section at {}), channel {AFTER_RESUME:?} carried its first message {:.1} ms after the \
         reset",
        a.name(),
        ms(resume.0),
        b.name(),
        ms(resume.1)
    ));
    let failures: Vec<String> = [&a, &b]
        .iter()
        .flat_map(|p| {
            p.observed(|o| {
                o.log
                    .iter()
                    .filter_map(|(_, e)| match e {
                        PeerEvent::Failed(why) => Some(format!("{}: {why}", p.name())),
                        PeerEvent::CandidateRefused(why) => {
                            Some(format!("{}: a candidate refused: {why}", p.name()))
                        }
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    check(failures.is_empty(), || failures.join("; "))?;
    // The only errors on the wire: the impolite side refusing candidates of the offer it
    // ignored, one error frame each, heard by the polite side.
    let count_of = |p: &PeerHandle, pick: fn(&PeerEvent) -> bool| {
        p.observed(|o| o.log.iter().filter(|(_, e)| pick(e)).count())
    };
    let refused = count_of(&a, |e| matches!(e, PeerEvent::IgnoredOfferCandidate));
    let heard = count_of(&b, |e| matches!(e, PeerEvent::RemoteError(_)));
    let other_errors = count_of(&a, |e| matches!(e, PeerEvent::RemoteError(_)))
        + count_of(&b, |e| matches!(e, PeerEvent::IgnoredOfferCandidate));
    check(heard == refused && other_errors == 0, || {
        format!(
            "unexpected errors: {} refused {refused} candidate(s) of the ignored offer, {}              heard {heard} error(s); {other_errors} other(s)",
            a.name(),
            b.name()
        )
    })?;
    Ok(CallReport {
        first: first_kind,
        ws_to_channel,
        collisions,
        messages: (n, messages_time),
        restart_recovery,
        stale_dropped,
        new_candidates,
        resume,
    })
}

/// Milliseconds, for reports.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
