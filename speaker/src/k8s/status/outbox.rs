//! Between the decision loop and a status writer: what this node reports, per key, and which
//! keys changed since the writer last looked. Two sides mark keys: the decision loop, when
//! what it reports for a key changes ([`Outbox::edit`]), and the reflector of the status
//! objects, when the apiserver shows an object of a key changed ([`Tap::seen`]). A writer's
//! round looks at the marked keys alone, so one Service's change costs one key's work
//! whatever the number of Services.
//!
//! The tap also keeps the names of the objects that are not where this node writes a key's
//! object (other nodes' objects, and any of this node's under another name), by the key they
//! name: the ones a key's plan must find besides its own. With layer 2 every speaker watches
//! every node's objects, so on N nodes that is about (N−1)/N of the names: one name per
//! Service, like the objects the speaker caches anyway.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use kube::runtime::watcher::Event;
use tokio::sync::Notify;

use super::{StatusKind, Stored, object_name_of};

/// The keys marked since the writer last took them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Marks {
    pub(crate) keys: HashSet<String>,
    /// Every key: the status objects were listed again (a relist drops objects without
    /// telling which).
    pub(crate) everything: bool,
    /// This node's objects (by name) that showed a status or went: what the writer wrote of
    /// them is in the store, or overtaken.
    pub(crate) settled: HashSet<String>,
}

/// What the reflector's side and the decision loop's side share.
#[derive(Debug)]
struct Seen {
    node: String,
    prefix: &'static str,
    state: Mutex<SeenState>,
    notify: Notify,
    /// The decision loop's side is gone: the writer stops.
    closed: AtomicBool,
    /// The writer's side is gone (this node does not write the kind): nothing is marked.
    unread: AtomicBool,
    /// The decision loop's report is whole ([`Outbox::open`]): this node's objects it does
    /// not report may go.
    open: AtomicBool,
}

#[derive(Debug, Default)]
struct SeenState {
    marks: Marks,
    /// Objects not at this node's name for their key: key → object names.
    elsewhere: HashMap<String, HashSet<String>>,
    /// The same, being rebuilt by a relist (between its start and its end).
    relisting: Option<HashMap<String, HashSet<String>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here panics while holding a lock; if something did, the data is still whole.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Seen {
    fn mark(&self, keys: impl IntoIterator<Item = String>) {
        if self.unread.load(Ordering::SeqCst) {
            return;
        }
        let mut any = false;
        {
            let mut state = lock(&self.state);
            for key in keys {
                state.marks.keys.insert(key);
                any = true;
            }
        }
        if any {
            self.notify.notify_one();
        }
    }
}

/// The decision loop's side: what this node reports, per key.
#[derive(Debug)]
pub(crate) struct Outbox<T> {
    want: Arc<Mutex<BTreeMap<String, T>>>,
    seen: Arc<Seen>,
}

/// The status writer's side.
#[derive(Debug)]
pub(crate) struct Inbox<T> {
    want: Arc<Mutex<BTreeMap<String, T>>>,
    seen: Arc<Seen>,
}

/// The status objects' reflector's side.
#[derive(Clone, Debug)]
pub(crate) struct Tap {
    seen: Arc<Seen>,
}

/// The three sides of the reports of kind `K` by `node`, none marked, nothing reported.
pub(crate) fn outbox<K: StatusKind>(node: &str) -> (Outbox<K::Item>, Inbox<K::Item>, Tap) {
    let want = Arc::new(Mutex::new(BTreeMap::new()));
    let seen = Arc::new(Seen {
        node: node.to_owned(),
        prefix: K::PREFIX,
        state: Mutex::default(),
        notify: Notify::new(),
        closed: AtomicBool::new(false),
        unread: AtomicBool::new(false),
        open: AtomicBool::new(false),
    });
    (
        Outbox {
            want: want.clone(),
            seen: seen.clone(),
        },
        Inbox {
            want,
            seen: seen.clone(),
        },
        Tap { seen },
    )
}

/// An edit of what the node reports; every key whose item changes is marked.
#[derive(Debug)]
pub(crate) struct Edit<'a, T> {
    want: &'a mut BTreeMap<String, T>,
    changed: Vec<String>,
}

impl<T: PartialEq> Edit<'_, T> {
    pub(crate) fn get(&self, key: &str) -> Option<&T> {
        self.want.get(key)
    }

    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.want.contains_key(key)
    }

    /// Reports `item` for `key`; true if that changed anything.
    pub(crate) fn insert(&mut self, key: String, item: T) -> bool {
        if self.want.get(&key) == Some(&item) {
            return false;
        }
        self.changed.push(key.clone());
        self.want.insert(key, item);
        true
    }

    /// Reports nothing for `key`; true if something was.
    pub(crate) fn remove(&mut self, key: &str) -> bool {
        let removed = self.want.remove(key).is_some();
        if removed {
            self.changed.push(key.to_owned());
        }
        removed
    }

    /// Keeps the keys `keep` says to.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        let changed = &mut self.changed;
        self.want.retain(|key, _| {
            let kept = keep(key);
            if !kept {
                changed.push(key.clone());
            }
            kept
        });
    }

    /// Reports `all` instead of what was: O(both), for reports rebuilt whole.
    pub(crate) fn replace(&mut self, all: BTreeMap<String, T>) {
        let old = std::mem::replace(self.want, all);
        let mut old = old.into_iter().peekable();
        let mut new = self.want.iter().peekable();
        loop {
            match (old.peek(), new.peek()) {
                (None, None) => break,
                (Some((k, _)), None) => {
                    self.changed.push(k.clone());
                    old.next();
                }
                (None, Some((k, _))) => {
                    self.changed.push((*k).clone());
                    new.next();
                }
                (Some((ko, vo)), Some((kn, vn))) => match ko.cmp(kn) {
                    std::cmp::Ordering::Less => {
                        self.changed.push(ko.clone());
                        old.next();
                    }
                    std::cmp::Ordering::Greater => {
                        self.changed.push((*kn).clone());
                        new.next();
                    }
                    std::cmp::Ordering::Equal => {
                        if vo != *vn {
                            self.changed.push(ko.clone());
                        }
                        old.next();
                        new.next();
                    }
                },
            }
        }
    }
}

