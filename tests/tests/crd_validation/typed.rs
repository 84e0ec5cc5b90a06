//! One typed object of every kind, valid, for the round-trip tests.

use super::*;

pub(crate) fn in_namespace<K: Resource>(mut obj: K) -> K {
    obj.meta_mut().namespace = Some(NAMESPACE.to_owned());
    obj
}

pub(crate) fn labels(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        ..LabelSelector::default()
    }
}

/// A `Valid` condition with a whole-second timestamp (the API stores seconds).
pub(crate) fn valid_condition(status: &str, reason: &str) -> Condition {
    serde_json::from_value(json!({
        "type": ferrolb_api::CONDITION_VALID,
        "status": status,
        "reason": reason,
        "message": format!("test condition: {reason}"),
        "lastTransitionTime": "2025-01-02T03:04:05Z",
        "observedGeneration": 1,
    }))
    .expect("a valid Condition literal")
}

pub(crate) fn typed_pool() -> IPAddressPool {
    let mut pool = IPAddressPool::new(
        "typed",
        IPAddressPoolSpec {
            addresses: vec![
                "203.0.113.0/28".into(),
                "2001:db8:5::1 - 2001:db8:5::ff".into(),
            ],
            auto_assign: false,
            avoid_buggy_ips: true,
            service_allocation: Some(ServiceAllocation {
                priority: Some(5),
                namespaces: vec!["web".to_owned(), "api".to_owned()],
                namespace_selectors: vec![labels(&[("tier", "web")])],
                service_selectors: vec![labels(&[("app", "shop")])],
            }),
        },
    );
    pool.status = Some(IPAddressPoolStatus {
        assigned_ipv4: 2,
        assigned_ipv6: 1,
        available_ipv4: 14,
        available_ipv6: 254,
        next_ipv4: Some("192.0.2.3".to_owned()),
        next_ipv6: Some("2001:db8::2".to_owned()),
        conditions: vec![valid_condition("True", "InUse")],
    });
    in_namespace(pool)
}

pub(crate) fn typed_l2_advertisement() -> L2Advertisement {
    let mut adv = L2Advertisement::new(
        "typed",
        L2AdvertisementSpec {
            ip_address_pools: vec!["typed".to_owned()],
            ip_address_pool_selectors: vec![labels(&[("announce", "l2")])],
            node_selectors: vec![labels(&[("kubernetes.io/os", "linux")])],
            interfaces: vec!["eth0".to_owned(), "bond0.100".to_owned()],
            service_selectors: vec![labels(&[("app", "shop")])],
            preferred_node_selectors: vec![PreferredNodeSelector {
                weight: 100,
                preference: labels(&[("edge", "true")]),
            }],
            announce_without_endpoints: true,
        },
    );
    adv.status = Some(ConfigStatus {
        conditions: vec![valid_condition("False", "UnknownPool")],
    });
    in_namespace(adv)
}

pub(crate) fn typed_bgp_advertisement() -> BGPAdvertisement {
    in_namespace(BGPAdvertisement::new(
        "typed",
        BGPAdvertisementSpec {
            aggregation_length: Some(24),
            aggregation_length_v6: Some(64),
            local_pref: Some(4_294_967_295),
            communities: vec![
                "no-export-lab".into(),
                "large:1:2:3".into(),
                "65535:0".into(),
            ],
            ip_address_pools: vec!["typed".to_owned()],
            ip_address_pool_selectors: vec![labels(&[("announce", "bgp")])],
            node_selectors: vec![labels(&[("rack", "r1")])],
            peers: vec!["typed".to_owned()],
            service_selectors: Vec::new(),
            announce_without_endpoints: true,
        },
    ))
}

pub(crate) fn typed_peer() -> BGPPeer {
    let mut peer = BGPPeer::new(
        "typed",
        BGPPeerSpec {
            my_asn: 4_294_967_295,
            peer_asn: None,
            dynamic_asn: Some(DynamicAsnMode::External),
            local_asn: Some(64_500),
            peer_address: None,
            interface: Some("eth1".to_owned()),
            source_address: Some("2001:db8::2".to_owned()),
            peer_port: 1179,
            hold_time: Some("1m30s".to_owned()),
            keepalive_time: Some("30s".to_owned()),
            connect_time: Some("10s".to_owned()),
            router_id: Some("10.0.0.1".to_owned()),
            node_selectors: vec![labels(&[("rack", "r1")])],
            password: None,
            password_secret: Some(SecretReference {
                name: "md5".to_owned(),
                namespace: Some(NAMESPACE.to_owned()),
            }),
            bfd_profile: Some("typed".to_owned()),
            enable_graceful_restart: true,
            graceful_shutdown: Some(ferrolb_api::GracefulShutdown {
                disabled: false,
                drain_time: Some("30s".to_owned()),
                local_pref: Some(10),
                as_path_prepend: Some(2),
            }),
            ebgp_multi_hop: true,
            ttl_security: Some(2),
            passive: true,
            vrf: Some("red".to_owned()),
            disable_mp: true,
            dual_stack_address_family: true,
        },
    );
    peer.status = Some(ConfigStatus {
        conditions: vec![valid_condition("True", "InUse")],
    });
    in_namespace(peer)
}

pub(crate) fn typed_bfd_profile() -> BFDProfile {
    in_namespace(BFDProfile::new(
        "typed",
        BFDProfileSpec {
            receive_interval: Some(10),
            transmit_interval: Some(60_000),
            detect_multiplier: Some(255),
            echo_interval: Some(50),
            echo_mode: Some(true),
            passive_mode: Some(false),
            minimum_ttl: Some(254),
        },
    ))
}

pub(crate) fn typed_community() -> Community {
    in_namespace(Community::new(
        "typed",
        CommunitySpec {
            communities: vec![
                CommunityAlias {
                    name: "no-export-lab".to_owned(),
                    value: "65535:65281".into(),
                },
                CommunityAlias {
                    name: "big.one_2".to_owned(),
                    value: "large:4294967295:0:1".into(),
                },
            ],
        },
    ))
}

pub(crate) fn typed_l2_status() -> ServiceL2Status {
    let mut status = ServiceL2Status::new("typed", ServiceL2StatusSpec {});
    status.status = Some(ServiceL2StatusStatus {
        node: Some("node-a".to_owned()),
        service_name: Some("web".to_owned()),
        service_namespace: Some("default".to_owned()),
        interfaces: vec![InterfaceName {
            name: "eth0".to_owned(),
        }],
    });
    in_namespace(status)
}

pub(crate) fn typed_bgp_status() -> ServiceBGPStatus {
    let mut status = ServiceBGPStatus::new("typed", ServiceBGPStatusSpec {});
    status.status = Some(ServiceBGPStatusStatus {
        node: Some("node-a".to_owned()),
        service_name: Some("web".to_owned()),
        service_namespace: Some("default".to_owned()),
        peers: vec!["router".to_owned(), "typed".to_owned()],
    });
    in_namespace(status)
}

pub(crate) fn typed_configuration_state() -> ConfigurationState {
    let mut state = ConfigurationState::new("speaker-node-a", ConfigurationStateSpec {});
    state.status = Some(ConfigurationStateStatus {
        result: Some(ConfigurationResult::Invalid),
        error_summary: Some("BGPPeer router: unknown BFDProfile fast\n".to_owned()),
        conditions: vec![valid_condition("False", "ConfigurationInvalid")],
    });
    in_namespace(state)
}

// ---------------------------------------------------------------------------------------------
// Validation rules, as a kubectl user meets them.
