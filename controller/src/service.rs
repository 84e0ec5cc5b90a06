//! From a Kubernetes Service to an allocation request, and back to the status it should have.
//! Pure: no client, no I/O.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_api::annotations;
use ferrolb_config::{Family, PoolName};
use k8s_openapi::api::core::v1::Service;

use crate::allocator::{FamilyPolicy, Port, Protocol, ServiceKey, ServiceRequest};

/// The key of a Service object.
pub fn key_of(svc: &Service) -> ServiceKey {
    ServiceKey::new(
        svc.metadata.namespace.clone().unwrap_or_default(),
        svc.metadata.name.clone().unwrap_or_default(),
    )
}

pub use ferrolb_api::service::{allocated_pool, belongs_to_another_class, ingress_ips, is_ours};

/// A request the controller cannot act on, with the Event reason MetalLB uses for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRequest {
    /// Event reason.
    pub reason: &'static str,
    /// What is wrong.
    pub message: String,
}

/// The allocation request a Service makes, and the deprecated annotation keys it uses.
pub fn request_of(svc: &Service) -> Result<(ServiceRequest, Vec<String>), BadRequest> {
    let key = key_of(svc);
    let spec = svc.spec.clone().unwrap_or_default();
    let empty = BTreeMap::new();
    let notes = svc.metadata.annotations.as_ref().unwrap_or(&empty);
    let mut deprecated = Vec::new();
    let mut annotation = |name: &str| {
        annotations::lookup(notes, name).map(|v| {
            if v.is_deprecated() {
                deprecated.push(v.key.clone());
            }
            v.value.trim().to_owned()
        })
    };
    let requested_annotation = annotation(annotations::LOAD_BALANCER_IPS);
    let pool = annotation(annotations::ADDRESS_POOL)
        .filter(|p| !p.is_empty())
        .map(PoolName::from);
    let sharing_key = annotation(annotations::ALLOW_SHARED_IP).unwrap_or_default();

    let bad = |message: String| BadRequest {
        reason: "LoadBalancerFailed",
        message,
    };
    let mut requested_ips = Vec::new();
    if let Some(list) = &requested_annotation {
        for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let ip: IpAddr = part.parse().map_err(|_| {
                bad(format!(
                    "invalid {} annotation: {part:?} is not an IP address",
                    annotations::LOAD_BALANCER_IPS
                ))
            })?;
            requested_ips.push(ip);
        }
        if requested_ips.len() > 2
            || (requested_ips.len() == 2
                && requested_ips[0].is_ipv4() == requested_ips[1].is_ipv4())
        {
            return Err(bad(format!(
                "{} takes at most one IPv4 and one IPv6 address, got {list:?}",
                annotations::LOAD_BALANCER_IPS
            )));
        }
    }
    if let Some(lb_ip) = spec.load_balancer_ip.as_deref().filter(|s| !s.is_empty()) {
        if !requested_ips.is_empty() {
            return Err(bad(format!(
                "spec.loadBalancerIP and the {} annotation are mutually exclusive",
                annotations::LOAD_BALANCER_IPS
            )));
        }
        let ip = lb_ip.parse().map_err(|_| {
            bad(format!(
                "spec.loadBalancerIP {lb_ip:?} is not an IP address"
            ))
        })?;
        requested_ips.push(ip);
    }

    // Families: spec.ipFamilies if the apiserver filled it in, else the cluster IPs.
    let cluster_ips: Vec<IpAddr> = spec
        .cluster_ips
        .clone()
        .or_else(|| spec.cluster_ip.clone().map(|ip| vec![ip]))
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    let mut families: Vec<Family> = cluster_ips.iter().map(Family::of).collect();
    if families.is_empty() {
        families = spec
            .ip_families
            .iter()
            .flatten()
            .filter_map(|f| match f.as_str() {
                "IPv4" => Some(Family::V4),
                "IPv6" => Some(Family::V6),
                _ => None,
            })
            .collect();
        // A headless Service has families but no cluster IP: it cannot be load balanced.
        if spec.cluster_ip.as_deref() == Some("None") {
            families.clear();
        }
    }
    let policy = match spec.ip_family_policy.as_deref() {
        Some("PreferDualStack") => FamilyPolicy::PreferDualStack,
        Some("RequireDualStack") => FamilyPolicy::RequireDualStack,
        _ => FamilyPolicy::SingleStack,
    };
    if !requested_ips.is_empty() {
        let wanted: Vec<Family> = match policy {
            FamilyPolicy::SingleStack => families.iter().take(1).copied().collect(),
            _ => families.clone(),
        };
        if let Some(ip) = requested_ips
            .iter()
            .find(|ip| !wanted.contains(&Family::of(ip)))
        {
            let families: Vec<String> = families.iter().map(ToString::to_string).collect();
            return Err(bad(format!(
                "requested IP {ip} does not match the Service's IP family ({})",
                families.join(", ")
            )));
        }
    }

    let backend_key = if spec.external_traffic_policy.as_deref() == Some("Local") {
        spec.selector
            .as_ref()
            .map(|s| {
                s.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    } else {
        String::new()
    };
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let protocol = match p.protocol.as_deref().unwrap_or("TCP") {
                "TCP" => Protocol::Tcp,
                "UDP" => Protocol::Udp,
                "SCTP" => Protocol::Sctp,
                _ => return None,
            };
            Some(Port {
                protocol,
                port: u16::try_from(p.port).ok()?,
            })
        })
        .collect();

    let request = ServiceRequest {
        key,
        labels: svc.metadata.labels.clone().unwrap_or_default(),
        families,
        policy,
        requested_ips,
        pool,
        sharing_key,
        backend_key,
        ports,
    };
    deprecated.sort();
    deprecated.dedup();
    Ok((request, deprecated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};

    fn service(annotations: &[(&str, &str)], spec: ServiceSpec) -> Service {
        let mut svc = Service::default();
        svc.metadata.namespace = Some("default".into());
        svc.metadata.name = Some("web".into());
        svc.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        svc.spec = Some(spec);
        svc
    }

    fn lb(cluster_ips: &[&str]) -> ServiceSpec {
        ServiceSpec {
            type_: Some("LoadBalancer".into()),
            cluster_ips: Some(cluster_ips.iter().map(|s| s.to_string()).collect()),
            ports: Some(vec![ServicePort {
                port: 80,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }
    }

    #[test]
    fn annotations_and_fields_become_a_request() {
        let svc = service(
            &[
                ("ferrolb.io/loadBalancerIPs", "192.0.2.201, 2001:db8::1"),
                ("metallb.universe.tf/address-pool", "lan"),
                ("metallb.io/allow-shared-ip", "web"),
            ],
            ServiceSpec {
                ip_family_policy: Some("PreferDualStack".into()),
                external_traffic_policy: Some("Local".into()),
                selector: Some([("app".to_string(), "web".to_string())].into()),
                ..lb(&["198.19.0.10", "2001:db8:19::10"])
            },
        );
        let (r, deprecated) = request_of(&svc).expect("valid");
        assert_eq!(r.families, [Family::V4, Family::V6]);
        assert_eq!(r.policy, FamilyPolicy::PreferDualStack);
        assert_eq!(r.requested_ips.len(), 2);
        assert_eq!(r.pool.as_ref().map(|p| p.as_str()), Some("lan"));
        assert_eq!(
            (r.sharing_key.as_str(), r.backend_key.as_str()),
            ("web", "app=web")
        );
        assert_eq!(deprecated, ["metallb.universe.tf/address-pool"]);
    }

    #[test]
    fn conflicting_or_malformed_requests_are_refused_with_a_reason() {
        let both = service(
            &[("ferrolb.io/loadBalancerIPs", "192.0.2.201")],
            ServiceSpec {
                load_balancer_ip: Some("192.0.2.202".into()),
                ..lb(&["198.19.0.10"])
            },
        );
        let cases = [
            (both, "mutually exclusive"),
            (
                service(
                    &[("ferrolb.io/loadBalancerIPs", "nope")],
                    lb(&["198.19.0.10"]),
                ),
                "is not an IP address",
            ),
            (
                service(
                    &[("ferrolb.io/loadBalancerIPs", "192.0.2.1,192.0.2.2")],
                    lb(&["198.19.0.10"]),
                ),
                "at most one IPv4 and one IPv6",
            ),
            (
                service(
                    &[("ferrolb.io/loadBalancerIPs", "2001:db8::5")],
                    lb(&["198.19.0.10"]),
                ),
                "does not match the Service's IP family",
            ),
        ];
        for (svc, want) in cases {
            let err = request_of(&svc).expect_err(want);
            assert_eq!(err.reason, "LoadBalancerFailed");
            assert!(err.message.contains(want), "{}", err.message);
        }
    }

    #[test]
    fn refusals_name_families_as_users_write_them() {
        let svc = service(
            &[("ferrolb.io/loadBalancerIPs", "2001:db8::5")],
            lb(&["198.19.0.10"]),
        );
        let err = request_of(&svc).expect_err("wrong family");
        assert_eq!(
            err.message,
            "requested IP 2001:db8::5 does not match the Service's IP family (IPv4)"
        );
    }

    #[test]
    fn class_decides_whose_service_it_is() {
        let mut svc = service(&[], lb(&["198.19.0.10"]));
        assert!(is_ours(&svc, None));
        assert!(!is_ours(&svc, Some("ferrolb")));
        if let Some(spec) = svc.spec.as_mut() {
            spec.load_balancer_class = Some("other.io/lb".into());
        }
        assert!(!is_ours(&svc, None));
        assert!(belongs_to_another_class(&svc, None));
        assert!(!belongs_to_another_class(&svc, Some("other.io/lb")));
        // A class-less LoadBalancer is the default implementation's, not a class controller's.
        let classless = service(&[], lb(&["198.19.0.10"]));
        assert!(belongs_to_another_class(&classless, Some("ferrolb")));
        assert!(!belongs_to_another_class(&classless, None));
        let mut cluster_ip = service(&[], lb(&["198.19.0.10"]));
        if let Some(spec) = cluster_ip.spec.as_mut() {
            spec.type_ = Some("ClusterIP".into());
        }
        assert!(!belongs_to_another_class(&cluster_ip, Some("ferrolb")));
    }

    #[test]
    fn a_headless_service_has_no_family() {
        let svc = service(
            &[],
            ServiceSpec {
                type_: Some("LoadBalancer".into()),
                cluster_ip: Some("None".into()),
                ip_families: Some(vec!["IPv4".into()]),
                ..ServiceSpec::default()
            },
        );
        assert!(request_of(&svc).expect("valid").0.families.is_empty());
    }
}
