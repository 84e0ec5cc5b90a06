//! The decision loop: one task owns the allocator, takes triggers from the watches, and turns
//! each Service into the status it should have. Decisions are in memory and immediate; status
//! writes, Events and configuration reports go to their own tasks.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_api::annotations;
use ferrolb_config::{Outcome, Pool, PoolName, Serving};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::events::EventSink;
use super::pending::Pending;
use super::report::Report;
use super::watch::Stores;
use super::writer::{StatusWrite, StatusWriter, body};
use crate::allocator::{AllocError, Allocator, Assignment, Note, ServiceKey};
use crate::metrics::{Metrics, ReasonLabels, ResultLabels};
use crate::service::{self, BadRequest};

/// The type of the condition the controller keeps on each Service it handles.
pub const CONDITION_TYPE: &str = "ferrolb.io/IPAssigned";

pub(crate) struct Core {
    pub namespace: String,
    pub lb_class: Option<String>,
    pub stores: Stores,
    pub allocator: Allocator,
    pub pools: Vec<Pool>,
    /// Services of ours that want IPs and have none, with why.
    pub pending: Pending,
    pub writer: StatusWriter,
    pub events: EventSink,
    pub metrics: Arc<Metrics>,
    pub report: watch::Sender<Arc<Report>>,
    pub outcome: Outcome,
    /// The configuration served: objects invalid now are kept in their last valid version.
    pub serving: Serving,
    /// How long the holders of a deleted pool keep its IPs.
    pub pool_grace: Duration,
    /// Deleted pools whose holders keep their IPs, until when.
    pub absent: BTreeMap<PoolName, tokio::time::Instant>,
    /// The Warning last told about each Service that has no IPs, so one that stays in the
    /// same state is not warned again at every reconcile (every release while a pool is
    /// exhausted re-examines every pending Service).
    pub warned: BTreeMap<ServiceKey, (&'static str, String)>,
    /// The configuration problems and held-back objects last logged: every Node, Namespace
    /// or Secret event re-reads the configuration, and only what is new is logged again.
    pub logged: (
        BTreeSet<ferrolb_config::ConfigError>,
        BTreeSet<(ferrolb_config::ObjectKind, String)>,
    ),
}

/// What a Service's status should say (compared with what it says, to skip needless writes).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Desired {
    ips: Vec<IpAddr>,
    pool: Option<String>,
    /// (status, reason, message) of our condition; `None`: no condition (not our Service).
    condition: Option<(&'static str, String, String)>,
}

impl Core {
    /// Starts a term of leadership from `services`, read afresh: the writer learns which IPs
    /// each of our Services shows before anything is decided, so an IP a Service may not keep
    /// reaches another only once a write has taken it away from the first.
    pub fn begin_term(&mut self, services: Vec<Arc<Service>>) {
        let shown = services
            .iter()
            .filter(|svc| service::is_ours(svc, self.lb_class.as_deref()))
            .map(|svc| (service::key_of(svc), service::ingress_ips(svc)))
            .filter(|(_, ips)| !ips.is_empty())
            .collect();
        self.writer.new_term(shown);
        self.rebuild(services, true);
    }

    /// Looks at every Service: those that hold IPs first (most IPs first), so that after a
    /// restart or a pool change they keep them before pending Services may take them.
    pub fn reprocess_all(&mut self, services: Vec<Arc<Service>>) {
        self.rebuild(services, false);
    }

    /// [`Core::reprocess_all`]; at the start of a term (`resume`), each pool's next search then
    /// starts where its status says the last leader's would have, so a just-released address
    /// is not the first handed out after a restart or a leader change.
    fn rebuild(&mut self, services: Vec<Arc<Service>>, resume: bool) {
        let services = crate::replay::rebuild_order(services);
        let present: BTreeSet<ServiceKey> = services.iter().map(|s| service::key_of(s)).collect();
        let gone: Vec<ServiceKey> = self
            .allocator
            .assignments()
            .map(|(k, _)| k.clone())
            .filter(|k| !present.contains(k))
            .collect();
        for key in gone {
            self.reconcile(&key, None);
        }
        self.pending.retain(|k| present.contains(k));
        self.export_pending();
        // First every Service that may keep the IPs its status shows registers them; only
        // then may anyone move or get new IPs (which could otherwise be a later holder's).
        for svc in &services {
            let key = service::key_of(svc);
            if self.allocator.assignment(&key).is_some()
                || !service::is_ours(svc, self.lb_class.as_deref())
            {
                continue;
            }
            if let Ok((request, _)) = service::request_of(svc) {
                self.allocator.keep(&request, &service::ingress_ips(svc));
            }
        }
        if resume {
            self.resume_searches();
        }
        for svc in services {
            self.reconcile(&service::key_of(&svc), Some(&svc));
        }
        self.refresh_usage();
    }

