//! A relay node of a cluster: its NATS connection, the other nodes, room ownership and links.
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use async_nats::{Client, Subject};
use bytes::Bytes;
use futures::StreamExt;
use rustc_hash::FxHashMap;
use signaling::relay::{JoinRequest, RelayHandle};
use signaling::transport::{CloseCode, CloseReason, PeerInfo, Transport};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::link::{Incoming, Outgoing};
use crate::proto::{Body, Heartbeat, Item, LinkId, Message, NodeId, MAX_NODE_NAME_LEN};
use crate::remote::{self, RemoteTransport};
use crate::ClusterError;

/// The close code a client gets when its room's node cannot be reached through NATS (NATS is
/// down, or the room's node does not answer): 1013, *try again later*.
pub const CLUSTER_UNAVAILABLE: CloseCode = CloseCode::TRY_AGAIN_LATER;

/// Between nodes only (never seen by a client): the room is not run by the node a join was
/// sent to (it let the room go meanwhile); the join looks the room up again.
pub(crate) const MOVED: CloseCode = CloseCode(4999);

/// Cluster settings: the `[cluster]` section of the relay's configuration. Every setting but
/// `nats` and `node` has a default.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// The NATS server, `nats://HOST:PORT` (several, comma-separated, for a NATS cluster).
    pub nats: String,
    /// This node's name: unique in the cluster, 1 to 64 of `A-Z a-z 0-9 - _`.
    pub node: String,
    /// The first token of every NATS subject the cluster uses, and the name of its key-value
    /// bucket (`<prefix>-rooms`). Clusters that share a NATS server need different prefixes.
    /// Default: `signaling`.
    pub prefix: String,
    /// How often a node says it is alive. Default: 1 s.
    #[serde(with = "secs")]
    pub heartbeat: Duration,
    /// A node not heard from for this long is gone: the rooms it ran are taken over and its
    /// clients' peers are lost (they may resume elsewhere). Only counted while this node's own
    /// NATS connection is up. Default: 5 s.
    #[serde(with = "secs")]
    pub node_timeout: Duration,
    /// Frames a link lets wait for their acknowledgement, in each direction: a client whose
    /// frames the room's node has not taken this many of is not read further. Default: 256.
    pub window: usize,
    /// How long sent items wait for an acknowledgement before they are sent again.
    /// Default: 1 s.
    #[serde(with = "secs")]
    pub retransmit: Duration,
    /// How long a join may take to find its room's node. Default: 5 s.
    #[serde(with = "secs")]
    pub join_timeout: Duration,
    /// A room this node runs is given up (so that the next join may place it anywhere) once it
    /// has been empty for this long. Default: 2 s.
    #[serde(with = "secs")]
    pub release_after: Duration,
    /// Acknowledgements not carried by other traffic wait at most this long. Default: 20 ms.
    #[serde(with = "secs")]
    pub ack_delay: Duration,
    /// Copies JetStream keeps of the room bucket when this node creates it: 1 for a single NATS
    /// server, 3 for a NATS cluster of three. Default: 1.
    pub replicas: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            nats: String::new(),
            node: String::new(),
            prefix: "signaling".to_owned(),
            heartbeat: Duration::from_secs(1),
            node_timeout: Duration::from_secs(5),
            window: 256,
            retransmit: Duration::from_secs(1),
            join_timeout: Duration::from_secs(5),
            release_after: Duration::from_secs(2),
            ack_delay: Duration::from_millis(20),
            replicas: 1,
        }
    }
}

/// Durations in configuration files are (fractional) seconds.
mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = f64::deserialize(d)?;
        Duration::try_from_secs_f64(s).map_err(serde::de::Error::custom)
    }
}

impl ClusterConfig {
    /// Settings for the node `node` on the NATS server `nats`, with the defaults.
    pub fn new(nats: impl Into<String>, node: impl Into<String>) -> Self {
        Self {
            nats: nats.into(),
            node: node.into(),
            ..Self::default()
        }
    }

    /// Checks the settings: names are subject tokens, durations and the window are not zero,
    /// and a node is declared gone only after several heartbeats were missed.
    pub fn validate(&self) -> Result<(), ClusterError> {
        let bad = |what: &'static str, why: &str| Err(ClusterError::Config(what, why.to_owned()));
        if self.nats.is_empty() {
            return bad("nats", "the NATS server's address is required");
        }
        let token = |s: &str| {
            !s.is_empty()
                && s.len() <= MAX_NODE_NAME_LEN
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !token(&self.node) {
            return bad("node", "1 to 64 characters of A-Z a-z 0-9 - _");
        }
        if !token(&self.prefix) {
            return bad("prefix", "1 to 64 characters of A-Z a-z 0-9 - _");
        }
        for (what, value) in [
            ("heartbeat", self.heartbeat),
            ("retransmit", self.retransmit),
            ("join_timeout", self.join_timeout),
            ("release_after", self.release_after),
            ("ack_delay", self.ack_delay),
        ] {
            if value.is_zero() {
                return bad(what, "must be greater than 0");
            }
        }
        if self.node_timeout < self.heartbeat * 2 {
            return bad("node_timeout", "must be at least twice the heartbeat");
        }
        if self.window == 0 {
            return bad("window", "must be at least 1");
        }
        if !(1..=5).contains(&self.replicas) {
            return bad("replicas", "must be 1 to 5 (JetStream's limit)");
        }
        Ok(())
    }
}

/// Counters of a node's cluster traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterStats {
    /// NATS messages published (link messages and heartbeats).
    pub published: u64,
    /// Link messages received.
    pub received: u64,
    /// Frames sent on links (each once, retransmissions not counted).
    pub frames_sent: u64,
    /// Items sent again (after a loss, or a NATS reconnection).
    pub retransmitted: u64,
    /// Links open now (clients proxied to another node, and other nodes' clients in rooms
    /// this node runs).
    pub links: usize,
    /// Rooms this node runs for the cluster.
    pub rooms: usize,
    /// Joins refused because the room's node could not be reached.
    pub unavailable: u64,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    received: AtomicU64,
    frames_sent: AtomicU64,
    retransmitted: AtomicU64,
    unavailable: AtomicU64,
}

