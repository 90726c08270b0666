//! The cluster messages' binary form: generated messages survive encoding and decoding, and the
//! fuzz corpus is replayed.
use std::path::Path;

use bytes::Bytes;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use signaling::relay::{Disconnect, JoinRequest};
use signaling::transport::{CloseCode, CloseReason, Frame};
use signaling_nats::proto::{Body, Heartbeat, Item, LinkId, Message, NodeId};

fn node() -> impl Strategy<Value = NodeId> {
    ("[a-zA-Z0-9_-]{1,64}", any::<u64>())
        .prop_map(|(name, incarnation)| NodeId { name, incarnation })
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        ".{0,200}".prop_map(|text: String| Item::Frame(Frame::from(text))),
        (
            ".{1,64}",
            proptest::option::of("[0-9a-f]{32}"),
            "[0-9a-f]{32}",
            proptest::option::of(".{0,20}"),
            any::<u64>()
        )
            .prop_map(|(room, resume, token, user, unix)| {
                let mut request = JoinRequest::new(room, token).with_unix_time(unix);
                request.resume = resume;
                request.user = user;
                Item::Join(Box::new(request))
            }),
        (any::<u16>(), ".{0,40}")
            .prop_map(|(code, why)| Item::Close(CloseReason::new(CloseCode(code), why))),
        prop_oneof![Just(Disconnect::Clean), Just(Disconnect::Lost)].prop_map(Item::Leave),
    ]
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (
            any::<u64>(),
            1..u64::MAX,
            proptest::collection::vec(item(), 0..8)
        )
            .prop_map(|(ack, first_seq, items)| Body::Items {
                ack,
                first_seq,
                items
            }),
        any::<u64>().prop_map(Body::Ack),
        any::<u64>().prop_map(Body::Nack),
        Just(Body::Reset),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (node(), any::<u64>(), any::<u64>(), body()).prop_map(|(from, edge, number, body)| Message {
        from,
        link: LinkId { edge, number },
        body,
    })
}

proptest! {
    #[test]
    fn messages_survive_encoding(message in message()) {
        prop_assert_eq!(Message::decode(message.encode()), Ok(message));
    }

    #[test]
    fn heartbeats_survive_encoding(node in node(), bye in any::<bool>()) {
        let heartbeat = Heartbeat { node, bye };
        prop_assert_eq!(Heartbeat::decode(heartbeat.encode()), Ok(heartbeat));
    }

    /// Cut anywhere, a message is refused, never misread.
    #[test]
    fn truncated_messages_are_refused(message in message(), cut in any::<prop::sample::Index>()) {
        let bytes = message.encode();
        let cut = cut.index(bytes.len());
        prop_assert!(Message::decode(bytes.slice(..cut)).is_err());
    }
}

#[test]
fn a_frame_is_read_without_a_copy() {
    let message = Message {
        from: NodeId {
            name: "n1".into(),
            incarnation: 7,
        },
        link: LinkId { edge: 7, number: 1 },
        body: Body::Items {
            ack: 0,
            first_seq: 1,
            items: vec![Item::Frame(Frame::from("{\"type\":\"x\"}"))],
        },
    };
    let bytes = message.encode();
    let Ok(Message {
        body: Body::Items { items, .. },
        ..
    }) = Message::decode(bytes.clone())
    else {
        panic!("decodes");
    };
    let Some(Item::Frame(frame)) = items.first() else {
        panic!("a frame");
    };
    let inside = bytes.as_ptr_range();
    assert!(
        inside.contains(&frame.as_ptr()),
        "the frame points into the message"
    );
}

/// Replays the checked-in corpus of the `cluster_message` fuzz target.
#[test]
fn replay_fuzz_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut total = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join("cluster_message")) else {
            continue;
        };
        for entry in entries {
            let data = std::fs::read(entry.expect("corpus entry").path()).expect("corpus file");
            signaling_nats::proto::fuzz(&data);
            total += 1;
        }
    }
    assert!(total >= 20, "only {total} corpus files");
}

/// Writes a seed corpus: `SIGNALING_WRITE_CLUSTER_CORPUS=<dir> cargo test -p signaling-nats
/// --all-features --test proto write_corpus -- --ignored`.
#[test]
#[ignore = "writes files; run by hand"]
fn write_corpus() {
    let Ok(dir) = std::env::var("SIGNALING_WRITE_CLUSTER_CORPUS") else {
        return;
    };
    std::fs::create_dir_all(&dir).expect("corpus directory");
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = message();
    for i in 0..40 {
        let value = strategy.new_tree(&mut runner).expect("a message").current();
        let bytes: Bytes = value.encode();
        std::fs::write(Path::new(&dir).join(format!("seed-{i:03}")), &bytes).expect("file");
    }
    let heartbeat = Heartbeat {
        node: NodeId {
            name: "n1".into(),
            incarnation: 1,
        },
        bye: false,
    };
    std::fs::write(Path::new(&dir).join("heartbeat"), heartbeat.encode()).expect("file");
}
