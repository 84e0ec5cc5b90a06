use super::*;
use crate::election::ServiceInfo;

const CONFIG: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: edge, namespace: ferrolb-system}
spec: {addresses: ["198.51.100.0/26", "2001:db8:100::/120"]}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: agg, namespace: ferrolb-system}
spec: {addresses: ["198.51.100.64/26"]}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: quiet, namespace: ferrolb-system}
spec: {addresses: ["198.51.100.128/26"]}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: picky, namespace: ferrolb-system}
spec: {addresses: ["198.51.100.192/26"]}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: picky, namespace: ferrolb-system}
spec:
  ipAddressPools: [picky]
  serviceSelectors: [{matchLabels: {app: web}}]
---
apiVersion: ferrolb.io/v1beta1
kind: Community
metadata: {name: aliases, namespace: ferrolb-system}
spec:
  communities:
  - {name: no-export, value: "65535:65281"}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPPeer
metadata: {name: tor-a, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64512, peerAddress: 192.0.2.1}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPPeer
metadata: {name: tor-b, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 192.0.2.2, gracefulShutdown: {asPathPrepend: 1}}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPPeer
metadata: {name: rack2-only, namespace: ferrolb-system}
spec:
  myASN: 64512
  peerASN: 64514
  peerAddress: 192.0.2.3
  nodeSelectors: [{matchLabels: {rack: "2"}}]
  gracefulShutdown: {disabled: true}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: edge, namespace: ferrolb-system}
spec:
  ipAddressPools: [edge]
  localPref: 200
  communities: ["65000:100", no-export, "large:4200000001:1:2"]
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: edge-b-extra, namespace: ferrolb-system}
spec:
  ipAddressPools: [edge]
  peers: [tor-b]
  localPref: 200
  communities: ["65000:999"]
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: agg, namespace: ferrolb-system}
spec:
  ipAddressPools: [agg]
  aggregationLength: 28
  nodeSelectors: [{matchLabels: {rack: "1"}}]
"#;

fn config() -> Config {
    crate::test_support::valid_config(CONFIG)
}

fn service(key: &str, ips: &[&str]) -> LbService {
    LbService {
        info: ServiceInfo {
            key: key.into(),
            has_usable_endpoint: true,
            ..Default::default()
        },
        ips: ips.iter().map(|ip| ip.parse().expect("ip")).collect(),
        pool: None,
    }
}

fn info(labels: &[(&str, &str)]) -> NodeInfo {
    NodeInfo {
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        network_unavailable: false,
        departing: None,
    }
}

fn name(n: &str) -> NodeName {
    NodeName::from(n.to_owned())
}

fn peer(n: &str) -> PeerName {
    PeerName::from(n.to_owned())
}

fn net(s: &str) -> IpNet {
    s.parse().expect("prefix")
}

fn plan_for(node: &str, info: &NodeInfo, services: &[LbService]) -> BgpPlan {
    let node_name = name(node);
    plan(
        &config(),
        &Node {
            name: &node_name,
            info,
            ignore_exclude_label: false,
            exclude_label_age: None,
        },
        services,
    )
}

#[test]
fn host_routes_carry_the_advertisement_attributes_and_peers_filter_extras() {
    let p = plan_for(
        "n1",
        &info(&[]),
        &[service("web/a", &["198.51.100.10", "2001:db8:100::10"])],
    );
    // rack2-only does not select n1: no session, no routes.
    assert_eq!(
        p.routes.keys().cloned().collect::<Vec<_>>(),
        vec![peer("tor-a"), peer("tor-b")]
    );
    let a = &p.routes[&peer("tor-a")];
    let v4 = &a[&net("198.51.100.10/32")];
    assert_eq!(v4.local_pref, Some(200));
    assert_eq!(
        v4.communities,
        BTreeSet::from([Community(65000 << 16 | 100), Community::NO_EXPORT])
    );
    assert_eq!(
        v4.large_communities,
        BTreeSet::from([LargeCommunity {
            global_admin: 4_200_000_001,
            local_data1: 1,
            local_data2: 2
        }])
    );
    assert!(a.contains_key(&net("2001:db8:100::10/128")));
    // tor-b also gets edge-b-extra's community, unioned on the same prefix.
    let b = &p.routes[&peer("tor-b")][&net("198.51.100.10/32")];
    assert!(b.communities.contains(&Community(65000 << 16 | 999)));
    assert!(b.communities.contains(&Community::NO_EXPORT));
    assert_eq!(
        p.services["web/a"],
        BTreeSet::from([peer("tor-a"), peer("tor-b")])
    );
    assert!(p.not_advertised.is_empty());
}

