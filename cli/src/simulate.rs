//! `kubectl ferrolb simulate`: what would move if a node died, or if a configuration file were
//! applied — by running the speaker's election and the controller's replay on the changed
//! inputs and comparing with the current ones.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use ferrolb_config::{NodeName, Snapshot};
use ferrolb_controller::replay::{Outcome, replay};
use ferrolb_speaker::plan::{self, IpPlan};
use serde::Serialize;

use crate::cluster::Cluster;
use ferrolb_speaker::election::World;

/// One change a simulation finds.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// What changes: a Service (`namespace/name`) or an IP.
    pub subject: String,
    /// Before.
    pub from: String,
    /// After.
    pub to: String,
}

fn owners(plans: &BTreeMap<IpAddr, IpPlan>) -> BTreeMap<IpAddr, (String, Vec<String>)> {
    plans
        .iter()
        .map(|(ip, p)| {
            (
                *ip,
                (
                    p.decision
                        .winner()
                        .map_or_else(|| "nobody".to_owned(), ToString::to_string),
                    p.services.clone(),
                ),
            )
        })
        .collect()
}

fn layer2_moves(
    before: &BTreeMap<IpAddr, (String, Vec<String>)>,
    after: &BTreeMap<IpAddr, (String, Vec<String>)>,
) -> Vec<Change> {
    before
        .iter()
        .filter_map(|(ip, (from, services))| {
            let to = after.get(ip).map_or("nobody", |(n, _)| n.as_str());
            (from != to).then(|| Change {
                subject: format!("{ip} ({})", services.join(", ")),
                from: from.clone(),
                to: to.to_owned(),
            })
        })
        .collect()
}

/// What changes if `node` dies (every other node counted live): the IPs whose layer-2
/// announcer moves, and the Services that lose the node's BGP paths (the routers keep the
/// other nodes' paths; a Service only that node advertised becomes unreachable).
pub fn node_down(cluster: &Cluster, node: &str) -> Vec<Change> {
    let config = cluster.outcome().config;
    let nodes = cluster.node_infos();
    let services = cluster.lb_services();
    let all: BTreeSet<NodeName> = nodes.keys().cloned().collect();
    let mut survivors = all.clone();
    survivors.remove(&NodeName::from(node.to_owned()));
    let before = owners(&plan::layer2(
        World::new(&config, &nodes, Some(&all)),
        &services,
    ));
    let after = owners(&plan::layer2(
        World::new(&config, &nodes, Some(&survivors)),
        &services,
    ));
    let mut changes = layer2_moves(&before, &after);
    changes.extend(bgp_losses(cluster, &config, node));
    changes
}

/// The Services `node` advertises over BGP, each with its advertising nodes before and after.
fn bgp_losses(cluster: &Cluster, config: &ferrolb_config::Config, node: &str) -> Vec<Change> {
    let mut advertisers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, plan) in cluster.bgp_plans(config) {
        for service in plan.services.keys() {
            advertisers
                .entry(service.clone())
                .or_default()
                .insert(name.to_string());
        }
    }
    let list = |nodes: &BTreeSet<String>| {
        if nodes.is_empty() {
            "nobody".to_owned()
        } else {
            nodes.iter().cloned().collect::<Vec<_>>().join(", ")
        }
    };
    advertisers
        .into_iter()
        .filter(|(_, nodes)| nodes.contains(node))
        .map(|(service, nodes)| {
            let mut after = nodes.clone();
            after.remove(node);
            Change {
                subject: format!("{service} (BGP)"),
                from: list(&nodes),
                to: list(&after),
            }
        })
        .collect()
}

fn describe(outcome: Option<&Outcome>) -> String {
    match outcome {
        None | Some(Outcome::NotOurs) => "not ferrolb's".into(),
        Some(Outcome::Invalid(bad)) => format!("invalid ({})", bad.reason),
        Some(Outcome::Failed(e)) => format!("no IP ({e})"),
        Some(Outcome::Assigned(a)) => format!(
            "{} from {}",
            a.ips
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            a.pool
        ),
    }
}

/// What changes if the ferrolb objects in `yaml` replace the current configuration: the
/// Services whose IPs change (the controller's replay) and the IPs whose announcer changes.
pub fn config_change(cluster: &Cluster, yaml: &str) -> Result<Vec<Change>, String> {
    let mut snapshot = Snapshot::from_yaml(&cluster.namespace, yaml)?;
    snapshot.nodes = cluster.config.nodes.clone();
    snapshot.namespaces = cluster.config.namespaces.clone();
    if snapshot.secrets.is_empty() {
        snapshot.secrets = cluster.config.secrets.clone();
    }
    let mut changed = cluster.clone();
    changed.config = snapshot;
    let new_outcome = changed.outcome();
    let errors: Vec<String> = new_outcome
        .errors
        .iter()
        .filter(|e| e.disables_object())
        .map(|e| format!("{} {}: {}: {}", e.kind.as_str(), e.name, e.field, e.reason))
        .collect();

    let old_config = cluster.outcome().config;
    let (_, before) = replay(
        old_config.pools.values().cloned().collect(),
        &cluster.services,
        cluster.lb_class.as_deref(),
    );
    let (_, after) = replay(
        new_outcome.config.pools.values().cloned().collect(),
        &cluster.services,
        cluster.lb_class.as_deref(),
    );
    let mut changes: Vec<Change> = errors
        .into_iter()
        .map(|e| Change {
            subject: "configuration".into(),
            from: "-".into(),
            to: format!("refused: {e}"),
        })
        .collect();
    for (key, old) in &before {
        let new = after.get(key);
        if Some(old) != new {
            changes.push(Change {
                subject: key.to_string(),
                from: describe(Some(old)),
                to: describe(new),
            });
        }
    }
    // Announcers, with the Services' IPs as they would be after the change.
    let nodes = cluster.node_infos();
    let services = cluster.lb_services();
    let old_owners = owners(&plan::layer2(
        World::new(&old_config, &nodes, None),
        &services,
    ));
    let new_owners = owners(&plan::layer2(
        World::new(&new_outcome.config, &nodes, None),
        &services,
    ));
    changes.extend(layer2_moves(&old_owners, &new_owners));
    Ok(changes)
}

/// Aligned text.
pub fn render(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "Nothing would change.\n".into();
    }
    let w1 = changes
        .iter()
        .map(|c| c.subject.len())
        .max()
        .unwrap_or(0)
        .max(7);
    let w2 = changes
        .iter()
        .map(|c| c.from.len())
        .max()
        .unwrap_or(0)
        .max(4);
    let mut s = String::new();
    let _ = writeln!(s, "{:<w1$}  {:<w2$}  TO", "SUBJECT", "FROM");
    for c in changes {
        let _ = writeln!(s, "{:<w1$}  {:<w2$}  {}", c.subject, c.from, c.to);
    }
    s
}
