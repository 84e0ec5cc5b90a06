//! The controller suite's fixture: a control plane, replicas, and Service builders.

pub(crate) use std::collections::{BTreeMap, BTreeSet};
pub(crate) use std::net::IpAddr;
pub(crate) use std::sync::atomic::{AtomicBool, Ordering};
pub(crate) use std::sync::{Arc, Mutex};
pub(crate) use std::time::{Duration, Instant};

pub(crate) use anyhow::{Context, ensure};
pub(crate) use ferrolb_api::{ConfigurationResult, ConfigurationState, IPAddressPool};
pub(crate) use ferrolb_controller::k8s::{CONDITION_TYPE, LEASE_NAME, Settings};
pub(crate) use ferrolb_controller::metrics::ResultLabels;
pub(crate) use ferrolb_tests::audit::Audit;
pub(crate) use ferrolb_tests::chaos::proxy::{Mode, Proxy};
pub(crate) use ferrolb_tests::controller::{RunningController, eventually, test_settings};
pub(crate) use ferrolb_tests::fixtures::{
    NAMESPACE, control_plane_with_crds_from, create_namespace,
};
pub(crate) use ferrolb_tests::{ControlPlane, ControlPlaneBuilder};
pub(crate) use futures::StreamExt;
pub(crate) use k8s_openapi::api::coordination::v1::Lease;
pub(crate) use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
pub(crate) use k8s_openapi::api::events::v1::Event;
pub(crate) use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
pub(crate) use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
pub(crate) use kube::runtime::watcher;
pub(crate) use kube::{Api, Client};
pub(crate) use serde_json::json;

/// The namespace of the test Services.
pub(crate) const APPS: &str = "default";
/// How long anything the controller does may take to show.
pub(crate) const WAIT: Duration = Duration::from_secs(30);
/// The layer-2 pool range of DESIGN.md.
pub(crate) const LAN: &str = "192.0.2.200-192.0.2.250";

