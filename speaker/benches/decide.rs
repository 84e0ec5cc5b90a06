//! What the speaker's decisions cost, at 1,000, 10,000 and 100,000 Services on 10 nodes, one
//! IP each (198.18.0.0/15, the benchmarking range), one ready endpoint each, half of them
//! `externalTrafficPolicy: Local`. Figures go to docs/scale.md.
//!
//! - `decide/one pass`: everything from scratch, as every pass did before the decisions were
//!   kept between passes: the views of every Service from the caches, the layer-2 election
//!   of every IP, and this node's BGP routes. A relist or a configuration change still costs
//!   this much (the BGP routes: every pass while a BGPAdvertisement exists).
//! - `event/one Service changed`: what the speaker does when an EndpointSlice changes (its
//!   endpoint moves to another node): the view of that Service from its own slice, its
//!   endpoints' ages, the election of its IP (from the views of its Services, built again
//!   from the caches), and this node's share of it. Issue #14 asks for this flat.
//! - `event/a speaker left`: a node's speaker leaves the membership and the survivors
//!   decide again the IPs it announced, a tenth of them here (O(IPs it held)).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ferrolb_config::{Config, NodeName, Snapshot};
use ferrolb_speaker::bgp::advertise;
use ferrolb_speaker::election::{NodeInfo, World};
use ferrolb_speaker::k8s::slim::{SlimService, SlimSlice};
use ferrolb_speaker::k8s::view;
use ferrolb_speaker::plan;
use ferrolb_speaker::settle::EndpointAges;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::time::Instant;

const NODES: usize = 10;

const CONFIG: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: bench, namespace: ferrolb-system}
spec: {addresses: ['198.18.0.0/15']}
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: ferrolb-system}
spec: {ipAddressPools: [bench]}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bgp, namespace: ferrolb-system}
spec: {ipAddressPools: [bench]}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPPeer
metadata: {name: tor, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 192.0.2.1}
"#;

fn config() -> Config {
    let snapshot = Snapshot::from_yaml("ferrolb-system", CONFIG).expect("the bench's config");
    let outcome = ferrolb_config::parse(&snapshot);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    outcome.config
}

fn node(i: usize) -> String {
    format!("node-{i}")
}

/// Service `i` with its IP, and its slice with one ready endpoint on a node.
fn service(i: usize) -> (SlimService, SlimSlice) {
    service_on(i, i % NODES)
}

/// Service `i` with its IP, and its slice with one ready endpoint on node `on`.
fn service_on(i: usize, on: usize) -> (SlimService, SlimSlice) {
    let ip = IpAddr::V4(Ipv4Addr::from(
        u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i as u32,
    ));
    let policy = if i.is_multiple_of(2) {
        "Local"
    } else {
        "Cluster"
    };
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("svc-{i}"), "namespace": "apps", "uid": format!("u-{i}"),
            "annotations": {"ferrolb.io/ip-allocated-from-pool": "bench"}},
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": policy},
        "status": {"loadBalancer": {"ingress": [{"ip": ip.to_string()}]}},
    }))
    .expect("a Service");
    let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("svc-{i}-x"), "namespace": "apps",
            "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["198.19.255.1"], "nodeName": node(on),
            "conditions": {"ready": true}}],
    }))
    .expect("a slice");
    (SlimService::of(&svc, None), SlimSlice::of(&slice))
}

fn bench_decide(c: &mut Criterion) {
    let config = config();
    let nodes: BTreeMap<NodeName, NodeInfo> = (0..NODES)
        .map(|i| (NodeName::from(node(i)), NodeInfo::default()))
        .collect();
    let me = NodeName::from(node(0));
    let mut group = c.benchmark_group("decide");
    group.sample_size(10);
    for n in [1_000, 10_000, 100_000] {
        let (services, slices): (Vec<SlimService>, Vec<SlimSlice>) = (0..n).map(service).unzip();
        group.bench_with_input(BenchmarkId::new("one pass", n), &n, |b, _| {
            b.iter(|| {
                let endpoints = view::endpoints_of(&slices);
                let lb: Vec<plan::LbService> = services
                    .iter()
                    .filter_map(|s| view::lb_service_of(s, &endpoints))
                    .collect();
                let world = World::new(&config, &nodes, None);
                let layer2 = plan::layer2(world, &lb);
                let bgp = advertise::plan(
                    &config,
                    &advertise::Node {
                        name: &me,
                        info: &nodes[&me],
                        ignore_exclude_label: false,
                        exclude_label_age: None,
                    },
                    &lb,
                );
                black_box((layer2, bgp))
            });
        });
    }
    group.finish();
}

