//! The `ferrolb.io/BGPAdvertised` condition on each BGP Service: who advertises it, or why
//! nobody does. One speaker writes each Service's condition — the one [`crate::report::Ring`]
//! picks among the live speakers — so the writes grow as O(Services), not O(Services × nodes),
//! and one Service's change costs one write.
//!
//! Written with server-side apply to the Service's `status` subresource under one field manager
//! shared by every speaker ([`FIELD_MANAGER`]), forced: whichever speaker is responsible now
//! owns the condition, and an apply without it removes it. Level-triggered like
//! [`super::status`]: the writer is given what the Services it is responsible for should show,
//! writes only what differs from the Services as the cache holds them, newest keys first, in
//! rounds, and retries with backoff while the apiserver is away. The announcers never wait on
//! it.

use std::collections::{BTreeMap, HashMap};

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::slim::SlimService;
use super::status::{Backoff, RESYNC};
use crate::report::{BGP_ADVERTISED, Condition};

/// The field manager every speaker writes the condition under.
pub const FIELD_MANAGER: &str = "ferrolb-speaker-bgp";

/// For each Service (`namespace/name`) this speaker is responsible for: the condition it should
/// carry, or `None` for none (a Service that carries one and should not).
pub(crate) type Wanted = BTreeMap<String, Option<Condition>>;

/// Writes in flight at once.
const WRITE_CONCURRENCY: usize = 16;
/// Writes per round; between rounds the writer looks at what is wanted now.
const ROUND: usize = 128;

/// The condition as a Service shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Shown {
    status: String,
    reason: String,
    message: String,
    since: String,
}

/// The `ferrolb.io/BGPAdvertised` condition `service` shows, if any.
pub(crate) fn shown(service: &Service) -> Option<Shown> {
    let condition = service
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == BGP_ADVERTISED)?;
    Some(Shown {
        status: condition.status.clone(),
        reason: condition.reason.clone(),
        message: condition.message.clone(),
        since: condition.last_transition_time.0.to_string(),
    })
}

fn same(shown: Option<&Shown>, wanted: Option<&Condition>) -> bool {
    match (shown, wanted) {
        (None, None) => true,
        (Some(s), Some(w)) => {
            s.status == w.status() && s.reason == w.reason && s.message == w.message
        }
        _ => false,
    }
}

/// One condition write: the Service and its `status` as applied (`None`: no condition).
#[derive(Clone, Debug, PartialEq)]
struct Write {
    key: String,
    wanted: Option<Condition>,
    condition: Option<Value>,
}

/// The writes that make the Services (`shown`: per key, `None` when the Service is gone, else
/// the condition it shows) match `want`, skipping what this pass already `written`; newest
/// keys first. The transition time moves only when the status does.
fn plan(
    want: &Wanted,
    shown: impl Fn(&str) -> Option<Option<Shown>>,
    written: &HashMap<String, Option<Condition>>,
    order: &Order,
    now: &str,
) -> Vec<Write> {
    let mut writes: Vec<Write> = want
        .iter()
        .filter_map(|(key, wanted)| {
            let current = shown(key)?;
            if written.get(key) == Some(wanted) || same(current.as_ref(), wanted.as_ref()) {
                return None;
            }
            let condition = wanted.as_ref().map(|w| {
                let since = match &current {
                    Some(s) if s.status == w.status() => s.since.clone(),
                    _ => now.to_owned(),
                };
                json!({
                    "type": BGP_ADVERTISED,
                    "status": w.status(),
                    "reason": w.reason,
                    "message": w.message,
                    "lastTransitionTime": since,
                })
            });
            Some(Write {
                key: key.clone(),
                wanted: wanted.clone(),
                condition,
            })
        })
        .collect();
    writes.sort_by_key(|w| std::cmp::Reverse(order.of(&w.key)));
    writes
}

