//! ferrolb's controller against a real kube-apiserver: every test starts its own control plane
//! with ferrolb's CRDs, runs the controller in-process ([`RunningController`]) and checks what a
//! user sees — Service status, the pool annotation, the `ferrolb.io/IPAssigned` condition,
//! Events (`events.k8s.io/v1`, what kube's `Recorder` writes), pool counters and conditions, the
//! `controller` ConfigurationState and the leader Lease.
//!
//! Addresses come from the documentation ranges of DESIGN.md only (the layer-2 pool range
//! 192.0.2.200–250 and 2001:db8:0:1::200–2ff). Everything the controller does asynchronously is
//! awaited with [`eventually`] and a deadline; a negative assertion ("left alone") is made only
//! after the controller provably handled something that came later.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use ferrolb_api::{ConfigurationResult, ConfigurationState, IPAddressPool};
use ferrolb_controller::k8s::{CONDITION_TYPE, LEASE_NAME};
use ferrolb_controller::metrics::ResultLabels;
use ferrolb_tests::ControlPlane;
use ferrolb_tests::controller::{RunningController, eventually, test_settings};
use ferrolb_tests::fixtures::{NAMESPACE, control_plane_with_crds, create_namespace};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::json;

/// The namespace of the test Services.
const APPS: &str = "default";
/// How long anything the controller does may take to show.
const WAIT: Duration = Duration::from_secs(30);
/// The layer-2 pool range of DESIGN.md.
const LAN: &str = "192.0.2.200-192.0.2.250";

