//! A link's reliability, sans-IO: sequence numbers, a send window, cumulative
//! acknowledgements and go-back-N retransmission.
//!
//! NATS core delivers a publisher's messages in order but at most once: a message can be lost
//! when a connection drops, or when a subscriber falls behind. Each direction of a link is
//! therefore a sequenced stream:
//!
//! - the sender numbers its items from 1 and keeps each until it is acknowledged; at most
//!   [`window`](Outgoing::new) frames may be unacknowledged, so the sender waits (and stops
//!   reading its client) when the receiver does not keep up;
//! - the receiver accepts only the next number it expects, so nothing is delivered twice or
//!   out of order; an item after a gap is dropped and the gap is reported (a *nack*), and the
//!   sender sends everything from the gap again;
//! - the receiver acknowledges the items its task has *taken*, not those that merely arrived:
//!   the window bounds what waits at the receiver too;
//! - when no acknowledgement comes for the retransmission time (the nack itself, or the last
//!   items, were lost), the sender sends every unacknowledged item again.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::proto::Item;

/// The most items one message carries.
pub const MAX_BATCH: usize = 256;

/// Items a queue keeps room for once it is empty again.
const IDLE_CAPACITY: usize = 8;

/// The sending half of one direction.
#[derive(Debug)]
pub struct Outgoing {
    /// The sequence number of `unacked[0]` (of the next item, when nothing waits).
    base: u64,
    /// Items `base` .. `base + unacked.len() - 1`, oldest first.
    unacked: VecDeque<Item>,
    /// How many of the newest unacked items were never sent.
    unsent: usize,
    window: usize,
    /// When the oldest unacknowledged item was last sent, or an acknowledgement last moved.
    progress: Instant,
}

impl Outgoing {
    /// A stream that lets `window` frames wait for their acknowledgement.
    pub fn new(window: usize, now: Instant) -> Self {
        Self {
            base: 1,
            unacked: VecDeque::new(),
            unsent: 0,
            window: window.max(1),
            progress: now,
        }
    }

    /// Whether another frame may be pushed.
    pub fn has_room(&self) -> bool {
        self.unacked.len() < self.window
    }

    /// How many more frames may be pushed now.
    pub fn room(&self) -> usize {
        self.window.saturating_sub(self.unacked.len())
    }

    /// Whether every item pushed was acknowledged.
    pub fn all_acked(&self) -> bool {
        self.unacked.is_empty()
    }

    /// Whether items were pushed and not sent yet.
    pub fn has_unsent(&self) -> bool {
        self.unsent > 0
    }

    /// Queues an item to send. Frames need [`has_room`](Self::has_room); the last item of a
    /// direction (`Close`, `Leave`) may go beyond the window by one.
    pub fn push(&mut self, item: Item, now: Instant) {
        if self.unacked.is_empty() {
            self.progress = now;
        }
        self.unacked.push_back(item);
        self.unsent += 1;
    }

    /// The items never sent, as (first sequence number, items), at most [`MAX_BATCH`] at a
    /// time; they count as sent from now on.
    pub fn take_unsent(&mut self) -> Option<(u64, Vec<Item>)> {
        if self.unsent == 0 {
            return None;
        }
        let start = self.unacked.len() - self.unsent;
        let count = self.unsent.min(MAX_BATCH);
        self.unsent -= count;
        let first = self.base + start as u64;
        let items = self.unacked.range(start..start + count).cloned().collect();
        Some((first, items))
    }

    /// The receiver has every item up to `ack`. Returns whether that freed anything.
    pub fn ack(&mut self, ack: u64, now: Instant) -> bool {
        if ack < self.base {
            return false;
        }
        // Never beyond what was pushed (a confused or hostile peer).
        let done = (ack - self.base + 1).min(self.unacked.len() as u64) as usize;
        self.unacked.drain(..done);
        if self.unacked.is_empty() && self.unacked.capacity() > IDLE_CAPACITY {
            // An idle link holds no buffer sized for its busiest moment.
            self.unacked = VecDeque::new();
        }
        self.base += done as u64;
        self.unsent = self.unsent.min(self.unacked.len());
        self.progress = now;
        done > 0
    }

