//! The decision loop's view of the configuration: the pools it serves (with the last valid
//! version of one turned invalid, and a deleted one kept for its holders during the grace
//! period), and the report of it that users read (object conditions, pool counters, the
//! ConfigurationState).

use std::collections::BTreeSet;
use std::sync::Arc;

use ferrolb_config::{ConfigError, ObjectKind, Pool, PoolName, SecretInfo, Severity, Snapshot};

use super::core::Core;
use super::report::Report;
use crate::metrics::PoolLabels;

/// Copies the objects out of a store's snapshot.
fn owned<K: Clone>(objects: Vec<Arc<K>>) -> Vec<K> {
    objects.into_iter().map(|o| (*o).clone()).collect()
}

impl Core {
    /// The configuration objects, Secrets, Nodes and Namespaces as the config crate takes them.
    fn snapshot(&self) -> Snapshot {
        let s = &self.stores;
        Snapshot {
            namespace: self.namespace.clone(),
            pools: owned(s.pools.state()),
            l2_advertisements: owned(s.l2_advertisements.state()),
            bgp_advertisements: owned(s.bgp_advertisements.state()),
            peers: owned(s.peers.state()),
            bfd_profiles: owned(s.bfd_profiles.state()),
            communities: owned(s.communities.state()),
            secrets: s
                .secrets
                .state()
                .iter()
                .map(|secret| {
                    let password = secret
                        .data
                        .as_ref()
                        .and_then(|d| d.get("password"))
                        .and_then(|b| String::from_utf8(b.0.clone()).ok());
                    let info = SecretInfo {
                        type_: secret.type_.clone().unwrap_or_else(|| "Opaque".into()),
                        password,
                    };
                    (secret.metadata.name.clone().unwrap_or_default(), info)
                })
                .collect(),
            nodes: s
                .nodes
                .state()
                .iter()
                .map(|n| {
                    let name = n.metadata.name.clone().unwrap_or_default();
                    (name.into(), n.metadata.labels.clone().unwrap_or_default())
                })
                .collect(),
            namespaces: s
                .namespaces
                .state()
                .iter()
                .map(|n| {
                    let name = n.metadata.name.clone().unwrap_or_default();
                    (name, n.metadata.labels.clone().unwrap_or_default())
                })
                .collect(),
            pools_in_use: self
                .pools
                .iter()
                .map(|p| (p.name.clone(), p.ranges.clone()))
                .collect(),
        }
    }

    /// Re-reads the configuration. Returns true when the pools changed (every Service must
    /// then be looked at again). Invalid objects are reported and left out; the rest keeps
    /// working.
    pub fn apply_config(&mut self) -> bool {
        let snapshot = self.snapshot();
        // Objects that turned invalid are served in their last valid version, as the speakers
        // serve them (one rule, in the config crate).
        self.outcome = self.serving.update(&snapshot);
        let errors: BTreeSet<ConfigError> = self.outcome.errors.iter().cloned().collect();
        for e in errors.difference(&self.logged.0) {
            tracing::warn!(kind = %e.kind, name = %e.name, field = %e.field, "invalid configuration: {e}; the object's status conditions say the same");
        }
        self.logged.0 = errors;
        self.metrics
            .config_valid
            .set(i64::from(self.outcome.is_valid()));
        let held = self.serving.held_back().clone();
        for (kind, name) in held.difference(&self.logged.1) {
            tracing::warn!(%kind, %name, "invalid now; still serving its last valid version until it is fixed");
        }
        self.logged.1 = held;
        let pools = self.with_grace(&snapshot);
        let closed: BTreeSet<PoolName> = self.absent.keys().cloned().collect();
        let was_closed: BTreeSet<PoolName> = self
            .pools
            .iter()
            .filter(|p| self.allocator.is_closed(&p.name))
            .map(|p| p.name.clone())
            .collect();
        let changed = pools != self.pools || closed != was_closed;
        if changed {
            tracing::info!(
                pools = pools.len(),
                deleted_in_grace = closed.len(),
                "pools changed"
            );
            let released = self.allocator.set_pools(pools.clone());
            self.allocator.set_closed(closed);
            for key in &released {
                tracing::info!(service = %key, "IPs no longer allowed by the pools; re-examining");
            }
            self.pools = pools;
        }
        self.publish_report(&snapshot);
        changed
    }

