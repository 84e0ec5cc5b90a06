//! Writes Service status (ingress IPs, the pool annotation, our condition) with server-side
//! apply, off the decision loop: decisions are made in memory at once, writes follow with
//! bounded concurrency, and a newer desired status for a Service replaces an older one that is
//! still queued (coalescing). Failed writes are retried with backoff; a deleted Service is
//! dropped.
//!
//! An IP that moves from one Service to another is never shown on both: a write that gives a
//! Service an IP waits until every write that takes that IP from another Service has landed.
//! Two Services that swap IPs would wait for each other, so a waiting write first lands the
//! part that only takes IPs away (the IPs it keeps, nothing new), then the rest.
//!
//! The writer knows what a Service shows from the writes it made, and — for Services it has
//! not written yet, as after a restart or a leader change — from what the controller tells it
//! they show ([`StatusWriter::new_term`]); a deleted Service shows nothing ([`StatusWriter::gone`]).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use self::moves::Moves;
use crate::allocator::ServiceKey;
use crate::metrics::{Metrics, ResultLabels};

mod moves;

/// The field manager of everything the controller writes.
pub const FIELD_MANAGER: &str = "ferrolb-controller";

/// A status write: the whole apply body for one Service's status subresource.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StatusWrite {
    pub key: ServiceKey,
    pub body: Value,
    /// The ingress IPs the write gives the Service.
    pub ips: Vec<IpAddr>,
    /// The ingress IPs the Service showed when the write was decided.
    pub observed: Vec<IpAddr>,
    /// The same write with only the IPs it keeps (nothing new), landed first when it must
    /// wait for another Service to let go of an IP.
    release_first: Option<Value>,
    /// This is such a first part (its full write is queued behind it).
    first_part: bool,
    /// Services that share the write's IPs with it (by sharing key): their showing them is
    /// no reason to wait.
    sharers: BTreeSet<ServiceKey>,
    /// Order of the writes of one writer: a retried old write never replaces a newer one.
    seq: u64,
}

impl StatusWrite {
    /// A write of `body`, which gives the Service `ips`; it showed `observed`.
    pub(crate) fn new(
        key: ServiceKey,
        body: Value,
        ips: Vec<IpAddr>,
        observed: Vec<IpAddr>,
    ) -> Self {
        Self {
            key,
            body,
            ips,
            observed,
            release_first: None,
            first_part: false,
            sharers: BTreeSet::new(),
            seq: 0,
        }
    }

    /// The Services that share its IPs with it.
    pub(crate) fn with_sharers(mut self, sharers: BTreeSet<ServiceKey>) -> Self {
        self.sharers = sharers;
        self
    }

    /// The body that keeps only the IPs the Service already shows, for when it must wait.
    pub(crate) fn with_release_first(mut self, body: Value) -> Self {
        self.release_first = Some(body);
        self
    }
}

/// What the writer task is told, in order.
#[derive(Debug)]
enum Message {
    Write(StatusWrite),
    /// A new term of leadership, with what each Service shows.
    NewTerm(Vec<(ServiceKey, Vec<IpAddr>)>),
    /// A Service was deleted: it shows nothing, and its queued write has nowhere to land.
    Gone(ServiceKey),
}

