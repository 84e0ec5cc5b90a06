//! BGPPeers (with their Secret and BFD profile references) and BFDProfiles.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ferrolb_api::{BFDProfile, DynamicAsnMode};

use crate::error::{ConfigError, ObjectKind, Problems};
use crate::selector::{Selector, parse_list};
use crate::{NodeName, PeerName, Snapshot, by_age, first_of_each_name, name_of};

/// The hold time proposed when a peer sets neither holdTime nor keepaliveTime.
pub const DEFAULT_HOLD_TIME: Duration = Duration::from_secs(90);

/// How long a stopping speaker keeps its gracefully shut down routes by default.
pub const DEFAULT_DRAIN_TIME: Duration = Duration::from_secs(10);

/// The longest drain a BGPPeer may ask for.
pub const MAX_DRAIN_TIME: Duration = Duration::from_secs(300);

/// The greatest `ttlSecurity`: 254 hops (the TTL 255 a GTSM packet leaves with, less one per
/// hop, must stay at least 1).
pub const MAX_TTL_SECURITY_HOPS: u8 = 254;

/// What a peer's routes become before they go away on purpose (RFC 8326), defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GracefulShutdown {
    /// How long a stopping speaker keeps them before it withdraws them.
    pub drain_time: Duration,
    /// Their LOCAL_PREF on iBGP sessions.
    pub local_pref: u32,
    /// Extra copies of our AS in front of their AS path on eBGP sessions.
    pub as_path_prepend: u8,
}

impl Default for GracefulShutdown {
    fn default() -> Self {
        Self {
            drain_time: DEFAULT_DRAIN_TIME,
            local_pref: 0,
            as_path_prepend: 3,
        }
    }
}

/// The peer's AS number, fixed or learned from its OPEN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerAsn {
    /// Must be exactly this.
    Fixed(u32),
    /// Must equal our AS (iBGP).
    Internal,
    /// Must differ from our AS (eBGP).
    External,
}

/// Where the peer is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeerTarget {
    /// At this address.
    Address(IpAddr),
    /// On the other end of this interface (unnumbered).
    Interface(String),
}

/// A usable BGPPeer.
#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    /// The object's name.
    pub name: PeerName,
    /// Our AS.
    pub my_asn: u32,
    /// The peer's AS.
    pub peer_asn: PeerAsn,
    /// The AS presented instead of `my_asn`, if any.
    pub local_asn: Option<u32>,
    /// Where to connect.
    pub target: PeerTarget,
    /// Local address to connect from.
    pub source_address: Option<IpAddr>,
    /// TCP port.
    pub port: u16,
    /// Hold time to propose (zero: no keepalives).
    pub hold_time: Duration,
    /// Keepalive interval.
    pub keepalive_time: Duration,
    /// Time between connection attempts, if set.
    pub connect_time: Option<Duration>,
    /// Router ID, if set.
    pub router_id: Option<Ipv4Addr>,
    /// Nodes that peer (empty list: all).
    pub node_selectors: Vec<Selector>,
    /// The snapshot's nodes that peer.
    pub nodes: BTreeSet<NodeName>,
    /// TCP MD5 password, resolved from the Secret if one is named.
    pub password: Option<String>,
    /// BFD profile name (it exists and is usable).
    pub bfd_profile: Option<String>,
    /// Graceful restart (RFC 4724).
    pub graceful_restart: bool,
    /// Multi-hop eBGP.
    pub ebgp_multi_hop: bool,
    /// GTSM (RFC 5082): the peer's greatest distance in hops; `None`: off.
    pub ttl_security: Option<u8>,
    /// Wait for the router to connect; never dial it.
    pub passive: bool,
    /// VRF, if any.
    pub vrf: Option<String>,
    /// Negotiate both unicast families regardless of the address family.
    pub dual_stack_address_family: bool,
    /// Graceful shutdown of the routes (RFC 8326); `None`: withdraw at once.
    pub graceful_shutdown: Option<GracefulShutdown>,
}

/// A usable BFDProfile, defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BfdProfile {
    /// The object's name.
    pub name: String,
    /// Required minimum receive interval.
    pub receive_interval: Duration,
    /// Desired minimum transmit interval.
    pub transmit_interval: Duration,
    /// Detection multiplier.
    pub detect_multiplier: u8,
    /// Echo interval.
    pub echo_interval: Duration,
    /// Echo mode on.
    pub echo_mode: bool,
    /// Passive mode on.
    pub passive_mode: bool,
    /// Minimum incoming TTL for multi-hop sessions.
    pub minimum_ttl: Option<u8>,
}