    /// The served pools (a pool turned invalid in its last valid version: `Serving`), plus —
    /// for a pool that was deleted while Services held its IPs — its last version for the
    /// grace period, in case it comes back (a GitOps replace deletes and re-creates): its
    /// holders keep their IPs and nobody else gets any. A deleted pool that would collide with
    /// a pool served now is dropped at once.
    fn with_grace(&mut self, snapshot: &Snapshot) -> Vec<Pool> {
        let mut pools = self.outcome.config.pools.clone();
        let present: BTreeSet<&str> = snapshot
            .pools
            .iter()
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        self.absent
            .retain(|name, _| !present.contains(name.as_str()));
        let now = tokio::time::Instant::now();
        for old in &self.pools {
            if pools.contains_key(&old.name) || present.contains(old.name.as_str()) {
                continue;
            }
            let collides = pools.values().any(|p| {
                p.ranges
                    .iter()
                    .any(|r| old.ranges.iter().any(|q| q.overlaps(r)))
            });
            let held = self
                .allocator
                .usage(&old.name)
                .is_some_and(|u| u.assigned_v4 + u.assigned_v6 > 0);
            let first = !self.absent.contains_key(&old.name);
            let until = *self
                .absent
                .entry(old.name.clone())
                .or_insert(now + self.pool_grace);
            if !held || collides || now >= until {
                self.absent.remove(&old.name);
                continue;
            }
            if first {
                tracing::warn!(pool = %old.name, grace_seconds = self.pool_grace.as_secs(), "IPAddressPool deleted while Services hold its IPs: they keep them until it is created again or the grace period ends, then get IPs from another pool; re-create the pool to keep them");
            }
            pools.insert(old.name.clone(), old.clone());
        }
        pools.into_values().collect()
    }

    /// When the next deleted pool's grace period ends.
    pub fn next_deadline(&self) -> Option<tokio::time::Instant> {
        self.absent.values().min().copied()
    }

    fn publish_report(&self, snapshot: &Snapshot) {
        let mut report = Report {
            term: self.writer.term(),
            absent_pools: self.absent.keys().map(ToString::to_string).collect(),
            pool_grace: self.pool_grace,
            ..Report::default()
        };
        let names = |kind, metas: Vec<&ferrolb_api::ObjectMeta>, report: &mut Report| {
            for m in metas {
                let name = m.name.clone().unwrap_or_default();
                let mut errors: Vec<ConfigError> =
                    self.outcome.errors_for(kind, &name).cloned().collect();
                if self.serving.is_held_back(kind, &name) {
                    errors.push(ConfigError {
                        kind,
                        name: name.clone(),
                        field: "spec".into(),
                        reason: "still serving with its last valid version until this is fixed"
                            .into(),
                        severity: Severity::Warning,
                    });
                }
                report.objects.insert((kind, name), errors);
            }
        };
        names(
            ObjectKind::IPAddressPool,
            snapshot.pools.iter().map(|o| &o.metadata).collect(),
            &mut report,
        );
        names(
            ObjectKind::L2Advertisement,
            snapshot
                .l2_advertisements
                .iter()
                .map(|o| &o.metadata)
                .collect(),
            &mut report,
        );
        names(
            ObjectKind::BGPAdvertisement,
            snapshot
                .bgp_advertisements
                .iter()
                .map(|o| &o.metadata)
                .collect(),
            &mut report,
        );
        names(
            ObjectKind::BGPPeer,
            snapshot.peers.iter().map(|o| &o.metadata).collect(),
            &mut report,
        );
        names(
            ObjectKind::BFDProfile,
            snapshot.bfd_profiles.iter().map(|o| &o.metadata).collect(),
            &mut report,
        );
        names(
            ObjectKind::Community,
            snapshot.communities.iter().map(|o| &o.metadata).collect(),
            &mut report,
        );
        self.fill_usage(&mut report);
        self.report.send_replace(Arc::new(report));
    }

    fn fill_usage(&self, report: &mut Report) {
        for pool in &self.pools {
            let Some(usage) = self.allocator.usage(&pool.name) else {
                continue;
            };
            report.usage.insert(pool.name.to_string(), usage);
            for (family, assigned, available) in [
                ("ipv4", usage.assigned_v4, usage.available_v4),
                ("ipv6", usage.assigned_v6, usage.available_v6),
            ] {
                let labels = PoolLabels {
                    pool: pool.name.to_string(),
                    family: family.into(),
                };
                self.metrics
                    .pool_assigned
                    .get_or_create(&labels)
                    .set(i64::try_from(assigned).unwrap_or(i64::MAX));
                #[allow(clippy::cast_precision_loss)]
                self.metrics
                    .pool_capacity
                    .get_or_create(&labels)
                    .set((assigned + available) as f64);
            }
        }
    }

    /// Publishes pool usage after allocations changed.
    pub fn refresh_usage(&self) {
        let mut report = (**self.report.borrow()).clone();
        self.fill_usage(&mut report);
        self.report.send_if_modified(|current| {
            if **current == report {
                return false;
            }
            *current = Arc::new(report);
            true
        });
    }
}
