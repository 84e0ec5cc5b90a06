//! Waiting until the cluster has settled after a step, by polling the objects (never a fixed
//! sleep): a running, unfrozen replica holds the lease and says it leads and is ready; the
//! barrier Service shows this round's IP, which needs this round's namespace label, pool and
//! Service all seen (see [`bump_barrier`]), so the leader has seen every namespace, pool and
//! Service change made before them; every Service of ours carries
//! the controller's condition; and nothing in any Service's status changed for a while.

use std::time::{Duration, Instant};

use ferrolb_api::IPAddressPool;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::replicas::{Replica, lease_holder};
use super::universe::{BARRIER_IPS, BARRIER_NAMESPACE, BARRIER_POOL, BARRIER_SERVICE};
use super::world::World;

/// How often the objects are read.
const POLL: Duration = Duration::from_millis(150);

/// The label of the barrier namespace that the barrier pool selects.
const BARRIER_LABEL: &str = "chaos-round";

/// Moves the barrier to round `round`, on all three watches the controller allocates from, in
/// this order: the barrier namespace's label, then the barrier pool (only `BARRIER_IPS[round %
/// 2]`, and only namespaces with that label), then the barrier Service (requesting that IP).
/// The Service can hold the IP only once the controller has seen all three writes, and each
/// watch delivers in order, so it has then seen every namespace, pool and Service change made
/// before — not only the Service changes.
pub async fn bump_barrier(client: &kube::Client, round: usize) -> anyhow::Result<()> {
    let ip = BARRIER_IPS[round % 2];
    let parity = (round % 2).to_string();
    let apply = PatchParams::apply("chaos-driver").force();
    let namespace = json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": { "name": BARRIER_NAMESPACE, "labels": { BARRIER_LABEL: parity } },
    });
    Api::<Namespace>::all(client.clone())
        .patch(BARRIER_NAMESPACE, &apply, &Patch::Apply(&namespace))
        .await?;
    let pool = json!({
        "apiVersion": ferrolb_api::API_VERSION, "kind": "IPAddressPool",
        "metadata": { "name": BARRIER_POOL, "namespace": ferrolb_api::DEFAULT_NAMESPACE },
        "spec": {
            "addresses": [format!("{ip}/32")],
            "autoAssign": false,
            "serviceAllocation": {
                // A selector only (`namespaces` would admit the namespace whatever its label).
                "namespaceSelectors": [{ "matchLabels": { BARRIER_LABEL: parity } }],
            },
        },
    });
    Api::<IPAddressPool>::namespaced(client.clone(), ferrolb_api::DEFAULT_NAMESPACE)
        .patch(BARRIER_POOL, &apply, &Patch::Apply(&pool))
        .await?;
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": BARRIER_SERVICE, "namespace": BARRIER_NAMESPACE,
            "annotations": { "ferrolb.io/loadBalancerIPs": ip },
        },
        "spec": {
            "type": "LoadBalancer", "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"],
            "ports": [{ "name": "tcp-80", "protocol": "TCP", "port": 80 }],
        },
    });
    Api::<Service>::namespaced(client.clone(), BARRIER_NAMESPACE)
        .patch(BARRIER_SERVICE, &apply, &Patch::Apply(&service))
        .await?;
    Ok(())
}

/// Why the cluster is not settled yet.
async fn not_settled(
    client: &kube::Client,
    replicas: &mut [Replica],
    round: usize,
    world: &World,
) -> Option<String> {
    let holder = match lease_holder(client).await {
        Ok(Some(h)) => h,
        Ok(None) => return Some("no unexpired lease".into()),
        Err(e) => return Some(format!("cannot read the lease: {e}")),
    };
    let Some(leader) = replicas.iter_mut().find(|r| r.identity == holder) else {
        return Some(format!("lease held by unknown {holder}"));
    };
    if !leader.healthy() {
        return Some(format!("lease held by {holder}, which is not running"));
    }
    if !leader.says_leading_and_ready().await {
        return Some(format!(
            "{holder} holds the lease but is not leading and ready"
        ));
    }
    let mut leading = Vec::new();
    for r in replicas.iter_mut() {
        if r.healthy() && r.says_leading().await {
            leading.push(r.identity.clone());
        }
    }
    if leading.len() > 1 {
        return Some(format!(
            "{} replicas say they lead: {}",
            leading.len(),
            leading.join(", ")
        ));
    }
    let barrier = format!("{BARRIER_NAMESPACE}/{BARRIER_SERVICE}");
    let want = BARRIER_IPS[round % 2];
    match world.services.get(&barrier) {
        Some(b) if b.ips.len() == 1 && b.ips[0].to_string() == want => {}
        Some(b) => return Some(format!("barrier shows {b}, not yet {want}")),
        None => return Some("barrier Service missing".into()),
    }
    if let Some(s) = world
        .services
        .values()
        .find(|s| s.ours && s.condition.is_none())
    {
        return Some(format!("{} has no condition yet", s.key));
    }
    None
}

/// Settles: bumps the barrier, then polls until settled and stable for `stable`, or until
/// `timeout`. Returns the world read last and, if it did not settle, why.
pub async fn settle(
    client: &kube::Client,
    replicas: &mut [Replica],
    round: usize,
    stable: Duration,
    timeout: Duration,
) -> (World, Option<String>) {
    let started = Instant::now();
    let mut barrier_written = false;
    let mut why = String::new();
    let mut stable_since: Option<Instant> = None;
    let mut world = World::default();
    loop {
        if !barrier_written {
            // Retried while the apiserver is unreachable (a fault healing).
            match bump_barrier(client, round).await {
                Ok(()) => barrier_written = true,
                Err(e) => why = format!("cannot write the barrier: {e}"),
            }
        }
        if barrier_written {
            match World::read(client).await {
                Err(e) => {
                    why = format!("cannot read the objects: {e}");
                    stable_since = None;
                }
                Ok(now) => {
                    let changed = now.changed_since(&world);
                    let reason = if changed.is_empty() {
                        not_settled(client, replicas, round, &now).await
                    } else {
                        let mut names: Vec<&str> = changed.into_iter().take(5).collect();
                        names.sort_unstable();
                        Some(format!("still being written: {}", names.join(", ")))
                    };
                    match reason {
                        Some(reason) => {
                            why = reason;
                            stable_since = None;
                        }
                        None => {
                            let since = *stable_since.get_or_insert_with(Instant::now);
                            if since.elapsed() >= stable {
                                return (now, None);
                            }
                            why = "not yet stable for long enough".into();
                        }
                    }
                    world = now;
                }
            }
        }
        if started.elapsed() > timeout {
            return (world, Some(why));
        }
        tokio::time::sleep(POLL).await;
    }
}
