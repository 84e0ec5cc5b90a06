//! What users do in a chaos run: Services created, edited (annotations, ports, labels, type,
//! traffic policy), deleted and re-created; pools edited, deleted, re-created and replaced;
//! namespaces relabelled. The driver keeps what it last asked for and applies it with
//! server-side apply, as `kubectl apply --server-side` does.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

use super::objects::{
    MANAGER, PoolSpec, SvcSpec, apply_pool, delete_pool, describe, describe_pool, service_body,
    wait_gone,
};
pub use super::scenarios::Scenarios;
use super::universe::{NAMESPACES, Rng, Role, SLOTS, Slot};
use super::world::World;

/// At most this many Services exist at once.
const MAX_SERVICES: usize = 36;

/// The driver's side of the cluster's objects.
#[derive(Debug)]
pub struct Users {
    services: BTreeMap<String, SvcSpec>,
    pools: BTreeMap<&'static str, PoolSpec>,
    ns_labels: BTreeMap<&'static str, Option<&'static str>>,
    scenarios: Scenarios,
    next_name: usize,
}

/// One operation, described for the run's log and violation reports.
pub type Op = String;

impl Users {
    pub fn new(scenarios: Scenarios) -> Self {
        let pools = SLOTS
            .iter()
            .map(|slot| {
                let fenced = slot.role == Role::Fenced;
                (
                    slot.name,
                    PoolSpec {
                        slot: *slot,
                        present: true,
                        auto_assign: slot.auto_assign,
                        avoid_buggy: false,
                        shrunk: false,
                        priority: None,
                        namespaces: if slot.name == "prod-only" {
                            vec!["prod"]
                        } else {
                            vec![]
                        },
                        ns_selector: (fenced && slot.name == "team").then_some("blue"),
                        svc_selector: None,
                    },
                )
            })
            .collect();
        let ns_labels = NAMESPACES
            .iter()
            .map(|ns| (*ns, (*ns == "team-a").then_some("blue")))
            .collect();
        Self {
            services: BTreeMap::new(),
            pools,
            ns_labels,
            scenarios,
            next_name: 0,
        }
    }

    /// Creates the namespaces and pools of the start.
    pub async fn set_up(&self, client: &kube::Client) -> anyhow::Result<()> {
        for ns in NAMESPACES {
            self.apply_namespace(client, ns).await?;
        }
        for pool in self.pools.values() {
            apply_pool(client, pool).await?;
        }
        Ok(())
    }

    /// Picks and applies one operation; returns its description.
    pub async fn random_op(
        &mut self,
        client: &kube::Client,
        rng: &mut Rng,
        last: &World,
    ) -> anyhow::Result<Op> {
        loop {
            let roll = rng.below(100);
            let n = self.services.len();
            let op = match roll {
                0..=21 if n < MAX_SERVICES => self.create_service(client, rng, last).await?,
                22..=29 if n > 0 => self.delete_service(client, rng, false, last).await?,
                30..=33 if n > 0 => self.delete_service(client, rng, true, last).await?,
                34..=55 if n > 0 => self.edit_service(client, rng, last).await?,
                56..=69 => self.edit_pool(client, rng).await?,
                70..=75 => self.delete_or_create_pool(client, rng).await?,
                76..=83 if self.scenarios.pool_replace => self.replace_pool(client, rng).await?,
                84..=91 => self.relabel_namespace(client, rng).await?,
                92..=99 if self.scenarios.fence_bypass => {
                    self.tenant_attack(client, rng, last).await?
                }
                _ => continue,
            };
            return Ok(op);
        }
    }

    async fn create_service(
        &mut self,
        client: &kube::Client,
        rng: &mut Rng,
        last: &World,
    ) -> anyhow::Result<Op> {
        self.next_name += 1;
        let namespace = (*rng.pick(&NAMESPACES)).to_owned();
        let name = format!("svc-{}", self.next_name);
        let mut spec = SvcSpec {
            namespace,
            name,
            family: *rng.pick(&[0, 0, 0, 1, 2, 2, 3]),
            load_balancer: rng.chance(92),
            other_class: rng.chance(6),
            local: rng.chance(25),
            app: rng.pick::<&str>(&["a", "b"]),
            tier: rng.pick::<&str>(&["web", "db"]),
            ports: random_ports(rng),
            sharing: None,
            pool: None,
            requested: Vec::new(),
        };
        if spec.family == 2 && !self.scenarios.prefer_dual_stack {
            spec.family = 3;
        }
        self.randomise_annotations(&mut spec, rng, last);
        let what = format!("create {}", describe(&spec));
        self.apply_service(client, &spec).await?;
        self.services
            .insert(format!("{}/{}", spec.namespace, spec.name), spec);
        Ok(what)
    }

