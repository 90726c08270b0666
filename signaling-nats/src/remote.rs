//! Both ends of a link: the edge node's proxy between the client's connection and the link,
//! and, on the room's node, the link seen as one more [`Transport`] for the relay.
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use async_trait::async_trait;
use signaling::relay::{fresh_token, Disconnect, JoinRequest, Notice, TYPE_LEFT};
use signaling::transport::{
    CloseCode, CloseReason, Frame, PeerInfo, Transport, TransportError, TrySendError,
};

use crate::node::{Inner, Link, Place, MOVED};
use crate::proto::{Item, NodeId};

/// How many times a join looks its room up again after the room moved under it.
const MAX_MOVES: usize = 8;

/// Frames of a client read at once (what is already there) and sent in one message.
const BURST: usize = 64;

/// Runs one client connection of this node (see [`ClusterNode::serve`](crate::ClusterNode)).
pub(crate) async fn serve<T: Transport>(
    inner: &Arc<Inner>,
    mut transport: T,
    request: JoinRequest,
) {
    let mut request = request;
    let mut moves = 0;
    let mut leaving = inner.leaving.subscribe();
    loop {
        let going = *leaving.borrow();
        if going {
            let _ = transport.close(going_away()).await;
            return;
        }
        let owner = match inner.place(&request.room).await {
            Ok(Place::Here) => {
                // The relay's own shutdown closes it.
                drop(leaving);
                return inner.relay.serve(transport, request).await;
            }
            Ok(Place::There(owner)) => owner,
            Err(reason) => {
                tracing::debug!(room = %request.room, %reason, "join refused");
                let _ = transport.close(reason).await;
                return;
            }
        };
        match proxy(inner, &mut transport, request.clone(), &owner, &mut leaving).await {
            Proxied::Done => return,
            Proxied::Moved => {
                moves += 1;
                if moves > MAX_MOVES {
                    let _ = transport
                        .close(inner.unavailable("cluster unavailable"))
                        .await;
                    return;
                }
            }
            Proxied::OwnerLost(room) => {
                // The room's node is gone, and the room with it: the client hears that every
                // peer it knew left, and joins the room again as a new peer (its node, or
                // another, runs the room from now on).
                tracing::info!(node = %owner.name, room = %request.room, "room's node gone: joining the room again");
                for id in room.peers {
                    let left = Notice::about(TYPE_LEFT, &id);
                    if transport.send(left.into()).await.is_err() {
                        return;
                    }
                }
                let mut again = JoinRequest::new(request.room.clone(), fresh_token())
                    .with_unix_time(request.unix_time);
                again.user = request.user.clone();
                request = again;
            }
        }
    }
}

/// How a proxied connection ended.
enum Proxied {
    /// The client's connection is over.
    Done,
    /// The room's node no longer runs the room: look it up again.
    Moved,
    /// The room's node is gone; this is what the client knew of the room.
    OwnerLost(RoomView),
}

/// What the client was told of its room: its peers.
#[derive(Default)]
struct RoomView {
    peers: Vec<String>,
}

impl RoomView {
    /// Follows the relay's notices to the client.
    fn follow(&mut self, frame: &Frame) {
        // Only the relay's own messages start so; forwarded frames of type `relay/...` are
        // refused by the relay.
        if !frame.starts_with("{\"type\":\"relay/") {
            return;
        }
        match Notice::from_frame(frame) {
            Some(Notice::Welcome(welcome)) => self.peers = welcome.peers,
            Some(Notice::Joined { id }) if !self.peers.contains(&id) => self.peers.push(id),
            Some(Notice::Left { id }) => self.peers.retain(|p| *p != id),
            _ => {}
        }
    }
}

