//! A transport that passes everything through and can slip extra frames onto the wire right
//! after a chosen one: how a test makes a frame arrive late (a candidate of an old ICE
//! generation landing after the restart offer), exactly as a slow network would deliver it.
use std::sync::{Arc, Mutex};
use std::task::Poll;

use signaling_core::transport::{
    CloseReason, Frame, PeerInfo, Transport, TransportError, TrySendError,
};

/// Frames waiting to follow the next offer, at most.
const MAX_INJECTED: usize = 16;

/// The transport.
#[derive(Debug)]
pub struct Tap<T> {
    inner: T,
    after_offer: Arc<Mutex<Vec<String>>>,
}

/// Arms a [`Tap`] from outside the task that owns it.
#[derive(Clone, Debug, Default)]
pub struct TapHandle(Arc<Mutex<Vec<String>>>);

impl TapHandle {
    /// Sends `frame` right after the next offer this connection sends. Ignored beyond
    /// [`MAX_INJECTED`] waiting frames.
    pub fn after_next_offer(&self, frame: String) {
        if let Ok(mut frames) = self.0.lock() {
            if frames.len() < MAX_INJECTED {
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
            after_offer: handle.0.clone(),
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
        self.inner.recv().await
    }

    fn try_recv(&mut self) -> Poll<Result<Option<Frame>, TransportError>> {
        self.inner.try_recv()
    }

    async fn close(&mut self, reason: CloseReason) -> Result<(), TransportError> {
        self.inner.close(reason).await
    }

    fn peer(&self) -> &PeerInfo {
        self.inner.peer()
    }
}
