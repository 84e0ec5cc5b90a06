//! ferrolb's session on the fabrics network engineers run, against GoBGP, BIRD and FRR in
//! their own namespaces:
//! - sessions the router opens: a passive speaker (BGPPeer `passive: true`) gets its session
//!   from a router that dials it, and a router that restarts gets its session back at once by
//!   dialling the speaker's listener, instead of waiting for the speaker's next attempt (which
//!   the test puts a minute away);
//! - a VRF (BGPPeer `vrf`): the session's socket and the listener are bound to the named
//!   device (`SO_BINDTODEVICE`, as the kernel's VRF documentation prescribes for VRF-aware
//!   programs). This machine's kernel has no VRF driver (`CONFIG_NET_VRF` is not set, so
//!   `ip link add … type vrf` fails), so the binding is shown on plain devices instead: bound to
//!   `lo` the router is unreachable, bound to the LAN interface the session establishes, carries
//!   the route, and the router's connections after its restart reach the bound listener.
//!
//! The session and the speaker's listener (port 179, as the speaker binary opens it) run on a
//! thread in the speaker's namespace ([`SpeakerSession::start_listening`]). Needs root.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_speaker::bgp::fsm::{self, PeerAsn};
use ferrolb_speaker::bgp::session::BGP_PORT;
use ferrolb_speaker::bgp::{RouteAttrs, RouteSet, SessionConfig};
use ferrolb_tests::bgp_session::SpeakerSession;
use ferrolb_tests::l2cluster::wait_for;
use ferrolb_tests::netns::{Host, Lan, is_root};
use ferrolb_tests::routers::{PeeringLan, Router, RouterKind};

const SPEAKER_AS: u32 = 4_200_000_001;
const ROUTER_AS: u32 = 64512;
const PREFIX: &str = "198.51.100.60/32";

/// A LAN with "speaker" and "router"; the router dials the speaker (it is not passive).
struct Bed {
    _lan: Lan,
    speaker: Host,
    router: Host,
    rtr: Router,
}

impl Bed {
    fn start(kind: RouterKind) -> Self {
        let PeeringLan {
            rtr,
            speaker,
            router,
            lan,
        } = PeeringLan::start(kind, (ROUTER_AS, SPEAKER_AS), &[], |n| n.passive = false);
        Self {
            _lan: lan,
            speaker,
            router,
            rtr,
        }
    }

    /// Our session to the router; its own attempts `first_retry` apart at first.
    fn session(&self, passive: bool, first_retry: Duration) -> SpeakerSession {
        self.session_in(None, passive, first_retry)
    }

    fn session_in(
        &self,
        vrf: Option<&str>,
        passive: bool,
        first_retry: Duration,
    ) -> SpeakerSession {
        let mut fsm = fsm::Config::new(SPEAKER_AS, PeerAsn::Exact(ROUTER_AS), self.speaker.ipv4);
        fsm.passive = passive;
        fsm.backoff = fsm::Backoff {
            initial: first_retry,
            max: first_retry * 2,
        };
        let mut config = SessionConfig::new(fsm, IpAddr::V4(self.router.ipv4));
        config.vrf = vrf.map(str::to_owned);
        let routes: RouteSet = [(PREFIX.parse().expect("a prefix"), RouteAttrs::default())]
            .into_iter()
            .collect();
        SpeakerSession::start_listening(&self.speaker, config, routes, BGP_PORT)
    }

    /// Waits until both ends are Established and the router holds the route.
    async fn wait_up(&self, what: &str, session: &SpeakerSession, within: Duration) {
        let speaker_ip = IpAddr::V4(self.speaker.ipv4);
        // The router answers nothing while it starts: not up yet.
        wait_for(what, within, || async {
            let established = self.rtr.established(speaker_ip).unwrap_or(false);
            let routed = established
                && (self.rtr.routes().ok())
                    .is_some_and(|routes| routes.iter().any(|r| r.prefix.to_string() == PREFIX));
            Ok((routed && session.state().is_established()).then_some(()))
        })
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e:#}\nour state: {:?}\n{}",
                session.state(),
                self.rtr.describe()
            )
        });
    }
}

