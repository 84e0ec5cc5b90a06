//! The objects a chaos run's users write — Services and pools as the user last asked for them,
//! their manifests (applied with server-side apply, as `kubectl apply --server-side` does) and
//! their one-line descriptions for the run's log.

use std::fmt;
use std::net::IpAddr;

use ferrolb_api::IPAddressPool;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

use super::universe::{Slot, back};

/// The field manager of everything the driver writes (a user's `kubectl`).
pub(super) const MANAGER: &str = "chaos-user";

/// A Service as the user last wrote it.
#[derive(Clone, Debug)]
pub(super) struct SvcSpec {
    pub(super) namespace: String,
    pub(super) name: String,
    /// 0 SingleStack IPv4, 1 SingleStack IPv6, 2 PreferDualStack, 3 RequireDualStack.
    pub(super) family: usize,
    pub(super) load_balancer: bool,
    pub(super) other_class: bool,
    pub(super) local: bool,
    pub(super) app: &'static str,
    pub(super) tier: &'static str,
    pub(super) ports: Vec<(&'static str, i32)>,
    pub(super) sharing: Option<&'static str>,
    pub(super) pool: Option<&'static str>,
    pub(super) requested: Vec<IpAddr>,
}

/// A pool as the user last wrote it.
#[derive(Clone, Debug)]
pub(super) struct PoolSpec {
    pub(super) slot: Slot,
    pub(super) present: bool,
    pub(super) auto_assign: bool,
    pub(super) avoid_buggy: bool,
    pub(super) shrunk: bool,
    pub(super) priority: Option<i32>,
    pub(super) namespaces: Vec<&'static str>,
    pub(super) ns_selector: Option<&'static str>,
    pub(super) svc_selector: Option<&'static str>,
}

pub(super) fn describe(s: &SvcSpec) -> String {
    let mut out = format!("{}/{}", s.namespace, s.name);
    if !s.load_balancer {
        out.push_str(" ClusterIP");
    }
    if s.other_class {
        out.push_str(" class=other");
    }
    out.push_str(["", " v6", " dual-prefer", " dual-require"][s.family]);
    if s.local {
        out.push_str(" Local");
    }
    let ports: Vec<String> = s.ports.iter().map(|(p, n)| format!("{p}/{n}")).collect();
    out.push_str(&format!(" ports={}", ports.join(",")));
    if let Some(k) = s.sharing {
        out.push_str(&format!(" key={k}"));
    }
    if let Some(p) = s.pool {
        out.push_str(&format!(" pool={p}"));
    }
    if !s.requested.is_empty() {
        let r: Vec<String> = s.requested.iter().map(ToString::to_string).collect();
        out.push_str(&format!(" requested={}", r.join(",")));
    }
    out
}

pub(super) fn describe_pool(p: &PoolSpec) -> String {
    format!(
        "{} (autoAssign={} avoidBuggyIPs={} shrunk={} priority={:?} namespaces=[{}] namespaceSelector={} serviceSelector={})",
        p.slot.name,
        p.auto_assign,
        p.avoid_buggy,
        p.shrunk,
        p.priority,
        p.namespaces.join(","),
        p.ns_selector.unwrap_or("-"),
        p.svc_selector.unwrap_or("-"),
    )
}

pub(super) fn service_body(s: &SvcSpec) -> Value {
    let mut annotations = serde_json::Map::new();
    if let Some(k) = s.sharing {
        annotations.insert("ferrolb.io/allow-shared-ip".into(), json!(k));
    }
    if let Some(p) = s.pool {
        annotations.insert("ferrolb.io/address-pool".into(), json!(p));
    }
    if !s.requested.is_empty() {
        let list: Vec<String> = s.requested.iter().map(ToString::to_string).collect();
        annotations.insert("ferrolb.io/loadBalancerIPs".into(), json!(list.join(",")));
    }
    let ports: Vec<Value> = s
        .ports
        .iter()
        .map(|(proto, port)| {
            json!({"name": format!("{}-{port}", proto.to_lowercase()), "protocol": proto, "port": port})
        })
        .collect();
    let mut spec = json!({
        "type": if s.load_balancer { "LoadBalancer" } else { "ClusterIP" },
        "selector": { "app": s.app },
        "ports": ports,
    });
    match s.family {
        0 => {
            spec["ipFamilyPolicy"] = json!("SingleStack");
            spec["ipFamilies"] = json!(["IPv4"]);
        }
        1 => {
            spec["ipFamilyPolicy"] = json!("SingleStack");
            spec["ipFamilies"] = json!(["IPv6"]);
        }
        2 => spec["ipFamilyPolicy"] = json!("PreferDualStack"),
        _ => spec["ipFamilyPolicy"] = json!("RequireDualStack"),
    }
    if s.load_balancer {
        spec["externalTrafficPolicy"] = json!(if s.local { "Local" } else { "Cluster" });
        if s.other_class {
            spec["loadBalancerClass"] = json!("other.example/lb");
        }
    }
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": s.name, "namespace": s.namespace,
            "labels": { "tier": s.tier },
            "annotations": annotations,
        },
        "spec": spec,
    })
}

