//! The status objects a speaker writes: `ServiceL2Status` and `ServiceBGPStatus`, one per
//! (Service, announcing node), and `BGPSessionState`, one per (node, BGPPeer). Level-triggered:
//! the writer is given what this node reports, keyed, and makes the objects match, retrying
//! while the apiserver is away. The announcers never wait on it.
//!
//! A writer looks only at the keys that changed ([`Outbox`], [`Tap`]): those whose report changed and
//! those whose objects changed. One Service's change costs one key's work at any number of
//! Services. At scale (thousands of Services reported at once, as when a speaker starts) the
//! writes go out [`WRITE_CONCURRENCY`] at a time, in rounds of [`ROUND`] keys; between rounds
//! the writer takes the keys marked since, ahead of the rest, so a Service announced while a
//! backlog is written is reported next rather than after the backlog.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_api::{
    BGPSessionState, BGPSessionStateStatus, InterfaceName, ServiceBGPStatus,
    ServiceBGPStatusStatus, ServiceL2Status, ServiceL2StatusStatus,
};
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Node;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::report;

mod outbox;
mod stored;
pub(crate) use outbox::{Inbox, Outbox, Tap, outbox};
pub(crate) use stored::Stored;

/// Label naming the announcing node.
pub const NODE_LABEL: &str = "ferrolb.io/node";
/// Label naming the Service.
pub const SERVICE_NAME_LABEL: &str = "ferrolb.io/service-name";
/// Label naming the Service's namespace.
pub const SERVICE_NAMESPACE_LABEL: &str = "ferrolb.io/service-namespace";
/// Label naming the BGPPeer of a BGPSessionState.
pub const PEER_LABEL: &str = "ferrolb.io/peer";

/// What this node advertises over BGP: Service (`namespace/name`) → peers.
pub type Announced = BTreeMap<String, BTreeSet<String>>;

/// What this node reports of a layer-2 Service it announces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct L2Report {
    /// The interfaces it answers on (empty: all).
    pub interfaces: BTreeSet<String>,
    /// Every node that announces one of the Service's IPs, this one too: their objects stay.
    pub announcers: BTreeSet<String>,
}

/// A kind of status object: one per (key, node), the key being a Service (`namespace/name`)
/// or a BGPPeer's name.
pub(crate) trait StatusKind:
    Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The status type.
    type Status: Clone + PartialEq + serde::Serialize + Send + Sync;
    /// What the speaker reports per key.
    type Item: Clone + PartialEq + Send + Sync + 'static;
    /// Object names start with this (`l2-`, `bgp-`, `session-`).
    const PREFIX: &'static str;
    /// Whether another node's object (of `owner`) stays beside this node's for a key this
    /// node reports `item` for. With layer 2, only while `owner` announces one of the
    /// Service's IPs too: otherwise it lost them, perhaps by dying, and cannot clean up. With
    /// BGP every eligible node announces, and each looks after its own.
    fn keeps_other(item: &Self::Item, owner: Option<&str>) -> bool;
    /// The status for `key` on `node`.
    fn status_of(key: &str, node: &str, item: &Self::Item) -> Self::Status;
    /// The object's labels (besides the node's).
    fn labels(key: &str) -> BTreeMap<&'static str, String>;
    /// The key an object's labels name.
    fn key_of(labels: &BTreeMap<String, String>) -> String;
    /// The object's current status.
    fn current(&self) -> Option<&Self::Status>;
}

/// `service` (`namespace/name`) split in two.
fn split(service: &str) -> (&str, &str) {
    service.split_once('/').unwrap_or(("", service))
}

/// The node, namespace and name fields every per-(Service, node) status carries.
fn identity(service: &str, node: &str) -> (Option<String>, Option<String>, Option<String>) {
    let (namespace, name) = split(service);
    (
        Some(node.to_owned()),
        Some(namespace.to_owned()),
        Some(name.to_owned()),
    )
}

fn service_labels(service: &str) -> BTreeMap<&'static str, String> {
    let (namespace, name) = split(service);
    BTreeMap::from([
        (SERVICE_NAME_LABEL, name.to_owned()),
        (SERVICE_NAMESPACE_LABEL, namespace.to_owned()),
    ])
}

fn service_of(labels: &BTreeMap<String, String>) -> String {
    format!(
        "{}/{}",
        labels
            .get(SERVICE_NAMESPACE_LABEL)
            .map_or("", String::as_str),
        labels.get(SERVICE_NAME_LABEL).map_or("", String::as_str)
    )
}