async fn a_passive_speaker_gets_its_session_from_the_router(kind: RouterKind) {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let bed = Bed::start(kind);
    let session = bed.session(true, Duration::from_secs(1));
    bed.wait_up(
        &format!("{kind} opens the session to a passive speaker and holds its route"),
        &session,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(session.counters.established(), 1);
}

async fn a_restarted_router_dials_back_without_waiting_for_our_retry(kind: RouterKind) {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let mut bed = Bed::start(kind);
    // Our own attempts: the first a minute after a failure, the next two minutes after.
    let session = bed.session(false, Duration::from_secs(60));
    bed.wait_up(
        &format!("{kind} and the speaker establish"),
        &session,
        Duration::from_secs(90),
    )
    .await;
    let before = session.counters.established();
    let restarted = Instant::now();
    bed.rtr.restart().expect("the router restarts");
    bed.wait_up(
        &format!("{kind} dials the speaker back after its restart"),
        &session,
        Duration::from_secs(45),
    )
    .await;
    eprintln!(
        "{kind}: session back {} ms after the restart began",
        restarted.elapsed().as_millis()
    );
    assert!(
        session.counters.established() > before,
        "a new session, not the old one surviving the restart"
    );
}

async fn a_session_runs_on_its_vrf_device_only(kind: RouterKind) {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let mut bed = Bed::start(kind);
    let speaker_ip = IpAddr::V4(bed.speaker.ipv4);

    // Bound to a device without a route to the router: no session.
    let outside = bed.session_in(Some("lo"), false, Duration::from_millis(500));
    let outcome = wait_for("a session bound to lo", Duration::from_secs(5), || async {
        Ok(
            (outside.state().is_established() || bed.rtr.established(speaker_ip).unwrap_or(false))
                .then_some(()),
        )
    })
    .await;
    assert!(
        outcome.is_err(),
        "{kind} established with a session bound to lo"
    );
    drop(outside);

    let inside = bed.session_in(Some("eth0"), false, Duration::from_secs(60));
    bed.wait_up(
        &format!("{kind} establishes with the session bound to eth0 and holds its route"),
        &inside,
        Duration::from_secs(90),
    )
    .await;
    // The router dials back into the listener bound to eth0 after a restart.
    let before = inside.counters.established();
    bed.rtr.restart().expect("the router restarts");
    bed.wait_up(
        &format!("{kind} dials the listener bound to eth0 after its restart"),
        &inside,
        Duration::from_secs(45),
    )
    .await;
    assert!(inside.counters.established() > before);
}

#[tokio::test]
async fn gobgp_runs_a_session_bound_to_its_vrf_device() {
    a_session_runs_on_its_vrf_device_only(RouterKind::Gobgp).await;
}

#[tokio::test]
async fn bird_runs_a_session_bound_to_its_vrf_device() {
    a_session_runs_on_its_vrf_device_only(RouterKind::Bird).await;
}

#[tokio::test]
async fn frr_runs_a_session_bound_to_its_vrf_device() {
    a_session_runs_on_its_vrf_device_only(RouterKind::Frr).await;
}

#[tokio::test]
async fn gobgp_opens_the_session_to_a_passive_speaker() {
    a_passive_speaker_gets_its_session_from_the_router(RouterKind::Gobgp).await;
}

#[tokio::test]
async fn bird_opens_the_session_to_a_passive_speaker() {
    a_passive_speaker_gets_its_session_from_the_router(RouterKind::Bird).await;
}

#[tokio::test]
async fn frr_opens_the_session_to_a_passive_speaker() {
    a_passive_speaker_gets_its_session_from_the_router(RouterKind::Frr).await;
}

#[tokio::test]
async fn gobgp_dials_back_after_a_restart() {
    a_restarted_router_dials_back_without_waiting_for_our_retry(RouterKind::Gobgp).await;
}

#[tokio::test]
async fn bird_dials_back_after_a_restart() {
    a_restarted_router_dials_back_without_waiting_for_our_retry(RouterKind::Bird).await;
}

#[tokio::test]
async fn frr_dials_back_after_a_restart() {
    a_restarted_router_dials_back_without_waiting_for_our_retry(RouterKind::Frr).await;
}
