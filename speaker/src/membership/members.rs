//! The member table's building blocks: what is known of one member, the replay window of its
//! datagrams, and the queue of gossip waiting to be piggybacked.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use tokio::time::Instant;

use super::wire::{Entry, State};

/// What this node knows of another member.
#[derive(Clone, Debug)]
pub(super) struct Member {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The newest incarnation heard of.
    pub incarnation: u64,
    /// What it is believed to be at that incarnation.
    pub state: State,
    /// When `state` last changed (a suspicion's start, a death's time).
    pub since: Instant,
    /// This node raised or confirmed the current suspicion, so it spreads the verdict directly.
    pub suspected_here: bool,
    /// The datagrams already accepted from it.
    pub replay: ReplayWindow,
}

impl Member {
    /// A member heard of at `incarnation` in `state`.
    pub fn new(addr: SocketAddr, incarnation: u64, state: State, now: Instant) -> Self {
        Self {
            addr,
            incarnation,
            state,
            since: now,
            suspected_here: false,
            replay: ReplayWindow::default(),
        }
    }

    /// The gossip entry that says what this node believes of it.
    pub fn entry(&self, name: &str) -> Entry {
        Entry {
            name: name.to_owned(),
            addr: self.addr,
            incarnation: self.incarnation,
            state: self.state,
        }
    }
}

/// How [`ReplayWindow::check`] judged a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Replay {
    /// Not seen before.
    Fresh,
    /// Seen already, or too old to tell: a replay (or a duplicate).
    Seen,
    /// From an older incarnation than one already heard: a replay, or a sender that does not
    /// know it was superseded.
    Stale,
}

/// The anti-replay window of one sender (as in IPsec): the highest (incarnation, sequence)
/// accepted and which of the 64 sequence numbers below it were.
#[derive(Clone, Debug, Default)]
pub(super) struct ReplayWindow {
    top: Option<(u64, u64)>,
    below: u64,
}

impl ReplayWindow {
    /// Judges a datagram and, if fresh, remembers it.
    pub fn check(&mut self, incarnation: u64, seq: u64) -> Replay {
        let Some((top_inc, top_seq)) = self.top else {
            self.top = Some((incarnation, seq));
            self.below = 0;
            return Replay::Fresh;
        };
        if incarnation < top_inc {
            return Replay::Stale;
        }
        if incarnation > top_inc || seq > top_seq {
            if incarnation == top_inc {
                let shift = seq - top_seq;
                // Bit i of `below` stands for sequence top - 1 - i.
                self.below = if shift > 64 {
                    0
                } else {
                    ((self.below << 1) | 1)
                        .checked_shl((shift - 1) as u32)
                        .unwrap_or(0)
                };
            } else {
                self.below = 0;
            }
            self.top = Some((incarnation, seq));
            return Replay::Fresh;
        }
        let back = top_seq - seq;
        if back == 0 || back > 64 {
            return Replay::Seen;
        }
        let bit = 1u64 << (back - 1);
        if self.below & bit != 0 {
            return Replay::Seen;
        }
        self.below |= bit;
        Replay::Fresh
    }
}

/// Gossip waiting to be piggybacked: member names and how often their news was sent. The news
/// itself is read from the table when sent, so it is always the latest. Kept in two orders, by
/// name and by (times sent, name), so that a datagram takes its least-sent news without sorting
/// the queue (which, while a thousand members join, holds about as many names).
#[derive(Clone, Debug, Default)]
pub(super) struct GossipQueue {
    sent: BTreeMap<String, u32>,
    order: BTreeSet<(u32, String)>,
}

impl GossipQueue {
    /// Queues news of `name` (again from zero if already queued).
    pub fn push(&mut self, name: &str) {
        if let Some(count) = self.sent.insert(name.to_owned(), 0) {
            self.order.remove(&(count, name.to_owned()));
        }
        self.order.insert((0, name.to_owned()));
    }

    /// The queued names, least sent first.
    pub fn by_least_sent(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(|(_, name)| name.as_str())
    }

    /// Counts one more sending of `name`'s news; drops it after `limit`.
    pub fn sent(&mut self, name: &str, limit: u32) {
        let Some(count) = self.sent.get_mut(name) else {
            return;
        };
        let key = (*count, name.to_owned());
        *count += 1;
        let count = *count;
        self.order.remove(&key);
        if count >= limit {
            self.sent.remove(name);
        } else {
            self.order.insert((count, key.1));
        }
    }

    /// Forgets `name`.
    pub fn remove(&mut self, name: &str) {
        if let Some(count) = self.sent.remove(name) {
            self.order.remove(&(count, name.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::GossipQueue;

    fn order(q: &GossipQueue) -> Vec<&str> {
        q.by_least_sent().collect()
    }

    #[test]
    fn the_gossip_queue_gives_least_sent_first_and_forgets_news_sent_enough() {
        let mut q = GossipQueue::default();
        for name in ["c", "a", "b"] {
            q.push(name);
        }
        assert_eq!(order(&q), ["a", "b", "c"], "equal counts: by name");
        q.sent("a", 3);
        q.sent("a", 3);
        q.sent("b", 3);
        assert_eq!(order(&q), ["c", "b", "a"]);
        // Queued again: its count starts over.
        q.push("a");
        assert_eq!(order(&q), ["a", "c", "b"]);
        q.sent("b", 3);
        q.sent("b", 3);
        assert_eq!(order(&q), ["a", "c"], "b was sent three times");
        q.remove("c");
        q.sent("nobody", 3);
        assert_eq!(order(&q), ["a"]);
        assert_eq!(q.sent.len(), 1, "the two orders hold the same names");
        assert_eq!(q.order.len(), 1);
    }
}
