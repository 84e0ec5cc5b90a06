//! What the apiserver holds, read back and interpreted by the checker **on its own**: address
//! ranges, namespace fences, annotations, ports and families are parsed here from the objects,
//! without ferrolb's config or allocator code, so that a bug there cannot hide itself.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ferrolb_api::IPAddressPool;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::Api;
use kube::api::ListParams;

/// The condition the controller keeps on each Service it handles.
pub const CONDITION: &str = "ferrolb.io/IPAssigned";

/// `namespace/name`.
pub type Key = String;

/// A pool as the checker understands it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolView {
    pub name: String,
    /// Inclusive ranges.
    pub ranges: Vec<(IpAddr, IpAddr)>,
    pub avoid_buggy: bool,
    /// `None`: every namespace; otherwise the namespaces listed or selected by label.
    pub namespaces: Option<BTreeSet<String>>,
    /// Service label selectors (`matchLabels` only); empty: every Service.
    pub service_selectors: Vec<BTreeMap<String, String>>,
}

impl PoolView {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.ranges
            .iter()
            .any(|(lo, hi)| lo.is_ipv4() == ip.is_ipv4() && *lo <= ip && ip <= *hi)
    }

    /// Whether a Service in `namespace` with `labels` may hold this pool's IPs.
    pub fn allows(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|ns| ns.contains(namespace))
            && (self.service_selectors.is_empty()
                || self
                    .service_selectors
                    .iter()
                    .any(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v))))
    }
}

/// One Service as the checker understands it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceView {
    pub key: Key,
    pub namespace: String,
    pub uid: String,
    /// Changes with every write, so a write loop never looks settled.
    pub resource_version: String,
    /// type LoadBalancer without a loadBalancerClass.
    pub ours: bool,
    pub ips: Vec<IpAddr>,
    pub labels: BTreeMap<String, String>,
    /// `Err`: the loadBalancerIPs annotation cannot be honoured as written.
    pub requested: Result<Vec<IpAddr>, String>,
    pub pool: Option<String>,
    pub sharing_key: String,
    pub backend_key: String,
    pub ports: BTreeSet<(String, i32)>,
    /// The families it may get IPs of (the first only for SingleStack).
    pub families: Vec<bool>,
    pub require_dual: bool,
    /// Status, reason and message of our condition.
    pub condition: Option<(String, String, String)>,
}

/// A settled state of the cluster.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub pools: BTreeMap<String, PoolView>,
    pub services: BTreeMap<Key, ServiceView>,
}

impl World {
    /// Reads pools, namespaces and Services.
    pub async fn read(client: &kube::Client) -> anyhow::Result<Self> {
        let lp = ListParams::default();
        let namespaces: BTreeMap<String, BTreeMap<String, String>> =
            Api::<Namespace>::all(client.clone())
                .list(&lp)
                .await?
                .items
                .into_iter()
                .map(|n| {
                    (
                        n.metadata.name.unwrap_or_default(),
                        n.metadata.labels.unwrap_or_default(),
                    )
                })
                .collect();
        let pools =
            Api::<IPAddressPool>::namespaced(client.clone(), ferrolb_api::DEFAULT_NAMESPACE)
                .list(&lp)
                .await?
                .items
                .into_iter()
                .map(|p| {
                    let view = pool_view(&p, &namespaces);
                    (view.name.clone(), view)
                })
                .collect();
        let services = Api::<Service>::all(client.clone())
            .list(&lp)
            .await?
            .items
            .iter()
            .map(service_view)
            .map(|s| (s.key.clone(), s))
            .collect();
        Ok(Self { pools, services })
    }

    /// The pool containing `ip`.
    pub fn pool_of(&self, ip: IpAddr) -> Option<&PoolView> {
        self.pools.values().find(|p| p.contains(ip))
    }

    /// Who holds each IP.
    pub fn holders(&self) -> BTreeMap<IpAddr, Vec<&ServiceView>> {
        let mut holders: BTreeMap<IpAddr, Vec<&ServiceView>> = BTreeMap::new();
        for s in self.services.values() {
            for ip in &s.ips {
                holders.entry(*ip).or_default().push(s);
            }
        }
        holders
    }

    /// The Services written since `earlier` was read (or created or deleted since).
    pub fn changed_since<'a>(&'a self, earlier: &'a World) -> Vec<&'a str> {
        let mut changed: Vec<&str> = self
            .services
            .values()
            .filter(|s| {
                earlier
                    .services
                    .get(&s.key)
                    .is_none_or(|e| e.resource_version != s.resource_version)
            })
            .map(|s| s.key.as_str())
            .collect();
        changed.extend(
            earlier
                .services
                .keys()
                .filter(|k| !self.services.contains_key(*k))
                .map(String::as_str),
        );
        changed
    }
}

fn pool_view(
    p: &IPAddressPool,
    namespaces: &BTreeMap<String, BTreeMap<String, String>>,
) -> PoolView {
    let ranges = p
        .spec
        .addresses
        .iter()
        .filter_map(|a| parse_range(&a.0))
        .collect();
    let (namespaces, service_selectors) = match &p.spec.service_allocation {
        None => (None, Vec::new()),
        Some(a) => {
            let restricted = !a.namespaces.is_empty() || !a.namespace_selectors.is_empty();
            let allowed = restricted.then(|| {
                let mut set: BTreeSet<String> = a.namespaces.iter().cloned().collect();
                for (name, labels) in namespaces {
                    if a.namespace_selectors.iter().any(|sel| {
                        sel.match_labels
                            .iter()
                            .flatten()
                            .all(|(k, v)| labels.get(k) == Some(v))
                    }) {
                        set.insert(name.clone());
                    }
                }
                set
            });
            let selectors = a
                .service_selectors
                .iter()
                .map(|s| s.match_labels.clone().unwrap_or_default())
                .collect();
            (allowed, selectors)
        }
    };
    PoolView {
        name: p.metadata.name.clone().unwrap_or_default(),
        ranges,
        avoid_buggy: p.spec.avoid_buggy_ips,
        namespaces,
        service_selectors,
    }
}