#[test]
fn a_departing_node_keeps_its_routes_marked_for_graceful_shutdown() {
    let services = [service("web/a", &["198.51.100.10"])];
    let staying = plan_for("n1", &info(&[("rack", "2")]), &services);
    let mut leaving_info = info(&[("rack", "2")]);
    leaving_info.departing = Some(crate::election::Departure::Cordoned);
    let leaving = plan_for("n1", &leaving_info, &services);
    let prefix = net("198.51.100.10/32");
    let route = |p: &BgpPlan, to: &str| p.routes[&peer(to)][&prefix].clone();
    // iBGP tor-a, defaults: the community, LOCAL_PREF 0 (instead of the advertisement's 200).
    let a = route(&leaving, "tor-a");
    assert!(a.communities.contains(&Community::GRACEFUL_SHUTDOWN));
    assert!(
        a.communities.contains(&Community::NO_EXPORT),
        "the rest kept"
    );
    assert_eq!(a.local_pref, Some(0));
    assert_eq!(a.as_path_prepend, 3);
    // eBGP tor-b asks for one prepend.
    let b = route(&leaving, "tor-b");
    assert!(b.communities.contains(&Community::GRACEFUL_SHUTDOWN));
    assert_eq!(b.as_path_prepend, 1);
    // rack2-only turned it off: its routes stay as they are, as MetalLB's would.
    assert_eq!(route(&leaving, "rack2-only"), route(&staying, "rack2-only"));
    // A node that is not leaving marks nothing; the same Services go to the same peers.
    for to in ["tor-a", "tor-b"] {
        let kept = route(&staying, to);
        assert!(!kept.communities.contains(&Community::GRACEFUL_SHUTDOWN));
        assert_eq!(kept.as_path_prepend, 0);
    }
    assert_eq!(leaving.services, staying.services);
}

#[test]
fn a_newly_excluded_node_drains_each_peer_for_its_drain_time_then_withdraws() {
    let extra = r#"
---
apiVersion: ferrolb.io/v1beta1
kind: BGPPeer
metadata: {name: slow, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64515, peerAddress: 192.0.2.4, gracefulShutdown: {drainTime: 30s}}
"#;
    let config = crate::test_support::valid_config(&format!("{CONFIG}{extra}"));
    let services = [
        service("web/a", &["198.51.100.10"]),
        service("web/b", &["198.51.100.11"]),
    ];
    let ip: IpAddr = "198.51.100.10".parse().expect("ip");
    let prefix = net("198.51.100.10/32");
    let node_name = name("n1");
    let labelled = info(&[("rack", "2"), (EXCLUDE_LABEL, "")]);
    let at = |age: Option<Duration>| Node {
        name: &node_name,
        info: &labelled,
        ignore_exclude_label: false,
        exclude_label_age: age,
    };
    let staying_info = info(&[("rack", "2")]);
    let staying = plan(
        &config,
        &Node {
            name: &node_name,
            info: &staying_info,
            ignore_exclude_label: false,
            exclude_label_age: None,
        },
        &services,
    );
    let all: BTreeSet<PeerName> = ["tor-a", "tor-b", "rack2-only", "slow"]
        .into_iter()
        .map(peer)
        .collect();
    assert_eq!(staying.services["web/a"], all);

    // Just labelled: every peer with graceful shutdown on keeps the routes, marked; rack2-only
    // (off) loses them at once.
    let fresh = plan(&config, &at(Some(Duration::ZERO)), &services);
    for to in ["tor-a", "tor-b", "slow"] {
        let route = &fresh.routes[&peer(to)][&prefix];
        assert!(
            route.communities.contains(&Community::GRACEFUL_SHUTDOWN),
            "{to}"
        );
    }
    assert_eq!(fresh.routes[&peer("tor-a")][&prefix].local_pref, Some(0));
    assert!(fresh.routes[&peer("rack2-only")].is_empty());
    let draining: BTreeSet<PeerName> = ["tor-a", "tor-b", "slow"].into_iter().map(peer).collect();
    assert_eq!(fresh.services["web/a"], draining);
    assert!(!fresh.not_advertised.contains_key(&ip));
    assert_eq!(
        at(Some(Duration::ZERO)).next_exclusion_step(&config),
        Some(Duration::from_secs(10))
    );

    // After the default 10 s, only `slow` (30 s) still has them.
    let later = plan(&config, &at(Some(Duration::from_secs(10))), &services);
    assert!(later.routes[&peer("tor-a")].is_empty());
    assert!(later.routes[&peer("tor-b")].is_empty());
    assert!(
        later.routes[&peer("slow")][&prefix]
            .communities
            .contains(&Community::GRACEFUL_SHUTDOWN)
    );
    assert_eq!(
        at(Some(Duration::from_secs(12))).next_exclusion_step(&config),
        Some(Duration::from_secs(18))
    );

    // After 30 s, and for a label the caller did not see appear, nothing is left.
    for age in [Some(Duration::from_secs(30)), None] {
        let done = plan(&config, &at(age), &services);
        assert!(done.routes.values().all(BTreeMap::is_empty), "{age:?}");
        assert!(done.services.is_empty());
        assert_eq!(done.not_advertised[&ip], NotAdvertised::ExcludedByLabel);
        assert_eq!(at(age).next_exclusion_step(&config), None);
    }

    // Ignored, the label changes nothing.
    let ignored = Node {
        ignore_exclude_label: true,
        ..at(Some(Duration::ZERO))
    };
    assert_eq!(plan(&config, &ignored, &services), staying);
    assert_eq!(ignored.next_exclusion_step(&config), None);
}

