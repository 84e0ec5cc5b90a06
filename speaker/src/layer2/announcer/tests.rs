use super::*;
use crate::netlink::{IfAddr, Interface};

fn iface(index: u32, name: &str, ipv6: bool) -> Interface {
    Interface {
        mac: Some(Mac([0x02, 0, 0, 0, 0, index as u8])),
        up: true,
        lower_up: true,
        broadcast: true,
        addrs: if ipv6 {
            [IfAddr {
                addr: "fe80::1".parse().expect("ip"),
                prefix_len: 64,
            }]
            .into()
        } else {
            BTreeSet::new()
        },
        ..Interface::new(index, name)
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn names(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

#[test]
fn each_ip_goes_to_the_usable_interfaces_it_admits_and_its_family_runs_on() {
    let interfaces = Interfaces::from_interfaces([
        iface(1, "lo", true),
        iface(2, "eth0", true),
        iface(3, "eth1", false),
        iface(4, "veth1234", true),
        Interface {
            up: false,
            ..iface(5, "eth2", true)
        },
    ]);
    let plan = Plan {
        ips: [
            (ip("192.0.2.200"), InterfaceChoice::All),
            (ip("2001:db8:0:1::200"), InterfaceChoice::All),
            (
                ip("192.0.2.201"),
                InterfaceChoice::Named(names(&["eth1", "eth2"])),
            ),
            (
                ip("2001:db8:0:1::201"),
                InterfaceChoice::Named(names(&["eth1"])),
            ),
        ]
        .into(),
    };
    let planned = planned_interfaces(&plan, &interfaces, &ExcludeList::default());
    let want: Announcing = [
        (ip("192.0.2.200"), names(&["eth0", "eth1"])),
        (ip("2001:db8:0:1::200"), names(&["eth0"])),
        (ip("192.0.2.201"), names(&["eth1"])),
    ]
    .into();
    assert_eq!(
        planned, want,
        "lo, veth* and the down eth2 never; eth1 has no IPv6"
    );

    let all = wanted(&plan, &interfaces, &ExcludeList::default());
    assert_eq!(
        all.keys().copied().collect::<Vec<_>>(),
        [2, 3],
        "every usable interface, even without IPs"
    );
}

#[test]
fn default_settings_are_metallb_compatible_with_our_burst_and_refresh() {
    let s = AnnouncerSettings::default();
    assert_eq!(s.exclude, ExcludeList::metallb_default());
    assert_eq!(
        s.burst,
        [0, 100, 300, 1000].map(Duration::from_millis).to_vec()
    );
    assert_eq!(
        (s.refresh, s.linger, s.hold_down),
        (
            Duration::from_secs(10),
            Duration::from_secs(2),
            Duration::from_secs(1)
        )
    );
}