/// The view of one Service as the speaker builds it: from the Service and its own slices.
fn view_of(svc: &SlimService, slice: &SlimSlice) -> Option<plan::LbService> {
    view::lb_service_of(svc, &view::endpoints_of([slice]))
}

/// This node's share of the IPs decided, as the speaker hands it to the announcer.
fn mine(decisions: &plan::Decisions, decided: &[plan::Redecided], me: &NodeName) -> usize {
    decided
        .iter()
        .filter(|(ip, _)| {
            decisions
                .plans()
                .get(ip)
                .is_some_and(|p| p.decision.winner() == Some(me))
        })
        .count()
}

fn bench_event(c: &mut Criterion) {
    let config = config();
    let nodes: BTreeMap<NodeName, NodeInfo> = (0..NODES)
        .map(|i| (NodeName::from(node(i)), NodeInfo::default()))
        .collect();
    let all: BTreeSet<NodeName> = nodes.keys().cloned().collect();
    let me = NodeName::from(node(0));
    let mut group = c.benchmark_group("event");
    // Each "a speaker left" iteration first decides everything again, untimed: keep the
    // number of iterations small.
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(2));
    for n in [1_000, 10_000, 100_000] {
        let world = |live| World::new(&config, &nodes, live);
        let start = Instant::now();
        // The caches: each Service and its slice, by `namespace/name`.
        let mut caches: HashMap<String, (SlimService, SlimSlice)> = (0..n)
            .map(|i| (format!("apps/svc-{i}"), service(i)))
            .collect();
        let mut decisions = plan::Decisions::new();
        let mut ages = EndpointAges::new(Duration::from_millis(1500));
        for (key, (svc, slice)) in &caches {
            let view = view_of(svc, slice);
            ages.observe_service(key, view.as_ref(), start);
            decisions.set_service(key, view.as_ref());
        }
        ages.prime();
        let views = |caches: &HashMap<String, (SlimService, SlimSlice)>, key: &str| {
            let (svc, slice) = caches.get(key)?;
            view_of(svc, slice)
        };
        decisions.decide(world(Some(&all)), |k| views(&caches, k), |_, _, _| {});
        // The Service whose endpoint moves, both ways, prepared outside the timing.
        let changed = n / 2 + 1;
        let key = format!("apps/svc-{changed}");
        let moves = [service_on(changed, 3), service_on(changed, changed % NODES)];
        let mut turn = 0;
        group.bench_with_input(BenchmarkId::new("one Service changed", n), &n, |b, _| {
            b.iter(|| {
                // The slice changes in the cache (a move, untimed in the speaker too: the
                // reflector does it).
                let (svc, slice) = &moves[turn % 2];
                turn += 1;
                caches.insert(key.clone(), (svc.clone(), slice.clone()));
                let view = view_of(svc, slice);
                ages.observe_service(&key, view.as_ref(), Instant::now());
                decisions.set_service(&key, view.as_ref());
                let decided =
                    decisions.decide(world(Some(&all)), |k| views(&caches, k), |_, _, _| {});
                black_box(mine(&decisions, &decided, &me))
            });
        });
        let gone = NodeName::from(node(7));
        let mut survivors = all.clone();
        survivors.remove(&gone);
        group.bench_with_input(BenchmarkId::new("a speaker left", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    // Back to every speaker live, outside the timing.
                    decisions.world_changed();
                    decisions.decide(world(Some(&all)), |k| views(&caches, k), |_, _, _| {});
                    let started = std::time::Instant::now();
                    decisions.nodes_gone([&gone]);
                    let decided = decisions.decide(
                        world(Some(&survivors)),
                        |k| views(&caches, k),
                        |_, _, _| {},
                    );
                    black_box(mine(&decisions, &decided, &me));
                    spent += started.elapsed();
                }
                spent
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decide, bench_event);
criterion_main!(benches);