/// A relay node of a cluster. See the [crate docs](crate).
///
/// Cheap to clone. The background tasks (message dispatch, heartbeats, timers) end with
/// [`shutdown`](Self::shutdown) or [`abort`](Self::abort).
#[derive(Clone)]
pub struct ClusterNode {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNode")
            .field("node", &self.inner.me.name)
            .field("stats", &self.stats())
            .finish()
    }
}

pub(crate) struct Inner {
    pub(crate) config: ClusterConfig,
    pub(crate) me: NodeId,
    pub(crate) relay: RelayHandle,
    client: Client,
    rooms: kv::Store,
    heartbeat_subject: Subject,
    links: Mutex<FxHashMap<LinkId, Arc<Link>>>,
    members: Mutex<Members>,
    claims: Mutex<HashMap<String, Claim>>,
    /// Links with acknowledgements to send or items waiting for theirs: the timer task looks
    /// at these only.
    attention: Mutex<Vec<Arc<Link>>>,
    next_link: AtomicU64,
    counters: Counters,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    stopped: AtomicBool,
    /// Set by [`ClusterNode::shutdown`]: this node's clients of rooms run by other nodes go
    /// away. Each of them holds a receiver while it is served.
    pub(crate) leaving: tokio::sync::watch::Sender<bool>,
}

/// The other nodes, as heard through their heartbeats.
struct Members {
    nodes: HashMap<String, Member>,
    /// Whether this node's NATS connection is up, and since when.
    connected: bool,
    since: Instant,
}

struct Member {
    incarnation: u64,
    last_seen: Instant,
}

/// A room this node runs, as recorded in the key-value bucket.
struct Claim {
    revision: u64,
    /// When a join last came for it, or it was last seen in use.
    used: Instant,
    releasing: bool,
}

/// One client connection proxied between two nodes. See [`crate::link`].
pub(crate) struct Link {
    pub(crate) id: LinkId,
    pub(crate) peer: NodeId,
    subject: Subject,
    pub(crate) state: Mutex<LinkState>,
    /// Wakes the link's task: items arrived, room in the window, or the link died.
    pub(crate) wake: Notify,
}

pub(crate) struct LinkState {
    pub(crate) out: Outgoing,
    pub(crate) inc: Incoming,
    /// Items received in order, waiting for the task.
    pub(crate) delivered: VecDeque<Item>,
    /// A task uses the link; without one, items that arrive are dropped (and acknowledged).
    pub(crate) attached: bool,
    /// The other node is gone, or does not know the link.
    pub(crate) dead: bool,
    /// This side's last item (`Close` or `Leave`) was pushed.
    pub(crate) ended_out: bool,
    /// The other side's last item arrived.
    pub(crate) ended_in: bool,
    in_attention: bool,
}

impl LinkState {
    /// Takes the next delivered item; an emptied queue gives its buffer back.
    pub(crate) fn pop_delivered(&mut self) -> Option<Item> {
        let item = self.delivered.pop_front();
        if self.delivered.is_empty() && self.delivered.capacity() > 8 {
            self.delivered = VecDeque::new();
        }
        item
    }
}

