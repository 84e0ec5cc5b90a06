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

use crate::allocator::ServiceKey;
use crate::metrics::{Metrics, ResultLabels};

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

/// Which IPs each Service is being given or is letting go of by writes that have not landed.
#[derive(Default)]
struct Moves {
    /// IPs a write not landed yet takes from the Service.
    releasing: HashMap<ServiceKey, BTreeSet<IpAddr>>,
    /// IPs the Service shows or may show: those its last landed write gave it, those writes
    /// not landed yet give it, and (before any write) those it was seen showing.
    claimed: HashMap<ServiceKey, BTreeSet<IpAddr>>,
}

impl Moves {
    /// A new desired status for a Service: what it showed, and what earlier writes may still
    /// give it, is let go of unless this write keeps it.
    fn received(&mut self, w: &StatusWrite) {
        let claimed = self.claimed.entry(w.key.clone()).or_default();
        let letting_go: Vec<IpAddr> = w
            .observed
            .iter()
            .chain(claimed.iter())
            .filter(|ip| !w.ips.contains(ip))
            .copied()
            .collect();
        claimed.extend(w.ips.iter().copied());
        self.releasing
            .entry(w.key.clone())
            .or_default()
            .extend(letting_go);
    }

    /// `ips` landed on the Service: whatever else it showed is gone.
    fn landed(&mut self, key: &ServiceKey, ips: &[IpAddr], newer: Option<&StatusWrite>) {
        if let Some(r) = self.releasing.get_mut(key) {
            r.retain(|ip| ips.contains(ip));
        }
        let mut claimed: BTreeSet<IpAddr> = ips.iter().copied().collect();
        claimed.extend(newer.iter().flat_map(|w| w.ips.iter().copied()));
        self.claimed.insert(key.clone(), claimed);
    }

    /// A new term of leadership: what every Service shows is `shown`, read afresh. What was
    /// known from before is dropped, except for Services with writes still queued or in flight.
    fn new_term(
        &mut self,
        shown: Vec<(ServiceKey, Vec<IpAddr>)>,
        busy: impl Fn(&ServiceKey) -> bool,
    ) {
        self.claimed.retain(|k, _| busy(k));
        self.releasing.retain(|k, _| busy(k));
        for (key, ips) in shown {
            self.claimed.entry(key).or_default().extend(ips);
        }
    }

    fn forget(&mut self, key: &ServiceKey) {
        self.releasing.remove(key);
        self.claimed.remove(key);
    }

    /// Whether `w` gives an IP that another Service (not one sharing it) shows, may show, or
    /// is still letting go of.
    fn must_wait(&self, w: &StatusWrite) -> bool {
        let held_elsewhere = |map: &HashMap<ServiceKey, BTreeSet<IpAddr>>| {
            map.iter().any(|(other, ips)| {
                *other != w.key
                    && !w.sharers.contains(other)
                    && w.ips.iter().any(|ip| ips.contains(ip))
            })
        };
        held_elsewhere(&self.releasing) || held_elsewhere(&self.claimed)
    }
}

/// How long a deleted Service's writes are still refused: longer than the longest retry delay.
const TOMBSTONE_TTL: Duration = Duration::from_secs(60);

/// The order of one writer's writes per Service: a retried old write never replaces a newer
/// one, and no write decided before a Service was deleted lands on a Service re-created under
/// the same name (for [`TOMBSTONE_TTL`], so deleted names cost no memory for long).
#[derive(Default)]
struct Order {
    /// Per live Service, the newest write accepted.
    newest: HashMap<ServiceKey, u64>,
    /// Per deleted Service, the lowest sequence number accepted again, and since when.
    tombstones: HashMap<ServiceKey, (u64, tokio::time::Instant)>,
    /// Tombstones, oldest first, for pruning.
    by_age: VecDeque<(tokio::time::Instant, ServiceKey)>,
}

impl Order {
    /// Whether write `seq` for `key` may go (and no older one may from now on).
    fn accept(&mut self, key: &ServiceKey, seq: u64) -> bool {
        if self
            .tombstones
            .get(key)
            .is_some_and(|(from, _)| seq < *from)
        {
            return false;
        }
        let newest = self.newest.entry(key.clone()).or_default();
        if seq < *newest {
            return false;
        }
        *newest = seq;
        true
    }

    /// `key` was deleted when the writes up to `last` had been decided.
    fn deleted(&mut self, key: &ServiceKey, last: u64, now: tokio::time::Instant) {
        while let Some((at, old)) = self.by_age.front() {
            if now.duration_since(*at) < TOMBSTONE_TTL {
                break;
            }
            if self
                .tombstones
                .get(old)
                .is_some_and(|(_, since)| since == at)
            {
                self.tombstones.remove(old);
            }
            self.by_age.pop_front();
        }
        self.newest.remove(key);
        self.tombstones.insert(key.clone(), (last + 1, now));
        self.by_age.push_back((now, key.clone()));
    }
}

