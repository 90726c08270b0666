//! The str0m 0.25 stack behind a [`StackHandle`]: one task owns the `Rtc`, its UDP socket on
//! 127.0.0.1 and the commands of the peer that drives it.
//!
//! str0m discovers no addresses itself: the only local candidate is the one added here, a host
//! candidate for the socket bound on 127.0.0.1, so ICE never leaves the loopback interface.
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use signaling_core::wire::{IceCandidate, SdpKind};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::stack::{StackCommand, StackError, StackEvent, StackHandle};
use super::Bounds;

const NAME: &str = "str0m";

fn err(e: impl std::fmt::Display) -> StackError {
    StackError::new(NAME, e)
}

/// Starts a str0m peer on a UDP socket bound to `127.0.0.1:0`. Its queues hold
/// [`Bounds::stack_queue`] entries; [`Bounds::send_buffer`] messages may wait for room in SCTP's
/// send buffer (a send beyond that fails).
pub async fn spawn(bounds: Bounds) -> Result<StackHandle, StackError> {
    str0m::crypto::from_feature_flags().install_process_default();
    let socket = UdpSocket::bind("127.0.0.1:0").await.map_err(err)?;
    let local = socket.local_addr().map_err(err)?;
    let mut rtc = Rtc::builder().build(Instant::now());
    let candidate = Candidate::host(local, "udp").map_err(err)?;
    let candidate_text = candidate.to_sdp_string();
    rtc.add_local_candidate(candidate);
    let (cmd_tx, cmd_rx) = mpsc::channel(bounds.stack_queue.max(1));
    let (ev_tx, ev_rx) = mpsc::channel(bounds.stack_queue.max(1));
    let task = Str0mTask {
        rtc,
        socket,
        local,
        candidate_text,
        commands: cmd_rx,
        events: ev_tx,
        pending_offer: None,
        offered: Changes::default(),
        changes: Changes::default(),
        channels: HashMap::new(),
        labels: HashMap::new(),
        outbox: VecDeque::new(),
        media: HashMap::new(),
        announced_ufrag: None,
        has_app: false,
        max_outbox: bounds.send_buffer,
    };
    tokio::spawn(task.run());
    Ok(StackHandle::new(NAME, cmd_tx, ev_rx))
}

/// Changes waiting for the next offer.
#[derive(Clone, Default)]
struct Changes {
    channels: Vec<String>,
    audio: bool,
    restart: bool,
}

struct Str0mTask {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    /// Our host candidate, trickled once per local ICE generation.
    candidate_text: String,
    commands: mpsc::Receiver<StackCommand>,
    events: mpsc::Sender<StackEvent>,
    pending_offer: Option<SdpPendingOffer>,
    /// The changes the pending offer carries, given back if it is rolled back.
    offered: Changes,
    changes: Changes,
    channels: HashMap<ChannelId, String>,
    labels: HashMap<String, ChannelId>,
    outbox: VecDeque<(ChannelId, Vec<u8>)>,
    /// Media sections and the payloads received on each.
    media: HashMap<String, (String, u64)>,
    /// The local ufrag our candidate was last trickled for.
    announced_ufrag: Option<String>,
    /// The call has an `m=application` section (an SCTP association for data channels).
    has_app: bool,
    /// Messages that may wait in `outbox`.
    max_outbox: usize,
}

impl Changes {
    fn is_empty(&self) -> bool {
        self.channels.is_empty() && !self.audio && !self.restart
    }

    /// Adds `other`'s changes to these.
    fn merge(&mut self, other: Changes) {
        self.channels.extend(other.channels);
        self.audio |= other.audio;
        self.restart |= other.restart;
    }
}