impl StatusKind for ServiceL2Status {
    type Status = ServiceL2StatusStatus;
    type Item = L2Report;
    const PREFIX: &'static str = "l2-";
    fn keeps_other(item: &L2Report, owner: Option<&str>) -> bool {
        owner.is_some_and(|owner| item.announcers.contains(owner))
    }
    fn status_of(service: &str, node: &str, report: &L2Report) -> Self::Status {
        let (node, service_namespace, service_name) = identity(service, node);
        ServiceL2StatusStatus {
            node,
            service_name,
            service_namespace,
            interfaces: report
                .interfaces
                .iter()
                .map(|name| InterfaceName { name: name.clone() })
                .collect(),
        }
    }
    fn labels(service: &str) -> BTreeMap<&'static str, String> {
        service_labels(service)
    }
    fn key_of(labels: &BTreeMap<String, String>) -> String {
        service_of(labels)
    }
    fn current(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }
}

impl StatusKind for ServiceBGPStatus {
    type Status = ServiceBGPStatusStatus;
    type Item = BTreeSet<String>;
    const PREFIX: &'static str = "bgp-";
    fn keeps_other(_: &BTreeSet<String>, _: Option<&str>) -> bool {
        true
    }
    fn status_of(service: &str, node: &str, peers: &BTreeSet<String>) -> Self::Status {
        let (node, service_namespace, service_name) = identity(service, node);
        ServiceBGPStatusStatus {
            node,
            service_name,
            service_namespace,
            peers: peers.iter().cloned().collect(),
        }
    }
    fn labels(service: &str) -> BTreeMap<&'static str, String> {
        service_labels(service)
    }
    fn key_of(labels: &BTreeMap<String, String>) -> String {
        service_of(labels)
    }
    fn current(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }
}

impl StatusKind for BGPSessionState {
    type Status = BGPSessionStateStatus;
    type Item = BGPSessionStateStatus;
    const PREFIX: &'static str = "session-";
    fn keeps_other(_: &BGPSessionStateStatus, _: Option<&str>) -> bool {
        true
    }
    fn status_of(peer: &str, node: &str, state: &BGPSessionStateStatus) -> Self::Status {
        BGPSessionStateStatus {
            node: Some(node.to_owned()),
            peer: Some(peer.to_owned()),
            ..state.clone()
        }
    }
    fn labels(peer: &str) -> BTreeMap<&'static str, String> {
        BTreeMap::from([(PEER_LABEL, peer.to_owned())])
    }
    fn key_of(labels: &BTreeMap<String, String>) -> String {
        labels.get(PEER_LABEL).cloned().unwrap_or_default()
    }
    fn current(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }
}

/// The object name of kind `K` for (`service`, `node`): stable, so writes need no lookup.
/// Every writer's pass names every wanted object, so this allocates once.
pub fn object_name_of(prefix: &str, service: &str, node: &str) -> String {
    use std::fmt::Write as _;
    let digest = Sha256::new()
        .chain_update(service)
        .chain_update("@")
        .chain_update(node)
        .finalize();
    let mut name = String::with_capacity(prefix.len() + 20);
    name.push_str(prefix);
    for byte in &digest[..10] {
        // Writing to a String cannot fail.
        let _ = write!(name, "{byte:02x}");
    }
    name
}

/// The ServiceL2Status name for (`service`, `node`).
pub fn object_name(service: &str, node: &str) -> String {
    object_name_of(ServiceL2Status::PREFIX, service, node)
}

/// Writes in flight at once.
const WRITE_CONCURRENCY: usize = 16;
/// Keys per round; between rounds the writer takes the keys marked since.
const ROUND: usize = 128;

