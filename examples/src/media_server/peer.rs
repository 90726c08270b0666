//! One connection of the media server (a WebSocket client, or a WHIP or WHEP session): a task
//! that owns its signaling (the library's [`Session`] over the WebSocket, or the commands of the
//! HTTP endpoint), one str0m [`Rtc`] and one UDP socket bound to the RTC address, and moves
//! media between that `Rtc` and the stream table.
//!
//! Everything of one connection happens on this one task, strictly in order: signaling events,
//! datagrams, frames to write as a viewer, keyframe requests as a publisher, and str0m's timer.
//! str0m is sans-IO like the negotiation: after every input its output is drained until it
//! gives a timeout.
//!
//! A WebSocket client and an HTTP session differ only in where their signaling comes from
//! ([`Signaling`]) and in how they end: a WebSocket connection ends with its socket (and when
//! its ICE connection is lost, as before), an HTTP session, which has no socket, when it is
//! deleted or when its ICE connection is not up for [`PeerSettings::ice_timeout`] (first
//! connecting, or lost and not restarted).
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use signaling::session::{self, Session, SessionConfig, SessionEvent};
use signaling::transport::{CloseCode, CloseReason, Transport};
use signaling_core::candidate::Candidate as IceCandidate;
use signaling_core::negotiation::{Config, Event as Negotiation};
use signaling_core::whip::{IceAnswer, Rejection, Restart, RestartFailure, SessionId};
use signaling_core::wire::SdpKind;
use signaling_http::whip::{OfferRequest, RestartRequest, WhipEndpoint};
use str0m::change::SdpOffer;
use str0m::media::{KeyframeRequestKind, MediaAdded, MediaData, MediaKind, MediaTime, Mid, Rid};
use str0m::net::Protocol;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::streams::{ConnId, Endpoints, Frame, JoinError, Membership, Streams};
use super::{Api, Counters, RefusedFor};

/// Keyframe requests sent to one publisher are at least this far apart; the ones in between are
/// dropped (a viewer still waiting asks again with the next frame it cannot use).
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(300);

/// A simulcast layer that delivered no frame for this long counts as stopped: the next one the
/// publisher listed is forwarded instead.
const LAYER_TIMEOUT: Duration = Duration::from_millis(500);

/// The largest datagram read from the UDP socket (WebRTC keeps below the path MTU).
const DATAGRAM_BUFFER: usize = 2048;

/// What every connection is set up with.
#[derive(Clone, Debug)]
pub(crate) struct PeerSettings {
    /// The address the UDP sockets are bound to and the only local ICE candidate.
    pub(crate) rtc_ip: IpAddr,
    /// Frames waiting to be written to one viewer.
    pub(crate) media_queue: usize,
    /// The negotiation's settings.
    pub(crate) negotiation: Config,
    /// The session driver's settings.
    pub(crate) session: SessionConfig,
    /// How long an HTTP session's ICE connection may be down (not yet connected, lost, or
    /// restarting) before the session ends.
    pub(crate) ice_timeout: Duration,
    /// Turns `true` when the server shuts down: every connection then ends, a WebSocket client
    /// closed with 1001 (going away), a WHIP/WHEP session removed at once.
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// The roles a connection asked for in its URL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Roles {
    /// `?src=NAME`: the stream it watches.
    pub(crate) src: Option<String>,
    /// `?dst=NAME`: the stream it publishes.
    pub(crate) dst: Option<String>,
}

/// Refuses a connection before its session starts: an `api/ws: <message>` error frame, then
/// `code`.
pub(crate) async fn refuse<T: Transport>(mut transport: T, code: CloseCode, message: &str) {
    signaling::transport::refuse(&mut transport, super::REQUEST_TYPE, message, code).await;
}

/// What a connection holds once it has its place in the streams and its UDP socket.
struct Opened {
    membership: Membership,
    media: mpsc::Receiver<Arc<Frame>>,
    keyframes: mpsc::Receiver<()>,
    socket: UdpSocket,
    local: SocketAddr,
}

/// Why a connection could not be opened.
enum OpenError {
    /// The stream table refused its roles.
    Join(JoinError),
    /// No UDP socket could be bound on the RTC address.
    Socket(std::io::Error),
}

/// Takes the roles in the stream table (all or nothing) and binds the UDP socket.
async fn open(
    conn: ConnId,
    roles: &Roles,
    streams: &Arc<Streams>,
    settings: &PeerSettings,
) -> Result<Opened, OpenError> {
    let (media_tx, media) = mpsc::channel(settings.media_queue.max(1));
    let (keyframes_tx, keyframes) = mpsc::channel(1);
    let membership = streams
        .join(
            conn,
            roles.src.as_deref(),
            roles.dst.as_deref(),
            Endpoints {
                media: media_tx,
                keyframes: keyframes_tx,
            },
        )
        .map_err(OpenError::Join)?;
    let socket = UdpSocket::bind((settings.rtc_ip, 0))
        .await
        .map_err(OpenError::Socket)?;
    let local = socket.local_addr().map_err(OpenError::Socket)?;
    Ok(Opened {
        membership,
        media,
        keyframes,
        socket,
        local,
    })
}