#[test]
fn a_service_opted_in_is_advertised_without_endpoints_and_local_endpoints_still_choose() {
    let mut gateway = service("gw/envoy", &["198.51.100.11"]);
    gateway.info.has_usable_endpoint = false;
    let p = plan_for("n1", &info(&[]), std::slice::from_ref(&gateway));
    assert!(matches!(
        p.not_advertised[&"198.51.100.11".parse::<IpAddr>().expect("ip")],
        NotAdvertised::NoEndpoints(_)
    ));
    gateway.info.announce_without_endpoints = true;
    let p = plan_for("n1", &info(&[]), std::slice::from_ref(&gateway));
    assert!(p.routes[&peer("tor-a")].contains_key(&net("198.51.100.11/32")));
    // Local, no local endpoint anywhere: every node advertises it.
    gateway.info.local = true;
    let p = plan_for("n1", &info(&[]), std::slice::from_ref(&gateway));
    assert!(p.routes[&peer("tor-a")].contains_key(&net("198.51.100.11/32")));
    // Local with a ready endpoint on n2: only n2.
    gateway.info.has_usable_endpoint = true;
    gateway.info.endpoint_nodes = [name("n2")].into();
    let p = plan_for("n1", &info(&[]), std::slice::from_ref(&gateway));
    assert!(p.routes[&peer("tor-a")].is_empty());
    let p = plan_for("n2", &info(&[]), std::slice::from_ref(&gateway));
    assert!(p.routes[&peer("tor-a")].contains_key(&net("198.51.100.11/32")));
}

#[test]
fn aggregation_merges_services_into_one_prefix_and_node_selectors_apply() {
    let services = [
        service("web/a", &["198.51.100.65"]),
        service("web/b", &["198.51.100.70"]),
    ];
    let p = plan_for("n1", &info(&[("rack", "1")]), &services);
    let routes = &p.routes[&peer("tor-a")];
    assert_eq!(
        routes.keys().collect::<Vec<_>>(),
        vec![&net("198.51.100.64/28")]
    );
    // rack 2 is not selected by the agg advertisement; its own peer gets nothing either.
    let p = plan_for("n2", &info(&[("rack", "2")]), &services);
    assert!(p.routes.values().all(BTreeMap::is_empty), "{p:?}");
    assert!(p.routes.contains_key(&peer("rack2-only")));
    assert_eq!(
        p.not_advertised[&"198.51.100.65".parse::<IpAddr>().expect("ip")],
        NotAdvertised::NodeNotSelected
    );
}

