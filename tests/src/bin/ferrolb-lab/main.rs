//! `ferrolb-lab`: a Kubernetes network on one Linux machine, with ferrolb in it.
//!
//! - `up [--nodes N] [--router bird|frr|gobgp]` builds the lab in network namespaces (see
//!   `ferrolb_tests::lab`) and leaves it running under a background supervisor; idempotent. It
//!   refuses to start when a program it runs is missing, and says "up" only once the lab passes
//!   its health checks (`ferrolb_tests::lab::ClusterLab::health`), else names the failing ones.
//! - `status` shows the nodes, the pods, the LoadBalancer Services with their announcers and
//!   the health checks.
//! - `demo` (brings the lab up if needed) creates layer-2 and BGP LoadBalancer Services and
//!   shows, from a client on the LAN and one behind the router, which node answers for each IP
//!   and which pod serves the request.
//! - `down` stops the supervisor and removes every namespace, link and process of the lab,
//!   also after a crash.
//! - `allocation` runs only the apiserver and the controller and shows what it assigns and why.

mod allocation;
mod network;

use std::process::ExitCode;

const USAGE: &str = "usage: ferrolb-lab <command>

  up [--nodes N] [--router bird|frr|gobgp]
                   build the lab (default 3 nodes, BIRD), check its health, leave it running
  status           nodes, pods, LoadBalancer Services, who announces them, health checks
  demo [up's options]
                   LoadBalancer Services answering through the network (runs `up` if needed)
  down             remove everything the lab made
  allocation       the controller alone on a real apiserver: which IP each Service gets, and why";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let nodes = args
        .iter()
        .position(|a| a == "--nodes")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse::<usize>())
        .transpose();
    let nodes = match nodes {
        Ok(n) => n.unwrap_or(3).clamp(1, 50),
        Err(_) => {
            eprintln!("ferrolb-lab: --nodes takes a number\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let router = match args
        .iter()
        .position(|a| a == "--router")
        .map(|i| args.get(i + 1))
    {
        None => Ok(ferrolb_tests::routers::RouterKind::Bird),
        Some(Some(name)) => name.parse(),
        Some(None) => Err("--router takes bird, frr or gobgp".to_owned()),
    };
    let router = match router {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferrolb-lab: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferrolb-lab: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.first().map(String::as_str) {
        Some("up") => network::up(nodes, router).map(drop),
        Some("status") => runtime.block_on(network::status()),
        Some("demo") => runtime.block_on(network::demo(nodes, router)),
        Some("down") => network::down(),
        Some("supervise") => runtime.block_on(network::supervise(nodes, router)),
        Some("allocation") => runtime.block_on(allocation::run()),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrolb-lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}