/// Serves one upgraded WebSocket connection until the client leaves or its media connection
/// ends.
pub(crate) async fn serve<T: Transport + 'static>(
    transport: T,
    conn: ConnId,
    roles: Roles,
    streams: &Arc<Streams>,
    settings: &PeerSettings,
    counters: &Arc<Counters>,
) {
    let opened = match open(conn, &roles, streams, settings).await {
        Ok(opened) => opened,
        Err(OpenError::Join(e)) => {
            tracing::info!(%conn, error = %e, "connection refused");
            counters.refused(RefusedFor::from(&e));
            refuse(transport, e.close_code(), &e.to_string()).await;
            return;
        }
        Err(OpenError::Socket(e)) => {
            tracing::warn!(%conn, error = %e, "cannot bind a UDP socket for media");
            counters.refused(RefusedFor::NoUdpPort);
            refuse(
                transport,
                CloseCode::INTERNAL_ERROR,
                "no UDP port for media",
            )
            .await;
            return;
        }
    };
    tracing::info!(%conn, src = ?roles.src, dst = ?roles.dst, local = %opened.local, "connection open");
    counters.opened(Api::Ws);
    let session = session::spawn(
        transport,
        settings.negotiation.clone(),
        settings.session.clone(),
    );
    let (peer, media, keyframes) = Peer::new(
        conn,
        &roles,
        opened,
        Signaling::Ws(session),
        settings,
        counters,
    );
    peer.run(media, keyframes).await;
}

/// The signaling of a WHIP or WHEP session: the commands its endpoint's dispatcher routes to it.
/// The channel closing means the session was deleted.
#[derive(Debug)]
pub(crate) struct HttpSignaling {
    /// The endpoint, to end the session from the server's side.
    pub(crate) endpoint: WhipEndpoint,
    /// The session's id in that endpoint.
    pub(crate) session: SessionId,
    /// Its commands.
    pub(crate) commands: mpsc::Receiver<Command>,
    /// The `Retry-After` of an offer refused for a limit.
    pub(crate) retry_after: Duration,
}

/// How long a WHIP or WHEP session whose media ended waits for its client's `DELETE` before it
/// ends the session itself. Clients close their peer connection first (which ends the media at
/// once, with a DTLS close) and then send `DELETE`, which should find the session.
const DELETE_GRACE: Duration = Duration::from_secs(5);

impl HttpSignaling {
    /// Ends the session: waits (at most [`DELETE_GRACE`], and not at all when the server is
    /// shutting down) for the client's `DELETE` unless it came already, refusing ICE restarts
    /// meanwhile, then removes the session from the endpoint (later requests for it get `404`).
    async fn end(mut self, linger: bool) {
        let wait = async {
            while let Some(command) = self.commands.recv().await {
                if let Command::Restart(request) = command {
                    request.fail(RestartFailure::Internal(
                        "the media connection has ended".to_owned(),
                    ));
                }
            }
        };
        if linger {
            let _ = tokio::time::timeout(DELETE_GRACE, wait).await;
        }
        self.endpoint.close(&self.session);
    }
}

/// What a WHIP or WHEP session hears from its endpoint after its offer.
#[derive(Debug)]
pub(crate) enum Command {
    /// Trickled candidates (`PATCH`, already answered `204`).
    Candidates {
        /// The candidates; their `mid`s do not matter with one BUNDLE transport.
        candidates: Vec<(Option<String>, IceCandidate)>,
        /// The client has no more.
        end_of_candidates: bool,
    },
    /// An ICE restart (`PATCH` with `If-Match: "*"` or new credentials), answered by the session.
    Restart(RestartRequest),
}

/// Serves one WHIP (`dst`) or WHEP (`src`) session: answers its offer through `request`
/// (refusing it with a [`Rejection`] when the stream table, the socket or str0m says no), then
/// runs until the session is deleted or its ICE connection stays down.
pub(crate) async fn serve_http(
    request: OfferRequest,
    signaling: HttpSignaling,
    conn: ConnId,
    roles: Roles,
    streams: &Arc<Streams>,
    settings: &PeerSettings,
    counters: &Arc<Counters>,
) {
    let retry_after = signaling.retry_after;
    let opened = match open(conn, &roles, streams, settings).await {
        Ok(opened) => opened,
        Err(OpenError::Join(e)) => {
            tracing::info!(%conn, error = %e, "session refused");
            counters.refused(RefusedFor::from(&e));
            request.reject(e.rejection(retry_after));
            return;
        }
        Err(OpenError::Socket(e)) => {
            tracing::warn!(%conn, error = %e, "cannot bind a UDP socket for media");
            counters.refused(RefusedFor::NoUdpPort);
            request.reject(Rejection::Internal("no UDP port for media".to_owned()));
            return;
        }
    };
    tracing::info!(%conn, session = %signaling.session, src = ?roles.src, dst = ?roles.dst, local = %opened.local, "session open");
    // A WHIP session publishes, a WHEP session watches.
    counters.opened(if roles.dst.is_some() {
        Api::Whip
    } else {
        Api::Whep
    });
    let (mut peer, media, keyframes) = Peer::new(
        conn,
        &roles,
        opened,
        Signaling::Http(signaling),
        settings,
        counters,
    );
    match peer.answer(&request.offer().sdp) {
        Ok(answer) => request.accept(answer),
        Err(refused) => {
            tracing::info!(%conn, reason = %refused.reason, "offer refused");
            request.reject(if refused.unparsable {
                Rejection::BadRequest(refused.reason)
            } else {
                Rejection::Unprocessable(refused.reason)
            });
            return;
        }
    }
    peer.run(media, keyframes).await;
}

