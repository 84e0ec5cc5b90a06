//! The slim Service and EndpointSlice keep what the speaker reads of the objects as
//! `kubectl apply` and the EndpointSlice controller leave them.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Resource;

use super::{SlimEndpoint, SlimService, SlimSlice};
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

fn parse<T: serde::de::DeserializeOwned>(json: &str) -> T {
    serde_json::from_str(json).expect("a valid object")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an IP")
}

#[test]
fn a_slim_service_keeps_what_the_plan_events_and_the_condition_writer_read() {
    let full: Service = parse(SERVICE);
    let slim = SlimService::of(&full, None);
    assert_eq!(slim.key(), "shop/web");
    assert_eq!(
        slim.labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>(),
        ["app=web", "tier=front"]
    );
    assert!(slim.ours && slim.local && slim.shares_ip && slim.announce_without_endpoints);
    assert_eq!(slim.pool.as_deref(), Some("lan"));
    assert_eq!(slim.ips, [ip("192.0.2.200"), ip("2001:db8::200")]);
    assert_eq!(
        slim.bgp_advertised.as_deref(),
        crate::k8s::condition::shown(&full).as_ref(),
        "the writer compares with the condition as shown"
    );
    assert!(slim.bgp_advertised.is_some());
    // What an Event names.
    assert_eq!(slim.reference().object_ref(&()), full.object_ref(&()));
    // Another class's speaker sees it as not its own.
    assert!(!SlimService::of(&full, Some("other")).ours);
}

#[test]
fn the_plan_sees_a_slim_service_with_its_slices_endpoints() {
    let full: Service = parse(SERVICE);
    let slices = [parse::<EndpointSlice>(SLICE)];
    let endpoints = view::endpoints_by_service(slices.iter());
    let lb = view::lb_service(&full, None, &endpoints).expect("ours, with IPs");
    assert_eq!(lb.info.key, "shop/web");
    assert!(lb.info.local && lb.info.shares_ip && lb.info.announce_without_endpoints);
    assert!(lb.info.has_usable_endpoint);
    assert_eq!(
        lb.info
            .endpoint_nodes
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>(),
        ["n1"],
        "n1 is ready; n2 only serves while terminating; n3 has no address"
    );
    assert_eq!(lb.pool.as_deref(), Some("lan"));
    assert_eq!(lb.ips, [ip("192.0.2.200"), ip("2001:db8::200")]);
    assert!(view::lb_service(&full, Some("other"), &endpoints).is_none());
}

#[test]
fn a_slim_slice_keeps_its_service_and_the_endpoints_with_an_address() {
    let slim = SlimSlice::of(&parse(SLICE));
    assert_eq!(
        (
            slim.namespace.as_str(),
            slim.name.as_str(),
            slim.service.as_deref()
        ),
        ("shop", "web-abc12", Some("web"))
    );
    assert_eq!(
        slim.endpoints,
        [
            SlimEndpoint {
                node: Some("n1".into()),
                ready: true,
                serving: true
            },
            SlimEndpoint {
                node: Some("n2".into()),
                ready: false,
                serving: true
            },
        ]
    );
}