    /// Sets each annotation with some probability; requested IPs come from the pools' slots.
    fn randomise_annotations(&self, spec: &mut SvcSpec, rng: &mut Rng, last: &World) {
        spec.sharing = rng.chance(35).then(|| *rng.pick(&["k1", "k2"]));
        spec.pool = rng.chance(25).then(|| {
            let nameable: Vec<&'static str> = SLOTS
                .iter()
                .filter(|s| s.role == Role::Open || self.scenarios.fence_bypass)
                .map(|s| s.name)
                .collect();
            *rng.pick(&nameable)
        });
        spec.requested = if rng.chance(25) {
            random_requested(spec, rng, last, self.scenarios.partial_dual_request)
        } else {
            Vec::new()
        };
    }

    async fn delete_service(
        &mut self,
        client: &kube::Client,
        rng: &mut Rng,
        recreate: bool,
        last: &World,
    ) -> anyhow::Result<Op> {
        let keys: Vec<String> = self.services.keys().cloned().collect();
        let key = rng.pick(&keys).clone();
        let Some(mut spec) = self.services.remove(&key) else {
            return Ok(String::new());
        };
        let api: Api<Service> = Api::namespaced(client.clone(), &spec.namespace);
        api.delete(&spec.name, &DeleteParams::default()).await?;
        if !recreate {
            return Ok(format!("delete {key}"));
        }
        // The same name, a new object (new uid) with new wishes.
        spec.ports = random_ports(rng);
        spec.local = rng.chance(25);
        self.randomise_annotations(&mut spec, rng, last);
        wait_gone(&api, &spec.name).await?;
        self.apply_service(client, &spec).await?;
        let what = format!("re-create {}", describe(&spec));
        self.services.insert(key, spec);
        Ok(what)
    }

    async fn edit_service(
        &mut self,
        client: &kube::Client,
        rng: &mut Rng,
        last: &World,
    ) -> anyhow::Result<Op> {
        let keys: Vec<String> = self.services.keys().cloned().collect();
        let key = rng.pick(&keys).clone();
        let Some(mut spec) = self.services.get(&key).cloned() else {
            return Ok(String::new());
        };
        let change = match rng.below(9) {
            0 => {
                spec.sharing = rng.chance(60).then(|| *rng.pick(&["k1", "k2"]));
                "sharing key"
            }
            1 | 2 => {
                let fresh = {
                    let mut s = spec.clone();
                    self.randomise_annotations(&mut s, rng, last);
                    s
                };
                spec.pool = fresh.pool;
                "address-pool"
            }
            3 | 4 => {
                spec.requested = if rng.chance(70) {
                    random_requested(&spec, rng, last, self.scenarios.partial_dual_request)
                } else {
                    Vec::new()
                };
                "loadBalancerIPs"
            }
            5 => {
                spec.ports = random_ports(rng);
                "ports"
            }
            6 => {
                spec.tier = if spec.tier == "web" { "db" } else { "web" };
                "labels"
            }
            7 if !spec.other_class => {
                spec.load_balancer = !spec.load_balancer;
                "type"
            }
            _ => {
                spec.local = !spec.local;
                "externalTrafficPolicy"
            }
        };
        self.apply_service(client, &spec).await?;
        let what = format!("edit {change} of {}", describe(&spec));
        self.services.insert(key, spec);
        Ok(what)
    }