/// Completes once the server is shutting down (never, if the server is gone without that).
async fn shutting_down(shutdown: &mut watch::Receiver<bool>) {
    // A bool, not the borrow `wait_for` returns, which must not be held across an await.
    let server_gone = shutdown.wait_for(|going| *going).await.is_err();
    if server_gone {
        std::future::pending::<()>().await;
    }
}

/// A fresh `Rtc` whose only local candidate is `local`: Opus, VP8 and H264, nothing else, so
/// that every codec it accepts can be forwarded to any viewer that accepts it too.
fn new_rtc(local: SocketAddr) -> Rtc {
    let mut rtc = Rtc::builder()
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .enable_h264(true)
        .build(Instant::now());
    match Candidate::host(local, "udp") {
        Ok(c) => {
            rtc.add_local_candidate(c);
        }
        // Only for an unspecified or otherwise unusable address, which the command line refuses.
        Err(e) => tracing::warn!(%local, error = %e, "no local ICE candidate"),
    }
    rtc
}

/// Counters of one connection, logged when it ends.
#[derive(Debug, Default)]
struct PeerStats {
    remote_candidates: u64,
    candidates_skipped: u64,
    frames_published: u64,
    frames_written: u64,
    frames_dropped_for_viewers: u64,
    keyframe_requests: u64,
    ice_restarts: u64,
}

/// Rebases RTP media times so that a viewer's timeline continues smoothly when the stream's
/// publisher changes (each publisher starts at a random timestamp).
#[derive(Debug, Default)]
struct Rebase {
    source: Option<(ConnId, Option<Rid>)>,
    offset: i128,
    last_out: u64,
}

impl Rebase {
    fn map(&mut self, frame: &Frame) -> MediaTime {
        let t = i128::from(frame.time.numer());
        let source = (frame.source, frame.layer);
        if self.source != Some(source) {
            if self.source.is_some() {
                // Continue 20 ms after the last frame of the previous publisher.
                let step = i128::from(frame.time.denom() / 50);
                self.offset = i128::from(self.last_out) + step - t;
            }
            self.source = Some(source);
        }
        self.last_out = u64::try_from(t + self.offset).unwrap_or(0);
        MediaTime::new(self.last_out, frame.time.frequency())
    }
}

/// Where a connection's signaling comes from.
#[derive(Debug)]
pub(crate) enum Signaling {
    /// The WebSocket API: the library's session driver over the connection.
    Ws(Session),
    /// A WHIP or WHEP session.
    Http(HttpSignaling),
}

/// What the connection's signaling said next.
enum Signal {
    Negotiation(Negotiation),
    Command(Command),
    /// The signaling ended (socket closed, session deleted).
    Ended,
    /// Nothing for the media.
    Nothing,
}

impl Signaling {
    async fn next(&mut self) -> Signal {
        match self {
            Signaling::Ws(session) => match session.next_event().await {
                Some(SessionEvent::Negotiation(e)) => Signal::Negotiation(e),
                Some(SessionEvent::Closed(end)) => {
                    tracing::debug!(%end, "signaling ended");
                    Signal::Ended
                }
                Some(_) => Signal::Nothing,
                None => Signal::Ended,
            },
            Signaling::Http(http) => match http.commands.recv().await {
                Some(command) => Signal::Command(command),
                None => Signal::Ended,
            },
        }
    }
}

/// Why str0m did not answer an offer.
pub(crate) struct Refused {
    /// What str0m said.
    pub(crate) reason: String,
    /// The offer was not even SDP str0m could parse (else: parsed, and not usable).
    pub(crate) unparsable: bool,
}

struct Peer {
    conn: ConnId,
    /// The msid stream id of everything this connection receives: one `MediaStream` in the
    /// browser for its audio and video.
    stream_id: String,
    signaling: Signaling,
    counters: Arc<Counters>,
    /// How long an HTTP session's ICE may be down.
    ice_timeout: Duration,
    /// When an HTTP session ends unless its ICE connection is up by then.
    ice_deadline: Option<Instant>,
    /// The offer str0m accepted last, as text: an ICE restart by `PATCH` gives str0m this offer
    /// again with the client's new credentials.
    remote_offer: Option<String>,
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    membership: Membership,
    /// str0m accepted an offer of this connection.
    accepted: bool,
    /// The m-sections this connection receives the stream on (viewer).
    out_video: Option<Mid>,
    out_audio: Option<Mid>,
    /// The m-sections this connection publishes on.
    in_video: Option<Mid>,
    in_audio: Option<Mid>,
    /// The publisher's simulcast layers in the order it listed them, with when each last
    /// delivered a frame (empty without simulcast).
    layers: Vec<(Rid, Option<Instant>)>,
    /// The layer forwarded: the first listed that delivered a frame within [`LAYER_TIMEOUT`].
    forwarded_layer: Option<Rid>,
    rebase_video: Rebase,
    rebase_audio: Rebase,
    last_keyframe_request: Option<Instant>,
    rtc_deadline: Instant,
    stats: PeerStats,
    /// The server's shutdown signal ([`PeerSettings::shutdown`]).
    shutdown: watch::Receiver<bool>,
}