impl Link {
    pub(crate) fn lock(&self) -> MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the link can be forgotten: no task, and nothing more to exchange.
    fn finished(state: &LinkState) -> bool {
        !state.attached
            && (state.dead
                || (state.out.all_acked()
                    && state.inc.pending_ack().is_none()
                    && (state.ended_in || state.ended_out)))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent, so a lock poisoned by a panic
    // elsewhere is still usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where a room is run.
pub(crate) enum Place {
    Here,
    There(NodeId),
}

impl ClusterNode {
    /// Connects to NATS, opens (or creates) the room bucket, and starts the node's tasks.
    /// Joins are then placed through [`serve`](Self::serve); `relay` runs the rooms placed
    /// here.
    pub async fn start(config: ClusterConfig, relay: RelayHandle) -> Result<Self, ClusterError> {
        config.validate()?;
        let incarnation = loop {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).map_err(|e| ClusterError::Random(e.to_string()))?;
            let n = u64::from_be_bytes(bytes);
            if n != 0 {
                break n;
            }
        };
        let me = NodeId {
            name: config.node.clone(),
            incarnation,
        };
        // Each node's relay numbers its peers from its own random point (a multiple of 2^32
        // below 2^52). A client whose room moves (its node died) may still send frames
        // addressed to the ids it knew there: in the room's new run those ids must name no one,
        // as the id of a peer that left does on one relay, not whoever the new node numbered
        // the same.
        relay.number_peers_from(((incarnation >> 44) << 32) + 1);
        let (events, mut event_rx) = tokio::sync::mpsc::unbounded_channel();
        let client = async_nats::ConnectOptions::new()
            .name(format!("signaling relay node {}", config.node))
            // Reconnect for as long as the node runs; links survive the outage.
            .max_reconnects(None)
            .event_callback(move |event| {
                let events = events.clone();
                async move {
                    let _ = events.send(event);
                }
            })
            .connect(config.nats.as_str())
            .await
            .map_err(|e| ClusterError::Connect(config.nats.clone(), e.to_string()))?;
        let jetstream = async_nats::jetstream::new(client.clone());
        let bucket = format!("{}-rooms", config.prefix);
        let rooms = match jetstream.get_key_value(&bucket).await {
            Ok(store) => store,
            Err(_) => {
                // The bucket's stream is made here, as a key-value bucket's is by NATS's own
                // tools (`Context::create_key_value` first asks for account details that
                // servers before 2.10 do not send).
                use async_nats::jetstream::stream;
                jetstream
                    .get_or_create_stream(stream::Config {
                        name: format!("KV_{bucket}"),
                        description: Some("signaling relay: which node runs each room".to_owned()),
                        subjects: vec![format!("$KV.{bucket}.>")],
                        max_messages_per_subject: 1,
                        max_message_size: 256,
                        storage: stream::StorageType::File,
                        allow_rollup: true,
                        deny_delete: true,
                        allow_direct: true,
                        discard: stream::DiscardPolicy::New,
                        num_replicas: config.replicas,
                        ..stream::Config::default()
                    })
                    .await
                    .map_err(|e| ClusterError::Bucket(bucket.clone(), e.to_string()))?;
                jetstream
                    .get_key_value(&bucket)
                    .await
                    .map_err(|e| ClusterError::Bucket(bucket.clone(), e.to_string()))?
            }
        };
        let inbox = inbox_subject(&config.prefix, &config.node);
        let mut subscription = client
            .subscribe(inbox)
            .await
            .map_err(|e| ClusterError::Connect(config.nats.clone(), e.to_string()))?;
        let heartbeat_subject = Subject::from(format!("{}.heartbeat", config.prefix));
        let mut heartbeats = client
            .subscribe(heartbeat_subject.clone())
            .await
            .map_err(|e| ClusterError::Connect(config.nats.clone(), e.to_string()))?;
        let mut pings = client
            .subscribe(ping_subject(&config.prefix, &config.node))
            .await
            .map_err(|e| ClusterError::Connect(config.nats.clone(), e.to_string()))?;
        let now = Instant::now();
        let inner = Arc::new(Inner {
            config,
            me,
            relay,
            client,
            rooms,
            heartbeat_subject,
            links: Mutex::new(FxHashMap::default()),
            members: Mutex::new(Members {
                nodes: HashMap::new(),
                connected: true,
                since: now,
            }),
            claims: Mutex::new(HashMap::new()),
            attention: Mutex::new(Vec::new()),
            next_link: AtomicU64::new(0),
            counters: Counters::default(),
            tasks: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
            leaving: tokio::sync::watch::Sender::new(false),
        });
        // The tasks hold the node weakly: they end when the last handle is dropped.
        let weak = Arc::downgrade(&inner);
        let dispatch = tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                let Some(inner) = weak.upgrade() else { return };
                inner.on_message(message.payload).await;
            }
        });
        let weak = Arc::downgrade(&inner);
        let hearing = tokio::spawn(async move {
            while let Some(message) = heartbeats.next().await {
                let Some(inner) = weak.upgrade() else { return };
                if let Ok(heartbeat) = Heartbeat::decode(message.payload) {
                    inner.on_heartbeat(heartbeat);
                }
            }
        });
        let weak = Arc::downgrade(&inner);
        let answering = tokio::spawn(async move {
            while let Some(message) = pings.next().await {
                let Some(inner) = weak.upgrade() else { return };
                if let Some(reply) = message.reply {
                    let answer = Bytes::copy_from_slice(&inner.me.incarnation.to_be_bytes());
                    let _ = inner.client.publish(reply, answer).await;
                }
            }
        });
        let weak = Arc::downgrade(&inner);
        let watching = tokio::spawn(async move {
            while let Some(event) = event_rx.recv().await {
                let Some(inner) = weak.upgrade() else { return };
                inner.on_event(event).await;
            }
        });
        let weak = Arc::downgrade(&inner);
        let ticking = tokio::spawn(async move {
            let tick = {
                let Some(inner) = weak.upgrade() else { return };
                inner.config.ack_delay.min(inner.config.heartbeat)
            };
            let mut last_heartbeat: Option<Instant> = None;
            let mut last_sweep = Instant::now();
            loop {
                tokio::time::sleep(tick).await;
                let Some(inner) = weak.upgrade() else { return };
                let now = Instant::now();
                if last_heartbeat.is_none_or(|at| now >= at + inner.config.heartbeat) {
                    last_heartbeat = Some(now);
                    inner.send_heartbeat(false).await;
                    inner.check_members(now);
                }
                inner.tend_links(now).await;
                if now >= last_sweep + inner.config.release_after / 2 {
                    last_sweep = now;
                    inner.release_rooms(now).await;
                }
            }
        });
        lock(&inner.tasks).extend([dispatch, hearing, answering, watching, ticking]);
        inner.send_heartbeat(false).await;
        Ok(Self { inner })
    }

    /// This node.
    pub fn id(&self) -> &NodeId {
        &self.inner.me
    }

    /// The relay that runs the rooms placed on this node.
    pub fn relay(&self) -> &RelayHandle {
        &self.inner.relay
    }

    /// Counters.
    pub fn stats(&self) -> ClusterStats {
        let c = &self.inner.counters;
        ClusterStats {
            published: c.published.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            frames_sent: c.frames_sent.load(Ordering::Relaxed),
            retransmitted: c.retransmitted.load(Ordering::Relaxed),
            links: lock(&self.inner.links).len(),
            rooms: lock(&self.inner.claims).len(),
            unavailable: c.unavailable.load(Ordering::Relaxed),
        }
    }

    /// Whether the node's NATS connection is up, as the node last heard from its NATS client.
    /// While it is down, the node keeps running its own rooms, refuses joins of rooms run by
    /// other nodes with [`CLUSTER_UNAVAILABLE`], and holds what its links send until NATS is
    /// back (for a health check: the node is alive, and not ready for every room).
    pub fn nats_connected(&self) -> bool {
        lock(&self.inner.members).connected
    }

    /// Runs one client connection, as [`RelayHandle::serve`] does on one node: finds the node
    /// that runs the room its request names (placing the room here when no node runs it),
    /// then relays its frames there until it ends. A connection whose room's node cannot be
    /// reached is closed with [`CLUSTER_UNAVAILABLE`].
    pub async fn serve<T: Transport>(&self, transport: T, request: JoinRequest) {
        remote::serve(&self.inner, transport, request).await;
    }

    /// Leaves the cluster, gracefully. Shut the relay down first ([`RelayHandle::shutdown`]):
    /// that closes the connections of the rooms this node runs. Then:
    ///
    /// 1. this node's clients of rooms run by other nodes get what reached this node for them
    ///    and a close with 1001 (going away); the rooms' nodes count them as lost, so that they
    ///    may resume on another node within the resume grace. Those not done within `drain`
    ///    are cut off. New connections given to [`serve`](Self::serve) are closed with 1001;
    /// 2. the other nodes are told at once that this one is gone, the rooms it ran are let go
    ///    (free to be placed elsewhere), and the node's tasks stop.
    ///
    /// Returns how many clients of other nodes' rooms were sent away, and how many were cut off.
    pub async fn shutdown(&self, drain: Duration) -> (usize, usize) {
        let inner = &self.inner;
        let sent_away = inner.leaving.receiver_count();
        inner.leaving.send_replace(true);
        let cut = match tokio::time::timeout(drain, inner.leaving.closed()).await {
            Ok(()) => 0,
            Err(_) => inner.leaving.receiver_count(),
        };
        inner.send_heartbeat(true).await;
        let claims: Vec<(String, u64)> = lock(&self.inner.claims)
            .drain()
            .map(|(room, claim)| (room, claim.revision))
            .collect();
        for (room, revision) in claims {
            let _ = self
                .inner
                .rooms
                .delete_expect_revision(room_key(&room), Some(revision))
                .await;
        }
        let _ = self.inner.client.flush().await;
        self.abort();
        (sent_away - cut, cut)
    }

    /// Stops the node's tasks at once, telling no one: the other nodes find out when its
    /// heartbeats stop, as after a crash.
    pub fn abort(&self) {
        self.inner.stopped.store(true, Ordering::Relaxed);
        for task in lock(&self.inner.tasks).drain(..) {
            task.abort();
        }
        let links: Vec<Arc<Link>> = lock(&self.inner.links).drain().map(|(_, l)| l).collect();
        for link in links {
            link.lock().dead = true;
            link.wake.notify_one();
        }
    }
}

