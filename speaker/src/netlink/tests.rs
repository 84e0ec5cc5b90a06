use super::*;

fn eth(index: u32, name: &str) -> Interface {
    Interface {
        mac: Some(Mac([0x02, 0, 0, 0, 0, index as u8])),
        up: true,
        lower_up: true,
        broadcast: true,
        addrs: [IfAddr {
            addr: "fe80::1".parse().expect("ip"),
            prefix_len: 64,
        }]
        .into(),
        ..Interface::new(index, name)
    }
}

const BOTH: Families = Families {
    arp: true,
    ndp: true,
};

#[test]
fn metallbs_default_patterns_all_parse() {
    assert_eq!(
        ExcludeList::metallb_default().patterns().len(),
        METALLB_EXCLUDED.len()
    );
    let shown: Vec<String> = ExcludeList::metallb_default()
        .patterns()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(shown, METALLB_EXCLUDED);
}

#[test]
fn the_default_list_excludes_container_and_virtual_interfaces_only() {
    let list = ExcludeList::default();
    for name in [
        "docker0",
        "cbr0",
        "dummy0",
        "virbr0",
        "lxcbr0",
        "veth1234",
        "lo",
        "cali12ab",
        "tunl0",
        "flannel.1",
        "kube-ipvs0",
        "cni0",
        "nodelocaldns",
        "lxc_health",
    ] {
        assert!(list.matches(name), "{name} should be excluded");
    }
    for name in [
        "eth0", "ens3", "bond0", "br0", "eth0.100", "lo0", "loop", "enp1s0",
    ] {
        assert!(!list.matches(name), "{name} should not be excluded");
    }
}

#[test]
fn patterns_are_anchored_exact_names_or_prefixes() {
    let ok = [
        ("^eth0$", NamePattern::Exact("eth0".into())),
        ("^eth.*", NamePattern::Prefix("eth".into())),
        ("^eth", NamePattern::Prefix("eth".into())),
        ("^flannel\\.1$", NamePattern::Exact("flannel.1".into())),
    ];
    for (text, want) in ok {
        assert_eq!(NamePattern::parse(text), Ok(want), "{text}");
    }
    for text in ["eth0", "^$", "^.*", "^eth[0-9]+$", "^(a|b)", "^a.*b"] {
        assert!(
            NamePattern::parse(text).is_err(),
            "{text} should be refused"
        );
    }
    assert!(ExcludeList::parse(["^eth0$", "bad"]).is_err());
    assert!(ExcludeList::parse(Vec::<String>::new()).is_ok_and(|l| !l.matches("lo")));
}

#[test]
fn an_up_ethernet_interface_with_ipv6_answers_both_families() {
    assert_eq!(
        eligibility(&eth(2, "eth0"), &ExcludeList::default()),
        Ok(BOTH)
    );
}

#[test]
fn ineligible_interfaces_say_why() {
    let list = ExcludeList::default();
    let cases = [
        (
            Interface {
                up: false,
                ..eth(2, "eth0")
            },
            Ineligible::Down,
        ),
        (
            Interface {
                lower_up: false,
                ..eth(2, "eth0")
            },
            Ineligible::NoCarrier,
        ),
        (
            Interface {
                loopback: true,
                ..eth(1, "lo")
            },
            Ineligible::Loopback,
        ),
        (
            Interface {
                noarp: true,
                ..eth(2, "wg0")
            },
            Ineligible::NoArp,
        ),
        (
            Interface {
                mac: None,
                ..eth(2, "tun0")
            },
            Ineligible::NoMac,
        ),
        (
            Interface {
                master: Some(7),
                ..eth(2, "eth0")
            },
            Ineligible::Enslaved(7),
        ),
        (eth(3, "veth0a1b2c"), Ineligible::Excluded),
        (
            Interface {
                broadcast: false,
                addrs: BTreeSet::new(),
                ..eth(2, "eth0")
            },
            Ineligible::NoFamily,
        ),
    ];
    for (iface, why) in cases {
        assert_eq!(eligibility(&iface, &list), Err(why), "{}", iface.name);
    }
}

#[test]
fn families_follow_broadcast_and_ipv6_link_local() {
    let list = ExcludeList::none();
    let v4_only = Interface {
        addrs: [IfAddr {
            addr: "192.0.2.1".parse().expect("ip"),
            prefix_len: 24,
        }]
        .into(),
        ..eth(2, "eth0")
    };
    assert_eq!(
        eligibility(&v4_only, &list),
        Ok(Families {
            arp: true,
            ndp: false
        })
    );
    let no_broadcast = Interface {
        broadcast: false,
        ..eth(2, "eth0")
    };
    assert_eq!(
        eligibility(&no_broadcast, &list),
        Ok(Families {
            arp: false,
            ndp: true
        })
    );
    assert_eq!(eligibility(&eth(3, "veth0"), &list), Ok(BOTH));
}

fn link(index: u32, name: &str, flags: LinkFlags) -> RouteNetlinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.header.link_layer_type = LinkLayerType::Ether;
    msg.header.flags = flags;
    msg.attributes = vec![
        LinkAttribute::IfName(name.into()),
        LinkAttribute::Address(vec![2, 0, 0, 0, 0, index as u8]),
    ];
    RouteNetlinkMessage::NewLink(msg)
}

fn address(index: u32, ip: &str, prefix_len: u8) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.index = index;
    msg.header.prefix_len = prefix_len;
    msg.attributes = vec![AddressAttribute::Address(ip.parse().expect("ip"))];
    msg
}

#[test]
fn notifications_keep_the_table_current() {
    let mut table = Interfaces::default();
    let up = LinkFlags::Up | LinkFlags::LowerUp | LinkFlags::Broadcast;
    assert!(table.apply(&link(2, "eth0", up)));
    assert!(!table.apply(&link(2, "eth0", up)), "same state: no change");
    assert!(table.apply(&RouteNetlinkMessage::NewAddress(address(2, "fe80::2", 64))));
    let eth0 = table.by_name("eth0").expect("eth0");
    assert_eq!(eth0.mac, Some(Mac([2, 0, 0, 0, 0, 2])));
    assert!(eth0.up && eth0.lower_up && eth0.ipv6_link_local());

    assert!(table.apply(&link(2, "eth0", LinkFlags::Broadcast)), "down");
    let eth0 = table.by_name("eth0").expect("eth0");
    assert!(!eth0.up && !eth0.lower_up);
    assert!(eth0.ipv6_link_local(), "addresses survive a NEWLINK");

    assert!(table.apply(&RouteNetlinkMessage::DelAddress(address(2, "fe80::2", 64))));
    assert!(!table.by_index[&2].ipv6_link_local());

    let mut port = LinkMessage::default();
    port.header.index = 2;
    port.header.interface_family = AddressFamily::Bridge;
    assert!(
        !table.apply(&RouteNetlinkMessage::DelLink(port)),
        "bridge port only"
    );
    let mut gone = LinkMessage::default();
    gone.header.index = 2;
    assert!(table.apply(&RouteNetlinkMessage::DelLink(gone)));
    assert!(table.by_index.is_empty());
}

#[test]
fn an_enslaved_link_records_its_master() {
    let mut table = Interfaces::default();
    let RouteNetlinkMessage::NewLink(mut msg) = link(3, "eth1", LinkFlags::Up) else {
        unreachable!()
    };
    msg.attributes.push(LinkAttribute::Controller(9));
    table.apply(&RouteNetlinkMessage::NewLink(msg));
    assert_eq!(table.by_index[&3].master, Some(9));
    assert_eq!(table.macs(), [Mac([2, 0, 0, 0, 0, 3])].into());
}
