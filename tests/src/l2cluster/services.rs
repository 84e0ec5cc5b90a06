//! The workloads of a test, written as the controller and the endpoint controller would:
//! LoadBalancer Services with their IPs already in their status, and EndpointSlices whose
//! endpoints sit on the nodes a test chooses.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

use super::{APP_NAMESPACE, L2Cluster, metallb};

/// A Service to create: its IPs and where its endpoints run.
#[derive(Clone, Debug, Default)]
pub struct TestService {
    /// Name (in [`APP_NAMESPACE`]).
    pub name: String,
    /// IPs written into its status.
    pub ips: Vec<IpAddr>,
    /// `externalTrafficPolicy: Local`.
    pub local: bool,
    /// Nodes hosting a ready endpoint.
    pub endpoints_on: Vec<String>,
    /// `allow-shared-ip` key.
    pub sharing_key: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Its one TCP port (80 unless set: Services sharing an IP need distinct ones).
    pub port: Option<u16>,
}

impl TestService {
    /// A Service named `name` on `ips` with one ready endpoint on `node`.
    pub fn new(name: &str, ips: &[&str], endpoint_node: &str) -> Self {
        Self {
            name: name.to_owned(),
            ips: ips.iter().filter_map(|ip| ip.parse().ok()).collect(),
            endpoints_on: vec![endpoint_node.to_owned()],
            ..Self::default()
        }
    }
}

impl L2Cluster {
    /// Creates a LoadBalancer Service holding `svc.ips` and its EndpointSlice.
    pub async fn create_service(&self, svc: &TestService) -> anyhow::Result<()> {
        let mut annotations = BTreeMap::from([(
            ferrolb_api::annotations::IP_ALLOCATED_FROM_POOL.to_owned(),
            "lan".to_owned(),
        )]);
        if self.is_metallb() {
            annotations.insert(metallb::POOL_ANNOTATION.to_owned(), "lan".to_owned());
        }
        if let Some(key) = &svc.sharing_key {
            annotations.insert(
                ferrolb_api::annotations::ALLOW_SHARED_IP.to_owned(),
                key.clone(),
            );
        }
        let families: BTreeSet<&str> = svc
            .ips
            .iter()
            .map(|ip| if ip.is_ipv4() { "IPv4" } else { "IPv6" })
            .collect();
        let service: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": svc.name, "namespace": APP_NAMESPACE, "annotations": annotations, "labels": svc.labels},
            "spec": {
                "type": "LoadBalancer",
                "allocateLoadBalancerNodePorts": false,
                "externalTrafficPolicy": if svc.local { "Local" } else { "Cluster" },
                "ipFamilyPolicy": if families.len() > 1 { "RequireDualStack" } else { "SingleStack" },
                "ipFamilies": families,
                "ports": [{"name": "http", "port": svc.port.unwrap_or(80), "protocol": "TCP"}],
            },
        }))?;
        let api = Api::<Service>::namespaced(self.client(), APP_NAMESPACE);
        api.create(&PostParams::default(), &service).await?;
        self.set_service_ips(&svc.name, &svc.ips).await?;
        self.set_endpoints(&svc.name, &svc.endpoints_on).await
    }

    /// Writes `ips` into the Service's status (as the controller would).
    pub async fn set_service_ips(&self, name: &str, ips: &[IpAddr]) -> anyhow::Result<()> {
        let ingress: Vec<_> = ips
            .iter()
            .map(|ip| serde_json::json!({"ip": ip.to_string(), "ipMode": "VIP"}))
            .collect();
        let status = serde_json::json!({"status": {"loadBalancer": {"ingress": ingress}}});
        Api::<Service>::namespaced(self.client(), APP_NAMESPACE)
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
        Ok(())
    }

    /// Replaces the Service's EndpointSlice with one ready endpoint per node in `nodes`.
    pub async fn set_endpoints(&self, service: &str, nodes: &[String]) -> anyhow::Result<()> {
        let ready: Vec<(&str, bool)> = nodes.iter().map(|n| (n.as_str(), true)).collect();
        self.set_endpoint_states(service, &ready).await
    }

    /// Replaces the Service's EndpointSlice with one endpoint per `(node, ready)`: ready, or
    /// terminating and still serving (a pod in its grace period, as Kubernetes reports it).
    pub async fn set_endpoint_states(
        &self,
        service: &str,
        endpoints: &[(&str, bool)],
    ) -> anyhow::Result<()> {
        let endpoints: Vec<_> = endpoints
            .iter()
            .map(|(node, ready)| {
                let index = self.nodes.iter().position(|n| n == node).unwrap_or(0) + 1;
                serde_json::json!({
                    "addresses": [format!("198.18.{index}.10")],
                    "nodeName": node,
                    "conditions": {"ready": ready, "serving": true, "terminating": !ready},
                })
            })
            .collect();
        let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": format!("{service}-test"),
                "namespace": APP_NAMESPACE,
                "labels": {
                    "kubernetes.io/service-name": service,
                    "endpointslice.kubernetes.io/managed-by": "ferrolb-tests",
                },
            },
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        }))?;
        let api = Api::<EndpointSlice>::namespaced(self.client(), APP_NAMESPACE);
        api.patch(
            &format!("{service}-test"),
            &PatchParams::apply("ferrolb-tests").force(),
            &Patch::Apply(&slice),
        )
        .await?;
        Ok(())
    }

    /// Deletes a Service (and its slice).
    pub async fn delete_service(&self, name: &str) -> anyhow::Result<()> {
        Api::<Service>::namespaced(self.client(), APP_NAMESPACE)
            .delete(name, &Default::default())
            .await?;
        Api::<EndpointSlice>::namespaced(self.client(), APP_NAMESPACE)
            .delete(&format!("{name}-test"), &Default::default())
            .await?;
        Ok(())
    }
}
