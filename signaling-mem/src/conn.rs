//! In-memory connections.
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use async_trait::async_trait;
use signaling::transport::{
    CloseCode, CloseReason, Frame, PeerInfo, Transport, TransportError, TrySendError,
};
use tokio::sync::mpsc;

/// Settings of an in-memory connection.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MemConfig {
    /// How many frames may wait in each direction before `send` waits (and `try_send` fails).
    /// Default: 64.
    pub queue: usize,
    /// Largest frame accepted by `send`, in bytes. Default: 64 KiB.
    pub max_frame_size: usize,
}

impl Default for MemConfig {
    fn default() -> Self {
        Self {
            queue: 64,
            max_frame_size: 64 * 1024,
        }
    }
}

impl MemConfig {
    /// Sets the queue bound (at least 1).
    pub fn with_queue(mut self, queue: usize) -> Self {
        self.queue = queue.max(1);
        self
    }

    /// Sets the frame size bound.
    pub fn with_max_frame_size(mut self, max: usize) -> Self {
        self.max_frame_size = max;
        self
    }
}

#[derive(Debug)]
enum Item {
    Frame(Frame),
    Close(CloseReason),
}

/// One end of an in-memory connection. Implements [`Transport`]: ordered, reliable, bounded.
///
/// `recv` returns `Ok(None)` once the other end closed with code 1000 or 1001 (or was dropped),
/// and `Err(TransportError::Closed(Some(reason)))` when it closed with any other code (a relay
/// refusing a peer, say), so the reason is not lost.
#[derive(Debug)]
pub struct MemConnection {
    tx: Option<mpsc::Sender<Item>>,
    rx: mpsc::Receiver<Item>,
    peer: PeerInfo,
    max_frame_size: usize,
    /// Set once the remote end's close was received.
    remote_close: Option<CloseReason>,
}

/// A connected pair with the default [`MemConfig`].
pub fn pair() -> (MemConnection, MemConnection) {
    pair_with(
        &MemConfig::default(),
        PeerInfo::new("mem"),
        PeerInfo::new("mem"),
    )
}

/// A connected pair. `a_sees` is the [`PeerInfo`] the first end reports for its remote end,
/// `b_sees` the one the second end reports (e.g. a request path and query for a server).
pub fn pair_with(
    config: &MemConfig,
    a_sees: PeerInfo,
    b_sees: PeerInfo,
) -> (MemConnection, MemConnection) {
    let (a_tx, b_rx) = mpsc::channel(config.queue.max(1));
    let (b_tx, a_rx) = mpsc::channel(config.queue.max(1));
    let a = MemConnection {
        tx: Some(a_tx),
        rx: a_rx,
        peer: a_sees,
        max_frame_size: config.max_frame_size,
        remote_close: None,
    };
    let b = MemConnection {
        tx: Some(b_tx),
        rx: b_rx,
        peer: b_sees,
        max_frame_size: config.max_frame_size,
        remote_close: None,
    };
    (a, b)
}

impl MemConnection {
    /// The close code and reason the remote end sent, once `recv` has seen it.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.remote_close.as_ref()
    }

    /// What `recv` returns for an item taken from the channel (`None`: the peer's end is gone).
    fn received(&mut self, item: Option<Item>) -> Result<Option<Frame>, TransportError> {
        match item {
            Some(Item::Frame(f)) => Ok(Some(f)),
            Some(Item::Close(reason)) => {
                let result = close_result(&reason);
                self.remote_close = Some(reason);
                result
            }
            None => {
                self.remote_close = Some(CloseReason::new(CloseCode::GOING_AWAY, "dropped"));
                Ok(None)
            }
        }
    }

    fn sender(&self, frame: &str) -> Result<&mpsc::Sender<Item>, TransportError> {
        if frame.len() > self.max_frame_size {
            return Err(TransportError::TooLarge {
                size: frame.len(),
                limit: self.max_frame_size,
            });
        }
        self.tx.as_ref().ok_or(TransportError::Closed(None))
    }
}

#[async_trait]
impl Transport for MemConnection {
    async fn send(&mut self, frame: Frame) -> Result<(), TransportError> {
        let tx = self.sender(&frame)?;
        tx.send(Item::Frame(frame))
            .await
            .map_err(|_| TransportError::Closed(self.remote_close.clone()))
    }

