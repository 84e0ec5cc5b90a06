//! Messages GoBGP, BIRD and FRR really sent, captured byte for byte by `capture-bgp`
//! (`tests/src/bin/capture-bgp.rs`; `captured/README.md` says how to capture them again), in two
//! sessions each: one where both sides have 4-octet ASNs, as with ferrolb, and one where we do
//! not and the router's ASN needs four octets, so it sends AS_TRANS and AS4_PATH. Each message
//! is decoded with the context the two OPENs negotiate and checked field by field against what
//! the router was configured to send — the routes in [`originated`] are the capture tool's —
//! then re-encoded and decoded again to the same value, and read by netgauze as well.
//!
//! Byte equality with the router's encoding is asserted only where our encoder has no choice
//! to make: KEEPALIVE, NOTIFICATION, ROUTE-REFRESH, the End-of-RIB markers, and an OPEN whose
//! capabilities travel in one parameter, as ours do (GoBGP's and BIRD's; FRR sends one
//! parameter per capability, which RFC 5492 allows). An UPDATE's attribute order and
//! extended-length bits are the sender's choice, and all three choose differently from us: FRR
//! sets the bit on a 6-octet AS_PATH, BIRD on MP_REACH_NLRI, and GoBGP puts MP_REACH_NLRI in
//! type-code order where we put it first (RFC 7606 §5.1).

use std::collections::BTreeSet;

use super::oracle::oracle;
use super::*;

/// The router's ASN in the 4-octet sessions (eBGP to AS 4200000001)…
const ROUTER_AS: u32 = 64512;
/// …and in the 2-octet ones (eBGP to AS 65001, which sends no 4-octet AS capability).
const ROUTER_AS4: u32 = 4_200_000_002;
const ROUTER_ID: &str = "192.0.2.2";
/// The Cease / Administrative Shutdown message the capture tool gives each router.
const SHUTDOWN_MESSAGE: &str = "ferrolb capture done";