    async fn edit_pool(&mut self, client: &kube::Client, rng: &mut Rng) -> anyhow::Result<Op> {
        let names: Vec<&'static str> = self.pools.keys().copied().collect();
        let name = *rng.pick(&names);
        let Some(pool) = self.pools.get_mut(name) else {
            return Ok(String::new());
        };
        if !pool.present {
            pool.present = true;
            apply_pool(client, pool).await?;
            return Ok(format!("create pool {name}"));
        }
        let fenced = pool.slot.role == Role::Fenced;
        let change = match rng.below(if fenced { 8 } else { 4 }) {
            0 => {
                pool.auto_assign = !pool.auto_assign;
                "autoAssign"
            }
            1 => {
                pool.avoid_buggy = !pool.avoid_buggy;
                "avoidBuggyIPs"
            }
            2 => {
                pool.shrunk = !pool.shrunk;
                "size"
            }
            3 => {
                pool.priority = rng.chance(60).then(|| *rng.pick(&[1, 2, 5]));
                "priority"
            }
            4 | 5 => {
                pool.namespaces = NAMESPACES
                    .iter()
                    .copied()
                    .filter(|_| rng.chance(30))
                    .collect();
                "namespaces"
            }
            6 => {
                pool.ns_selector = rng.chance(70).then(|| *rng.pick(&["blue", "red"]));
                "namespaceSelectors"
            }
            _ => {
                pool.svc_selector = rng.chance(50).then(|| *rng.pick(&["web", "db"]));
                "serviceSelectors"
            }
        };
        apply_pool(client, pool).await?;
        Ok(format!("edit {change} of pool {}", describe_pool(pool)))
    }

    async fn delete_or_create_pool(
        &mut self,
        client: &kube::Client,
        rng: &mut Rng,
    ) -> anyhow::Result<Op> {
        let names: Vec<&'static str> = self.pools.keys().copied().collect();
        let name = *rng.pick(&names);
        let Some(pool) = self.pools.get_mut(name) else {
            return Ok(String::new());
        };
        pool.present = !pool.present;
        if pool.present {
            apply_pool(client, pool).await?;
            Ok(format!("create pool {}", describe_pool(pool)))
        } else {
            delete_pool(client, name).await?;
            Ok(format!("delete pool {name}"))
        }
    }

    async fn replace_pool(&mut self, client: &kube::Client, rng: &mut Rng) -> anyhow::Result<Op> {
        let present: Vec<&'static str> = self
            .pools
            .iter()
            .filter(|(_, p)| p.present)
            .map(|(n, _)| *n)
            .collect();
        if present.is_empty() {
            return Ok("replace: no pool present".into());
        }
        let name = *rng.pick(&present);
        delete_pool(client, name).await?;
        if let Some(pool) = self.pools.get(name) {
            apply_pool(client, pool).await?;
        }
        Ok(format!(
            "replace pool {name} (delete and create the same spec)"
        ))
    }

    async fn relabel_namespace(
        &mut self,
        client: &kube::Client,
        rng: &mut Rng,
    ) -> anyhow::Result<Op> {
        let ns = *rng.pick(&NAMESPACES);
        let team = *rng.pick(&[None, Some("blue"), Some("red")]);
        self.ns_labels.insert(ns, team);
        self.apply_namespace(client, ns).await?;
        Ok(format!(
            "relabel namespace {ns} team={}",
            team.unwrap_or("-")
        ))
    }

    /// A Service that holds one IPv4 address asks for the IPv4 address of a Service that
    /// sorts after it (what the tenant does while no controller leads). `None` if no
    /// such pair exists.
    pub async fn steal_ip(
        &mut self,
        client: &kube::Client,
        rng: &mut Rng,
        last: &World,
    ) -> anyhow::Result<Option<Op>> {
        let single_v4 = |key: &String| {
            last.services
                .get(key)
                .filter(|s| s.ours && s.ips.len() == 1 && s.ips[0].is_ipv4())
        };
        let holders: Vec<&String> = self
            .services
            .iter()
            .filter(|(k, spec)| spec.family == 0 && single_v4(k).is_some())
            .map(|(k, _)| k)
            .collect();
        let pairs: Vec<(&String, &String)> = holders
            .iter()
            .flat_map(|a| {
                holders
                    .iter()
                    .filter(move |v| a.as_str() < v.as_str())
                    .map(move |v| (*a, *v))
            })
            .collect();
        if pairs.is_empty() {
            return Ok(None);
        }
        let (attacker, victim) = *rng.pick(&pairs);
        let Some(ip) = single_v4(victim).map(|v| v.ips[0]) else {
            return Ok(None);
        };
        let Some(mut spec) = self.services.get(attacker).cloned() else {
            return Ok(None);
        };
        spec.requested = vec![ip];
        spec.pool = None;
        self.apply_service(client, &spec).await?;
        let what = format!("{attacker} asks for {ip}, held by {victim}");
        self.services.insert(attacker.clone(), spec);
        Ok(Some(what))
    }

