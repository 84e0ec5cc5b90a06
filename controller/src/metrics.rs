//! The controller's metrics. One registry, made in `main` and passed down; labels are bounded
//! (pool, family, result), never per IP. The endpoints serving them are `ferrolb_runtime::ops`.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of per-pool gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// Pool name.
    pub pool: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
}

/// Labels of counters by outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// Outcome.
    pub result: String,
}

impl ResultLabels {
    /// Labels for `result`.
    pub fn of(result: &str) -> Self {
        Self {
            result: result.to_owned(),
        }
    }
}

/// Every metric the controller exports.
#[derive(Debug)]
pub struct Metrics {
    /// Addresses per pool and family (saturating at 2^53 for huge IPv6 pools).
    pub pool_capacity: Family<PoolLabels, Gauge<f64, AtomicU64>>,
    /// Addresses in use per pool and family.
    pub pool_assigned: Family<PoolLabels, Gauge>,
    /// Allocation decisions by result (allocated, failed, released).
    pub allocations: Family<ResultLabels, Counter>,
    /// Service reconciles by result.
    pub reconciles: Family<ResultLabels, Counter>,
    /// Reconcile duration by result.
    pub reconcile_duration: Family<ResultLabels, Histogram>,
    /// Status writes by result: ok, error (tried again), gone (the Service was deleted),
    /// conflict (the Service changed since the decision, which is made again), dropped (of a
    /// term of leadership that is over: not sent, or not tried again).
    pub status_writes: Family<ResultLabels, Counter>,
    /// 1 while this replica holds the leader lease.
    pub leader: Gauge,
    /// 1 while the configuration has no invalid object.
    pub config_valid: Gauge,
    /// Changes seen by the watches that the decision loop has not taken yet.
    pub queued_triggers: Gauge,
    /// Services of ours waiting for IPs, by why (an allocation error's kind).
    pub services_pending: Family<ReasonLabels, Gauge>,
}

/// Labels of the pending Services gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why they wait (`PoolExhausted`, `UnknownPool`, …).
    pub reason: String,
}

impl Metrics {
    /// Creates the metrics and registers them under `ferrolb_controller_`.
    pub fn new(registry: &mut Registry) -> Arc<Self> {
        let m = Self {
            pool_capacity: Family::default(),
            pool_assigned: Family::default(),
            allocations: Family::default(),
            reconciles: Family::default(),
            reconcile_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_05, 4.0, 10))
            }),
            status_writes: Family::default(),
            leader: Gauge::default(),
            config_valid: Gauge::default(),
            queued_triggers: Gauge::default(),
            services_pending: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("ferrolb_controller");
        r.register(
            "pool_capacity_addresses",
            "Addresses in the pool",
            m.pool_capacity.clone(),
        );
        r.register(
            "pool_assigned_addresses",
            "Addresses of the pool in use",
            m.pool_assigned.clone(),
        );
        r.register("allocations", "Allocation decisions", m.allocations.clone());
        r.register("reconciles", "Service reconciles", m.reconciles.clone());
        r.register(
            "reconcile_duration_seconds",
            "Service reconcile duration",
            m.reconcile_duration.clone(),
        );
        r.register(
            "status_writes",
            "Service status writes",
            m.status_writes.clone(),
        );
        r.register(
            "leader",
            "1 while this replica is the leader",
            m.leader.clone(),
        );
        r.register(
            "config_valid",
            "1 while every configuration object is valid",
            m.config_valid.clone(),
        );
        r.register(
            "services_pending",
            "Services waiting for IPs, by why",
            m.services_pending.clone(),
        );
        r.register(
            "queued_triggers",
            "Changes seen by the watches that the decision loop has not taken yet",
            m.queued_triggers.clone(),
        );
        Arc::new(m)
    }
}

pub use ferrolb_runtime::ops::{Health, serve};
