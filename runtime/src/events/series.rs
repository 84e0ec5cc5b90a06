//! Which Events were published lately, so a repeat is counted on the first instead of written
//! again: a hash of what makes two Events the same and the first's name, nothing else, and
//! at most [`CAPACITY`] of them (the oldest go first).

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};

/// How long after its last occurrence an Event still counts repeats (client-go's and kube's
/// six minutes).
pub(crate) const WINDOW: Duration = Duration::from_secs(6 * 60);

/// Series remembered at most. Past it the oldest is forgotten: its next repeat creates a new
/// Event, which costs a write, never a wrong count.
pub(crate) const CAPACITY: usize = 4096;

/// What makes two Events the same: the object (kind, namespace, name, UID), the type, action,
/// reason, note and related object. The publisher (controller and instance) is fixed per
/// [`Series`].
pub(crate) fn key(event: &Event, regarding: &ObjectReference) -> u64 {
    let mut h = DefaultHasher::new();
    for part in [
        &regarding.kind,
        &regarding.namespace,
        &regarding.name,
        &regarding.uid,
    ] {
        part.hash(&mut h);
    }
    matches!(event.type_, EventType::Warning).hash(&mut h);
    event.action.hash(&mut h);
    event.reason.hash(&mut h);
    event.note.hash(&mut h);
    event
        .secondary
        .as_ref()
        .map(|r| (&r.kind, &r.namespace, &r.name, &r.uid))
        .hash(&mut h);
    h.finish()
}

/// The first Event of a series, and how many times it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Repeat {
    pub name: String,
    pub namespace: String,
    pub count: i32,
}

#[derive(Debug)]
struct Entry {
    repeat: Repeat,
    expires: Instant,
}

/// The series seen within [`WINDOW`].
#[derive(Debug, Default)]
pub(crate) struct Series {
    by_key: HashMap<u64, Entry>,
    /// Keys by the time they expire, oldest first; an entry whose time is no longer its key's
    /// was superseded by a later repeat and is skipped.
    order: VecDeque<(u64, Instant)>,
}

impl Series {
    /// If `key` was published within the window: counts this occurrence and returns the series.
    pub(crate) fn repeat(&mut self, key: u64, now: Instant) -> Option<Repeat> {
        self.expire(now);
        let entry = self.by_key.get_mut(&key)?;
        entry.repeat.count = entry.repeat.count.saturating_add(1);
        entry.expires = now + WINDOW;
        self.order.push_back((key, entry.expires));
        let repeat = entry.repeat.clone();
        self.compact();
        Some(repeat)
    }

    /// Records the first Event of a series, created as `name` in `namespace`.
    pub(crate) fn first(&mut self, key: u64, name: String, namespace: String, now: Instant) {
        self.expire(now);
        let expires = now + WINDOW;
        self.by_key.insert(
            key,
            Entry {
                repeat: Repeat {
                    name,
                    namespace,
                    count: 1,
                },
                expires,
            },
        );
        self.order.push_back((key, expires));
        while self.by_key.len() > CAPACITY {
            self.pop_oldest();
        }
        self.compact();
    }

    /// Forgets `key` (its Event is gone or could not be counted).
    pub(crate) fn forget(&mut self, key: u64) {
        self.by_key.remove(&key);
    }

    /// How many series are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Drops the series whose window closed before `now`.
    fn expire(&mut self, now: Instant) {
        while self.order.front().is_some_and(|(_, at)| *at <= now) {
            self.pop_oldest();
        }
        if self.by_key.capacity() > 4 * self.by_key.len().max(64) {
            self.by_key.shrink_to_fit();
        }
    }

    /// Removes the oldest entry of the order, and its key if that entry is the key's own.
    fn pop_oldest(&mut self) {
        if let Some((key, at)) = self.order.pop_front()
            && self.by_key.get(&key).is_some_and(|e| e.expires == at)
        {
            self.by_key.remove(&key);
        }
    }

