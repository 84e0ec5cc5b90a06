//! Reading the fields of a Kubernetes Service that both the controller and the speakers look at:
//! whether it is a LoadBalancer of ours, the IPs it holds and the pool they came from. Plain
//! accessors over the `Service` type, shared so the two binaries cannot disagree.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;

use crate::annotations;

/// Whether ferrolb handles this Service: type LoadBalancer and, with `lb_class`, exactly that
/// class; without it, only Services with no class.
pub fn is_ours(svc: &Service, lb_class: Option<&str>) -> bool {
    let Some(spec) = &svc.spec else {
        return false;
    };
    spec.type_.as_deref() == Some("LoadBalancer") && spec.load_balancer_class.as_deref() == lb_class
}

/// Whether the Service belongs to another load-balancer implementation: it has a class that is
/// not ours, or it is a class-less LoadBalancer while we serve a class (class-less Services are
/// the default implementation's). Its status is not ours to touch.
pub fn belongs_to_another_class(svc: &Service, lb_class: Option<&str>) -> bool {
    let Some(spec) = &svc.spec else {
        return false;
    };
    let class = spec.load_balancer_class.as_deref();
    class != lb_class && (class.is_some() || spec.type_.as_deref() == Some("LoadBalancer"))
}

/// The IPs in `status.loadBalancer.ingress` (unparseable entries are skipped).
pub fn ingress_ips(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

/// The pool annotation the controller wrote, if any.
pub fn allocated_pool(svc: &Service) -> Option<&str> {
    svc.metadata
        .annotations
        .as_ref()?
        .get(annotations::IP_ALLOCATED_FROM_POOL)
        .map(String::as_str)
}

/// Whether the Service asks to share its IP (`allow-shared-ip`, under any accepted prefix).
pub fn shares_ip(svc: &Service) -> bool {
    svc.metadata
        .annotations
        .as_ref()
        .and_then(|a| annotations::lookup(a, annotations::ALLOW_SHARED_IP))
        .is_some_and(|v| !v.value.trim().is_empty())
}

/// `externalTrafficPolicy: Local`.
pub fn traffic_policy_local(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.external_traffic_policy.as_deref())
        == Some("Local")
}

/// The Service's `ferrolb.io/announce-without-endpoints`: `true` or `false` (absent: false), or
/// the value as written when it is neither (read as false; worth a warning).
pub fn announce_without_endpoints(svc: &Service) -> Result<bool, String> {
    let Some(value) = svc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotations::ANNOUNCE_WITHOUT_ENDPOINTS))
    else {
        return Ok(false);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" | "" => Ok(false),
        _ => Err(value.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotated(value: Option<&str>) -> Service {
        let mut svc = Service::default();
        if let Some(v) = value {
            svc.metadata.annotations = Some(
                [(
                    annotations::ANNOUNCE_WITHOUT_ENDPOINTS.to_owned(),
                    v.to_owned(),
                )]
                .into(),
            );
        }
        svc
    }

    #[test]
    fn announce_without_endpoints_reads_true_and_false_and_reports_anything_else() {
        assert_eq!(announce_without_endpoints(&annotated(None)), Ok(false));
        assert_eq!(
            announce_without_endpoints(&annotated(Some("true"))),
            Ok(true)
        );
        assert_eq!(
            announce_without_endpoints(&annotated(Some(" True "))),
            Ok(true)
        );
        assert_eq!(
            announce_without_endpoints(&annotated(Some("false"))),
            Ok(false)
        );
        assert_eq!(
            announce_without_endpoints(&annotated(Some("yes"))),
            Err("yes".to_owned())
        );
    }
}
