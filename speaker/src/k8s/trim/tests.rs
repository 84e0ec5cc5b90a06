use k8s_openapi::api::core::v1::Node;

use super::Trim;
use crate::k8s::view;

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
