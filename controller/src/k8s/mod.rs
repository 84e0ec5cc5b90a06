//! The kube edge of the controller: watches, the decision loop, status writes, Events and
//! leader election. Only this module (and `main`) talks to the apiserver.

mod config;
mod core;
mod events;
mod lease;
mod pending;
mod report;
mod watch;
mod writer;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::ListParams;
use kube::{Api, Client};
use tokio::sync::{mpsc, watch as tokio_watch};

pub use self::core::CONDITION_TYPE;
use self::core::Core;
use self::lease::{Campaign, Leadership, LeaseSettings, Term};

use self::watch::{Stores, Trigger};
pub use self::writer::FIELD_MANAGER;
use self::writer::StatusWriter;
use crate::allocator::Allocator;
use crate::metrics::{Health, Metrics};

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespace of the configuration objects, the lease and the ConfigurationState.
    pub namespace: String,
    /// Handle only Services of this `loadBalancerClass` (`None`: only Services without one).
    pub lb_class: Option<String>,
    /// This replica's name in the lease (the pod name).
    pub identity: String,
    /// Take the leader lease before assigning anything (off: assume a single replica).
    pub leader_election: bool,
    /// Lease duration: a standby takes over once it has seen the lease unrenewed this long.
    pub lease_duration: Duration,
    /// How long before a standby may take over a leader that could not renew stops leading
    /// and writing (it renews twice in the time that leaves).
    pub lease_grace: Duration,
    /// Concurrent Service status writes.
    pub write_concurrency: usize,
    /// How long Services keep the IPs of a deleted pool, in case it comes back (GitOps
    /// replacing it, a Helm reinstall), before they get new ones.
    pub pool_grace: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            namespace: ferrolb_api::DEFAULT_NAMESPACE.into(),
            lb_class: None,
            identity: "ferrolb-controller".into(),
            leader_election: true,
            lease_duration: Duration::from_secs(15),
            lease_grace: Duration::from_secs(5),
            write_concurrency: 16,
            pool_grace: DEFAULT_POOL_GRACE,
        }
    }
}

/// How long Services keep the IPs of a deleted pool unless told otherwise.
pub const DEFAULT_POOL_GRACE: Duration = Duration::from_secs(60);

/// The name of the leader lease.
pub const LEASE_NAME: &str = "ferrolb-controller";

