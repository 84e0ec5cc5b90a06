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
//!
//! # Fencing
//!
//! The writer outlives terms of leadership, and only the current term writes: every write
//! carries the term that decided it ([`StatusWriter::for_term`]), and once that term is over —
//! another replica holds the lease, or the term's deadline passed without a confirmed renewal
//! (see `lease`) — what it queued or was retrying is dropped, nothing of it is sent, and a
//! write in flight is abandoned at the deadline.
//!
//! A request already on the wire can still reach the apiserver late, after a successor began
//! writing. So every write also carries, as `metadata.resourceVersion`, the version of the
//! Service its decision saw: the apiserver applies it only if the Service has not changed since,
//! and answers 409 otherwise. Such a write is not retried; the Service is read afresh and
//! decided again from what it is now. This fences what a successor did to the same Service, at
//! no cost (no extra request per write, unlike reading the lease before each batch, which would
//! still leave the gap between that read and the write). It cannot fence a decision that
//! depended on *other* Services (an IP given to one because another had let it go): only the
//! deadline does, by stopping the writer before a successor may start, and a stale write that
//! still lands is seen by the new leader's watch and corrected like any other change.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use self::queue::{Queue, Sent};
use super::lease::Leadership;
use super::watch::Trigger;
use crate::allocator::ServiceKey;
use crate::metrics::{Metrics, ResultLabels};

mod moves;
mod queue;

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
    /// The term of leadership that decided it.
    term: u64,
    /// The Service's resourceVersion as the decision saw it: the write lands only on that.
    version: Option<String>,
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
            term: 0,
            version: None,
        }
    }

    /// Decided from the Service at `version`.
    pub(crate) fn with_version(mut self, version: Option<String>) -> Self {
        self.version = version;
        self
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
    NewTerm(u64, Vec<(ServiceKey, Vec<IpAddr>)>),
    /// A Service was deleted: it shows nothing, and its queued write has nowhere to land.
    Gone(ServiceKey),
    /// Answer once nothing is queued, in flight or waiting for a retry.
    Drain(oneshot::Sender<()>),
    /// Write nothing more; answer once nothing is in flight.
    Stop(oneshot::Sender<()>),
}

/// Handle to the writer task, for one term of leadership (see [`StatusWriter::for_term`]).
#[derive(Clone, Debug)]
pub(crate) struct StatusWriter {
    tx: mpsc::UnboundedSender<Message>,
    seq: Arc<std::sync::atomic::AtomicU64>,
    term: u64,
}

impl StatusWriter {
    /// Starts the writer with at most `concurrency` writes in flight. It writes only while
    /// `leadership` allows the term of the writes; a Service whose write was refused because it
    /// changed is sent to `triggers`, to be decided again.
    pub(crate) fn start(
        client: Client,
        concurrency: usize,
        metrics: Arc<Metrics>,
        leadership: watch::Receiver<Leadership>,
        triggers: mpsc::UnboundedSender<Trigger>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = Task {
            client,
            concurrency: concurrency.max(1),
            metrics,
            leadership,
            triggers,
        };
        tokio::spawn(task.run(rx));
        Self {
            tx,
            seq: Arc::default(),
            term: 0,
        }
    }

    /// The term of leadership this writer's writes belong to.
    pub(crate) fn term(&self) -> u64 {
        self.term
    }

    /// The same writer, for the writes of term `term`.
    pub(crate) fn for_term(&self, term: u64) -> Self {
        Self {
            term,
            ..self.clone()
        }
    }

    /// Queues a write (replacing a queued one for the same Service).
    pub(crate) fn write(&self, mut w: StatusWrite) {
        w.seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        w.term = self.term;
        // The writer outlives every sender except on shutdown.
        let _ = self.tx.send(Message::Write(w));
    }

    /// Tells the writer, before the first write of a term of leadership, which IPs each
    /// Service shows (read afresh from the apiserver), so no IP one of them shows is given to
    /// another until a write to it has taken the IP away. What earlier terms left queued is
    /// dropped.
    pub(crate) fn new_term(&self, shown: Vec<(ServiceKey, Vec<IpAddr>)>) {
        let _ = self.tx.send(Message::NewTerm(self.term, shown));
    }

    /// Tells the writer that a Service was deleted.
    pub(crate) fn gone(&self, key: ServiceKey) {
        let _ = self.tx.send(Message::Gone(key));
    }

