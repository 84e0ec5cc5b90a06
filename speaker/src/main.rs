//! `ferrolb-speaker`: runs on every node and answers ARP/NDP for the LoadBalancer IPs this node
//! is elected for. Thin: settings → build → run → hand over on SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use ferrolb_runtime::logs::LogFormat;
use ferrolb_speaker::k8s::{self, MembershipConfig, Settings};
use ferrolb_speaker::layer2::announcer::AnnouncerSettings;
use ferrolb_speaker::membership::MembershipSettings;
use ferrolb_speaker::metrics::{self, Health, Metrics};
use ferrolb_speaker::netlink::ExcludeList;
use prometheus_client::registry::Registry;

/// The default port of /metrics, /healthz and /readyz on the host network.
const DEFAULT_METRICS_PORT: u16 = 7948;

/// Announces the LoadBalancer IPs assigned by ferrolb-controller from this node.
#[derive(Parser, Debug)]
#[command(name = "ferrolb-speaker", version, about)]
struct Args {
    /// This node's name (from the downward API).
    #[arg(long, env = "FERROLB_NODE_NAME")]
    node_name: String,

    /// Namespace holding ferrolb's configuration objects.
    #[arg(long, env = "FERROLB_NAMESPACE", default_value = ferrolb_api::DEFAULT_NAMESPACE)]
    namespace: String,

    /// Serve only Services with this spec.loadBalancerClass (default: Services without one).
    #[arg(long)]
    lb_class: Option<String>,

    /// Address to serve /metrics, /healthz and /readyz on. Default: the node's address
    /// (--memberlist-addr, which the DaemonSet sets to the node's IP) on --metrics-port, so
    /// they are not exposed on every interface of the host network; 0.0.0.0 only when no
    /// address is known.
    #[arg(long, env = "FERROLB_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,

    /// Port of /metrics, /healthz and /readyz when --metrics-addr is not given. Not MetalLB's
    /// speaker's 7472 (nor its 7473 and 7946), so both can run on a node during a migration.
    #[arg(long, default_value_t = DEFAULT_METRICS_PORT)]
    metrics_port: u16,

    /// UDP port of the membership protocol among speakers.
    #[arg(long, default_value_t = 7947)]
    memberlist_port: u16,

    /// Address the membership binds to (default: this node's first InternalIP). It should sit
    /// on the interface that carries the announcements, so a dead link counts as a dead node.
    #[arg(long, env = "FERROLB_MEMBERLIST_ADDR")]
    memberlist_addr: Option<IpAddr>,

    /// Secret (in --namespace) holding the membership key under `secretkey`.
    #[arg(long, default_value = "ferrolb-memberlist")]
    memberlist_secret: String,

    /// Run without membership: every node counts as live (only safe when a speaker runs on
    /// every node and none ever dies).
    #[arg(long)]
    no_membership: bool,

    /// Membership probe period, in milliseconds.
    #[arg(long, default_value_t = 100)]
    probe_period_ms: u64,

    /// Announce from nodes labelled node.kubernetes.io/exclude-from-external-load-balancers too.
    #[arg(long)]
    ignore_exclude_lb: bool,

    /// Keep MetalLB's order for nodes on their way out (cordoned, draining, marked for
    /// scale-down, tainted NoExecute) instead of moving their layer-2 IPs to other nodes first.
    #[arg(long)]
    announce_from_departing_nodes: bool,

    /// How long, in milliseconds, a node's new endpoint of an externalTrafficPolicy Local
    /// Service settles — its kube-proxy programs it, within its minSyncPeriod (1 s by default)
    /// — before the node takes the Service's IP from a node that serves it (layer 2) or adds
    /// its route next to one (BGP). Every speaker keeps the IP on the serving node meanwhile;
    /// a failover does not wait. Raise it with kube-proxy's --min-sync-period.
    #[arg(long, default_value_t = ferrolb_speaker::settle::DEFAULT_SETTLE.as_millis() as u64)]
    endpoint_settle_ms: u64,

    /// Interfaces never announced on, as MetalLB-style anchored patterns (`^name$` exact,
    /// `^prefix.*`); default MetalLB's list (docker, cbr, dummy, virbr, lxcbr, veth, lo, cali,
    /// tunl, flannel, kube-ipvs, cni, nodelocaldns, lxc).
    #[arg(long, value_delimiter = ',')]
    exclude_interfaces: Option<Vec<String>>,

    /// Period of the gratuitous ARP / unsolicited NA refresh, in seconds (0: off).
    #[arg(long, default_value_t = 10)]
    gratuitous_refresh_secs: u64,

    /// TCP port to take BGP sessions on from the routers this node peers with (passive
    /// BGPPeers need it; routers that dial are taken either way). Listened on only while the
    /// node has BGP peers; 0: never. Below 1024 it needs CAP_NET_BIND_SERVICE.
    #[arg(long, default_value_t = ferrolb_speaker::bgp::session::BGP_PORT)]
    bgp_listen_port: u16,

