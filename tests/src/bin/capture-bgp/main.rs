//! Captures the BGP messages GoBGP, BIRD and FRR really send, as test vectors for the codec
//! (`bgp/src/packet/tests/captured/`).
//!
//! For each router, two sessions, each on a LAN of two namespaces: `capture` (192.0.2.1) and
//! `router` (192.0.2.2). The router runs passive with `capture` as its eBGP neighbor and
//! originates three routes with MED, COMMUNITIES and LARGE_COMMUNITY, two IPv4 and one IPv6. In
//! the first session both sides have the 4-octet AS capability (AS 4200000001 against the
//! router's 64512), as with ferrolb; in the second we do not (AS 65001 against 4200000002), so
//! the router sends AS_TRANS and AS4_PATH (`<router>-two-octet.hex`).
//!
//! This tool plays a minimal BGP peer on a plain TCP socket in `capture`: it sends its own OPEN
//! and KEEPALIVEs (built with `ferrolb_bgp::packet`) and records every byte the router sends,
//! cut into messages by the length in each 19-octet header — never decoded and re-encoded. A
//! session goes through these phases, each recorded under its name:
//!
//! - `open`: the router's OPEN and its first KEEPALIVE;
//! - `announce`: the UPDATEs of its routes and an End-of-RIB per family;
//! - `re-announce`: what answers our ROUTE-REFRESH for IPv4 unicast (with enhanced route refresh,
//!   RFC 7313, between a Begin- and an End-of-RIB-Refresh ROUTE-REFRESH);
//! - `refresh-request`: the ROUTE-REFRESH the router sends when told to refresh inbound (BIRD
//!   and FRR; GoBGP never sends one);
//! - `withdraw`: the UPDATEs after the router stops originating one IPv4 and the IPv6 route;
//! - `shutdown`: its Cease / Administrative Shutdown NOTIFICATION, with a shutdown message.
//!
//! Later KEEPALIVEs are identical to the first and timing-dependent, so they are not recorded.
//! GoBGP sends its routes in an order that changes from run to run, so within a phase the file
//! groups messages by address family and sorts the routes between two End-of-RIB or
//! ROUTE-REFRESH markers by prefix; nothing moves past a marker. The routers run in a UTS
//! namespace of this process with a fixed host name, so the host name they announce (GoBGP's
//! and FRR's FQDN capability) does not depend on the machine.
//!
//! Usage (root, for the namespaces): `capture-bgp [--router gobgp|bird|frr]… [--out DIR]`; the
//! default is all three routers, written to `bgp/src/packet/tests/captured/<router>.hex` and
//! `<router>-two-octet.hex`.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ferrolb_bgp::packet::{
    AfiSafi, Capability, Community, Family, GracefulRestart, GracefulRestartFamily, LargeCommunity,
    Message, Open, Origin, RouteRefresh, SessionContext,
};
use ferrolb_tests::netns::{Lan, is_root};
use ferrolb_tests::routers::{Neighbor, OriginatedRoute, Router, RouterConfig, RouterKind};
use ipnet::IpNet;

mod peer;
mod transcript;

use peer::Peer;
use transcript::{Phase, Transcript, decoded};

/// The two sessions captured with each router.
const SESSIONS: [Session; 2] = [
    // What ferrolb negotiates: 4-octet ASNs on both sides.
    Session {
        file_suffix: "",
        capture_as: 4_200_000_001,
        router_as: 64512,
        four_octet_as: true,
    },
    // An old speaker without the 4-octet AS capability, and a router whose ASN needs four
    // octets: AS_TRANS in its OPEN and AS_PATH, its real ASN in AS4_PATH (RFC 6793 §4.2.2).
    Session {
        file_suffix: "-two-octet",
        capture_as: 65001,
        router_as: 4_200_000_002,
        four_octet_as: false,
    },
];
const HOLD_TIME: u16 = 90;
const SHUTDOWN_MESSAGE: &str = "ferrolb capture done";
/// How long one phase may take: routers batch UPDATEs for up to a few seconds.
pub(crate) const PHASE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long without a message ends a phase whose end nothing on the wire marks.
const QUIET: Duration = Duration::from_secs(3);
/// Capability code of enhanced route refresh (RFC 7313), which our codec keeps as unknown.
const ENHANCED_ROUTE_REFRESH: u8 = 70;

