//! What the writer holds — writes queued, in flight and waiting to be retried — and what it
//! sends next, decided without I/O (time passed in).
//!
//! Writes belong to the term of leadership that decided them. Only the current term's are
//! taken, sent and retried: when a term ends, what it queued and what waits for a retry is
//! dropped at once, and a write of a past term that was in flight is never tried again.
//!
//! Each write names the Service's resourceVersion as its decision saw it. When our own write
//! to a Service lands, a write decided before the cache caught up with it is sent over the
//! version our write made (the only change in between was ours). A write refused because the
//! Service changed in between is not retried: the Service is decided again from what it is now.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::StatusWrite;
use super::moves::Moves;
use crate::allocator::ServiceKey;

/// How a sent write ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Sent {
    /// It landed; the Service is at this version now.
    Landed(Option<String>),
    /// The Service does not exist.
    Gone,
    /// The Service changed since the write was decided; it shows these IPs now (`None`: not
    /// known, it could not be read).
    Stale(Option<Vec<IpAddr>>),
    /// Failed, or timed out: it may or may not have landed.
    Failed,
}

/// What became of a sent write, for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Done {
    /// `ok`, `gone`, `conflict`, `error`, or `dropped` (failed, and of a past term: never
    /// tried again).
    pub result: &'static str,
    /// When it is tried again, if it is.
    pub retry_in: Option<Duration>,
}

#[derive(Default)]
pub(super) struct Queue {
    /// The term whose writes are taken (`None`: none, this replica does not lead).
    term: Option<u64>,
    /// The newest write for each Service not sent yet.
    latest: HashMap<ServiceKey, StatusWrite>,
    /// Services with a queued write, in the order they go.
    order: VecDeque<ServiceKey>,
    in_flight: HashSet<ServiceKey>,
    /// Failed writes and when they are tried again.
    retries: HashMap<ServiceKey, (Instant, StatusWrite)>,
    failures: HashMap<ServiceKey, u32>,
    /// Order of the writes of one writer: a retried old write never replaces a newer one.
    newest: HashMap<ServiceKey, u64>,
    moves: Moves,
    /// Deleted while a write to it was in flight: that write's landing must not count.
    deleted: HashSet<ServiceKey>,
    /// The version each Service's last landed write was sent over, and the one it made.
    versions: HashMap<ServiceKey, (String, String)>,
    /// What Services with a write of a past term in flight showed when the current term began:
    /// what they show if that write did not land.
    shown_at_term: HashMap<ServiceKey, Vec<IpAddr>>,
}

impl Queue {
    pub(super) fn term(&self) -> Option<u64> {
        self.term
    }

    /// Nothing queued, in flight or waiting for a retry.
    pub(super) fn is_idle(&self) -> bool {
        self.latest.is_empty() && self.in_flight.is_empty() && self.retries.is_empty()
    }

    pub(super) fn has_in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Term `term` begins; every Service shows what `shown` says (read afresh), those not in
    /// it nothing. Returns how many writes of past terms were dropped.
    pub(super) fn begin_term(&mut self, term: u64, shown: Vec<(ServiceKey, Vec<IpAddr>)>) -> usize {
        let dropped = self.end_term();
        let mut shown_at_term: HashMap<ServiceKey, Vec<IpAddr>> = self
            .in_flight
            .iter()
            .map(|k| (k.clone(), Vec::new()))
            .collect();
        for (key, ips) in &shown {
            if let Some(at_term) = shown_at_term.get_mut(key) {
                at_term.clone_from(ips);
            }
        }
        self.shown_at_term = shown_at_term;
        let in_flight = &self.in_flight;
        self.moves.new_term(shown, |k| in_flight.contains(k));
        self.term = Some(term);
        dropped
    }

    /// The current term is over: what it queued and what waits for a retry is dropped.
    /// Returns how many writes were.
    pub(super) fn end_term(&mut self) -> usize {
        let dropped = self.latest.len() + self.retries.len();
        self.term = None;
        self.latest.clear();
        self.order.clear();
        self.retries.clear();
        self.failures.clear();
        dropped
    }

    /// Takes a write; false if it was dropped (of a term that is not the current one).
    pub(super) fn receive(&mut self, w: StatusWrite) -> bool {
        if self.term != Some(w.term) {
            return false;
        }
        let key = w.key.clone();
        self.deleted.remove(&key);
        let seen = self.newest.entry(key.clone()).or_default();
        if w.seq < *seen {
            return true;
        }
        *seen = w.seq;
        self.retries.remove(&key);
        self.moves.received(&w);
        let queued = self.latest.insert(key.clone(), w).is_some();
        if !queued && !self.in_flight.contains(&key) {
            self.order.push_back(key);
        }
        true
    }

    /// A Service was deleted: it shows nothing, and its queued write has nowhere to land.
    pub(super) fn gone(&mut self, key: &ServiceKey) {
        self.latest.remove(key);
        self.retries.remove(key);
        self.failures.remove(key);
        self.versions.remove(key);
        self.moves.forget(key);
        if self.in_flight.contains(key) {
            self.deleted.insert(key.clone());
        }
    }

