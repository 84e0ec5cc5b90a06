//! The status objects a speaker writes: `ServiceL2Status` and `ServiceBGPStatus`, one per
//! (Service, announcing node), and `BGPSessionState`, one per (node, BGPPeer). Level-triggered:
//! the writer is given everything this node reports, keyed, and makes the objects match,
//! retrying while the apiserver is away. The announcers never wait on it.
//!
//! At scale (thousands of Services reported at once, as when a speaker starts) the writes go
//! out [`WRITE_CONCURRENCY`] at a time, in rounds of [`ROUND`]; between rounds the writer takes
//! what the node reports now, and the newest keys go first, so a Service announced while a
//! backlog is written is reported next rather than after the backlog.

use std::collections::{BTreeMap, BTreeSet, HashMap};
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
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::report;

mod stored;
pub(crate) use stored::Stored;

/// Label naming the announcing node.
pub const NODE_LABEL: &str = "ferrolb.io/node";
/// Label naming the Service.
pub const SERVICE_NAME_LABEL: &str = "ferrolb.io/service-name";
/// Label naming the Service's namespace.
pub const SERVICE_NAMESPACE_LABEL: &str = "ferrolb.io/service-namespace";
/// Label naming the BGPPeer of a BGPSessionState.
pub const PEER_LABEL: &str = "ferrolb.io/peer";