    /// Completes once everything queued has landed (or was given up on).
    pub(crate) async fn drained(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Message::Drain(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Stops writing for good: what is queued is dropped. Completes once no write is in
    /// flight any more (each ends by its term's deadline at the latest).
    pub(crate) async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Message::Stop(tx)).is_ok() {
            let _ = rx.await;
        }
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

/// The writer task.
struct Task {
    client: Client,
    concurrency: usize,
    metrics: Arc<Metrics>,
    leadership: watch::Receiver<Leadership>,
    triggers: mpsc::UnboundedSender<Trigger>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Message>) {
        let mut queue = Queue::default();
        let mut tasks: JoinSet<(StatusWrite, Sent, Option<Arc<Service>>)> = JoinSet::new();
        let mut drained: Vec<oneshot::Sender<()>> = Vec::new();
        // Stopped for good, and who waits for the writes in flight to end.
        let mut stopped: Option<Vec<oneshot::Sender<()>>> = None;
        let mut elected = true;
        loop {
            let now = Instant::now();
            let leadership = *self.leadership.borrow();
            if let Some(term) = queue.term()
                && (stopped.is_some() || !leadership.allows(term, now))
            {
                self.dropped(queue.end_term());
            }
            queue.due(now);
            let until = match leadership {
                Leadership::Leading(t) => t.until,
                Leadership::Following => None,
            };
            for w in queue.next(self.concurrency) {
                tasks.spawn(send(self.client.clone(), w, until));
            }
            if queue.is_idle() {
                for tx in drained.drain(..) {
                    let _ = tx.send(());
                }
            }
            if let Some(waiting) = &mut stopped
                && !queue.has_in_flight()
            {
                for tx in waiting.drain(..) {
                    let _ = tx.send(());
                }
            }
            let wake = queue
                .next_retry()
                .into_iter()
                .chain(until.filter(|_| queue.term().is_some()))
                .min();
            tokio::select! {
                msg = rx.recv() => match msg {
                    None => break,
                    Some(Message::Write(w)) => {
                        if stopped.is_some() || !queue.receive(w) {
                            self.dropped(1);
                        }
                    }
                    Some(Message::NewTerm(term, shown)) => {
                        if stopped.is_none() {
                            self.dropped(queue.begin_term(term, shown));
                        }
                    }
                    Some(Message::Gone(key)) => queue.gone(&key),
                    Some(Message::Drain(tx)) => drained.push(tx),
                    Some(Message::Stop(tx)) => stopped.get_or_insert_with(Vec::new).push(tx),
                },
                changed = self.leadership.changed(), if elected => {
                    // The election ended (the lease was given up): what was said last stands.
                    elected = changed.is_ok();
                }
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    let Ok((w, sent, fresh)) = done else { continue };
                    self.ended(&mut queue, w, sent, fresh);
                }
                () = sleep_until(wake) => {}
            }
        }
    }

    fn ended(&self, queue: &mut Queue, w: StatusWrite, sent: Sent, fresh: Option<Arc<Service>>) {
        let key = w.key.clone();
        let stale = matches!(sent, Sent::Stale(_));
        let done = queue.done(w, sent, Instant::now());
        self.metrics
            .status_writes
            .get_or_create(&ResultLabels::of(done.result))
            .inc();
        if let Some(delay) = done.retry_in {
            tracing::debug!(service = %key, retry_in = ?delay, "status write to be tried again");
        }
        if stale {
            tracing::info!(service = %key, "the Service changed since its status was decided; deciding again");
            let trigger = match fresh {
                Some(svc) => Trigger::Fresh(svc),
                None => Trigger::Service(key),
            };
            let _ = self.triggers.send(trigger);
        }
    }

    fn dropped(&self, n: usize) {
        if n > 0 {
            tracing::info!(writes = n, "not the leader: queued status writes dropped");
            self.metrics
                .status_writes
                .get_or_create(&ResultLabels::of("dropped"))
                .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
        }
    }
}

/// Completes at `at`, never without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Sends one write, giving up at `until` (the end of its term). A write refused because the
/// Service changed comes back with the Service as it is now, if it can be read.
async fn send(
    client: Client,
    w: StatusWrite,
    until: Option<Instant>,
) -> (StatusWrite, Sent, Option<Arc<Service>>) {
    let api: Api<Service> = Api::namespaced(client, &w.key.namespace);
    let mut body = w.body.clone();
    if let Some(version) = &w.version {
        body["metadata"]["resourceVersion"] = json!(version);
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let patch = Patch::Apply(&body);
    let result = within(until, api.patch_status(&w.key.name, &params, &patch)).await;
    let sent = match result {
        Some(Ok(svc)) => Sent::Landed(svc.metadata.resource_version),
        Some(Err(kube::Error::Api(e))) if e.code == 404 => Sent::Gone,
        Some(Err(kube::Error::Api(e))) if e.code == 409 => {
            // Read by listing (the controller's role lists Services, it never gets one).
            let params = ListParams::default().fields(&format!("metadata.name={}", w.key.name));
            let fresh = match within(until, api.list(&params)).await {
                Some(Ok(list)) => Some(list.items.into_iter().next().map(|mut s| {
                    s.metadata.managed_fields = None;
                    Arc::new(s)
                })),
                _ => None,
            };
            let shows = fresh.as_ref().map(|svc| {
                svc.as_deref()
                    .map(crate::service::ingress_ips)
                    .unwrap_or_default()
            });
            return (w, Sent::Stale(shows), fresh.flatten());
        }
        Some(Err(e)) => {
            tracing::warn!(service = %w.key, error = %e, "status write failed");
            Sent::Failed
        }
        None => {
            tracing::warn!(service = %w.key, "status write abandoned at the end of the term");
            Sent::Failed
        }
    };
    (w, sent, None)
}

/// `call`, unless `until` passes first.
async fn within<T>(until: Option<Instant>, call: impl Future<Output = T>) -> Option<T> {
    match until {
        Some(at) => tokio::time::timeout_at(at, call).await.ok(),
        None => Some(call.await),
    }
}