/// What the writer task is told, in order.
#[derive(Debug)]
enum Message {
    Write(StatusWrite),
    /// A new term of leadership, with what each Service shows.
    NewTerm(Vec<(ServiceKey, Vec<IpAddr>)>),
    /// A Service was deleted (after the writes numbered up to this one were decided): it shows
    /// nothing, and its queued or retried writes have nowhere to land.
    Gone(ServiceKey, u64),
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
        let last = self.seq.load(std::sync::atomic::Ordering::Relaxed);
        let _ = self.tx.send(Message::Gone(key, last));
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
    let mut order = Order::default();
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
                    Some(Message::Gone(key, last)) => {
                        order.deleted(&key, last, tokio::time::Instant::now());
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
                if !order.accept(&key, w.seq) {
                    continue;
                }
                deleted.remove(&key);
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
                        // Deleted: forget it (the controller says so too, with the order).
                        failures.remove(&key);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn write(name: &str, observed: &[&str], ips: &[&str]) -> StatusWrite {
        let parse = |list: &[&str]| list.iter().map(|s| s.parse().expect("ip")).collect();
        StatusWrite::new(
            ServiceKey::new("default", name),
            json!({}),
            parse(ips),
            parse(observed),
        )
    }

    #[test]
    fn an_ip_is_given_only_after_the_service_letting_go_of_it_has_landed() {
        let mut moves = Moves::default();
        let clear = write("old", &["192.0.2.1"], &[]);
        let take = write("new", &[], &["192.0.2.1"]);
        moves.received(&clear);
        moves.received(&take);
        assert!(moves.must_wait(&take));
        assert!(!moves.must_wait(&clear));
        moves.landed(&clear.key, &clear.ips, None);
        assert!(!moves.must_wait(&take));
    }

    #[test]
    fn an_ip_given_by_a_write_not_landed_yet_is_let_go_of_by_the_next() {
        let mut moves = Moves::default();
        // "old" is being given .1 (in flight); then it is to have nothing, and "new" gets .1.
        let grant = write("old", &[], &["192.0.2.1"]);
        moves.received(&grant);
        let clear = write("old", &[], &[]);
        moves.received(&clear);
        let take = write("new", &[], &["192.0.2.1"]);
        moves.received(&take);
        assert!(moves.must_wait(&take));
        moves.landed(&grant.key, &grant.ips, Some(&clear));
        assert!(
            moves.must_wait(&take),
            "the grant landed, the clear has not"
        );
        moves.landed(&clear.key, &clear.ips, None);
        assert!(!moves.must_wait(&take));
    }

    #[test]
    fn an_ip_a_service_showed_when_the_term_began_is_given_only_after_a_write_took_it_away() {
        // A new leader rebuilt: "tenant" shows .203 but may not keep it; "mover" was given .203
        // before the tenant's write was even queued.
        let mut moves = Moves::default();
        let tenant = ServiceKey::new("default", "tenant");
        moves.new_term(vec![(tenant.clone(), vec![ip("192.0.2.203")])], |_| false);
        let take = write("mover", &["192.0.2.200"], &["192.0.2.203"]);
        moves.received(&take);
        assert!(moves.must_wait(&take), "the tenant still shows .203");
        let clear = write("tenant", &["192.0.2.203"], &[]);
        moves.received(&clear);
        assert!(moves.must_wait(&take));
        moves.landed(&tenant, &[], None);
        assert!(!moves.must_wait(&take));
    }

    #[test]
    fn a_deleted_service_and_what_a_past_term_knew_hold_no_ip() {
        let mut moves = Moves::default();
        let gone = ServiceKey::new("default", "gone");
        moves.new_term(vec![(gone.clone(), vec![ip("192.0.2.1")])], |_| false);
        moves.forget(&gone);
        let take = write("new", &[], &["192.0.2.1"]);
        assert!(!moves.must_wait(&take), "deleted");

        // A past term landed .2 on "old"; the next term reads that "old" shows nothing now.
        let old = write("old", &[], &["192.0.2.2"]);
        moves.received(&old);
        moves.landed(&old.key, &old.ips, None);
        moves.new_term(Vec::new(), |_| false);
        assert!(!moves.must_wait(&write("new", &[], &["192.0.2.2"])));
    }

    #[test]
    fn services_sharing_an_ip_do_not_wait_for_each_other() {
        let mut moves = Moves::default();
        let first = write("first", &[], &["192.0.2.1"]);
        moves.received(&first);
        moves.landed(&first.key, &first.ips, None);
        let second = write("second", &[], &["192.0.2.1"]);
        assert!(moves.must_wait(&second), "not known to share");
        let second = second.with_sharers([first.key.clone()].into());
        moves.received(&second);
        assert!(!moves.must_wait(&second));
    }

    #[test]
    fn no_write_decided_before_a_deletion_lands_on_the_service_re_created_under_its_name() {
        let mut order = Order::default();
        let key = ServiceKey::new("default", "web");
        let t0 = tokio::time::Instant::now();
        assert!(order.accept(&key, 1));
        assert!(order.accept(&key, 3));
        assert!(!order.accept(&key, 2), "an older retry after a newer write");
        assert!(order.accept(&key, 3), "the newest write retried");
        // Deleted once writes up to 4 were decided; re-created, and written as 5.
        order.deleted(&key, 4, t0);
        assert!(
            !order.accept(&key, 3),
            "a retry of the deleted Service's write"
        );
        assert!(order.accept(&key, 5));
        // Long after, the tombstone is gone with the next deletion (of another Service).
        order.deleted(&ServiceKey::new("default", "other"), 9, t0 + TOMBSTONE_TTL);
        assert!(!order.tombstones.contains_key(&key));
        assert!(
            order
                .tombstones
                .contains_key(&ServiceKey::new("default", "other"))
        );
    }

    #[test]
    fn two_services_that_swap_ips_each_let_go_first_and_neither_waits_forever() {
        let mut moves = Moves::default();
        let a = write("a", &["192.0.2.1"], &["192.0.2.2"]);
        let b = write("b", &["192.0.2.2"], &["192.0.2.1"]);
        moves.received(&a);
        moves.received(&b);
        assert!(moves.must_wait(&a) && moves.must_wait(&b));
        // a's first part (only the IPs it keeps: none) lands; b may go.
        moves.landed(&a.key, &[], Some(&a));
        assert!(!moves.must_wait(&b));
        moves.landed(&b.key, &b.ips, None);
        assert!(!moves.must_wait(&a));
    }
}
