//! `kubectl ferrolb explain svc/NAME`: the Service's IPs and the pool they came from, or the
//! exact reason it has none; which node answers ARP/NDP for each IP and why that node (the
//! candidates in election order, the excluded nodes and why); which nodes advertise it over BGP
//! to which peers, and why the others do not. Computed by the controller's replay, the
//! speaker's election and the speaker's BGP plan over a [`Cluster`] snapshot.

use std::fmt::Write as _;

use ferrolb_api::annotations;
use ferrolb_config::{NodeName, PoolName};
use ferrolb_controller::allocator::ServiceKey;
use ferrolb_controller::replay::{Outcome, replay};
use ferrolb_controller::service;
use ferrolb_speaker::plan::{self, Decision};
use serde::Serialize;

use crate::cluster::Cluster;
use ferrolb_speaker::election::World;

/// Everything `explain` says about one Service.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// `namespace/name`.
    pub service: String,
    /// `assigned`, `pending`, `invalid` or `not-ours`.
    pub state: String,
    /// The IPs it holds.
    pub ips: Vec<String>,
    /// The pool they came from.
    pub pool: Option<String>,
    /// Why it has these IPs from that pool, or why it has none.
    pub reason: String,
    /// The pools automatic allocation tries for it, in order.
    pub pool_order: Vec<String>,
    /// The condition the controller recorded on the Service, if any.
    pub controller_says: Option<String>,
    /// Per IP, who announces it over layer 2.
    pub layer2: Vec<Layer2>,
    /// Per node, whether it advertises the Service over BGP (empty when no BGPPeer exists).
    pub bgp: Vec<BgpNode>,
    /// What the speakers report on the Service: its `ferrolb.io/BGPAdvertised` condition
    /// (`status reason: message`), if it carries one.
    pub speakers_say: Option<String>,
}

/// One node's BGP advertisement of the Service.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BgpNode {
    /// The node.
    pub node: String,
    /// The peers it advertises the Service to, by the speaker's plan.
    pub peers: Vec<String>,
    /// Why it does not advertise (one of the Service's IPs), if it does not.
    pub not_advertised: Option<String>,
    /// The peers the node's speaker reports advertising to, from its ServiceBGPStatus (written
    /// only with the speakers' `--service-bgp-status`), if there is one.
    pub reported_peers: Option<Vec<String>>,
    /// The node's sessions with those peers, as its speaker reports them (`peer: state`).
    pub sessions: Vec<String>,
}

/// Layer-2 announcement of one IP.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Layer2 {
    /// The IP.
    pub ip: String,
    /// The node the election picks (every node's speaker counted as live).
    pub elected: Option<String>,
    /// Why nobody announces it, if so.
    pub unannounced: Option<String>,
    /// The candidates in election order: node, preference score, first bytes of SHA-256(node#ip).
    pub candidates: Vec<Candidate>,
    /// Nodes that may not announce it, and why.
    pub excluded: Vec<Excluded>,
    /// The nodes the speakers report announcing it (ServiceL2Status).
    pub reported_by_speakers: Vec<String>,
}

/// A candidate node.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Candidate {
    /// Node.
    pub node: String,
    /// Preferred-node score (higher first).
    pub score: u32,
    /// SHA-256(`node#ip`), first 8 hex digits (lower first).
    pub hash: String,
    /// On its way out (cordoned, …): after every node that is not.
    pub departing: bool,
}

/// An excluded node.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Excluded {
    /// Node.
    pub node: String,
    /// Why.
    pub reason: String,
}

