//! From Kubernetes objects to what the plan reads: Nodes to [`NodeInfo`] and addresses, Services
//! with their EndpointSlices to [`LbService`]. Pure conversions, tested without a cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_config::NodeName;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::slim::{SlimService, SlimSlice};
use crate::election::{Departure, NodeInfo, ServiceInfo};
use crate::plan::LbService;

/// The label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The taint the cluster autoscaler puts on a node it is about to remove.
pub const SCALE_DOWN_TAINT: &str = "ToBeDeletedByClusterAutoscaler";

/// Whether the Node is on its way out, and why: cordoned (`spec.unschedulable`), marked for
/// scale-down, or tainted `NoExecute`.
pub fn departure(node: &Node) -> Option<Departure> {
    let spec = node.spec.as_ref()?;
    let taints = spec.taints.iter().flatten();
    if spec.unschedulable == Some(true) {
        return Some(Departure::Cordoned);
    }
    let mut no_execute = None;
    for taint in taints {
        if taint.key == SCALE_DOWN_TAINT {
            return Some(Departure::ScaleDown);
        }
        if taint.effect == "NoExecute" && no_execute.is_none() {
            no_execute = Some(Departure::NoExecute(taint.key.clone()));
        }
    }
    no_execute
}

/// What the election needs from a Node.
pub fn node_info(node: &Node) -> NodeInfo {
    let network_unavailable = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "NetworkUnavailable" && c.status == "True");
    NodeInfo {
        labels: node.metadata.labels.clone().unwrap_or_default(),
        network_unavailable,
        departing: departure(node),
    }
}

/// The node's `InternalIP` addresses, in the order the Node lists them.
pub fn internal_ips(node: &Node) -> Vec<IpAddr> {
    node.status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect()
}

/// Usable endpoints of one Service: the nodes hosting one, and whether any exists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// Nodes with a usable endpoint.
    pub nodes: BTreeSet<NodeName>,
    /// Whether any endpoint (with or without a node) is usable.
    pub any: bool,
}

/// Usable endpoints per Service (`namespace/name`): the endpoints with addresses that are ready
/// (a missing `ready` means ready, the API's rule), or, while none of the Service's is, those
/// serving while terminating — kube-proxy's rule for terminating endpoints. A drained node's
/// pod that still serves keeps its IP only until a ready endpoint exists elsewhere, so the IP
/// moves while the old pod still answers.
pub fn endpoints_by_service<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> BTreeMap<String, Endpoints> {
    let slim: Vec<SlimSlice> = slices.into_iter().map(SlimSlice::of).collect();
    endpoints_of(&slim)
}

/// [`endpoints_by_service`], from the speaker's cache.
pub fn endpoints_of<'a>(
    slices: impl IntoIterator<Item = &'a SlimSlice>,
) -> BTreeMap<String, Endpoints> {
    // Per Service: the ready endpoints, and the serving ones that are not ready.
    let mut found: BTreeMap<String, (Endpoints, Endpoints)> = BTreeMap::new();
    for slice in slices {
        let Some(key) = slice.service_key() else {
            continue;
        };
        let (ready_eps, serving_eps) = found.entry(key).or_default();
        for endpoint in &slice.endpoints {
            let entry = match (endpoint.ready, endpoint.serving) {
                (true, _) => &mut *ready_eps,
                (false, true) => &mut *serving_eps,
                (false, false) => continue,
            };
            entry.any = true;
            if let Some(node) = &endpoint.node {
                entry.nodes.insert(NodeName::from(node.clone()));
            }
        }
    }
    found
        .into_iter()
        .map(|(key, (ready, serving))| (key, if ready.any { ready } else { serving }))
        .collect()
}

/// The Service as the plan sees it, if it is one of ours (of class `lb_class`) with IPs.
pub fn lb_service(
    svc: &Service,
    lb_class: Option<&str>,
    endpoints: &BTreeMap<String, Endpoints>,
) -> Option<LbService> {
    lb_service_of(&SlimService::of(svc, lb_class), endpoints)
}

