//! The stream table: which connection publishes each named stream, who watches it, and the
//! bounded fan-out of media frames from a publisher to its viewers.
//!
//! A stream exists while it has a publisher or a viewer. Viewers may come before the publisher
//! (they wait, connected, and play as soon as one arrives) and stay when it leaves (the next
//! publisher of the same name feeds them). Every table and queue here is bounded: the number of
//! streams, the viewers per stream, and each viewer's media queue, which drops frames (never
//! blocks the publisher) when the viewer is slow.
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use signaling::transport::CloseCode;
use signaling_core::whip::Rejection;
use str0m::format::{CodecExtra, PayloadParams};
use str0m::media::{MediaKind, MediaTime, Rid};
use tokio::sync::mpsc;

/// A connection, numbered by the server. Unique for the server's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// One media frame of a publisher, as str0m depacketized it, on its way to the viewers (who
/// packetize it again with their own payload type, SSRC and sequence numbers: no transcoding).
#[derive(Debug)]
pub struct Frame {
    /// The connection that published it (viewers rebase timestamps when this or `layer`
    /// changes).
    pub source: ConnId,
    /// The simulcast layer it belongs to, if the publisher sends simulcast.
    pub layer: Option<Rid>,
    /// Audio or video.
    pub kind: MediaKind,
    /// The codec and its parameters, matched against each viewer's negotiated payload types.
    pub params: PayloadParams,
    /// The RTP media time.
    pub time: MediaTime,
    /// When its first packet arrived.
    pub network_time: Instant,
    /// Whether a decoder can start at this frame (a video keyframe; every audio frame).
    pub keyframe: bool,
    /// The frame itself.
    pub data: Arc<[u8]>,
}

impl Frame {
    /// Whether `extra` (what str0m's depacketizer learned) marks a frame a decoder can start at.
    /// Codecs without the information count as keyframes, so that nothing waits forever.
    pub fn is_keyframe(kind: MediaKind, extra: &CodecExtra) -> bool {
        if kind == MediaKind::Audio {
            return true;
        }
        match extra {
            CodecExtra::Vp8(e) => e.is_keyframe,
            CodecExtra::H264(e) => e.is_keyframe,
            _ => true,
        }
    }
}

/// The bounds of the stream table.
#[derive(Clone, Copy, Debug)]
pub struct StreamLimits {
    /// Streams (names with a publisher or a viewer) at once.
    pub max_streams: usize,
    /// Viewers of one stream at once.
    pub max_viewers: usize,
}

/// Why a connection could not take the roles it asked for. Nothing was registered.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoinError {
    /// The stream already has a live publisher.
    PublisherExists(String),
    /// The server has as many streams as it may.
    TooManyStreams(usize),
    /// The stream has as many viewers as it may.
    TooManyViewers {
        /// The stream.
        name: String,
        /// The bound.
        limit: usize,
    },
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::PublisherExists(name) => {
                write!(f, "stream {name:?} already has a publisher")
            }
            JoinError::TooManyStreams(limit) => write!(f, "too many streams (limit {limit})"),
            JoinError::TooManyViewers { name, limit } => {
                write!(f, "stream {name:?} has too many viewers (limit {limit})")
            }
        }
    }
}

impl std::error::Error for JoinError {}

impl JoinError {
    /// The WebSocket close code the connection is closed with (see the
    /// [module docs](super#errors-and-close-codes)).
    pub fn close_code(&self) -> CloseCode {
        match self {
            JoinError::PublisherExists(_) => super::close_code::PUBLISHER_EXISTS,
            JoinError::TooManyStreams(_) => super::close_code::TOO_MANY_STREAMS,
            JoinError::TooManyViewers { .. } => super::close_code::TOO_MANY_VIEWERS,
        }
    }

    /// The refusal a WHIP or WHEP offer gets (see the [module docs](super#whip-and-whep)):
    /// `409` for a stream that has a publisher, `503` + `Retry-After` (`retry_after`) for a
    /// limit.
    pub fn rejection(&self, retry_after: Duration) -> Rejection {
        match self {
            JoinError::PublisherExists(_) => Rejection::Conflict(self.to_string()),
            JoinError::TooManyStreams(_) | JoinError::TooManyViewers { .. } => {
                Rejection::Unavailable(retry_after)
            }
        }
    }
}