/// Logs (of the controllers too) when `RUST_LOG` is set, e.g. `RUST_LOG=ferrolb_controller=debug`.
pub(crate) fn init_logs() {
    if std::env::var_os("RUST_LOG").is_none() {
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

// ---------------------------------------------------------------------------------------------
// Test support.

/// A control plane with ferrolb's CRDs and namespace, and an admin client.
pub(crate) struct Cluster {
    pub(crate) cp: ControlPlane,
    pub(crate) client: Client,
}

impl Cluster {
    pub(crate) async fn start() -> anyhow::Result<Self> {
        Self::start_from(ControlPlane::builder()).await
    }

    /// A control plane built by `builder` (with an audit log, say).
    pub(crate) async fn start_from(builder: ControlPlaneBuilder) -> anyhow::Result<Self> {
        init_logs();
        let started = Instant::now();
        let cp = control_plane_with_crds_from(builder).await?;
        eprintln!("control plane with CRDs ready in {:?}", started.elapsed());
        let client = cp.client();
        Ok(Self { cp, client })
    }

    /// A replica with the test settings (leader election, 3 s lease).
    pub(crate) fn controller(&self, identity: &str) -> anyhow::Result<RunningController> {
        RunningController::start(&self.cp, test_settings(identity))
    }

    /// A replica with `settings` whose every request goes through `proxy`, which the test can
    /// hold or slow down.
    pub(crate) fn controller_behind(
        &self,
        proxy: &Proxy,
        settings: Settings,
    ) -> anyhow::Result<RunningController> {
        let mut config = self.cp.admin_config();
        config.cluster_url = proxy.https_url().parse()?;
        RunningController::start_with_client_config(config, settings)
    }

    /// A replica with `settings` that authenticates as user `user` (in system:masters: it may
    /// do anything, but audit logs and admission policies tell it apart), through `proxy` if
    /// one is given.
    pub(crate) async fn controller_as(
        &self,
        user: &str,
        proxy: Option<&Proxy>,
        settings: Settings,
    ) -> anyhow::Result<RunningController> {
        let path = self.cp.kubeconfig_for_user(user, &["system:masters"])?;
        let kubeconfig = kube::config::Kubeconfig::read_from(&path)?;
        let mut config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
        if let Some(proxy) = proxy {
            config.cluster_url = proxy.https_url().parse()?;
        }
        RunningController::start_with_client_config(config, settings)
    }

    pub(crate) fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), APPS)
    }

    pub(crate) fn pools(&self) -> Api<IPAddressPool> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    /// Creates or updates (server-side apply) an auto-assigning pool.
    pub(crate) async fn pool(&self, name: &str, addresses: &[&str]) -> anyhow::Result<()> {
        self.apply_pool(name, addresses, true).await
    }

    pub(crate) async fn apply_pool(
        &self,
        name: &str,
        addresses: &[&str],
        auto_assign: bool,
    ) -> anyhow::Result<()> {
        self.apply_pool_in(NAMESPACE, name, addresses, auto_assign)
            .await
    }

    /// Creates or updates a pool in `namespace` (the configuration namespace of a controller).
    pub(crate) async fn apply_pool_in(
        &self,
        namespace: &str,
        name: &str,
        addresses: &[&str],
        auto_assign: bool,
    ) -> anyhow::Result<()> {
        let body = json!({
            "apiVersion": ferrolb_api::API_VERSION,
            "kind": "IPAddressPool",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"addresses": addresses, "autoAssign": auto_assign},
        });
        Api::<IPAddressPool>::namespaced(self.client.clone(), namespace)
            .patch(
                name,
                &PatchParams::apply("ferrolb-tests").force(),
                &Patch::Apply(&body),
            )
            .await
            .with_context(|| format!("applying IPAddressPool {name}"))?;
        Ok(())
    }

    pub(crate) async fn create(&self, svc: Svc) -> anyhow::Result<Service> {
        let name = svc.0.metadata.name.clone().unwrap_or_default();
        self.services()
            .create(&PostParams::default(), &svc.0)
            .await
            .with_context(|| format!("creating Service {name}"))
    }

    /// Creates a Service in the namespace it names.
    pub(crate) async fn create_in(&self, svc: Svc) -> anyhow::Result<Service> {
        let name = svc.0.metadata.name.clone().unwrap_or_default();
        let namespace = svc.0.metadata.namespace.clone().unwrap_or_default();
        Api::<Service>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &svc.0)
            .await
            .with_context(|| format!("creating Service {namespace}/{name}"))
    }

    /// Every Service in `namespace`.
    pub(crate) async fn services_in(&self, namespace: &str) -> anyhow::Result<Vec<Service>> {
        Ok(Api::<Service>::namespaced(self.client.clone(), namespace)
            .list(&ListParams::default())
            .await?
            .items)
    }

    pub(crate) async fn get(&self, name: &str) -> anyhow::Result<Service> {
        self.services()
            .get(name)
            .await
            .with_context(|| format!("reading Service {name}"))
    }

    /// Waits until Service `name` shows `n` ingress IPs; returns them.
    pub(crate) async fn wait_ips(&self, name: &str, n: usize) -> anyhow::Result<Vec<IpAddr>> {
        eventually(&format!("Service {name} has {n} IP(s)"), WAIT, || async {
            let svc = self.get(name).await?;
            let ips = ingress(&svc);
            ensure!(ips.len() == n, "{}", describe(&svc));
            Ok(ips)
        })
        .await
    }

    /// Waits until Service `name` holds exactly `want`.
    pub(crate) async fn wait_exact_ips(&self, name: &str, want: &[IpAddr]) -> anyhow::Result<()> {
        eventually(&format!("Service {name} holds {want:?}"), WAIT, || async {
            let svc = self.get(name).await?;
            ensure!(ingress(&svc) == want, "{}", describe(&svc));
            Ok(())
        })
        .await
    }

    /// Waits until our condition on Service `name` has `status` and `reason`.
    pub(crate) async fn wait_condition(
        &self,
        name: &str,
        status: &str,
        reason: &str,
    ) -> anyhow::Result<Condition> {
        let what = format!("Service {name} has condition {CONDITION_TYPE}={status} ({reason})");
        eventually(&what, WAIT, || async {
            let svc = self.get(name).await?;
            let condition = our_condition(&svc).cloned();
            ensure!(
                condition
                    .as_ref()
                    .is_some_and(|c| c.status == status && c.reason == reason),
                "{}",
                describe(&svc)
            );
            condition.context("no condition")
        })
        .await
    }

    /// Every Event about Service `name`.
    pub(crate) async fn events(&self, name: &str) -> anyhow::Result<Vec<Event>> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), APPS);
        let events = api.list(&ListParams::default()).await?.items;
        Ok(events
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().is_some_and(|r| {
                    r.kind.as_deref() == Some("Service") && r.name.as_deref() == Some(name)
                })
            })
            .collect())
    }

    /// Waits for an Event with `reason` about Service `name`; returns it.
    pub(crate) async fn wait_event(&self, name: &str, reason: &str) -> anyhow::Result<Event> {
        eventually(&format!("a {reason} Event for {name}"), WAIT, || async {
            let events = self.events(name).await?;
            let found = events.iter().find(|e| e.reason.as_deref() == Some(reason));
            found
                .cloned()
                .with_context(|| format!("Events for {name}: {:?}", summarize_events(&events)))
        })
        .await
    }

    /// The reasons of the Events about Service `name`.
    pub(crate) async fn event_reasons(&self, name: &str) -> anyhow::Result<Vec<String>> {
        Ok(self
            .events(name)
            .await?
            .iter()
            .filter_map(|e| e.reason.clone())
            .collect())
    }

    /// Waits until pool `name`'s status shows these counters and `Valid` True.
    pub(crate) async fn wait_pool_counts(
        &self,
        name: &str,
        assigned_v4: i64,
        assigned_v6: i64,
    ) -> anyhow::Result<ferrolb_api::IPAddressPoolStatus> {
        let what = format!("pool {name} counts {assigned_v4} IPv4 and {assigned_v6} IPv6");
        eventually(&what, WAIT, || async {
            let pool = self.pools().get(name).await?;
            let status = pool.status.context("no status yet")?;
            ensure!(
                status.assigned_ipv4 == assigned_v4 && status.assigned_ipv6 == assigned_v6,
                "status: {status:?}"
            );
            let valid = status
                .conditions
                .iter()
                .find(|c| c.type_ == ferrolb_api::CONDITION_VALID);
            ensure!(
                valid.is_some_and(|c| c.status == "True"),
                "status: {status:?}"
            );
            Ok(status)
        })
        .await
    }

    /// Waits until pool `name`'s `Valid` condition has `status`; returns its message.
    pub(crate) async fn wait_pool_valid(&self, name: &str, status: &str) -> anyhow::Result<String> {
        let what = format!("pool {name} Valid={status}");
        eventually(&what, WAIT, || async {
            let pool = self.pools().get(name).await?;
            let valid = pool
                .status
                .iter()
                .flat_map(|s| &s.conditions)
                .find(|c| c.type_ == ferrolb_api::CONDITION_VALID)
                .context("no Valid condition yet")?;
            ensure!(
                valid.status == status,
                "still {}: {}",
                valid.status,
                valid.message
            );
            Ok(valid.message.clone())
        })
        .await
    }

    /// The leader Lease's holder.
    pub(crate) async fn lease_holder(&self) -> anyhow::Result<Option<String>> {
        self.lease_holder_in(NAMESPACE).await
    }

    /// The holder of the leader Lease in `namespace`.
    pub(crate) async fn lease_holder_in(&self, namespace: &str) -> anyhow::Result<Option<String>> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), namespace);
        Ok(leases
            .get_opt(LEASE_NAME)
            .await?
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity))
    }

    /// Every ingress IP of every Service, by Service name.
    pub(crate) async fn all_ips(&self) -> anyhow::Result<BTreeMap<String, Vec<IpAddr>>> {
        Ok(self
            .services()
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(|s| (s.metadata.name.clone().unwrap_or_default(), ingress(s)))
            .filter(|(_, ips)| !ips.is_empty())
            .collect())
    }
}