/// The pool's object as the user writes it.
pub(super) fn pool_body(p: &PoolSpec) -> Value {
    let mut addresses = Vec::new();
    let shrink = |hi: &str| -> String {
        match (p.shrunk, hi.parse::<IpAddr>()) {
            (true, Ok(ip)) => back(ip, 4).to_string(),
            _ => hi.to_owned(),
        }
    };
    addresses.push(format!("{}-{}", p.slot.v4.0, shrink(p.slot.v4.1)));
    if let Some((lo, hi)) = p.slot.v6 {
        addresses.push(format!("{lo}-{}", shrink(hi)));
    }
    let mut spec = json!({
        "addresses": addresses,
        "autoAssign": p.auto_assign,
        "avoidBuggyIPs": p.avoid_buggy,
    });
    let mut allocation = serde_json::Map::new();
    if let Some(prio) = p.priority {
        allocation.insert("priority".into(), json!(prio));
    }
    if !p.namespaces.is_empty() {
        allocation.insert("namespaces".into(), json!(p.namespaces));
    }
    if let Some(team) = p.ns_selector {
        allocation.insert(
            "namespaceSelectors".into(),
            json!([{ "matchLabels": { "team": team } }]),
        );
    }
    if let Some(tier) = p.svc_selector {
        allocation.insert(
            "serviceSelectors".into(),
            json!([{ "matchLabels": { "tier": tier } }]),
        );
    }
    if !allocation.is_empty() {
        spec["serviceAllocation"] = Value::Object(allocation);
    }
    json!({
        "apiVersion": ferrolb_api::API_VERSION, "kind": "IPAddressPool",
        "metadata": { "name": p.slot.name, "namespace": ferrolb_api::DEFAULT_NAMESPACE },
        "spec": spec,
    })
}

pub(super) async fn apply_pool(client: &kube::Client, p: &PoolSpec) -> anyhow::Result<()> {
    let api: Api<IPAddressPool> = Api::namespaced(client.clone(), ferrolb_api::DEFAULT_NAMESPACE);
    api.patch(
        p.slot.name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&pool_body(p)),
    )
    .await?;
    Ok(())
}

pub(super) async fn delete_pool(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let api: Api<IPAddressPool> = Api::namespaced(client.clone(), ferrolb_api::DEFAULT_NAMESPACE);
    api.delete(name, &DeleteParams::default()).await?;
    wait_gone(&api, name).await
}

/// Waits until a deleted object is gone (no finalizers here, so at once).
pub(super) async fn wait_gone<K>(api: &Api<K>, name: &str) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + fmt::Debug,
{
    crate::controller::eventually(
        &format!("{name} deleted"),
        std::time::Duration::from_secs(10),
        || async {
            anyhow::ensure!(api.get_opt(name).await?.is_none(), "still there");
            Ok(())
        },
    )
    .await
}