/// How long a leader that is shutting down spends landing its queued writes before it gives
/// the lease up.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the controller until `shutdown` completes. Returns an error only for what it cannot
/// work around; watch and lease errors are retried.
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    ferrolb_runtime::version::require_supported(&client).await?;
    let mut shutdown = std::pin::pin!(shutdown.fuse());
    let (tx, mut triggers) = mpsc::unbounded_channel();
    let stores = Stores::start(&client, &settings.namespace, &tx);
    tokio::select! {
        () = stores.wait_ready() => {}
        () = &mut shutdown => return Ok(()),
    }
    tracing::info!("caches synced");

    let (mut leader, campaign) = if settings.leader_election {
        let (rx, campaign) = lease::start(
            client.clone(),
            LeaseSettings {
                name: LEASE_NAME.into(),
                namespace: settings.namespace.clone(),
                identity: settings.identity.clone(),
                duration: settings.lease_duration,
                grace: settings.lease_grace,
            },
        );
        (rx, Some(campaign))
    } else {
        let always = Leadership::Leading(Term {
            number: 1,
            until: None,
        });
        let (tx, rx) = tokio_watch::channel(always);
        std::mem::forget(tx); // always leader
        (rx, None)
    };

    tokio::spawn(ensure_memberlist_secret(
        client.clone(),
        settings.namespace.clone(),
    ));
    let (report_tx, report_rx) = tokio_watch::channel(Arc::default());
    tokio::spawn(report::run(
        client.clone(),
        settings.namespace.clone(),
        report_rx,
        leader.clone(),
    ));
    let writer = StatusWriter::start(
        client.clone(),
        settings.write_concurrency,
        metrics.clone(),
        leader.clone(),
        tx.clone(),
    );
    let events = events::start(client.clone(), Some(settings.identity.clone()));
    // A standby replica is ready once its caches are; the leader once it has rebuilt.
    health.set_ready(!settings.leader_election);

    loop {
        // Wait to lead.
        let term = loop {
            if let Leadership::Leading(term) = *leader.borrow_and_update() {
                break term.number;
            }
            health.set_ready(true);
            metrics.queued_triggers.set(gauge(triggers.len()));
            tokio::select! {
                changed = leader.changed() => if changed.is_err() { anyhow::bail!("leader election stopped") },
                () = &mut shutdown => return finish(&writer, campaign, &metrics).await,
                // A standby acts on nothing: the full pass on taking over covers every change,
                // so changes are dropped as they come instead of piling up.
                Some(_) = triggers.recv() => while triggers.try_recv().is_ok() {},
            }
        };
        metrics.leader.set(1);
        health.set_ready(false);
        tracing::info!(identity = %settings.identity, term, "this replica now leads: it assigns the IPs");

        // Triggers that queued up while following are covered by the full pass below. Drop them
        // before listing, not after: a change made after the list must still be handled.
        while triggers.try_recv().is_ok() {}
        // A fresh, consistent list: the previous leader's last writes are in it even if the
        // watch has not delivered them yet, so nothing it assigned is handed out again.
        let listed = tokio::select! {
            listed = fresh_services(&client) => listed,
            () = term_ends(&mut leader, term) => {
                metrics.leader.set(0);
                tracing::warn!(term, "lost the leader lease before rebuilding; standing by");
                continue;
            }
        };
        let services = match listed {
            Ok(services) => services,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list Services; retrying");
                metrics.leader.set(0);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut core = Core {
            namespace: settings.namespace.clone(),
            lb_class: settings.lb_class.clone(),
            stores: stores.clone(),
            allocator: Allocator::default(),
            pools: Vec::new(),
            pending: Default::default(),
            writer: writer.for_term(term),
            events: events.gated({
                let leader = leader.clone();
                Arc::new(move || leader.borrow().allows(term, tokio::time::Instant::now()))
            }),
            metrics: metrics.clone(),
            report: report_tx.clone(),
            outcome: Default::default(),
            serving: Default::default(),
            pool_grace: settings.pool_grace,
            absent: Default::default(),
            warned: Default::default(),
            logged: Default::default(),
        };
        core.apply_config();
        core.begin_term(services);
        health.set_ready(true);
        tracing::info!(
            services = core.allocator.assignments().count(),
            "allocations rebuilt"
        );

        let lost = loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break false,
                // Another replica holds the lease, or the term's deadline passed without a
                // confirmed renewal (whatever the renewal call is doing).
                () = term_ends(&mut leader, term) => break true,
                () = ferrolb_runtime::sleep_until(core.next_deadline()) => {
                    // A deleted pool's grace period is over: its holders move.
                    if core.apply_config() {
                        core.reprocess_all(core.stores.services.state());
                    }
                }
                Some(first) = triggers.recv() => {
                    handle(&mut core, first, &mut triggers);
                    metrics.queued_triggers.set(gauge(triggers.len()));
                }
            }
        };
        drop(core); // decides nothing more
        if !lost {
            return finish(&writer, campaign, &metrics).await;
        }
        metrics.leader.set(0);
        tracing::warn!(
            term,
            "lost the leader lease (another replica leads, or the apiserver could not be reached in time); standing by"
        );
    }
}

/// Completes when term `term` is over: another term or none is published, or its deadline
/// passes.
async fn term_ends(leader: &mut tokio_watch::Receiver<Leadership>, term: u64) {
    loop {
        let until = match *leader.borrow_and_update() {
            Leadership::Leading(t) if t.number == term => t.until,
            _ => return,
        };
        tokio::select! {
            changed = leader.changed() => if changed.is_err() { return },
            () = ferrolb_runtime::sleep_until(until) => return,
        }
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Every Service, read from the apiserver (not the cache), in pages so a large cluster does
/// not need one huge response in memory; managedFields dropped.
async fn fresh_services(client: &Client) -> Result<Vec<Arc<Service>>, kube::Error> {
    let api = Api::<Service>::all(client.clone());
    let mut services = Vec::new();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await?;
        services.extend(page.items.into_iter().map(|mut s| {
            s.metadata.managed_fields = None;
            Arc::new(s)
        }));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(services),
        }
    }
}