    /// A BMP collector (`host:port`, RFC 7854) to send this node's BGP sessions and the
    /// routes each advertises (Adj-RIB-Out, RFC 8671); repeat or separate with commas for
    /// several. The speaker dials it and reconnects when it goes.
    #[arg(long, value_delimiter = ',')]
    bmp_collector: Vec<String>,

    /// Also write MetalLB's ServiceBGPStatus, one object per (Service, node) advertising it:
    /// O(Services × nodes) objects. Without it, each BGP Service's ferrolb.io/BGPAdvertised
    /// condition says which nodes advertise it, and this speaker removes the ServiceBGPStatus
    /// objects its node wrote before.
    #[arg(long)]
    service_bgp_status: bool,

    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Plain)]
    log_format: LogFormat,
}

fn settings(args: &Args) -> anyhow::Result<Settings> {
    let exclude = match &args.exclude_interfaces {
        Some(patterns) => ExcludeList::parse(patterns).context("--exclude-interfaces")?,
        None => ExcludeList::metallb_default(),
    };
    let announcer = AnnouncerSettings {
        exclude,
        refresh: Duration::from_secs(args.gratuitous_refresh_secs),
        ..AnnouncerSettings::default()
    };
    let endpoint_settle = Duration::from_millis(args.endpoint_settle_ms);
    let membership = (!args.no_membership).then(|| {
        let mut protocol = MembershipSettings::new(args.node_name.trim());
        let period = Duration::from_millis(args.probe_period_ms.max(10));
        // Keep the default proportions: ack within half a period, suspicion for four.
        protocol.probe_timeout = period / 2;
        protocol.suspicion_timeout = period * 4;
        protocol.probe_period = period;
        MembershipConfig {
            port: args.memberlist_port,
            bind: args.memberlist_addr,
            secret: args.memberlist_secret.clone(),
            startup_grace: protocol.probe_period * 10,
            protocol,
        }
    });
    Ok(Settings {
        node: args.node_name.trim().to_owned().into(),
        namespace: args.namespace.clone(),
        lb_class: args.lb_class.clone(),
        ignore_exclude_label: args.ignore_exclude_lb,
        announce_from_departing_nodes: args.announce_from_departing_nodes,
        endpoint_settle,
        membership,
        announcer,
        bgp_listen_port: args.bgp_listen_port,
        bmp_collectors: args.bmp_collector.clone(),
        service_bgp_status: args.service_bgp_status,
    })
}

/// Where /metrics, /healthz and /readyz listen: `--metrics-addr`, else the node's address on
/// `--metrics-port`, else every address on that port.
fn metrics_addr(args: &Args) -> SocketAddr {
    args.metrics_addr.unwrap_or_else(|| {
        let ip = args
            .memberlist_addr
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        SocketAddr::new(ip, args.metrics_port)
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let settings = settings(&args)?;
    let metrics_addr = metrics_addr(&args);
    if metrics_addr.ip().is_unspecified() {
        tracing::warn!(addr = %metrics_addr, "metrics listen on every address: set --metrics-addr or --memberlist-addr (FERROLB_MEMBERLIST_ADDR) to the node's address");
    }
    let client = kube::Client::try_default()
        .await
        .context("cannot build a Kubernetes client (in-cluster config or KUBECONFIG)")?;
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::new(&mut registry));
    let health = Arc::new(Health::default());
    let server = tokio::spawn(metrics::serve(metrics_addr, registry, health.clone()));
    tokio::select! {
        result = k8s::run(client, settings, metrics, health, ferrolb_runtime::shutdown_signal()) => result,
        served = server => match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e).context(format!("cannot serve metrics on {metrics_addr}")),
            Err(e) => Err(e.into()),
        },
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.node_name.trim().is_empty() {
        eprintln!("ferrolb-speaker: --node-name (FERROLB_NODE_NAME) must not be empty");
        return ExitCode::from(2);
    }
    ferrolb_runtime::logs::init(args.log_format);
    ferrolb_runtime::block_on_main("ferrolb-speaker", run(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["ferrolb-speaker", "--node-name", "n1"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).expect("valid arguments")
    }

    #[test]
    fn metrics_listen_on_the_node_address_unless_told_otherwise() {
        let on_node = args(&["--memberlist-addr", "192.0.2.11"]);
        assert_eq!(
            metrics_addr(&on_node),
            "192.0.2.11:7948".parse::<SocketAddr>().expect("addr")
        );
        let moved = args(&[
            "--memberlist-addr",
            "2001:db8:0:1::11",
            "--metrics-port",
            "9999",
        ]);
        assert_eq!(
            metrics_addr(&moved),
            "[2001:db8:0:1::11]:9999"
                .parse::<SocketAddr>()
                .expect("addr")
        );
        let explicit = args(&[
            "--memberlist-addr",
            "192.0.2.11",
            "--metrics-addr",
            "127.0.0.1:7000",
        ]);
        assert_eq!(
            metrics_addr(&explicit),
            "127.0.0.1:7000".parse::<SocketAddr>().expect("addr")
        );
        assert_eq!(
            metrics_addr(&args(&[])),
            "0.0.0.0:7948".parse::<SocketAddr>().expect("addr")
        );
    }
}
