//! ServiceBGPStatus objects nobody else will remove. Each speaker watches only its own node's
//! (and only with `--service-bgp-status`), so two kinds of leftovers need a word of their own:
//! - a node that leaves the cluster cannot remove its objects: exactly one live speaker — the
//!   one [`crate::report::writer`] picks for the node's name — lists them by their node label
//!   and deletes them, instead of every one of the N−1 others deleting all of them;
//! - a speaker started without `--service-bgp-status` removes what its own node wrote when it
//!   last ran with it, once.

use std::collections::BTreeSet;
use std::time::Duration;

use ferrolb_api::ServiceBGPStatus;
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Node;
use kube::api::{DeleteParams, ListParams};
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;

use super::status::NODE_LABEL;
use crate::report;

/// Deletes in flight at once.
const CONCURRENCY: usize = 16;

/// Removes every ServiceBGPStatus labelled with `node`; true if all went (or were gone).
async fn remove_objects_of(api: &Api<ServiceBGPStatus>, node: &str) -> bool {
    let selector = format!("{NODE_LABEL}={node}");
    let list = match api.list(&ListParams::default().labels(&selector)).await {
        Ok(list) => list,
        Err(e) => {
            tracing::warn!(%node, error = %e, "cannot list the node's ServiceBGPStatus objects");
            return false;
        }
    };
    let names: Vec<String> = list.items.iter().map(ResourceExt::name_any).collect();
    let count = names.len();
    let results: Vec<bool> = stream::iter(names)
        .map(|name| {
            let api = api.clone();
            async move {
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => true,
                    Err(kube::Error::Api(e)) if e.code == 404 => true,
                    Err(e) => {
                        tracing::warn!(%name, error = %e, "cannot remove ServiceBGPStatus");
                        false
                    }
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    if count > 0 {
        tracing::info!(%node, count, "removed the node's ServiceBGPStatus objects");
    }
    results.into_iter().all(|ok| ok)
}

/// Without `--service-bgp-status`: removes what this node wrote when it last ran with it,
/// retrying until the apiserver answers.
pub(crate) async fn remove_own(client: Client, namespace: String, node: String) {
    let api: Api<ServiceBGPStatus> = Api::namespaced(client, &namespace);
    let mut retry = Duration::from_millis(500);
    while !remove_objects_of(&api, &node).await {
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(Duration::from_secs(30));
    }
}

/// Follows the Nodes (`nodes`, woken by `nodes_changed`) and removes the ServiceBGPStatus
/// objects of those that leave, when this speaker (`node`) is the one picked for it among the
/// live speakers (`live`, or every Node without a membership).
pub(crate) async fn run(
    client: Client,
    namespace: String,
    node: String,
    nodes: Store<Node>,
    live: Option<watch::Receiver<BTreeSet<String>>>,
    mut nodes_changed: watch::Receiver<()>,
) {
    let api: Api<ServiceBGPStatus> = Api::namespaced(client, &namespace);
    let names = |nodes: &Store<Node>| -> BTreeSet<String> {
        nodes.state().iter().map(|n| n.name_any()).collect()
    };
    let mut known = names(&nodes);
    let mut gone: BTreeSet<String> = BTreeSet::new();
    let mut retry = Duration::from_millis(500);
    loop {
        let wait = if gone.is_empty() {
            Duration::from_secs(300)
        } else {
            retry
        };
        tokio::select! {
            changed = nodes_changed.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(wait) => {}
        }
        let now = names(&nodes);
        if now.is_empty() {
            continue;
        }
        gone.extend(known.difference(&now).cloned());
        gone.retain(|n| !now.contains(n));
        known = now;
        let speakers: BTreeSet<String> = live
            .as_ref()
            .map_or_else(|| known.clone(), |l| l.borrow().clone());
        let mut failed = false;
        for left in gone.clone() {
            let candidates = speakers.iter().map(String::as_str).filter(|s| *s != left);
            if report::writer(&left, candidates) == Some(node.as_str())
                && !remove_objects_of(&api, &left).await
            {
                failed = true;
                continue;
            }
            gone.remove(&left);
        }
        retry = if failed {
            (retry * 2).min(Duration::from_secs(30))
        } else {
            Duration::from_millis(500)
        };
    }
}