/// A LoadBalancer Service under construction.
#[derive(Clone, Debug)]
pub(crate) struct Svc(Service);

/// A LoadBalancer Service `name` with TCP `ports`.
pub(crate) fn lb(name: &str, ports: &[i32]) -> Svc {
    Svc(Service {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(APPS.to_owned()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".to_owned()),
            selector: Some([("app".to_owned(), name.to_owned())].into()),
            ports: Some(
                ports
                    .iter()
                    .map(|p| ServicePort {
                        name: Some(format!("p{p}")),
                        port: *p,
                        protocol: Some("TCP".to_owned()),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

impl Svc {
    pub(crate) fn annotate(mut self, key: &str, value: &str) -> Self {
        self.0
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_owned(), value.to_owned());
        self
    }

    /// The Service in namespace `namespace` instead of [`APPS`].
    pub(crate) fn in_namespace(mut self, namespace: &str) -> Self {
        self.0.metadata.namespace = Some(namespace.to_owned());
        self
    }

    pub(crate) fn spec(&mut self) -> &mut ServiceSpec {
        self.0.spec.get_or_insert_with(ServiceSpec::default)
    }

    /// Type ClusterIP: no Service for a load-balancer controller.
    pub(crate) fn cluster_ip(mut self) -> Self {
        self.spec().type_ = Some("ClusterIP".to_owned());
        self
    }

    pub(crate) fn load_balancer_ip(mut self, ip: &str) -> Self {
        self.spec().load_balancer_ip = Some(ip.to_owned());
        self
    }

    pub(crate) fn class(mut self, class: &str) -> Self {
        self.spec().load_balancer_class = Some(class.to_owned());
        self
    }

    pub(crate) fn require_dual_stack(mut self) -> Self {
        self.spec().ip_family_policy = Some("RequireDualStack".to_owned());
        self
    }

    /// `spec.ipFamilies` (and PreferDualStack when there are two).
    pub(crate) fn families(mut self, families: &[&str]) -> Self {
        let spec = self.spec();
        spec.ip_families = Some(families.iter().map(|f| (*f).to_owned()).collect());
        if families.len() > 1 {
            spec.ip_family_policy = Some("PreferDualStack".to_owned());
        }
        self
    }
}

pub(crate) fn ingress(svc: &Service) -> Vec<IpAddr> {
    ferrolb_api::service::ingress_ips(svc)
}

pub(crate) fn pool_annotation(svc: &Service) -> Option<&str> {
    ferrolb_api::service::allocated_pool(svc)
}

pub(crate) fn our_condition(svc: &Service) -> Option<&Condition> {
    svc.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == CONDITION_TYPE)
}

/// What the controller shows on a Service, for failure messages.
pub(crate) fn describe(svc: &Service) -> String {
    let condition = our_condition(svc).map(|c| (&c.status, &c.reason, &c.message));
    format!(
        "Service {}: ingress {:?}, pool annotation {:?}, condition {condition:?}",
        svc.metadata.name.as_deref().unwrap_or_default(),
        ingress(svc),
        pool_annotation(svc),
    )
}

pub(crate) fn summarize_events(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {}: {}",
                e.type_.as_deref().unwrap_or_default(),
                e.reason.as_deref().unwrap_or_default(),
                e.note.as_deref().unwrap_or_default()
            )
        })
        .collect()
}

pub(crate) fn ip(s: &str) -> IpAddr {
    match s.parse() {
        Ok(ip) => ip,
        Err(e) => panic!("{s:?} is not an IP address: {e}"),
    }
}

pub(crate) fn as_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Whether `addr` lies in the inclusive range `lo`–`hi` (same family).
pub(crate) fn in_range(addr: IpAddr, lo: &str, hi: &str) -> bool {
    let (lo, hi) = (ip(lo), ip(hi));
    addr.is_ipv4() == lo.is_ipv4() && (as_u128(lo)..=as_u128(hi)).contains(&as_u128(addr))
}

/// Successful status writes of a replica so far.
pub(crate) fn status_writes(controller: &RunningController) -> u64 {
    controller
        .metrics()
        .status_writes
        .get_or_create(&ResultLabels::of("ok"))
        .get()
}

/// Status writes of a replica so far that ended with `result` (ok, error, dropped…).
pub(crate) fn status_writes_with(controller: &RunningController, result: &str) -> u64 {
    controller
        .metrics()
        .status_writes
        .get_or_create(&ResultLabels::of(result))
        .get()
}

/// Allocation decisions of a replica so far with `result` (allocated, failed, released).
pub(crate) fn allocations(controller: &RunningController, result: &str) -> u64 {
    controller
        .metrics()
        .allocations
        .get_or_create(&ResultLabels::of(result))
        .get()
}

/// Samples, every couple of milliseconds while the test awaits, whether two replicas lead at
/// once.
pub(crate) struct Overlap {
    seen: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Overlap {
    pub(crate) fn watch(a: &RunningController, b: &RunningController) -> Self {
        let seen = Arc::new(AtomicBool::new(false));
        let (a, b, flag) = (a.metrics(), b.metrics(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                if a.leader.get() == 1 && b.leader.get() == 1 {
                    flag.store(true, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        Self { seen, task }
    }

    /// Whether both led at the same time in any sample so far.
    pub(crate) fn seen(&self) -> bool {
        self.seen.load(Ordering::Relaxed)
    }
}

impl Drop for Overlap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Asserts that a replica made exactly `n` successful status writes. The apiserver may show a
/// write a moment before the writer counts it, so this waits for the count to reach `n` first.
pub(crate) async fn assert_status_writes(
    controller: &RunningController,
    n: u64,
) -> anyhow::Result<()> {
    let what = format!("{} counted {n} status writes", controller.identity());
    let counted = eventually(&what, WAIT, || async {
        let counted = status_writes(controller);
        ensure!(counted >= n, "{counted} so far");
        Ok(counted)
    })
    .await?;
    ensure!(
        counted == n,
        "{} made {counted} status writes, not {n}",
        controller.identity()
    );
    Ok(())
}

/// Watches every Service and records, in the order the apiserver committed them, the IPs each
/// one held and every moment one IP was held by two Services at once.
pub(crate) struct IpHistory {
    state: Arc<Mutex<HistoryState>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
pub(crate) struct HistoryState {
    current: BTreeMap<String, Vec<IpAddr>>,
    /// Every distinct non-empty IP list each Service held, in order.
    held: BTreeMap<String, Vec<Vec<IpAddr>>>,
    /// "ip held by a and b" moments.
    clashes: Vec<String>,
}

impl IpHistory {
    pub(crate) fn start(client: Client) -> Self {
        let state = Arc::new(Mutex::new(HistoryState::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            let stream = watcher(Api::<Service>::all(client), watcher::Config::default());
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                let Ok(mut state) = shared.lock() else { return };
                match event {
                    Ok(watcher::Event::Apply(svc) | watcher::Event::InitApply(svc)) => {
                        state.record(&svc);
                    }
                    Ok(watcher::Event::Delete(svc)) => {
                        state
                            .current
                            .remove(&svc.metadata.name.clone().unwrap_or_default());
                    }
                    _ => {}
                }
            }
        });
        Self { state, task }
    }

    pub(crate) fn snapshot(&self) -> (BTreeMap<String, Vec<Vec<IpAddr>>>, Vec<String>) {
        match self.state.lock() {
            Ok(s) => (s.held.clone(), s.clashes.clone()),
            Err(e) => panic!("IpHistory poisoned: {e}"),
        }
    }
}

impl Drop for IpHistory {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HistoryState {
    pub(crate) fn record(&mut self, svc: &Service) {
        let name = svc.metadata.name.clone().unwrap_or_default();
        let ips = ingress(svc);
        for addr in &ips {
            for (other, theirs) in &self.current {
                if *other != name && theirs.contains(addr) {
                    self.clashes
                        .push(format!("{addr} held by {other} and {name} at once"));
                }
            }
        }
        if !ips.is_empty() {
            let held = self.held.entry(name.clone()).or_default();
            if held.last() != Some(&ips) {
                held.push(ips.clone());
            }
        }
        self.current.insert(name, ips);
    }
}

// ---------------------------------------------------------------------------------------------
// a. Allocation, and how it is reported.
