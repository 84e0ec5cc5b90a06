//! `kubectl ferrolb status`: pools with their usage, BGP peers, and what each node announces.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ferrolb_controller::replay::replay;
use serde::Serialize;

use crate::cluster::Cluster;
use ferrolb_speaker::election::World;

/// The whole status.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Pools.
    pub pools: Vec<PoolStatus>,
    /// Configuration objects ferrolb refuses, with why.
    pub config_errors: Vec<String>,
    /// BGP peers with each node's session, as the speakers report them.
    pub peers: Vec<PeerStatus>,
    /// Per node, the Services it advertises over BGP (by the speaker's plan).
    pub bgp: BTreeMap<String, Vec<String>>,
    /// Per node, the IPs it announces over layer 2 (by the election, every speaker live).
    pub layer2: BTreeMap<String, Vec<String>>,
    /// Per node, the Services its speaker reports announcing (ServiceL2Status).
    pub reported: BTreeMap<String, Vec<String>>,
}

/// A BGP peer and its sessions.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PeerStatus {
    /// The BGPPeer's name.
    pub name: String,
    /// Where it is.
    pub address: String,
    /// One per node that peers with it.
    pub sessions: Vec<SessionStatus>,
}

/// One node's session with a peer (BGPSessionState).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SessionStatus {
    /// The node.
    pub node: String,
    /// The RFC 4271 state (or NotRunning).
    pub state: String,
    /// Prefixes the peer holds from the node.
    pub prefixes: u64,
    /// How the last session or attempt ended.
    pub last_down: Option<String>,
}

/// A pool's usage.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    /// Name.
    pub name: String,
    /// IPv4 addresses in use / free.
    pub ipv4: String,
    /// IPv6 addresses in use / free.
    pub ipv6: String,
    /// autoAssign.
    pub auto_assign: bool,
}

/// Computes the status.
pub fn status(cluster: &Cluster) -> Status {
    let outcome = cluster.outcome();
    let pools: Vec<_> = outcome.config.pools.values().cloned().collect();
    let (allocator, _) = replay(pools, &cluster.services, cluster.lb_class.as_deref());
    let pools = outcome
        .config
        .pools
        .values()
        .map(|p| {
            let u = allocator.usage(&p.name).unwrap_or_default();
            PoolStatus {
                name: p.name.to_string(),
                ipv4: format!("{} used / {} free", u.assigned_v4, u.available_v4),
                ipv6: format!("{} used / {} free", u.assigned_v6, u.available_v6),
                auto_assign: p.auto_assign,
            }
        })
        .collect();
    let nodes = cluster.node_infos();
    let plans = ferrolb_speaker::plan::layer2(
        World::new(&outcome.config, &nodes, None),
        &cluster.lb_services(),
    );
    let mut layer2: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (ip, p) in &plans {
        if let Some(node) = p.decision.winner() {
            layer2
                .entry(node.to_string())
                .or_default()
                .push(ip.to_string());
        }
    }
    let mut reported: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in cluster.l2_statuses.iter().filter_map(|s| s.status.as_ref()) {
        reported
            .entry(s.node.clone().unwrap_or_default())
            .or_default()
            .push(format!(
                "{}/{}",
                s.service_namespace.as_deref().unwrap_or_default(),
                s.service_name.as_deref().unwrap_or_default()
            ));
    }
    Status {
        pools,
        config_errors: outcome
            .errors
            .iter()
            .map(|e| format!("{} {}: {}: {}", e.kind.as_str(), e.name, e.field, e.reason))
            .collect(),
        peers: outcome
            .config
            .peers
            .values()
            .map(|p| PeerStatus {
                name: p.name.to_string(),
                address: match &p.target {
                    ferrolb_config::PeerTarget::Address(ip) => format!("{ip}:{}", p.port),
                    ferrolb_config::PeerTarget::Interface(i) => format!("interface {i}"),
                },
                sessions: cluster
                    .bgp_sessions
                    .iter()
                    .filter_map(|s| s.status.as_ref())
                    .filter(|s| s.peer.as_deref() == Some(p.name.as_str()))
                    .map(|s| SessionStatus {
                        node: s.node.clone().unwrap_or_default(),
                        state: s.bgp_status.clone().unwrap_or_else(|| "unknown".into()),
                        prefixes: s.prefixes_advertised.unwrap_or_default(),
                        last_down: s.last_down.clone(),
                    })
                    .collect(),
            })
            .collect(),
        bgp: cluster
            .bgp_plans(&outcome.config)
            .into_iter()
            .filter(|(_, plan)| !plan.services.is_empty())
            .map(|(node, plan)| (node.to_string(), plan.services.into_keys().collect()))
            .collect(),
        layer2,
        reported,
    }
}

/// Aligned text.
pub fn render(s: &Status) -> String {
    let mut out = String::new();
    let w = s
        .pools
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(out, "{:<w$}  AUTO   IPV4                     IPV6", "POOL");
    for p in &s.pools {
        let _ = writeln!(
            out,
            "{:<w$}  {:<5}  {:<23}  {}",
            p.name, p.auto_assign, p.ipv4, p.ipv6
        );
    }
    for e in &s.config_errors {
        let _ = writeln!(out, "refused: {e}");
    }
    if !s.peers.is_empty() {
        let _ = writeln!(
            out,
            "\nPEER / NODE            STATE        PREFIXES  LAST DOWN"
        );
        for p in &s.peers {
            let _ = writeln!(out, "{} ({})", p.name, p.address);
            if p.sessions.is_empty() {
                let _ = writeln!(out, "  (no speaker reports a session)");
            }
            for n in &p.sessions {
                let _ = writeln!(
                    out,
                    "  {:<20} {:<12} {:>8}  {}",
                    n.node,
                    n.state,
                    n.prefixes,
                    n.last_down.as_deref().unwrap_or("-")
                );
            }
        }
        let _ = writeln!(out, "\nBGP");
        for (node, services) in &s.bgp {
            let _ = writeln!(out, "{node}: advertises {}", services.join(", "));
        }
    }
    let _ = writeln!(out, "\nLAYER 2");
    for (node, ips) in &s.layer2 {
        let _ = writeln!(out, "{node}: announces {}", ips.join(", "));
    }
    for (node, services) in &s.reported {
        let _ = writeln!(out, "{node}: speaker reports {}", services.join(", "));
    }
    out
}
