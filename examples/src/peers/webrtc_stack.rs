//! The webrtc-rs 0.21 stack (`webrtc` crate) behind a [`StackHandle`]: one task owns the
//! `PeerConnection` and the commands of the peer that drives it; the connection's event handler
//! and one reader task per data channel report to the same event queue.
//!
//! ICE stays on loopback: the connection binds one UDP socket on `127.0.0.1:0` (a concrete
//! address binds exactly that interface, where `0.0.0.0` would mean every interface), no ICE
//! servers are configured (no server-reflexive or relayed candidates), and multicast DNS is off
//! (no multicast socket, no `.local` names). webrtc-rs 0.21 has no interface or IP filter yet
//! (`SettingEngineBuilder::with_interface_filter`/`with_ip_filter` are commented out in `rtc`),
//! so the bound address is the filter.
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use signaling_core::wire::{IceCandidate, SdpKind};
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceGatheringState,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription, Registry,
    SettingEngineBuilder,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

use super::stack::{StackCommand, StackError, StackEvent, StackHandle};
use super::Bounds;

const NAME: &str = "webrtc-rs";

fn err(e: impl std::fmt::Display) -> StackError {
    StackError::new(NAME, e)
}

type Channels = Arc<Mutex<HashMap<String, Arc<dyn DataChannel>>>>;

/// Starts a webrtc-rs peer with one UDP socket on `127.0.0.1`. Its queues hold
/// [`Bounds::stack_queue`] entries; each data channel buffers [`Bounds::send_buffer`] KiB before
/// a send waits (webrtc-rs buffers without limit by default).
pub async fn spawn(bounds: Bounds) -> Result<StackHandle, StackError> {
    let (ev_tx, ev_rx) = mpsc::channel(bounds.stack_queue.max(1));
    let channels: Channels = Arc::default();
    let handler = Arc::new(Handler {
        events: ev_tx.clone(),
        channels: channels.clone(),
    });
    let mut media = MediaEngine::default();
    media.register_default_codecs().map_err(err)?;
    let registry = register_default_interceptors(Registry::new(), &mut media).map_err(err)?;
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::default().build())
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .with_handler(handler)
        .with_udp_addrs(vec!["127.0.0.1:0"])
        .with_data_channel_send_buffer_limit(bounds.send_buffer.max(1).saturating_mul(1024))
        .build()
        .await
        .map_err(err)?;
    let (cmd_tx, cmd_rx) = mpsc::channel(bounds.stack_queue.max(1));
    let task = WebrtcTask {
        known_mids: HashSet::new(),
        pc: Arc::new(pc),
        commands: cmd_rx,
        events: ev_tx,
        channels,
    };
    tokio::spawn(task.run());
    Ok(StackHandle::new(NAME, cmd_tx, ev_rx))
}

struct Handler {
    events: mpsc::Sender<StackEvent>,
    channels: Channels,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        let Ok(init) = event.candidate.to_json() else {
            return;
        };
        if init.candidate.is_empty() {
            return;
        }
        // webrtc-rs writes `sdpMid: ""` and index 0 for every candidate; the negotiation takes
        // the empty mid for none and fills it in from the local description.
        let mut candidate = IceCandidate::new(init.candidate);
        candidate.sdp_mid = init.sdp_mid.map(Arc::from);
        candidate.sdp_m_line_index = init.sdp_mline_index;
        let _ = self
            .events
            .send(StackEvent::LocalCandidate(candidate))
            .await;
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.events.send(StackEvent::EndOfCandidates).await;
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let event = match state {
            RTCPeerConnectionState::Connected => StackEvent::Connected,
            RTCPeerConnectionState::Disconnected | RTCPeerConnectionState::Failed => {
                StackEvent::Disconnected
            }
            _ => return,
        };
        let _ = self.events.send(event).await;
    }

    async fn on_data_channel(&self, dc: Arc<dyn DataChannel>) {
        watch_channel(dc, self.events.clone(), self.channels.clone());
    }

    async fn on_track(&self, track: Arc<dyn webrtc::media_stream::track_remote::TrackRemote>) {
        let events = self.events.clone();
        tokio::spawn(async move {
            let kind = track.kind().await.to_string();
            let mut packets = 0u64;
            while let Some(event) = track.poll().await {
                if let webrtc::media_stream::track_remote::TrackRemoteEvent::OnRtpPacket(_) = event
                {
                    packets += 1;
                    if packets == 1 || packets.is_multiple_of(50) {
                        let mid = String::new();
                        let kind = kind.clone();
                        let _ = events.send(StackEvent::Media { mid, kind, packets }).await;
                    }
                }
            }
        });
    }
}

/// Reads a data channel's events in a task of its own (a handler must not block the driver):
/// reports it open, and each message.
fn watch_channel(dc: Arc<dyn DataChannel>, events: mpsc::Sender<StackEvent>, channels: Channels) {
    tokio::spawn(async move {
        let Ok(label) = dc.label().await else { return };
        while let Some(event) = dc.poll().await {
            match event {
                DataChannelEvent::OnOpen => {
                    if let Ok(mut map) = channels.lock() {
                        map.insert(label.clone(), dc.clone());
                    }
                    let _ = events.send(StackEvent::ChannelOpen(label.clone())).await;
                }
                DataChannelEvent::OnMessage(m) => {
                    let data = m.data.to_vec();
                    let label = label.clone();
                    let _ = events.send(StackEvent::Message { label, data }).await;
                }
                DataChannelEvent::OnClose => break,
                _ => {}
            }
        }
        if let Ok(mut map) = channels.lock() {
            map.remove(&label);
        }
    });
}