    /// The tenant of `evil` names a fenced pool and one of its IPs.
    async fn tenant_attack(
        &mut self,
        client: &kube::Client,
        rng: &mut Rng,
        last: &World,
    ) -> anyhow::Result<Op> {
        self.next_name += 1;
        let target = *rng.pick(&["prod-only", "team"]);
        let free: Vec<IpAddr> = slot(target)
            .addresses()
            .into_iter()
            .filter(|ip| ip.is_ipv4() && !last.holders().contains_key(ip))
            .collect();
        let Some(ip) = (!free.is_empty()).then(|| *rng.pick(&free)) else {
            return Ok(format!("tenant attack on {target}: no free IP"));
        };
        let spec = SvcSpec {
            namespace: "evil".into(),
            name: format!("svc-{}", self.next_name),
            family: 0,
            load_balancer: true,
            other_class: false,
            local: false,
            app: "a",
            tier: "web",
            ports: vec![("TCP", 80)],
            sharing: None,
            pool: Some(target),
            requested: vec![ip],
        };
        self.apply_service(client, &spec).await?;
        let what = format!("tenant attack: create {}", describe(&spec));
        self.services
            .insert(format!("{}/{}", spec.namespace, spec.name), spec);
        Ok(what)
    }

    async fn apply_namespace(&self, client: &kube::Client, ns: &str) -> anyhow::Result<()> {
        let mut labels = json!({ "chaos": "yes" });
        if let Some(Some(team)) = self.ns_labels.get(ns) {
            labels["team"] = json!(team);
        }
        let body = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": { "name": ns, "labels": labels },
        });
        Api::<Namespace>::all(client.clone())
            .patch(
                ns,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await?;
        Ok(())
    }

    async fn apply_service(&self, client: &kube::Client, s: &SvcSpec) -> anyhow::Result<()> {
        let api: Api<Service> = Api::namespaced(client.clone(), &s.namespace);
        api.patch(
            &s.name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&service_body(s)),
        )
        .await?;
        Ok(())
    }
}

fn slot(name: &str) -> Slot {
    SLOTS
        .iter()
        .find(|s| s.name == name)
        .copied()
        .unwrap_or(SLOTS[0])
}

fn random_ports(rng: &mut Rng) -> Vec<(&'static str, i32)> {
    let all = [("TCP", 80), ("TCP", 443), ("UDP", 53), ("TCP", 8080)];
    let first = rng.below(all.len());
    let mut ports = vec![all[first]];
    if rng.chance(30) {
        let second = all[(first + 1 + rng.below(all.len() - 1)) % all.len()];
        ports.push(second);
    }
    ports
}

/// One IP per family the Service may have (a dual-stack Service names one family only when
/// `partial` is on) from the slots: mostly free ones, sometimes one a Service already holds (a
/// contended request).
fn random_requested(spec: &SvcSpec, rng: &mut Rng, last: &World, partial: bool) -> Vec<IpAddr> {
    let holders = last.holders();
    let wants_v6 = spec.family != 0;
    let wants_v4 = spec.family != 1;
    let all: Vec<IpAddr> = SLOTS.iter().flat_map(Slot::addresses).collect();
    let mut out = Vec::new();
    for v4 in [true, false] {
        if (v4 && !wants_v4) || (!v4 && !wants_v6) || (partial && !out.is_empty()) {
            continue;
        }
        let contended = rng.chance(25);
        let choices: Vec<IpAddr> = all
            .iter()
            .copied()
            .filter(|ip| ip.is_ipv4() == v4 && holders.contains_key(ip) == contended)
            .collect();
        if !choices.is_empty() {
            out.push(*rng.pick(&choices));
        }
    }
    if !partial && wants_v4 && wants_v6 && out.len() == 1 {
        out.clear();
    }
    out
}

impl Users {
    /// Names of the pools the driver has deleted (and not re-created).
    pub fn absent_pools(&self) -> Vec<&'static str> {
        self.pools
            .iter()
            .filter(|(_, p)| !p.present)
            .map(|(n, _)| *n)
            .collect()
    }
}