    /// Everything sent from `from` on, for a retransmission, in batches of at most
    /// [`MAX_BATCH`]. Items never sent stay for [`take_unsent`](Self::take_unsent).
    pub fn resend_from(&mut self, from: u64, now: Instant) -> Vec<(u64, Vec<Item>)> {
        let from = from.max(self.base);
        let sent = self.unacked.len() - self.unsent;
        let start = usize::try_from(from - self.base)
            .unwrap_or(usize::MAX)
            .min(sent);
        self.progress = now;
        let items: Vec<Item> = self.unacked.range(start..sent).cloned().collect();
        items
            .chunks(MAX_BATCH)
            .enumerate()
            .map(|(i, chunk)| (from + (i * MAX_BATCH) as u64, chunk.to_vec()))
            .collect()
    }

    /// Whether sent items have waited `rto` for an acknowledgement.
    pub fn overdue(&self, now: Instant, rto: Duration) -> bool {
        self.unacked.len() > self.unsent && now.saturating_duration_since(self.progress) >= rto
    }
}

/// The receiving half of one direction.
#[derive(Debug, Default)]
pub struct Incoming {
    /// The highest number accepted.
    received: u64,
    /// The highest number the task has taken.
    taken: u64,
    /// The highest number acknowledged to the sender.
    acked: u64,
    /// A nack was sent for this gap, and not answered yet.
    nacked: Option<u64>,
}

/// What [`Incoming::receive`] made of a message's items.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// The items to deliver, in order.
    pub fresh: Vec<Item>,
    /// Ask for everything from this number on again.
    pub nack: Option<u64>,
    /// Everything was old: acknowledge again (an earlier acknowledgement may have been lost).
    pub reack: bool,
}

impl Incoming {
    /// A message brought items `first_seq`, `first_seq + 1`, ...: keeps those that come next,
    /// in order, and reports a gap or a retransmission of what was already here.
    pub fn receive(&mut self, first_seq: u64, items: Vec<Item>) -> Received {
        let mut out = Received::default();
        let count = items.len() as u64;
        if first_seq > self.received + 1 {
            // A gap: what follows it is dropped, and asked for again once.
            if self.nacked != Some(self.received + 1) {
                self.nacked = Some(self.received + 1);
                out.nack = Some(self.received + 1);
            }
            return out;
        }
        let skip = (self.received + 1 - first_seq) as usize;
        if skip as u64 >= count {
            out.reack = count > 0;
            return out;
        }
        out.fresh = items.into_iter().skip(skip).collect();
        self.received = first_seq + count - 1;
        self.nacked = None;
        out
    }

    /// The task took `n` items.
    pub fn take(&mut self, n: usize) {
        self.taken = (self.taken + n as u64).min(self.received);
    }

    /// What to acknowledge, when something taken was not acknowledged yet.
    pub fn pending_ack(&self) -> Option<u64> {
        (self.taken > self.acked).then_some(self.taken)
    }

    /// How many items were taken and not acknowledged yet.
    pub fn unacked_taken(&self) -> u64 {
        self.taken - self.acked
    }