/// Handles a trigger and every other one already queued, as one batch.
fn handle(core: &mut Core, first: Trigger, triggers: &mut mpsc::UnboundedReceiver<Trigger>) {
    let mut keys = std::collections::BTreeSet::new();
    let mut fresh = std::collections::BTreeMap::new();
    let mut config = false;
    let mut relisted = false;
    let mut next = Some(first);
    while let Some(t) = next {
        match t {
            Trigger::Service(k) => {
                keys.insert(k);
            }
            Trigger::Fresh(svc) => {
                fresh.insert(crate::service::key_of(&svc), svc);
            }
            Trigger::Config => config = true,
            Trigger::ServicesRelisted => relisted = true,
        }
        next = triggers.try_recv().ok();
    }
    let pools_changed = config && core.apply_config();
    if pools_changed || relisted {
        core.reprocess_all(core.stores.services.state());
        return;
    }
    let mut released = false;
    // Read afresh after a refused write: newer than the cache, which may not have caught up.
    for (key, svc) in &fresh {
        released |= core.reconcile(key, Some(svc));
    }
    for key in keys.iter().filter(|k| !fresh.contains_key(*k)) {
        released |= core.reconcile_key(key);
    }
    if released {
        core.reprocess_pending();
    }
    core.refresh_usage();
}

/// Lands what the writer still holds (bounded), stops it, and only then gives the lease up
/// (so a standby takes over at once, and finds every write of ours in place).
async fn finish(
    writer: &StatusWriter,
    campaign: Option<Campaign>,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    if tokio::time::timeout(DRAIN_TIMEOUT, writer.drained())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout = ?DRAIN_TIMEOUT,
            "status writes still queued at shutdown are dropped"
        );
    }
    writer.stop().await;
    if let Some(campaign) = campaign {
        campaign.release(Duration::from_secs(5)).await;
    }
    metrics.leader.set(0);
    Ok(())
}

/// The Secret holding the speakers' shared membership key.
pub const MEMBERLIST_SECRET: &str = "ferrolb-memberlist";

/// Creates the speakers' membership key (32 random bytes, hex) unless it exists, as MetalLB's
/// controller does, so an install needs no hand-made secret. Retries while the apiserver
/// refuses; a Secret that already exists (another replica, or the user's own) is kept.
async fn ensure_memberlist_secret(client: Client, namespace: String) {
    use k8s_openapi::api::core::v1::Secret;
    let api: Api<Secret> = Api::namespaced(client, &namespace);
    let mut backoff = Duration::from_millis(500);
    loop {
        let key = match random_key() {
            Ok(key) => key,
            Err(e) => {
                tracing::error!(error = %e, secret = MEMBERLIST_SECRET, %namespace, "cannot generate the speakers' membership key: create the Secret yourself with a random `secretkey` (e.g. `openssl rand -hex 32`); the speakers announce nothing until it exists");
                return;
            }
        };
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(MEMBERLIST_SECRET.into()),
                ..Default::default()
            },
            string_data: Some([("secretkey".to_owned(), key)].into()),
            ..Default::default()
        };
        match api.create(&kube::api::PostParams::default(), &secret).await {
            Ok(_) => {
                tracing::info!(
                    secret = MEMBERLIST_SECRET,
                    %namespace,
                    "created the speakers' membership key"
                );
                return;
            }
            Err(kube::Error::Api(e)) if e.code == 409 => return,
            Err(e) => {
                tracing::warn!(error = %e, secret = MEMBERLIST_SECRET, %namespace, "cannot create the membership key; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}

fn random_key() -> std::io::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