/// Parses a Go duration (`90s`, `1m30s`, `1.5s`, `500ms`, `0`), as metav1.Duration accepts.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration (e.g. 90s, 1m30s, 500ms)");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

pub(crate) fn parse_bfd_profiles(
    objects: &[BFDProfile],
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<String, BfdProfile> {
    let kind = ObjectKind::BFDProfile;
    let ordered = by_age(objects, |o| &o.metadata);
    let mut out = BTreeMap::new();
    for object in first_of_each_name(kind, ordered, |o| &o.metadata, errors) {
        let name = name_of(&object.metadata);
        let spec = &object.spec;
        let mut problems = Problems::new(kind, name);
        let mut ranged =
            |value: Option<u32>, field: &str, lo: u32, hi: u32, default: u32| match value {
                None => default,
                Some(v) if (lo..=hi).contains(&v) => v,
                Some(v) => {
                    problems.error(format!("spec.{field}"), format!("{v} is outside {lo}-{hi}"));
                    default
                }
            };
        let ms = |v: u32| Duration::from_millis(u64::from(v));
        let receive_interval = ms(ranged(
            spec.receive_interval,
            "receiveInterval",
            10,
            60000,
            300,
        ));
        let transmit_interval = ms(ranged(
            spec.transmit_interval,
            "transmitInterval",
            10,
            60000,
            300,
        ));
        let echo_interval = ms(ranged(spec.echo_interval, "echoInterval", 10, 60000, 50));
        let detect_multiplier = ranged(spec.detect_multiplier, "detectMultiplier", 2, 255, 3);
        let minimum_ttl = spec
            .minimum_ttl
            .map(|t| ranged(Some(t), "minimumTtl", 1, 254, 1));
        if problems.usable() {
            out.insert(
                name.to_owned(),
                BfdProfile {
                    name: name.to_owned(),
                    receive_interval,
                    transmit_interval,
                    detect_multiplier: u8::try_from(detect_multiplier).unwrap_or(3),
                    echo_interval,
                    echo_mode: spec.echo_mode.unwrap_or(false),
                    passive_mode: spec.passive_mode.unwrap_or(false),
                    minimum_ttl: minimum_ttl.and_then(|t| u8::try_from(t).ok()),
                },
            );
        }
        errors.append(&mut problems.list);
    }
    out
}

pub(crate) fn parse_peers(
    snapshot: &Snapshot,
    bfd_profiles: &BTreeMap<String, BfdProfile>,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<PeerName, Peer> {
    let kind = ObjectKind::BGPPeer;
    let ordered = by_age(&snapshot.peers, |p| &p.metadata);
    let mut out: BTreeMap<PeerName, Peer> = BTreeMap::new();
    for object in first_of_each_name(kind, ordered, |p| &p.metadata, errors) {
        let name = name_of(&object.metadata);
        let mut problems = Problems::new(kind, name);
        let Some(peer) = parse_peer(object, snapshot, bfd_profiles, &mut problems) else {
            errors.append(&mut problems.list);
            continue;
        };
        // One session per (router, node): a second peer object for the same router on a node
        // that already peers with it would fight the first for the TCP connection.
        if let Some(other) = out.values().find(|o| {
            o.target == peer.target
                && o.port == peer.port
                && o.vrf == peer.vrf
                && (o.nodes.is_empty()
                    || peer.nodes.is_empty()
                    || !o.nodes.is_disjoint(&peer.nodes))
        }) {
            problems.error(
                "spec.peerAddress",
                format!(
                    "BGPPeer {:?} already peers with the same router from the same nodes",
                    other.name.as_str()
                ),
            );
        }
        if problems.usable() {
            out.insert(peer.name.clone(), peer);
        }
        errors.append(&mut problems.list);
    }
    out
}

fn parse_peer(
    object: &ferrolb_api::BGPPeer,
    snapshot: &Snapshot,
    bfd_profiles: &BTreeMap<String, BfdProfile>,
    problems: &mut Problems<'_>,
) -> Option<Peer> {
    let spec = &object.spec;
    let name = name_of(&object.metadata);
    if spec.my_asn == 0 {
        problems.error(
            "spec.myASN",
            "missing local ASN (myASN must be 1-4294967295)",
        );
    }
    let peer_asn = match (spec.peer_asn, spec.dynamic_asn) {
        (Some(0), None) => {
            problems.error("spec.peerASN", "peerASN must be 1-4294967295");
            None
        }
        (Some(asn), None) => Some(PeerAsn::Fixed(asn)),
        (None, Some(DynamicAsnMode::Internal)) => Some(PeerAsn::Internal),
        (None, Some(DynamicAsnMode::External)) => Some(PeerAsn::External),
        _ => {
            problems.error("spec", "exactly one of peerASN and dynamicASN must be set");
            None
        }
    };
    let ip = |text: &Option<String>, field: &str, problems: &mut Problems<'_>| {
        text.as_ref().and_then(|t| match t.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                problems.error(field, format!("{t:?} is not an IP address"));
                None
            }
        })
    };
    let address = ip(&spec.peer_address, "spec.peerAddress", problems);
    let target = match (&spec.peer_address, &spec.interface) {
        (Some(_), None) => address.map(PeerTarget::Address),
        (None, Some(ifname)) => Some(PeerTarget::Interface(ifname.clone())),
        _ => {
            problems.error(
                "spec",
                "exactly one of peerAddress and interface must be set",
            );
            None
        }
    };
    let source_address = ip(&spec.source_address, "spec.sourceAddress", problems);
    if let (Some(s), Some(a)) = (source_address, address)
        && s.is_ipv4() != a.is_ipv4()
    {
        problems.error(
            "spec.sourceAddress",
            "sourceAddress and peerAddress must be of the same address family",
        );
    }
    if spec.peer_port == 0 {
        problems.error("spec.peerPort", "port must be 1-65535");
    }
    let duration = |text: &Option<String>, field: &str, problems: &mut Problems<'_>| {
        text.as_ref().and_then(|t| match parse_go_duration(t) {
            Ok(d) => Some(d),
            Err(e) => {
                problems.error(field, e);
                None
            }
        })
    };
    let hold = duration(&spec.hold_time, "spec.holdTime", problems);
    let keepalive = duration(&spec.keepalive_time, "spec.keepaliveTime", problems);
    let connect_time = duration(&spec.connect_time, "spec.connectTime", problems);
    let (hold_time, keepalive_time) = match (hold, keepalive) {
        (Some(h), Some(k)) => (h, k),
        (Some(h), None) => (h, h / 3),
        (None, Some(k)) => (k * 3, k),
        (None, None) => (DEFAULT_HOLD_TIME, DEFAULT_HOLD_TIME / 3),
    };
    // Whole seconds, as BGP carries them.
    let hold_secs = hold_time.as_secs();
    if hold_secs != 0 && hold_secs < 3 {
        problems.error(
            if hold.is_some() {
                "spec.holdTime"
            } else {
                "spec.keepaliveTime"
            },
            format!("hold time {hold_secs}s must be 0 or at least 3s"),
        );
    }
    if keepalive_time > hold_time {
        problems.error(
            "spec.keepaliveTime",
            "keepaliveTime must not exceed holdTime",
        );
    }
    if let Some(c) = connect_time
        && (c < Duration::from_secs(1) || c > Duration::from_secs(65535) || c.subsec_nanos() != 0)
    {
        problems.error(
            "spec.connectTime",
            "connectTime must be a whole number of seconds between 1s and 65535s",
        );
    }
    let router_id = spec
        .router_id
        .as_ref()
        .and_then(|t| match t.parse::<Ipv4Addr>() {
            Ok(id) => Some(id),
            Err(_) => {
                problems.error("spec.routerID", format!("{t:?} is not an IPv4 address"));
                None
            }
        });
    let internal = match peer_asn {
        Some(PeerAsn::Fixed(asn)) => asn == spec.my_asn,
        Some(PeerAsn::Internal) => true,
        _ => false,
    };
    if spec.ebgp_multi_hop && internal {
        problems.error(
            "spec.ebgpMultiHop",
            "invalid ebgp-multihop parameter set for an ibgp peer",
        );
    }
    let ttl_security = match spec.ttl_security {
        None | Some(0) => None,
        Some(hops @ 1..=MAX_TTL_SECURITY_HOPS) => Some(hops),
        Some(hops) => {
            problems.error(
                "spec.ttlSecurity",
                format!(
                    "ttlSecurity is a number of hops from 1 to {MAX_TTL_SECURITY_HOPS}, not {hops}"
                ),
            );
            None
        }
    };
    let password = match (&spec.password, &spec.password_secret) {
        (Some(_), Some(_)) => {
            problems.error("spec", "password and passwordSecret are mutually exclusive");
            None
        }
        (Some(p), None) => Some(p.clone()),
        (None, Some(secret)) => {
            let field = "spec.passwordSecret";
            if secret
                .namespace
                .as_ref()
                .is_some_and(|ns| *ns != snapshot.namespace)
            {
                problems.error(
                    format!("{field}.namespace"),
                    format!(
                        "the Secret must be in ferrolb's namespace {:?}",
                        snapshot.namespace
                    ),
                );
                None
            } else {
                match snapshot.secrets.get(&secret.name) {
                    None => {
                        problems.transient(
                            format!("{field}.name"),
                            format!("Secret {:?} not found", secret.name),
                        );
                        None
                    }
                    Some(s) if s.type_ != "kubernetes.io/basic-auth" => {
                        problems.error(
                            format!("{field}.name"),
                            format!(
                                "Secret {:?} has type {:?}; it must be kubernetes.io/basic-auth",
                                secret.name, s.type_
                            ),
                        );
                        None
                    }
                    Some(s) => {
                        if s.password.is_none() {
                            problems.error(
                                format!("{field}.name"),
                                format!("Secret {:?} has no password key", secret.name),
                            );
                        }
                        s.password.clone()
                    }
                }
            }
        }
        (None, None) => None,
    };
    if let Some(p) = &password
        && (p.is_empty() || p.len() > 80)
    {
        problems.error("spec.password", "a TCP MD5 password must be 1-80 bytes");
    }
    if let Some(profile) = &spec.bfd_profile
        && !bfd_profiles.contains_key(profile)
    {
        let exists = snapshot
            .bfd_profiles
            .iter()
            .any(|p| name_of(&p.metadata) == profile);
        let why = if exists { "is invalid" } else { "not found" };
        problems.transient("spec.bfdProfile", format!("BFDProfile {profile:?} {why}"));
    }
    let multihop = spec.ebgp_multi_hop || ttl_security.is_some_and(|hops| hops > 1);
    if let Some(profile) = spec.bfd_profile.as_ref().and_then(|p| bfd_profiles.get(p))
        && profile.echo_mode
        && multihop
    {
        // Whether BFD crosses routers is the peer's to say, not the profile's.
        problems.warning(
            "spec.bfdProfile",
            format!(
                "BFDProfile {:?} asks for echoMode, which does not apply to multihop BFD (RFC 5883): with this peer (ebgpMultiHop, or ttlSecurity over one hop) BFD runs without echo",
                profile.name
            ),
        );
    }
    let node_selectors = parse_list(&spec.node_selectors, "spec.nodeSelectors", problems);
    let graceful_shutdown = match &spec.graceful_shutdown {
        Some(g) if g.disabled => None,
        given => {
            let given = given.clone().unwrap_or_default();
            let defaults = GracefulShutdown::default();
            let drain_time = duration(
                &given.drain_time,
                "spec.gracefulShutdown.drainTime",
                problems,
            )
            .unwrap_or(defaults.drain_time);
            if drain_time > MAX_DRAIN_TIME {
                problems.error(
                    "spec.gracefulShutdown.drainTime",
                    format!("drainTime must be at most {}s", MAX_DRAIN_TIME.as_secs()),
                );
            }
            let as_path_prepend = given.as_path_prepend.unwrap_or(defaults.as_path_prepend);
            if as_path_prepend > 10 {
                problems.error(
                    "spec.gracefulShutdown.asPathPrepend",
                    "asPathPrepend must be 0-10",
                );
            }
            Some(GracefulShutdown {
                drain_time,
                local_pref: given.local_pref.unwrap_or(defaults.local_pref),
                as_path_prepend,
            })
        }
    };
    if !problems.usable() {
        return None;
    }
    let nodes = snapshot
        .nodes
        .iter()
        .filter(|(_, labels)| crate::any_matches(&node_selectors, labels))
        .map(|(n, _)| n.clone())
        .collect();
    Some(Peer {
        name: PeerName::from(name),
        my_asn: spec.my_asn,
        peer_asn: peer_asn?,
        local_asn: spec.local_asn,
        target: target?,
        source_address,
        port: spec.peer_port,
        hold_time,
        keepalive_time,
        connect_time,
        router_id,
        node_selectors,
        nodes,
        password,
        bfd_profile: spec.bfd_profile.clone(),
        graceful_restart: spec.enable_graceful_restart,
        ebgp_multi_hop: spec.ebgp_multi_hop,
        ttl_security,
        passive: spec.passive,
        vrf: spec.vrf.clone().filter(|v| !v.is_empty()),
        dual_stack_address_family: spec.dual_stack_address_family,
        graceful_shutdown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_like_metav1_duration() {
        let cases = [
            ("90s", 90_000),
            ("1m30s", 90_000),
            ("1.5s", 1_500),
            ("500ms", 500),
            ("0", 0),
            ("0s", 0),
            ("2h", 7_200_000),
        ];
        for (text, ms) in cases {
            assert_eq!(
                parse_go_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in ["", "90", "3 days", "s", "1x", "-1s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }
}