#[test]
fn eligibility_follows_traffic_policy_and_node_state() {
    let mut local = service("web/local", &["198.51.100.20"]);
    local.info.local = true;
    local.info.endpoint_nodes = BTreeSet::from([name("n1")]);
    let mut empty = service("web/empty", &["198.51.100.21"]);
    empty.info.has_usable_endpoint = false;
    let services = [local, empty];

    let here = plan_for("n1", &info(&[]), &services);
    assert!(here.routes[&peer("tor-a")].contains_key(&net("198.51.100.20/32")));
    assert!(matches!(
        here.not_advertised[&"198.51.100.21".parse::<IpAddr>().expect("ip")],
        NotAdvertised::NoEndpoints(_)
    ));
    let elsewhere = plan_for("n2", &info(&[]), &services);
    assert!(elsewhere.routes[&peer("tor-a")].is_empty());
    assert!(matches!(
        elsewhere.not_advertised[&"198.51.100.20".parse::<IpAddr>().expect("ip")],
        NotAdvertised::NoLocalEndpoints(_)
    ));

    let excluded = plan_for("n1", &info(&[(EXCLUDE_LABEL, "")]), &services);
    assert!(excluded.routes.values().all(BTreeMap::is_empty));
    let mut down = info(&[]);
    down.network_unavailable = true;
    let unavailable = plan_for("n1", &down, &services);
    assert!(unavailable.routes.values().all(BTreeMap::is_empty));
    assert_eq!(
        unavailable.not_advertised[&"198.51.100.20".parse::<IpAddr>().expect("ip")],
        NotAdvertised::NetworkUnavailable
    );
    // The label is honoured unless ignored.
    let node_name = name("n1");
    let labelled = info(&[(EXCLUDE_LABEL, "")]);
    let ignored = plan(
        &config(),
        &Node {
            name: &node_name,
            info: &labelled,
            ignore_exclude_label: true,
            exclude_label_age: None,
        },
        &services,
    );
    assert!(ignored.routes[&peer("tor-a")].contains_key(&net("198.51.100.20/32")));
}

#[test]
fn a_pool_without_advertisement_and_an_ip_without_pool_are_explained() {
    let p = plan_for(
        "n1",
        &info(&[]),
        &[
            service("web/q", &["198.51.100.130"]),
            service("web/x", &["203.0.113.9"]),
        ],
    );
    assert!(p.routes.values().all(BTreeMap::is_empty));
    assert_eq!(
        p.not_advertised[&"198.51.100.130".parse::<IpAddr>().expect("ip")],
        NotAdvertised::NoAdvertisement("web/q".into())
    );
    assert_eq!(
        p.not_advertised[&"203.0.113.9".parse::<IpAddr>().expect("ip")],
        NotAdvertised::NoPool
    );
    assert!(p.services.is_empty());
}

#[test]
fn conflicting_local_prefs_keep_the_ip_unadvertised() {
    let extra = r#"
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: edge-other-pref, namespace: ferrolb-system}
spec:
  ipAddressPools: [edge]
  localPref: 50
  serviceSelectors: [{matchLabels: {tier: gold}}]
"#;
    let config = crate::test_support::valid_config(&format!("{CONFIG}{extra}"));
    let mut gold = service("web/a", &["198.51.100.10"]);
    gold.info.labels.insert("tier".into(), "gold".into());
    let node_name = name("n1");
    let node_info = info(&[]);
    let p = plan(
        &config,
        &Node {
            name: &node_name,
            info: &node_info,
            ignore_exclude_label: false,
            exclude_label_age: None,
        },
        &[gold, service("web/b", &["198.51.100.11"])],
    );
    // The conflict keeps only the gold Service's IP back.
    assert!(!p.routes[&peer("tor-a")].contains_key(&net("198.51.100.10/32")));
    assert!(p.routes[&peer("tor-a")].contains_key(&net("198.51.100.11/32")));
    assert_eq!(
        p.not_advertised[&"198.51.100.10".parse::<IpAddr>().expect("ip")],
        NotAdvertised::ConflictingLocalPref(net("198.51.100.10/32"), 50, 200)
    );
}

