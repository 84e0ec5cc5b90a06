//! What GoBGP, BIRD and FRR were configured to send in the captured sessions, what they send
//! by default, and the fixture files read into messages.

use super::*;

/// The router's ASN in the 4-octet sessions (eBGP to AS 4200000001)…
pub(super) const ROUTER_AS: u32 = 64512;
/// …and in the 2-octet ones (eBGP to AS 65001, which sends no 4-octet AS capability).
pub(super) const ROUTER_AS4: u32 = 4_200_000_002;
pub(super) const ROUTER_ID: &str = "192.0.2.2";
/// The Cease / Administrative Shutdown message the capture tool gives each router.
pub(super) const SHUTDOWN_MESSAGE: &str = "ferrolb capture done";

/// One captured message: where it is, the comment line above it, and its bytes.
pub(super) struct Captured {
    /// `<file>: <router> <version>, <phase>: <TYPE>`.
    pub(super) label: String,
    /// `open`, `announce`, `re-announce`, `refresh-request`, `withdraw` or `shutdown`.
    pub(super) phase: String,
    pub(super) bytes: Vec<u8>,
}

fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex line {text:?}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("a hex line"))
        .collect()
}

/// The messages of a fixture file: pairs of a comment line and a hex line.
fn transcript(file: &str, text: &str) -> Vec<Captured> {
    let mut lines = text.lines();
    let mut out = Vec::new();
    while let Some(comment) = lines.next() {
        let label = comment
            .strip_prefix("# ")
            .unwrap_or_else(|| panic!("expected a comment line, got {comment:?}"));
        let phase = label
            .split_once(", ")
            .and_then(|(_, rest)| rest.split_once(": "))
            .map(|(phase, _)| phase.to_owned())
            .unwrap_or_else(|| panic!("no phase in {label:?}"));
        let hex = lines.next().expect("a hex line after each comment");
        out.push(Captured {
            label: format!("{file}: {label}"),
            phase,
            bytes: unhex(hex),
        });
    }
    out
}

/// A route as the capture tool makes every router originate it.
pub(super) struct Originated {
    pub(super) prefix: IpNet,
    pub(super) origin: Origin,
    pub(super) med: Option<u32>,
    pub(super) communities: Vec<Community>,
    pub(super) large_communities: Vec<LargeCommunity>,
}

fn large(global_admin: u32, local_data1: u32, local_data2: u32) -> LargeCommunity {
    LargeCommunity {
        global_admin,
        local_data1,
        local_data2,
    }
}

/// `routes()` of `tests/src/bin/capture-bgp/main.rs`.
pub(super) fn originated() -> [Originated; 3] {
    [
        Originated {
            prefix: net("198.51.100.0/24"),
            origin: Origin::Igp,
            med: Some(50),
            communities: vec![Community::new(64512, 100), Community::new(64512, 200)],
            large_communities: vec![large(64512, 1, 2)],
        },
        Originated {
            prefix: net("203.0.113.128/25"),
            origin: Origin::Incomplete,
            med: None,
            communities: vec![Community::new(64512, 300)],
            large_communities: vec![large(64512, 3, 4), large(4_200_000_001, 5, 6)],
        },
        Originated {
            prefix: net("2001:db8:100::/48"),
            origin: Origin::Igp,
            med: Some(60),
            communities: vec![Community::new(64512, 600)],
            large_communities: vec![large(64512, 6, 6)],
        },
    ]
}

/// What the tool withdraws in the `withdraw` phase.
pub(super) fn withdrawn() -> [IpNet; 2] {
    [net("203.0.113.128/25"), net("2001:db8:100::/48")]
}

/// What differs between the three routers and their two sessions, from their configuration
/// and defaults.
pub(super) struct Router {
    /// The fixture file.
    pub(super) file: &'static str,
    pub(super) messages: Vec<Captured>,
    pub(super) asn: u32,
    /// Our OPEN carried the 4-octet AS capability.
    pub(super) we_sent_four_octet_as: bool,
    pub(super) hold_time: u16,
    pub(super) capabilities: Vec<Capability>,
    /// Our encoder writes the OPEN back byte for byte.
    pub(super) open_in_one_parameter: bool,
    pub(super) ipv6_next_hop: MpNextHop,
    /// The MED of a route configured without one.
    pub(super) default_med: Option<u32>,
    /// It negotiated enhanced route refresh (RFC 7313) with us.
    pub(super) enhanced_route_refresh: bool,
    /// It sent ROUTE-REFRESH when told to refresh inbound.
    pub(super) sends_route_refresh: bool,
}

/// FQDN capability (code 73): host name, then domain name, each with a length octet. The
/// capture tool runs the routers in a UTS namespace named `<router>-router`.
fn fqdn(host: &str) -> Capability {
    let mut value = vec![u8::try_from(host.len()).expect("short")];
    value.extend_from_slice(host.as_bytes());
    value.push(0);
    Capability::Unknown { code: 73, value }
}

