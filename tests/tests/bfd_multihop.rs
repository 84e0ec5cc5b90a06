//! Multihop BFD (RFC 5883) under an `ebgpMultiHop` BGP session, against FRR's `bfdd` and BIRD
//! (GoBGP has no BFD), each in its own namespace: with the router's neighbor multihop too,
//! BGP establishes, BFD comes Up on both sides — ours only hears port 4784 for this session, so
//! Up means the router's packets came there, with a TTL at least the profile's `minimumTtl` —
//! and FRR says its session is multihop. Then the speaker is cut off without a word: the
//! router's BFD drops it within the detection time and our session goes down for BFD, far
//! inside the 90 s hold time.
//!
//! Both ends sit on one LAN: RFC 5883 needs no router in between, only the port and the TTL
//! rule; the single-hop suite (`bfd_interop.rs`) covers the rest. Needs root.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_config::BfdProfile;
use ferrolb_speaker::bgp::fsm::{self, DownReason, PeerAsn};
use ferrolb_speaker::bgp::{RouteAttrs, RouteSet, SessionConfig};
use ferrolb_tests::bgp_session::SpeakerSession;
use ferrolb_tests::l2cluster::wait_for;
use ferrolb_tests::netns::{Host, Lan, is_root};
use ferrolb_tests::routers::{BfdSession, BfdTimers, PeeringLan, Router, RouterKind};

const SPEAKER_AS: u32 = 4_200_000_001;
const ROUTER_AS: u32 = 64512;
const ROUTE: &str = "198.51.100.51/32";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The LAN, the router (its neighbor multihop with BFD) and our multihop session with BFD
/// accepting packets from `min_ttl` up.
struct Bed {
    lan: Lan,
    speaker: Host,
    rtr: Router,
    session: SpeakerSession,
}

impl Bed {
    fn start(kind: RouterKind, min_ttl: u8) -> Self {
        let PeeringLan {
            rtr,
            speaker,
            router,
            lan,
        } = PeeringLan::start(kind, (ROUTER_AS, SPEAKER_AS), &[], |n| {
            n.bfd = true;
            n.multihop = true;
            n.bfd_timers = Some(BfdTimers {
                receive_interval: ms(300),
                transmit_interval: ms(300),
                detect_multiplier: 3,
                echo: None,
            });
        });

        let mut fsm = fsm::Config::new(SPEAKER_AS, PeerAsn::Exact(ROUTER_AS), speaker.ipv4);
        fsm.backoff = fsm::Backoff {
            initial: ms(500),
            max: Duration::from_secs(2),
        };
        let mut config = SessionConfig::new(fsm, IpAddr::V4(router.ipv4));
        config.ebgp_multihop = true;
        config.bfd = Some(BfdProfile {
            name: "multihop".to_owned(),
            receive_interval: ms(300),
            transmit_interval: ms(300),
            detect_multiplier: 3,
            echo_interval: ms(50),
            echo_mode: false,
            passive_mode: false,
            minimum_ttl: Some(min_ttl),
        });
        let routes: RouteSet = [(ROUTE.parse().expect("a prefix"), RouteAttrs::default())]
            .into_iter()
            .collect();
        let session = SpeakerSession::start(&speaker, config, routes);
        Self {
            lan,
            speaker,
            rtr,
            session,
        }
    }

    fn report(&self) -> String {
        format!(
            "our state: {:#?}\nrouter BFD: {:?}\n{}",
            self.session.state(),
            self.rtr.bfd_sessions(),
            self.rtr.describe()
        )
    }

    /// BGP established and BFD Up on both sides: the router's view of BFD.
    async fn wait_up(&self, what: &str, within: Duration) -> anyhow::Result<BfdSession> {
        let speaker_ip = IpAddr::V4(self.speaker.ipv4);
        wait_for(what, within, || async {
            let state = self.session.state();
            let ours_up = state.bfd.as_ref().is_some_and(|b| b.is_up());
            let theirs =
                (self.rtr.bfd_session(speaker_ip).ok().flatten()).filter(BfdSession::is_up);
            Ok((state.is_established() && ours_up)
                .then_some(())
                .and(theirs))
        })
        .await
    }
}

async fn multihop_bfd_comes_up_and_detects_a_cut(kind: RouterKind, min_ttl: u8) {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let bed = Bed::start(kind, min_ttl);
    let (lan, speaker, session) = (&bed.lan, &bed.speaker, &bed.session);
    let report = || bed.report();
    let theirs = bed
        .wait_up(
            &format!("{kind} and ferrolb: multihop BGP established, BFD up both sides"),
            Duration::from_secs(60),
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", report()));
    assert_ne!(theirs.multihop, Some(false), "{kind} runs it single-hop");
    if kind == RouterKind::Frr {
        assert_eq!(
            theirs.multihop,
            Some(true),
            "FRR says whether it is multihop"
        );
    }

    // Cut off without a word: the bridge port goes, the interface stays up.
    let port = &speaker.interface("eth0").bridge_port;
    lan.bridge()
        .ip(&["link", "set", port, "nomaster"])
        .expect("unplugging the speaker");
    let cut = Instant::now();
    let down = wait_for(
        "our session goes down for BFD",
        Duration::from_secs(10),
        || async {
            let state = session.state();
            Ok(state
                .last_down
                .filter(|d| d.reason == DownReason::BfdDown)
                .map(|_| cut.elapsed()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", report()));
    eprintln!(
        "{kind}: multihop BFD took our session down {} ms after the cut",
        down.as_millis()
    );
    assert!(down < Duration::from_secs(3), "{kind}: {down:?}");
}

/// FRR sends multihop BFD with TTL 255: the LAN's one hop keeps it at 255, so FRR's own
/// default minimum (254) is met.
#[tokio::test]
async fn frr_runs_multihop_bfd_with_an_ebgp_multihop_session() {
    multihop_bfd_comes_up_and_detects_a_cut(RouterKind::Frr, 254).await;
}

/// BIRD sends multihop BFD with the system's default TTL (64), which RFC 5883 allows: a
/// `minimumTtl` of 64 takes it.
#[tokio::test]
async fn bird_runs_multihop_bfd_with_an_ebgp_multihop_session() {
    multihop_bfd_comes_up_and_detects_a_cut(RouterKind::Bird, 64).await;
}

/// The same BIRD packets under a `minimumTtl` of 254 are dropped: BFD never comes Up (and BGP,
/// which BFD never held back, stays established).
#[tokio::test]
async fn bird_multihop_bfd_below_the_minimum_ttl_is_dropped() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let bed = Bed::start(RouterKind::Bird, 254);
    let outcome = bed
        .wait_up("BFD up despite the minimum TTL", Duration::from_secs(10))
        .await;
    assert!(outcome.is_err(), "came up: {}", bed.report());
    let state = bed.session.state();
    assert!(state.is_established(), "{}", bed.report());
    assert!(
        state.bfd.as_ref().is_some_and(|b| !b.is_up()),
        "{}",
        bed.report()
    );
}