    /// Retries whose time has come go in line again.
    pub(super) fn due(&mut self, now: Instant) {
        let due: Vec<ServiceKey> = self
            .retries
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some((_, w)) = self.retries.remove(&key) else {
                continue;
            };
            if !self.latest.contains_key(&key) {
                self.latest.insert(key.clone(), w);
                if !self.in_flight.contains(&key) && !self.order.contains(&key) {
                    self.order.push_back(key);
                }
            }
        }
    }

    /// When the next retry is due.
    pub(super) fn next_retry(&self) -> Option<Instant> {
        self.retries.values().map(|(at, _)| *at).min()
    }

    /// The writes to send now, so that at most `concurrency` are in flight. Each Service
    /// queued is looked at once: those that must wait stay in line.
    pub(super) fn next(&mut self, concurrency: usize) -> Vec<StatusWrite> {
        let mut out = Vec::new();
        let mut waiting = VecDeque::new();
        while self.in_flight.len() < concurrency {
            let Some(key) = self.order.pop_front() else {
                break;
            };
            let Some(mut w) = self.latest.remove(&key) else {
                continue;
            };
            if self.moves.must_wait(&w) {
                let Some(release_first) = w.release_first.take() else {
                    self.latest.insert(key.clone(), w);
                    waiting.push_back(key);
                    continue;
                };
                // Let go of what it no longer holds now; the rest follows once the IPs it gets
                // are free. (The full write stays queued: it goes in line again when this one
                // is done.)
                let kept: Vec<IpAddr> = w
                    .ips
                    .iter()
                    .filter(|ip| w.observed.contains(ip))
                    .copied()
                    .collect();
                let mut first = w.clone();
                first.body = release_first;
                first.ips = kept;
                first.first_part = true;
                self.latest.insert(key.clone(), w);
                w = first;
            }
            // Decided before our last write to the Service landed, which was the only change.
            if let Some((from, to)) = self.versions.get(&key)
                && w.version.as_ref() == Some(from)
            {
                w.version = Some(to.clone());
            }
            self.in_flight.insert(key);
            out.push(w);
        }
        self.order.extend(waiting);
        out
    }

    /// A sent write ended at `now`.
    pub(super) fn done(&mut self, w: StatusWrite, sent: Sent, now: Instant) -> Done {
        let key = w.key.clone();
        self.in_flight.remove(&key);
        let shown_at_term = self.shown_at_term.remove(&key);
        let mut retry_in = None;
        let result = match sent {
            Sent::Landed(_) | Sent::Failed | Sent::Stale(_) if self.deleted.remove(&key) => {
                label(&sent)
            }
            Sent::Landed(version) => {
                self.moves.landed(&key, &w.ips, self.latest.get(&key));
                self.failures.remove(&key);
                match (w.version.clone(), version) {
                    (Some(from), Some(to)) => {
                        self.versions.insert(key.clone(), (from, to));
                    }
                    _ => {
                        self.versions.remove(&key);
                    }
                }
                "ok"
            }
            Sent::Gone => {
                // Forget it (its retry count and write order too).
                self.failures.remove(&key);
                self.newest.remove(&key);
                self.versions.remove(&key);
                self.moves.forget(&key);
                "gone"
            }
            Sent::Stale(shows) => {
                self.failures.remove(&key);
                self.versions.remove(&key);
                // Decided from the same state, or earlier: decided again instead.
                if self.latest.get(&key).is_some_and(|q| q.seq <= w.seq) {
                    self.latest.remove(&key);
                }
                if let Some(ips) = shows {
                    self.moves.landed(&key, &ips, self.latest.get(&key));
                }
                "conflict"
            }
            Sent::Failed if self.term != Some(w.term) => {
                // Of a past term: never tried again, and the Service shows what the current
                // term read (unless the write lands late, where its version fences it).
                if let Some(ips) = shown_at_term {
                    self.moves.landed(&key, &ips, self.latest.get(&key));
                }
                "dropped"
            }
            Sent::Failed => {
                let n = self.failures.entry(key.clone()).or_default();
                *n += 1;
                let delay = Duration::from_millis(100 * 2u64.pow((*n).min(7)));
                // A first part that failed is tried again before its full write.
                if w.first_part
                    && let Some(full) = self.latest.get_mut(&key)
                {
                    full.release_first.get_or_insert(w.body.clone());
                }
                // Retried unless a newer status is already queued.
                if !self.latest.contains_key(&key) {
                    self.retries.insert(key.clone(), (now + delay, w));
                    retry_in = Some(delay);
                }
                "error"
            }
        };
        // A newer status arrived while this one was in flight (or the rest of a write that let
        // go first): it goes in line now.
        if self.latest.contains_key(&key) && !self.order.contains(&key) {
            self.order.push_back(key);
        }
        Done { result, retry_in }
    }
}