/// Explains `namespace/name`; `None` if there is no such Service.
pub fn explain(cluster: &Cluster, namespace: &str, name: &str) -> Option<Explanation> {
    let svc = cluster.service(namespace, name)?;
    let key = ServiceKey::new(namespace, name);
    let outcome = cluster.outcome();
    let pools: Vec<_> = outcome.config.pools.values().cloned().collect();
    let (allocator, outcomes) = replay(pools, &cluster.services, cluster.lb_class.as_deref());
    let request = service::request_of(svc).ok().map(|(r, _)| r);
    let pool_order: Vec<String> = request
        .as_ref()
        .map(|r| {
            allocator
                .auto_pools(r)
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut out = Explanation {
        service: key.to_string(),
        state: String::new(),
        ips: Vec::new(),
        pool: None,
        reason: String::new(),
        pool_order,
        controller_says: condition(svc, "ferrolb.io/IPAssigned"),
        layer2: Vec::new(),
        bgp: Vec::new(),
        speakers_say: condition(svc, ferrolb_speaker::report::BGP_ADVERTISED),
    };
    match outcomes.get(&key) {
        None | Some(Outcome::NotOurs) => {
            out.state = "not-ours".into();
            out.reason = not_ours_reason(svc, cluster.lb_class.as_deref());
        }
        Some(Outcome::Invalid(bad)) => {
            out.state = "invalid".into();
            out.reason = format!("{}: {}", bad.reason, bad.message);
        }
        Some(Outcome::Failed(e)) => {
            out.state = "pending".into();
            out.reason = e.to_string();
        }
        Some(Outcome::Assigned(a)) => {
            out.state = "assigned".into();
            out.ips = a.ips.iter().map(ToString::to_string).collect();
            out.pool = Some(a.pool.as_str().to_owned());
            out.reason = assigned_reason(request.as_ref(), &a.pool, &out.pool_order);
        }
    }
    if out.state == "assigned" {
        out.layer2 = layer2(cluster, &outcome.config, &key.to_string(), &out.ips);
        if !outcome.config.peers.is_empty() {
            out.bgp = bgp(cluster, &outcome.config, &key.to_string(), &out.ips);
        }
    }
    Some(out)
}

fn bgp(
    cluster: &Cluster,
    config: &ferrolb_config::Config,
    service: &str,
    ips: &[String],
) -> Vec<BgpNode> {
    let reported = cluster.advertising_nodes(service);
    cluster
        .bgp_plans(config)
        .into_iter()
        .map(|(node, plan)| {
            let peers: Vec<String> = plan
                .services
                .get(service)
                .map(|p| p.iter().map(ToString::to_string).collect())
                .unwrap_or_default();
            let not_advertised = ips
                .iter()
                .filter_map(|ip| ip.parse().ok())
                .find_map(|ip| plan.not_advertised.get(&ip))
                .map(ToString::to_string)
                .or_else(|| {
                    (peers.is_empty() && plan.routes.is_empty())
                        .then(|| "no BGPPeer selects this node".to_owned())
                });
            let sessions = cluster
                .bgp_sessions
                .iter()
                .filter_map(|s| s.status.as_ref())
                .filter(|s| s.node.as_deref() == Some(node.as_str()))
                .filter(|s| s.peer.as_ref().is_some_and(|p| peers.contains(p)))
                .map(|s| {
                    format!(
                        "{}: {}",
                        s.peer.as_deref().unwrap_or_default(),
                        s.bgp_status.as_deref().unwrap_or("unknown")
                    )
                })
                .collect();
            BgpNode {
                reported_peers: reported.get(node.as_str()).cloned(),
                node: node.to_string(),
                peers,
                not_advertised,
                sessions,
            }
        })
        .collect()
}

fn not_ours_reason(svc: &k8s_openapi::api::core::v1::Service, lb_class: Option<&str>) -> String {
    let spec = svc.spec.as_ref();
    let type_ = spec.and_then(|s| s.type_.as_deref()).unwrap_or("ClusterIP");
    if type_ != "LoadBalancer" {
        return format!("it is of type {type_}, not LoadBalancer");
    }
    let class = spec.and_then(|s| s.load_balancer_class.as_deref());
    match (class, lb_class) {
        (Some(c), None) => format!(
            "its loadBalancerClass is {c:?}: another load balancer handles it (ferrolb serves Services without a class)"
        ),
        (c, Some(ours)) => format!(
            "its loadBalancerClass is {}, and ferrolb serves {ours:?}",
            c.map_or("not set".to_owned(), |c| format!("{c:?}"))
        ),
        (None, None) => "ferrolb does not handle it".into(),
    }
}

fn assigned_reason(
    request: Option<&ferrolb_controller::allocator::ServiceRequest>,
    pool: &PoolName,
    order: &[String],
) -> String {
    match request {
        Some(r) if r.pool.is_some() => {
            format!("it asks for pool {pool} ({})", annotations::ADDRESS_POOL)
        }
        Some(r) if !r.requested_ips.is_empty() => format!(
            "it asks for these IPs ({} or spec.loadBalancerIP); they lie in pool {pool}",
            annotations::LOAD_BALANCER_IPS
        ),
        _ => match order.iter().position(|p| p == pool.as_str()) {
            Some(0) => format!(
                "{pool} is the first pool that serves it (order: {})",
                order.join(", ")
            ),
            Some(i) => format!(
                "{pool} is the first pool with free addresses among those that serve it; {} came before it (order: {})",
                order[..i].join(", "),
                order.join(", ")
            ),
            None => format!("it holds these IPs from {pool} (kept from before)"),
        },
    }
}

/// The Service's condition of type `type_`, as `status reason: message`.
fn condition(svc: &k8s_openapi::api::core::v1::Service, type_: &str) -> Option<String> {
    svc.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| format!("{} {}: {}", c.status, c.reason, c.message))
}

fn layer2(
    cluster: &Cluster,
    config: &ferrolb_config::Config,
    service: &str,
    ips: &[String],
) -> Vec<Layer2> {
    let nodes = cluster.node_infos();
    let plans = plan::layer2(World::new(config, &nodes, None), &cluster.lb_services());
    let reported: Vec<String> = cluster.announcing_nodes(service).into_iter().collect();
    ips.iter()
        .filter_map(|ip| {
            let parsed = ip.parse().ok()?;
            let p = plans.get(&parsed)?;
            let mut view = Layer2 {
                ip: ip.clone(),
                elected: p.decision.winner().map(NodeName::to_string),
                unannounced: None,
                candidates: Vec::new(),
                excluded: Vec::new(),
                reported_by_speakers: reported.clone(),
            };
            match &p.decision {
                Decision::NoPool => view.unannounced = Some("no pool holds this IP".into()),
                Decision::Elected { election, .. } => {
                    view.unannounced = election.unannounced.as_ref().map(ToString::to_string);
                    view.candidates = election
                        .candidates
                        .iter()
                        .map(|c| Candidate {
                            node: c.node.to_string(),
                            score: c.score,
                            hash: c.hash.iter().take(4).map(|b| format!("{b:02x}")).collect(),
                            departing: c.departing,
                        })
                        .collect();
                    view.excluded = election
                        .excluded
                        .iter()
                        .map(|(n, why)| Excluded {
                            node: n.to_string(),
                            reason: why.to_string(),
                        })
                        .collect();
                }
            }
            Some(view)
        })
        .collect()
}

/// Aligned text for people.
pub fn render(e: &Explanation) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Service:   {}", e.service);
    let _ = writeln!(s, "State:     {}", e.state);
    if !e.ips.is_empty() {
        let _ = writeln!(s, "IPs:       {}", e.ips.join(", "));
    }
    if let Some(pool) = &e.pool {
        let _ = writeln!(s, "Pool:      {pool}");
    }
    let _ = writeln!(s, "Why:       {}", e.reason);
    if !e.pool_order.is_empty() {
        let _ = writeln!(s, "Pools tried in order: {}", e.pool_order.join(", "));
    }
    if let Some(c) = &e.controller_says {
        let _ = writeln!(s, "Controller condition: {c}");
    }
    for l2 in &e.layer2 {
        let _ = writeln!(s, "\nLayer 2, {}:", l2.ip);
        match (&l2.elected, &l2.unannounced) {
            (Some(node), _) => {
                let _ = writeln!(s, "  announced by: {node} (first candidate below)");
            }
            (None, Some(why)) => {
                let _ = writeln!(s, "  announced by nobody: {why}");
            }
            (None, None) => {
                let _ = writeln!(s, "  announced by nobody");
            }
        }
        if !l2.reported_by_speakers.is_empty() {
            let _ = writeln!(
                s,
                "  speakers report: {}",
                l2.reported_by_speakers.join(", ")
            );
        }
        if !l2.candidates.is_empty() {
            let width = l2
                .candidates
                .iter()
                .map(|c| c.node.len())
                .max()
                .unwrap_or(4)
                .max(4);
            let _ = writeln!(s, "  {:<width$}  SCORE  SHA-256(node#ip)", "NODE");
            for c in &l2.candidates {
                let departing = if c.departing {
                    "  (on its way out: last resort)"
                } else {
                    ""
                };
                let _ = writeln!(
                    s,
                    "  {:<width$}  {:>5}  {}…{departing}",
                    c.node, c.score, c.hash
                );
            }
        }
        for x in &l2.excluded {
            let _ = writeln!(s, "  excluded {}: {}", x.node, x.reason);
        }
    }
    if !e.bgp.is_empty() || e.speakers_say.is_some() {
        let _ = writeln!(s, "\nBGP:");
        if let Some(said) = &e.speakers_say {
            let _ = writeln!(s, "  the speakers report: {said}");
        }
        for n in &e.bgp {
            if n.peers.is_empty() {
                let why = n.not_advertised.as_deref().unwrap_or("no peer");
                let _ = writeln!(s, "  {}: not advertised: {why}", n.node);
            } else {
                let _ = write!(s, "  {}: advertised to {}", n.node, n.peers.join(", "));
                if !n.sessions.is_empty() {
                    let _ = write!(s, " (sessions {})", n.sessions.join(", "));
                }
                let _ = writeln!(s);
            }
            if let Some(reported) = &n.reported_peers
                && *reported != n.peers
            {
                let _ = writeln!(
                    s,
                    "    its speaker reports advertising to: {}",
                    reported.join(", ")
                );
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `Why:` says for each way a Service got its pool: names as users wrote them.
    #[test]
    fn the_reason_names_pools_as_users_wrote_them() {
        let lan = PoolName::from("lan");
        let order = ["fast".to_owned(), "lan".to_owned()];
        let mut named =
            ferrolb_controller::allocator::ServiceRequest::new(ServiceKey::new("default", "web"));
        named.pool = Some(lan.clone());
        let mut requested = named.clone();
        requested.pool = None;
        requested.requested_ips = vec![std::net::IpAddr::from([192, 0, 2, 201])];
        let cases = [
            (
                assigned_reason(None, &lan, &order[1..]),
                "lan is the first pool that serves it (order: lan)",
            ),
            (
                assigned_reason(None, &lan, &order),
                "lan is the first pool with free addresses among those that serve it; fast came before it (order: fast, lan)",
            ),
            (
                assigned_reason(None, &lan, &[]),
                "it holds these IPs from lan (kept from before)",
            ),
            (
                assigned_reason(Some(&named), &lan, &order),
                "it asks for pool lan (ferrolb.io/address-pool)",
            ),
            (
                assigned_reason(Some(&requested), &lan, &order),
                "it asks for these IPs (ferrolb.io/loadBalancerIPs or spec.loadBalancerIP); they lie in pool lan",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    /// The speakers' condition is read from the Service, next to the controller's.
    #[test]
    fn the_speakers_condition_is_read_from_the_service() {
        let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "app", "namespace": "web"},
            "status": {"conditions": [
                {"type": "ferrolb.io/IPAssigned", "status": "True", "reason": "Assigned",
                 "message": "198.51.100.1 from bgp", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "ferrolb.io/BGPAdvertised", "status": "True", "reason": "Advertised",
                 "message": "advertised by node \"node-1\" to peer \"tor\"",
                 "lastTransitionTime": "2026-01-01T00:00:00Z"},
            ]},
        }))
        .expect("a Service");
        assert_eq!(
            condition(&svc, ferrolb_speaker::report::BGP_ADVERTISED).as_deref(),
            Some("True Advertised: advertised by node \"node-1\" to peer \"tor\"")
        );
        assert_eq!(
            condition(&svc, "ferrolb.io/IPAssigned").as_deref(),
            Some("True Assigned: 198.51.100.1 from bgp")
        );
    }
}