/// Relays a client's connection to and from the room's node `owner`, over a new link.
async fn proxy<T: Transport>(
    inner: &Arc<Inner>,
    transport: &mut T,
    request: JoinRequest,
    owner: &NodeId,
    leaving: &mut tokio::sync::watch::Receiver<bool>,
) -> Proxied {
    let link = inner.open_link(owner);
    push(&link, Item::Join(Box::new(request)));
    inner.flush(&link).await;
    let mut view = RoomView::default();
    let mut burst: Vec<Frame> = Vec::new();
    let ended = loop {
        if let Some(end) = deliver(inner, &link, transport, &mut view).await {
            break end;
        }
        let has_room = link.lock().out.has_room();
        tokio::select! {
            biased;
            () = link.wake.notified() => {}
            () = going(leaving) => break End::GoingAway,
            frame = transport.recv(), if has_room => {
                let mut end = match frame {
                    Ok(Some(frame)) => {
                        burst.push(frame);
                        None
                    }
                    Ok(None) => Some(Disconnect::Clean),
                    Err(_) => Some(Disconnect::Lost),
                };
                // No more than the window has room for: the burst is pushed after this.
                let room = link.lock().out.room();
                while end.is_none() && burst.len() < BURST.min(room) {
                    match transport.try_recv() {
                        Poll::Ready(Ok(Some(frame))) => burst.push(frame),
                        Poll::Ready(Ok(None)) => end = Some(Disconnect::Clean),
                        Poll::Ready(Err(_)) => end = Some(Disconnect::Lost),
                        Poll::Pending => break,
                    }
                }
                {
                    let mut state = link.lock();
                    let now = Instant::now();
                    for frame in burst.drain(..) {
                        state.out.push(Item::Frame(frame), now);
                    }
                    if let Some(how) = end {
                        state.out.push(Item::Leave(how), now);
                        state.ended_out = true;
                    }
                }
                inner.flush(&link).await;
                if end.is_some() {
                    break End::Left;
                }
            }
        }
    };
    if matches!(ended, End::Lost | End::GoingAway) {
        // The client's connection failed under a write, or this node is going away: its peer
        // may resume.
        {
            let mut state = link.lock();
            if !state.ended_out && !state.dead {
                state
                    .out
                    .push(Item::Leave(Disconnect::Lost), Instant::now());
                state.ended_out = true;
            }
        }
        inner.flush(&link).await;
    }
    inner.detach(&link);
    match ended {
        End::Left | End::Lost => Proxied::Done,
        End::GoingAway => {
            let _ = transport.close(going_away()).await;
            Proxied::Done
        }
        End::Closed(reason) if reason.code == MOVED => Proxied::Moved,
        End::Closed(reason) => {
            let _ = transport.close(reason).await;
            Proxied::Done
        }
        End::OwnerLost => Proxied::OwnerLost(view),
    }
}

/// Writes to the client what the room's node sent, until nothing is left. Returns how the
/// link ended, when it did.
async fn deliver<T: Transport>(
    inner: &Arc<Inner>,
    link: &Arc<Link>,
    transport: &mut T,
    view: &mut RoomView,
) -> Option<End> {
    loop {
        let (items, dead) = {
            let mut state = link.lock();
            (std::mem::take(&mut state.delivered), state.dead)
        };
        if items.is_empty() {
            return dead.then_some(End::OwnerLost);
        }
        let mut taken = items.len();
        let mut end = None;
        let mut items = items.into_iter().peekable();
        while let Some(item) = items.next() {
            let frame = match item {
                Item::Frame(frame) => frame,
                Item::Close(reason) => {
                    end = Some(End::Closed(reason));
                    break;
                }
                // Not sent by a room's node.
                Item::Join(_) | Item::Leave(_) => continue,
            };
            view.follow(&frame);
            // All but the last are queued without waiting; the last one's `send` flushes them.
            let written = match items.peek() {
                Some(_) => match transport.try_send(frame) {
                    Ok(()) => Written::Done,
                    Err(TrySendError::Full(frame)) => write(transport, frame, link).await,
                    Err(_) => Written::Failed,
                },
                None => write(transport, frame, link).await,
            };
            match written {
                Written::Done => {}
                Written::Failed => {
                    end = Some(End::Lost);
                    break;
                }
                Written::Interrupted => {
                    // The client does not read, and the room's node gave up on it (a slow
                    // consumer) or is gone: what was not written is dropped.
                    let rest: Vec<Item> = items.by_ref().collect();
                    let later = std::mem::take(&mut link.lock().delivered);
                    taken += later.len();
                    end = Some(
                        rest.into_iter()
                            .chain(later)
                            .find_map(|item| match item {
                                Item::Close(reason) => Some(End::Closed(reason)),
                                _ => None,
                            })
                            .unwrap_or(End::OwnerLost),
                    );
                    break;
                }
            }
        }
        let closing = matches!(end, Some(End::Closed(_)));
        inner.taken(link, taken, closing).await;
        if end.is_some() {
            return end;
        }
    }
}

enum Written {
    Done,
    Failed,
    /// The link ended while the client was not reading.
    Interrupted,
}

/// Sends one frame to the client, waiting for room, unless the link ends meanwhile.
async fn write<T: Transport>(transport: &mut T, frame: Frame, link: &Link) -> Written {
    let send = transport.send(frame);
    tokio::pin!(send);
    loop {
        tokio::select! {
            sent = &mut send => return if sent.is_ok() { Written::Done } else { Written::Failed },
            () = link.wake.notified() => {
                let state = link.lock();
                if state.dead || state.ended_in {
                    return Written::Interrupted;
                }
            }
        }
    }
}

enum End {
    /// The client's connection ended (the room's node was told).
    Left,
    /// Writing to the client failed.
    Lost,
    /// The room's node closed the connection.
    Closed(CloseReason),
    /// The room's node is gone.
    OwnerLost,
    /// This node shuts down.
    GoingAway,
}

