//! The speaker's kube edge and decision loop: watch the cluster, keep the membership of speakers
//! running, elect per IP, hand the plan to the layer-2 announcer and the BGP sessions, and
//! report what is announced (ServiceL2Status, each BGP Service's `ferrolb.io/BGPAdvertised`
//! condition, ServiceBGPStatus with `--service-bgp-status`, Events).
//!
//! The apiserver is needed to start (to learn this node's address, its peers and the
//! configuration) but not to fail over: the caches keep the last known view, the membership runs
//! on the node network, and a change in who is live re-runs the election at once.

pub mod bgp;
pub mod condition;
mod decide;
mod decide_bgp;
mod decide_report;
mod join;
mod serving;
pub mod slim;
pub mod status;
mod sweep;
mod touched;
mod trim;
pub mod view;
mod watch;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ferrolb_api::{BGPSessionState, ServiceBGPStatus, ServiceL2Status};
use ferrolb_config::{NodeName, Serving};
use ferrolb_runtime::events::EventSink;
use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::runtime::events::EventType;
use tokio::sync::{mpsc, watch as chan};
use tokio::time::Instant;

use crate::bgp::advertise::BgpPlan;
use crate::layer2::announcer::{Announcer, AnnouncerHandle, AnnouncerSettings, Conflict, Plan};
use crate::membership::{MembershipHandle, MembershipSettings};
use crate::metrics::{Health, Metrics};
use crate::netlink::Interfaces;
use crate::plan;
use crate::settle::{self, EndpointAges};
use touched::Touched;
use watch::{Changed, Stores};

/// The key in the membership Secret.
pub const MEMBERLIST_KEY: &str = "secretkey";

/// How the speaker runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// This node.
    pub node: NodeName,
    /// ferrolb's namespace.
    pub namespace: String,
    /// The load-balancer class served (`None`: Services without a class).
    pub lb_class: Option<String>,
    /// Announce from nodes labelled exclude-from-external-load-balancers too.
    pub ignore_exclude_label: bool,
    /// Departing nodes (cordoned, …) keep their place in the layer-2 order (MetalLB's).
    pub announce_from_departing_nodes: bool,
    /// How long a node's new endpoint of a Local Service settles (kube-proxy programs it)
    /// before it draws traffic from a node that serves the Service ([`crate::settle`]).
    pub endpoint_settle: Duration,
    /// Membership among speakers; `None` assumes a speaker runs on every node (MetalLB's
    /// behaviour without memberlist).
    pub membership: Option<MembershipConfig>,
    /// The layer-2 announcer.
    pub announcer: AnnouncerSettings,
    /// The port routers may open BGP sessions to (0: never listen). Listened on only while
    /// this node has BGP peers.
    pub bgp_listen_port: u16,
    /// BMP collectors (`host:port`) to export the BGP sessions to.
    pub bmp_collectors: Vec<String>,
    /// Write MetalLB's ServiceBGPStatus, one per (Service, node): O(Services × nodes) objects.
    pub service_bgp_status: bool,
}

/// Where and how the membership runs.
#[derive(Clone, Debug)]
pub struct MembershipConfig {
    /// UDP port (the same on every node).
    pub port: u16,
    /// The address to bind; `None`: this node's first InternalIP.
    pub bind: Option<IpAddr>,
    /// The Secret holding the shared key (`secretkey`).
    pub secret: String,
    /// Protocol timers.
    pub protocol: MembershipSettings,
    /// How long a starting speaker waits for its peers before deciding without them.
    pub startup_grace: Duration,
}