/// Keeps the conditions of the Services this speaker is responsible for in line with `wanted`,
/// until `wanted` closes; `services` is the speaker's cache of Services, and
/// `services_changed` says when it changed (someone else may have touched a condition).
pub(crate) async fn run(
    client: Client,
    services: Store<SlimService>,
    mut wanted: watch::Receiver<Wanted>,
    mut services_changed: watch::Receiver<()>,
) {
    let mut backoff = Backoff::default();
    let mut written: HashMap<String, Option<Condition>> = HashMap::new();
    let mut order = Order::default();
    loop {
        let want = wanted.borrow_and_update().clone();
        order.observe(&want);
        let shown_now = |key: &str| {
            let service = SlimService::find(&services, key)?;
            Some(service.bgp_advertised.as_deref().cloned())
        };
        let now = Timestamp::now().to_string();
        let work = plan(&want, shown_now, &written, &order, &now);
        let mut ok = true;
        let mut interrupted = false;
        for (i, batch) in work.chunks(ROUND).enumerate() {
            if i > 0 && wanted.has_changed().unwrap_or(false) {
                interrupted = true;
                break;
            }
            ok &= write_all(&client, batch, &mut written).await;
        }
        if interrupted {
            continue;
        }
        written.clear();
        let wait = if ok {
            backoff.landed();
            RESYNC
        } else {
            backoff.failed()
        };
        tokio::select! {
            changed = wanted.changed() => if changed.is_err() { return },
            changed = services_changed.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Writes `batch`, [`WRITE_CONCURRENCY`] at a time, recording what landed; true if all did
/// (or the Service is gone).
async fn write_all(
    client: &Client,
    batch: &[Write],
    written: &mut HashMap<String, Option<Condition>>,
) -> bool {
    let results: Vec<(Write, bool)> = stream::iter(batch.to_vec())
        .map(|w| {
            let client = client.clone();
            async move {
                let landed = match write(&client, &w).await {
                    Ok(()) => true,
                    Err(kube::Error::Api(e)) if e.code == 404 => true,
                    Err(e) => {
                        tracing::warn!(service = %w.key, error = %e, "cannot write the Service's {BGP_ADVERTISED} condition");
                        false
                    }
                };
                (w, landed)
            }
        })
        .buffer_unordered(WRITE_CONCURRENCY)
        .collect()
        .await;
    let mut ok = true;
    for (w, landed) in results {
        ok &= landed;
        if landed {
            written.insert(w.key, w.wanted);
        }
    }
    ok
}

async fn write(client: &Client, w: &Write) -> Result<(), kube::Error> {
    let Some((namespace, name)) = w.key.split_once('/') else {
        return Ok(());
    };
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let mut body = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
    });
    if let Some(condition) = &w.condition {
        body["status"] = json!({"conditions": [condition]});
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(name, &params, &Patch::Apply(&body))
        .await?;
    match &w.wanted {
        Some(c) => {
            tracing::debug!(service = %w.key, status = c.status(), message = %c.message, "wrote {BGP_ADVERTISED}")
        }
        None => tracing::debug!(service = %w.key, "removed {BGP_ADVERTISED}"),
    }
    Ok(())
}

/// When each reported key was first seen: the newest are written first.
#[derive(Debug, Default)]
struct Order {
    clock: u64,
    first_seen: HashMap<String, u64>,
}

impl Order {
    fn observe<T>(&mut self, want: &BTreeMap<String, T>) {
        self.first_seen.retain(|key, _| want.contains_key(key));
        for key in want.keys() {
            if !self.first_seen.contains_key(key) {
                self.clock += 1;
                self.first_seen.insert(key.clone(), self.clock);
            }
        }
    }

    fn of(&self, key: &str) -> u64 {
        self.first_seen.get(key).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{ADVERTISED, NOT_ADVERTISED};

    fn advertised(message: &str) -> Condition {
        Condition {
            advertised: true,
            reason: ADVERTISED,
            message: message.into(),
        }
    }

    fn shows(c: &Condition, since: &str) -> Shown {
        Shown {
            status: c.status().into(),
            reason: c.reason.into(),
            message: c.message.clone(),
            since: since.into(),
        }
    }

    #[test]
    fn only_conditions_that_differ_are_written_and_the_transition_time_moves_with_the_status() {
        let both = advertised("advertised by nodes \"a\", \"b\" to peer \"tor\"");
        let one = advertised("advertised by node \"a\" to peer \"tor\"");
        let nobody = Condition {
            advertised: false,
            reason: NOT_ADVERTISED,
            message: "no node advertises it over BGP: the Service has no ready endpoint".into(),
        };
        let mut want = Wanted::new();
        want.insert("web/same".into(), Some(both.clone()));
        want.insert("web/fewer".into(), Some(one.clone()));
        want.insert("web/down".into(), Some(nobody.clone()));
        want.insert("web/new".into(), Some(both.clone()));
        want.insert("web/not-bgp".into(), None);
        want.insert("web/never".into(), None);
        want.insert("web/deleted".into(), Some(both.clone()));
        let mut shown: BTreeMap<&str, Option<Shown>> = BTreeMap::new();
        shown.insert("web/same", Some(shows(&both, "then")));
        shown.insert("web/fewer", Some(shows(&both, "then")));
        shown.insert("web/down", Some(shows(&both, "then")));
        shown.insert("web/new", None);
        shown.insert("web/not-bgp", Some(shows(&both, "then")));
        shown.insert("web/never", None);
        let mut order = Order::default();
        order.observe(&want);
        let writes = plan(
            &want,
            |k| shown.get(k).cloned(),
            &HashMap::new(),
            &order,
            "now",
        );
        let by_key: BTreeMap<&str, &Write> = writes.iter().map(|w| (w.key.as_str(), w)).collect();
        let mut keys: Vec<&str> = by_key.keys().copied().collect();
        keys.sort_unstable();
        assert_eq!(keys, ["web/down", "web/fewer", "web/new", "web/not-bgp"]);
        let since = |k: &str| {
            by_key[k].condition.as_ref().expect("a condition")["lastTransitionTime"].clone()
        };
        assert_eq!(since("web/fewer"), "then", "still True: the time stays");
        assert_eq!(since("web/down"), "now", "True to False: the time moves");
        assert_eq!(since("web/new"), "now");
        assert_eq!(
            by_key["web/down"].condition.as_ref().expect("a condition")["status"],
            "False"
        );
        assert_eq!(by_key["web/not-bgp"].condition, None, "removed");
    }

    #[test]
    fn what_this_pass_wrote_is_not_written_again_and_the_newest_goes_first() {
        let c = advertised("advertised by node \"a\" to peer \"tor\"");
        let mut want = Wanted::new();
        let mut order = Order::default();
        want.insert("web/old".into(), Some(c.clone()));
        order.observe(&want);
        want.insert("web/newer".into(), Some(c.clone()));
        order.observe(&want);
        want.insert("web/done".into(), Some(c.clone()));
        order.observe(&want);
        let written = HashMap::from([("web/done".to_owned(), Some(c.clone()))]);
        let writes = plan(&want, |_| Some(None), &written, &order, "now");
        let keys: Vec<&str> = writes.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(keys, ["web/newer", "web/old"]);
    }

    #[test]
    fn keys_keep_their_age_and_forget_it_when_no_longer_reported() {
        let mut order = Order::default();
        let mut want: BTreeMap<String, ()> = BTreeMap::new();
        want.insert("a".into(), ());
        order.observe(&want);
        want.insert("b".into(), ());
        order.observe(&want);
        assert!(order.of("b") > order.of("a"));
        want.remove("a");
        order.observe(&want);
        assert_eq!(order.of("a"), 0);
        want.insert("a".into(), ());
        order.observe(&want);
        assert!(
            order.of("a") > order.of("b"),
            "a key reported again is new again"
        );
    }
}