pub(crate) fn inbox_subject(prefix: &str, node: &str) -> Subject {
    Subject::from(format!("{prefix}.node.{node}"))
}

fn ping_subject(prefix: &str, node: &str) -> Subject {
    Subject::from(format!("{prefix}.ping.{node}"))
}

/// A room's key in the bucket: its name in hex (room names may hold any character; keys may
/// not).
fn room_key(room: &str) -> String {
    let mut key = String::with_capacity(room.len() * 2);
    for b in room.bytes() {
        let _ = write!(key, "{b:02x}");
    }
    key
}

fn owner_value(node: &NodeId) -> Bytes {
    Bytes::from(format!("{:016x} {}", node.incarnation, node.name))
}

fn parse_owner(value: &[u8]) -> Option<NodeId> {
    let text = std::str::from_utf8(value).ok()?;
    let (incarnation, name) = text.split_once(' ')?;
    Some(NodeId {
        name: name.to_owned(),
        incarnation: u64::from_str_radix(incarnation, 16).ok()?,
    })
}

impl Inner {
    pub(crate) fn unavailable(&self, why: &str) -> CloseReason {
        self.counters.unavailable.fetch_add(1, Ordering::Relaxed);
        CloseReason::new(CLUSTER_UNAVAILABLE, why)
    }