impl<T: PartialEq> Outbox<T> {
    /// Edits what this node reports; the writer is woken for the keys that changed.
    pub(crate) fn edit<R>(&self, f: impl FnOnce(&mut Edit<'_, T>) -> R) -> R {
        let (result, changed) = {
            let mut want = lock(&self.want);
            let mut edit = Edit {
                want: &mut want,
                changed: Vec::new(),
            };
            let result = f(&mut edit);
            (result, edit.changed)
        };
        self.seen.mark(changed);
        result
    }
}

impl<T> Outbox<T> {
    /// What this node reports is whole: from now on, this node's objects of keys it does not
    /// report are removed. Until then a starting speaker, which has decided nothing yet,
    /// would remove every object of its node only to write them again.
    pub(crate) fn open(&self) {
        if !self.seen.open.swap(true, Ordering::SeqCst) {
            self.seen.notify.notify_one();
        }
    }
}

impl<T> Drop for Outbox<T> {
    fn drop(&mut self) {
        self.seen.closed.store(true, Ordering::SeqCst);
        self.seen.notify.notify_one();
    }
}

impl<T> Drop for Inbox<T> {
    fn drop(&mut self) {
        self.seen.unread.store(true, Ordering::SeqCst);
        lock(&self.seen.state).marks = Marks::default();
    }
}

impl<T: Clone> Inbox<T> {
    /// What this node reports for `key`.
    pub(crate) fn wanted(&self, key: &str) -> Option<T> {
        lock(&self.want).get(key).cloned()
    }

    /// Whether this node's report is whole ([`Outbox::open`]).
    pub(crate) fn is_open(&self) -> bool {
        self.seen.open.load(Ordering::SeqCst)
    }

    /// Every key this node reports.
    pub(crate) fn keys(&self) -> Vec<String> {
        lock(&self.want).keys().cloned().collect()
    }

    /// The keys marked since the last call; `None` once the decision loop's side is gone.
    pub(crate) fn take(&self) -> Option<Marks> {
        if self.seen.closed.load(Ordering::SeqCst) {
            return None;
        }
        Some(std::mem::take(&mut lock(&self.seen.state).marks))
    }

    /// The objects of `key` not at this node's name for it.
    pub(crate) fn elsewhere(&self, key: &str) -> Vec<String> {
        lock(&self.seen.state)
            .elsewhere
            .get(key)
            .map(|names| names.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets that `name` is an object of `key` (the store no longer has it under `key`).
    pub(crate) fn forget(&self, key: &str, name: &str) {
        let mut state = lock(&self.seen.state);
        if let Some(names) = state.elsewhere.get_mut(key) {
            names.remove(name);
            if names.is_empty() {
                state.elsewhere.remove(key);
            }
        }
    }

    /// Resolves when something is marked or the decision loop's side is gone.
    pub(crate) async fn marked(&self) {
        self.seen.notify.notified().await;
    }
}

impl Tap {
    /// Told every event of the status objects' reflector, after the store has it.
    pub(crate) fn seen<K: StatusKind>(&self, event: &Event<Stored<K>>) {
        let seen = &self.seen;
        let elsewhere = |object: &Stored<K>| {
            object.name != object_name_of(seen.prefix, &object.key, &seen.node)
        };
        let mut state = lock(&seen.state);
        match event {
            Event::Apply(object) | Event::Delete(object) => {
                let deleted = matches!(event, Event::Delete(_));
                let at_own_name = !elsewhere(object);
                if at_own_name && (deleted || object.status.is_some()) {
                    state.marks.settled.insert(object.name.clone());
                }
                if !at_own_name {
                    let names = state.elsewhere.entry(object.key.clone()).or_default();
                    if !deleted {
                        names.insert(object.name.clone());
                    } else {
                        names.remove(&object.name);
                        if names.is_empty() {
                            state.elsewhere.remove(&object.key);
                        }
                    }
                }
                state.marks.keys.insert(object.key.clone());
            }
            Event::Init => {
                state.relisting = Some(HashMap::new());
                return;
            }
            Event::InitApply(object) => {
                if elsewhere(object) {
                    state
                        .relisting
                        .get_or_insert_default()
                        .entry(object.key.clone())
                        .or_default()
                        .insert(object.name.clone());
                }
                return;
            }
            Event::InitDone => {
                state.elsewhere = state.relisting.take().unwrap_or_default();
                state.marks.everything = true;
            }
        }
        drop(state);
        seen.notify.notify_one();
    }
}

#[cfg(test)]
mod tests;
