//! The status objects a speaker writes: `ServiceL2Status` and `ServiceBGPStatus`, one per
//! (Service, announcing node), and `BGPSessionState`, one per (node, BGPPeer). Level-triggered:
//! the writer is given everything this node reports, keyed, and makes the objects match,
//! retrying while the apiserver is away. The announcers never wait on it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_api::{
    BGPSessionState, BGPSessionStateStatus, InterfaceName, ServiceBGPStatus,
    ServiceBGPStatusStatus, ServiceL2Status, ServiceL2StatusStatus,
};
use k8s_openapi::api::core::v1::Node;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

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
    type Status: PartialEq + serde::Serialize;
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
pub fn object_name_of(prefix: &str, service: &str, node: &str) -> String {
    let digest = Sha256::digest(format!("{service}@{node}").as_bytes());
    let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// The ServiceL2Status name for (`service`, `node`).
pub fn object_name(service: &str, node: &str) -> String {
    object_name_of(ServiceL2Status::PREFIX, service, node)
}

/// What a node reports, per key.
pub(crate) type Reported<K> = BTreeMap<String, <K as StatusKind>::Item>;

/// Keeps the status objects of kind `K` in line with `announced`, until `announced` closes.
/// Objects of nodes that no longer exist (`nodes`) are removed by whichever speaker sees them
/// first: their own speaker is gone with them.
pub(crate) async fn run<K: StatusKind>(
    client: Client,
    namespace: String,
    node: String,
    store: Store<K>,
    nodes: Store<Node>,
    mut announced: watch::Receiver<Reported<K>>,
    mut statuses_changed: watch::Receiver<()>,
) {
    let api: Api<K> = Api::namespaced(client, &namespace);
    let manager = format!("ferrolb-speaker/{node}");
    let mut retry = Duration::from_millis(500);
    loop {
        let want = announced.borrow_and_update().clone();
        let known: BTreeSet<String> = nodes.state().iter().map(|n| n.name_any()).collect();
        let ok = reconcile(&api, &manager, &node, &known, &store.state(), &want).await;
        let wait = if ok {
            retry = Duration::from_millis(500);
            Duration::from_secs(300)
        } else {
            retry = (retry * 2).min(Duration::from_secs(30));
            retry
        };
        tokio::select! {
            changed = announced.changed() => if changed.is_err() { return },
            changed = statuses_changed.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// One pass; true when everything matched or was written.
async fn reconcile<K: StatusKind>(
    api: &Api<K>,
    manager: &str,
    node: &str,
    known_nodes: &BTreeSet<String>,
    existing: &[Arc<K>],
    want: &Reported<K>,
) -> bool {
    let kind = K::kind(&());
    let mut ok = true;
    for object in existing {
        let labels = object.labels();
        let service = K::key_of(labels);
        let owner = labels.get(NODE_LABEL).map(String::as_str);
        let mine = owner == Some(node);
        // Ours and no longer announced; (layer 2) another node's for a Service we now
        // announce; or a node's that is gone from the cluster.
        let stale = if mine {
            !want.contains_key(&service)
        } else {
            (K::EXCLUSIVE && want.contains_key(&service))
                || owner.is_some_and(|n| !known_nodes.is_empty() && !known_nodes.contains(n))
        };
        if stale {
            let name = object.name_any();
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {
                    tracing::debug!(name = %name, service = %service, "removed {kind}")
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    tracing::warn!(name = %name, error = %e, "cannot remove {kind}");
                    ok = false;
                }
            }
        }
    }
    for (service, items) in want {
        let name = object_name_of(K::PREFIX, service, node);
        let status = K::status_of(service, node, items);
        let current = existing
            .iter()
            .find(|o| o.name_any() == name)
            .and_then(|o| o.current());
        if current == Some(&status) {
            continue;
        }
        if let Err(e) = write(api, manager, &name, service, node, &status).await {
            tracing::warn!(service = %service, error = %e, "cannot write {kind}");
            ok = false;
        }
    }
    ok
}

async fn write<K: StatusKind>(
    api: &Api<K>,
    manager: &str,
    name: &str,
    service: &str,
    node: &str,
    status: &K::Status,
) -> Result<(), kube::Error> {
    let kind = K::kind(&());
    let mut labels: BTreeMap<&str, String> = K::labels(service);
    labels.insert(NODE_LABEL, node.to_owned());
    let params = PatchParams::apply(manager).force();
    let object = serde_json::json!({
        "apiVersion": ferrolb_api::API_VERSION,
        "kind": kind,
        "metadata": {
            "name": name,
            "labels": labels,
        },
        "spec": {},
    });
    api.patch(name, &params, &Patch::Apply(&object)).await?;
    let body = serde_json::json!({
        "apiVersion": ferrolb_api::API_VERSION,
        "kind": kind,
        "status": status,
    });
    api.patch_status(name, &params, &Patch::Apply(&body))
        .await?;
    tracing::debug!(name = %name, service = %service, "wrote {kind}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_stable_valid_and_distinct_per_node() {
        let a = object_name("web/http", "node-1");
        assert_eq!(a, object_name("web/http", "node-1"));
        assert_ne!(a, object_name("web/http", "node-2"));
        assert_ne!(a, object_name("web/https", "node-1"));
        assert!(a.len() <= 63 && a.starts_with("l2-"));
        assert!(a[3..].chars().all(|c| c.is_ascii_hexdigit()));
        let b = object_name_of(ServiceBGPStatus::PREFIX, "web/http", "node-1");
        assert!(b.starts_with("bgp-") && b[4..] == a[3..]);
    }
}