    /// The acknowledgement for everything taken, to send now (a standalone ack, or carried by
    /// items going the other way).
    pub fn ack_now(&mut self) -> u64 {
        self.acked = self.taken;
        self.taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use signaling::transport::Frame;

    fn frame(n: u64) -> Item {
        Item::Frame(Frame::from(n.to_string()))
    }

    fn number(item: &Item) -> u64 {
        match item {
            Item::Frame(f) => f.as_str().parse().unwrap_or(0),
            _ => 0,
        }
    }

    #[test]
    fn a_gap_is_nacked_once_and_filled_by_the_resend() {
        let now = Instant::now();
        let mut out = Outgoing::new(8, now);
        let mut inc = Incoming::default();
        for n in 1..=4 {
            out.push(frame(n), now);
        }
        let (first, items) = out.take_unsent().unwrap_or_default();
        assert_eq!((first, items.len()), (1, 4));
        // Items 1-2 arrive, 3-4 are lost; 5 arrives alone.
        let got = inc.receive(1, items[..2].to_vec());
        assert_eq!(got.fresh.len(), 2);
        out.push(frame(5), now);
        let (first, items) = out.take_unsent().unwrap_or_default();
        let got = inc.receive(first, items.clone());
        assert_eq!(got.nack, Some(3));
        // The same gap is not nacked twice.
        assert_eq!(inc.receive(first, items).nack, None);
        let resent = out.resend_from(3, now);
        assert_eq!(resent.len(), 1);
        let (first, items) = resent[0].clone();
        let got = inc.receive(first, items);
        assert_eq!(got.fresh.iter().map(number).collect::<Vec<_>>(), [3, 4, 5]);
    }

    #[test]
    fn the_window_bounds_unacknowledged_frames() {
        let now = Instant::now();
        let mut out = Outgoing::new(2, now);
        out.push(frame(1), now);
        out.push(frame(2), now);
        assert!(!out.has_room());
        let _ = out.take_unsent();
        assert!(out.ack(1, now));
        assert!(out.has_room());
        // An acknowledgement beyond what was sent frees no more than was pushed.
        assert!(out.ack(99, now));
        assert!(out.all_acked());
        out.push(frame(3), now);
        assert_eq!(out.take_unsent().map(|(first, _)| first), Some(3));
    }

    #[test]
    fn overdue_only_counts_sent_items() {
        let t0 = Instant::now();
        let rto = Duration::from_millis(100);
        let mut out = Outgoing::new(4, t0);
        out.push(frame(1), t0);
        assert!(!out.overdue(t0 + rto, rto));
        let _ = out.take_unsent();
        assert!(out.overdue(t0 + rto, rto));
        assert!(out.ack(1, t0 + rto));
        assert!(!out.overdue(t0 + rto * 2, rto));
    }

    /// What the network does to one message.
    #[derive(Clone, Copy, Debug)]
    enum Fate {
        Deliver,
        Drop,
        Duplicate,
    }

    fn fate() -> impl Strategy<Value = Fate> {
        prop_oneof![
            6 => Just(Fate::Deliver),
            2 => Just(Fate::Drop),
            1 => Just(Fate::Duplicate),
        ]
    }

    proptest! {
        /// Over a channel that drops and duplicates messages for a while (NATS keeps the order
        /// of what it delivers), with retransmissions on timeout, every frame is delivered
        /// exactly once and in order, whatever the window and the batch sizes.
        #[test]
        fn lossy_channel_delivers_exactly_once_in_order(
            window in 1usize..16,
            total in 1u64..200,
            batches in proptest::collection::vec(1usize..8, 1..50),
            fates in proptest::collection::vec(fate(), 1..400),
        ) {
            let t0 = Instant::now();
            let rto = Duration::from_millis(10);
            let mut out = Outgoing::new(window, t0);
            let mut inc = Incoming::default();
            let mut delivered: Vec<u64> = Vec::new();
            let mut pushed = 0u64;
            // The network misbehaves as generated, then heals (delivers everything): without that, a
            // network losing every data message forever would be a fair input, and no protocol
            // makes progress over it.
            let mut fates = fates.iter().chain(std::iter::repeat(&Fate::Deliver));
            let mut step = 0u32;
            while delivered.len() < total as usize {
                step += 1;
                prop_assert!(step < 100_000, "no progress");
                let now = t0 + rto * step;
                let batch = batches[step as usize % batches.len()];
                for _ in 0..batch {
                    if pushed < total && out.has_room() {
                        pushed += 1;
                        out.push(frame(pushed), now);
                    }
                }
                let mut messages = Vec::new();
                while let Some(m) = out.take_unsent() {
                    messages.push(m);
                }
                if out.overdue(now, rto) {
                    messages.extend(out.resend_from(0, now));
                }
                for (first, items) in messages {
                    let copies = match fates.next().copied().unwrap_or(Fate::Deliver) {
                        Fate::Deliver => 1,
                        Fate::Drop => 0,
                        Fate::Duplicate => 2,
                    };
                    for _ in 0..copies {
                        let got = inc.receive(first, items.clone());
                        if let Some(from) = got.nack {
                            // The nack itself may be lost too.
                            if matches!(fates.next(), Some(Fate::Deliver | Fate::Duplicate)) {
                                let resent = out.resend_from(from, now);
                                for (first, items) in resent {
                                    let again = inc.receive(first, items);
                                    inc.take(again.fresh.len());
                                    delivered.extend(again.fresh.iter().map(number));
                                }
                            }
                        }
                        inc.take(got.fresh.len());
                        delivered.extend(got.fresh.iter().map(number));
                    }
                }
                // Acknowledgements can be lost as well.
                if matches!(fates.next(), Some(Fate::Deliver | Fate::Duplicate)) {
                    let ack = inc.ack_now();
                    out.ack(ack, now);
                }
            }
            let expected: Vec<u64> = (1..=total).collect();
            prop_assert_eq!(delivered, expected);
        }
    }
}