/// Runs until `shutdown` resolves, then leaves the membership and hands IPs over.
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    ferrolb_runtime::version::require_supported(&client).await?;
    let (changed_tx, mut changed_rx) = mpsc::unbounded_channel();
    let secret_name = settings
        .membership
        .as_ref()
        .map_or("ferrolb-memberlist", |m| m.secret.as_str())
        .to_owned();
    let passwords = watch::may_list_secrets(&client, &settings.namespace).await;
    let touched = Touched::default();
    let node = settings.node.as_str();
    let (announced_tx, announced_rx, l2_tap) = status::outbox::<ServiceL2Status>(node);
    let (bgp_announced_tx, bgp_announced_rx, bgp_tap) = status::outbox::<ServiceBGPStatus>(node);
    let (sessions_tx, sessions_rx, sessions_tap) = status::outbox::<BGPSessionState>(node);
    // Sessions are reported as they change; nothing waits for a whole report of them.
    sessions_tx.open();
    let stores = Stores::start(
        &client,
        &touched,
        watch::Taps {
            l2: l2_tap,
            bgp: bgp_tap,
            sessions: sessions_tap,
        },
        settings.lb_class.clone(),
        &settings.namespace,
        &secret_name,
        passwords,
        settings
            .service_bgp_status
            .then_some(settings.node.as_str()),
        &changed_tx,
    );
    tokio::pin!(shutdown);
    tokio::select! {
        () = stores.wait_ready(&touched) => {}
        () = &mut shutdown => return Ok(()),
    }
    tracing::info!(node = %settings.node, "caches synced");

    let membership = match &settings.membership {
        Some(config) => {
            let started = join::start(
                &stores,
                &settings,
                config,
                &secret_name,
                &metrics,
                &mut changed_rx,
                &mut shutdown,
            )
            .await?;
            match started {
                Some(handle) => Some(handle),
                None => return Ok(()),
            }
        }
        None => None,
    };

    let interfaces = crate::netlink::watch_interfaces()
        .await
        .context("cannot read the network interfaces (netlink)")?;
    let membership_ip = membership.as_ref().map(|m| m.local_addr().ip());
    let (plan_tx, plan_rx) = chan::channel(Plan::default());
    let announcer = Announcer::spawn(
        settings.announcer.clone(),
        metrics.l2.clone(),
        plan_rx,
        interfaces.clone(),
    );

    // The status writers and the sweep look for objects that gone Nodes left.
    let (nodes_changed_tx, nodes_changed_rx) = chan::channel(());
    let live = membership.as_ref().map(|m| m.live.clone());
    let (namespace, node) = (settings.namespace.clone(), settings.node.to_string());
    tokio::spawn(status::run::<ServiceL2Status>(
        client.clone(),
        namespace.clone(),
        node.clone(),
        stores.l2_statuses.clone(),
        stores.nodes.clone(),
        live.clone(),
        announced_rx,
        nodes_changed_rx.clone(),
    ));
    if let Some(store) = &stores.bgp_statuses {
        tokio::spawn(status::run::<ServiceBGPStatus>(
            client.clone(),
            namespace.clone(),
            node.clone(),
            store.clone(),
            stores.nodes.clone(),
            live.clone(),
            bgp_announced_rx,
            nodes_changed_rx.clone(),
        ));
    } else {
        drop(bgp_announced_rx);
        tokio::spawn(sweep::remove_own(
            client.clone(),
            namespace.clone(),
            node.clone(),
        ));
    }
    tokio::spawn(sweep::run(
        client.clone(),
        namespace.clone(),
        node.clone(),
        stores.nodes.clone(),
        live.clone(),
        nodes_changed_rx.clone(),
    ));
    tokio::spawn(status::run::<BGPSessionState>(
        client.clone(),
        namespace,
        node,
        stores.bgp_sessions.clone(),
        stores.nodes.clone(),
        live,
        sessions_rx,
        nodes_changed_rx,
    ));
    let (conditions_tx, conditions_rx) = chan::channel(condition::Wanted::new());
    let (services_changed_tx, services_changed_rx) = chan::channel(());
    tokio::spawn(condition::run(
        client.clone(),
        stores.services.clone(),
        conditions_rx,
        services_changed_rx,
    ));
    let (peer_events_tx, peer_events) = mpsc::unbounded_channel();
    let sessions = bgp::Sessions::new(
        settings.node.clone(),
        peer_events_tx,
        metrics.bgp_stats.clone(),
        settings.bgp_listen_port,
    )
    .with_bmp(&settings.bmp_collectors);
    let events = EventSink::start(
        client,
        "ferrolb-speaker",
        Some(settings.node.to_string()),
        "Announce",
    );

    let mut speaker = Speaker {
        ages: EndpointAges::new(settings.endpoint_settle),
        serving: Serving::default(),
        settings,
        stores,
        membership,
        announcer,
        plan_tx,
        announced_tx,
        events,
        metrics,
        decisions: plan::Decisions::new(),
        touched,
        last_world: None,
        answering: BTreeSet::new(),
        showing_bgp: HashSet::new(),
        started: Instant::now(),
        converged: false,
        converged_at: None,
        reports_open: false,
        interfaces,
        membership_ip,
        cut_off: false,
        live_changed: None,
        taking_over: BTreeMap::new(),
        secret_name,
        sessions,
        peer_events,
        bgp_announced_tx,
        bgp_plan: BgpPlan::default(),
        exclude_label: decide_bgp::ExcludeLabel::default(),
        sessions_tx,
        held: BTreeMap::new(),
        settled_at: None,
        conditions: decide_report::Conditions::new(conditions_tx, services_changed_tx),
    };
    speaker.refresh_config();
    health.set_ready(true);
    let result = speaker
        .run(&mut changed_rx, &nodes_changed_tx, &mut shutdown)
        .await;
    health.set_ready(false);
    speaker.stop().await;
    result
}

