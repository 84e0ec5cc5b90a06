//! Which Services changed since the decision loop last looked, told by the reflectors of
//! Services and EndpointSlices as each event arrives, and which EndpointSlices each Service
//! has: the loop then builds the views of those Services alone, from their own slices. A
//! relist (a watch that expired, the apiserver back) changes everything.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use kube::runtime::watcher::Event;

use super::slim::{SlimService, SlimSlice};

/// Shared between the two reflectors and the decision loop.
#[derive(Clone, Debug)]
pub(crate) struct Touched(Arc<Mutex<Inner>>);

#[derive(Debug)]
struct Inner {
    /// Services (`namespace/name`) changed since the last [`Touched::take`].
    services: HashSet<String>,
    /// Every Service changed (a relist, or nothing seen yet).
    everything: bool,
    /// Which slices each Service has, and the other way round.
    slices: SliceIndex,
    /// The same, being rebuilt by a relist of the slices.
    relisting: Option<SliceIndex>,
}

/// The EndpointSlices of each Service.
#[derive(Debug, Default)]
struct SliceIndex {
    /// Per Service (`namespace/name`), the names of its slices, sorted. Usually one or two:
    /// a vector, where a set would take a whole B-tree node per Service.
    by_service: HashMap<String, Vec<String>>,
    /// Per slice (`namespace/name`), its Service (`namespace/name`).
    service_of: HashMap<String, String>,
}

impl SliceIndex {
    /// Files `slice` under its Service; returns the Service it was filed under before, if
    /// another (it was relabelled, or lost its label).
    fn file(&mut self, slice: &SlimSlice) -> Option<String> {
        let before = self.remove(slice);
        let Some(key) = slice.service_key() else {
            return before;
        };
        let names = self.by_service.entry(key.clone()).or_default();
        if let Err(at) = names.binary_search(&slice.name) {
            names.insert(at, slice.name.clone());
        }
        self.service_of
            .insert(format!("{}/{}", slice.namespace, slice.name), key.clone());
        before.filter(|b| *b != key)
    }

    /// Forgets `slice`; returns the Service it was filed under.
    fn remove(&mut self, slice: &SlimSlice) -> Option<String> {
        let key = self
            .service_of
            .remove(&format!("{}/{}", slice.namespace, slice.name))?;
        if let Some(names) = self.by_service.get_mut(&key) {
            names.retain(|n| *n != slice.name);
            if names.is_empty() {
                self.by_service.remove(&key);
            }
        }
        Some(key)
    }
}

/// What changed, taken by the decision loop.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// The Services changed.
    pub services: HashSet<String>,
    /// Every Service may have changed.
    pub everything: bool,
}

impl Default for Touched {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(Inner {
            services: HashSet::new(),
            everything: true,
            slices: SliceIndex::default(),
            relisting: None,
        })))
    }
}

impl Touched {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding it leaves nothing half-written that matters here.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A Service event.
    pub(crate) fn service(&self, event: &Event<SlimService>) {
        let mut inner = self.lock();
        match event {
            Event::Apply(svc) | Event::Delete(svc) => {
                inner.services.insert(svc.key());
            }
            Event::InitDone => inner.everything = true,
            Event::Init | Event::InitApply(_) => {}
        }
    }

    /// An EndpointSlice event: its Service changed, and the slice index follows.
    pub(crate) fn slice(&self, event: &Event<SlimSlice>) {
        let mut inner = self.lock();
        match event {
            Event::Apply(slice) => {
                let before = inner.slices.file(slice);
                inner.services.extend(before);
                inner.services.extend(slice.service_key());
            }
            Event::Delete(slice) => {
                let before = inner.slices.remove(slice);
                inner.services.extend(before);
                inner.services.extend(slice.service_key());
            }
            Event::Init => inner.relisting = Some(SliceIndex::default()),
            Event::InitApply(slice) => {
                if let Some(index) = &mut inner.relisting {
                    index.file(slice);
                }
            }
            Event::InitDone => {
                if let Some(index) = inner.relisting.take() {
                    inner.slices = index;
                }
                inner.everything = true;
            }
        }
    }

    /// Takes what changed since the last time.
    pub(crate) fn take(&self) -> Changes {
        let mut inner = self.lock();
        Changes {
            services: std::mem::take(&mut inner.services),
            everything: std::mem::take(&mut inner.everything),
        }
    }

    /// The names of the EndpointSlices of the Service `key` (`namespace/name`) as last told.
    pub(crate) fn slices_of(&self, key: &str) -> Vec<String> {
        self.lock()
            .slices
            .by_service
            .get(key)
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(name: &str, service: Option<&str>) -> SlimSlice {
        SlimSlice {
            namespace: "web".into(),
            name: name.into(),
            service: service.map(str::to_owned),
            endpoints: Vec::new(),
        }
    }

    #[test]
    fn slice_events_touch_their_service_and_keep_the_index() {
        let touched = Touched::default();
        assert!(touched.take().everything, "nothing seen yet: everything");
        touched.slice(&Event::Apply(slice("http-1", Some("http"))));
        touched.slice(&Event::Apply(slice("http-2", Some("http"))));
        touched.slice(&Event::Apply(slice("orphan", None)));
        let changes = touched.take();
        assert!(!changes.everything);
        assert_eq!(changes.services, HashSet::from(["web/http".to_owned()]));
        assert_eq!(touched.slices_of("web/http"), ["http-1", "http-2"]);

        touched.slice(&Event::Delete(slice("http-1", Some("http"))));
        assert_eq!(touched.take().services.len(), 1);
        assert_eq!(touched.slices_of("web/http"), ["http-2"]);
        assert!(touched.take().services.is_empty(), "taken once");
    }

    #[test]
    fn a_relabelled_slice_leaves_its_old_service_and_touches_both() {
        let touched = Touched::default();
        touched.slice(&Event::Apply(slice("s-1", Some("old"))));
        touched.take();
        touched.slice(&Event::Apply(slice("s-1", Some("new"))));
        let changes = touched.take();
        assert_eq!(
            changes.services,
            HashSet::from(["web/old".to_owned(), "web/new".to_owned()])
        );
        assert!(touched.slices_of("web/old").is_empty());
        assert_eq!(touched.slices_of("web/new"), ["s-1"]);
        touched.slice(&Event::Apply(slice("s-1", None)));
        assert_eq!(
            touched.take().services,
            HashSet::from(["web/new".to_owned()])
        );
        assert!(touched.slices_of("web/new").is_empty());
    }

    #[test]
    fn a_relist_replaces_the_index_and_touches_everything() {
        let touched = Touched::default();
        touched.take();
        touched.slice(&Event::Apply(slice("old-1", Some("old"))));
        touched.slice(&Event::Init);
        touched.slice(&Event::InitApply(slice("new-1", Some("new"))));
        assert_eq!(touched.slices_of("old/x"), Vec::<String>::new());
        assert_eq!(
            touched.slices_of("web/old"),
            ["old-1"],
            "kept until the relist is done"
        );
        touched.slice(&Event::InitDone);
        assert!(touched.take().everything);
        assert!(touched.slices_of("web/old").is_empty());
        assert_eq!(touched.slices_of("web/new"), ["new-1"]);
    }
}