impl Peer {
    /// A connection with its stream roles and socket; also hands back the receiving ends of its
    /// media queue and keyframe signal, which [`Peer::run`] reads.
    fn new(
        conn: ConnId,
        roles: &Roles,
        opened: Opened,
        signaling: Signaling,
        settings: &PeerSettings,
        counters: &Arc<Counters>,
    ) -> (Self, mpsc::Receiver<Arc<Frame>>, mpsc::Receiver<()>) {
        let Opened {
            membership,
            media,
            keyframes,
            socket,
            local,
        } = opened;
        let now = Instant::now();
        let ice_deadline =
            matches!(signaling, Signaling::Http(_)).then(|| now + settings.ice_timeout);
        let peer = Peer {
            conn,
            stream_id: msid_token(roles.src.as_deref().unwrap_or("media")),
            signaling,
            counters: counters.clone(),
            ice_timeout: settings.ice_timeout,
            ice_deadline,
            remote_offer: None,
            rtc: new_rtc(local),
            socket,
            local,
            membership,
            accepted: false,
            out_video: None,
            out_audio: None,
            in_video: None,
            in_audio: None,
            layers: Vec::new(),
            forwarded_layer: None,
            rebase_video: Rebase::default(),
            rebase_audio: Rebase::default(),
            last_keyframe_request: None,
            rtc_deadline: now,
            stats: PeerStats::default(),
            shutdown: settings.shutdown.clone(),
        };
        (peer, media, keyframes)
    }

