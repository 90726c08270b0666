//! The messages nodes exchange over NATS, and their binary form.
//!
//! Every message a node sends to another goes to the receiver's inbox subject
//! (`<prefix>.node.<name>`) and concerns one [link](crate::link): one client connection
//! proxied from the node that holds its socket (the *edge*) to the node that runs its room
//! (the *owner*). A message carries sequenced [`Item`]s, an acknowledgement, a request for a
//! retransmission, or a reset.
//!
//! The form is binary, big-endian, so that a forwarded frame is carried as it is, without
//! escaping, and read back without a copy:
//!
//! ```text
//! message   = version:u8 kind:u8 from-incarnation:u64 from-name:str8
//!             link-edge:u64 link-number:u64 body
//! kind 1    Items: ack:u64 first-seq:u64 count:u16 item*count
//! kind 2    Ack:   ack:u64
//! kind 3    Nack:  expected:u64
//! kind 4    Reset
//! item      = tag:u8 len:u32 bytes[len]
//! tag 1     Frame: the frame's UTF-8 text
//! tag 2     Join:  JSON {"room", "resume"?, "token", "user"?, "unix"}
//! tag 3     Close: code:u16 then the reason's UTF-8 text
//! tag 4     Leave: one byte, 0 (clean) or 1 (lost)
//! str8      = len:u8 bytes[len] (UTF-8)
//! ```
//!
//! Heartbeats go to `<prefix>.heartbeat`: `version:u8 incarnation:u64 bye:u8 name:str8`.
use bytes::{Buf, BufMut, Bytes, BytesMut};
use signaling::relay::{Disconnect, JoinRequest};
use signaling::transport::{CloseCode, CloseReason, Frame};

/// The version byte every message starts with.
const VERSION: u8 = 1;

/// The longest node name, in bytes.
pub const MAX_NODE_NAME_LEN: usize = 64;

/// A node, as one run of its process: a restarted node has the same name and a new
/// incarnation, and the links of its earlier run are gone.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeId {
    /// The name given in the configuration (its inbox subject's last token).
    pub name: String,
    /// Drawn at random when the node starts.
    pub incarnation: u64,
}

/// A link: the edge node's incarnation and the link's number there. Unique in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId {
    /// The incarnation of the node that holds the client's socket.
    pub edge: u64,
    /// Numbered by the edge node.
    pub number: u64,
}

/// What a link carries, in order and exactly once, in each direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A client's frame (edge to owner), or a frame for the client (owner to edge).
    Frame(Frame),
    /// The first item from the edge: the client's join request (boxed: it is sent once, and
    /// every queued item is as large as the largest kind).
    Join(Box<JoinRequest>),
    /// The owner closes the client's connection (the last item from the owner).
    Close(CloseReason),
    /// The client's connection ended (the last item from the edge).
    Leave(Disconnect),
}

/// One message between two nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The sender.
    pub from: NodeId,
    /// The link it concerns.
    pub link: LinkId,
    /// What it says.
    pub body: Body,
}

/// What a [`Message`] says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Items `first_seq`, `first_seq + 1`, ...; and every item up to `ack` of the other
    /// direction was received.
    Items {
        /// The sender has received the other direction's items up to this one.
        ack: u64,
        /// The first item's sequence number (from 1).
        first_seq: u64,
        /// The items.
        items: Vec<Item>,
    },
    /// Every item up to this one was received.
    Ack(u64),
    /// Items from this one on are missing: send them again.
    Nack(u64),
    /// The receiver does not know the link (its node restarted, or the link ended).
    Reset,
}

/// A heartbeat: a node says it is alive, or (`bye`) that it is leaving.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// The node.
    pub node: NodeId,
    /// The node is shutting down: forget it now.
    pub bye: bool,
}

/// A message that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed cluster message: {0}")]
pub struct Malformed(&'static str);

/// The join request as carried in a [`Item::Join`].
#[derive(serde::Serialize, serde::Deserialize)]
struct JoinFields {
    room: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resume: Option<String>,
    token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(default)]
    unix: u64,
}