fn prefix(s: &str) -> IpNet {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn large(global_admin: u32, local_data1: u32, local_data2: u32) -> LargeCommunity {
    LargeCommunity {
        global_admin,
        local_data1,
        local_data2,
    }
}

/// What every router originates; `bgp/src/packet/tests/captured/sessions.rs` states the same.
fn routes() -> Vec<OriginatedRoute> {
    vec![
        OriginatedRoute {
            prefix: prefix("198.51.100.0/24"),
            origin: Origin::Igp,
            med: Some(50),
            communities: vec![Community::new(64512, 100), Community::new(64512, 200)],
            large_communities: vec![large(64512, 1, 2)],
        },
        OriginatedRoute {
            prefix: prefix("203.0.113.128/25"),
            origin: Origin::Incomplete,
            med: None,
            communities: vec![Community::new(64512, 300)],
            large_communities: vec![large(64512, 3, 4), large(4_200_000_001, 5, 6)],
        },
        OriginatedRoute {
            prefix: prefix("2001:db8:100::/48"),
            origin: Origin::Igp,
            med: Some(60),
            communities: vec![Community::new(64512, 600)],
            large_communities: vec![large(64512, 6, 6)],
        },
    ]
}

/// The routes withdrawn in the `withdraw` phase.
fn withdrawn() -> [IpNet; 2] {
    [prefix("203.0.113.128/25"), prefix("2001:db8:100::/48")]
}

/// How one session differs from the other.
#[derive(Clone, Copy, Debug)]
struct Session {
    /// Appended to the router's name for the file name.
    file_suffix: &'static str,
    /// Our ASN.
    capture_as: u32,
    /// The router's ASN.
    router_as: u32,
    /// Whether our OPEN carries the 4-octet AS capability.
    four_octet_as: bool,
}

struct Args {
    routers: Vec<RouterKind>,
    out: PathBuf,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut routers = Vec::new();
    // The workspace holds this crate (`tests/`) and the codec's (`bgp/`).
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the tests crate is in a workspace")?;
    let mut out = workspace.join("bgp/src/packet/tests/captured");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--router" => routers.push(value()?.parse().map_err(anyhow::Error::msg)?),
            "--out" => out = value()?.into(),
            other => {
                bail!("unknown argument {other}; usage: capture-bgp [--router R]… [--out DIR]")
            }
        }
    }
    if routers.is_empty() {
        routers = RouterKind::ALL.to_vec();
    }
    Ok(Args { routers, out })
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    if !is_root() {
        bail!("needs root (network namespaces)");
    }
    // Before any thread exists, so that every thread and child inherits it.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUTS).context("unshare(CLONE_NEWUTS)")?;
    std::fs::create_dir_all(&args.out)?;
    for kind in args.routers {
        for session in SESSIONS {
            let (version, transcript) = capture(kind, session)
                .with_context(|| format!("capturing {kind}{}", session.file_suffix))?;
            let file = args.out.join(format!("{kind}{}.hex", session.file_suffix));
            std::fs::write(&file, transcript.render(&version))?;
            println!(
                "{version}: {} messages -> {}",
                transcript.len(),
                file.display()
            );
        }
    }
    Ok(())
}

/// Runs one router and records its side of a session.
fn capture(kind: RouterKind, session: Session) -> anyhow::Result<(String, Transcript)> {
    nix::unistd::sethostname(format!("{kind}-router")).context("sethostname")?;
    let lan = Lan::builder().host("capture").host("router").build()?;
    let (capture, router_host) = (lan.host("capture"), lan.host("router"));
    let mut neighbor = Neighbor::passive(IpAddr::V4(capture.ipv4), session.capture_as);
    neighbor.graceful_restart = true;
    let mut router = Router::start(
        kind,
        &router_host.ns,
        &RouterConfig {
            asn: session.router_as,
            router_id: router_host.ipv4,
            neighbors: vec![neighbor],
            multipath: false,
        },
    )?;
    router.originate(&routes())?;
    let version = router.version()?;

    let target = SocketAddr::new(IpAddr::V4(router_host.ipv4), 179);
    let stream = capture.ns.run(move || connect(target))??;
    let mut peer = Peer::new(stream)?;
    let mut transcript = Transcript::default();
    let ours = our_open(session, capture.ipv4);
    let result = run_session(&mut peer, &mut router, ours, &mut transcript);
    if let Err(e) = result {
        bail!(
            "{e:#}\nrecorded so far:\n{}\nrouter:\n{}",
            transcript.render(&version),
            router.describe()
        );
    }
    Ok((version, transcript))
}

