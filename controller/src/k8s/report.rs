//! Reports the configuration's health where users look: a `Valid` condition on every ferrolb
//! object, counters on every IPAddressPool, and the `controller` ConfigurationState. Writes are
//! coalesced (the newest report wins, at most a few per second) and skipped when nothing changed.
//!
//! A report belongs to the term of leadership that made it, and each write goes out only while
//! that term is on: a leader that lost its lease (or whose renewals hang past the term's end)
//! writes nothing more, so a report it made earlier cannot land over its successor's. A new
//! term writes everything again, whatever an earlier one wrote. What this cannot fence is a
//! request already on the wire when the term ends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_api::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, ConfigurationState, IPAddressPool,
    L2Advertisement,
};
use ferrolb_config::{ConfigError, ObjectKind, Severity};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::lease::Leadership;
use super::writer::FIELD_MANAGER;
use crate::allocator::PoolUsage;

/// What the configuration looks like now.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Report {
    /// The term of leadership that made it.
    pub term: u64,
    /// Every object of the configuration (valid or not) with its problems.
    pub objects: BTreeMap<(ObjectKind, String), Vec<ConfigError>>,
    /// Usage of every usable pool.
    pub usage: BTreeMap<String, PoolUsage>,
    /// Deleted pools whose Services keep their IPs for the grace period.
    pub absent_pools: Vec<String>,
    /// That grace period.
    pub pool_grace: Duration,
}

/// The largest int64, where pool counters saturate.
fn saturate(n: u128) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The `Valid` condition of one object.
fn valid_condition(errors: &[ConfigError]) -> (&'static str, &'static str, String) {
    let blocking: Vec<&ConfigError> = errors.iter().filter(|e| e.disables_object()).collect();
    let warnings: Vec<String> = errors
        .iter()
        .filter(|e| !e.disables_object())
        .map(|e| format!("{}: {}", e.field, e.reason))
        .collect();
    if blocking.is_empty() {
        let message = if warnings.is_empty() {
            "in use".to_owned()
        } else {
            format!("in use, but: {}", warnings.join("; "))
        };
        return ("True", "Valid", message);
    }
    let reason = if blocking.iter().all(|e| e.severity == Severity::Transient) {
        "WaitingForReference"
    } else {
        "Invalid"
    };
    let message = blocking
        .iter()
        .map(|e| format!("{}: {}", e.field, e.reason))
        .chain(warnings)
        .collect::<Vec<_>>()
        .join("; ");
    ("False", reason, message)
}