/// The decision loop's state.
struct Speaker {
    settings: Settings,
    stores: Stores,
    membership: Option<MembershipHandle>,
    announcer: AnnouncerHandle,
    plan_tx: chan::Sender<Plan>,
    /// What this node reports in ServiceL2Status.
    announced_tx: status::Outbox<status::L2Report>,
    events: EventSink,
    metrics: Arc<Metrics>,
    /// Every Service's IPs and every IP's plan, as last decided.
    decisions: plan::Decisions,
    /// The Services changed since the last pass, told by the reflectors.
    touched: Touched,
    /// What the last layer-2 election ran against.
    last_world: decide::LastWorld,
    /// The IPs the announcer answered for when last looked.
    answering: BTreeSet<IpAddr>,
    /// The Services that show the `ferrolb.io/BGPAdvertised` condition.
    showing_bgp: HashSet<String>,
    /// The configuration, parsed again when configuration objects or Secrets change; an
    /// object that turns invalid is served in its last valid version, as the controller does.
    serving: Serving,
    started: Instant,
    /// The membership has seen every expected peer once (or the grace passed).
    converged: bool,
    /// When it first converged.
    converged_at: Option<Instant>,
    /// The status writers were told this node's report is whole.
    reports_open: bool,
    /// The node's interfaces.
    interfaces: chan::Receiver<Interfaces>,
    /// The address the membership runs on.
    membership_ip: Option<IpAddr>,
    /// The interface carrying the membership is down: this node cannot know who is alive.
    cut_off: bool,
    /// When the membership last changed (set while deciding because of it).
    live_changed: Option<Instant>,
    /// IPs gained because of a membership change, not yet answered, with that change's time.
    taking_over: BTreeMap<IpAddr, Instant>,
    /// The membership Secret's name.
    secret_name: String,
    /// The BGP sessions of this node.
    sessions: bgp::Sessions,
    /// Their state changes.
    peer_events: mpsc::UnboundedReceiver<bgp::PeerEvent>,
    /// What this node advertises over BGP, for ServiceBGPStatus (and the Event).
    bgp_announced_tx: status::Outbox<BTreeSet<String>>,
    /// The last BGP plan.
    bgp_plan: BgpPlan,
    /// The state of each BGP session of this node, for BGPSessionState.
    sessions_tx: status::Outbox<ferrolb_api::BGPSessionStateStatus>,
    /// How long ago each node's endpoints appeared, for [`settle`].
    ages: EndpointAges,
    /// IPs kept on their node while a new endpoint settles.
    held: BTreeMap<IpAddr, settle::Hold>,
    /// When the next settling endpoint settles, or the next peer's drain after the exclude
    /// label runs out: decide again then.
    settled_at: Option<Instant>,
    /// When the exclude label appeared on this node.
    exclude_label: decide_bgp::ExcludeLabel,
    /// The `ferrolb.io/BGPAdvertised` conditions this speaker writes.
    conditions: decide_report::Conditions,
}