impl Str0mTask {
    async fn run(mut self) {
        let mut buf = vec![0u8; 2000];
        loop {
            let timeout = match self.drive().await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "str0m stopped");
                    return;
                }
            };
            let wait = timeout.saturating_duration_since(Instant::now());
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => {
                    let Ok((n, source)) = received else { continue };
                    feed_datagram(&mut self.rtc, self.local, source, &buf[..n]);
                }
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.command(cmd).await,
                    None => return,
                },
                () = tokio::time::sleep(wait.max(Duration::from_micros(100))) => {
                    let _ = self.rtc.handle_input(Input::Timeout(Instant::now()));
                }
            }
        }
    }

    /// Drains str0m's output: sends datagrams, reports events; the next timeout.
    async fn drive(&mut self) -> Result<Instant, StackError> {
        self.flush_outbox();
        loop {
            match self.rtc.poll_output().map_err(err)? {
                Output::Timeout(t) => return Ok(t),
                Output::Transmit(t) => {
                    let _ = self.socket.send_to(&t.contents, t.destination).await;
                }
                Output::Event(e) => self.event(e).await,
            }
        }
    }

    async fn emit(&self, event: StackEvent) {
        let _ = self.events.send(event).await;
    }

    async fn event(&mut self, event: Event) {
        match event {
            Event::Connected => self.emit(StackEvent::Connected).await,
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.emit(StackEvent::Disconnected).await;
            }
            Event::ChannelOpen(id, label) => {
                self.channels.insert(id, label.clone());
                self.labels.insert(label.clone(), id);
                self.emit(StackEvent::ChannelOpen(label)).await;
            }
            Event::ChannelData(d) => {
                let label = self.channels.get(&d.id).cloned().unwrap_or_default();
                self.emit(StackEvent::Message {
                    label,
                    data: d.data,
                })
                .await;
            }
            Event::ChannelClose(id) => {
                if let Some(label) = self.channels.remove(&id) {
                    self.labels.remove(&label);
                }
            }
            Event::MediaAdded(m) => {
                let kind = match m.kind {
                    MediaKind::Audio => "audio",
                    MediaKind::Video => "video",
                };
                self.media.insert(m.mid.to_string(), (kind.to_owned(), 0));
                self.emit(StackEvent::Media {
                    mid: m.mid.to_string(),
                    kind: kind.to_owned(),
                    packets: 0,
                })
                .await;
            }
            Event::MediaData(d) => {
                let mid = d.mid.to_string();
                let entry = self
                    .media
                    .entry(mid.clone())
                    .or_insert_with(|| (String::new(), 0));
                entry.1 += 1;
                // Reported on the first packet and then every 50th: enough to follow.
                if entry.1 == 1 || entry.1.is_multiple_of(50) {
                    let (kind, packets) = entry.clone();
                    self.emit(StackEvent::Media { mid, kind, packets }).await;
                }
            }
            _ => {}
        }
    }

    fn flush_outbox(&mut self) {
        while let Some((id, data)) = self.outbox.front() {
            let Some(mut channel) = self.rtc.channel(*id) else {
                self.outbox.pop_front();
                continue;
            };
            match channel.write(true, data) {
                Ok(true) => {
                    self.outbox.pop_front();
                }
                // No room in SCTP's buffer: retry after the next input.
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "str0m could not send a message");
                    self.outbox.pop_front();
                }
            }
        }
    }

    /// Trickles our host candidate once per local ICE generation, after the description that
    /// starts it was set.
    async fn announce_candidate(&mut self) {
        let ufrag = self.rtc.direct_api().local_ice_credentials().ufrag;
        if self.announced_ufrag.as_deref() == Some(ufrag.as_str()) {
            return;
        }
        self.announced_ufrag = Some(ufrag);
        // Index 0: with BUNDLE the first m-section carries the transport, in an offer of ours
        // and in our answer to an offer alike. (Left without mid and index, the negotiation
        // would name the mid of the description set when the candidate is sent, which may be
        // an offer about to be rolled back; str0m keeps its ICE credentials across offer and
        // answer, so the candidate is not sent again for the answer.)
        let mut candidate = IceCandidate::new(self.candidate_text.clone());
        candidate.sdp_m_line_index = Some(0);
        self.emit(StackEvent::LocalCandidate(candidate)).await;
        self.emit(StackEvent::EndOfCandidates).await;
    }

    async fn command(&mut self, cmd: StackCommand) {
        match cmd {
            StackCommand::CreateOffer(tx) => {
                let result = self.create_offer();
                if result.is_ok() {
                    self.announce_candidate().await;
                }
                let _ = tx.send(result);
            }
            StackCommand::ApplyRemote(kind, sdp, tx) => {
                let result = self.apply_remote(kind, &sdp);
                // An answer of ours, or the peer's answer to our ICE restart, starts a local
                // generation (str0m takes new credentials when the exchange completes).
                if result.is_ok() {
                    self.announce_candidate().await;
                }
                let _ = tx.send(result);
            }
            StackCommand::Rollback(tx) => {
                // Dropping the pending offer is str0m's rollback. Its changes are lost in
                // str0m: they wait here for the next offer.
                self.pending_offer = None;
                let offered = std::mem::take(&mut self.offered);
                self.changes.merge(offered);
                let _ = tx.send(Ok(()));
            }
            StackCommand::AddRemoteCandidate(c, tx) => {
                let result = Candidate::from_sdp_string(&c.candidate)
                    .map(|mut parsed| {
                        if let Some(u) = &c.username_fragment {
                            parsed.set_ufrag(u);
                        }
                        self.rtc.add_remote_candidate(parsed);
                    })
                    .map_err(err);
                let _ = tx.send(result);
            }
            StackCommand::RestartIce(tx) => {
                self.changes.restart = true;
                let _ = tx.send(Ok(()));
            }
            StackCommand::OpenChannel(label, tx) => {
                self.changes.channels.push(label);
                self.open_channels_in_band();
                let _ = tx.send(Ok(()));
            }
            StackCommand::AddAudio(tx) => {
                self.changes.audio = true;
                let _ = tx.send(Ok(()));
            }
            StackCommand::HasChanges(tx) => {
                let _ = tx.send(Ok(!self.changes.is_empty()));
            }
            StackCommand::Send(label, data, tx) => {
                let result = match self.labels.get(&label) {
                    Some(_) if self.outbox.len() >= self.max_outbox => Err(err(format!(
                        "more than {} messages waiting",
                        self.max_outbox
                    ))),
                    Some(id) => {
                        self.outbox.push_back((*id, data));
                        self.flush_outbox();
                        Ok(())
                    }
                    None => Err(err(format!("no open channel {label:?}"))),
                };
                let _ = tx.send(result);
            }
        }
    }

    /// Once the call has an SCTP association, channels open in-band (DCEP), without an offer.
    fn open_channels_in_band(&mut self) {
        if !self.has_app || self.changes.channels.is_empty() {
            return;
        }
        let mut api = self.rtc.sdp_api();
        for label in self.changes.channels.drain(..) {
            api.add_channel(label);
        }
        let _ = api.apply();
    }

    fn create_offer(&mut self) -> Result<String, StackError> {
        let changes = std::mem::take(&mut self.changes);
        self.offered = changes.clone();
        let mut api = self.rtc.sdp_api();
        for label in changes.channels {
            api.add_channel(label);
        }
        if changes.audio {
            api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        }
        if changes.restart {
            api.ice_restart(true);
        }
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| err("nothing to offer: no pending change"))?;
        self.pending_offer = Some(pending);
        Ok(offer.to_sdp_string())
    }

    fn apply_remote(&mut self, kind: SdpKind, sdp: &str) -> Result<Option<String>, StackError> {
        let has_app = sdp.contains("\nm=application");
        match kind {
            SdpKind::Offer => {
                let offer = SdpOffer::from_sdp_string(sdp).map_err(err)?;
                // Accepting an offer rolls back a pending one of ours.
                self.pending_offer = None;
                let answer = self.rtc.sdp_api().accept_offer(offer).map_err(err)?;
                self.has_app |= has_app;
                self.open_channels_in_band();
                Ok(Some(answer.to_sdp_string()))
            }
            SdpKind::Answer => {
                let answer = SdpAnswer::from_sdp_string(sdp).map_err(err)?;
                let pending = self
                    .pending_offer
                    .take()
                    .ok_or_else(|| err("an answer without a pending offer"))?;
                self.rtc
                    .sdp_api()
                    .accept_answer(pending, answer)
                    .map_err(err)?;
                self.offered = Changes::default();
                self.has_app |= has_app;
                self.open_channels_in_band();
                Ok(None)
            }
            SdpKind::Pranswer => Err(err("provisional answers are not supported")),
        }
    }
}

/// Hands a UDP datagram that arrived on `local` from `source` to str0m. One it cannot read
/// or refuses (not STUN, DTLS or SRTP for this connection) is dropped, with a debug log.
pub fn feed_datagram(rtc: &mut Rtc, local: SocketAddr, source: SocketAddr, data: &[u8]) {
    let Ok(receive) = Receive::new(Protocol::Udp, source, local, data) else {
        return;
    };
    if let Err(e) = rtc.handle_input(Input::Receive(Instant::now(), receive)) {
        tracing::debug!(error = %e, "str0m refused a datagram");
    }
}
