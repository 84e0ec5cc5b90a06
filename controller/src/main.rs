//! `ferrolb-controller`: assigns LoadBalancer IPs from IPAddressPools to Services.
//! Settings → client → metrics server → leader-elected decision loop → drain on SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use ferrolb_controller::k8s::{self, Settings};
use ferrolb_controller::metrics::{self, Health, Metrics};
use ferrolb_runtime::logs::LogFormat;
use prometheus_client::registry::Registry;

/// Assigns LoadBalancer IPs from IPAddressPools to Services.
#[derive(Parser, Debug)]
#[command(name = "ferrolb-controller", version, about)]
struct Args {
    /// Namespace of ferrolb's configuration objects, lease and ConfigurationState.
    #[arg(long, env = "FERROLB_NAMESPACE", default_value = ferrolb_api::DEFAULT_NAMESPACE)]
    namespace: String,

    /// Handle only Services with this spec.loadBalancerClass. Without it, only Services that
    /// have no class.
    #[arg(long)]
    lb_class: Option<String>,

    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:7472")]
    metrics_addr: SocketAddr,

    /// This replica's identity in the leader lease (defaults to the pod name, then hostname).
    #[arg(long, env = "FERROLB_POD_NAME")]
    identity: Option<String>,

    /// Run without leader election (only safe with a single replica).
    #[arg(long)]
    no_leader_election: bool,

    /// Seconds a leader lease lasts; a dead leader is replaced within this time.
    #[arg(long, default_value_t = 15)]
    lease_duration: u64,

    /// Seconds Services keep the IPs of a deleted IPAddressPool, in case it is created again
    /// (GitOps replacing it, a Helm reinstall), before they get new ones.
    #[arg(long, env = "FERROLB_POOL_GRACE_PERIOD", default_value_t = k8s::DEFAULT_POOL_GRACE.as_secs())]
    pool_grace_period: u64,

    /// Concurrent Service status writes.
    #[arg(long, default_value_t = 16)]
    write_concurrency: usize,

    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Plain)]
    log_format: LogFormat,
}

async fn run(args: Args) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("cannot build a Kubernetes client (in-cluster config or KUBECONFIG)")?;
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let health = Arc::new(Health::default());
    let server = tokio::spawn(metrics::serve(args.metrics_addr, registry, health.clone()));
    let identity = args
        .identity
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("ferrolb-controller-{}", std::process::id()));
    let settings = Settings {
        namespace: args.namespace,
        lb_class: args.lb_class,
        identity,
        leader_election: !args.no_leader_election,
        lease_duration: Duration::from_secs(args.lease_duration),
        lease_grace: Duration::from_secs((args.lease_duration / 3).max(1)),
        write_concurrency: args.write_concurrency,
        pool_grace: Duration::from_secs(args.pool_grace_period),
    };
    tokio::select! {
        result = k8s::run(client, settings, metrics, health, ferrolb_runtime::shutdown_signal()) => result,
        served = server => match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e).context(format!("cannot serve metrics on {}", args.metrics_addr)),
            Err(e) => Err(e.into()),
        },
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    ferrolb_runtime::logs::init(args.log_format);
    ferrolb_runtime::block_on_main("ferrolb-controller", run(args))
}
