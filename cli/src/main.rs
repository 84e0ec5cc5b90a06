//! `kubectl-ferrolb`, a kubectl plugin: `kubectl ferrolb explain|simulate|migrate|status|version`.
//! Reads the cluster with the usual kubeconfig (KUBECONFIG, --kubeconfig via kubectl's
//! environment), computes with the binaries' own pure code, prints text or `-o json|yaml`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use ferrolb_cli::cluster::Cluster;
use ferrolb_cli::{Format, explain, print, simulate, status, version};

/// Explains, simulates and migrates ferrolb configuration.
#[derive(Parser, Debug)]
#[command(name = "kubectl-ferrolb", version, about)]
struct Args {
    /// ferrolb's namespace.
    #[arg(long, global = true, default_value = ferrolb_api::DEFAULT_NAMESPACE)]
    ferrolb_namespace: String,

    /// The load-balancer class ferrolb serves (default: Services without a class).
    #[arg(long, global = true)]
    lb_class: Option<String>,

    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Text)]
    output: Format,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Why a Service has its IPs (or none), and which node announces them and why.
    Explain {
        /// `svc/NAME`, `service/NAME` or `NAME`.
        target: String,
        /// The Service's namespace.
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
    },
    /// What would move if a node died or a configuration were applied.
    Simulate {
        /// A node whose loss to simulate.
        #[arg(long, conflicts_with = "config")]
        node_down: Option<String>,
        /// A file of ferrolb objects to simulate instead of the current configuration.
        #[arg(long, short = 'f')]
        config: Option<PathBuf>,
    },
    /// Convert MetalLB configuration (CRs or the legacy ConfigMap) to ferrolb YAML.
    Migrate {
        /// The MetalLB YAML file (`-` for stdin).
        #[arg(short = 'f', long)]
        file: PathBuf,
    },
    /// Pools with their usage, peers, and what each node announces.
    Status,
    /// This plugin's version and the images ferrolb runs in the cluster.
    Version {
        /// Only the plugin's own version (no cluster needed).
        #[arg(long)]
        client: bool,
    },
}

fn service_name(target: &str) -> anyhow::Result<&str> {
    let name = match target.split_once('/') {
        Some(("svc" | "service" | "services", name)) => name,
        Some((kind, _)) => bail!("explain takes a Service (svc/NAME), not {kind}"),
        None => target,
    };
    if name.is_empty() {
        bail!("no Service name in {target:?}");
    }
    Ok(name)
}

async fn cluster(args: &Args) -> anyhow::Result<Cluster> {
    let client = kube::Client::try_default()
        .await
        .context("cannot reach the cluster (KUBECONFIG or in-cluster config)")?;
    Cluster::fetch(&client, &args.ferrolb_namespace, args.lb_class.as_deref()).await
}

async fn run(args: Args) -> anyhow::Result<String> {
    match &args.command {
        Command::Explain { target, namespace } => {
            let name = service_name(target)?;
            let cluster = cluster(&args).await?;
            let e = explain::explain(&cluster, namespace, name)
                .with_context(|| format!("there is no Service {namespace}/{name}"))?;
            print(args.output, &e, explain::render)
        }
        Command::Simulate { node_down, config } => {
            let cluster = cluster(&args).await?;
            let changes = match (node_down, config) {
                (Some(node), _) => {
                    if !cluster
                        .nodes
                        .iter()
                        .any(|n| n.metadata.name.as_deref() == Some(node.as_str()))
                    {
                        bail!("there is no node {node:?}");
                    }
                    simulate::node_down(&cluster, node)
                }
                (None, Some(path)) => {
                    let yaml = std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    simulate::config_change(&cluster, &yaml)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
                }
                (None, None) => bail!("say what to simulate: --node-down NODE or --config FILE"),
            };
            print(args.output, &changes, |c| simulate::render(c))
        }
        Command::Migrate { file } => {
            let input = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?
            } else {
                std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read {}", file.display()))?
            };
            let migration = ferrolb_cli::migrate::migrate(&input, &args.ferrolb_namespace)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            for w in &migration.warnings {
                eprintln!("warning: {}: {}", w.source, w.message);
            }
            Ok(migration.yaml)
        }
        Command::Status => {
            let cluster = cluster(&args).await?;
            let s = status::status(&cluster);
            print(args.output, &s, status::render)
        }
        Command::Version { client } => {
            let cluster = if *client {
                None
            } else {
                let kube = kube::Client::try_default()
                    .await
                    .context("cannot reach the cluster (KUBECONFIG or in-cluster config); --client shows the plugin's version alone")?;
                Some(version::fetch(&kube, &args.ferrolb_namespace).await?)
            };
            let v = version::Versions {
                client: version::CLIENT.to_owned(),
                cluster,
            };
            print(args.output, &v, version::render)
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kubectl-ferrolb: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kubectl-ferrolb: {e:#}");
            ExitCode::FAILURE
        }
    }
}
