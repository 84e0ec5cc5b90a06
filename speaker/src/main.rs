//! `ferrolb-speaker`: runs on every node and announces LoadBalancer IPs (ARP/NDP or BGP).
//!
//! Not implemented yet: it parses and checks its settings, then exits saying so, so that the
//! manifests and the harness can already be written against its real command line.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

/// Announces the LoadBalancer IPs assigned by ferrolb-controller from this node.
#[derive(Parser, Debug)]
#[command(name = "ferrolb-speaker", version, about)]
struct Settings {
    /// This node's name (from the downward API).
    #[arg(long, env = "FERROLB_NODE_NAME")]
    node_name: String,

    /// Namespace holding ferrolb's configuration objects.
    #[arg(long, env = "FERROLB_NAMESPACE", default_value = ferrolb_api::DEFAULT_NAMESPACE)]
    namespace: String,

    /// Address to serve /metrics, /healthz and /readyz on.
    #[arg(long, default_value = "0.0.0.0:7472")]
    metrics_addr: SocketAddr,

    /// UDP port of the membership protocol among speakers.
    #[arg(long, default_value_t = 7947)]
    memberlist_port: u16,

    /// Announce from nodes labelled node.kubernetes.io/exclude-from-external-load-balancers too.
    #[arg(long)]
    ignore_exclude_lb: bool,

    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Plain)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Plain,
    Json,
}

fn main() -> ExitCode {
    let settings = Settings::parse();
    if settings.node_name.trim().is_empty() {
        eprintln!("ferrolb-speaker: --node-name (FERROLB_NODE_NAME) must not be empty");
        return ExitCode::from(2);
    }
    eprintln!(
        "ferrolb-speaker: settings accepted for node {:?} in namespace {:?}, but announcing is not implemented yet",
        settings.node_name, settings.namespace
    );
    ExitCode::FAILURE
}
