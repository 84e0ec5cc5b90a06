//! GoBGP keeps routes in its RIB only: it programs the kernel through an external zebra, and
//! Debian's GoBGP 3.10 and FRR 8.4 zebra do not speak the same ZAPI (GoBGP panics on FRR 8.4's
//! messages). So for a lab whose router is GoBGP, [`FibSync`] does zebra's job: it reads
//! GoBGP's RIB every [`PERIOD`] and installs one kernel route per prefix with a next hop per
//! path (ECMP), removing the ones GoBGP no longer holds.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use ipnet::IpNet;

use super::{GOBGP_API, parse_gobgp_rib};
use crate::netns::Netns;

/// How often the RIB is read.
pub const PERIOD: Duration = Duration::from_millis(200);

/// Kernel routes kept equal to GoBGP's RIB; stops (leaving the routes) on drop.
#[derive(Debug)]
pub struct FibSync {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FibSync {
    /// Starts syncing GoBGP's RIB in `ns` into `ns`'s kernel.
    pub fn start(ns: &Netns) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let ns = ns.clone();
        let thread = std::thread::spawn(move || {
            let mut installed: BTreeMap<IpNet, BTreeSet<IpAddr>> = BTreeMap::new();
            while !flag.load(Ordering::Relaxed) {
                if let Ok(want) = rib(&ns) {
                    apply(&ns, &mut installed, want);
                }
                std::thread::sleep(PERIOD);
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FibSync {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Next hops per prefix in GoBGP's RIB, both families.
fn rib(ns: &Netns) -> anyhow::Result<BTreeMap<IpNet, BTreeSet<IpAddr>>> {
    let (host, port) = GOBGP_API.split_once(':').unwrap_or(("127.0.0.1", "50051"));
    let mut out: BTreeMap<IpNet, BTreeSet<IpAddr>> = BTreeMap::new();
    for family in ["ipv4", "ipv6"] {
        let json = ns.output(&[
            "gobgp", "-u", host, "-p", port, "global", "rib", "-a", family, "-j",
        ])?;
        for route in parse_gobgp_rib(&json)? {
            out.entry(route.prefix).or_default().insert(route.next_hop);
        }
    }
    Ok(out)
}

/// Makes the kernel's BGP routes in `ns` equal `want`.
fn apply(
    ns: &Netns,
    installed: &mut BTreeMap<IpNet, BTreeSet<IpAddr>>,
    want: BTreeMap<IpNet, BTreeSet<IpAddr>>,
) {
    for prefix in installed.keys().filter(|p| !want.contains_key(p)) {
        let _ = ns.ip(&route_args("del", *prefix, &BTreeSet::new())
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>());
    }
    installed.retain(|p, _| want.contains_key(p));
    for (prefix, hops) in want {
        if installed.get(&prefix) == Some(&hops) || hops.is_empty() {
            continue;
        }
        let args = route_args("replace", prefix, &hops);
        if ns
            .ip(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .is_ok()
        {
            installed.insert(prefix, hops);
        }
    }
}

/// `ip [-6] route <verb> <prefix> proto bgp [nexthop via A nexthop via B …]`.
fn route_args(verb: &str, prefix: IpNet, hops: &BTreeSet<IpAddr>) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    if prefix.addr().is_ipv6() {
        args.push("-6".into());
    }
    args.extend(["route", verb, &prefix.to_string(), "proto", "bgp"].map(str::to_owned));
    for hop in hops {
        args.extend(["nexthop".to_owned(), "via".to_owned(), hop.to_string()]);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_get_one_nexthop_per_path() {
        let hops: BTreeSet<IpAddr> = ["192.0.2.1", "192.0.2.2"]
            .iter()
            .map(|s| s.parse().expect("ip"))
            .collect();
        let args = route_args("replace", "198.51.100.10/32".parse().expect("net"), &hops);
        assert_eq!(
            args.join(" "),
            "route replace 198.51.100.10/32 proto bgp nexthop via 192.0.2.1 nexthop via 192.0.2.2"
        );
        let v6 = route_args(
            "del",
            "2001:db8:100::10/128".parse().expect("net"),
            &BTreeSet::new(),
        );
        assert_eq!(v6.join(" "), "-6 route del 2001:db8:100::10/128 proto bgp");
    }
}
