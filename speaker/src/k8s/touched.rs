//! Which Services changed since the decision loop last looked, told by the reflector of
//! Services and the watch of EndpointSlices as each event arrives; and the speaker's one cache
//! of EndpointSlices, filed by Service: the loop builds the views of the changed Services
//! alone, each from its own slices. A relist (a watch that expired, the apiserver back)
//! changes everything.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use kube::runtime::watcher::Event;
use tokio::sync::watch;

use super::slim::{SlimService, SlimSlice};

/// Shared between the two watches and the decision loop.
#[derive(Clone, Debug)]
pub(crate) struct Touched(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    inner: Mutex<Inner>,
    /// The slices were listed once.
    slices_ready: watch::Sender<bool>,
}

#[derive(Debug)]
struct Inner {
    /// Services (`namespace/name`) changed since the last [`Touched::take`].
    services: HashSet<String>,
    /// Every Service changed (a relist, or nothing seen yet).
    everything: bool,
    /// Every EndpointSlice that names a Service.
    slices: Slices,
    /// The same, being rebuilt by a relist of the slices.
    relisting: Option<Slices>,
}

/// The EndpointSlices of each Service.
#[derive(Debug, Default)]
struct Slices {
    /// Per Service (`namespace/name`), its slices sorted by name. Usually one or two: a
    /// vector, where a map would take a whole B-tree node per Service.
    by_service: HashMap<String, Vec<SlimSlice>>,
    /// Per slice (`namespace/name`), its Service (`namespace/name`): where to find it again
    /// when its label changes.
    service_of: HashMap<String, String>,
}

impl Slices {
    /// Files `slice` under its Service, in place of what it was; returns the Service it was
    /// filed under before, if another (it was relabelled, or lost its label).
    fn file(&mut self, slice: &SlimSlice) -> Option<String> {
        let Some(key) = slice.service_key() else {
            return self.remove(slice);
        };
        let id = format!("{}/{}", slice.namespace, slice.name);
        let before = match self.service_of.get(&id) {
            Some(before) if *before == key => None,
            Some(_) => self.remove(slice),
            None => None,
        };
        let slices = self.by_service.entry(key.clone()).or_default();
        match slices.binary_search_by(|s| s.name.cmp(&slice.name)) {
            Ok(at) => slices[at] = slice.clone(),
            Err(at) => {
                slices.insert(at, slice.clone());
                self.service_of.insert(id, key);
            }
        }
        before
    }

    /// Forgets `slice`; returns the Service it was filed under.
    fn remove(&mut self, slice: &SlimSlice) -> Option<String> {
        let key = self
            .service_of
            .remove(&format!("{}/{}", slice.namespace, slice.name))?;
        if let Some(slices) = self.by_service.get_mut(&key) {
            slices.retain(|s| s.name != slice.name);
            if slices.is_empty() {
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
        Self(Arc::new(Shared {
            inner: Mutex::new(Inner {
                services: HashSet::new(),
                everything: true,
                slices: Slices::default(),
                relisting: None,
            }),
            slices_ready: watch::Sender::new(false),
        }))
    }
}

impl Touched {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding it leaves nothing half-written that matters here.
        self.0.inner.lock().unwrap_or_else(|e| e.into_inner())
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

    /// An EndpointSlice event: the cache follows, and its Service changed.
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
            Event::Init => inner.relisting = Some(Slices::default()),
            Event::InitApply(slice) => {
                inner.relisting.get_or_insert_default().file(slice);
            }
            Event::InitDone => {
                if let Some(slices) = inner.relisting.take() {
                    inner.slices = slices;
                }
                inner.everything = true;
                drop(inner);
                self.0.slices_ready.send_replace(true);
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

    /// `read` of the EndpointSlices of the Service `key` (`namespace/name`), as last told.
    pub(crate) fn with_slices<R>(&self, key: &str, read: impl FnOnce(&[SlimSlice]) -> R) -> R {
        let inner = self.lock();
        read(inner.slices.by_service.get(key).map_or(&[], Vec::as_slice))
    }

    /// Resolves once the EndpointSlices were listed.
    pub(crate) async fn slices_listed(&self) {
        let mut ready = self.0.slices_ready.subscribe();
        // The sender lives as long as `self`.
        let _ = ready.wait_for(|listed| *listed).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::slim::SlimEndpoint;

    fn slices_of(touched: &Touched, key: &str) -> Vec<String> {
        touched.with_slices(key, |slices| {
            slices.iter().map(|s| s.name.clone()).collect()
        })
    }

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
        assert_eq!(slices_of(&touched, "web/http"), ["http-1", "http-2"]);

        touched.slice(&Event::Delete(slice("http-1", Some("http"))));
        assert_eq!(touched.take().services.len(), 1);
        assert_eq!(slices_of(&touched, "web/http"), ["http-2"]);
        assert!(touched.take().services.is_empty(), "taken once");
    }

    #[test]
    fn a_changed_slice_replaces_what_was_kept_of_it() {
        let touched = Touched::default();
        let mut http = slice("http-1", Some("http"));
        touched.slice(&Event::Apply(http.clone()));
        http.endpoints.push(SlimEndpoint {
            node: Some("node-1".into()),
            ready: true,
            serving: true,
        });
        touched.slice(&Event::Apply(http.clone()));
        assert_eq!(
            touched.with_slices("web/http", <[SlimSlice]>::to_vec),
            [http]
        );
        assert_eq!(touched.take().services.len(), 1);
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
        assert!(slices_of(&touched, "web/old").is_empty());
        assert_eq!(slices_of(&touched, "web/new"), ["s-1"]);
        touched.slice(&Event::Apply(slice("s-1", None)));
        assert_eq!(
            touched.take().services,
            HashSet::from(["web/new".to_owned()])
        );
        assert!(slices_of(&touched, "web/new").is_empty());
    }

    #[test]
    fn a_relist_replaces_the_index_and_touches_everything() {
        let touched = Touched::default();
        touched.take();
        touched.slice(&Event::Apply(slice("old-1", Some("old"))));
        touched.slice(&Event::Init);
        touched.slice(&Event::InitApply(slice("new-1", Some("new"))));
        assert_eq!(slices_of(&touched, "old/x"), Vec::<String>::new());
        assert_eq!(
            slices_of(&touched, "web/old"),
            ["old-1"],
            "kept until the relist is done"
        );
        touched.slice(&Event::InitDone);
        assert!(touched.take().everything);
        assert!(slices_of(&touched, "web/old").is_empty());
        assert_eq!(slices_of(&touched, "web/new"), ["new-1"]);
    }
}
