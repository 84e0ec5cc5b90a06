//! What one decision pass costs, as the speaker makes it on every change it sees (a Service,
//! an EndpointSlice, a Node, the membership): from its caches of Services and EndpointSlices
//! to the Services the plan reads, the layer-2 election of every IP, and this node's BGP
//! routes. Every pass decides every Service today, so the cost per change grows with the
//! Services; issue #14 asks for it flat. 1,000, 10,000 and 100,000 Services on 10 nodes, one
//! IP each (198.18.0.0/15, the benchmarking range), one ready endpoint each, half of them
//! `externalTrafficPolicy: Local`. Figures go to docs/scale.md.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ferrolb_config::{Config, NodeName, Snapshot};
use ferrolb_speaker::bgp::advertise;
use ferrolb_speaker::election::{NodeInfo, World};
use ferrolb_speaker::k8s::slim::{SlimService, SlimSlice};
use ferrolb_speaker::k8s::view;
use ferrolb_speaker::plan;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

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
        "endpoints": [{"addresses": ["198.19.255.1"], "nodeName": node(i % NODES),
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
                let world = World {
                    config: &config,
                    nodes: &nodes,
                    live: None,
                    ignore_exclude_label: false,
                };
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

criterion_group!(benches, bench_decide);
criterion_main!(benches);
