use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Resource;

use super::Trim;
use crate::k8s::view;

/// A Service as `kubectl apply` leaves it, with everything the speaker does not read.
const SERVICE: &str = r#"{
  "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "resourceVersion": "42",
    "generation": 3, "creationTimestamp": "2026-12-07T10:00:00Z",
    "labels": {"app": "web", "tier": "front"},
    "annotations": {
      "kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"web\"},\"spec\":{\"type\":\"LoadBalancer\"}}",
      "metallb.io/allow-shared-ip": "front",
      "ferrolb.io/ip-allocated-from-pool": "lan",
      "ferrolb.io/announce-without-endpoints": "true",
      "example.com/owner": "team-a"},
    "finalizers": ["service.kubernetes.io/load-balancer-cleanup"]},
  "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
    "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ipFamilies": ["IPv4"],
    "ipFamilyPolicy": "SingleStack", "selector": {"app": "web"}, "sessionAffinity": "None",
    "healthCheckNodePort": 31000,
    "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080}]},
  "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.200", "ipMode": "VIP",
      "ports": [{"port": 80, "protocol": "TCP"}]}, {"ip": "2001:db8::200"}]},
    "conditions": [{"type": "ferrolb.io/IPAssigned", "status": "True", "reason": "Assigned",
      "message": "from pool lan", "lastTransitionTime": "2026-12-07T10:00:01Z"},
      {"type": "ferrolb.io/BGPAdvertised", "status": "True", "reason": "Advertised",
      "message": "advertised by node \"n1\" to peer \"tor\"", "lastTransitionTime": "2026-12-07T10:00:02Z"}]}
}"#;

const SLICE: &str = r#"{
  "metadata": {"name": "web-abc12", "namespace": "shop", "uid": "u-2", "resourceVersion": "43",
    "generateName": "web-",
    "labels": {"kubernetes.io/service-name": "web",
      "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
    "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "2026-12-07T10:00:00Z"},
    "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "u-1",
      "controller": true, "blockOwnerDeletion": true}]},
  "addressType": "IPv4",
  "endpoints": [
    {"addresses": ["198.18.1.10", "198.18.1.11"], "nodeName": "n1", "zone": "a",
     "hostname": "web-0", "conditions": {"ready": true, "serving": true, "terminating": false},
     "targetRef": {"kind": "Pod", "namespace": "shop", "name": "web-0", "uid": "p-1"},
     "hints": {"forZones": [{"name": "a"}]}},
    {"addresses": ["198.18.2.10"], "nodeName": "n2",
     "conditions": {"ready": false, "serving": true, "terminating": true}},
    {"addresses": [], "nodeName": "n3", "conditions": {"ready": true}}],
  "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
}"#;

const NODE: &str = r#"{
  "metadata": {"name": "n1", "uid": "u-3", "resourceVersion": "44",
    "labels": {"kubernetes.io/hostname": "n1", "zone": "a"},
    "annotations": {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
  "spec": {"podCIDR": "198.18.1.0/24", "podCIDRs": ["198.18.1.0/24"], "providerID": "lab://n1",
    "taints": [{"key": "maintenance", "effect": "NoExecute"}]},
  "status": {
    "addresses": [{"type": "InternalIP", "address": "192.0.2.11"},
      {"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "2001:db8::11"}],
    "conditions": [{"type": "Ready", "status": "True"},
      {"type": "NetworkUnavailable", "status": "True"}],
    "capacity": {"cpu": "2", "memory": "24Gi", "pods": "110"},
    "allocatable": {"cpu": "2", "memory": "23Gi", "pods": "110"},
    "images": [{"names": ["registry.example/echo@sha256:0123", "registry.example/echo:1"],
      "sizeBytes": 12345678}],
    "nodeInfo": {"machineID": "m", "systemUUID": "s", "bootID": "b", "kernelVersion": "6.18",
      "osImage": "Debian", "containerRuntimeVersion": "containerd://2", "kubeletVersion": "v1.37.2",
      "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"}}
}"#;

fn parse<T: serde::de::DeserializeOwned>(json: &str) -> T {
    serde_json::from_str(json).expect("a valid object")
}

fn trimmed<T: Trim + Clone>(object: &T) -> T {
    let mut t = object.clone();
    t.trim();
    t
}

fn size<T: serde::Serialize>(object: &T) -> usize {
    serde_json::to_vec(object).expect("serialisable").len()
}

#[test]
fn a_trimmed_service_looks_the_same_to_the_speaker() {
    let full: Service = parse(SERVICE);
    let slices = [parse::<EndpointSlice>(SLICE)];
    let endpoints = view::endpoints_by_service(slices.iter());
    let t = trimmed(&full);
    for class in [None, Some("other")] {
        assert_eq!(
            view::lb_service(&t, class, &endpoints),
            view::lb_service(&full, class, &endpoints)
        );
    }
    assert!(view::lb_service(&t, None, &endpoints).is_some());
    assert_eq!(
        ferrolb_api::service::announce_without_endpoints(&t),
        ferrolb_api::service::announce_without_endpoints(&full)
    );
    // What an Event names, and the condition the speakers write (so they write it once).
    assert_eq!(t.object_ref(&()), full.object_ref(&()));
    assert!(crate::k8s::condition::shown(&full).is_some());
    assert_eq!(
        crate::k8s::condition::shown(&t),
        crate::k8s::condition::shown(&full)
    );
    // What went: the last-applied copy, other owners' annotations, ports, cluster IPs.
    let annotations = t.metadata.annotations.as_ref().expect("ours kept");
    assert_eq!(
        annotations.keys().collect::<Vec<_>>(),
        [
            "ferrolb.io/announce-without-endpoints",
            "ferrolb.io/ip-allocated-from-pool",
            "metallb.io/allow-shared-ip"
        ]
    );
    let spec = t.spec.as_ref().expect("spec");
    assert!(spec.ports.is_none() && spec.cluster_ip.is_none() && spec.selector.is_none());
    assert!(
        size(&t) * 2 < size(&full),
        "{} of {}",
        size(&t),
        size(&full)
    );
}

#[test]
fn trimmed_endpoint_slices_give_the_same_endpoints() {
    let full: EndpointSlice = parse(SLICE);
    let t = trimmed(&full);
    assert_eq!(
        view::endpoints_by_service([&t]),
        view::endpoints_by_service([&full])
    );
    assert_eq!(
        t.metadata.labels,
        Some(BTreeMap::from([(
            view::SERVICE_NAME_LABEL.to_owned(),
            "web".to_owned()
        )]))
    );
    assert!(
        t.endpoints
            .iter()
            .all(|e| e.target_ref.is_none() && e.addresses.len() <= 1)
    );
    assert!(
        t.endpoints[2].addresses.is_empty(),
        "no address stays no address"
    );
    assert!(
        size(&t) * 2 < size(&full),
        "{} of {}",
        size(&t),
        size(&full)
    );
}

#[test]
fn a_trimmed_node_looks_the_same_to_the_election_and_the_membership() {
    let full: Node = parse(NODE);
    let t = trimmed(&full);
    assert_eq!(view::node_info(&t), view::node_info(&full));
    assert_eq!(view::internal_ips(&t), view::internal_ips(&full));
    assert_eq!(view::departure(&t), view::departure(&full));
    assert!(view::node_info(&t).network_unavailable);
    let status = t.status.as_ref().expect("status");
    assert!(status.images.is_none() && status.node_info.is_none() && status.capacity.is_none());
    assert!(t.metadata.annotations.is_none());
    assert!(
        size(&t) * 2 < size(&full),
        "{} of {}",
        size(&t),
        size(&full)
    );
}