/// What a connection gives the table to be reached: its media queue (as a viewer) and its
/// keyframe-request signal (as a publisher).
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Frames for this connection as a viewer.
    pub media: mpsc::Sender<Arc<Frame>>,
    /// Keyframe requests for this connection as a publisher. A queue of one: a request already
    /// waiting covers the next ones.
    pub keyframes: mpsc::Sender<()>,
}

#[derive(Debug)]
struct Publisher {
    conn: ConnId,
    keyframes: mpsc::Sender<()>,
}

#[derive(Debug)]
struct Viewer {
    conn: ConnId,
    media: mpsc::Sender<Arc<Frame>>,
    /// Its WebRTC connection is up: frames written now reach it.
    ready: bool,
    /// Video is held back until the next keyframe (after joining, or after a dropped frame).
    needs_keyframe: bool,
}

#[derive(Debug, Default)]
struct Stream {
    publisher: Option<Publisher>,
    viewers: Vec<Viewer>,
}

/// Counters of one [`Streams::forward`] call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Forwarded {
    /// Viewers the frame was queued for.
    pub queued: usize,
    /// Viewers whose queue was full (the frame was dropped for them).
    pub dropped: usize,
    /// A keyframe is wanted from the publisher (a viewer lost a frame or waits for one).
    pub want_keyframe: bool,
}

/// The table of streams, shared by all connections.
#[derive(Debug)]
pub struct Streams {
    limits: StreamLimits,
    streams: Mutex<HashMap<String, Stream>>,
}

/// A connection's place in the table; dropping it leaves every stream it joined (a stream left
/// without publisher and viewers is removed).
#[derive(Debug)]
pub struct Membership {
    streams: Arc<Streams>,
    conn: ConnId,
    /// The stream it watches.
    pub src: Option<String>,
    /// The stream it publishes.
    pub dst: Option<String>,
}