/// Resolves once the node shuts down.
async fn going(leaving: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, not held across the caller's awaits.
    let _ = leaving.wait_for(|leaving| *leaving).await.is_ok();
}

fn going_away() -> CloseReason {
    CloseReason::new(CloseCode::GOING_AWAY, "server shutting down")
}

fn push(link: &Link, item: Item) {
    link.lock().out.push(item, Instant::now());
}

/// A client of another node, as the relay on the room's node sees it: a [`Transport`] whose
/// frames travel over a link.
pub(crate) struct RemoteTransport {
    inner: Arc<Inner>,
    link: Arc<Link>,
    peer: PeerInfo,
    closed: bool,
}

impl RemoteTransport {
    pub(crate) fn new(inner: Arc<Inner>, link: Arc<Link>, peer: PeerInfo) -> Self {
        Self {
            inner,
            link,
            peer,
            closed: false,
        }
    }

    /// Takes the next item delivered on the link, acknowledging it (soon).
    async fn next_item(&mut self) -> Poll<Result<Option<Frame>, TransportError>> {
        let item = {
            let mut state = self.link.lock();
            match state.pop_delivered() {
                Some(item) => item,
                None if state.dead => return Poll::Ready(Err(gone())),
                None => return Poll::Pending,
            }
        };
        let ended = matches!(item, Item::Leave(_));
        self.inner.taken(&self.link, 1, ended).await;
        Poll::Ready(match item {
            Item::Frame(frame) => Ok(Some(frame)),
            Item::Leave(Disconnect::Clean) => Ok(None),
            Item::Leave(Disconnect::Lost) => Err(TransportError::Closed(None)),
            // Not sent by an edge node after its join.
            Item::Join(_) | Item::Close(_) => Err(TransportError::Unsupported("link item")),
        })
    }
}

fn gone() -> TransportError {
    TransportError::TimedOut("the client's node is gone")
}

#[async_trait]
impl Transport for RemoteTransport {
    async fn send(&mut self, frame: Frame) -> Result<(), TransportError> {
        loop {
            {
                let mut state = self.link.lock();
                if state.dead || self.closed {
                    return Err(TransportError::Closed(None));
                }
                if state.out.has_room() {
                    state.out.push(Item::Frame(frame), Instant::now());
                    break;
                }
            }
            self.inner.flush(&self.link).await;
            self.link.wake.notified().await;
        }
        self.inner.flush(&self.link).await;
        Ok(())
    }

    fn try_send(&mut self, frame: Frame) -> Result<(), TrySendError> {
        let mut state = self.link.lock();
        if state.dead || self.closed {
            return Err(TrySendError::Failed(TransportError::Closed(None)));
        }
        if !state.out.has_room() {
            return Err(TrySendError::Full(frame));
        }
        // Sent by the next `send`, `recv` or `close`.
        state.out.push(Item::Frame(frame), Instant::now());
        Ok(())
    }

    async fn recv(&mut self) -> Result<Option<Frame>, TransportError> {
        if self.link.lock().out.has_unsent() {
            self.inner.flush(&self.link).await;
        }
        loop {
            if let Poll::Ready(result) = self.next_item().await {
                return result;
            }
            self.link.wake.notified().await;
        }
    }

    fn try_recv(&mut self) -> Poll<Result<Option<Frame>, TransportError>> {
        let mut state = self.link.lock();
        match state.delivered.front() {
            Some(Item::Frame(_)) => {}
            // A leave is taken by `recv`, which acknowledges it at once.
            Some(_) => return Poll::Pending,
            None if state.dead => return Poll::Ready(Err(gone())),
            None => return Poll::Pending,
        }
        let Some(Item::Frame(frame)) = state.pop_delivered() else {
            return Poll::Pending;
        };
        // Acknowledged by the next `recv`, or by the timer task.
        state.inc.take(1);
        self.inner.watch(&self.link, &mut state);
        Poll::Ready(Ok(Some(frame)))
    }

    async fn close(&mut self, reason: CloseReason) -> Result<(), TransportError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        {
            let mut state = self.link.lock();
            if state.dead {
                return Ok(());
            }
            state.out.push(Item::Close(reason), Instant::now());
            state.ended_out = true;
        }
        self.inner.flush(&self.link).await;
        Ok(())
    }

    fn peer(&self) -> &PeerInfo {
        &self.peer
    }
}

impl Drop for RemoteTransport {
    fn drop(&mut self) {
        {
            let mut state = self.link.lock();
            if !state.dead && !state.ended_out && !state.ended_in {
                // The relay let the connection go without a close (it shut down, say): the
                // client is told the node is going away (sent by the timer task).
                state.out.push(
                    Item::Close(CloseReason::new(CloseCode::GOING_AWAY, "")),
                    Instant::now(),
                );
                state.ended_out = true;
            }
        }
        self.inner.detach(&self.link);
    }
}