#[test]
fn services_sharing_an_ip_need_an_advertisement_each() {
    let mut labelled = service("web/a", &["198.51.100.130"]);
    labelled.info.labels.insert("x".into(), "y".into());
    // "quiet" has no advertisement at all; both Services on the IP stay unadvertised.
    let p = plan_for(
        "n1",
        &info(&[]),
        &[labelled, service("web/b", &["198.51.100.130"])],
    );
    assert!(p.routes.values().all(BTreeMap::is_empty));
    assert!(p.services.is_empty());
}

#[test]
fn a_sharer_that_cannot_be_served_does_not_withdraw_the_ip_of_the_others() {
    let vip = "198.51.100.10";
    let serving = service("web/serving", &[vip]);
    let mut empty = service("other/empty", &[vip]);
    empty.info.has_usable_endpoint = false;
    let mut elsewhere = service("other/elsewhere", &[vip]);
    elsewhere.info.local = true;
    elsewhere.info.endpoint_nodes = [name("n2")].into();
    for unservable in [empty, elsewhere] {
        let p = plan_for("n1", &info(&[]), &[serving.clone(), unservable.clone()]);
        assert!(
            p.routes[&peer("tor-a")].contains_key(&net("198.51.100.10/32")),
            "withdrawn because of {}",
            unservable.info.key
        );
        assert!(p.not_advertised.is_empty());
        // Only the Service served from here is reported as advertised by this node.
        let services: Vec<&str> = p.services.keys().map(String::as_str).collect();
        assert_eq!(services, ["web/serving"]);
    }
}

#[test]
fn a_sharer_no_advertisement_matches_does_not_withdraw_the_ip_of_the_others() {
    let vip = "198.51.100.200";
    let mut web = service("web/a", &[vip]);
    web.info.labels.insert("app".into(), "web".into());
    let unmatched = service("other/b", &[vip]);
    let p = plan_for("n1", &info(&[]), &[web, unmatched.clone()]);
    assert!(p.routes[&peer("tor-a")].contains_key(&net("198.51.100.200/32")));
    let services: Vec<&str> = p.services.keys().map(String::as_str).collect();
    assert_eq!(services, ["web/a"]);
    // Alone, the unmatched one is not advertised, with the reason.
    let p = plan_for("n1", &info(&[]), &[unmatched]);
    assert_eq!(
        p.not_advertised[&vip.parse::<IpAddr>().expect("ip")],
        NotAdvertised::NoAdvertisement("other/b".into())
    );
}

#[test]
fn the_advertisers_of_a_service_are_the_nodes_whose_own_plan_has_it() {
    let mut local = service("web/local", &["198.51.100.20"]);
    local.info.local = true;
    local.info.endpoint_nodes = BTreeSet::from([name("n1"), name("n3")]);
    let cluster = service("web/cluster", &["198.51.100.22"]);
    let mut down = info(&[]);
    down.network_unavailable = true;
    let nodes: BTreeMap<NodeName, NodeInfo> = BTreeMap::from([
        (name("n1"), info(&[])),
        (name("n2"), info(&[])),
        (name("n3"), info(&[(EXCLUDE_LABEL, "")])),
        (name("n4"), down),
    ]);
    let names = |v: Vec<&NodeName>| v.into_iter().map(|n| n.to_string()).collect::<Vec<_>>();
    // Local: only nodes with an endpoint, and n3 is excluded by its label.
    assert_eq!(names(advertisers(&config(), &nodes, false, &local)), ["n1"]);
    assert_eq!(
        names(advertisers(&config(), &nodes, true, &local)),
        ["n1", "n3"]
    );
    // Cluster: every node that may advertise, in name order; n4's network is unavailable.
    assert_eq!(
        names(advertisers(&config(), &nodes, false, &cluster)),
        ["n1", "n2"]
    );
    // Each agrees with that node's own plan.
    for (n, i) in &nodes {
        let own = plan_for(n.as_str(), i, std::slice::from_ref(&cluster));
        assert_eq!(
            own.services.contains_key("web/cluster"),
            advertisers(&config(), &nodes, false, &cluster).contains(&n),
            "{n}"
        );
    }
}