    fn try_send(&mut self, frame: Frame) -> Result<(), TrySendError> {
        let tx = self.sender(&frame)?;
        tx.try_send(Item::Frame(frame)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(Item::Frame(frame)) => TrySendError::Full(frame),
            mpsc::error::TrySendError::Full(Item::Close(_)) => {
                TrySendError::Failed(TransportError::Closed(None))
            }
            mpsc::error::TrySendError::Closed(_) => {
                TrySendError::Failed(TransportError::Closed(None))
            }
        })
    }

    async fn recv(&mut self) -> Result<Option<Frame>, TransportError> {
        if let Some(reason) = &self.remote_close {
            return close_result(reason);
        }
        let item = self.rx.recv().await;
        self.received(item)
    }

    fn try_recv(&mut self) -> Poll<Result<Option<Frame>, TransportError>> {
        if let Some(reason) = &self.remote_close {
            return Poll::Ready(close_result(reason));
        }
        match self.rx.try_recv() {
            Ok(item) => Poll::Ready(self.received(Some(item))),
            Err(mpsc::error::TryRecvError::Empty) => Poll::Pending,
            Err(mpsc::error::TryRecvError::Disconnected) => Poll::Ready(self.received(None)),
        }
    }

    async fn close(&mut self, reason: CloseReason) -> Result<(), TransportError> {
        let Some(tx) = self.tx.take() else {
            return Ok(());
        };
        // Queued frames go first; the close waits for room like any frame, but never for a
        // peer that is gone.
        tx.send(Item::Close(reason))
            .await
            .map_err(|_| TransportError::Closed(None))
    }

    fn peer(&self) -> &PeerInfo {
        &self.peer
    }
}

fn close_result(reason: &CloseReason) -> Result<Option<Frame>, TransportError> {
    if reason.code == CloseCode::NORMAL || reason.code == CloseCode::GOING_AWAY {
        Ok(None)
    } else {
        Err(TransportError::Closed(Some(reason.clone())))
    }
}

/// A registry of named in-memory listeners: `bind` a name, `connect` to it. Lets a test (or an
/// in-process peer) reach a server that accepts [`MemConnection`]s, beside its real sockets.
#[derive(Clone, Debug, Default)]
pub struct Hub {
    listeners: Arc<Mutex<HashMap<String, mpsc::Sender<MemConnection>>>>,
    config: MemConfig,
}

/// Accepts connections made to one name of a [`Hub`].
#[derive(Debug)]
pub struct MemListener {
    rx: mpsc::Receiver<MemConnection>,
}

impl Hub {
    /// A hub whose connections use the default [`MemConfig`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A hub whose connections use `config`.
    pub fn with_config(config: MemConfig) -> Self {
        Self {
            listeners: Arc::default(),
            config,
        }
    }

    /// Listens on `name`, with at most `backlog` connections waiting to be accepted. Replaces an
    /// earlier listener of the same name.
    pub fn bind(&self, name: &str, backlog: usize) -> MemListener {
        let (tx, rx) = mpsc::channel(backlog.max(1));
        self.lock().insert(name.to_owned(), tx);
        MemListener { rx }
    }

    /// Connects to `name`. The accepting side's connection reports `client` as its peer info.
    /// Fails with a connection-refused IO error when nobody listens (or the backlog is full).
    pub fn connect(&self, name: &str, client: PeerInfo) -> Result<MemConnection, TransportError> {
        let tx = self.lock().get(name).cloned();
        let tx = tx.ok_or_else(|| refused("no listener"))?;
        let (local, remote) = pair_with(&self.config, PeerInfo::new("mem"), client);
        tx.try_send(remote).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => refused("backlog full"),
            mpsc::error::TrySendError::Closed(_) => refused("listener gone"),
        })?;
        Ok(local)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<MemConnection>>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts and
        // lookups), so a poisoned lock is still usable.
        self.listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn refused(why: &'static str) -> TransportError {
    TransportError::Io(io::Error::new(io::ErrorKind::ConnectionRefused, why))
}

impl MemListener {
    /// The next connection; `None` once the hub is gone or the name was bound again.
    pub async fn accept(&mut self) -> Option<MemConnection> {
        self.rx.recv().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn try_recv_takes_what_is_queued_then_reports_the_end() {
        let (mut a, mut b) = pair();
        assert!(b.try_recv().is_pending());
        for f in ["x", "y"] {
            a.send(f.into()).await.expect("sent");
        }
        assert!(matches!(b.try_recv(), Poll::Ready(Ok(Some(f))) if f == "x"));
        assert!(matches!(b.try_recv(), Poll::Ready(Ok(Some(f))) if f == "y"));
        assert!(b.try_recv().is_pending());
        a.close(CloseReason::new(CloseCode(4001), "full"))
            .await
            .expect("closed");
        assert!(
            matches!(b.try_recv(), Poll::Ready(Err(TransportError::Closed(Some(r)))) if r.code == CloseCode(4001))
        );
        // The end stays reported, as by `recv`.
        assert!(matches!(
            b.recv().await,
            Err(TransportError::Closed(Some(_)))
        ));
        drop(a);
        let (c, mut d) = pair();
        drop(c);
        assert!(matches!(d.try_recv(), Poll::Ready(Ok(None))));
    }
}
