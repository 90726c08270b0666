//! Cluster backbone for the signaling relay: relay nodes that share rooms through
//! [NATS](https://nats.io), with the guarantees of a single relay.
//!
//! A [`ClusterNode`] sits in front of a node's [`RelayHandle`](signaling::relay::RelayHandle):
//! serve each client connection with [`ClusterNode::serve`] instead of
//! [`RelayHandle::serve`](signaling::relay::RelayHandle::serve), and the peers of one room may
//! connect to any node.
//!
//! ```no_run
//! # use signaling::relay::{DriverConfig, RelayConfig, RelayHandle, JoinRequest};
//! # use signaling::transport::Transport;
//! # use signaling_nats::{ClusterConfig, ClusterNode};
//! # async fn demo<T: Transport>(client: T, request: JoinRequest) -> Result<(), signaling_nats::ClusterError> {
//! let relay = RelayHandle::new(RelayConfig::default(), DriverConfig::default());
//! let node = ClusterNode::start(ClusterConfig::new("nats://127.0.0.1:4222", "node-a"), relay).await?;
//! // For each accepted client connection (in its own task):
//! node.serve(client, request).await;
//! # Ok(()) }
//! ```
//!
//! # Design: one node runs each room
//!
//! Each room is run by one node, its *owner*: the node where the room's first peer joined.
//! The owner runs the room in its ordinary sans-IO [`Relay`](signaling::relay::Relay), as a
//! single relay would. A client connected to another node (its *edge*) is proxied: the edge
//! opens a *link* to the owner over NATS, and on the owner the link is one more
//! [`Transport`](signaling::transport::Transport) served by the relay driver. Which node owns
//! which room is kept in a JetStream key-value bucket (`<prefix>-rooms`), written with
//! compare-and-set, so two nodes never both take a room.
//!
//! This was chosen over sequencing each room's stream on every node and merging them because
//! every guarantee of the relay then holds by construction, from one implementation: room
//! capacity, isolation and `to`/`from` addressing are decided in one place, the mailbox and
//! the ordering guard live where the room lives, and resume works from any node because the
//! token is checked by the owner. The cost is one extra hop for a peer whose room runs
//! elsewhere; in a room of two, at most one of the two peers pays it.
//!
//! # Guarantees, and how each is kept
//!
//! - **Per-sender order, exactly once.** NATS core delivers one publisher's messages in order
//!   but at most once. Each link direction is a sequenced stream with a window, cumulative
//!   acknowledgements and go-back-N retransmission (see [`link`]): the receiver accepts only
//!   the next number, so nothing is delivered twice or out of order, and a gap is asked for
//!   again. The relay on the owner then keeps order and uniqueness as on one node.
//! - **Backpressure.** At most [`ClusterConfig::window`] frames of a link wait for their
//!   acknowledgement, and the receiver acknowledges only what its task took: a slow client on
//!   an edge makes the owner's relay hold its queue, exactly as a slow socket would, and a
//!   client that floods a busy owner stops being read by its edge.
//! - **Capacity, isolation, addressing, mailbox, ordering guard**: the owner's relay. Each
//!   node's relay numbers its peers from its own random base, so that an id learned in a room's
//!   run on a node that died names no one in the room's next run on another node.
//! - **Resume on another node.** A client that lost its connection joins any node with its
//!   token; that node finds the owner and proxies the resume there, and the owner hands the
//!   peer's place and its queued frames to the new link.
//! - **A node that dies.** Nodes publish heartbeats every [`ClusterConfig::heartbeat`]; one
//!   not heard from for [`ClusterConfig::node_timeout`] is gone (a node that shuts down says
//!   so at once). On each owner, the gone node's clients become lost connections: their
//!   peers keep their place for the resume grace (they may resume on another node), then the
//!   others hear `relay/left`. So a dead edge's peers have left no later than the node
//!   timeout plus the resume grace (5 s + 30 s by default). On each edge, clients whose room
//!   ran on the gone node hear `relay/left` for every peer they knew and join the room again
//!   as new peers; the first to do so takes the room over (compare-and-set on the bucket
//!   entry). The room's state on the dead node (its mailbox, peers waiting to resume, frames
//!   in flight to it) is lost with it, and a peer of the dead node cannot resume (its token
//!   died with the room): it joins again. No room stays wedged.
//! - **NATS unreachable.** The node keeps serving the rooms it owns, to its own clients, and
//!   accepts new clients for them. A join for any other room is refused with
//!   [`CLUSTER_UNAVAILABLE`] (1013, try again later). Frames on links wait in the links'
//!   windows (the client is not read beyond that), and when NATS is back every link sends
//!   again what was not acknowledged: no accepted frame is lost. Node timeouts only count
//!   while a node's own connection is up, so an outage of NATS itself declares nobody gone.
//!   A node cut off alone for longer than the node timeout loses its rooms to the nodes that
//!   take them over; when it is back, it lets go of those claims.
//!
//! # NATS subjects
//!
//! - `<prefix>.node.<name>`: each node's inbox; every link message to the node.
//! - `<prefix>.heartbeat`: every node's heartbeats, heard by all.
//! - `<prefix>.ping.<name>`: asks a node whether it is alive (before its rooms are taken).
//! - JetStream bucket `<prefix>-rooms`: room (hex) → owner (`<incarnation> <name>`).
//!
//! The messages' binary form is documented in [`proto`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod link;
mod node;
pub mod proto;
mod remote;
#[cfg(feature = "testing")]
pub mod testing;

pub use node::{ClusterConfig, ClusterNode, ClusterStats, CLUSTER_UNAVAILABLE};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// A setting is invalid: which, and why.
    #[error("invalid cluster setting `{0}`: {1}")]
    Config(&'static str, String),
    /// The NATS server could not be reached.
    #[error("cannot connect to NATS at {0}: {1}")]
    Connect(String, String),
    /// The room bucket could not be opened or created (is JetStream enabled on the server?).
    #[error("cannot open the JetStream key-value bucket {0}: {1}")]
    Bucket(String, String),
    /// The operating system's random source failed.
    #[error("no randomness for the node's incarnation: {0}")]
    Random(String),
}