/// What this node announces: Service (`namespace/name`) → interfaces (layer 2; empty: all) or
/// peers (BGP).
pub type Announced = BTreeMap<String, BTreeSet<String>>;

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
    /// One node at a time announces a Service (layer 2): another node's object for a Service
    /// this node announces is stale (that node lost it, perhaps by dying, and cannot clean up).
    /// With BGP every eligible node announces, so each keeps only its own.
    const EXCLUSIVE: bool;
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
    type Item = BTreeSet<String>;
    const PREFIX: &'static str = "l2-";
    const EXCLUSIVE: bool = true;
    fn status_of(service: &str, node: &str, interfaces: &BTreeSet<String>) -> Self::Status {
        let (node, service_namespace, service_name) = identity(service, node);
        ServiceL2StatusStatus {
            node,
            service_name,
            service_namespace,
            interfaces: interfaces
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
    const EXCLUSIVE: bool = false;
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
    const EXCLUSIVE: bool = false;
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

/// What a node reports, per key.
pub(crate) type Reported<K> = BTreeMap<String, <K as StatusKind>::Item>;

/// Writes in flight at once.
const WRITE_CONCURRENCY: usize = 16;
/// Writes per round; between rounds the writer looks at what the node reports now.
const ROUND: usize = 128;

/// Keeps the status objects of kind `K` in line with `announced`, until `announced` closes.
/// Objects of nodes that no longer exist (`nodes`) are removed by one speaker, the one
/// [`report::writer`] picks for the object's name among the live speakers (`live`, or every
/// Node without a membership): their own speaker is gone with them, and N−1 speakers deleting
/// the same objects would be a burst of (N−1)·S calls.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run<K: StatusKind>(
    client: Client,
    namespace: String,
    node: String,
    store: Store<Stored<K>>,
    nodes: Store<Node>,
    live: Option<watch::Receiver<BTreeSet<String>>>,
    mut announced: watch::Receiver<Reported<K>>,
    mut statuses_changed: watch::Receiver<()>,
) {
    let api: Api<K> = Api::namespaced(client, &namespace);
    let manager = format!("ferrolb-speaker/{node}");
    let mut pause = PassPause::default();
    // What this pass wrote, by object name, until the store shows it; cleared when a pass
    // ends, so the store is the truth again from the next one.
    let mut written: HashMap<String, K::Status> = HashMap::new();
    let mut order = Order::default();
    loop {
        let want = announced.borrow_and_update().clone();
        order.observe(&want);
        let known: BTreeSet<String> = nodes.state().iter().map(|n| n.name_any()).collect();
        let speakers = live
            .as_ref()
            .map_or_else(|| known.clone(), |l| l.borrow().clone());
        let gone = Gone {
            known: &known,
            speakers: &speakers,
        };
        let work = plan::<K>(&node, &gone, &store.state(), &want, &written, &order);
        let mut ok = true;
        let mut interrupted = false;
        for batch in work.deletes.chunks(ROUND) {
            ok &= delete_all::<K>(&api, batch).await;
        }
        for (i, batch) in work.writes.chunks(ROUND).enumerate() {
            // At least one round per pass, so a stream of changes cannot starve the writes.
            if i > 0 && announced.has_changed().unwrap_or(false) {
                interrupted = true;
                break;
            }
            ok &= write_all::<K>(&api, &manager, &node, batch, &mut written).await;
        }
        if interrupted {
            continue;
        }
        written.clear();
        let wait = pause.after(ok);
        tokio::select! {
            changed = announced.changed() => if changed.is_err() { return },
            changed = statuses_changed.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// How long a writer rests after a pass: until the next resync ([`RESYNC`]) when every write
/// landed, else 0.5 s doubling to 30 s while the apiserver refuses.
#[derive(Debug)]
pub(super) struct PassPause {
    retry: Duration,
}

/// A writer that wrote everything looks again this often, in case an object was changed by
/// someone else without a change it was woken for.
const RESYNC: Duration = Duration::from_secs(300);
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(30);

impl Default for PassPause {
    fn default() -> Self {
        Self { retry: FIRST_RETRY }
    }
}

impl PassPause {
    /// The rest after a pass whose writes all landed (`ok`) or not.
    pub(super) fn after(&mut self, ok: bool) -> Duration {
        if ok {
            self.retry = FIRST_RETRY;
            RESYNC
        } else {
            self.retry = (self.retry * 2).min(MAX_RETRY);
            self.retry
        }
    }
}

/// When each reported key was first seen: the newest are written first.
#[derive(Debug, Default)]
pub(super) struct Order {
    clock: u64,
    first_seen: HashMap<String, u64>,
}

impl Order {
    pub(super) fn observe<T>(&mut self, want: &BTreeMap<String, T>) {
        self.first_seen.retain(|key, _| want.contains_key(key));
        for key in want.keys() {
            if !self.first_seen.contains_key(key) {
                self.clock += 1;
                self.first_seen.insert(key.clone(), self.clock);
            }
        }
    }

    pub(super) fn of(&self, key: &str) -> u64 {
        self.first_seen.get(key).copied().unwrap_or(0)
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

/// What one pass does.
#[derive(Debug)]
struct Work<S> {
    deletes: Vec<Delete>,
    /// Newest keys first.
    writes: Vec<Write<S>>,
}

/// What a pass knows of other nodes: the Nodes that exist, and the live speakers.
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

/// The deletes and writes that make `existing` (plus what this pass already `written`) match
/// `want`: O(objects + keys).
fn plan<K: StatusKind>(
    node: &str,
    gone: &Gone<'_>,
    existing: &[Arc<Stored<K>>],
    want: &Reported<K>,
    written: &HashMap<String, K::Status>,
    order: &Order,
) -> Work<K::Status> {
    let mut deletes = Vec::new();
    let mut by_name: HashMap<String, &Stored<K>> = HashMap::with_capacity(existing.len());
    for object in existing {
        let key = object.key.clone();
        let owner = object.owner.as_deref();
        let mine = owner == Some(node);
        // Ours and no longer announced; (layer 2) another node's for a Service we now
        // announce; or, if this speaker is the one picked to, a node's that is gone.
        let stale = if mine {
            !want.contains_key(&key)
        } else {
            (K::EXCLUSIVE && want.contains_key(&key))
                || owner.is_some_and(|n| gone.removes(node, n, &object.name))
        };
        if stale {
            deletes.push(Delete {
                name: object.name.clone(),
                key,
            });
        } else if mine {
            by_name.insert(object.name.clone(), &**object);
        }
    }
    let mut writes = Vec::new();
    for (key, item) in want {
        let name = object_name_of(K::PREFIX, key, node);
        let status = K::status_of(key, node, item);
        let stored = by_name.get(&name);
        let current = written
            .get(&name)
            .or_else(|| stored.and_then(|o| o.status.as_ref()));
        if current == Some(&status) {
            continue;
        }
        writes.push(Write {
            exists: stored.is_some() || written.contains_key(&name),
            name,
            key: key.clone(),
            status,
        });
    }
    writes.sort_by_key(|w| std::cmp::Reverse(order.of(&w.key)));
    Work { deletes, writes }
}

/// Removes `batch`, [`WRITE_CONCURRENCY`] at a time; true if all went (or were gone).
async fn delete_all<K: StatusKind>(api: &Api<K>, batch: &[Delete]) -> bool {
    let results: Vec<bool> = stream::iter(batch.to_vec())
        .map(|d| {
            let api = api.clone();
            async move {
                let kind = K::kind(&());
                match api.delete(&d.name, &DeleteParams::default()).await {
                    Ok(_) => {
                        tracing::debug!(name = %d.name, key = %d.key, "removed {kind}");
                        true
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 => true,
                    Err(e) => {
                        tracing::warn!(name = %d.name, about = %d.key, error = %e, "cannot remove {kind}");
                        false
                    }
                }
            }
        })
        .buffer_unordered(WRITE_CONCURRENCY)
        .collect()
        .await;
    results.into_iter().all(|ok| ok)
}

/// Writes `batch`, [`WRITE_CONCURRENCY`] at a time, recording what landed in `written`; true
/// if all did.
async fn write_all<K: StatusKind>(
    api: &Api<K>,
    manager: &str,
    node: &str,
    batch: &[Write<K::Status>],
    written: &mut HashMap<String, K::Status>,
) -> bool {
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
    let mut ok = true;
    for (w, landed) in results {
        ok &= landed;
        if landed {
            written.insert(w.name, w.status);
        }
    }
    ok
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