impl Streams {
    /// An empty table.
    pub fn new(limits: StreamLimits) -> Self {
        Self {
            limits,
            streams: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Stream>> {
        // A panic while holding the lock cannot leave the table half-changed in a way that
        // matters more than losing the whole server would: keep serving.
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many streams exist.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there are no streams.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Registers `conn` as the viewer of `src` and/or the publisher of `dst`, all or nothing.
    pub fn join(
        self: &Arc<Self>,
        conn: ConnId,
        src: Option<&str>,
        dst: Option<&str>,
        endpoints: Endpoints,
    ) -> Result<Membership, JoinError> {
        let mut table = self.lock();
        // Check everything first, so that a refusal registers nothing.
        let new_names = [src, dst]
            .into_iter()
            .flatten()
            .filter(|n| !table.contains_key(*n))
            .fold(Vec::<&str>::new(), |mut v, n| {
                if !v.contains(&n) {
                    v.push(n);
                }
                v
            });
        if table.len() + new_names.len() > self.limits.max_streams {
            return Err(JoinError::TooManyStreams(self.limits.max_streams));
        }
        if let Some(name) = dst {
            if table.get(name).is_some_and(|s| s.publisher.is_some()) {
                return Err(JoinError::PublisherExists(name.to_owned()));
            }
        }
        if let Some(name) = src {
            if table
                .get(name)
                .is_some_and(|s| s.viewers.len() >= self.limits.max_viewers)
            {
                return Err(JoinError::TooManyViewers {
                    name: name.to_owned(),
                    limit: self.limits.max_viewers,
                });
            }
        }
        if let Some(name) = dst {
            let stream = table.entry(name.to_owned()).or_default();
            stream.publisher = Some(Publisher {
                conn,
                keyframes: endpoints.keyframes,
            });
            // A new source: every viewer starts again at its first keyframe.
            for v in &mut stream.viewers {
                v.needs_keyframe = true;
            }
        }
        if let Some(name) = src {
            let stream = table.entry(name.to_owned()).or_default();
            stream.viewers.push(Viewer {
                conn,
                media: endpoints.media,
                ready: false,
                needs_keyframe: true,
            });
        }
        Ok(Membership {
            streams: self.clone(),
            conn,
            src: src.map(str::to_owned),
            dst: dst.map(str::to_owned),
        })
    }

    fn leave(&self, conn: ConnId, src: Option<&str>, dst: Option<&str>) {
        let mut table = self.lock();
        for name in [src, dst].into_iter().flatten() {
            let Some(stream) = table.get_mut(name) else {
                continue;
            };
            if stream.publisher.as_ref().is_some_and(|p| p.conn == conn) {
                stream.publisher = None;
            }
            stream.viewers.retain(|v| v.conn != conn);
            if stream.publisher.is_none() && stream.viewers.is_empty() {
                table.remove(name);
            }
        }
    }

    /// Asks the publisher of `name`, if there is one, for a keyframe.
    pub fn request_keyframe(&self, name: &str) {
        let table = self.lock();
        if let Some(p) = table.get(name).and_then(|s| s.publisher.as_ref()) {
            // Full: a request is already waiting, and it covers this one.
            let _ = p.keyframes.try_send(());
        }
    }

    /// Queues `frame` for every viewer of `name` that can use it. Never waits: a viewer whose
    /// queue is full misses the frame (and, for video, waits for the next keyframe).
    pub fn forward(&self, name: &str, frame: &Arc<Frame>) -> Forwarded {
        let mut out = Forwarded::default();
        let mut table = self.lock();
        let Some(stream) = table.get_mut(name) else {
            return out;
        };
        let video = frame.kind == MediaKind::Video;
        for v in stream.viewers.iter_mut().filter(|v| v.ready) {
            if video && v.needs_keyframe {
                if !frame.keyframe {
                    out.want_keyframe = true;
                    continue;
                }
                v.needs_keyframe = false;
            }
            match v.media.try_send(frame.clone()) {
                Ok(()) => out.queued += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    out.dropped += 1;
                    if video {
                        v.needs_keyframe = true;
                        out.want_keyframe = true;
                    }
                }
                // The viewer is leaving; its membership removes it.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        out
    }
}

impl Membership {
    /// The viewer's WebRTC connection is up: from now on it is sent frames, starting with video
    /// at the next keyframe, which is requested from the publisher.
    pub fn viewer_ready(&self) {
        let Some(name) = self.src.as_deref() else {
            return;
        };
        {
            let mut table = self.streams.lock();
            let Some(stream) = table.get_mut(name) else {
                return;
            };
            for v in stream.viewers.iter_mut().filter(|v| v.conn == self.conn) {
                v.ready = true;
                v.needs_keyframe = true;
            }
        }
        self.streams.request_keyframe(name);
    }

    /// This connection's published video changes (another simulcast layer): every viewer's video
    /// waits for the next keyframe.
    pub fn restart_video(&self) {
        let Some(name) = self.dst.as_deref() else {
            return;
        };
        let mut table = self.streams.lock();
        if let Some(stream) = table.get_mut(name) {
            for v in &mut stream.viewers {
                v.needs_keyframe = true;
            }
        }
    }

    /// The viewer asked for a keyframe (its browser sent PLI or FIR): passed to the publisher.
    pub fn viewer_wants_keyframe(&self) {
        if let Some(name) = self.src.as_deref() {
            self.streams.request_keyframe(name);
        }
    }

    /// Forwards a frame this connection published (see [`Streams::forward`]).
    pub fn publish(&self, frame: &Arc<Frame>) -> Forwarded {
        match self.dst.as_deref() {
            Some(name) => self.streams.forward(name, frame),
            None => Forwarded::default(),
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.streams
            .leave(self.conn, self.src.as_deref(), self.dst.as_deref());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn endpoints(queue: usize) -> (Endpoints, mpsc::Receiver<Arc<Frame>>, mpsc::Receiver<()>) {
        let (media, media_rx) = mpsc::channel(queue);
        let (keyframes, kf_rx) = mpsc::channel(1);
        (Endpoints { media, keyframes }, media_rx, kf_rx)
    }

    fn frame(kind: MediaKind, keyframe: bool) -> Arc<Frame> {
        Arc::new(Frame {
            source: ConnId(1),
            layer: None,
            kind,
            params: PayloadParams::new(
                str0m::media::Pt::from(96),
                None,
                str0m::format::CodecSpec {
                    codec: str0m::format::Codec::Vp8,
                    clock_rate: str0m::media::Frequency::NINETY_KHZ,
                    channels: None,
                    format: str0m::format::FormatParams::default(),
                },
            ),
            time: MediaTime::from_90khz(0),
            network_time: Instant::now(),
            keyframe,
            data: Arc::from(&b"frame"[..]),
        })
    }

    fn table(max_streams: usize, max_viewers: usize) -> Arc<Streams> {
        Arc::new(Streams::new(StreamLimits {
            max_streams,
            max_viewers,
        }))
    }

    #[test]
    fn second_publisher_is_refused_and_the_first_leaving_frees_the_name() {
        let t = table(4, 4);
        let (e1, ..) = endpoints(4);
        let (e2, ..) = endpoints(4);
        let first = t.join(ConnId(1), None, Some("cam"), e1).unwrap();
        let err = t
            .join(ConnId(2), None, Some("cam"), e2.clone())
            .unwrap_err();
        assert_eq!(err, JoinError::PublisherExists("cam".into()));
        drop(first);
        assert!(t.is_empty());
        t.join(ConnId(2), None, Some("cam"), e2).unwrap();
    }

    #[test]
    fn limits_refuse_without_registering_anything() {
        let t = table(1, 1);
        let (e1, ..) = endpoints(4);
        let (e2, ..) = endpoints(4);
        let (e3, ..) = endpoints(4);
        let _v = t.join(ConnId(1), Some("a"), None, e1).unwrap();
        assert_eq!(
            t.join(ConnId(2), Some("a"), None, e2.clone()).unwrap_err(),
            JoinError::TooManyViewers {
                name: "a".into(),
                limit: 1
            }
        );
        // src=a is full, and dst=b would be a second stream: refused as a whole.
        assert_eq!(
            t.join(ConnId(3), Some("b"), Some("b"), e3).unwrap_err(),
            JoinError::TooManyStreams(1)
        );
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn viewers_wait_for_a_keyframe_and_a_full_queue_drops_instead_of_blocking() {
        let t = table(4, 4);
        let (pe, _, mut kf) = endpoints(1);
        let (ve, mut media, _) = endpoints(2);
        let publisher = t.join(ConnId(1), None, Some("s"), pe).unwrap();
        let viewer = t.join(ConnId(2), Some("s"), None, ve).unwrap();
        // Not ready yet: nothing is queued.
        assert_eq!(publisher.publish(&frame(MediaKind::Video, true)).queued, 0);
        viewer.viewer_ready();
        assert!(kf.try_recv().is_ok(), "a ready viewer asks for a keyframe");
        let f = publisher.publish(&frame(MediaKind::Video, false));
        assert_eq!((f.queued, f.want_keyframe), (0, true));
        assert_eq!(publisher.publish(&frame(MediaKind::Audio, false)).queued, 1);
        assert_eq!(publisher.publish(&frame(MediaKind::Video, true)).queued, 1);
        // The queue (2) is full now: the next frame is dropped, video waits for a keyframe.
        let f = publisher.publish(&frame(MediaKind::Video, false));
        assert_eq!((f.queued, f.dropped, f.want_keyframe), (0, 1, true));
        assert_eq!(media.try_recv().unwrap().kind, MediaKind::Audio);
        assert!(media.try_recv().unwrap().keyframe);
        let f = publisher.publish(&frame(MediaKind::Video, false));
        assert_eq!(
            f.queued, 0,
            "after a drop, delta frames wait for the next keyframe"
        );
        // The publisher leaves; the viewer stays for the next one.
        drop(publisher);
        assert_eq!(t.len(), 1);
        let (pe2, ..) = endpoints(1);
        let next = t.join(ConnId(3), None, Some("s"), pe2).unwrap();
        assert_eq!(next.publish(&frame(MediaKind::Video, true)).queued, 1);
        drop((viewer, next));
        assert!(t.is_empty());
    }
}
