//! A transport that passes everything through and can slip extra frames onto the wire right
//! after a chosen one: how a test makes a frame arrive late (a candidate of an old ICE
//! generation landing after the restart offer), exactly as a slow network would deliver it,
//! and hold back what arrives after the first frame until released (the peer's own offer goes
//! out before the peer's waiting offer is read: two offers crossing on a slow wire).
use std::sync::{Arc, Mutex};
use std::task::Poll;

use tokio::sync::watch;

use signaling::transport::{CloseReason, Frame, PeerInfo, Transport, TransportError, TrySendError};

/// The transport.
#[derive(Debug)]
pub struct Tap<T> {
    inner: T,
    after_offer: Arc<Mutex<Vec<String>>>,
    hold: watch::Receiver<bool>,
    received: u64,
}

/// Arms a [`Tap`] from outside the task that owns it.
#[derive(Clone, Debug)]
pub struct TapHandle {
    after_offer: Arc<Mutex<Vec<String>>>,
    max_injected: usize,
    hold: Arc<watch::Sender<bool>>,
}

impl TapHandle {
    /// A handle that holds at most `max_injected` frames to slip in.
    pub fn new(max_injected: usize) -> Self {
        Self {
            after_offer: Arc::default(),
            max_injected,
            hold: Arc::new(watch::channel(false).0),
        }
    }

    /// Holds every frame after the first one received (at once, on a connection that received
    /// one already) until [`TapHandle::release`].
    pub fn hold_after_first(&self) {
        self.hold.send_replace(true);
    }

    /// Lets held frames through.
    pub fn release(&self) {
        self.hold.send_replace(false);
    }

    /// Sends `frame` right after the next offer this connection sends. Ignored when as many
    /// frames as the handle's bound wait already.
    pub fn after_next_offer(&self, frame: String) {
        if let Ok(mut frames) = self.after_offer.lock() {
            if frames.len() < self.max_injected {
                frames.push(frame);
            }
        }
    }
}

impl<T> Tap<T> {
    /// Wraps `inner`; frames armed on `handle` follow its next offer.
    pub fn new(inner: T, handle: &TapHandle) -> Self {
        Self {
            inner,
            after_offer: handle.after_offer.clone(),
            hold: handle.hold.subscribe(),
            received: 0,
        }
    }

    fn take_injected(&self, frame: &Frame) -> Vec<String> {
        if !is_offer(frame.as_str()) {
            return Vec::new();
        }
        self.after_offer
            .lock()
            .map(|mut frames| std::mem::take(&mut *frames))
            .unwrap_or_default()
    }
}

/// An offer in either description form (`webrtc/offer`, or v2 `webrtc` with type `offer`).
fn is_offer(frame: &str) -> bool {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(frame) else {
        return false;
    };
    match value.get("type").and_then(|t| t.as_str()) {
        Some("webrtc/offer") => true,
        Some("webrtc") => value.pointer("/value/type").and_then(|t| t.as_str()) == Some("offer"),
        _ => false,
    }
}

#[async_trait::async_trait]
impl<T: Transport> Transport for Tap<T> {
    async fn send(&mut self, frame: Frame) -> Result<(), TransportError> {
        tracing::trace!(%frame, "send");
        let injected = self.take_injected(&frame);
        self.inner.send(frame).await?;
        for extra in injected {
            self.inner.send(Frame::from(extra)).await?;
        }
        Ok(())
    }

    fn try_send(&mut self, frame: Frame) -> Result<(), TrySendError> {
        let injected = self.take_injected(&frame);
        self.inner.try_send(frame)?;
        for extra in injected {
            self.inner.try_send(Frame::from(extra))?;
        }
        Ok(())
    }

    async fn recv(&mut self) -> Result<Option<Frame>, TransportError> {
        loop {
            if self.received >= 1 && *self.hold.borrow_and_update() {
                if self.hold.changed().await.is_err() {
                    // The handle is gone: nobody can release; let frames through.
                    self.received = 0;
                }
                continue;
            }
            // A hold that starts while waiting applies to the frame being waited for: the
            // inner `recv` is cancel-safe, so dropping it loses nothing.
            let received = tokio::select! {
                received = self.inner.recv() => received,
                changed = self.hold.changed() => {
                    if changed.is_err() {
                        self.received = 0;
                    }
                    continue;
                }
            };
            if let Ok(Some(frame)) = &received {
                tracing::trace!(%frame, "recv");
                self.received += 1;
            }
            return received;
        }
    }

    fn try_recv(&mut self) -> Poll<Result<Option<Frame>, TransportError>> {
        if self.received >= 1 && *self.hold.borrow() {
            return Poll::Pending;
        }
        let received = self.inner.try_recv();
        if matches!(received, Poll::Ready(Ok(Some(_)))) {
            self.received += 1;
        }
        received
    }

    async fn close(&mut self, reason: CloseReason) -> Result<(), TransportError> {
        self.inner.close(reason).await
    }

    fn peer(&self) -> &PeerInfo {
        self.inner.peer()
    }
}