/// The audio and video sections of an SDP: their mid and kind.
fn media_sections(sdp: &str) -> Vec<(String, String)> {
    let mut sections = Vec::new();
    let mut kind: Option<&str> = None;
    for line in sdp.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            kind = m
                .split(' ')
                .next()
                .filter(|k| matches!(*k, "audio" | "video"));
        } else if let (Some(k), Some(mid)) = (kind, line.strip_prefix("a=mid:")) {
            sections.push((mid.trim().to_owned(), k.to_owned()));
        }
    }
    sections
}

struct WebrtcTask {
    /// Media sections already reported.
    known_mids: HashSet<String>,
    pc: Arc<dyn PeerConnection>,
    commands: mpsc::Receiver<StackCommand>,
    events: mpsc::Sender<StackEvent>,
    channels: Channels,
}

impl WebrtcTask {
    async fn run(mut self) {
        while let Some(cmd) = self.commands.recv().await {
            self.command(cmd).await;
        }
        let _ = self.pc.close().await;
    }

    async fn command(&mut self, cmd: StackCommand) {
        match cmd {
            StackCommand::CreateOffer(tx) => {
                let _ = tx.send(self.create_offer().await);
            }
            StackCommand::ApplyRemote(kind, sdp, tx) => {
                let sections = media_sections(&sdp);
                let result = self.apply_remote(kind, sdp).await;
                if result.is_ok() {
                    // webrtc-rs tells of a new section only once media arrives on it
                    // (`on_track`); the description says it at once.
                    for (mid, kind) in sections {
                        if self.known_mids.insert(mid.clone()) {
                            let packets = 0;
                            let _ = self
                                .events
                                .send(StackEvent::Media { mid, kind, packets })
                                .await;
                        }
                    }
                }
                let _ = tx.send(result);
            }
            StackCommand::Rollback(tx) => {
                let result = match RTCSessionDescription::rollback(None) {
                    Ok(d) => self.pc.set_local_description(d).await.map_err(err),
                    Err(e) => Err(err(e)),
                };
                let _ = tx.send(result);
            }
            StackCommand::AddRemoteCandidate(c, tx) => {
                let init = RTCIceCandidateInit {
                    candidate: c.candidate,
                    sdp_mid: c.sdp_mid.map(|m| m.to_string()),
                    sdp_mline_index: c.sdp_m_line_index,
                    username_fragment: c.username_fragment.map(|u| u.to_string()),
                    url: None,
                };
                let _ = tx.send(self.pc.add_ice_candidate(init).await.map_err(err));
            }
            StackCommand::RestartIce(tx) => {
                let _ = tx.send(self.pc.restart_ice().await.map_err(err));
            }
            StackCommand::OpenChannel(label, tx) => {
                let result = self.pc.create_data_channel(&label, None).await;
                let result = result.map(|dc| {
                    watch_channel(dc, self.events.clone(), self.channels.clone());
                });
                let _ = tx.send(result.map_err(err));
            }
            StackCommand::AddAudio(tx) => {
                let init = RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    streams: Vec::new(),
                    send_encodings: Vec::new(),
                };
                let result = self
                    .pc
                    .add_transceiver_from_kind(RtpCodecKind::Audio, Some(init))
                    .await;
                let _ = tx.send(result.map(|_| ()).map_err(err));
            }
            // Channels created before a rollback open with whichever offer brings the call its
            // SCTP association, and media sections stay until negotiated: nothing is lost.
            StackCommand::HasChanges(tx) => {
                let _ = tx.send(Ok(false));
            }
            StackCommand::Send(label, data, tx) => {
                let dc = self
                    .channels
                    .lock()
                    .ok()
                    .and_then(|map| map.get(&label).cloned());
                let result = match dc {
                    Some(dc) => dc.send(BytesMut::from(&data[..])).await.map_err(err),
                    None => Err(err(format!("no open channel {label:?}"))),
                };
                let _ = tx.send(result);
            }
        }
    }

    async fn create_offer(&self) -> Result<String, StackError> {
        let offer = self.pc.create_offer(None).await.map_err(err)?;
        let sdp = offer.sdp.clone();
        self.pc.set_local_description(offer).await.map_err(err)?;
        Ok(sdp)
    }

    async fn apply_remote(&self, kind: SdpKind, sdp: String) -> Result<Option<String>, StackError> {
        match kind {
            SdpKind::Offer => {
                let offer = RTCSessionDescription::offer(sdp).map_err(err)?;
                self.pc.set_remote_description(offer).await.map_err(err)?;
                let answer = self.pc.create_answer(None).await.map_err(err)?;
                let sdp = answer.sdp.clone();
                self.pc.set_local_description(answer).await.map_err(err)?;
                Ok(Some(sdp))
            }
            SdpKind::Answer => {
                let answer = RTCSessionDescription::answer(sdp).map_err(err)?;
                self.pc.set_remote_description(answer).await.map_err(err)?;
                Ok(None)
            }
            SdpKind::Pranswer => {
                let pranswer = RTCSessionDescription::pranswer(sdp).map_err(err)?;
                self.pc
                    .set_remote_description(pranswer)
                    .await
                    .map_err(err)?;
                Ok(None)
            }
        }
    }
}