/// Keeps the status objects of kind `K` in line with what this node reports (`inbox`), until
/// the decision loop's side is gone. Objects of nodes that no longer exist (`nodes`) are
/// removed by one speaker, the one [`report::writer`] picks for the object's name among the
/// live speakers (`live`, or every Node without a membership): their own speaker is gone with
/// them, and N−1 speakers deleting the same objects would be a burst of (N−1)·S calls.
///
/// A round plans the keys marked since the last one (the newest first) and any left over; the
/// writer looks at every key only when it starts, after a relist of the objects, when a Node
/// goes or comes (`nodes_changed`), and every [`RESYNC`].
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run<K: StatusKind>(
    client: Client,
    namespace: String,
    node: String,
    store: Store<Stored<K>>,
    nodes: Store<Node>,
    live: Option<watch::Receiver<BTreeSet<String>>>,
    inbox: Inbox<K::Item>,
    mut nodes_changed: watch::Receiver<()>,
) {
    let api: Api<K> = Api::namespaced(client, &namespace);
    let manager = format!("ferrolb-speaker/{node}");
    let mut backoff = Backoff::default();
    let mut writer = Writer::<K>::new(node.clone());
    let mut world = World::default();
    let mut everything = true;
    let mut resync_at = Instant::now();
    // Keys whose writes failed, looked at again when `retry_at` comes.
    let mut retry: BTreeSet<String> = BTreeSet::new();
    let mut retry_at: Option<Instant> = None;
    let mut nodes_moved = true;
    loop {
        let Some(marks) = inbox.take() else { return };
        writer.settled(&marks.settled);
        let now = Instant::now();
        let looked = std::mem::take(&mut nodes_moved);
        if looked {
            everything |= world.refresh(&nodes, live.as_ref());
        }
        if std::mem::take(&mut everything) || marks.everything || now >= resync_at {
            if !looked {
                world.refresh(&nodes, live.as_ref());
            }
            let mut keys: BTreeSet<String> = inbox.keys().into_iter().collect();
            keys.extend(store.state().iter().map(|o| o.key.clone()));
            writer.queue.push_back(keys);
            resync_at = now + RESYNC;
        }
        writer.queue.push_front(marks.keys);
        if inbox.is_open() {
            writer.queue.push_back(std::mem::take(&mut writer.deferred));
        }
        if retry_at.is_some_and(|at| now >= at) {
            writer.queue.push_back(std::mem::take(&mut retry));
            retry_at = None;
        }
        let keys = writer.queue.pop(ROUND);
        if keys.is_empty() {
            let until = retry_at.map_or(resync_at, |at| at.min(resync_at));
            tokio::select! {
                () = inbox.marked() => {}
                changed = nodes_changed.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    nodes_moved = true;
                }
                () = tokio::time::sleep_until(until) => {}
            }
            continue;
        }
        let work = writer.plan(&keys, &world.gone(), &inbox, |name| {
            store.get(&ObjectRef::new(name).within(&namespace))
        });
        let mut failed = delete_all::<K>(&api, &work.deletes).await;
        failed
            .extend(write_all::<K>(&api, &manager, &node, &work.writes, &mut writer.written).await);
        if !failed.is_empty() {
            retry.extend(failed);
            retry_at.get_or_insert_with(|| now + backoff.failed());
        } else if retry.is_empty() {
            backoff.landed();
        }
    }
}

/// How long a writer waits to try failed writes again: 1 s doubling to 30 s while the
/// apiserver refuses, back to 1 s once all land.
#[derive(Debug)]
pub(super) struct Backoff {
    retry: Duration,
}

/// A writer looks at every key this often, in case an object was changed by someone else
/// without a change it was woken for.
pub(super) const RESYNC: Duration = Duration::from_secs(300);
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(30);

impl Default for Backoff {
    fn default() -> Self {
        Self { retry: FIRST_RETRY }
    }
}

impl Backoff {
    /// The wait after writes failed.
    pub(super) fn failed(&mut self) -> Duration {
        self.retry = (self.retry * 2).min(MAX_RETRY);
        self.retry
    }

    /// Every write landed.
    pub(super) fn landed(&mut self) {
        self.retry = FIRST_RETRY;
    }
}

/// The keys a writer has still to look at: those marked last first, each once.
#[derive(Debug, Default)]
struct Queue {
    keys: VecDeque<String>,
    queued: HashSet<String>,
}

impl Queue {
    /// Ahead of every key already queued (those already queued keep their place).
    fn push_front(&mut self, keys: impl IntoIterator<Item = String>) {
        for key in keys {
            if self.queued.insert(key.clone()) {
                self.keys.push_front(key);
            }
        }
    }

    /// After every key already queued.
    fn push_back(&mut self, keys: impl IntoIterator<Item = String>) {
        for key in keys {
            if self.queued.insert(key.clone()) {
                self.keys.push_back(key);
            }
        }
    }