fn unknown(code: u8, value: &[u8]) -> Capability {
    Capability::Unknown {
        code,
        value: value.to_vec(),
    }
}

fn gr_family(afi_safi: AfiSafi) -> GracefulRestartFamily {
    GracefulRestartFamily {
        afi_safi,
        forwarding_preserved: false,
    }
}

/// The IPv6 next hops of BIRD and FRR: the router's address on the LAN and its link-local
/// address (EUI-64 of the LAN's MAC 02:fb:00:00:02:00), as RFC 2545 §3 has a speaker send on a
/// shared link.
fn lan_ipv6_next_hop() -> MpNextHop {
    MpNextHop {
        global: ip("2001:db8:0:1::2"),
        link_local: Some(v6("fe80::fb:ff:fe00:200")),
    }
}

fn gobgp() -> Router {
    Router {
        file: "gobgp.hex",
        asn: ROUTER_AS,
        we_sent_four_octet_as: true,
        messages: transcript("gobgp.hex", include_str!("gobgp.hex")),
        // GoBGP's default hold time.
        hold_time: 90,
        capabilities: vec![
            Capability::RouteRefresh,
            fqdn("gobgp-router"),
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            Capability::FourOctetAs(ROUTER_AS),
            // Enabled for both families; the restart time defaults to the hold time.
            Capability::GracefulRestart(GracefulRestart {
                restart_state: false,
                notification: false,
                restart_time: 90,
                families: vec![
                    gr_family(AfiSafi::IPV4_UNICAST),
                    gr_family(AfiSafi::IPV6_UNICAST),
                ],
            }),
            // Extended next hop (RFC 8950): IPv4 unicast over an IPv6 next hop.
            Capability::ExtendedNextHop(vec![ExtendedNextHop::IPV4_UNICAST_OVER_IPV6]),
        ],
        open_in_one_parameter: true,
        // The session runs over IPv4 and GoBGP has no IPv6 address for it: it sends its IPv4
        // address mapped into IPv6 (::ffff:192.0.2.2), and no link-local address.
        ipv6_next_hop: MpNextHop {
            global: ip("::ffff:192.0.2.2"),
            link_local: None,
        },
        default_med: None,
        enhanced_route_refresh: false,
        // `softresetin` re-applies import policy to its Adj-RIB-In: GoBGP never asks.
        sends_route_refresh: false,
    }
}

fn bird() -> Router {
    Router {
        file: "bird.hex",
        asn: ROUTER_AS,
        we_sent_four_octet_as: true,
        messages: transcript("bird.hex", include_str!("bird.hex")),
        // BIRD's default hold time.
        hold_time: 240,
        capabilities: vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            Capability::RouteRefresh,
            // `graceful restart aware` (the default): a helper, preserving no family.
            Capability::GracefulRestart(GracefulRestart {
                restart_state: false,
                notification: false,
                restart_time: 120,
                families: vec![],
            }),
            Capability::FourOctetAs(ROUTER_AS),
            // Enhanced route refresh (RFC 7313).
            unknown(70, &[]),
            // Long-lived graceful restart, `aware` by default: no family.
            unknown(71, &[]),
        ],
        open_in_one_parameter: true,
        ipv6_next_hop: lan_ipv6_next_hop(),
        default_med: None,
        enhanced_route_refresh: true,
        sends_route_refresh: true,
    }
}

pub(super) fn frr() -> Router {
    Router {
        file: "frr.hex",
        asn: ROUTER_AS,
        we_sent_four_octet_as: true,
        messages: transcript("frr.hex", include_str!("frr.hex")),
        // `frr defaults traditional`.
        hold_time: 180,
        capabilities: vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            // Route refresh under Cisco's pre-standard code, then the standard one.
            unknown(128, &[]),
            Capability::RouteRefresh,
            unknown(70, &[]),
            Capability::FourOctetAs(ROUTER_AS),
            // Extended messages (RFC 8654).
            unknown(6, &[]),
            // ADD-PATH (RFC 7911): receive (1) for IPv4 and IPv6 unicast.
            unknown(69, &[0, 1, 1, 1, 0, 2, 1, 1]),
            fqdn("frr-router"),
            // Helper mode: no family. R is set while bgpd's startup timer runs (it started
            // seconds before), N because graceful restart on NOTIFICATION (RFC 8538) is on.
            Capability::GracefulRestart(GracefulRestart {
                restart_state: true,
                notification: true,
                restart_time: 120,
                families: vec![],
            }),
            // Long-lived graceful restart: per family AFI, SAFI, flags (F) and a 0 s stale time.
            unknown(71, &[0, 1, 1, 0x80, 0, 0, 0, 0, 2, 1, 0x80, 0, 0, 0]),
        ],
        open_in_one_parameter: false,
        ipv6_next_hop: lan_ipv6_next_hop(),
        // A `network` route carries its IGP metric as MED: 0 without `set metric`.
        default_med: Some(0),
        enhanced_route_refresh: true,
        sends_route_refresh: true,
    }
}