    /// Points each pool's next search where its status says (`nextIPv4`, `nextIPv6`).
    fn resume_searches(&mut self) {
        for pool in self.stores.pools.state() {
            let Some(name) = pool.metadata.name.clone() else {
                continue;
            };
            let Some(status) = pool.status.as_ref() else {
                continue;
            };
            for next in [&status.next_ipv4, &status.next_ipv6].into_iter().flatten() {
                match next.parse::<IpAddr>() {
                    Ok(ip) => self.allocator.resume_at(&PoolName::from(name.clone()), ip),
                    Err(_) => {
                        tracing::warn!(pool = %name, next = %next, "ignoring an unreadable next address in the pool's status")
                    }
                }
            }
        }
    }

    /// Re-examines the Services waiting for IPs (after something was released).
    pub fn reprocess_pending(&mut self) {
        let waiting: Vec<ServiceKey> = self.pending.keys().cloned().collect();
        for key in waiting {
            self.reconcile_key(&key);
        }
    }

    /// Reconciles one Service from the cache.
    pub fn reconcile_key(&mut self, key: &ServiceKey) -> bool {
        let svc = self
            .stores
            .services
            .get(&ObjectRef::new(&key.name).within(&key.namespace));
        self.reconcile(key, svc.as_deref())
    }

    /// Brings one Service to the status it should have. Returns true if IPs were released
    /// (pending Services may now fit).
    pub fn reconcile(&mut self, key: &ServiceKey, svc: Option<&Service>) -> bool {
        let started = Instant::now();
        let (result, released) = self.reconcile_inner(key, svc);
        self.export_pending();
        self.metrics
            .reconciles
            .get_or_create(&ResultLabels::of(result))
            .inc();
        self.metrics
            .reconcile_duration
            .get_or_create(&ResultLabels::of(result))
            .observe(started.elapsed().as_secs_f64());
        if released {
            self.metrics
                .allocations
                .get_or_create(&ResultLabels::of("released"))
                .inc();
        }
        released
    }

    /// Sets the pending Services gauge, per reason, when the counts changed.
    fn export_pending(&mut self) {
        let Some(counts) = self.pending.take_counts() else {
            return;
        };
        for (reason, n) in counts {
            self.metrics
                .services_pending
                .get_or_create(&ReasonLabels {
                    reason: reason.to_owned(),
                })
                .set(n);
        }
    }