    /// Up to `n` keys from the front.
    fn pop(&mut self, n: usize) -> Vec<String> {
        let n = n.min(self.keys.len());
        let keys: Vec<String> = self.keys.drain(..n).collect();
        for key in &keys {
            self.queued.remove(key);
        }
        keys
    }
}

/// The Nodes that exist and the live speakers, as a writer last looked.
#[derive(Debug, Default)]
struct World {
    known: BTreeSet<String>,
    speakers: BTreeSet<String>,
}

impl World {
    /// Looks again; true if the Nodes changed (a gone node's objects may be left to remove).
    /// O(nodes): on a Node's change, and before a look at every key.
    fn refresh(
        &mut self,
        nodes: &Store<Node>,
        live: Option<&watch::Receiver<BTreeSet<String>>>,
    ) -> bool {
        let known: BTreeSet<String> = nodes.state().iter().map(|n| n.name_any()).collect();
        self.speakers = live.map_or_else(|| known.clone(), |l| l.borrow().clone());
        let changed = known != self.known;
        self.known = known;
        changed
    }

    fn gone(&self) -> Gone<'_> {
        Gone {
            known: &self.known,
            speakers: &self.speakers,
        }
    }
}

/// An object to remove: its name and key.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Delete {
    name: String,
    key: String,
}

/// A status to write.
#[derive(Clone, Debug, PartialEq)]
struct Write<S> {
    name: String,
    key: String,
    status: S,
    /// The object exists already: only its status is written.
    exists: bool,
}

/// What one round does.
#[derive(Debug)]
struct Work<S> {
    deletes: Vec<Delete>,
    writes: Vec<Write<S>>,
}

/// What a round knows of other nodes: the Nodes that exist, and the live speakers.
struct Gone<'a> {
    known: &'a BTreeSet<String>,
    speakers: &'a BTreeSet<String>,
}

impl Gone<'_> {
    /// An object of `owner`, named `name`, is left by a node that is gone, and `node` is the
    /// speaker that removes it.
    fn removes(&self, node: &str, owner: &str, name: &str) -> bool {
        let left = !self.known.is_empty() && !self.known.contains(owner);
        left && report::writer(
            name,
            self.speakers
                .iter()
                .map(String::as_str)
                .filter(|s| *s != owner),
        ) == Some(node)
    }
}

/// A writer's memory between rounds.
struct Writer<K: StatusKind> {
    node: String,
    queue: Queue,
    /// What landed, by object name, until the store shows it (the object's own echo comes
    /// first, then its status's).
    written: HashMap<String, K::Status>,
    /// Keys of this node's objects it does not report, left until its report is whole.
    deferred: BTreeSet<String>,
}

impl<K: StatusKind> Writer<K> {
    fn new(node: String) -> Self {
        Self {
            node,
            queue: Queue::default(),
            written: HashMap::new(),
            deferred: BTreeSet::new(),
        }
    }

    /// The store showed these objects' status, or their removal, since: what was written of
    /// them is no longer news.
    fn settled(&mut self, names: &HashSet<String>) {
        for name in names {
            self.written.remove(name);
        }
    }

    /// The deletes and writes that make the objects of `keys` match what the node reports
    /// (`inbox`), the store's objects read by name (`get`): O(keys).
    fn plan(
        &mut self,
        keys: &[String],
        gone: &Gone<'_>,
        inbox: &Inbox<K::Item>,
        get: impl Fn(&str) -> Option<Arc<Stored<K>>>,
    ) -> Work<K::Status> {
        let mut work = Work {
            deletes: Vec::new(),
            writes: Vec::new(),
        };
        for key in keys {
            let want = inbox.wanted(key);
            let name = object_name_of(K::PREFIX, key, &self.node);
            for other in inbox.elsewhere(key) {
                match get(&other).filter(|o| o.key == *key) {
                    Some(object) if self.stale(&object, want.as_ref(), gone) => {
                        work.deletes.push(Delete {
                            name: other,
                            key: key.clone(),
                        });
                    }
                    Some(_) => {}
                    None => inbox.forget(key, &other),
                }
            }
            let mine = get(&name);
            let Some(item) = want else {
                self.written.remove(&name);
                if mine.is_some() && !inbox.is_open() {
                    self.deferred.insert(key.clone());
                } else if mine.is_some() {
                    work.deletes.push(Delete {
                        name,
                        key: key.clone(),
                    });
                }
                continue;
            };
            let stored = mine.as_ref().and_then(|o| o.status.as_ref());
            if self.written.get(&name).is_some_and(|w| Some(w) == stored) {
                self.written.remove(&name);
            }
            let status = K::status_of(key, &self.node, &item);
            let current = self.written.get(&name).or(stored);
            if current == Some(&status) {
                continue;
            }
            work.writes.push(Write {
                exists: mine.is_some() || self.written.contains_key(&name),
                name,
                key: key.clone(),
                status,
            });
        }
        work
    }