    async fn run(
        mut self,
        mut media: mpsc::Receiver<Arc<Frame>>,
        mut keyframes: mpsc::Receiver<()>,
    ) {
        let mut buf = vec![0u8; DATAGRAM_BUFFER];
        let reason = loop {
            let wake = self
                .ice_deadline
                .map_or(self.rtc_deadline, |d| d.min(self.rtc_deadline));
            tokio::select! {
                signal = self.signaling.next() => match signal {
                    Signal::Negotiation(e) => {
                        if let Err(reason) = self.on_negotiation(e).await {
                            break reason;
                        }
                    }
                    Signal::Command(command) => self.on_command(command),
                    Signal::Ended => break CloseReason::normal(),
                    Signal::Nothing => {}
                },
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((n, source)) => self.on_datagram(&buf[..n], source),
                    Err(e) => tracing::debug!(conn = %self.conn, error = %e, "UDP receive"),
                },
                Some(frame) = media.recv() => self.write_media(&frame),
                Some(()) = keyframes.recv() => self.request_keyframe(),
                // The time is handed to str0m by `drain_rtc`.
                () = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {}
                // Also at once when the server began shutting down before this connection ran.
                () = shutting_down(&mut self.shutdown) => {
                    break CloseReason::new(CloseCode::GOING_AWAY, "the server is shutting down");
                }
            }
            if let Some(reason) = self.drain_rtc() {
                break reason;
            }
            if self.ice_deadline.is_some_and(|d| Instant::now() >= d) {
                break CloseReason::new(
                    CloseCode::NORMAL,
                    "the media connection was not up in time",
                );
            }
        };
        self.rtc.disconnect();
        let Peer {
            conn,
            signaling,
            membership,
            stats,
            rtc,
            socket,
            shutdown,
            ..
        } = self;
        // Leaves the streams before the socket closes: nothing is queued for this connection
        // any more.
        drop(membership);
        drop((rtc, socket));
        tracing::info!(%conn, ?stats, %reason, "connection closed");
        let shutting_down = *shutdown.borrow();
        match signaling {
            Signaling::Ws(session) => session.close(reason).await,
            Signaling::Http(http) => http.end(!shutting_down).await,
        }
    }

    // -------------------------------------------------------------------------------------
    // Signaling

    async fn on_negotiation(&mut self, event: Negotiation) -> Result<(), CloseReason> {
        match event {
            // A v2 offer may carry the client's `ice_servers`: they are never used. A client must
            // not choose which hosts the server contacts, and this server needs no STUN or TURN
            // server anyway: its only candidate is the RTC address it was started with.
            Negotiation::ApplyRemoteDescription(desc) if desc.kind == SdpKind::Offer => {
                self.on_offer(&desc.sdp).await
            }
            Negotiation::ApplyRemoteDescription(desc) => {
                tracing::debug!(conn = %self.conn, kind = %desc.kind, "ignored: this server never offers");
                Ok(())
            }
            Negotiation::AddRemoteCandidate(c) => {
                self.on_remote_candidate(&c.init.candidate);
                Ok(())
            }
            Negotiation::PeerError(e) => {
                tracing::info!(conn = %self.conn, error = %e, "the client sent something invalid");
                Ok(())
            }
            Negotiation::RemoteError(e) => {
                tracing::info!(conn = %self.conn, error = %e.text, "the client reported an error");
                Ok(())
            }
            other => {
                tracing::trace!(conn = %self.conn, event = ?other, "negotiation event");
                Ok(())
            }
        }
    }

    /// Has str0m answer `sdp`: the answer, with one msid stream id for everything sent.
    fn answer(&mut self, sdp: &str) -> Result<String, Refused> {
        let offer = match SdpOffer::from_sdp_string(sdp) {
            Ok(offer) => offer,
            Err(e) => {
                self.counters.offer_refused();
                return Err(Refused {
                    reason: e.to_string(),
                    unparsable: true,
                });
            }
        };
        let answer = match self.rtc.sdp_api().accept_offer(offer) {
            Ok(answer) => answer,
            Err(e) => {
                if !self.accepted {
                    // str0m may have taken part of the refused offer (ICE credentials, DTLS
                    // role): a later offer starts from a fresh instance.
                    self.rtc = new_rtc(self.local);
                }
                self.counters.offer_refused();
                return Err(Refused {
                    reason: e.to_string(),
                    unparsable: false,
                });
            }
        };
        self.accepted = true;
        self.remote_offer = Some(sdp.to_owned());
        self.counters.offer_answered();
        Ok(same_stream_id(&answer.to_sdp_string(), &self.stream_id))
    }

    async fn on_offer(&mut self, sdp: &str) -> Result<(), CloseReason> {
        let answer = match self.answer(sdp) {
            Ok(answer) => answer,
            Err(refused) => {
                tracing::info!(conn = %self.conn, reason = %refused.reason, "offer refused");
                if self.accepted && !self.rtc.is_alive() {
                    return Err(CloseReason::new(
                        CloseCode::INTERNAL_ERROR,
                        "the media connection failed",
                    ));
                }
                return self.reject_offer(refused.reason).await;
            }
        };
        let Signaling::Ws(session) = &mut self.signaling else {
            // HTTP sessions answer their one offer in `serve_http`; the endpoint sends no other.
            return Ok(());
        };
        if let Err(e) = session.set_local_description(SdpKind::Answer, answer).await {
            tracing::warn!(conn = %self.conn, error = %e, "the answer was not sent");
            return Err(CloseReason::new(
                CloseCode::INTERNAL_ERROR,
                "the answer was not sent",
            ));
        }
        // The answer carries the only candidate inline; say so, in the client's form.
        let _ = session.end_of_local_candidates().await;
        Ok(())
    }

    /// The stack could not use the offer: the negotiation rolls back and sends
    /// `{"type":"error","value":"<offer type>: <reason>"}`; the client may send another.
    async fn reject_offer(&mut self, reason: String) -> Result<(), CloseReason> {
        let Signaling::Ws(session) = &mut self.signaling else {
            return Ok(());
        };
        if let Err(e) = session.reject_remote_description(reason).await {
            // Only if the session ended meanwhile: its end arrives as the next event.
            tracing::debug!(conn = %self.conn, error = %e, "reject");
        }
        Ok(())
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Candidates {
                candidates,
                end_of_candidates,
            } => {
                for (_, c) in &candidates {
                    self.on_remote_candidate(c.as_str());
                }
                tracing::debug!(conn = %self.conn, candidates = candidates.len(), end_of_candidates, "trickled candidates");
            }
            Command::Restart(request) => match self.restart_ice(request.restart()) {
                Ok(answer) => request.restarted(answer),
                Err(failure) => {
                    tracing::info!(conn = %self.conn, ?failure, "ICE restart failed");
                    request.fail(failure);
                }
            },
        }
    }

    /// Restarts the ICE agent with the client's new credentials (RFC 9725 §4.3.3) and gives the
    /// server's new ones.
    ///
    /// str0m 0.25 restarts ICE only through an offer or answer whose credentials differ from the
    /// current ones (its `DirectApi` only swaps credentials, keeping the old candidate pairs and
    /// remote candidates). So the last offer accepted is given to it again with the client's new
    /// `ice-ufrag`/`ice-pwd` and without its candidates (they belong to the old ICE session):
    /// the same media, nothing renegotiated, and a real ICE restart (pairs and remote candidates
    /// flushed, new local credentials). The restart's candidates are added after it.
    fn restart_ice(&mut self, restart: &Restart) -> Result<IceAnswer, RestartFailure> {
        let Some(previous) = &self.remote_offer else {
            return Err(RestartFailure::Unprocessable(
                "no offer to restart".to_owned(),
            ));
        };
        let text = with_ice_credentials(previous, &restart.ufrag, &restart.pwd);
        let offer = SdpOffer::from_sdp_string(&text)
            .map_err(|e| RestartFailure::Unprocessable(e.to_string()))?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| RestartFailure::Internal(e.to_string()))?;
        let answer = ice_answer(&answer.to_sdp_string()).ok_or_else(|| {
            RestartFailure::Internal("str0m's answer has no ICE credentials".to_owned())
        })?;
        self.remote_offer = Some(text);
        self.stats.ice_restarts += 1;
        // Until the new ICE session is up, the session counts as down.
        self.ice_deadline
            .get_or_insert(Instant::now() + self.ice_timeout);
        for (_, c) in &restart.candidates {
            self.on_remote_candidate(c.as_str());
        }
        tracing::info!(conn = %self.conn, ufrag = %answer.ufrag, "ICE restarted");
        Ok(answer)
    }

    fn on_remote_candidate(&mut self, text: &str) {
        let candidate = match Candidate::from_sdp_string(text) {
            Ok(c) => c,
            Err(e) => {
                // An mDNS `.local` name, say: nothing to resolve it with, and nothing lost (the
                // client's checks reach the server, which learns its address from them).
                self.stats.candidates_skipped += 1;
                tracing::debug!(conn = %self.conn, candidate = %text, error = %e, "remote candidate skipped");
                return;
            }
        };
        if candidate.proto() != Protocol::Udp {
            self.stats.candidates_skipped += 1;
            tracing::debug!(conn = %self.conn, candidate = %text, "remote candidate skipped: media is on UDP only");
            return;
        }
        if !reachable(self.local.ip(), candidate.addr().ip()) {
            self.stats.candidates_skipped += 1;
            tracing::debug!(conn = %self.conn, candidate = %text, local = %self.local, "remote candidate skipped: not reachable from the RTC address");
            return;
        }
        self.stats.remote_candidates += 1;
        tracing::debug!(conn = %self.conn, candidate = %text, "remote candidate added");
        self.rtc.add_remote_candidate(candidate);
    }

    // -------------------------------------------------------------------------------------
    // Media

    fn on_datagram(&mut self, data: &[u8], source: SocketAddr) {
        crate::peers::str0m_stack::feed_datagram(&mut self.rtc, self.local, source, data);
    }

    /// Drains str0m's output until its next timeout; `Some` when the connection must end.
    ///
    /// str0m learns the time only from its inputs, and its ICE agent schedules nothing until it
    /// has seen one: after a change made through its API (an offer accepted, a candidate added)
    /// the time is handed to it first, or the checks of a new pair could wait forever.
    fn drain_rtc(&mut self) -> Option<CloseReason> {
        if self.rtc.is_alive() {
            if let Err(e) = self.rtc.handle_input(Input::Timeout(Instant::now())) {
                tracing::debug!(conn = %self.conn, error = %e, "str0m timeout");
            }
        }
        loop {
            if !self.rtc.is_alive() {
                return Some(CloseReason::new(
                    CloseCode::NORMAL,
                    "the media connection ended",
                ));
            }
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    // UDP is lossy anyway: a full socket buffer drops the datagram rather than
                    // stalling every other input of this connection.
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Ok(Output::Timeout(at)) => {
                    self.rtc_deadline = at;
                    return None;
                }
                Ok(Output::Event(e)) => self.on_rtc_event(e),
                Err(e) => {
                    tracing::warn!(conn = %self.conn, error = %e, "str0m failed");
                    return Some(CloseReason::new(
                        CloseCode::INTERNAL_ERROR,
                        "the media connection failed",
                    ));
                }
            }
        }
    }

    fn on_rtc_event(&mut self, event: Event) {
        match event {
            Event::Connected => {
                tracing::info!(conn = %self.conn, "media connected");
                self.membership.viewer_ready();
            }
            Event::IceConnectionStateChange(state) => {
                tracing::debug!(conn = %self.conn, ?state, "ICE state");
                let up = matches!(
                    state,
                    IceConnectionState::Connected | IceConnectionState::Completed
                );
                match &self.signaling {
                    // The client is still there on its socket, and would have to offer anew:
                    // ending lets it notice.
                    Signaling::Ws(_) if state == IceConnectionState::Disconnected => {
                        self.rtc.disconnect();
                    }
                    Signaling::Ws(_) => {}
                    // An HTTP session may come back with an ICE restart within the timeout.
                    Signaling::Http(_) if up => self.ice_deadline = None,
                    Signaling::Http(_) => {
                        let timeout = self.ice_timeout;
                        self.ice_deadline
                            .get_or_insert_with(|| Instant::now() + timeout);
                    }
                }
            }
            Event::MediaAdded(added) => self.on_media_added(&added),
            Event::MediaData(data) => self.on_media_data(data),
            Event::KeyframeRequest(req)
                if [self.out_video, self.out_audio].contains(&Some(req.mid)) =>
            {
                self.membership.viewer_wants_keyframe();
            }
            _ => {}
        }
    }

    fn on_media_added(&mut self, added: &MediaAdded) {
        let video = added.kind == MediaKind::Video;
        tracing::debug!(conn = %self.conn, mid = %added.mid, kind = ?added.kind, direction = ?added.direction, "media added");
        if added.direction.is_sending() && self.membership.src.is_some() {
            let slot = if video {
                &mut self.out_video
            } else {
                &mut self.out_audio
            };
            slot.get_or_insert(added.mid);
        }
        if added.direction.is_receiving() && self.membership.dst.is_some() {
            if video {
                if self.in_video.is_none() {
                    self.in_video = Some(added.mid);
                    // Simulcast: the layers in the order the client lists them (the first is
                    // forwarded while it arrives; the seed client lists `high` first).
                    self.layers = added
                        .simulcast
                        .iter()
                        .flat_map(|s| if s.recv.is_empty() { &s.send } else { &s.recv })
                        .map(|layer| (layer.rid, None))
                        .collect();
                }
            } else {
                self.in_audio.get_or_insert(added.mid);
            }
        }
    }

    fn on_media_data(&mut self, data: MediaData) {
        let kind = if self.in_video == Some(data.mid) {
            if !self.forward_layer(data.rid, data.network_time) {
                return;
            }
            MediaKind::Video
        } else if self.in_audio == Some(data.mid) {
            MediaKind::Audio
        } else {
            return;
        };
        if kind == MediaKind::Video && !data.contiguous {
            self.request_keyframe();
        }
        let frame = Arc::new(Frame {
            source: self.conn,
            layer: if kind == MediaKind::Video {
                data.rid
            } else {
                None
            },
            kind,
            params: data.params,
            time: data.time,
            network_time: data.network_time,
            keyframe: Frame::is_keyframe(kind, &data.codec_extra),
            data: data.data,
        });
        self.stats.frames_published += 1;
        let forwarded = self.membership.publish(&frame);
        self.stats.frames_dropped_for_viewers += forwarded.dropped as u64;
        if forwarded.want_keyframe {
            self.request_keyframe();
        }
    }

    /// Whether a video frame of simulcast layer `rid` that arrived at `at` is forwarded: the
    /// first layer the publisher listed that delivered a frame within [`LAYER_TIMEOUT`] is. A
    /// change of layer makes the viewers wait for its next keyframe, which is asked for.
    fn forward_layer(&mut self, rid: Option<Rid>, at: Instant) -> bool {
        if self.layers.is_empty() {
            return true;
        }
        let Some(rid) = rid else {
            // Simulcast was negotiated but this stream has no rid: nothing to choose from.
            return true;
        };
        if let Some(layer) = self.layers.iter_mut().find(|(r, _)| *r == rid) {
            layer.1 = Some(at);
        }
        let active = self
            .layers
            .iter()
            .find(|(_, seen)| seen.is_some_and(|t| at.saturating_duration_since(t) < LAYER_TIMEOUT))
            .map(|(r, _)| *r);
        if active != Some(rid) {
            return false;
        }
        if self.forwarded_layer != Some(rid) {
            tracing::info!(conn = %self.conn, layer = %rid, "simulcast layer forwarded");
            self.forwarded_layer = Some(rid);
            self.membership.restart_video();
            self.last_keyframe_request = None;
            self.request_keyframe();
        }
        true
    }

    /// Asks this connection's client (as a publisher) for a keyframe, at most once per
    /// [`KEYFRAME_REQUEST_INTERVAL`].
    fn request_keyframe(&mut self) {
        let Some(mid) = self.in_video else {
            return;
        };
        let rid = self.forwarded_layer;
        let now = Instant::now();
        if self
            .last_keyframe_request
            .is_some_and(|t| now.duration_since(t) < KEYFRAME_REQUEST_INTERVAL)
        {
            return;
        }
        let Some(mut writer) = self.rtc.writer(mid) else {
            return;
        };
        let kind = if writer.is_request_keyframe_possible(KeyframeRequestKind::Pli) {
            KeyframeRequestKind::Pli
        } else {
            KeyframeRequestKind::Fir
        };
        match writer.request_keyframe(rid, kind) {
            Ok(()) => {
                self.stats.keyframe_requests += 1;
                self.last_keyframe_request = Some(now);
            }
            Err(e) => tracing::debug!(conn = %self.conn, error = %e, "keyframe request"),
        }
    }

    /// Writes a frame of the watched stream to this connection's client (as a viewer).
    fn write_media(&mut self, frame: &Frame) {
        let (mid, rebase) = if frame.kind == MediaKind::Video {
            (self.out_video, &mut self.rebase_video)
        } else {
            (self.out_audio, &mut self.rebase_audio)
        };
        let Some(mid) = mid else {
            return;
        };
        let time = rebase.map(frame);
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        // The publisher's codec, with this viewer's payload type for it.
        let Some(pt) = writer.match_params(frame.params) else {
            tracing::trace!(conn = %self.conn, "the viewer did not accept the publisher's codec");
            return;
        };
        match writer.write(pt, frame.network_time, time, frame.data.clone()) {
            Ok(()) => self.stats.frames_written += 1,
            Err(e) => tracing::debug!(conn = %self.conn, error = %e, "write"),
        }
    }
}