impl Message {
    /// The binary form.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(64 + self.body_len());
        out.put_u8(VERSION);
        out.put_u8(match self.body {
            Body::Items { .. } => 1,
            Body::Ack(_) => 2,
            Body::Nack(_) => 3,
            Body::Reset => 4,
        });
        put_node(&mut out, &self.from);
        out.put_u64(self.link.edge);
        out.put_u64(self.link.number);
        match &self.body {
            Body::Items {
                ack,
                first_seq,
                items,
            } => {
                out.put_u64(*ack);
                out.put_u64(*first_seq);
                // Callers send at most `u16::MAX` items at once (see `MAX_BATCH`).
                out.put_u16(u16::try_from(items.len()).unwrap_or(u16::MAX));
                for item in items.iter().take(usize::from(u16::MAX)) {
                    put_item(&mut out, item);
                }
            }
            Body::Ack(n) | Body::Nack(n) => out.put_u64(*n),
            Body::Reset => {}
        }
        out.freeze()
    }

    fn body_len(&self) -> usize {
        match &self.body {
            Body::Items { items, .. } => items.iter().map(item_len).sum::<usize>() + 18,
            _ => 8,
        }
    }

    /// Reads a message. Frames are slices of `bytes` (no copy).
    pub fn decode(mut bytes: Bytes) -> Result<Message, Malformed> {
        if get_u8(&mut bytes)? != VERSION {
            return Err(Malformed("unknown version"));
        }
        let kind = get_u8(&mut bytes)?;
        let from = get_node(&mut bytes)?;
        let link = LinkId {
            edge: get_u64(&mut bytes)?,
            number: get_u64(&mut bytes)?,
        };
        let body = match kind {
            1 => {
                let ack = get_u64(&mut bytes)?;
                let first_seq = get_u64(&mut bytes)?;
                if first_seq == 0 {
                    return Err(Malformed("sequence numbers start at 1"));
                }
                let count = get_u16(&mut bytes)?;
                let mut items = Vec::with_capacity(usize::from(count).min(bytes.len() / 5));
                for _ in 0..count {
                    items.push(get_item(&mut bytes)?);
                }
                Body::Items {
                    ack,
                    first_seq,
                    items,
                }
            }
            2 => Body::Ack(get_u64(&mut bytes)?),
            3 => Body::Nack(get_u64(&mut bytes)?),
            4 => Body::Reset,
            _ => return Err(Malformed("unknown message kind")),
        };
        if !bytes.is_empty() {
            return Err(Malformed("trailing bytes"));
        }
        Ok(Message { from, link, body })
    }
}

impl Heartbeat {
    /// The binary form.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(12 + self.node.name.len());
        out.put_u8(VERSION);
        put_node(&mut out, &self.node);
        out.put_u8(u8::from(self.bye));
        out.freeze()
    }

    /// Reads a heartbeat.
    pub fn decode(mut bytes: Bytes) -> Result<Heartbeat, Malformed> {
        if get_u8(&mut bytes)? != VERSION {
            return Err(Malformed("unknown version"));
        }
        let node = get_node(&mut bytes)?;
        let bye = match get_u8(&mut bytes)? {
            0 => false,
            1 => true,
            _ => return Err(Malformed("bad bye flag")),
        };
        if !bytes.is_empty() {
            return Err(Malformed("trailing bytes"));
        }
        Ok(Heartbeat { node, bye })
    }
}

fn put_node(out: &mut BytesMut, node: &NodeId) {
    out.put_u64(node.incarnation);
    // Names are checked to be at most `MAX_NODE_NAME_LEN` bytes when a node starts.
    let name = &node.name.as_bytes()[..node.name.len().min(MAX_NODE_NAME_LEN)];
    out.put_u8(name.len() as u8);
    out.put_slice(name);
}

fn get_node(bytes: &mut Bytes) -> Result<NodeId, Malformed> {
    let incarnation = get_u64(bytes)?;
    let len = usize::from(get_u8(bytes)?);
    if len > MAX_NODE_NAME_LEN {
        return Err(Malformed("node name too long"));
    }
    let name = take(bytes, len)?;
    let name = String::from_utf8(name.to_vec()).map_err(|_| Malformed("node name not UTF-8"))?;
    Ok(NodeId { name, incarnation })
}

fn item_len(item: &Item) -> usize {
    5 + match item {
        Item::Frame(frame) => frame.len(),
        Item::Join(request) => 64 + request.room.len(),
        Item::Close(reason) => 2 + reason.reason.len(),
        Item::Leave(_) => 1,
    }
}