/// `a.b.c.d/n`, `a-b` (the two forms the chaos driver writes).
fn parse_range(s: &str) -> Option<(IpAddr, IpAddr)> {
    if let Some((lo, hi)) = s.split_once('-') {
        return Some((lo.trim().parse().ok()?, hi.trim().parse().ok()?));
    }
    let net: ipnet::IpNet = s.trim().parse().ok()?;
    Some((net.network(), net.broadcast()))
}

/// One of the three spellings of a ferrolb Service annotation (ours, MetalLB's, MetalLB's old).
fn annotation<'a>(notes: &'a BTreeMap<String, String>, suffix: &str) -> Option<&'a str> {
    ["ferrolb.io/", "metallb.io/", "metallb.universe.tf/"]
        .iter()
        .find_map(|prefix| notes.get(&format!("{prefix}{suffix}")))
        .map(|v| v.trim())
}

fn service_view(svc: &Service) -> ServiceView {
    let namespace = svc.metadata.namespace.clone().unwrap_or_default();
    let key = format!(
        "{namespace}/{}",
        svc.metadata.name.as_deref().unwrap_or_default()
    );
    let spec = svc.spec.clone().unwrap_or_default();
    let notes = svc.metadata.annotations.clone().unwrap_or_default();
    let ours = spec.type_.as_deref() == Some("LoadBalancer") && spec.load_balancer_class.is_none();
    let ips = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect();
    let all_families: Vec<bool> = spec
        .ip_families
        .iter()
        .flatten()
        .map(|f| f == "IPv4")
        .collect();
    let require_dual = spec.ip_family_policy.as_deref() == Some("RequireDualStack");
    let families: Vec<bool> = match spec.ip_family_policy.as_deref() {
        Some("PreferDualStack" | "RequireDualStack") => all_families,
        _ => all_families.into_iter().take(1).collect(),
    };
    let requested = match annotation(&notes, "loadBalancerIPs") {
        None => Ok(Vec::new()),
        Some(list) => {
            let parsed: Result<Vec<IpAddr>, _> = list
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::parse)
                .collect();
            match parsed {
                Err(_) => Err(format!("unparseable loadBalancerIPs {list}")),
                Ok(ips) if ips.iter().any(|ip| !families.contains(&ip.is_ipv4())) => Err(format!(
                    "loadBalancerIPs {list} not of the Service's families"
                )),
                Ok(ips)
                    if ips.len() > 2
                        || (ips.len() == 2 && ips[0].is_ipv4() == ips[1].is_ipv4()) =>
                {
                    Err(format!("loadBalancerIPs {list}: more than one per family"))
                }
                Ok(ips) => Ok(ips),
            }
        }
    };
    let backend_key = if spec.external_traffic_policy.as_deref() == Some("Local") {
        spec.selector
            .iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    } else {
        String::new()
    };
    let ports = spec
        .ports
        .iter()
        .flatten()
        .map(|p| (p.protocol.clone().unwrap_or_else(|| "TCP".into()), p.port))
        .collect();
    let condition = svc
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == CONDITION)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()));
    ServiceView {
        key,
        namespace,
        uid: svc.metadata.uid.clone().unwrap_or_default(),
        resource_version: svc.metadata.resource_version.clone().unwrap_or_default(),
        ours,
        ips,
        labels: svc.metadata.labels.clone().unwrap_or_default(),
        requested,
        pool: annotation(&notes, "address-pool")
            .filter(|p| !p.is_empty())
            .map(str::to_owned),
        sharing_key: annotation(&notes, "allow-shared-ip")
            .unwrap_or_default()
            .to_owned(),
        backend_key,
        ports,
        families,
        require_dual,
        condition,
    }
}

/// Why two Services may not hold one IP together; `None` if they may.
pub fn share_conflict(a: &ServiceView, b: &ServiceView) -> Option<String> {
    if a.sharing_key.is_empty() || a.sharing_key != b.sharing_key {
        return Some(format!(
            "sharing keys {:?} and {:?}",
            a.sharing_key, b.sharing_key
        ));
    }
    if a.backend_key != b.backend_key {
        return Some(format!(
            "externalTrafficPolicy Local with selectors {:?} and {:?}",
            a.backend_key, b.backend_key
        ));
    }
    if let Some((proto, port)) = a.ports.intersection(&b.ports).next() {
        return Some(format!("both use {proto}/{port}"));
    }
    None
}

impl fmt::Display for ServiceView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ips: Vec<String> = self.ips.iter().map(ToString::to_string).collect();
        write!(f, "{} [{}]", self.key, ips.join(","))?;
        if !self.sharing_key.is_empty() {
            write!(f, " key={}", self.sharing_key)?;
        }
        if let Some(p) = &self.pool {
            write!(f, " pool={p}")?;
        }
        if let Ok(r) = &self.requested
            && !r.is_empty()
        {
            let r: Vec<String> = r.iter().map(ToString::to_string).collect();
            write!(f, " requested={}", r.join(","))?;
        }
        Ok(())
    }
}
