//! What a status writer keeps of each status object of its kind: the name, the node and key
//! its labels name, and the status — not the typed object. Layer 2 keeps one per Service, so
//! at scale this is a share of the speaker's memory like the Services themselves.

use kube::ResourceExt;

use super::{NODE_LABEL, StatusKind};

/// A status object of kind `K`, as its writer reads it.
pub(crate) struct Stored<K: StatusKind> {
    pub(crate) namespace: String,
    pub(crate) name: String,
    /// The node it reports for (its node label).
    pub(crate) owner: Option<String>,
    /// The key (`namespace/name` of the Service, or the peer) its labels name.
    pub(crate) key: String,
    pub(crate) status: Option<K::Status>,
}

impl<K: StatusKind> Stored<K> {
    /// What the writer reads of `object`.
    pub(crate) fn of(object: &K) -> Self {
        let labels = object.labels();
        Self {
            namespace: ResourceExt::namespace(object).unwrap_or_default(),
            name: object.name_any(),
            owner: labels.get(NODE_LABEL).cloned(),
            key: K::key_of(labels),
            status: object.current().cloned(),
        }
    }
}

impl<K: StatusKind> Clone for Stored<K> {
    fn clone(&self) -> Self {
        Self {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            owner: self.owner.clone(),
            key: self.key.clone(),
            status: self.status.clone(),
        }
    }
}

crate::k8s::slim::slim_lookup!([K: StatusKind] Stored<K>, K);