/// One captured message: where it is, the comment line above it, and its bytes.
struct Captured {
    /// `<file>: <router> <version>, <phase>: <TYPE>`.
    label: String,
    /// `open`, `announce`, `re-announce`, `refresh-request`, `withdraw` or `shutdown`.
    phase: String,
    bytes: Vec<u8>,
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
struct Originated {
    prefix: IpNet,
    origin: Origin,
    med: Option<u32>,
    communities: Vec<Community>,
    large_communities: Vec<LargeCommunity>,
}

fn large(global_admin: u32, local_data1: u32, local_data2: u32) -> LargeCommunity {
    LargeCommunity {
        global_admin,
        local_data1,
        local_data2,
    }
}

/// `routes()` of `tests/src/bin/capture-bgp.rs`.
fn originated() -> [Originated; 3] {
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
fn withdrawn() -> [IpNet; 2] {
    [net("203.0.113.128/25"), net("2001:db8:100::/48")]
}

/// What differs between the three routers and their two sessions, from their configuration
/// and defaults.
struct Router {
    /// The fixture file.
    file: &'static str,
    messages: Vec<Captured>,
    asn: u32,
    /// Our OPEN carried the 4-octet AS capability.
    we_sent_four_octet_as: bool,
    hold_time: u16,
    capabilities: Vec<Capability>,
    /// Our encoder writes the OPEN back byte for byte.
    open_in_one_parameter: bool,
    ipv6_next_hop: MpNextHop,
    /// The MED of a route configured without one.
    default_med: Option<u32>,
    /// It negotiated enhanced route refresh (RFC 7313) with us.
    enhanced_route_refresh: bool,
    /// It sent ROUTE-REFRESH when told to refresh inbound.
    sends_route_refresh: bool,
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
        messages: transcript("gobgp.hex", include_str!("captured/gobgp.hex")),
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
            unknown(5, &[0, 1, 0, 1, 0, 2]),
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
        messages: transcript("bird.hex", include_str!("captured/bird.hex")),
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

fn frr() -> Router {
    Router {
        file: "frr.hex",
        asn: ROUTER_AS,
        we_sent_four_octet_as: true,
        messages: transcript("frr.hex", include_str!("captured/frr.hex")),
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

fn routers() -> [Router; 6] {
    [
        gobgp(),
        gobgp().two_octet(
            "gobgp-two-octet.hex",
            include_str!("captured/gobgp-two-octet.hex"),
        ),
        bird(),
        bird().two_octet(
            "bird-two-octet.hex",
            include_str!("captured/bird-two-octet.hex"),
        ),
        frr(),
        frr().two_octet(
            "frr-two-octet.hex",
            include_str!("captured/frr-two-octet.hex"),
        ),
    ]
}

impl Router {
    /// The same router in its 2-octet session: AS 4200000002 (the only capability that
    /// changes is the 4-octet AS one), and no 4-octet AS capability from us.
    fn two_octet(self, file: &'static str, text: &'static str) -> Self {
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

    fn in_phase(&self, phase: &str) -> impl Iterator<Item = &Captured> {
        let phase = phase.to_owned();
        self.messages.iter().filter(move |m| m.phase == phase)
    }

    fn open(&self) -> Open {
        let first = self.messages.first().expect("a transcript");
        match decode(&first.bytes, &SessionContext::default()) {
            Message::Open(open) => open,
            other => panic!("{}: first message is {other:?}", first.label),
        }
    }

    /// Our OPEN offered both families, and 4-octet ASNs in one session; the router's OPEN
    /// decides the rest.
    fn context(&self) -> SessionContext {
        let open = self.open();
        SessionContext {
            four_octet_as: open.four_octet_as().is_some() && self.we_sent_four_octet_as,
            families: open.families().intersection(Families::BOTH),
        }
    }

    fn decoded(&self, phase: &str) -> Vec<(String, Message)> {
        let ctx = self.context();
        self.in_phase(phase)
            .map(|m| (m.label.clone(), decode(&m.bytes, &ctx)))
            .collect()
    }

    /// The attributes the router was configured to put on `route`: eBGP, so AS_PATH is its
    /// own AS and there is no LOCAL_PREF. To a 2-octet speaker an ASN above 65535 goes as
    /// AS_TRANS in AS_PATH, and the real path in AS4_PATH (RFC 6793 §4.2.2).
    fn expected(&self, route: &Originated) -> PathAttributes {
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
    fn check_announcement(&self, label: &str, update: &Update) -> IpNet {
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

#[test]
fn every_captured_message_decodes_and_decodes_the_same_after_our_encoding() {
    for router in routers() {
        let ctx = router.context();
        for m in &router.messages {
            let decoded = decode(&m.bytes, &ctx);
            let again = encode(&decoded, &ctx);
            assert_eq!(decode(&again, &ctx), decoded, "{}", m.label);
            let canonical = match &decoded {
                Message::Keepalive | Message::Notification(_) | Message::RouteRefresh(_) => true,
                Message::Update(u) => u.end_of_rib_family().is_some(),
                Message::Open(_) => router.open_in_one_parameter,
            };
            if canonical {
                assert_eq!(again, m.bytes, "{}: our encoding differs", m.label);
            }
        }
    }
}

#[test]
fn netgauze_reads_every_captured_message_completely() {
    for router in routers() {
        let asn4 = router.context().four_octet_as;
        for m in &router.messages {
            let _ = oracle(&m.bytes, asn4);
        }
    }
}

#[test]
fn opens_carry_the_routers_asn_hold_time_identifier_and_capabilities() {
    for router in routers() {
        let open = router.open();
        let name = router.file;
        let my_as = u16::try_from(router.asn).unwrap_or(AS_TRANS);
        assert_eq!(open.my_as, my_as, "{name}");
        assert_eq!(open.asn(), router.asn, "{name}");
        assert_eq!(open.hold_time, router.hold_time, "{name}");
        assert_eq!(open.bgp_id, v4(ROUTER_ID), "{name}");
        assert_eq!(open.capabilities, router.capabilities, "{name}");
        assert_eq!(open.families(), Families::BOTH, "{name}");
        assert!(open.route_refresh(), "{name}");
        // Both families; 4-octet ASNs where we offered them too.
        let ctx = if router.we_sent_four_octet_as {
            ctx4()
        } else {
            ctx2()
        };
        assert_eq!(router.context(), ctx, "{name}");
    }
}

#[test]
fn frr_sends_one_capabilities_parameter_per_capability() {
    let router = frr();
    let bytes = &router.messages[0].bytes;
    // Optional parameters start after the 10 fixed octets of the body.
    let params = &bytes[HEADER_LEN + 10..];
    let mut lengths = Vec::new();
    let mut rest = params;
    while let [2, len, tail @ ..] = rest {
        lengths.push(*len);
        rest = &tail[usize::from(*len)..];
    }
    assert!(rest.is_empty());
    assert_eq!(lengths.len(), router.capabilities.len());
    // Ours puts them all in one, so the bytes differ but the capabilities do not.
    let again = encode(&Message::Open(router.open()), &ctx4());
    assert_ne!(&again, bytes);
    assert_eq!(decode(&again, &ctx4()), Message::Open(router.open()));
}

#[test]
fn after_the_open_comes_a_keepalive() {
    for router in routers() {
        let open: Vec<_> = router.decoded("open");
        assert_eq!(open.len(), 2, "{}", router.file);
        assert_eq!(open[1].1, Message::Keepalive, "{}", open[1].0);
    }
}

#[test]
fn announced_routes_carry_the_configured_origin_med_communities_and_large_communities() {
    for router in routers() {
        let mut announced = BTreeSet::new();
        for (label, m) in router.decoded("announce") {
            let Message::Update(update) = m else {
                panic!("{label}: {m:?}");
            };
            if update.end_of_rib_family().is_none() {
                assert!(announced.insert(router.check_announcement(&label, &update)));
            }
        }
        let all: BTreeSet<IpNet> = originated().iter().map(|r| r.prefix).collect();
        assert_eq!(announced, all, "{}", router.file);
    }
}

#[test]
fn each_router_ends_its_initial_routes_with_an_end_of_rib_per_family() {
    for router in routers() {
        let updates: Vec<Update> = router
            .decoded("announce")
            .into_iter()
            .filter_map(|(_, m)| match m {
                Message::Update(u) => Some(u),
                _ => None,
            })
            .collect();
        for family in Family::ALL {
            let at = updates
                .iter()
                .position(|u| u.end_of_rib_family() == Some(family))
                .unwrap_or_else(|| panic!("{}: no End-of-RIB for {family}", router.file));
            assert_eq!(updates[at], Update::end_of_rib(family));
            // It follows every route of its family.
            let later = updates[at..]
                .iter()
                .flat_map(|u| u.announced())
                .any(|p| Family::of(p) == family);
            assert!(
                !later,
                "{}: {family} route after its End-of-RIB",
                router.file
            );
        }
    }
}

#[test]
fn a_route_refresh_is_answered_with_the_ipv4_routes_framed_as_rfc_7313_says_when_negotiated() {
    for router in routers() {
        let answer = router.decoded("re-announce");
        let (first, last) = (&answer[0], &answer[answer.len() - 1]);
        let middle = if router.enhanced_route_refresh {
            let marker = |subtype| {
                Message::RouteRefresh(RouteRefresh {
                    afi_safi: AfiSafi::IPV4_UNICAST,
                    subtype,
                })
            };
            assert_eq!(first.1, marker(1), "{}: Begin-of-RIB-Refresh", first.0);
            assert_eq!(last.1, marker(2), "{}: End-of-RIB-Refresh", last.0);
            &answer[1..answer.len() - 1]
        } else {
            // GoBGP closes a plain refresh with an End-of-RIB.
            let eor = Message::Update(Update::end_of_rib(Family::Ipv4Unicast));
            assert_eq!(last.1, eor, "{}", last.0);
            &answer[..answer.len() - 1]
        };
        let mut again = BTreeSet::new();
        for (label, m) in middle {
            let Message::Update(update) = m else {
                panic!("{label}: {m:?}");
            };
            again.insert(router.check_announcement(label, update));
        }
        let ipv4 = [net("198.51.100.0/24"), net("203.0.113.128/25")];
        assert_eq!(again, BTreeSet::from(ipv4), "{}", router.file);
    }
}

#[test]
fn bird_and_frr_ask_for_both_families_with_plain_route_refresh() {
    for router in routers() {
        let asked: Vec<Message> = router
            .decoded("refresh-request")
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        let expected: Vec<Message> = if router.sends_route_refresh {
            [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]
                .map(|afi_safi| {
                    Message::RouteRefresh(RouteRefresh {
                        afi_safi,
                        subtype: 0,
                    })
                })
                .to_vec()
        } else {
            Vec::new()
        };
        assert_eq!(asked, expected, "{}", router.file);
    }
}

#[test]
fn withdrawals_use_withdrawn_routes_for_ipv4_and_mp_unreach_for_ipv6() {
    for router in routers() {
        let mut gone = Vec::new();
        for (label, m) in router.decoded("withdraw") {
            match m {
                Message::Update(update) if update.announced().next().is_some() => {
                    // BIRD re-sends what it still exports while it reloads its export filter.
                    let prefix = router.check_announcement(&label, &update);
                    assert!(!withdrawn().contains(&prefix), "{label}");
                }
                Message::Update(update) => {
                    assert!(update.errors.is_empty(), "{label}");
                    assert_eq!(update.end_of_rib_family(), None, "{label}");
                    for prefix in &update.withdrawn {
                        assert_eq!(Family::of(prefix), Family::Ipv4Unicast, "{label}");
                    }
                    if let Some(unreach) = &update.attributes.mp_unreach {
                        assert_eq!(unreach.family, Family::Ipv6Unicast, "{label}");
                    }
                    gone.extend(update.withdrawals().copied());
                }
                // BIRD frames that reload per family as an enhanced route refresh.
                Message::RouteRefresh(rr) if router.enhanced_route_refresh => {
                    assert!(matches!(rr.subtype, 1 | 2), "{label}: {rr:?}");
                }
                other => panic!("{label}: {other:?}"),
            }
        }
        assert_eq!(gone, withdrawn(), "{}", router.file);
    }
}

#[test]
fn the_session_ends_with_cease_administrative_shutdown_and_its_rfc_9003_message() {
    for router in routers() {
        let shutdown = router.decoded("shutdown");
        let (label, last) = shutdown.last().expect("a shutdown phase");
        let Message::Notification(n) = last else {
            panic!("{label}: {last:?}");
        };
        assert_eq!(n.code, error_code::CEASE, "{label}");
        assert_eq!(n.subcode, cease_subcode::ADMINISTRATIVE_SHUTDOWN, "{label}");
        assert_eq!(n.shutdown_message(), Some(SHUTDOWN_MESSAGE), "{label}");
        assert_eq!(
            n.to_string(),
            format!("Cease/Administrative Shutdown {SHUTDOWN_MESSAGE:?}")
        );
    }
}