    fn connected(&self) -> bool {
        lock(&self.members).connected
    }

    /// Finds the node that runs `room`, placing it here when no live node does.
    pub(crate) async fn place(&self, room: &str) -> Result<Place, CloseReason> {
        let deadline = tokio::time::Instant::now() + self.config.join_timeout;
        loop {
            {
                let mut claims = lock(&self.claims);
                if let Some(claim) = claims.get_mut(room) {
                    if !claim.releasing {
                        claim.used = Instant::now();
                        return Ok(Place::Here);
                    }
                }
            }
            if !self.connected() {
                return Err(self.unavailable("cluster unavailable"));
            }
            let attempt = tokio::time::timeout_at(deadline, self.place_once(room)).await;
            match attempt {
                Ok(Ok(Some(place))) => return Ok(place),
                // Lost a race for the room: look again.
                Ok(Ok(None)) => tokio::time::sleep(Duration::from_millis(10)).await,
                Ok(Err(why)) => {
                    tracing::debug!(room, error = %why, "room registry unavailable");
                    return Err(self.unavailable("cluster unavailable"));
                }
                Err(_) => return Err(self.unavailable("cluster unavailable")),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.unavailable("cluster unavailable"));
            }
        }
    }

    /// One look at the bucket: `None` when another node changed the room's entry meanwhile.
    async fn place_once(&self, room: &str) -> Result<Option<Place>, String> {
        let key = room_key(room);
        if lock(&self.claims).get(room).is_some_and(|c| c.releasing) {
            return Ok(None);
        }
        let entry = self
            .rooms
            .entry(key.as_str())
            .await
            .map_err(|e| e.to_string())?;
        let Some(entry) = entry else {
            return match self.rooms.create(key.as_str(), owner_value(&self.me)).await {
                Ok(revision) => Ok(Some(self.claimed(room, revision))),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
                Err(e) => Err(e.to_string()),
            };
        };
        let owner = parse_owner(&entry.value);
        if let Some(owner) = &owner {
            if *owner == self.me {
                return Ok(Some(self.claimed(room, entry.revision)));
            }
            if self.alive(owner).await {
                return Ok(Some(Place::There(owner.clone())));
            }
            tracing::info!(room, owner = %owner.name, "taking over the room of a node that is gone");
        }
        match self
            .rooms
            .update(key.as_str(), owner_value(&self.me), entry.revision)
            .await
        {
            Ok(revision) => Ok(Some(self.claimed(room, revision))),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    fn claimed(&self, room: &str, revision: u64) -> Place {
        lock(&self.claims).insert(
            room.to_owned(),
            Claim {
                revision,
                used: Instant::now(),
                releasing: false,
            },
        );
        Place::Here
    }

    /// Whether this node runs `room` (a join that another node sent here may be served).
    fn runs(&self, room: &str) -> bool {
        let mut claims = lock(&self.claims);
        match claims.get_mut(room) {
            Some(claim) if !claim.releasing => {
                claim.used = Instant::now();
                true
            }
            _ => false,
        }
    }

    /// Whether `node` (this incarnation of it) is alive: heard from recently, or answering a
    /// ping now.
    async fn alive(&self, node: &NodeId) -> bool {
        {
            let members = lock(&self.members);
            if let Some(member) = members.nodes.get(&node.name) {
                if member.last_seen.elapsed() < self.config.node_timeout {
                    return member.incarnation == node.incarnation;
                }
            }
        }
        let ping = self
            .client
            .request(ping_subject(&self.config.prefix, &node.name), Bytes::new());
        match tokio::time::timeout(self.config.heartbeat * 2, ping).await {
            Ok(Ok(reply)) => {
                let incarnation = <[u8; 8]>::try_from(&reply.payload[..]).map(u64::from_be_bytes);
                if let Ok(incarnation) = incarnation {
                    self.heard(&node.name, incarnation);
                    return incarnation == node.incarnation;
                }
                false
            }
            // No responders, or no answer in time.
            _ => false,
        }
    }

    fn heard(&self, name: &str, incarnation: u64) {
        let mut members = lock(&self.members);
        let now = Instant::now();
        let previous = members.nodes.insert(
            name.to_owned(),
            Member {
                incarnation,
                last_seen: now,
            },
        );
        drop(members);
        if let Some(previous) = previous {
            if previous.incarnation != incarnation {
                // The node restarted: its earlier run is gone.
                self.node_gone(&NodeId {
                    name: name.to_owned(),
                    incarnation: previous.incarnation,
                });
            }
        }
    }

    fn on_heartbeat(&self, heartbeat: Heartbeat) {
        if heartbeat.node.name == self.me.name {
            return;
        }
        if heartbeat.bye {
            lock(&self.members).nodes.remove(&heartbeat.node.name);
            self.node_gone(&heartbeat.node);
        } else {
            self.heard(&heartbeat.node.name, heartbeat.node.incarnation);
        }
    }

    async fn send_heartbeat(&self, bye: bool) {
        let heartbeat = Heartbeat {
            node: self.me.clone(),
            bye,
        };
        self.publish(&self.heartbeat_subject, heartbeat.encode())
            .await;
    }

    /// Forgets the nodes not heard from for the node timeout. Counted only while this node's
    /// own connection has been up for that long: during an outage nobody is heard.
    fn check_members(&self, now: Instant) {
        let timeout = self.config.node_timeout;
        let gone: Vec<NodeId> = {
            let mut members = lock(&self.members);
            if !members.connected || now.saturating_duration_since(members.since) < timeout {
                return;
            }
            let gone = members
                .nodes
                .iter()
                .filter(|(_, m)| now.saturating_duration_since(m.last_seen) >= timeout)
                .map(|(name, m)| NodeId {
                    name: name.clone(),
                    incarnation: m.incarnation,
                })
                .collect::<Vec<_>>();
            for node in &gone {
                members.nodes.remove(&node.name);
            }
            gone
        };
        for node in gone {
            tracing::info!(node = %node.name, "node gone: no heartbeat for {timeout:?}");
            self.node_gone(&node);
        }
    }

    /// Ends every link with `node`: the tasks on them see the link dead.
    fn node_gone(&self, node: &NodeId) {
        let links: Vec<Arc<Link>> = lock(&self.links)
            .values()
            .filter(|l| l.peer == *node)
            .cloned()
            .collect();
        for link in links {
            self.kill(&link);
        }
    }

    fn kill(&self, link: &Arc<Link>) {
        let finished = {
            let mut state = link.lock();
            state.dead = true;
            Link::finished(&state)
        };
        link.wake.notify_one();
        if finished {
            lock(&self.links).remove(&link.id);
        }
    }

    async fn on_event(&self, event: async_nats::Event) {
        match event {
            async_nats::Event::Connected => {
                let now = Instant::now();
                {
                    let mut members = lock(&self.members);
                    if members.connected {
                        // The first connection (the node starts connected).
                        return;
                    }
                    tracing::info!("NATS connection up again");
                    members.connected = true;
                    members.since = now;
                    // Nobody was heard during the outage: start counting again.
                    for member in members.nodes.values_mut() {
                        member.last_seen = now;
                    }
                }
                // What was lost with the connection is sent again.
                let links: Vec<Arc<Link>> = lock(&self.links).values().cloned().collect();
                for link in links {
                    let resent = link.lock().out.resend_from(0, now);
                    self.send_batches(&link, resent, true).await;
                }
                self.check_claims().await;
            }
            async_nats::Event::Disconnected => {
                tracing::warn!("NATS connection lost: reconnecting; joins of rooms on other nodes are refused meanwhile");
                lock(&self.members).connected = false;
            }
            other => tracing::debug!(event = %other, "NATS event"),
        }
    }

    /// After an outage: the rooms this node ran may have been taken over by another node (when
    /// this one was cut off alone). Those claims are dropped, so new joins go to the new node.
    async fn check_claims(&self) {
        let claims: Vec<(String, u64)> = lock(&self.claims)
            .iter()
            .map(|(room, claim)| (room.clone(), claim.revision))
            .collect();
        for (room, revision) in claims {
            let Ok(entry) = self.rooms.entry(room_key(&room)).await else {
                continue;
            };
            let ours = entry.is_some_and(|e| {
                e.revision == revision && parse_owner(&e.value).as_ref() == Some(&self.me)
            });
            if !ours {
                tracing::warn!(room, "room taken over by another node during an outage");
                lock(&self.claims).remove(&room);
            }
        }
    }

    /// Lets go of the rooms this node runs that have been empty for `release_after`.
    async fn release_rooms(&self, now: Instant) {
        let after = self.config.release_after;
        let candidates: Vec<String> = {
            let claims = lock(&self.claims);
            claims
                .iter()
                .filter(|(_, c)| !c.releasing && now.saturating_duration_since(c.used) >= after)
                .map(|(room, _)| room.clone())
                .collect()
        };
        for room in candidates {
            let revision = {
                let mut claims = lock(&self.claims);
                let Some(claim) = claims.get_mut(&room) else {
                    continue;
                };
                if self.relay.room_in_use(&room) {
                    claim.used = now;
                    continue;
                }
                claim.releasing = true;
                claim.revision
            };
            let deleted = self
                .rooms
                .delete_expect_revision(room_key(&room), Some(revision))
                .await;
            let mut claims = lock(&self.claims);
            match deleted {
                Ok(()) => {
                    claims.remove(&room);
                }
                // NATS is unreachable: keep the room and try again later.
                Err(_) if !self.connected() => {
                    if let Some(claim) = claims.get_mut(&room) {
                        claim.releasing = false;
                    }
                }
                // The entry changed: the room is not this node's any more.
                Err(_) => {
                    claims.remove(&room);
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Links

    /// Opens a link to `owner` for a client of this node.
    pub(crate) fn open_link(&self, owner: &NodeId) -> Arc<Link> {
        let number = self.next_link.fetch_add(1, Ordering::Relaxed) + 1;
        let id = LinkId {
            edge: self.me.incarnation,
            number,
        };
        let link = self.new_link(id, owner.clone(), true);
        lock(&self.links).insert(id, link.clone());
        link
    }

    fn new_link(&self, id: LinkId, peer: NodeId, attached: bool) -> Arc<Link> {
        let subject = inbox_subject(&self.config.prefix, &peer.name);
        Arc::new(Link {
            id,
            peer,
            subject,
            state: Mutex::new(LinkState {
                out: Outgoing::new(self.config.window, Instant::now()),
                inc: Incoming::default(),
                delivered: VecDeque::new(),
                attached,
                dead: false,
                ended_out: false,
                ended_in: false,
                in_attention: false,
            }),
            wake: Notify::new(),
        })
    }

    /// Sends what was pushed on `link` and not sent yet, with an acknowledgement of what this
    /// side took.
    pub(crate) async fn flush(&self, link: &Arc<Link>) {
        let batches = {
            let mut state = link.lock();
            let mut batches = Vec::new();
            while let Some(batch) = state.out.take_unsent() {
                batches.push(batch);
            }
            batches
        };
        self.send_batches(link, batches, false).await;
    }

    async fn send_batches(&self, link: &Arc<Link>, batches: Vec<(u64, Vec<Item>)>, again: bool) {
        if batches.is_empty() {
            return;
        }
        let mut messages = Vec::with_capacity(batches.len());
        {
            let mut state = link.lock();
            let ack = state.inc.ack_now();
            for (first_seq, items) in batches {
                let frames = items.iter().filter(|i| matches!(i, Item::Frame(_))).count();
                let counter = if again {
                    &self.counters.retransmitted
                } else {
                    &self.counters.frames_sent
                };
                counter.fetch_add(
                    if again { items.len() } else { frames } as u64,
                    Ordering::Relaxed,
                );
                messages.push(self.message(
                    link,
                    Body::Items {
                        ack,
                        first_seq,
                        items,
                    },
                ));
            }
            self.watch(link, &mut state);
        }
        for message in messages {
            self.publish(&link.subject, message).await;
        }
    }

    fn message(&self, link: &Link, body: Body) -> Bytes {
        Message {
            from: self.me.clone(),
            link: link.id,
            body,
        }
        .encode()
    }

    /// Puts `link` under the timer task's eye while it has something waiting.
    pub(crate) fn watch(&self, link: &Arc<Link>, state: &mut LinkState) {
        if !state.in_attention && (!state.out.all_acked() || state.inc.pending_ack().is_some()) {
            state.in_attention = true;
            lock(&self.attention).push(link.clone());
        }
    }

    /// The task took `taken` items from `link`: acknowledges them now when half the window
    /// waits for it or the other side has ended, or soon otherwise.
    pub(crate) async fn taken(&self, link: &Arc<Link>, taken: usize, ended: bool) {
        if taken == 0 {
            return;
        }
        let ack = {
            let mut state = link.lock();
            state.inc.take(taken);
            if ended || state.inc.unacked_taken() >= (self.config.window as u64).div_ceil(2) {
                Some(state.inc.ack_now())
            } else {
                self.watch(link, &mut state);
                None
            }
        };
        if let Some(ack) = ack {
            let message = self.message(link, Body::Ack(ack));
            self.publish(&link.subject, message).await;
        }
    }

    /// The task is done with `link`: from now on items that arrive are dropped, and the link
    /// is forgotten once its last items are acknowledged.
    pub(crate) fn detach(&self, link: &Arc<Link>) {
        let finished = {
            let mut state = link.lock();
            state.attached = false;
            let dropped = state.delivered.len();
            state.delivered.clear();
            state.inc.take(dropped);
            self.watch(link, &mut state);
            Link::finished(&state)
        };
        if finished {
            lock(&self.links).remove(&link.id);
        }
    }

    /// The timer task's round over the links that wait for something: delayed
    /// acknowledgements, items pushed by no task, retransmissions.
    async fn tend_links(&self, now: Instant) {
        let watched = std::mem::take(&mut *lock(&self.attention));
        let connected = self.connected();
        let mut publish = Vec::new();
        for link in watched {
            let (finished, still) = {
                let mut state = link.lock();
                state.in_attention = false;
                if state.dead {
                    (Link::finished(&state), false)
                } else {
                    let mut batches = Vec::new();
                    if !state.attached {
                        while let Some(batch) = state.out.take_unsent() {
                            batches.push((batch, false));
                        }
                    }
                    if connected && state.out.overdue(now, self.config.retransmit) {
                        for batch in state.out.resend_from(0, now) {
                            batches.push((batch, true));
                        }
                    }
                    if batches.is_empty() {
                        if let Some(ack) = state.inc.pending_ack() {
                            state.inc.ack_now();
                            publish.push((link.clone(), Body::Ack(ack)));
                        }
                    } else {
                        let ack = state.inc.ack_now();
                        for ((first_seq, items), again) in batches {
                            let counter = if again {
                                &self.counters.retransmitted
                            } else {
                                &self.counters.frames_sent
                            };
                            counter.fetch_add(items.len() as u64, Ordering::Relaxed);
                            publish.push((
                                link.clone(),
                                Body::Items {
                                    ack,
                                    first_seq,
                                    items,
                                },
                            ));
                        }
                    }
                    (
                        Link::finished(&state),
                        !state.out.all_acked() || state.inc.pending_ack().is_some(),
                    )
                }
            };
            if finished {
                lock(&self.links).remove(&link.id);
            } else if still {
                let mut state = link.lock();
                self.watch(&link, &mut state);
            }
        }
        for (link, body) in publish {
            let message = self.message(&link, body);
            self.publish(&link.subject, message).await;
        }
    }

    pub(crate) async fn publish(&self, subject: &Subject, payload: Bytes) {
        if self.stopped.load(Ordering::Relaxed) {
            return;
        }
        self.counters.published.fetch_add(1, Ordering::Relaxed);
        // A failure is a loss like any other: retransmission covers it.
        if let Err(e) = self.client.publish(subject.clone(), payload).await {
            tracing::debug!(error = %e, "publish failed");
        }
    }

    /// A message from another node.
    async fn on_message(self: &Arc<Self>, payload: Bytes) {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        let message = match Message::decode(payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "dropped a malformed cluster message");
                return;
            }
        };
        let link = lock(&self.links).get(&message.link).cloned();
        let Some(link) = link else {
            return self.on_unknown_link(message).await;
        };
        if link.peer != message.from {
            // From an earlier run of the other node, or a confused one.
            return;
        }
        let now = Instant::now();
        let mut replies: Vec<Body> = Vec::new();
        let mut resend = Vec::new();
        let finished = {
            let mut state = link.lock();
            let mut wake = false;
            match message.body {
                Body::Items {
                    ack,
                    first_seq,
                    items,
                } => {
                    wake |= state.out.ack(ack, now);
                    let got = state.inc.receive(first_seq, items);
                    if let Some(from) = got.nack {
                        replies.push(Body::Nack(from));
                    }
                    if got.reack {
                        replies.push(Body::Ack(state.inc.ack_now()));
                    }
                    if got
                        .fresh
                        .iter()
                        .any(|i| matches!(i, Item::Close(_) | Item::Leave(_)))
                    {
                        state.ended_in = true;
                    }
                    if state.attached {
                        wake |= !got.fresh.is_empty();
                        state.delivered.extend(got.fresh);
                    } else if !got.fresh.is_empty() {
                        // Nobody reads them any more: taken and acknowledged at once.
                        state.inc.take(got.fresh.len());
                        replies.push(Body::Ack(state.inc.ack_now()));
                    }
                }
                Body::Ack(ack) => wake |= state.out.ack(ack, now),
                Body::Nack(from) => resend = state.out.resend_from(from, now),
                Body::Reset => {
                    state.dead = true;
                    wake = true;
                }
            }
            if wake {
                link.wake.notify_one();
            }
            self.watch(&link, &mut state);
            Link::finished(&state)
        };
        if finished {
            lock(&self.links).remove(&link.id);
        }
        self.send_batches(&link, resend, true).await;
        for body in replies {
            let message = self.message(&link, body);
            self.publish(&link.subject, message).await;
        }
    }

    /// A message for a link this node does not know: a new client of another node joining a
    /// room run here, or a leftover of an ended link (answered with a reset, so that the other
    /// side stops waiting).
    async fn on_unknown_link(self: &Arc<Self>, message: Message) {
        let Body::Items {
            first_seq, items, ..
        } = message.body
        else {
            return;
        };
        let reset = || Message {
            from: self.me.clone(),
            link: message.link,
            body: Body::Reset,
        };
        let subject = inbox_subject(&self.config.prefix, &message.from.name);
        let is_join = first_seq == 1 && matches!(items.first(), Some(Item::Join(_)));
        if message.link.edge == self.me.incarnation || !is_join {
            self.publish(&subject, reset().encode()).await;
            return;
        }
        let mut items = VecDeque::from(items);
        let Some(Item::Join(request)) = items.pop_front() else {
            return;
        };
        let link = self.new_link(message.link, message.from, false);
        {
            let mut state = link.lock();
            let got = state.inc.receive(1, vec![Item::Join(request.clone())]);
            debug_assert_eq!(got.fresh.len(), 1);
            state.inc.take(1);
            let rest = state.inc.receive(2, items.into());
            state.delivered.extend(rest.fresh);
            self.watch(&link, &mut state);
        }
        lock(&self.links).insert(link.id, link.clone());
        if self.runs(&request.room) {
            link.lock().attached = true;
            let transport = RemoteTransport::new(self.clone(), link.clone(), PeerInfo::new("nats"));
            let relay = self.relay.clone();
            tokio::spawn(async move {
                relay.serve(transport, *request).await;
            });
        } else {
            {
                let mut state = link.lock();
                state.out.push(
                    Item::Close(CloseReason::new(MOVED, "room not here")),
                    Instant::now(),
                );
                state.ended_out = true;
            }
            self.flush(&link).await;
            self.detach(&link);
        }
    }
}