/// Whether a socket bound to `local` can reach `remote`: same address family, and loopback only
/// from loopback (and the other way round). Candidates that fail this are never added, so no
/// check is ever sent to them.
fn reachable(local: IpAddr, remote: IpAddr) -> bool {
    local.is_ipv4() == remote.is_ipv4() && local.is_loopback() == remote.is_loopback()
}

/// `name` as an msid token (RFC 8830: 1 to 64 token characters).
fn msid_token(name: &str) -> String {
    let token: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`{|}~".contains(*c))
        .take(64)
        .collect();
    if token.is_empty() {
        "media".to_owned()
    } else {
        token
    }
}

/// `sdp` with every msid stream id replaced by `stream_id`, so that the browser puts all the
/// tracks it receives into one `MediaStream` (str0m gives each answered m-section a random one
/// when the offer has no msid, as for recvonly transceivers).
fn same_stream_id(sdp: &str, stream_id: &str) -> String {
    let mut out = String::with_capacity(sdp.len() + 64);
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let end = &line[body.len()..];
        if let Some(rest) = body.strip_prefix("a=msid:") {
            if let Some((_, track)) = rest.split_once(' ') {
                out.push_str(&format!("a=msid:{stream_id} {track}{end}"));
                continue;
            }
        } else if body.starts_with("a=msid-semantic:") {
            out.push_str(&format!("a=msid-semantic: WMS {stream_id}{end}"));
            continue;
        } else if body.starts_with("a=ssrc:") {
            if let Some((head, tail)) = body.split_once(" msid:") {
                if let Some((_, track)) = tail.split_once(' ') {
                    out.push_str(&format!("{head} msid:{stream_id} {track}{end}"));
                    continue;
                }
            }
        }
        out.push_str(line);
    }
    out
}

/// `offer` with its ICE credentials replaced by `ufrag`/`pwd` (at session and media level)
/// and without candidates or end-of-candidates: the offer of an ICE restart made by `PATCH`.
fn with_ice_credentials(offer: &str, ufrag: &str, pwd: &str) -> String {
    let mut out = String::with_capacity(offer.len());
    for line in offer.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        if body.starts_with("a=candidate:") || body == "a=end-of-candidates" {
            continue;
        }
        if body.starts_with("a=ice-ufrag:") {
            out.push_str(&format!("a=ice-ufrag:{ufrag}\r\n"));
        } else if body.starts_with("a=ice-pwd:") {
            out.push_str(&format!("a=ice-pwd:{pwd}\r\n"));
        } else {
            out.push_str(body);
            out.push_str("\r\n");
        }
    }
    out
}

/// The ICE part of an SDP answer, as the `200` of an ICE restart carries it: the first
/// `ice-ufrag`, `ice-pwd` and `ice-options`, `ice-lite`, and every distinct candidate (str0m
/// repeats them in each bundled m-section). `None` without credentials.
fn ice_answer(sdp: &str) -> Option<IceAnswer> {
    let mut answer = IceAnswer::default();
    let (mut ufrag, mut pwd) = (None, None);
    for line in sdp.lines().map(str::trim_end) {
        if let Some(v) = line.strip_prefix("a=ice-ufrag:") {
            ufrag.get_or_insert(v);
        } else if let Some(v) = line.strip_prefix("a=ice-pwd:") {
            pwd.get_or_insert(v);
        } else if let Some(v) = line.strip_prefix("a=ice-options:") {
            answer.options.get_or_insert_with(|| v.to_owned());
        } else if line == "a=ice-lite" {
            answer.lite = true;
        } else if line.starts_with("a=candidate:") {
            match IceCandidate::parse(line) {
                Ok(c) if !answer.candidates.contains(&c) => answer.candidates.push(c),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(candidate = %line, error = %e, "str0m wrote a candidate that does not parse")
                }
            }
        }
    }
    answer.ufrag = ufrag?.to_owned();
    answer.pwd = pwd?.to_owned();
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_msid_gets_the_same_stream_id() {
        let sdp = "v=0\r\na=msid-semantic: WMS a b\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=msid:a t1\r\na=ssrc:1 msid:a t1\r\na=ssrc:1 cname:x\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=msid:b t2\r\n";
        let out = same_stream_id(sdp, "cam");
        assert_eq!(
            out,
            "v=0\r\na=msid-semantic: WMS cam\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=msid:cam t1\r\na=ssrc:1 msid:cam t1\r\na=ssrc:1 cname:x\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=msid:cam t2\r\n"
        );
    }

    #[test]
    fn a_restart_offer_has_the_new_credentials_everywhere_and_no_old_candidates() {
        let offer = "v=0\r\na=ice-ufrag:old1\r\na=ice-pwd:oldpassword0123456789012\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:old1\r\na=ice-pwd:oldpassword0123456789012\r\na=candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\na=mid:0\r\n";
        let out = with_ice_credentials(offer, "new1", "newpassword0123456789012");
        assert_eq!(
            out,
            "v=0\r\na=ice-ufrag:new1\r\na=ice-pwd:newpassword0123456789012\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:new1\r\na=ice-pwd:newpassword0123456789012\r\na=mid:0\r\n"
        );
        // Bare LF line ends come out as CRLF.
        assert_eq!(
            with_ice_credentials("v=0\na=ice-ufrag:a\n", "b", "p"),
            "v=0\r\na=ice-ufrag:b\r\n"
        );
    }

    #[test]
    fn the_ice_answer_takes_the_first_credentials_and_each_candidate_once() {
        let sdp = "v=0\r\na=ice-lite\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:srv1\r\na=ice-pwd:serverpassword0123456789\r\na=ice-options:trickle\r\na=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:srv1\r\na=ice-pwd:serverpassword0123456789\r\na=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n";
        let answer = ice_answer(sdp).expect("credentials");
        assert_eq!(answer.ufrag, "srv1");
        assert_eq!(answer.pwd, "serverpassword0123456789");
        assert_eq!(answer.options.as_deref(), Some("trickle"));
        assert!(answer.lite);
        assert_eq!(answer.candidates.len(), 1);
        assert_eq!(answer.candidates[0].port(), 40000);
        assert!(ice_answer("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n").is_none());
    }

    #[test]
    fn msid_tokens() {
        assert_eq!(msid_token("me-x1 y"), "me-x1y");
        assert_eq!(msid_token("äö"), "media");
        assert_eq!(msid_token(&"a".repeat(100)).len(), 64);
    }

    #[test]
    fn loopback_reaches_loopback_only() {
        let lo: IpAddr = "127.0.0.1".parse().expect("address");
        assert!(reachable(lo, "127.0.0.1".parse().expect("address")));
        assert!(!reachable(lo, "192.0.2.1".parse().expect("address")));
        assert!(!reachable(lo, "::1".parse().expect("address")));
        assert!(!reachable("192.0.2.7".parse().expect("address"), lo));
    }
}