fn label(sent: &Sent) -> &'static str {
    match sent {
        Sent::Landed(_) => "ok",
        Sent::Gone => "gone",
        Sent::Stale(_) => "conflict",
        Sent::Failed => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    /// A write of `term` that gives Service `name` (at `version`) `ips`.
    fn write(term: u64, seq: u64, name: &str, version: &str, ips: &[&str]) -> StatusWrite {
        let mut w = StatusWrite::new(
            ServiceKey::new("default", name),
            json!({}),
            ips.iter().map(|s| ip(s)).collect(),
            Vec::new(),
        )
        .with_version(Some(version.to_owned()));
        w.term = term;
        w.seq = seq;
        w
    }

    fn names(writes: &[StatusWrite]) -> Vec<&str> {
        writes.iter().map(|w| w.key.name.as_str()).collect()
    }

    #[test]
    fn writes_of_a_past_term_are_refused_and_those_queued_when_it_ended_are_dropped() {
        let mut q = Queue::default();
        q.begin_term(1, Vec::new());
        assert!(q.receive(write(1, 1, "first", "5", &["192.0.2.1"])));
        assert!(q.receive(write(1, 2, "second", "6", &["192.0.2.2"])));
        assert_eq!(names(&q.next(1)), ["first"]);

        assert_eq!(q.begin_term(2, Vec::new()), 1, "second was queued");
        assert!(!q.receive(write(1, 3, "third", "7", &["192.0.2.3"])));
        assert!(q.next(16).is_empty());
        // The first term's write in flight ends: nothing of it is sent again.
        let first = write(1, 1, "first", "5", &["192.0.2.1"]);
        let done = q.done(first, Sent::Failed, Instant::now());
        assert_eq!(
            done,
            Done {
                result: "dropped",
                retry_in: None
            }
        );
        assert!(q.is_idle());
    }

    #[test]
    fn a_write_waiting_for_its_retry_when_the_term_ends_is_never_sent_again() {
        let mut q = Queue::default();
        let t0 = Instant::now();
        q.begin_term(1, Vec::new());
        q.receive(write(1, 1, "web", "5", &["192.0.2.1"]));
        let sent = q.next(16);
        let done = q.done(sent[0].clone(), Sent::Failed, t0);
        assert!(done.retry_in.is_some());
        assert_eq!(q.end_term(), 1);
        q.due(t0 + Duration::from_secs(60));
        assert!(q.next(16).is_empty());
        assert!(q.is_idle());
    }

    #[test]
    fn a_deleted_services_write_waiting_for_its_retry_is_never_sent() {
        // Issue #13's also-check: a retry must not land on a Service re-created under the same
        // name (if one still did, its resourceVersion precondition would refuse it).
        let mut q = Queue::default();
        let t0 = Instant::now();
        q.begin_term(1, Vec::new());
        q.receive(write(1, 1, "web", "5", &["192.0.2.1"]));
        let sent = q.next(16);
        assert!(q.done(sent[0].clone(), Sent::Failed, t0).retry_in.is_some());
        q.gone(&ServiceKey::new("default", "web"));
        q.due(t0 + Duration::from_secs(60));
        assert!(q.next(16).is_empty());
        assert!(q.is_idle());
    }

    #[test]
    fn a_write_refused_because_the_service_changed_is_not_retried() {
        let mut q = Queue::default();
        let t0 = Instant::now();
        q.begin_term(1, Vec::new());
        q.receive(write(1, 1, "web", "5", &["192.0.2.1"]));
        let sent = q.next(16);
        let done = q.done(sent[0].clone(), Sent::Stale(Some(Vec::new())), t0);
        assert_eq!(
            done,
            Done {
                result: "conflict",
                retry_in: None
            }
        );
        q.due(t0 + Duration::from_secs(60));
        assert!(q.is_idle());
        // It showed nothing: another Service may have the IP at once.
        q.receive(write(1, 2, "other", "9", &["192.0.2.1"]));
        assert_eq!(names(&q.next(16)), ["other"]);
    }

    #[test]
    fn a_write_decided_before_our_last_write_landed_goes_over_the_version_that_write_made() {
        let mut q = Queue::default();
        let t0 = Instant::now();
        q.begin_term(1, Vec::new());
        q.receive(write(1, 1, "web", "5", &["192.0.2.1"]));
        let first = q.next(16).remove(0);
        // Decided while the first was in flight, from the same cached version.
        q.receive(write(1, 2, "web", "5", &["192.0.2.2"]));
        q.done(first, Sent::Landed(Some("6".into())), t0);
        let second = q.next(16).remove(0);
        assert_eq!(second.version.as_deref(), Some("6"));
        // One decided from a version we did not make keeps it (and fails if it is stale).
        q.done(second, Sent::Landed(Some("7".into())), t0);
        q.receive(write(1, 3, "web", "4", &["192.0.2.3"]));
        assert_eq!(q.next(16)[0].version.as_deref(), Some("4"));
    }
}