    /// Drops superseded entries once they outnumber the live ones (a burst of repeats of a
    /// few Events), so the order stays O(series).
    fn compact(&mut self) {
        if self.order.len() > 2 * self.by_key.len() + 64 {
            let by_key = &self.by_key;
            self.order
                .retain(|(key, at)| by_key.get(key).is_some_and(|e| e.expires == *at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(reason: &str, note: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(note.into()),
            action: "Allocate".into(),
            secondary: None,
        }
    }

    fn service(name: &str, uid: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("Service".into()),
            namespace: Some("apps".into()),
            name: Some(name.into()),
            uid: Some(uid.into()),
            resource_version: Some("1".into()),
            ..ObjectReference::default()
        }
    }

    #[test]
    fn the_same_event_is_the_same_key_and_any_difference_is_another() {
        let base = key(&event("IPAllocated", "192.0.2.200"), &service("web", "u1"));
        let mut newer = service("web", "u1");
        newer.resource_version = Some("2".into());
        assert_eq!(
            key(&event("IPAllocated", "192.0.2.200"), &newer),
            base,
            "a new resource version of the object is the same object"
        );
        for other in [
            key(&event("IPAllocated", "192.0.2.201"), &service("web", "u1")),
            key(&event("IPReleased", "192.0.2.200"), &service("web", "u1")),
            key(&event("IPAllocated", "192.0.2.200"), &service("web", "u2")),
            key(&event("IPAllocated", "192.0.2.200"), &service("db", "u1")),
        ] {
            assert_ne!(other, base);
        }
    }

    #[test]
    fn repeats_within_the_window_count_on_the_first_and_later_ones_start_again() {
        let t0 = Instant::now();
        let mut s = Series::default();
        assert_eq!(s.repeat(7, t0), None);
        s.first(7, "web.1".into(), "apps".into(), t0);
        let second = s
            .repeat(7, t0 + Duration::from_secs(300))
            .expect("within the window");
        assert_eq!((second.name.as_str(), second.count), ("web.1", 2));
        // The window runs from the last occurrence.
        let third = s
            .repeat(7, t0 + Duration::from_secs(600))
            .expect("still open");
        assert_eq!(third.count, 3);
        assert_eq!(s.repeat(7, t0 + Duration::from_secs(600) + WINDOW), None);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn at_most_capacity_series_are_kept_and_the_oldest_go_first() {
        let t0 = Instant::now();
        let mut s = Series::default();
        let n = CAPACITY as u64 + 100;
        for k in 0..n {
            s.first(
                k,
                format!("e{k}"),
                "apps".into(),
                t0 + Duration::from_millis(k),
            );
        }
        assert_eq!(s.len(), CAPACITY);
        let now = t0 + Duration::from_millis(n);
        assert_eq!(s.repeat(0, now), None, "the oldest was forgotten");
        assert_eq!(s.repeat(n - 1, now).map(|r| r.count), Some(2));
    }

    #[test]
    fn a_burst_of_repeats_keeps_the_order_small() {
        let t0 = Instant::now();
        let mut s = Series::default();
        s.first(1, "a".into(), "apps".into(), t0);
        for i in 1..10_000u64 {
            s.repeat(1, t0 + Duration::from_micros(i));
        }
        assert!(s.order.len() <= 2 * s.len() + 65, "{}", s.order.len());
        assert_eq!(
            s.repeat(1, t0 + Duration::from_millis(20)).map(|r| r.count),
            Some(10_001)
        );
    }

    #[test]
    fn a_forgotten_series_starts_again() {
        let t0 = Instant::now();
        let mut s = Series::default();
        s.first(1, "a".into(), "apps".into(), t0);
        s.forget(1);
        assert_eq!(s.repeat(1, t0), None);
        // Its stale order entry does not remove a newer series of the same key.
        s.first(1, "b".into(), "apps".into(), t0 + Duration::from_secs(1));
        assert_eq!(
            s.repeat(1, t0 + WINDOW + Duration::from_millis(500))
                .map(|r| r.name),
            Some("b".into())
        );
    }
}