/// Connects to the router, retrying while it is not listening yet.
fn connect(target: SocketAddr) -> anyhow::Result<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match TcpStream::connect_timeout(&target, Duration::from_secs(2)) {
            Ok(stream) => return Ok(stream),
            Err(e) if Instant::now() > deadline => {
                return Err(e).with_context(|| format!("connecting to {target}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Our OPEN: what ferrolb's speaker sends, plus enhanced route refresh so that BIRD and FRR
/// frame their answer to our ROUTE-REFRESH, and graceful restart so that every router sends
/// End-of-RIB; without the 4-octet AS capability when the session is to be a 2-octet one.
fn our_open(session: Session, bgp_id: Ipv4Addr) -> Open {
    let family = |afi_safi| GracefulRestartFamily {
        afi_safi,
        forwarding_preserved: false,
    };
    let mut open = Open::new(
        session.capture_as,
        HOLD_TIME,
        bgp_id,
        vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::Unknown {
                code: ENHANCED_ROUTE_REFRESH,
                value: Vec::new(),
            },
            Capability::GracefulRestart(GracefulRestart {
                restart_state: false,
                notification: false,
                restart_time: 120,
                families: vec![family(AfiSafi::IPV4_UNICAST), family(AfiSafi::IPV6_UNICAST)],
            }),
        ],
    );
    if session.four_octet_as {
        open.capabilities
            .push(Capability::FourOctetAs(session.capture_as));
    }
    open
}

fn run_session(
    peer: &mut Peer,
    router: &mut Router,
    ours: Open,
    transcript: &mut Transcript,
) -> anyhow::Result<()> {
    let neighbor = IpAddr::V4(ours.bgp_id);
    peer.send(&Message::Open(ours.clone()))?;

    // open: the router's OPEN, then its KEEPALIVE once it has ours.
    let bytes = peer.expect_message()?;
    if bytes.get(18) != Some(&1) {
        bail!("the router's first message is not an OPEN: {bytes:02x?}");
    }
    let open = decoded(&bytes, &SessionContext::default());
    transcript.push(Phase::Open, open.as_ref(), bytes);
    let Some(Message::Open(theirs)) = open else {
        bail!("cannot go on without the router's OPEN");
    };
    peer.ctx = SessionContext {
        four_octet_as: theirs.four_octet_as().is_some() && ours.four_octet_as().is_some(),
        families: theirs.families().intersection(ours.families()),
    };
    let enhanced_refresh = theirs
        .capabilities
        .iter()
        .any(|c| matches!(c, Capability::Unknown { code, .. } if *code == ENHANCED_ROUTE_REFRESH));
    peer.send(&Message::Keepalive)?;
    peer.keepalive_every = Duration::from_secs(u64::from(HOLD_TIME.min(theirs.hold_time) / 3));
    let bytes = peer.expect_message()?;
    if bytes.get(18) != Some(&4) {
        bail!("the router's answer to our KEEPALIVE is not a KEEPALIVE: {bytes:02x?}");
    }
    transcript.push(Phase::Open, None, bytes);

    // announce: every originated route and an End-of-RIB per negotiated family.
    let originated: BTreeSet<IpNet> = routes().iter().map(|r| r.prefix).collect();
    let mut announced = BTreeSet::new();
    let mut eor = BTreeSet::new();
    let families = peer.ctx.families;
    peer.record_phase(transcript, Phase::Announce, |m, _| {
        if let Some(Message::Update(u)) = m {
            announced.extend(u.announced().copied());
            eor.extend(u.end_of_rib_family());
        }
        originated.is_subset(&announced) && families.iter().all(|f| eor.contains(&f))
    })?;

    // re-announce: ask for IPv4 unicast again.
    peer.send(&Message::RouteRefresh(RouteRefresh {
        afi_safi: AfiSafi::IPV4_UNICAST,
        subtype: 0,
    }))?;
    let ipv4: BTreeSet<IpNet> = originated
        .iter()
        .filter(|p| Family::of(p) == Family::Ipv4Unicast)
        .copied()
        .collect();
    let mut again = BTreeSet::new();
    let mut ipv4_eor = false;
    let mut last_at = Instant::now();
    peer.record_phase(transcript, Phase::ReAnnounce, |m, now| {
        match m {
            // End-of-RIB-Refresh (RFC 7313 §4) closes the answer.
            Some(Message::RouteRefresh(rr)) if rr.subtype == 2 => return true,
            Some(Message::Update(u)) => {
                again.extend(u.announced().copied());
                ipv4_eor |= u.end_of_rib_family() == Some(Family::Ipv4Unicast);
            }
            _ => {}
        }
        if m.is_some() {
            last_at = now;
        }
        // Without enhanced route refresh nothing marks the end: the routes, then an
        // End-of-RIB if the router sends one after a refresh, or a quiet spell.
        let quiet = now >= last_at + QUIET;
        !enhanced_refresh && ipv4.is_subset(&again) && (ipv4_eor || quiet)
    })?;

    // refresh-request: the router asks us for ours, per family.
    if router.request_route_refresh(neighbor)? {
        let mut asked: BTreeSet<AfiSafi> = BTreeSet::new();
        let mut first_at = None;
        peer.record_phase(transcript, Phase::RefreshRequest, |m, now| {
            if let Some(Message::RouteRefresh(rr)) = m {
                asked.insert(rr.afi_safi);
                first_at.get_or_insert(now);
            }
            let all = families.iter().all(|f| asked.contains(&f.afi_safi()));
            let waited = first_at.is_some_and(|t: Instant| now >= t + QUIET);
            all || waited
        })?;
    }

    // withdraw: the router stops originating one IPv4 and the IPv6 route.
    let kept: Vec<OriginatedRoute> = routes()
        .into_iter()
        .filter(|r| !withdrawn().contains(&r.prefix))
        .collect();
    router.originate(&kept)?;
    let expected: BTreeSet<IpNet> = withdrawn().into_iter().collect();
    let mut gone = BTreeSet::new();
    peer.record_phase(transcript, Phase::Withdraw, |m, _| {
        if let Some(Message::Update(u)) = m {
            gone.extend(u.withdrawals().copied());
        }
        expected.is_subset(&gone)
    })?;

    // shutdown: Cease / Administrative Shutdown with our message.
    router.shut_down_session(neighbor, SHUTDOWN_MESSAGE)?;
    peer.record_phase(transcript, Phase::Shutdown, |m, _| {
        matches!(m, Some(Message::Notification(_)))
    })?;
    Ok(())
}