/// Handle to the writer task.
#[derive(Clone, Debug)]
pub(crate) struct StatusWriter {
    tx: mpsc::UnboundedSender<Message>,
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
        let _ = self.tx.send(Message::Write(w));
    }

    /// Tells the writer, before the first write of a term of leadership, which IPs each
    /// Service shows (read afresh from the apiserver), so no IP one of them shows is given to
    /// another until a write to it has taken the IP away.
    pub(crate) fn new_term(&self, shown: Vec<(ServiceKey, Vec<IpAddr>)>) {
        let _ = self.tx.send(Message::NewTerm(shown));
    }

    /// Tells the writer that a Service was deleted.
    pub(crate) fn gone(&self, key: ServiceKey) {
        let _ = self.tx.send(Message::Gone(key));
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
    mut rx: mpsc::UnboundedReceiver<Message>,
    retry_tx: mpsc::UnboundedSender<Message>,
    metrics: Arc<Metrics>,
) {
    let mut latest: HashMap<ServiceKey, StatusWrite> = HashMap::new();
    let mut queue: VecDeque<ServiceKey> = VecDeque::new();
    let mut in_flight: HashSet<ServiceKey> = HashSet::new();
    let mut tasks: JoinSet<(StatusWrite, Result<(), kube::Error>)> = JoinSet::new();
    let mut failures: HashMap<ServiceKey, u32> = HashMap::new();
    let mut newest: HashMap<ServiceKey, u64> = HashMap::new();
    let mut moves = Moves::default();
    // Deleted while a write to it was in flight: that write's landing must not count.
    let mut deleted: HashSet<ServiceKey> = HashSet::new();
    loop {
        // Look at each queued Service once: those that must wait stay in line.
        let mut waiting = VecDeque::new();
        while in_flight.len() < concurrency {
            let Some(key) = queue.pop_front() else { break };
            let Some(mut w) = latest.remove(&key) else {
                continue;
            };
            if moves.must_wait(&w) {
                let Some(release_first) = w.release_first.take() else {
                    latest.insert(key.clone(), w);
                    waiting.push_back(key);
                    continue;
                };
                // Let go of what it no longer holds now; the rest follows once the IPs it gets
                // are free. (The full write stays queued: it goes in line again when this one
                // is done.)
                let kept: Vec<IpAddr> = w
                    .ips
                    .iter()
                    .filter(|ip| w.observed.contains(ip))
                    .copied()
                    .collect();
                let mut first = w.clone();
                first.body = release_first;
                first.ips = kept;
                first.first_part = true;
                latest.insert(key.clone(), w);
                w = first;
            }
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
        queue.extend(waiting);
        tokio::select! {
            msg = rx.recv() => {
                let w = match msg {
                    None => break,
                    Some(Message::Write(w)) => w,
                    Some(Message::NewTerm(shown)) => {
                        moves.new_term(shown, |k| latest.contains_key(k) || in_flight.contains(k));
                        continue;
                    }
                    Some(Message::Gone(key)) => {
                        latest.remove(&key);
                        failures.remove(&key);
                        moves.forget(&key);
                        if in_flight.contains(&key) {
                            deleted.insert(key);
                        }
                        continue;
                    }
                };
                let key = w.key.clone();
                deleted.remove(&key);
                let seen = newest.entry(key.clone()).or_default();
                if w.seq < *seen {
                    continue;
                }
                *seen = w.seq;
                moves.received(&w);
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
                    Ok(()) if deleted.remove(&key) => {}
                    Ok(()) => {
                        moves.landed(&key, &w.ips, latest.get(&key));
                        failures.remove(&w.key);
                        metrics.status_writes.get_or_create(&ResultLabels::of("ok")).inc();
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 => {
                        // Deleted: forget it (its retry count and write order too).
                        failures.remove(&key);
                        newest.remove(&key);
                        moves.forget(&key);
                        metrics.status_writes.get_or_create(&ResultLabels::of("gone")).inc();
                    }
                    Err(e) => {
                        metrics.status_writes.get_or_create(&ResultLabels::of("error")).inc();
                        let n = failures.entry(w.key.clone()).or_default();
                        *n += 1;
                        let delay = Duration::from_millis(100 * 2u64.pow((*n).min(7)));
                        tracing::warn!(service = %w.key, error = %e, retry_in = ?delay, "status write failed");
                        // A first part that failed is tried again before its full write.
                        if w.first_part
                            && let Some(full) = latest.get_mut(&key)
                        {
                            full.release_first.get_or_insert(w.body.clone());
                        }
                        // Retry unless a newer status is already queued.
                        if !latest.contains_key(&w.key) {
                            let tx = retry_tx.clone();
                            tokio::spawn(async move {
                                tokio::time::sleep(delay).await;
                                let _ = tx.send(Message::Write(w));
                            });
                        }
                    }
                }
                // A newer status arrived while this one was in flight (or the rest of a write
                // that let go first): it goes in line now.
                if latest.contains_key(&key) && !queue.contains(&key) {
                    queue.push_back(key);
                }
            }
        }
    }
}
