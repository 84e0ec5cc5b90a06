//! Writes Service status (ingress IPs, the pool annotation, our condition) with server-side
//! apply, off the decision loop: decisions are made in memory at once, writes follow with
//! bounded concurrency, and a newer desired status for a Service replaces an older one that is
//! still queued (coalescing). Failed writes are retried with backoff; a deleted Service is
//! dropped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::allocator::ServiceKey;
use crate::metrics::{Metrics, ResultLabels};

/// The field manager of everything the controller writes.
pub const FIELD_MANAGER: &str = "ferrolb-controller";

/// A status write: the whole apply body for one Service's status subresource.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StatusWrite {
    pub key: ServiceKey,
    pub body: Value,
    /// Order of the writes of one writer: a retried old write never replaces a newer one.
    seq: u64,
}

impl StatusWrite {
    pub(crate) fn new(key: ServiceKey, body: Value) -> Self {
        Self { key, body, seq: 0 }
    }
}

/// Handle to the writer task.
#[derive(Clone, Debug)]
pub(crate) struct StatusWriter {
    tx: mpsc::UnboundedSender<StatusWrite>,
    seq: Arc<std::sync::atomic::AtomicU64>,
}

impl StatusWriter {
    /// Starts the writer with at most `concurrency` writes in flight.
    pub(crate) fn start(client: Client, concurrency: usize, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(client, concurrency.max(1), rx, tx.clone(), metrics));
        Self {
            tx,
            seq: Arc::default(),
        }
    }

    /// Queues a write (replacing a queued one for the same Service).
    pub(crate) fn write(&self, mut w: StatusWrite) {
        w.seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        // The writer outlives every sender except on shutdown.
        let _ = self.tx.send(w);
    }
}

/// The apply body: what we own of the Service's status and annotations. Fields left out are
/// removed if we owned them, so `ingress: None` clears what we wrote before.
pub(crate) fn body(
    key: &ServiceKey,
    ingress: &[std::net::IpAddr],
    pool: Option<&str>,
    condition: Option<Value>,
) -> Value {
    let mut metadata = json!({"name": key.name, "namespace": key.namespace});
    if let Some(pool) = pool {
        metadata["annotations"] = json!({ ferrolb_api::annotations::IP_ALLOCATED_FROM_POOL: pool });
    }
    let mut status = json!({});
    if !ingress.is_empty() {
        let list: Vec<Value> = ingress
            .iter()
            .map(|ip| json!({"ip": ip.to_string(), "ipMode": "VIP"}))
            .collect();
        status["loadBalancer"] = json!({ "ingress": list });
    }
    if let Some(c) = condition {
        status["conditions"] = json!([c]);
    }
    json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata, "status": status})
}

async fn run(
    client: Client,
    concurrency: usize,
    mut rx: mpsc::UnboundedReceiver<StatusWrite>,
    retry_tx: mpsc::UnboundedSender<StatusWrite>,
    metrics: Arc<Metrics>,
) {
    let mut latest: HashMap<ServiceKey, StatusWrite> = HashMap::new();
    let mut queue: VecDeque<ServiceKey> = VecDeque::new();
    let mut in_flight: HashSet<ServiceKey> = HashSet::new();
    let mut tasks: JoinSet<(StatusWrite, Result<(), kube::Error>)> = JoinSet::new();
    let mut failures: HashMap<ServiceKey, u32> = HashMap::new();
    let mut newest: HashMap<ServiceKey, u64> = HashMap::new();
    loop {
        while in_flight.len() < concurrency {
            let Some(key) = queue.pop_front() else { break };
            let Some(w) = latest.remove(&key) else {
                continue;
            };
            in_flight.insert(key);
            let api: Api<Service> = Api::namespaced(client.clone(), &w.key.namespace);
            tasks.spawn(async move {
                let params = PatchParams::apply(FIELD_MANAGER).force();
                let result = api
                    .patch_status(&w.key.name, &params, &Patch::Apply(&w.body))
                    .await
                    .map(|_| ());
                (w, result)
            });
        }
        tokio::select! {
            msg = rx.recv() => {
                let Some(w) = msg else { break };
                let key = w.key.clone();
                let seen = newest.entry(key.clone()).or_default();
                if w.seq < *seen {
                    continue;
                }
                *seen = w.seq;
                let queued = latest.insert(key.clone(), w).is_some();
                if !queued && !in_flight.contains(&key) {
                    queue.push_back(key);
                }
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                let Ok((w, result)) = done else { continue };
                let key = w.key.clone();
                in_flight.remove(&key);
                match result {
                    Ok(()) => {
                        failures.remove(&w.key);
                        metrics.status_writes.get_or_create(&ResultLabels::of("ok")).inc();
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 => {
                        // Deleted: forget it (its retry count and write order too).
                        failures.remove(&key);
                        newest.remove(&key);
                        metrics.status_writes.get_or_create(&ResultLabels::of("gone")).inc();
                    }
                    Err(e) => {
                        metrics.status_writes.get_or_create(&ResultLabels::of("error")).inc();
                        let n = failures.entry(w.key.clone()).or_default();
                        *n += 1;
                        let delay = Duration::from_millis(100 * 2u64.pow((*n).min(7)));
                        tracing::warn!(service = %w.key, error = %e, retry_in = ?delay, "status write failed");
                        // Retry unless a newer status is already queued.
                        if !latest.contains_key(&w.key) {
                            let tx = retry_tx.clone();
                            tokio::spawn(async move {
                                tokio::time::sleep(delay).await;
                                let _ = tx.send(w);
                            });
                        }
                    }
                }
                // A newer status arrived while this one was in flight: it goes in line now.
                if latest.contains_key(&key) {
                    queue.push_back(key);
                }
            }
        }
    }
}