/// Runs until `rx` closes, writing each new report while its term lasts (`leader`).
pub(crate) async fn run(
    client: Client,
    namespace: String,
    mut rx: watch::Receiver<Arc<Report>>,
    leader: watch::Receiver<Leadership>,
) {
    // (kind, name) -> the status body last written, and when its condition last changed.
    let mut written: BTreeMap<(ObjectKind, String), (Value, String, Timestamp)> = BTreeMap::new();
    let mut state_written: Option<Value> = None;
    let mut term = None;
    loop {
        if rx.changed().await.is_err() {
            return;
        }
        // Coalesce bursts: wait a moment and take the newest.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let report = rx.borrow_and_update().clone();
        if term != Some(report.term) {
            // Another replica may have written since this one last did.
            written.clear();
            state_written = None;
            term = Some(report.term);
        }
        let leads = || {
            leader
                .borrow()
                .allows(report.term, tokio::time::Instant::now())
        };
        for ((kind, name), errors) in &report.objects {
            let (status, reason, message) = valid_condition(errors);
            let key = (*kind, name.clone());
            let since = match written.get(&key) {
                Some((_, s, t)) if s == status => *t,
                _ => Timestamp::now(),
            };
            let mut body = json!({
                "conditions": [{
                    "type": ferrolb_api::CONDITION_VALID,
                    "status": status,
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": since.to_string(),
                }]
            });
            if *kind == ObjectKind::IPAddressPool {
                let usage = report.usage.get(name).copied().unwrap_or_default();
                body["assignedIPv4"] = json!(saturate(usage.assigned_v4));
                body["assignedIPv6"] = json!(saturate(usage.assigned_v6));
                body["availableIPv4"] = json!(saturate(usage.available_v4));
                body["availableIPv6"] = json!(saturate(usage.available_v6));
                if let Some(next) = usage.next_v4 {
                    body["nextIPv4"] = json!(next.to_string());
                }
                if let Some(next) = usage.next_v6 {
                    body["nextIPv6"] = json!(next.to_string());
                }
            }
            if written.get(&key).is_some_and(|(b, _, _)| *b == body) {
                continue;
            }
            if !leads() {
                break;
            }
            match patch_object_status(&client, &namespace, *kind, name, body.clone()).await {
                Ok(()) => {
                    written.insert(key, (body, status.to_owned(), since));
                }
                Err(e) => {
                    tracing::warn!(kind = %kind, name = %name, error = %e, "cannot write status")
                }
            }
        }
        written.retain(|k, _| report.objects.contains_key(k));

        let problems: Vec<String> = report
            .objects
            .values()
            .flatten()
            .filter(|e| e.disables_object())
            .map(ToString::to_string)
            .collect();
        let presence = if report.absent_pools.is_empty() {
            json!({
                "type": "PoolsPresent",
                "status": "True",
                "reason": "AllPresent",
                "message": "every pool that Services hold IPs of exists",
                "lastTransitionTime": Timestamp::now().to_string(),
            })
        } else {
            let names: Vec<String> = report
                .absent_pools
                .iter()
                .map(|p| format!("pool {p}"))
                .collect();
            json!({
                "type": "PoolsPresent",
                "status": "False",
                "reason": "PoolDeleted",
                "message": format!(
                    "{} deleted while Services hold its IPs; they keep them for at most {}s in case it is created again, then get new ones",
                    names.join(", "),
                    report.pool_grace.as_secs()
                ),
                "lastTransitionTime": Timestamp::now().to_string(),
            })
        };
        let state = json!({
            "result": if problems.is_empty() { "Valid" } else { "Invalid" },
            "errorSummary": problems.join("\n"),
            "conditions": [{
                "type": "configReconcilerValid",
                "status": if problems.is_empty() { "True" } else { "False" },
                "reason": if problems.is_empty() { "Reconciled" } else { "ConfigurationError" },
                "message": if problems.is_empty() { "every object is valid".to_owned() } else { format!("{} problem(s); see errorSummary", problems.len()) },
                "lastTransitionTime": Timestamp::now().to_string(),
            }, presence],
        });
        let same = state_written.as_ref().is_some_and(|w| {
            w["result"] == state["result"]
                && w["errorSummary"] == state["errorSummary"]
                && w["conditions"][1]["message"] == state["conditions"][1]["message"]
        });
        if !same && leads() {
            match write_configuration_state(&client, &namespace, &state, leads).await {
                Ok(true) => state_written = Some(state),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot write ConfigurationState"),
            }
        }
    }
}

async fn patch_object_status(
    client: &Client,
    namespace: &str,
    kind: ObjectKind,
    name: &str,
    status: Value,
) -> Result<(), kube::Error> {
    async fn patch<K>(
        client: &Client,
        ns: &str,
        name: &str,
        status: Value,
    ) -> Result<(), kube::Error>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(client.clone(), ns);
        let body = json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "metadata": {"name": name},
            "status": status,
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match api.patch_status(name, &params, &Patch::Apply(&body)).await {
            // Deleted meanwhile: nothing to report on.
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            other => other.map(|_| ()),
        }
    }
    match kind {
        ObjectKind::IPAddressPool => patch::<IPAddressPool>(client, namespace, name, status).await,
        ObjectKind::L2Advertisement => {
            patch::<L2Advertisement>(client, namespace, name, status).await
        }
        ObjectKind::BGPAdvertisement => {
            patch::<BGPAdvertisement>(client, namespace, name, status).await
        }
        ObjectKind::BGPPeer => patch::<BGPPeer>(client, namespace, name, status).await,
        ObjectKind::BFDProfile => patch::<BFDProfile>(client, namespace, name, status).await,
        ObjectKind::Community => patch::<Community>(client, namespace, name, status).await,
    }
}

/// Writes the `controller` ConfigurationState (the object, then its status) while `leads`;
/// whether the status was written.
async fn write_configuration_state(
    client: &Client,
    namespace: &str,
    status: &Value,
    leads: impl Fn() -> bool,
) -> Result<bool, kube::Error> {
    let api: Api<ConfigurationState> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let object = json!({
        "apiVersion": ferrolb_api::API_VERSION,
        "kind": "ConfigurationState",
        "metadata": {
            "name": "controller",
            "labels": {"ferrolb.io/component-type": "controller"},
        },
        "spec": {},
    });
    api.patch("controller", &params, &Patch::Apply(&object))
        .await?;
    if !leads() {
        return Ok(false);
    }
    let mut with_status = object;
    with_status["status"] = status.clone();
    api.patch_status("controller", &params, &Patch::Apply(&with_status))
        .await?;
    Ok(true)
}
