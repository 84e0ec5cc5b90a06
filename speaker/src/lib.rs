//! ferrolb's speaker: decides which LoadBalancer IPs this node announces and announces them.
//!
//! - [`election`] and [`plan`] are the pure layer-2 decision (who answers ARP/NDP for each IP),
//!   shared with `kubectl ferrolb explain`/`simulate`.
//! - [`layer2`] holds the ARP/NDP codecs (pure) and the announcer on raw sockets ([`sys`]),
//!   fed by the interface table from [`netlink`].
//! - [`membership`] tells which speakers are alive, over UDP among the speakers themselves, so
//!   failover needs no apiserver.
//! - [`settle`] keeps an `externalTrafficPolicy: Local` IP where it is served until a new
//!   endpoint elsewhere has had time to be programmed (pure).
//! - [`report`] picks the one speaker that writes about each Service (a consistent-hash ring) and
//!   words the Service's `ferrolb.io/BGPAdvertised` condition (pure).
//! - [`k8s`] is the kube edge and the decision loop; [`metrics`] the `/metrics` and health
//!   endpoints.
//!
//! - [`bgp`] holds the BGP codec and the sans-IO session state machine (pure); the sessions on
//!   tokio and the advertisements come next.
//! - [`bfd`] holds the BFD codec and state machine (pure) and BFD sessions on UDP, which BGP
//!   sessions use to learn of a lost peer in a second rather than a hold time.

pub mod bfd;
pub mod bgp;
pub mod election;
pub mod k8s;
pub mod layer2;
pub mod membership;
pub mod metrics;
pub mod netlink;
pub mod plan;
pub mod report;
pub mod settle;
pub mod sys;

/// What the unit tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use ferrolb_config::{Config, Snapshot};

    /// Pool `lan` (IPv4 and IPv6) with an L2Advertisement, and pool `other` without one.
    pub(crate) const LAN: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec: {addresses: ["192.0.2.200-192.0.2.239", "2001:db8:0:1::200-2001:db8:0:1::2ff"]}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: other, namespace: ferrolb-system}
spec: {addresses: ["192.0.2.240/29"]}
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: ferrolb-system}
spec: {ipAddressPools: [lan]}
"#;

    /// [`LAN`], parsed.
    pub(crate) fn lan_config() -> Config {
        valid_config(LAN)
    }

    /// The configuration of `yaml` (objects in `ferrolb-system`), which must have no errors.
    pub(crate) fn valid_config(yaml: &str) -> Config {
        let snapshot = Snapshot::from_yaml("ferrolb-system", yaml).expect("the sample parses");
        let outcome = ferrolb_config::parse(&snapshot);
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        outcome.config
    }
}