impl Speaker {
    async fn run(
        &mut self,
        changed: &mut mpsc::UnboundedReceiver<Changed>,
        nodes_changed: &chan::Sender<()>,
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> anyhow::Result<()> {
        let mut live = self.membership.as_ref().map(|m| m.live.clone());
        let mut announcing = self.announcer.announcing.clone();
        let grace = self
            .settings
            .membership
            .as_ref()
            .map_or(Duration::ZERO, |m| m.startup_grace);
        self.check_link();
        self.decide();
        loop {
            let grace_left = (self.started + grace).saturating_duration_since(Instant::now());
            tokio::select! {
                () = &mut *shutdown => return Ok(()),
                first = changed.recv() => {
                    let Some(first) = first else { return Ok(()) };
                    let mut kinds = BTreeSet::from([first]);
                    while let Ok(more) = changed.try_recv() {
                        kinds.insert(more);
                    }
                    if kinds.contains(&Changed::Secret) {
                        self.refresh_key();
                        // BGP passwords come from Secrets too.
                        self.refresh_config();
                    }
                    // A Node that went may leave status objects behind for the writers to remove.
                    if kinds.contains(&Changed::Nodes) {
                        nodes_changed.send_replace(());
                    }
                    if kinds.contains(&Changed::Workloads) {
                        self.conditions.services_changed();
                    }
                    if kinds.contains(&Changed::Nodes) {
                        self.refresh_seeds();
                    }
                    if kinds.contains(&Changed::Config) {
                        self.refresh_config();
                    }
                    if kinds.iter().any(|k| {
                        matches!(
                            k,
                            Changed::Workloads | Changed::Nodes | Changed::Config | Changed::Secret
                        )
                    }) {
                        self.decide();
                    }
                }
                Ok(()) = async { match live.as_mut() {
                    Some(rx) => rx.changed().await,
                    None => std::future::pending().await,
                } } => {
                    self.live_changed = Some(Instant::now());
                    self.decide();
                    self.live_changed = None;
                }
                Ok(()) = self.interfaces.changed() => {
                    self.check_link();
                    self.decide();
                }
                Ok(()) = announcing.changed() => self.answering_changed(),
                Some(conflict) = self.announcer.conflicts.recv() => self.report_conflict(&conflict),
                Some(event) = self.peer_events.recv() => self.report_session(&event),
                () = self.sessions.links_changed() => self.decide(),
                () = tokio::time::sleep(grace_left), if !self.converged => {
                    self.decide();
                }
                () = ferrolb_runtime::sleep_until(self.settled_at) => self.decide(),
            }
        }
    }

    /// Follows the link of the membership's interface. While it is down this node sees every
    /// peer die and would elect itself for every IP; when it comes back, that stale view must
    /// not be announced. So a cut-off node announces nothing, and after the link returns it
    /// waits, as at start-up, until the membership has healed (or the grace passes).
    fn check_link(&mut self) {
        let Some(ip) = self.membership_ip else { return };
        let down = self
            .interfaces
            .borrow_and_update()
            .by_index
            .values()
            .find(|i| i.addrs.iter().any(|a| a.addr == ip))
            .is_some_and(|i| !(i.up && i.lower_up));
        if down && !self.cut_off {
            tracing::warn!(addr = %ip, "the membership's interface is down: announcing nothing until it returns");
        } else if !down && self.cut_off {
            tracing::info!(addr = %ip, "the membership's interface is back: waiting for the membership to heal");
            self.converged = false;
            self.started = Instant::now();
        }
        self.cut_off = down;
    }

    /// Raises a split brain on the Services of the IP.
    fn report_conflict(&self, conflict: &Conflict) {
        let outcome = if conflict.we_lose {
            "this node stops answering for it"
        } else {
            "this node keeps it and re-announces"
        };
        tracing::warn!(
            ip = %conflict.ip, interface = %conflict.interface, ours = %conflict.ours,
            theirs = %conflict.theirs, we_lose = conflict.we_lose,
            "another host answers for an IP this node announces: remove the address from that host, or from the IPAddressPool"
        );
        let services = self
            .decisions
            .plans()
            .get(&conflict.ip)
            .map(|p| p.services.clone())
            .unwrap_or_default();
        for service in services {
            if let Some(svc) = self.service(&service) {
                self.events.emit(
                    &svc,
                    EventType::Warning,
                    "SplitBrain",
                    format!(
                        "{} is also claimed by another host (MAC {}), seen on interface {} of node \"{}\" (this node's MAC: {}); {outcome}. Remove the address from that host, or from the IPAddressPool",
                        conflict.ip,
                        conflict.theirs,
                        conflict.interface,
                        self.settings.node,
                        conflict.ours
                    ),
                );
            }
        }
    }

    /// The Service `key` (`namespace/name`), as much of it as an Event about it needs.
    fn service(&self, key: &str) -> Option<Service> {
        slim::SlimService::find(&self.stores.services, key).map(|s| s.reference())
    }

    /// Graceful stop: leave the membership (peers take over at once) while the announcer keeps
    /// answering until each IP is claimed by its successor or the linger passes.
    async fn stop(self) {
        tracing::info!("leaving: handing the announced IPs over");
        let leave = async {
            if let Some(membership) = self.membership {
                membership.leave().await;
            }
        };
        let sessions = self
            .sessions
            .stop("ferrolb speaker shutting down on this node");
        tokio::join!(leave, self.announcer.drain(), sessions);
        tracing::info!("left");
    }
}