    fn reconcile_inner(&mut self, key: &ServiceKey, svc: Option<&Service>) -> (&'static str, bool) {
        let lb_class = self.lb_class.clone();
        let Some(svc) = svc else {
            // Deleted: its IPs are free again.
            self.pending.remove(key);
            self.warned.remove(key);
            self.writer.gone(key.clone());
            let released = self.allocator.release(key);
            if released {
                tracing::info!(service = %key, "service deleted; IPs released");
            }
            return ("deleted", released);
        };
        if !service::is_ours(svc, lb_class.as_deref()) {
            self.pending.remove(key);
            self.warned.remove(key);
            let released = self.allocator.release(key);
            // Another class's Service is that controller's, even if it shows our annotation and
            // condition: a ferrolb instance serving that class wrote them under the same field
            // manager, and clearing them would fight it. (loadBalancerClass is immutable on a
            // LoadBalancer, so a Service of ours only becomes another class's through another
            // type, where it was cleared.)
            if service::belongs_to_another_class(svc, lb_class.as_deref()) {
                return ("ignored", released);
            }
            // Clear what we wrote (SSA removes only our fields).
            let wrote_something =
                service::allocated_pool(svc).is_some() || our_condition(svc).is_some();
            if wrote_something || released {
                self.events.emit(
                    svc,
                    EventType::Normal,
                    "ClearAssignment",
                    "the Service is no longer of type LoadBalancer; its IPs were released".into(),
                );
                self.writer.write(
                    StatusWrite::new(
                        key.clone(),
                        body(key, &[], None, None),
                        Vec::new(),
                        service::ingress_ips(svc),
                    )
                    .with_version(svc.metadata.resource_version.clone()),
                );
            }
            return ("ignored", released);
        }

        let (request, deprecated) = match service::request_of(svc) {
            Ok(r) => r,
            Err(BadRequest { reason, message }) => {
                self.pending.remove(key);
                let released = self.allocator.release(key);
                self.warn(svc, key, reason, message.clone());
                self.write_if_changed(
                    key,
                    svc,
                    Desired {
                        ips: vec![],
                        pool: None,
                        condition: Some(("False", reason.to_owned(), message)),
                    },
                );
                return ("invalid", released);
            }
        };
        // Our own record is the truth once we have one; the status counts only for Services we
        // do not know yet (after a restart or a leader change).
        let current = self
            .allocator
            .assignment(key)
            .map(|a| a.ips.clone())
            .unwrap_or_else(|| service::ingress_ips(svc));
        let converged = self.allocator.converge(&request, &current);

        for note in &converged.notes {
            match note {
                Note::Allocated {
                    assignment,
                    additional,
                } => {
                    self.metrics
                        .allocations
                        .get_or_create(&ResultLabels::of("allocated"))
                        .inc();
                    let what = if *additional {
                        "Assigned additional IP"
                    } else {
                        "Assigned IP"
                    };
                    tracing::info!(service = %key, pool = %assignment.pool, "{what} {}", describe(assignment));
                    self.events.emit(
                        svc,
                        EventType::Normal,
                        "IPAllocated",
                        format!("{what} {}", describe(assignment)),
                    );
                }
                Note::ClearAssignment { reason } => {
                    tracing::info!(service = %key, "assignment cleared: {reason}");
                    self.events
                        .emit(svc, EventType::Normal, "ClearAssignment", reason.clone());
                }
                Note::AllocationFailed(e) => {
                    self.metrics
                        .allocations
                        .get_or_create(&ResultLabels::of("failed"))
                        .inc();
                    let reason = match e {
                        AllocError::NotEnoughClusterIps(_) => "NotEnoughClusterIPs",
                        _ => "AllocationFailed",
                    };
                    self.warn(
                        svc,
                        key,
                        reason,
                        format!("Failed to allocate IP for {key}: {e}"),
                    );
                }
            }
        }

        if converged.assignment.is_some() {
            self.warned.remove(key);
        }
        let desired = match &converged.assignment {
            Some(a) if self.allocator.is_closed(&a.pool) => {
                self.pending.remove(key);
                let message = format!(
                    "{}, which was deleted; the Service keeps them in case the pool is created again, for at most {}s after the deletion, then gets new ones",
                    describe(a),
                    self.pool_grace.as_secs()
                );
                Desired {
                    ips: a.ips.clone(),
                    pool: Some(a.pool.to_string()),
                    condition: Some(("True", "PoolMissing".into(), message)),
                }
            }
            Some(a) => {
                self.pending.remove(key);
                Desired {
                    ips: a.ips.clone(),
                    pool: Some(a.pool.to_string()),
                    condition: Some(("True", "Allocated".into(), describe(a))),
                }
            }
            None => {
                let error = converged.notes.iter().rev().find_map(|n| match n {
                    Note::AllocationFailed(e) => Some(e),
                    _ => None,
                });
                self.pending
                    .insert(key.clone(), error.map_or("NotAssigned", AllocError::reason));
                let message = error.map(ToString::to_string);
                Desired {
                    ips: vec![],
                    pool: None,
                    condition: Some((
                        "False",
                        "AllocationFailed".into(),
                        message.unwrap_or_else(|| "no IPs assigned".into()),
                    )),
                }
            }
        };
        let wrote = self.write_if_changed(key, svc, desired);
        if wrote {
            for k in deprecated {
                let replacement = k.replace(annotations::DEPRECATED_PREFIX, "ferrolb.io/");
                self.events.emit(
                    svc,
                    EventType::Warning,
                    "DeprecatedAnnotation",
                    format!("annotation {k} is deprecated; use {replacement}"),
                );
            }
            if let Err(value) = ferrolb_api::service::announce_without_endpoints(svc) {
                self.events.emit(
                    svc,
                    EventType::Warning,
                    "InvalidAnnotation",
                    format!(
                        "annotation {} is {value:?}; it takes \"true\" or \"false\" (read as false)",
                        annotations::ANNOUNCE_WITHOUT_ENDPOINTS
                    ),
                );
            }
        }
        let result = if converged.assignment.is_some() {
            "assigned"
        } else {
            "pending"
        };
        (result, converged.released)
    }