/// Logs (of the controllers too) when `RUST_LOG` is set, e.g. `RUST_LOG=ferrolb_controller=debug`.
fn init_logs() {
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
struct Cluster {
    cp: ControlPlane,
    client: Client,
}

impl Cluster {
    async fn start() -> anyhow::Result<Self> {
        init_logs();
        let started = Instant::now();
        let cp = control_plane_with_crds().await?;
        eprintln!("control plane with CRDs ready in {:?}", started.elapsed());
        let client = cp.client();
        Ok(Self { cp, client })
    }

    /// A replica with the test settings (leader election, 3 s lease).
    fn controller(&self, identity: &str) -> anyhow::Result<RunningController> {
        RunningController::start(&self.cp, test_settings(identity))
    }

    fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), APPS)
    }

    fn pools(&self) -> Api<IPAddressPool> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    /// Creates or updates (server-side apply) an auto-assigning pool.
    async fn pool(&self, name: &str, addresses: &[&str]) -> anyhow::Result<()> {
        self.apply_pool(name, addresses, true).await
    }

    async fn apply_pool(
        &self,
        name: &str,
        addresses: &[&str],
        auto_assign: bool,
    ) -> anyhow::Result<()> {
        self.apply_pool_in(NAMESPACE, name, addresses, auto_assign)
            .await
    }

    /// Creates or updates a pool in `namespace` (the configuration namespace of a controller).
    async fn apply_pool_in(
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

    async fn create(&self, svc: Svc) -> anyhow::Result<Service> {
        let name = svc.0.metadata.name.clone().unwrap_or_default();
        self.services()
            .create(&PostParams::default(), &svc.0)
            .await
            .with_context(|| format!("creating Service {name}"))
    }

    async fn get(&self, name: &str) -> anyhow::Result<Service> {
        self.services()
            .get(name)
            .await
            .with_context(|| format!("reading Service {name}"))
    }

    /// Waits until Service `name` shows `n` ingress IPs; returns them.
    async fn wait_ips(&self, name: &str, n: usize) -> anyhow::Result<Vec<IpAddr>> {
        eventually(&format!("Service {name} has {n} IP(s)"), WAIT, || async {
            let svc = self.get(name).await?;
            let ips = ingress(&svc);
            ensure!(ips.len() == n, "{}", describe(&svc));
            Ok(ips)
        })
        .await
    }

    /// Waits until Service `name` holds exactly `want`.
    async fn wait_exact_ips(&self, name: &str, want: &[IpAddr]) -> anyhow::Result<()> {
        eventually(&format!("Service {name} holds {want:?}"), WAIT, || async {
            let svc = self.get(name).await?;
            ensure!(ingress(&svc) == want, "{}", describe(&svc));
            Ok(())
        })
        .await
    }

    /// Waits until our condition on Service `name` has `status` and `reason`.
    async fn wait_condition(
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
    async fn events(&self, name: &str) -> anyhow::Result<Vec<Event>> {
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
    async fn wait_event(&self, name: &str, reason: &str) -> anyhow::Result<Event> {
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
    async fn event_reasons(&self, name: &str) -> anyhow::Result<Vec<String>> {
        Ok(self
            .events(name)
            .await?
            .iter()
            .filter_map(|e| e.reason.clone())
            .collect())
    }

    /// Waits until pool `name`'s status shows these counters and `Valid` True.
    async fn wait_pool_counts(
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
    async fn wait_pool_valid(&self, name: &str, status: &str) -> anyhow::Result<String> {
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
    async fn lease_holder(&self) -> anyhow::Result<Option<String>> {
        self.lease_holder_in(NAMESPACE).await
    }

    /// The holder of the leader Lease in `namespace`.
    async fn lease_holder_in(&self, namespace: &str) -> anyhow::Result<Option<String>> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), namespace);
        Ok(leases
            .get_opt(LEASE_NAME)
            .await?
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity))
    }

    /// Every ingress IP of every Service, by Service name.
    async fn all_ips(&self) -> anyhow::Result<BTreeMap<String, Vec<IpAddr>>> {
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
struct Svc(Service);

/// A LoadBalancer Service `name` with TCP `ports`.
fn lb(name: &str, ports: &[i32]) -> Svc {
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
    fn annotate(mut self, key: &str, value: &str) -> Self {
        self.0
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_owned(), value.to_owned());
        self
    }

    fn spec(&mut self) -> &mut ServiceSpec {
        self.0.spec.get_or_insert_with(ServiceSpec::default)
    }

    fn load_balancer_ip(mut self, ip: &str) -> Self {
        self.spec().load_balancer_ip = Some(ip.to_owned());
        self
    }

    fn class(mut self, class: &str) -> Self {
        self.spec().load_balancer_class = Some(class.to_owned());
        self
    }

    fn require_dual_stack(mut self) -> Self {
        self.spec().ip_family_policy = Some("RequireDualStack".to_owned());
        self
    }
}

fn ingress(svc: &Service) -> Vec<IpAddr> {
    ferrolb_api::service::ingress_ips(svc)
}

fn pool_annotation(svc: &Service) -> Option<&str> {
    ferrolb_api::service::allocated_pool(svc)
}

fn our_condition(svc: &Service) -> Option<&Condition> {
    svc.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == CONDITION_TYPE)
}

/// What the controller shows on a Service, for failure messages.
fn describe(svc: &Service) -> String {
    let condition = our_condition(svc).map(|c| (&c.status, &c.reason, &c.message));
    format!(
        "Service {}: ingress {:?}, pool annotation {:?}, condition {condition:?}",
        svc.metadata.name.as_deref().unwrap_or_default(),
        ingress(svc),
        pool_annotation(svc),
    )
}

fn summarize_events(events: &[Event]) -> Vec<String> {
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

fn ip(s: &str) -> IpAddr {
    match s.parse() {
        Ok(ip) => ip,
        Err(e) => panic!("{s:?} is not an IP address: {e}"),
    }
}

fn as_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Whether `addr` lies in the inclusive range `lo`–`hi` (same family).
fn in_range(addr: IpAddr, lo: &str, hi: &str) -> bool {
    let (lo, hi) = (ip(lo), ip(hi));
    addr.is_ipv4() == lo.is_ipv4() && (as_u128(lo)..=as_u128(hi)).contains(&as_u128(addr))
}

/// Successful status writes of a replica so far.
fn status_writes(controller: &RunningController) -> u64 {
    controller
        .metrics()
        .status_writes
        .get_or_create(&ResultLabels::of("ok"))
        .get()
}

/// Asserts that a replica made exactly `n` successful status writes. The apiserver may show a
/// write a moment before the writer counts it, so this waits for the count to reach `n` first.
async fn assert_status_writes(controller: &RunningController, n: u64) -> anyhow::Result<()> {
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
struct IpHistory {
    state: Arc<Mutex<HistoryState>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
struct HistoryState {
    current: BTreeMap<String, Vec<IpAddr>>,
    /// Every distinct non-empty IP list each Service held, in order.
    held: BTreeMap<String, Vec<Vec<IpAddr>>>,
    /// "ip held by a and b" moments.
    clashes: Vec<String>,
}

impl IpHistory {
    fn start(client: Client) -> Self {
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

    fn snapshot(&self) -> (BTreeMap<String, Vec<Vec<IpAddr>>>, Vec<String>) {
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
    fn record(&mut self, svc: &Service) {
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

#[tokio::test]
async fn a_service_gets_an_ip_from_the_pool_with_annotation_condition_event_and_pool_counters()
-> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.pool("lan", &[LAN]).await?;
    let _controller = c.controller("ctl")?;

    c.create(lb("web", &[80])).await?;
    let ips = c.wait_ips("web", 1).await?;
    assert!(in_range(ips[0], "192.0.2.200", "192.0.2.250"), "{ips:?}");

    let svc = c.get("web").await?;
    assert_eq!(pool_annotation(&svc), Some("lan"), "{}", describe(&svc));
    let ingress_entry = &svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default()[0];
    assert_eq!(ingress_entry.ip_mode.as_deref(), Some("VIP"));
    let condition = our_condition(&svc).context("no ferrolb.io/IPAssigned condition")?;
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("True", "Allocated")
    );
    assert!(
        condition.message.contains(&ips[0].to_string()) && condition.message.contains("lan"),
        "{}",
        condition.message
    );
    assert_eq!(condition.observed_generation, svc.metadata.generation);

    let event = c.wait_event("web", "IPAllocated").await?;
    assert_eq!(event.type_.as_deref(), Some("Normal"));
    let note = event.note.unwrap_or_default();
    assert!(note.contains(&ips[0].to_string()), "{note}");
    assert_eq!(
        event.reporting_controller.as_deref(),
        Some("ferrolb-controller")
    );

    let status = c.wait_pool_counts("lan", 1, 0).await?;
    assert_eq!(status.available_ipv4, 50, "{status:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// b. Requested IPs.

#[tokio::test]
async fn requested_ips_come_from_either_annotation_or_the_spec_field_but_not_both()
-> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.pool("lan", &[LAN]).await?;
    let _controller = c.controller("ctl")?;

    c.create(lb("ours", &[80]).annotate("ferrolb.io/loadBalancerIPs", "192.0.2.210"))
        .await?;
    c.create(lb("metallb", &[80]).annotate("metallb.universe.tf/loadBalancerIPs", "192.0.2.211"))
        .await?;
    c.create(lb("spec-field", &[80]).load_balancer_ip("192.0.2.212"))
        .await?;
    c.create(
        lb("both", &[80])
            .annotate("ferrolb.io/loadBalancerIPs", "192.0.2.213")
            .load_balancer_ip("192.0.2.214"),
    )
    .await?;

    c.wait_exact_ips("ours", &[ip("192.0.2.210")]).await?;
    c.wait_exact_ips("metallb", &[ip("192.0.2.211")]).await?;
    c.wait_exact_ips("spec-field", &[ip("192.0.2.212")]).await?;

    // The deprecated key works, with a warning naming its replacement.
    let deprecated = c.wait_event("metallb", "DeprecatedAnnotation").await?;
    assert_eq!(deprecated.type_.as_deref(), Some("Warning"));
    let note = deprecated.note.unwrap_or_default();
    assert!(
        note.contains("metallb.universe.tf/loadBalancerIPs")
            && note.contains("ferrolb.io/loadBalancerIPs"),
        "{note}"
    );
    assert!(
        !c.event_reasons("ours")
            .await?
            .contains(&"DeprecatedAnnotation".to_owned())
    );

    // Both ways at once: refused, with a reason the user can act on.
    let condition = c
        .wait_condition("both", "False", "LoadBalancerFailed")
        .await?;
    assert!(
        condition.message.contains("mutually exclusive"),
        "{}",
        condition.message
    );
    let failed = c.wait_event("both", "LoadBalancerFailed").await?;
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    let both = c.get("both").await?;
    assert!(ingress(&both).is_empty(), "{}", describe(&both));
    assert_eq!(pool_annotation(&both), None);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// c. Named pools.

#[tokio::test]
async fn a_pool_without_auto_assign_serves_only_services_that_name_it() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.apply_pool("reserved", &["192.0.2.240-192.0.2.245"], false)
        .await?;
    let _controller = c.controller("ctl")?;

    c.create(lb("unnamed", &[80])).await?;
    c.create(lb("named", &[80]).annotate("ferrolb.io/address-pool", "reserved"))
        .await?;
    let named = c.wait_ips("named", 1).await?;
    assert!(
        in_range(named[0], "192.0.2.240", "192.0.2.245"),
        "{named:?}"
    );
    assert_eq!(pool_annotation(&c.get("named").await?), Some("reserved"));

    // Without a name, a pool that does not auto-assign is not a candidate.
    c.wait_condition("unnamed", "False", "AllocationFailed")
        .await?;
    c.wait_event("unnamed", "AllocationFailed").await?;
    assert!(ingress(&c.get("unnamed").await?).is_empty());

    // An auto-assigning pool appears: the waiting Service gets its IP there.
    c.pool("general", &["192.0.2.200-192.0.2.209"]).await?;
    let unnamed = c.wait_ips("unnamed", 1).await?;
    assert!(
        in_range(unnamed[0], "192.0.2.200", "192.0.2.209"),
        "{unnamed:?}"
    );
    assert_eq!(pool_annotation(&c.get("unnamed").await?), Some("general"));
    c.wait_condition("unnamed", "True", "Allocated").await?;
    // The named one stayed where it was.
    assert_eq!(ingress(&c.get("named").await?), named);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// d. Sharing.

#[tokio::test]
async fn services_with_one_sharing_key_and_distinct_ports_share_an_ip_and_others_are_refused_it()
-> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.pool("lan", &[LAN]).await?;
    let _controller = c.controller("ctl")?;

    c.create(lb("http", &[80]).annotate("ferrolb.io/allow-shared-ip", "web"))
        .await?;
    let shared = c.wait_ips("http", 1).await?;
    c.create(lb("https", &[443]).annotate("ferrolb.io/allow-shared-ip", "web"))
        .await?;
    assert_eq!(c.wait_ips("https", 1).await?, shared);

    let wanted = shared[0].to_string();
    // Same key, but port 80 is taken on that IP.
    c.create(
        lb("clash", &[80, 8080])
            .annotate("ferrolb.io/allow-shared-ip", "web")
            .annotate("ferrolb.io/loadBalancerIPs", &wanted),
    )
    .await?;
    // A free port, but another key.
    c.create(
        lb("stranger", &[9090])
            .annotate("ferrolb.io/allow-shared-ip", "other")
            .annotate("ferrolb.io/loadBalancerIPs", &wanted),
    )
    .await?;
    for refused in ["clash", "stranger"] {
        let condition = c
            .wait_condition(refused, "False", "AllocationFailed")
            .await?;
        assert!(
            condition.message.contains(&wanted),
            "{refused}: {}",
            condition.message
        );
        let event = c.wait_event(refused, "AllocationFailed").await?;
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        let svc = c.get(refused).await?;
        assert!(ingress(&svc).is_empty(), "{}", describe(&svc));
    }
    // The sharers kept it.
    assert_eq!(ingress(&c.get("http").await?), shared);
    assert_eq!(ingress(&c.get("https").await?), shared);
    c.wait_pool_counts("lan", 1, 0).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// e. Dual stack.

#[tokio::test]
async fn a_require_dual_stack_service_gets_an_ipv4_and_an_ipv6_address_from_one_pool()
-> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.pool(
        "dual",
        &[
            "192.0.2.200-192.0.2.210",
            "2001:db8:0:1::200-2001:db8:0:1::2ff",
        ],
    )
    .await?;
    let _controller = c.controller("ctl")?;

    let created = c.create(lb("dual", &[80]).require_dual_stack()).await?;
    let families = created.spec.and_then(|s| s.ip_families).unwrap_or_default();
    assert_eq!(
        families,
        ["IPv4", "IPv6"],
        "the apiserver is not dual-stack"
    );

    let ips = c.wait_ips("dual", 2).await?;
    assert!(in_range(ips[0], "192.0.2.200", "192.0.2.210"), "{ips:?}");
    assert!(
        in_range(ips[1], "2001:db8:0:1::200", "2001:db8:0:1::2ff"),
        "{ips:?}"
    );
    assert_eq!(pool_annotation(&c.get("dual").await?), Some("dual"));
    c.wait_condition("dual", "True", "Allocated").await?;
    c.wait_pool_counts("dual", 1, 1).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// f. Exhaustion.

#[tokio::test]
async fn an_exhausted_pool_refuses_a_service_until_another_releases_its_ip() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.pool("tiny", &["192.0.2.200-192.0.2.201"]).await?;
    let _controller = c.controller("ctl")?;

    c.create(lb("one", &[80])).await?;
    let one = c.wait_ips("one", 1).await?;
    c.create(lb("two", &[80])).await?;
    let two = c.wait_ips("two", 1).await?;
    assert_ne!(one, two);

    c.create(lb("three", &[80])).await?;
    let condition = c
        .wait_condition("three", "False", "AllocationFailed")
        .await?;
    assert!(condition.message.contains("tiny"), "{}", condition.message);
    let event = c.wait_event("three", "AllocationFailed").await?;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let status = c.wait_pool_counts("tiny", 2, 0).await?;
    assert_eq!(status.available_ipv4, 0, "{status:?}");

    // Freeing an IP is enough: "three" is not touched again.
    let untouched = c.get("three").await?.metadata.generation;
    c.services().delete("one", &DeleteParams::default()).await?;
    c.wait_exact_ips("three", &one).await?;
    c.wait_condition("three", "True", "Allocated").await?;
    let three = c.get("three").await?;
    assert_eq!(three.metadata.generation, untouched);
    assert_eq!(ingress(&c.get("two").await?), two);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// g. Pool changes.

#[tokio::test]
async fn shrinking_a_pool_moves_only_the_service_whose_ip_left_it() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let history = IpHistory::start(c.client.clone());
    c.pool("lan", &["192.0.2.200-192.0.2.204"]).await?;
    let _controller = c.controller("ctl")?;

    let mut before = BTreeMap::new();
    for name in ["a", "b", "c"] {
        c.create(lb(name, &[80])).await?;
        before.insert(name, c.wait_ips(name, 1).await?[0]);
    }
    // The pool loses c's address and keeps the other four.
    let remaining: Vec<String> = (200..=204)
        .map(|n| ip(&format!("192.0.2.{n}")))
        .filter(|addr| *addr != before["c"])
        .map(|addr| format!("{addr}/32"))
        .collect();
    let remaining: Vec<&str> = remaining.iter().map(String::as_str).collect();
    c.pool("lan", &remaining).await?;

    let moved = eventually("c moves to a remaining address", WAIT, || async {
        let svc = c.get("c").await?;
        let ips = ingress(&svc);
        ensure!(
            ips.len() == 1 && ips[0] != before["c"],
            "{}",
            describe(&svc)
        );
        Ok(ips[0])
    })
    .await?;
    assert!(
        remaining.contains(&format!("{moved}/32").as_str()),
        "{moved} is not in {remaining:?}"
    );
    assert!(moved != before["a"] && moved != before["b"], "{moved}");
    let clear = c.wait_event("c", "ClearAssignment").await?;
    assert!(
        clear
            .note
            .as_deref()
            .is_some_and(|n| n.contains(&before["c"].to_string())),
        "{clear:?}"
    );
    c.wait_condition("c", "True", "Allocated").await?;

    for name in ["a", "b"] {
        assert_eq!(ingress(&c.get(name).await?), [before[name]]);
        let reasons = c.event_reasons(name).await?;
        assert!(
            !reasons.contains(&"ClearAssignment".to_owned()),
            "{name}: {reasons:?}"
        );
    }
    let (held, clashes) = history.snapshot();
    assert!(clashes.is_empty(), "{clashes:?}");
    for name in ["a", "b"] {
        assert_eq!(held[name], [vec![before[name]]], "{name} moved: {held:?}");
    }
    assert_eq!(held["c"], [vec![before["c"]], vec![moved]], "{held:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// h. Restarts.

#[tokio::test]
async fn a_restarted_or_crashed_controller_keeps_every_ip_where_it_was() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let history = IpHistory::start(c.client.clone());
    c.pool("lan", &[LAN]).await?;

    let first = c.controller("first")?;
    let names: Vec<String> = (0..5).map(|i| format!("svc-{i}")).collect();
    for name in &names {
        c.create(lb(name, &[80])).await?;
    }
    for name in &names {
        c.wait_condition(name, "True", "Allocated").await?;
    }
    let before = c.all_ips().await?;
    assert_eq!(before.len(), 5, "{before:?}");

    // A graceful stop gives the lease up at once.
    first.stop()?;
    assert_eq!(c.lease_holder().await?, None);
    // While no controller runs, one Service goes and one comes.
    c.services()
        .delete("svc-4", &DeleteParams::default())
        .await?;
    c.create(lb("while-stopped", &[80])).await?;

    let second = c.controller("second")?;
    second.wait_leading(WAIT).await?;
    let new_ip = c.wait_ips("while-stopped", 1).await?[0];
    let after = c.all_ips().await?;
    for (name, ips) in &before {
        if name != "svc-4" {
            assert_eq!(after.get(name), Some(ips), "{name} moved: {after:?}");
        }
    }
    assert!(
        !before
            .iter()
            .any(|(n, ips)| n != "svc-4" && ips.contains(&new_ip)),
        "{new_ip} was handed out twice: {after:?}"
    );
    // Rebuilding wrote nothing: the only write is the new Service's.
    c.wait_condition("while-stopped", "True", "Allocated")
        .await?;
    assert_status_writes(&second, 1).await?;

    // A crash keeps the lease until it expires, and moves nothing either.
    c.create(lb("before-crash", &[80])).await?;
    c.wait_ips("before-crash", 1).await?;
    let before_crash = c.all_ips().await?;
    second.kill()?;
    assert_eq!(c.lease_holder().await?.as_deref(), Some("second"));

    let third = c.controller("third")?;
    third.wait_leading(WAIT).await?;
    c.create(lb("after-crash", &[80])).await?;
    let newest = c.wait_ips("after-crash", 1).await?[0];
    let after_crash = c.all_ips().await?;
    for (name, ips) in &before_crash {
        assert_eq!(
            after_crash.get(name),
            Some(ips),
            "{name} moved: {after_crash:?}"
        );
        assert!(!ips.contains(&newest), "{newest} handed out twice");
    }
    assert_eq!(c.lease_holder().await?.as_deref(), Some("third"));
    c.wait_condition("after-crash", "True", "Allocated").await?;
    assert_status_writes(&third, 1).await?;

    let (held, clashes) = history.snapshot();
    assert!(clashes.is_empty(), "{clashes:?}");
    for (name, ips) in &held {
        assert_eq!(ips.len(), 1, "{name} held several IP sets: {ips:?}");
    }
    third.stop()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// i. Leader election.

#[tokio::test]
async fn a_standby_replica_takes_over_from_a_killed_leader_without_handing_out_an_ip_twice()
-> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let history = IpHistory::start(c.client.clone());
    c.pool("lan", &[LAN]).await?;

    let a = c.controller("replica-a")?;
    let b = c.controller("replica-b")?;
    // While both run, both must never lead at once (sampled every few milliseconds).
    let both_led = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (a, b, both_led) = (a.metrics(), b.metrics(), both_led.clone());
        tokio::spawn(async move {
            loop {
                if a.leader.get() == 1 && b.leader.get() == 1 {
                    both_led.store(true, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let leading = eventually("exactly one replica leads", WAIT, || async {
        let holder = c.lease_holder().await?.context("the lease has no holder")?;
        ensure!(
            a.is_leader() != b.is_leader(),
            "a leads: {}, b leads: {}",
            a.is_leader(),
            b.is_leader()
        );
        let leading = if a.is_leader() {
            a.identity()
        } else {
            b.identity()
        };
        ensure!(holder == leading, "lease held by {holder}, {leading} leads");
        Ok(leading.to_owned())
    })
    .await?;
    let (leader, standby) = if leading == a.identity() {
        (a, b)
    } else {
        (b, a)
    };
    standby.wait_ready(WAIT).await?;
    assert!(!standby.is_leader());

    let first: Vec<String> = (0..4).map(|i| format!("first-{i}")).collect();
    for name in &first {
        c.create(lb(name, &[80])).await?;
    }
    for name in &first {
        c.wait_condition(name, "True", "Allocated").await?;
    }
    let before = c.all_ips().await?;
    // The standby wrote nothing.
    assert_eq!(status_writes(&standby), 0);
    sampler.abort();
    assert!(
        !both_led.load(Ordering::Relaxed),
        "both replicas led at the same time"
    );

    leader.kill()?;
    let killed = Instant::now();
    // Created while nobody leads: served by the next leader.
    c.create(lb("orphan", &[80])).await?;
    standby.wait_leading(WAIT).await?;
    let takeover = killed.elapsed();
    eprintln!("takeover after {takeover:?} (lease 3 s)");
    assert!(
        takeover < Duration::from_secs(10),
        "the standby took {takeover:?} to take over a 3 s lease"
    );
    assert_eq!(c.lease_holder().await?.as_deref(), Some(standby.identity()));

    let later: Vec<String> = (0..4).map(|i| format!("later-{i}")).collect();
    for name in &later {
        c.create(lb(name, &[80])).await?;
    }
    for name in later.iter().chain([&"orphan".to_owned()]) {
        c.wait_condition(name, "True", "Allocated").await?;
    }
    let after = c.all_ips().await?;
    assert_eq!(after.len(), 9, "{after:?}");
    for (name, ips) in &before {
        assert_eq!(after.get(name), Some(ips), "{name} moved");
    }
    let all: Vec<IpAddr> = after.values().flatten().copied().collect();
    let distinct: BTreeSet<IpAddr> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "an IP is held twice: {after:?}");
    // The new leader wrote only for the Services it assigned.
    assert_status_writes(&standby, 5).await?;

    let (held, clashes) = history.snapshot();
    assert!(clashes.is_empty(), "{clashes:?}");
    for (name, ips) in &held {
        assert_eq!(ips.len(), 1, "{name} held several IP sets: {ips:?}");
    }
    standby.stop()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// j. Load-balancer classes.

#[tokio::test]
async fn services_of_another_load_balancer_class_are_left_alone() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let history = IpHistory::start(c.client.clone());
    c.pool("lan", &["192.0.2.200-192.0.2.229"]).await?;

    // Without a class setting: class-less Services only.
    let classless = c.controller("classless")?;
    // Leading first, so that every Service below is one change for it (status writes counted).
    classless.wait_leading(WAIT).await?;
    c.create(lb("other", &[80]).class("other.io/lb")).await?;
    c.create(lb("ours-early", &[80]).class("ferrolb.io/lb"))
        .await?;
    c.create(lb("plain", &[80])).await?;
    let plain = c.wait_ips("plain", 1).await?;
    assert_eq!(pool_annotation(&c.get("plain").await?), Some("lan"));
    // "plain" came last, so the others were looked at before it.
    for name in ["other", "ours-early"] {
        let svc = c.get(name).await?;
        assert!(ingress(&svc).is_empty(), "{}", describe(&svc));
        assert_eq!(pool_annotation(&svc), None);
        assert!(our_condition(&svc).is_none(), "{}", describe(&svc));
        assert_eq!(c.events(name).await?.len(), 0);
    }

    // A second instance, for class ferrolb.io/lb only, with a configuration namespace (pools,
    // lease) of its own, runs next to the first.
    let classy_ns = "ferrolb-classy";
    create_namespace(&c.cp, classy_ns).await?;
    c.apply_pool_in(classy_ns, "classy", &["192.0.2.230-192.0.2.239"], true)
        .await?;
    let mut settings = test_settings("classy");
    settings.namespace = classy_ns.to_owned();
    settings.lb_class = Some("ferrolb.io/lb".to_owned());
    let classy = RunningController::start(&c.cp, settings)?;
    classy.wait_leading(WAIT).await?;

    let ours_early = c.wait_ips("ours-early", 1).await?;
    c.create(lb("plain-2", &[80])).await?;
    c.create(lb("ours", &[80]).class("ferrolb.io/lb")).await?;
    let ours = c.wait_ips("ours", 1).await?;
    let plain_2 = c.wait_ips("plain-2", 1).await?;
    for (name, ips) in [("ours-early", &ours_early), ("ours", &ours)] {
        assert!(
            in_range(ips[0], "192.0.2.230", "192.0.2.239"),
            "{name}: {ips:?}"
        );
        assert_eq!(pool_annotation(&c.get(name).await?), Some("classy"));
        c.wait_condition(name, "True", "Allocated").await?;
    }
    assert!(
        in_range(plain_2[0], "192.0.2.200", "192.0.2.229"),
        "{plain_2:?}"
    );
    assert_eq!(pool_annotation(&c.get("plain-2").await?), Some("lan"));
    c.wait_condition("plain-2", "True", "Allocated").await?;

    // Each instance wrote only its own Services: the class-less ones keep what the first wrote.
    let svc = c.get("plain").await?;
    assert_eq!(ingress(&svc), plain, "{}", describe(&svc));
    assert_eq!(pool_annotation(&svc), Some("lan"));
    assert!(our_condition(&svc).is_some_and(|c| c.status == "True"));
    let reasons = c.event_reasons("plain").await?;
    assert!(
        !reasons.contains(&"ClearAssignment".to_owned()),
        "{reasons:?}"
    );
    let svc = c.get("other").await?;
    assert!(
        ingress(&svc).is_empty() && our_condition(&svc).is_none(),
        "{}",
        describe(&svc)
    );
    assert_eq!(c.events("other").await?.len(), 0);
    // plain and plain-2; ours-early and ours.
    assert_status_writes(&classless, 2).await?;
    assert_status_writes(&classy, 2).await?;
    assert_eq!(c.lease_holder().await?.as_deref(), Some("classless"));
    assert_eq!(
        c.lease_holder_in(classy_ns).await?.as_deref(),
        Some("classy")
    );

    let (held, clashes) = history.snapshot();
    assert!(clashes.is_empty(), "{clashes:?}");
    for (name, ips) in &held {
        assert_eq!(ips.len(), 1, "{name} held several IP sets: {ips:?}");
    }
    classy.stop()?;
    classless.stop()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// k. Type changes.

#[tokio::test]
async fn a_service_that_stops_being_a_load_balancer_loses_its_ip_to_a_pending_one()
-> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.pool("single", &["192.0.2.200/32"]).await?;
    let _controller = c.controller("ctl")?;

    c.create(lb("first", &[80])).await?;
    c.wait_exact_ips("first", &[ip("192.0.2.200")]).await?;
    c.create(lb("waiting", &[80])).await?;
    c.wait_condition("waiting", "False", "AllocationFailed")
        .await?;

    c.services()
        .patch(
            "first",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"type": "ClusterIP"}})),
        )
        .await?;
    eventually("first is cleared", WAIT, || async {
        let svc = c.get("first").await?;
        ensure!(
            ingress(&svc).is_empty()
                && pool_annotation(&svc).is_none()
                && our_condition(&svc).is_none(),
            "{}",
            describe(&svc)
        );
        Ok(())
    })
    .await?;
    c.wait_event("first", "ClearAssignment").await?;
    c.wait_exact_ips("waiting", &[ip("192.0.2.200")]).await?;
    c.wait_condition("waiting", "True", "Allocated").await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// l. Invalid configuration.

#[tokio::test]
async fn overlapping_pools_are_reported_invalid_while_the_valid_pool_keeps_serving()
-> anyhow::Result<()> {
    let c = Cluster::start().await?;
    // "lan" is older (and sorts first should both be created in the same second).
    c.pool("lan", &["192.0.2.200-192.0.2.220"]).await?;
    c.pool("overlap", &["192.0.2.210-192.0.2.230"]).await?;
    let controller = c.controller("ctl")?;

    let message = c.wait_pool_valid("overlap", "False").await?;
    assert!(
        message.contains("\"lan\"") && message.contains("spec.addresses[0]"),
        "{message}"
    );
    c.wait_pool_counts("lan", 0, 0).await?;

    let state = eventually("ConfigurationState controller", WAIT, || async {
        let states: Api<ConfigurationState> = Api::namespaced(c.client.clone(), NAMESPACE);
        let state = states.get("controller").await?;
        state.status.context("no status yet")
    })
    .await?;
    assert_eq!(
        state.result,
        Some(ConfigurationResult::Invalid),
        "{state:?}"
    );
    let summary = state.error_summary.unwrap_or_default();
    assert!(
        summary.contains("overlap") && summary.contains("\"lan\""),
        "{summary}"
    );
    assert_eq!(controller.metrics().config_valid.get(), 0);

    c.create(lb("web", &[80])).await?;
    let ips = c.wait_ips("web", 1).await?;
    assert!(in_range(ips[0], "192.0.2.200", "192.0.2.220"), "{ips:?}");
    assert_eq!(pool_annotation(&c.get("web").await?), Some("lan"));
    // An address only the invalid pool has is not handed out.
    c.create(lb("beyond", &[80]).annotate("ferrolb.io/loadBalancerIPs", "192.0.2.225"))
        .await?;
    c.wait_condition("beyond", "False", "AllocationFailed")
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_pool_edited_into_an_invalid_state_keeps_serving_with_its_last_valid_version()
-> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.pool("other", &["198.51.100.0/28"]).await?;
    c.pool("lan", &["192.0.2.200-192.0.2.210"]).await?;
    let _controller = c.controller("ctl")?;
    c.create(lb("web", &[80]).annotate("ferrolb.io/address-pool", "lan"))
        .await?;
    let before = c.wait_ips("web", 1).await?;
    assert!(
        in_range(before[0], "192.0.2.200", "192.0.2.210"),
        "{before:?}"
    );

    // An edit that overlaps the older pool "other": lan is invalid, but its running Services
    // keep their IPs and it still serves from its last valid addresses.
    c.pool("lan", &["192.0.2.200-192.0.2.210", "198.51.100.8/29"])
        .await?;
    let message = c.wait_pool_valid("lan", "False").await?;
    assert!(
        message.contains("\"other\"") && message.contains("last valid version"),
        "{message}"
    );
    c.create(lb("api", &[80]).annotate("ferrolb.io/address-pool", "lan"))
        .await?;
    let api = c.wait_ips("api", 1).await?;
    assert!(in_range(api[0], "192.0.2.200", "192.0.2.210"), "{api:?}");
    assert_eq!(ingress(&c.get("web").await?), before, "web kept its IP");

    // Fixed: valid again, nothing moved.
    c.pool("lan", &["192.0.2.200-192.0.2.220"]).await?;
    c.wait_pool_valid("lan", "True").await?;
    assert_eq!(ingress(&c.get("web").await?), before);
    assert_eq!(ingress(&c.get("api").await?), api);
    Ok(())
}
