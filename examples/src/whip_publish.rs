//! A Rust WHIP publisher: a str0m peer that publishes a video track to a WHIP endpoint
//! through [`signaling_http::whip_client`], the flow behind the `whip_publish` binary.
//!
//! 1. str0m makes an offer with one `sendonly` VP8-capable video section and no candidate;
//! 2. [`WhipClient::publish`] `POST`s it and the answer is given to str0m;
//! 3. the host candidate of the UDP socket is added to str0m and trickled by `PATCH`, then
//!    end-of-candidates (a publisher that gathers candidates after sending its offer, as
//!    browsers do);
//! 4. [`Publisher::run`] drives str0m and sends a synthetic VP8 frame every 33 ms once the
//!    connection is up, until the stop signal; then the session is `DELETE`d.
//!
//! str0m discovers no addresses itself: the only local candidate is the socket's, bound on the
//! address given (127.0.0.1 in the tests).
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use signaling_http::whip_client::{Error as WhipError, Session, WhipClient};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The WHIP exchange failed.
    #[error("WHIP: {0}")]
    Whip(#[from] WhipError),
    /// The WebRTC stack refused something.
    #[error("str0m: {0}")]
    Rtc(String),
    /// The UDP socket failed.
    #[error("UDP: {0}")]
    Io(#[from] std::io::Error),
}

fn rtc_err(e: impl std::fmt::Display) -> PublishError {
    PublishError::Rtc(e.to_string())
}

/// What a publisher did, when it stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// ICE and DTLS connected.
    pub connected: bool,
    /// Video frames written.
    pub frames: u64,
}

/// A publishing str0m peer and its WHIP session.
#[derive(Debug)]
pub struct Publisher {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    session: Session,
    mid: Mid,
}

/// The frame interval (30 frames a second).
const FRAME_INTERVAL: Duration = Duration::from_millis(33);

/// A VP8 key frame header (RFC 6386 §9.1: frame tag with the key-frame bit clear and
/// `show_frame` set, the start code, 320x240), padded: a "frame" a forwarding server takes for a
/// key frame, which no decoder needs to make sense of.
fn synthetic_frame() -> Vec<u8> {
    let mut frame = vec![0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];
    frame.resize(600, 0);
    frame
}

impl Publisher {
    /// Publishes to the WHIP endpoint `url`, with a UDP socket on `bind` (port 0).
    ///
    /// # Errors
    ///
    /// [`PublishError`] when the socket, str0m or the WHIP exchange fails.
    pub async fn start(
        client: &WhipClient,
        url: &str,
        bind: IpAddr,
    ) -> Result<Publisher, PublishError> {
        str0m::crypto::from_feature_flags().install_process_default();
        let socket = UdpSocket::bind(SocketAddr::new(bind, 0)).await?;
        let local = socket.local_addr()?;
        let mut rtc = Rtc::builder().build(Instant::now());
        let mut api = rtc.sdp_api();
        let mid = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().ok_or_else(|| rtc_err("nothing to offer"))?;

        let mut session = client.publish(url, &offer.to_sdp_string()).await?;
        tracing::info!(session = ?session.url().map(|u| u.as_str()), "published");
        let answer = SdpAnswer::from_sdp_string(session.answer()).map_err(rtc_err)?;
        rtc.sdp_api()
            .accept_answer(pending, answer)
            .map_err(rtc_err)?;

        // Gathered after the offer went out: trickled.
        let candidate = Candidate::host(local, "udp").map_err(rtc_err)?;
        let text = candidate.to_sdp_string();
        rtc.add_local_candidate(candidate);
        let parsed =
            signaling_core::candidate::Candidate::parse(text.strip_prefix("a=").unwrap_or(&text))
                .map_err(rtc_err)?;
        session.trickle(parsed).await?;
        session.end_of_candidates().await?;
        Ok(Publisher {
            rtc,
            socket,
            local,
            session,
            mid,
        })
    }

    /// The WHIP session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Drives the peer and sends frames until `stop` completes or the connection ends, then
    /// deletes the session.
    ///
    /// # Errors
    ///
    /// [`PublishError`] when str0m fails or the `DELETE` does.
    pub async fn run(
        mut self,
        stop: impl Future<Output = ()>,
    ) -> Result<PublishReport, PublishError> {
        let mut report = PublishReport::default();
        let mut buf = vec![0u8; 2000];
        let started = Instant::now();
        let mut next_frame = Instant::now();
        tokio::pin!(stop);
        loop {
            let timeout = loop {
                match self.rtc.poll_output().map_err(rtc_err)? {
                    Output::Timeout(t) => break t,
                    Output::Transmit(t) => {
                        let _ = self.socket.send_to(&t.contents, t.destination).await;
                    }
                    Output::Event(Event::Connected) => {
                        tracing::info!("connected");
                        report.connected = true;
                    }
                    Output::Event(Event::IceConnectionStateChange(
                        IceConnectionState::Disconnected,
                    )) => {
                        tracing::info!("disconnected");
                        self.session.delete().await?;
                        return Ok(report);
                    }
                    Output::Event(_) => {}
                }
            };
            let wake = if report.connected {
                timeout.min(next_frame)
            } else {
                timeout
            };
            let wait = wake.saturating_duration_since(Instant::now());
            tokio::select! {
                () = &mut stop => break,
                received = self.socket.recv_from(&mut buf) => {
                    let Ok((n, source)) = received else { continue };
                    crate::peers::str0m_stack::feed_datagram(&mut self.rtc, self.local, source, &buf[..n]);
                }
                () = tokio::time::sleep(wait.max(Duration::from_micros(100))) => {
                    let now = Instant::now();
                    if report.connected && now >= next_frame {
                        next_frame = now + FRAME_INTERVAL;
                        if self.write_frame(now, now - started) {
                            report.frames += 1;
                        }
                    }
                    let _ = self.rtc.handle_input(Input::Timeout(now));
                }
            }
        }
        self.session.delete().await?;
        tracing::info!(frames = report.frames, "deleted the session");
        Ok(report)
    }

    /// Writes one synthetic VP8 frame; whether str0m took it.
    fn write_frame(&mut self, now: Instant, since_start: Duration) -> bool {
        let Some(writer) = self.rtc.writer(self.mid) else {
            return false;
        };
        let Some(pt) = writer
            .payload_params()
            .find(|p| p.spec().codec == Codec::Vp8)
            .map(|p| p.pt())
        else {
            return false;
        };
        // The RTP clock of video is 90 kHz.
        let ticks = since_start.as_micros() * 9 / 100;
        let time = MediaTime::new(ticks.try_into().unwrap_or(u64::MAX), Frequency::NINETY_KHZ);
        writer.write(pt, now, time, synthetic_frame()).is_ok()
    }
}