    /// A Warning Event, unless the same one was the last told about this Service.
    fn warn(&mut self, svc: &Service, key: &ServiceKey, reason: &'static str, note: String) {
        let told = (reason, note);
        if self.warned.get(key) == Some(&told) {
            tracing::debug!(service = %key, reason, "still the same; not warned again");
            return;
        }
        tracing::warn!(service = %key, reason, "{}", told.1);
        self.events
            .emit(svc, EventType::Warning, reason, told.1.clone());
        self.warned.insert(key.clone(), told);
    }

    /// Queues a status write if the Service does not already show `desired`.
    fn write_if_changed(&self, key: &ServiceKey, svc: &Service, desired: Desired) -> bool {
        let observed_condition = our_condition(svc);
        let observed = Desired {
            ips: service::ingress_ips(svc),
            pool: service::allocated_pool(svc).map(str::to_owned),
            condition: observed_condition.as_ref().map(|c| {
                let status = if c["status"] == "True" {
                    "True"
                } else {
                    "False"
                };
                (
                    status,
                    c["reason"].as_str().unwrap_or_default().to_owned(),
                    c["message"].as_str().unwrap_or_default().to_owned(),
                )
            }),
        };
        let generation = svc.metadata.generation.unwrap_or_default();
        // Services have no metadata.generation (so we write 0), and the apiserver drops a zero
        // observedGeneration (omitempty): absent means 0, or every reconcile would write again.
        let same_generation = observed_condition
            .as_ref()
            .map(|c| c["observedGeneration"].as_i64().unwrap_or(0))
            == Some(generation);
        if observed == desired && same_generation {
            return false;
        }
        let condition = desired.condition.as_ref().map(|(status, reason, message)| {
            // The transition time moves only when the status flips.
            let since = match &observed_condition {
                Some(c) if c["status"] == *status => {
                    c["lastTransitionTime"].as_str().map(str::to_owned)
                }
                _ => None,
            }
            .unwrap_or_else(|| Timestamp::now().to_string());
            json!({
                "type": CONDITION_TYPE,
                "status": status,
                "reason": reason,
                "message": truncate(message, 32 * 1024),
                "lastTransitionTime": since,
                "observedGeneration": generation,
            })
        });
        let observed = service::ingress_ips(svc);
        let kept: Vec<IpAddr> = desired
            .ips
            .iter()
            .filter(|ip| observed.contains(ip))
            .copied()
            .collect();
        let mut write = StatusWrite::new(
            key.clone(),
            body(
                key,
                &desired.ips,
                desired.pool.as_deref(),
                condition.clone(),
            ),
            desired.ips.clone(),
            observed.clone(),
        );
        let sharers = desired
            .ips
            .iter()
            .flat_map(|ip| self.allocator.users_of(*ip))
            .filter(|other| *other != key)
            .cloned()
            .collect();
        write = write
            .with_sharers(sharers)
            .with_version(svc.metadata.resource_version.clone());
        // It gives new IPs and takes others away: it may have to let go first (see writer).
        if kept.len() < desired.ips.len() && kept.len() < observed.len() {
            write = write.with_release_first(body(key, &kept, desired.pool.as_deref(), condition));
        }
        self.writer.write(write);
        true
    }
}

fn describe(a: &Assignment) -> String {
    let ips: Vec<String> = a.ips.iter().map(ToString::to_string).collect();
    format!("{} from pool {}", ips.join(", "), a.pool)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Our condition on the Service, if present.
fn our_condition(svc: &Service) -> Option<Value> {
    svc.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == CONDITION_TYPE)
        .and_then(|c| serde_json::to_value(c).ok())
}
