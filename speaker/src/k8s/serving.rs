//! The configuration the speaker serves: parsed from its caches through the same
//! last-known-good as the controller's ([`ferrolb_config::Serving`]).

use std::sync::Arc;

use ferrolb_config::{SecretInfo, Snapshot};

use super::Speaker;

impl Speaker {
    /// Parses the configuration again, keeping the last valid version of what turned invalid.
    pub(super) fn refresh_config(&mut self) {
        let before = self.serving.held_back().clone();
        let outcome = self.serving.update(&self.snapshot());
        // Pools and advertisements may move any IP.
        self.decisions.world_changed();
        for (kind, name) in self.serving.held_back().difference(&before) {
            let why = outcome
                .errors_for(*kind, name)
                .map(|e| format!("{}: {}", e.field, e.reason))
                .collect::<Vec<_>>()
                .join("; ");
            tracing::warn!(%kind, %name, reason = %why, "invalid now; still serving its last valid version until it is fixed");
        }
        for (kind, name) in before.difference(self.serving.held_back()) {
            tracing::info!(%kind, %name, "no longer serving a last valid version (fixed or deleted)");
        }
    }

    /// The configuration objects the plans read. Node labels are left out: the plans match
    /// selectors against this node's labels themselves.
    pub(super) fn snapshot(&self) -> Snapshot {
        Snapshot {
            namespace: self.settings.namespace.clone(),
            pools: owned(self.stores.pools.state()),
            l2_advertisements: owned(self.stores.l2_advertisements.state()),
            bgp_advertisements: owned(self.stores.bgp_advertisements.state()),
            peers: owned(self.stores.peers.state()),
            bfd_profiles: owned(self.stores.bfd_profiles.state()),
            communities: owned(self.stores.communities.state()),
            secrets: self
                .stores
                .secrets
                .as_ref()
                .map(kube::runtime::reflector::Store::state)
                .unwrap_or_default()
                .iter()
                .filter_map(|s| Some((s.metadata.name.clone()?, secret_info(s))))
                .collect(),
            ..Snapshot::default()
        }
    }
}

/// What the configuration needs of a Secret (BGP passwords).
fn secret_info(secret: &k8s_openapi::api::core::v1::Secret) -> SecretInfo {
    SecretInfo {
        type_: secret.type_.clone().unwrap_or_default(),
        password: secret
            .data
            .as_ref()
            .and_then(|d| d.get("password"))
            .and_then(|b| String::from_utf8(b.0.clone()).ok()),
    }
}

/// Copies the objects out of a store's snapshot.
fn owned<K: Clone>(objects: Vec<Arc<K>>) -> Vec<K> {
    objects.into_iter().map(|o| (*o).clone()).collect()
}