    /// Another object of a key than this node's own (`object`) is to go: this node's too (a
    /// second one); another node's that `want` (what this node reports) does not keep; or, if
    /// this speaker is the one picked to, a gone node's.
    fn stale(&self, object: &Stored<K>, want: Option<&K::Item>, gone: &Gone<'_>) -> bool {
        match object.owner.as_deref() {
            Some(owner) if owner == self.node => true,
            owner => {
                want.is_some_and(|item| !K::keeps_other(item, owner))
                    || owner.is_some_and(|n| gone.removes(&self.node, n, &object.name))
            }
        }
    }
}

/// Removes `batch`, [`WRITE_CONCURRENCY`] at a time; the keys of those that did not go (a
/// 404 went).
async fn delete_all<K: StatusKind>(api: &Api<K>, batch: &[Delete]) -> Vec<String> {
    let results: Vec<Option<String>> = stream::iter(batch.to_vec())
        .map(|d| {
            let api = api.clone();
            async move {
                let kind = K::kind(&());
                match api.delete(&d.name, &DeleteParams::default()).await {
                    Ok(_) => {
                        tracing::debug!(name = %d.name, key = %d.key, "removed {kind}");
                        None
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 => None,
                    Err(e) => {
                        tracing::warn!(name = %d.name, about = %d.key, error = %e, "cannot remove {kind}");
                        Some(d.key)
                    }
                }
            }
        })
        .buffer_unordered(WRITE_CONCURRENCY)
        .collect()
        .await;
    results.into_iter().flatten().collect()
}

/// Writes `batch`, [`WRITE_CONCURRENCY`] at a time, recording what landed in `written`; the
/// keys of those that did not land.
async fn write_all<K: StatusKind>(
    api: &Api<K>,
    manager: &str,
    node: &str,
    batch: &[Write<K::Status>],
    written: &mut HashMap<String, K::Status>,
) -> Vec<String> {
    let results: Vec<(Write<K::Status>, bool)> = stream::iter(batch.to_vec())
        .map(|w| {
            let (api, manager, node) = (api.clone(), manager.to_owned(), node.to_owned());
            async move {
                let result = write::<K>(&api, &manager, &w, &node).await;
                if let Err(e) = &result {
                    tracing::warn!(name = %w.name, about = %w.key, error = %e, "cannot write {}", K::kind(&()));
                }
                (w, result.is_ok())
            }
        })
        .buffer_unordered(WRITE_CONCURRENCY)
        .collect()
        .await;
    let mut failed = Vec::new();
    for (w, landed) in results {
        if landed {
            written.insert(w.name, w.status);
        } else {
            failed.push(w.key);
        }
    }
    failed
}

/// Writes one status: the object first if it does not exist yet (or turns out to be gone),
/// then its status subresource.
async fn write<K: StatusKind>(
    api: &Api<K>,
    manager: &str,
    w: &Write<K::Status>,
    node: &str,
) -> Result<(), kube::Error> {
    let kind = K::kind(&());
    let params = PatchParams::apply(manager).force();
    let body = serde_json::json!({
        "apiVersion": ferrolb_api::API_VERSION,
        "kind": kind,
        "status": w.status,
    });
    if w.exists {
        match api
            .patch_status(&w.name, &params, &Patch::Apply(&body))
            .await
        {
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            other => return other.map(drop),
        }
    }
    let mut labels: BTreeMap<&str, String> = K::labels(&w.key);
    labels.insert(NODE_LABEL, node.to_owned());
    let object = serde_json::json!({
        "apiVersion": ferrolb_api::API_VERSION,
        "kind": kind,
        "metadata": {
            "name": w.name,
            "labels": labels,
        },
        "spec": {},
    });
    api.patch(&w.name, &params, &Patch::Apply(&object)).await?;
    api.patch_status(&w.name, &params, &Patch::Apply(&body))
        .await?;
    tracing::debug!(name = %w.name, key = %w.key, "wrote {kind}");
    Ok(())
}

#[cfg(test)]
mod tests;