pub(super) fn routers() -> [Router; 6] {
    [
        gobgp(),
        gobgp().two_octet("gobgp-two-octet.hex", include_str!("gobgp-two-octet.hex")),
        bird(),
        bird().two_octet("bird-two-octet.hex", include_str!("bird-two-octet.hex")),
        frr(),
        frr().two_octet("frr-two-octet.hex", include_str!("frr-two-octet.hex")),
    ]
}

impl Router {
    /// The same router in its 2-octet session: AS 4200000002 (the only capability that
    /// changes is the 4-octet AS one), and no 4-octet AS capability from us.
    pub(super) fn two_octet(self, file: &'static str, text: &'static str) -> Self {
        let capabilities = self
            .capabilities
            .into_iter()
            .map(|c| match c {
                Capability::FourOctetAs(_) => Capability::FourOctetAs(ROUTER_AS4),
                other => other,
            })
            .collect();
        Self {
            file,
            messages: transcript(file, text),
            asn: ROUTER_AS4,
            we_sent_four_octet_as: false,
            capabilities,
            ..self
        }
    }

    pub(super) fn in_phase(&self, phase: &str) -> impl Iterator<Item = &Captured> {
        let phase = phase.to_owned();
        self.messages.iter().filter(move |m| m.phase == phase)
    }

    pub(super) fn open(&self) -> Open {
        let first = self.messages.first().expect("a transcript");
        match decode(&first.bytes, &SessionContext::default()) {
            Message::Open(open) => open,
            other => panic!("{}: first message is {other:?}", first.label),
        }
    }

    /// Our OPEN offered both families, and 4-octet ASNs in one session; the router's OPEN
    /// decides the rest.
    pub(super) fn context(&self) -> SessionContext {
        let open = self.open();
        SessionContext {
            four_octet_as: open.four_octet_as().is_some() && self.we_sent_four_octet_as,
            families: open.families().intersection(Families::BOTH),
        }
    }

    pub(super) fn decoded(&self, phase: &str) -> Vec<(String, Message)> {
        let ctx = self.context();
        self.in_phase(phase)
            .map(|m| (m.label.clone(), decode(&m.bytes, &ctx)))
            .collect()
    }

    /// The attributes the router was configured to put on `route`: eBGP, so AS_PATH is its
    /// own AS and there is no LOCAL_PREF. To a 2-octet speaker an ASN above 65535 goes as
    /// AS_TRANS in AS_PATH, and the real path in AS4_PATH (RFC 6793 §4.2.2).
    pub(super) fn expected(&self, route: &Originated) -> PathAttributes {
        let (as_path, as4_path) = if self.context().four_octet_as {
            (AsPath::sequence([self.asn]), None)
        } else {
            let two = u16::try_from(self.asn).unwrap_or(AS_TRANS);
            let as4 = (self.asn > u32::from(u16::MAX)).then(|| AsPath::sequence([self.asn]));
            (AsPath::sequence([u32::from(two)]), as4)
        };
        let mut attributes = PathAttributes {
            origin: Some(route.origin),
            as_path: Some(as_path),
            as4_path,
            med: route.med.or(self.default_med),
            communities: route.communities.clone(),
            large_communities: route.large_communities.clone(),
            ..PathAttributes::default()
        };
        match Family::of(&route.prefix) {
            Family::Ipv4Unicast => attributes.next_hop = Some(v4(ROUTER_ID)),
            Family::Ipv6Unicast => {
                attributes.mp_reach = Some(MpReach {
                    family: Family::Ipv6Unicast,
                    next_hop: self.ipv6_next_hop,
                    nlri: vec![route.prefix],
                });
            }
        }
        attributes
    }

    /// Checks that an UPDATE announcing routes announces exactly one originated route, with
    /// the configured attributes; returns its prefix.
    pub(super) fn check_announcement(&self, label: &str, update: &Update) -> IpNet {
        assert!(update.errors.is_empty(), "{label}: {:?}", update.errors);
        let announced: Vec<&IpNet> = update.announced().collect();
        let [prefix] = announced[..] else {
            panic!("{label}: one route per UPDATE, as each has its own attributes: {announced:?}");
        };
        let route = originated()
            .into_iter()
            .find(|r| r.prefix == *prefix)
            .unwrap_or_else(|| panic!("{label}: {prefix} was never originated"));
        assert_eq!(update.attributes, self.expected(&route), "{label}");
        if Family::of(prefix) == Family::Ipv4Unicast {
            assert_eq!(update.nlri, [*prefix], "{label}: IPv4 in the NLRI field");
        }
        *prefix
    }
}
