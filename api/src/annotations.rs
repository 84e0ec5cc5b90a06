//! Service annotation keys ferrolb reads and writes.
//!
//! ferrolb's own keys (`ferrolb.io/…`) win; MetalLB's current keys (`metallb.io/…`) and its
//! deprecated ones (`metallb.universe.tf/…`) are read as aliases so a migrating cluster keeps
//! working. Reading one of the deprecated keys is worth a warning Event.

use std::collections::BTreeMap;

/// Requested IPs: comma-separated, at most one per family.
pub const LOAD_BALANCER_IPS: &str = "ferrolb.io/loadBalancerIPs";
/// Allocate from this named pool.
pub const ADDRESS_POOL: &str = "ferrolb.io/address-pool";
/// Sharing key: Services with the same non-empty key may share an IP.
pub const ALLOW_SHARED_IP: &str = "ferrolb.io/allow-shared-ip";
/// Written by the controller: the pool the Service's IPs came from.
pub const IP_ALLOCATED_FROM_POOL: &str = "ferrolb.io/ip-allocated-from-pool";
/// `"true"`: announce the Service's IPs even while it has no ready endpoint (ferrolb only;
/// MetalLB has no such annotation).
pub const ANNOUNCE_WITHOUT_ENDPOINTS: &str = "ferrolb.io/announce-without-endpoints";

/// The suffixes (after the `/`) shared by every prefix.
const SUFFIXES: [&str; 4] = [
    "loadBalancerIPs",
    "address-pool",
    "allow-shared-ip",
    "ip-allocated-from-pool",
];

/// Prefixes in order of precedence: ours, MetalLB's, MetalLB's deprecated.
pub const PREFIXES: [&str; 3] = ["ferrolb.io/", "metallb.io/", "metallb.universe.tf/"];

/// The prefix MetalLB deprecated; reading a key under it is worth a warning.
pub const DEPRECATED_PREFIX: &str = "metallb.universe.tf/";

/// Where an annotation value came from, so callers can warn about deprecated keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnotationValue<'a> {
    /// The full key that supplied the value (e.g. `metallb.io/address-pool`).
    pub key: String,
    /// The value as written.
    pub value: &'a str,
}

impl AnnotationValue<'_> {
    /// True when the value came from a deprecated `metallb.universe.tf/` key.
    pub fn is_deprecated(&self) -> bool {
        self.key.starts_with(DEPRECATED_PREFIX)
    }
}

/// Looks up one of ferrolb's annotations (given by its `ferrolb.io/` key) in `annotations`,
/// falling back to the MetalLB aliases. Ours win over `metallb.io/`, which wins over
/// `metallb.universe.tf/`.
///
/// Returns `None` for a key that is not one of the four known annotations.
pub fn lookup<'a>(
    annotations: &'a BTreeMap<String, String>,
    ferrolb_key: &str,
) -> Option<AnnotationValue<'a>> {
    let suffix = ferrolb_key.strip_prefix(PREFIXES[0])?;
    if !SUFFIXES.contains(&suffix) {
        return None;
    }
    PREFIXES.iter().find_map(|prefix| {
        let key = format!("{prefix}{suffix}");
        annotations.get(&key).map(|value| AnnotationValue {
            key,
            value: value.as_str(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ferrolb_key_wins_over_both_metallb_aliases() {
        let a = annotations(&[
            ("metallb.universe.tf/address-pool", "old"),
            ("metallb.io/address-pool", "metallb"),
            ("ferrolb.io/address-pool", "ours"),
        ]);
        let v = lookup(&a, ADDRESS_POOL).expect("present");
        assert_eq!(v.value, "ours");
        assert!(!v.is_deprecated());
    }

    #[test]
    fn metallb_io_wins_over_the_deprecated_alias() {
        let a = annotations(&[
            ("metallb.universe.tf/allow-shared-ip", "old"),
            ("metallb.io/allow-shared-ip", "new"),
        ]);
        assert_eq!(lookup(&a, ALLOW_SHARED_IP).map(|v| v.value), Some("new"));
    }

    #[test]
    fn deprecated_alias_alone_is_read_and_flagged() {
        let a = annotations(&[("metallb.universe.tf/loadBalancerIPs", "192.0.2.201")]);
        let v = lookup(&a, LOAD_BALANCER_IPS).expect("present");
        assert_eq!(v.value, "192.0.2.201");
        assert_eq!(v.key, "metallb.universe.tf/loadBalancerIPs");
        assert!(v.is_deprecated());
    }

    #[test]
    fn unknown_keys_and_absent_annotations_yield_nothing() {
        let a = annotations(&[("ferrolb.io/address-pool", "p")]);
        assert_eq!(lookup(&a, "ferrolb.io/something-else"), None);
        assert_eq!(lookup(&a, "example.com/address-pool"), None);
        assert_eq!(lookup(&a, IP_ALLOCATED_FROM_POOL), None);
    }
}