/// [`lb_service`], from the speaker's cache.
pub fn lb_service_of(
    svc: &SlimService,
    endpoints: &BTreeMap<String, Endpoints>,
) -> Option<LbService> {
    if !svc.ours || svc.ips.is_empty() {
        return None;
    }
    let key = svc.key();
    let eps = endpoints.get(&key).cloned().unwrap_or_default();
    Some(LbService {
        info: ServiceInfo {
            labels: svc.labels.clone(),
            local: svc.local,
            shares_ip: svc.shares_ip,
            endpoint_nodes: eps.nodes,
            has_usable_endpoint: eps.any,
            announce_without_endpoints: svc.announce_without_endpoints,
            key,
        },
        ips: svc.ips.clone(),
        pool: svc.pool.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(json: &str) -> EndpointSlice {
        serde_json::from_str(json).expect("valid slice")
    }

    #[test]
    fn ready_and_serving_endpoints_count_and_terminating_unready_ones_do_not() {
        let slices = [
            slice(
                r#"{"metadata":{"name":"a","namespace":"web","labels":{"kubernetes.io/service-name":"http"}},
                   "addressType":"IPv4","endpoints":[
                     {"addresses":["198.18.1.10"],"nodeName":"n1","conditions":{"ready":true}},
                     {"addresses":["198.18.2.10"],"nodeName":"n2","conditions":{"ready":false,"serving":true,"terminating":true}},
                     {"addresses":["198.18.3.10"],"nodeName":"n3","conditions":{"ready":false,"serving":false}},
                     {"addresses":[],"nodeName":"n4","conditions":{"ready":true}},
                     {"addresses":["198.18.5.10"],"nodeName":"n5"}]}"#,
            ),
            slice(
                r#"{"metadata":{"name":"b","namespace":"web","labels":{"kubernetes.io/service-name":"down"}},
                   "addressType":"IPv4","endpoints":[
                     {"addresses":["198.18.1.11"],"nodeName":"n1","conditions":{"ready":false,"serving":false}}]}"#,
            ),
        ];
        let eps = endpoints_by_service(&slices);
        let http = &eps["web/http"];
        assert!(http.any);
        let nodes: Vec<&str> = http.nodes.iter().map(NodeName::as_str).collect();
        assert_eq!(
            nodes,
            ["n1", "n5"],
            "a ready endpoint elsewhere beats a terminating one"
        );
        assert!(!eps["web/down"].any);
    }

    /// A drained node's pod terminates but still serves (a preStop hook, a long shutdown): the
    /// IP must leave that node while the pod still answers, not after it stopped — so serving
    /// endpoints count only while no endpoint is ready (kube-proxy's own rule for them).
    #[test]
    fn terminating_endpoints_count_only_while_no_endpoint_is_ready() {
        let terminating = r#"{"addresses":["198.18.2.10"],"nodeName":"n2","conditions":{"ready":false,"serving":true,"terminating":true}}"#;
        let ready = r#"{"addresses":["198.18.3.10"],"nodeName":"n3","conditions":{"ready":true}}"#;
        let slice_of = |name: &str, endpoints: &[&str]| {
            slice(&format!(
                r#"{{"metadata":{{"name":"{name}","namespace":"web","labels":{{"kubernetes.io/service-name":"http"}}}},
                   "addressType":"IPv4","endpoints":[{}]}}"#,
                endpoints.join(",")
            ))
        };
        let nodes = |slices: &[EndpointSlice]| -> Vec<String> {
            let eps = endpoints_by_service(slices);
            eps["web/http"]
                .nodes
                .iter()
                .map(|n| n.as_str().to_owned())
                .collect()
        };
        assert_eq!(nodes(&[slice_of("a", &[terminating])]), ["n2"]);
        assert_eq!(nodes(&[slice_of("a", &[terminating, ready])]), ["n3"]);
        // The ready endpoint may sit in another slice of the Service.
        assert_eq!(
            nodes(&[slice_of("a", &[terminating]), slice_of("b", &[ready])]),
            ["n3"]
        );
    }

    #[test]
    fn only_our_load_balancers_with_ips_enter_the_plan() {
        let svc = |json: &str| -> Service { serde_json::from_str(json).expect("valid service") };
        let eps = BTreeMap::new();
        let ours = svc(
            r#"{"metadata":{"name":"s","namespace":"web","annotations":{"metallb.io/allow-shared-ip":"k","ferrolb.io/ip-allocated-from-pool":"lan"}},
               "spec":{"type":"LoadBalancer","externalTrafficPolicy":"Local"},
               "status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.201"}]}}}"#,
        );
        let lb = lb_service(&ours, None, &eps).expect("ours");
        assert_eq!(lb.info.key, "web/s");
        assert!(lb.info.local && lb.info.shares_ip && !lb.info.has_usable_endpoint);
        assert_eq!(lb.pool.as_deref(), Some("lan"));
        assert_eq!(lb.ips, vec!["192.0.2.201".parse::<IpAddr>().expect("ip")]);

        let no_ip =
            svc(r#"{"metadata":{"name":"s","namespace":"web"},"spec":{"type":"LoadBalancer"}}"#);
        assert!(lb_service(&no_ip, None, &eps).is_none());
        let other_class = svc(
            r#"{"metadata":{"name":"s","namespace":"web"},"spec":{"type":"LoadBalancer","loadBalancerClass":"x"},
               "status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.201"}]}}}"#,
        );
        assert!(lb_service(&other_class, None, &eps).is_none());
        assert!(lb_service(&other_class, Some("x"), &eps).is_some());
    }

    #[test]
    fn cordoned_scaled_down_and_no_execute_tainted_nodes_are_departing() {
        let node = |spec: &str| -> Node {
            serde_json::from_str(&format!(r#"{{"metadata":{{"name":"n1"}},"spec":{spec}}}"#))
                .expect("valid node")
        };
        assert_eq!(departure(&node("{}")), None);
        assert_eq!(
            departure(&node(r#"{"unschedulable":true}"#)),
            Some(Departure::Cordoned)
        );
        assert_eq!(
            departure(&node(
                r#"{"taints":[{"key":"ToBeDeletedByClusterAutoscaler","value":"1733","effect":"NoSchedule"}]}"#
            )),
            Some(Departure::ScaleDown)
        );
        assert_eq!(
            departure(&node(
                r#"{"taints":[{"key":"maintenance","effect":"NoSchedule"},{"key":"node.kubernetes.io/unreachable","effect":"NoExecute"}]}"#
            )),
            Some(Departure::NoExecute(
                "node.kubernetes.io/unreachable".into()
            ))
        );
        assert_eq!(
            departure(&node(
                r#"{"taints":[{"key":"node-role.kubernetes.io/control-plane","effect":"NoSchedule"}]}"#
            )),
            None,
            "a NoSchedule taint is no departure"
        );
    }

    #[test]
    fn node_conditions_and_addresses_are_read() {
        let node: Node = serde_json::from_str(
            r#"{"metadata":{"name":"n1","labels":{"zone":"a"}},
               "status":{"conditions":[{"type":"NetworkUnavailable","status":"True"}],
                         "addresses":[{"type":"Hostname","address":"n1"},{"type":"InternalIP","address":"192.0.2.11"},
                                      {"type":"InternalIP","address":"2001:db8:0:1::11"}]}}"#,
        )
        .expect("valid node");
        let info = node_info(&node);
        assert!(info.network_unavailable);
        assert_eq!(info.labels.get("zone").map(String::as_str), Some("a"));
        assert_eq!(
            internal_ips(&node),
            vec![
                "192.0.2.11".parse::<IpAddr>().expect("ip"),
                "2001:db8:0:1::11".parse::<IpAddr>().expect("ip")
            ]
        );
    }
}
