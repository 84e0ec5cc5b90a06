//! The kube edge of the controller: watches, the decision loop, status writes, Events and
//! leader election. Only this module (and `main`) talks to the apiserver.

mod config;
mod core;
mod events;
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
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::{mpsc, watch as tokio_watch};

pub use self::core::CONDITION_TYPE;
use self::core::Core;

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
    /// Lease duration; a dead leader is replaced within it.
    pub lease_duration: Duration,
    /// How long before expiry the leader renews.
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

/// Runs the controller until `shutdown` completes. Returns an error only for what it cannot
/// work around (the apiserver refusing the lease, say); watch errors are retried.
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut shutdown = std::pin::pin!(shutdown.fuse());
    let (tx, mut triggers) = mpsc::unbounded_channel();
    let stores = Stores::start(&client, &settings.namespace, &tx);
    tokio::select! {
        () = stores.wait_ready() => {}
        () = &mut shutdown => return Ok(()),
    }
    tracing::info!("caches synced");

    let (mut leader, lease_task) = if settings.leader_election {
        let manager = LeaseManagerBuilder::new(client.clone(), LEASE_NAME)
            .with_namespace(&settings.namespace)
            .with_identity(&settings.identity)
            .with_duration(settings.lease_duration.as_secs().max(1))
            .with_grace(settings.lease_grace.as_secs().max(1))
            // One field manager per replica: taking a free lease is a server-side apply without
            // force, and only a conflict with the other replicas' managers stops two of them
            // from taking it at once (with one shared manager both win and both lead).
            .with_field_manager(format!("{FIELD_MANAGER}/{}", settings.identity))
            .build()
            .await?;
        let (rx, task) = manager.watch().await;
        (rx, Some(task))
    } else {
        let (tx, rx) = tokio_watch::channel(true);
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
    ));
    let writer = StatusWriter::start(client.clone(), settings.write_concurrency, metrics.clone());
    let events = events::start(client.clone(), Some(settings.identity.clone()));
    // A standby replica is ready once its caches are; the leader once it has rebuilt.
    health.set_ready(!settings.leader_election);

    loop {
        // Wait to lead.
        while !*leader.borrow_and_update() {
            health.set_ready(true);
            metrics.queued_triggers.set(gauge(triggers.len()));
            tokio::select! {
                changed = leader.changed() => if changed.is_err() { anyhow::bail!("leader election stopped") },
                () = &mut shutdown => return finish(leader, lease_task).await,
                // A standby acts on nothing: the full pass on taking over covers every change,
                // so changes are dropped as they come instead of piling up.
                Some(_) = triggers.recv() => while triggers.try_recv().is_ok() {},
            }
        }
        metrics.leader.set(1);
        health.set_ready(false);
        tracing::info!(identity = %settings.identity, "leading");

        // Triggers that queued up while following are covered by the full pass below. Drop them
        // before listing, not after: a change made after the list must still be handled.
        while triggers.try_recv().is_ok() {}
        // A fresh, consistent list: the previous leader's last writes are in it even if the
        // watch has not delivered them yet, so nothing it assigned is handed out again.
        let services = match fresh_services(&client).await {
            Ok(services) => services,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list Services; retrying");
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
            writer: writer.clone(),
            events: events.clone(),
            metrics: metrics.clone(),
            report: report_tx.clone(),
            outcome: Default::default(),
            serving: Default::default(),
            pool_grace: settings.pool_grace,
            absent: Default::default(),
            warned: Default::default(),
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
                changed = leader.changed() => {
                    if changed.is_err() || !*leader.borrow() { break true; }
                }
                () = until(core.next_deadline()) => {
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
        metrics.leader.set(0);
        if !lost {
            return finish(leader, lease_task).await;
        }
        tracing::warn!("lost the leader lease; standing by");
    }
}

/// Completes at `deadline`, never without one.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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
    let mut config = false;
    let mut relisted = false;
    let mut next = Some(first);
    while let Some(t) = next {
        match t {
            Trigger::Service(k) => {
                keys.insert(k);
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
    for key in &keys {
        released |= core.reconcile_key(key);
    }
    if released {
        core.reprocess_pending();
    }
    core.refresh_usage();
}

/// Gives the lease up (so a standby takes over at once) and returns.
async fn finish(
    leader: tokio_watch::Receiver<bool>,
    lease_task: Option<
        tokio::task::JoinHandle<
            Result<kube_lease_manager::LeaseManager, kube_lease_manager::LeaseManagerError>,
        >,
    >,
) -> anyhow::Result<()> {
    drop(leader);
    if let Some(task) = lease_task {
        match tokio::time::timeout(Duration::from_secs(5), task).await {
            Ok(Ok(Ok(_))) => tracing::info!("leader lease released"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "cannot release the leader lease"),
            Ok(Err(e)) => tracing::warn!(error = %e, "lease task failed"),
            Err(_) => tracing::warn!("timed out releasing the leader lease"),
        }
    }
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
                tracing::error!(error = %e, "cannot read random bytes for the membership key");
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
                    "created the speakers' membership key"
                );
                return;
            }
            Err(kube::Error::Api(e)) if e.code == 409 => return,
            Err(e) => {
                tracing::warn!(error = %e, secret = MEMBERLIST_SECRET, "cannot create the membership key; retrying");
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