fn put_item(out: &mut BytesMut, item: &Item) {
    let (tag, body): (u8, Bytes) = match item {
        Item::Frame(frame) => (1, frame.clone().into_bytes()),
        Item::Join(request) => {
            let fields = JoinFields {
                room: request.room.clone(),
                resume: request.resume.clone(),
                token: request.fresh_token.clone(),
                user: request.user.clone(),
                unix: request.unix_time,
            };
            // Serializing a struct of strings and a number to JSON cannot fail.
            (2, serde_json::to_vec(&fields).unwrap_or_default().into())
        }
        Item::Close(reason) => {
            let mut body = BytesMut::with_capacity(2 + reason.reason.len());
            body.put_u16(reason.code.0);
            body.put_slice(reason.reason.as_bytes());
            (3, body.freeze())
        }
        Item::Leave(how) => (4, Bytes::from_static(leave_byte(*how))),
    };
    out.put_u8(tag);
    // Frames are bounded by the relay's `max_frame_len`, far below 4 GiB.
    out.put_u32(u32::try_from(body.len()).unwrap_or(u32::MAX));
    out.put_slice(&body);
}

fn leave_byte(how: Disconnect) -> &'static [u8] {
    match how {
        Disconnect::Clean => &[0],
        Disconnect::Lost => &[1],
    }
}

fn get_item(bytes: &mut Bytes) -> Result<Item, Malformed> {
    let tag = get_u8(bytes)?;
    let len = usize::try_from(get_u32(bytes)?).map_err(|_| Malformed("item too long"))?;
    let mut body = take(bytes, len)?;
    Ok(match tag {
        1 => Item::Frame(Frame::from_utf8(body).map_err(|_| Malformed("frame not UTF-8"))?),
        2 => {
            let fields: JoinFields =
                serde_json::from_slice(&body).map_err(|_| Malformed("bad join request"))?;
            let mut request =
                JoinRequest::new(fields.room, fields.token).with_unix_time(fields.unix);
            request.resume = fields.resume;
            request.user = fields.user;
            Item::Join(Box::new(request))
        }
        3 => {
            let code = CloseCode(get_u16(&mut body)?);
            let reason =
                String::from_utf8(body.to_vec()).map_err(|_| Malformed("reason not UTF-8"))?;
            Item::Close(CloseReason::new(code, reason))
        }
        4 => match &body[..] {
            [0] => Item::Leave(Disconnect::Clean),
            [1] => Item::Leave(Disconnect::Lost),
            _ => return Err(Malformed("bad leave")),
        },
        _ => return Err(Malformed("unknown item tag")),
    })
}

fn take(bytes: &mut Bytes, len: usize) -> Result<Bytes, Malformed> {
    if bytes.len() < len {
        return Err(Malformed("truncated"));
    }
    Ok(bytes.split_to(len))
}

fn get_u8(bytes: &mut Bytes) -> Result<u8, Malformed> {
    (bytes.remaining() >= 1)
        .then(|| bytes.get_u8())
        .ok_or(Malformed("truncated"))
}

fn get_u16(bytes: &mut Bytes) -> Result<u16, Malformed> {
    (bytes.remaining() >= 2)
        .then(|| bytes.get_u16())
        .ok_or(Malformed("truncated"))
}

fn get_u32(bytes: &mut Bytes) -> Result<u32, Malformed> {
    (bytes.remaining() >= 4)
        .then(|| bytes.get_u32())
        .ok_or(Malformed("truncated"))
}

fn get_u64(bytes: &mut Bytes) -> Result<u64, Malformed> {
    (bytes.remaining() >= 8)
        .then(|| bytes.get_u64())
        .ok_or(Malformed("truncated"))
}

/// The fuzz target's body: reads `data` as a message and as a heartbeat; whatever reads must
/// write back to the same bytes' meaning (encoding what was decoded, and decoding that, gives
/// the same value).
#[cfg(feature = "fuzzing")]
pub fn fuzz(data: &[u8]) {
    if let Ok(message) = Message::decode(Bytes::copy_from_slice(data)) {
        let again = Message::decode(message.encode());
        assert_eq!(again.as_ref(), Ok(&message), "a decoded message re-encodes");
    }
    if let Ok(heartbeat) = Heartbeat::decode(Bytes::copy_from_slice(data)) {
        let again = Heartbeat::decode(heartbeat.encode());
        assert_eq!(
            again.as_ref(),
            Ok(&heartbeat),
            "a decoded heartbeat re-encodes"
        );
    }
}
