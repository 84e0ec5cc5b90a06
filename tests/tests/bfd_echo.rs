//! BFD Echo (RFC 5880 §6.4, RFC 5881 §4) between ferrolb and FRR 8.4's `bfdd`, each end in its
//! own network namespace on one LAN, judged from FRR's own CLI (`show bfd peers json`, `show bfd
//! peers counters json`) and from our session's status and counters. FRR runs a profile with
//! `echo-mode`; each node's kernel forwarding sends the other's Echo packets back:
//! - both ends echo: FRR's Echo packets come back to it through our node, ours through FRR's,
//!   each offers the other its echo interval, and FRR's Control packets to us slow to one a
//!   second (we ask for that while echo runs);
//! - with the echo path cut in the router's forwarding only (nftables dropping forwarded UDP
//!   3785), our session goes Down with diagnostic 2, Echo Function Failed, while Control
//!   packets keep flowing both ways, and FRR hears why; with BGP on the session, BGP goes down
//!   with Cease/BFD Down as for any path failure;
//! - with IP forwarding off on our node, we offer FRR no echo and it sends none, while ours
//!   still runs;
//! - over IPv6 our Echo packets come back through FRR's forwarding as well; we offer FRR no
//!   IPv6 echo (its IPv6 Echo packets are addressed to us, for its bfdd to bounce).
//!
//! FRR's BFD session is the one its `bgpd` registers for the BGP neighbor (`neighbor … bfd
//! profile …`); where the test reads our counters, our BGP session runs without BFD and our
//! BFD session runs alone ([`NsBfd`]) next to it. Needs root (network namespaces); skipped
//! otherwise.

use std::cell::RefCell;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_config::BfdProfile;
use ferrolb_speaker::bfd::packet::{Diagnostic, State};
use ferrolb_speaker::bfd::{BfdConfig, BfdStatus};
use ferrolb_speaker::bgp::fsm::{self, DownReason, PeerAsn};
use ferrolb_speaker::bgp::{RouteAttrs, RouteSet, SessionConfig};
use ferrolb_tests::bfd_session::NsBfd;
use ferrolb_tests::bgp_session::SpeakerSession;
use ferrolb_tests::l2cluster::wait_for;
use ferrolb_tests::netns::{Host, Lan, is_root};
use ferrolb_tests::routers::{
    BfdCounters, BfdSession, BfdTimers, Neighbor, PeeringLan, Router, RouterConfig, RouterKind,
};

const SPEAKER_AS: u32 = 4_200_000_001;
const ROUTER_AS: u32 = 64512;
const ROUTE: &str = "198.51.100.52/32";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// MetalLB's default Control timers, with echo every 100 ms and five missed to fail: the
/// test machines are shared and busy, and a 150 ms echo detection time (50 ms × 3) lost to
/// a stalled scheduler now and then.
fn echo_profile() -> BfdProfile {
    BfdProfile {
        name: "echo".to_owned(),
        receive_interval: ms(300),
        transmit_interval: ms(300),
        detect_multiplier: 5,
        echo_interval: ms(100),
        echo_mode: true,
        passive_mode: false,
        minimum_ttl: None,
    }
}

/// A LAN with "speaker" and "router"; FRR on the router with BFD in echo-mode (100 ms) for
/// its BGP neighbor, the speaker, and forwarding on (it loops our Echo packets).
struct Bed {
    /// First, so FRR stops before the LAN's namespaces go.
    rtr: Router,
    speaker: Host,
    router: Host,
    _lan: Lan,
}

impl Bed {
    /// `forwarding`: whether our node forwards (and so loops FRR's Echo packets).
    fn start(forwarding: bool) -> Self {
        let PeeringLan {
            rtr,
            speaker,
            router,
            lan,
        } = PeeringLan::start(RouterKind::Frr, (ROUTER_AS, SPEAKER_AS), &[], |n| {
            n.bfd = true;
            n.bfd_timers = Some(BfdTimers {
                receive_interval: ms(300),
                transmit_interval: ms(300),
                detect_multiplier: 3,
                echo: Some(ms(100)),
            });
        });
        router
            .ns
            .sysctl("net.ipv4.ip_forward", "1")
            .expect("forwarding in the router's namespace");
        speaker
            .ns
            .sysctl("net.ipv4.ip_forward", if forwarding { "1" } else { "0" })
            .expect("forwarding in the speaker's namespace");
        Self {
            rtr,
            speaker,
            router,
            _lan: lan,
        }
    }

    fn speaker_ip(&self) -> IpAddr {
        IpAddr::V4(self.speaker.ipv4)
    }

    /// Our BGP session with FRR, with `bfd` (or none).
    fn bgp(&self, bfd: Option<BfdProfile>) -> SpeakerSession {
        let mut fsm = fsm::Config::new(SPEAKER_AS, PeerAsn::Exact(ROUTER_AS), self.speaker.ipv4);
        fsm.backoff = fsm::Backoff {
            initial: Duration::from_secs(3),
            max: Duration::from_secs(3),
        };
        let mut config = SessionConfig::new(fsm, IpAddr::V4(self.router.ipv4));
        config.bfd = bfd;
        let routes: RouteSet = [(ROUTE.parse().expect("a prefix"), RouteAttrs::default())]
            .into_iter()
            .collect();
        SpeakerSession::start(&self.speaker, config, routes)
    }

    /// Our BGP session without BFD, once established (so FRR's bgpd has registered its BFD
    /// session, with its local address), and our BFD session with echo next to it.
    async fn bgp_then_bfd(&self) -> (SpeakerSession, NsBfd) {
        let session = self.bgp(None);
        wait_for("BGP established", Duration::from_secs(60), || async {
            Ok(session.state().is_established().then_some(()))
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", self.rtr.describe()));
        let mut config = BfdConfig::new(IpAddr::V4(self.router.ipv4), &echo_profile());
        config.local = Some(self.speaker_ip());
        (session, NsBfd::start(&self.speaker.ns, config))
    }

    fn frr(&self) -> Option<BfdSession> {
        self.rtr.bfd_session(self.speaker_ip()).ok().flatten()
    }

    fn frr_counters(&self) -> BfdCounters {
        self.rtr
            .bfd_counters(self.speaker_ip())
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn report(&self, ours: &BfdStatus) -> String {
        format!(
            "ours: {ours:#?}\nFRR: {}\n{}",
            self.rtr.bfd_report().unwrap_or_else(|e| format!("{e:#}")),
            self.rtr.describe()
        )
    }

    /// Drops, in the router's forwarding only, every packet to UDP port 3785: our Echo
    /// packets no longer come back; FRR's own, and every Control packet, still pass.
    fn cut_echo_path(&self) {
        let nft = |args: &[&str]| {
            let mut cmd = vec!["nft"];
            cmd.extend_from_slice(args);
            self.router
                .ns
                .exec(&cmd)
                .expect("nft in the router's namespace");
        };
        nft(&["add", "table", "inet", "ferrolb_echo"]);
        nft(&[
            "add",
            "chain",
            "inet",
            "ferrolb_echo",
            "echo_path",
            "{ type filter hook forward priority 0; }",
        ]);
        nft(&[
            "add",
            "rule",
            "inet",
            "ferrolb_echo",
            "echo_path",
            "udp",
            "dport",
            "3785",
            "drop",
        ]);
    }
}

/// Both sessions Up, echo running on ours at 100 ms and FRR's Echo packets coming back to it.
async fn wait_echoing(bed: &Bed, bfd: &NsBfd) -> (BfdStatus, BfdSession) {
    wait_for(
        "BFD up on both sides, both echoing",
        Duration::from_secs(30),
        || async {
            let ours = bfd.status();
            let theirs = bed.frr().filter(BfdSession::is_up);
            let echoing = ours.is_up()
                && ours.session.echo_interval == Some(ms(100))
                && bfd.counters.echo_received() > 10
                && bed.frr_counters().echo_in > 10;
            Ok(theirs.filter(|_| echoing).map(|t| (ours, t)))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", bed.report(&bfd.status())))
}

#[tokio::test]
async fn frr_and_ferrolb_loop_each_others_echo_packets_and_control_slows_to_a_second() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let bed = Bed::start(true);
    let (_bgp, bfd) = bed.bgp_then_bfd().await;
    wait_echoing(&bed, &bfd).await;
    // FRR has answered the Poll that slowed its Control packets to us.
    let theirs = wait_for(
        "FRR sends us Control packets once a second",
        Duration::from_secs(10),
        || async { Ok(bed.frr().filter(|t| t.transmit_interval == Some(ms(1000)))) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", bed.report(&bfd.status())));

    // Let the Poll Sequences settle, then count three seconds of echo on both sides (ours
    // exactly; FRR's window is longer by the time its CLI takes).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let theirs_before = bed.frr_counters();
    let ours_before = snapshot(&bfd);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ours_after = snapshot(&bfd);
    let theirs_after = bed.frr_counters();
    let status = bfd.status();
    eprintln!(
        "ours: {status:#?}\nFRR: {theirs:#?}\nour counters before/after: {ours_before:?} \
         {ours_after:?}\nFRR counters before/after: {theirs_before:?} {theirs_after:?}"
    );
    let sent = ours_after.echo_sent - ours_before.echo_sent;
    let back = ours_after.echo_back - ours_before.echo_back;
    // Every 75–100 ms, never faster: at most 40 in three seconds. On a busy test machine
    // timers run late (both ends' Echo packets were seen up to 20 % later than asked), so the
    // floor is loose. All but the few in flight come back.
    assert!((15..=40).contains(&sent), "we sent {sent} Echo packets");
    assert!(
        back + 3 >= sent && back <= sent + 3,
        "{back} of {sent} came back"
    );
    let frr_sent = theirs_after.echo_out - theirs_before.echo_out;
    let frr_back = theirs_after.echo_in - theirs_before.echo_in;
    assert!(frr_sent >= 15, "FRR sent {frr_sent} Echo packets");
    assert!(
        frr_back + 3 >= frr_sent,
        "{frr_back} of FRR's {frr_sent} came back through our node"
    );
    // Control packets: FRR's to us about once a second (0.75–1 s); ours every 225–300 ms.
    let control_in = ours_after.control_in - ours_before.control_in;
    let control_out = ours_after.control_out - ours_before.control_out;
    assert!(
        (2..=4).contains(&control_in),
        "{control_in} from FRR in 3 s"
    );
    assert!(control_out >= 8, "{control_out} to FRR in 3 s");

    eprintln!("{}", bed.report(&status));
    assert!(status.is_up());
    assert_eq!(status.path_failures, 0);
    assert_eq!(status.session.required_min_rx, ms(1000));
    assert_eq!(status.session.remote_min_echo_rx, ms(100), "FRR's offer");
    assert_eq!(status.session.echo_detection_time, Some(ms(500)));
    assert_eq!(
        theirs.remote_echo_receive_interval,
        Some(ms(100)),
        "our offer"
    );
    assert_eq!(theirs.remote_receive_interval, Some(ms(1000)));
    assert_eq!(theirs.diagnostic.as_deref(), Some("ok"));
}

/// Our counters at one moment.
#[derive(Debug, Clone, Copy)]
struct Counts {
    echo_sent: u64,
    echo_back: u64,
    control_in: u64,
    control_out: u64,
}

fn snapshot(bfd: &NsBfd) -> Counts {
    Counts {
        echo_sent: bfd.counters.echo_sent(),
        echo_back: bfd.counters.echo_received(),
        control_in: bfd.counters.received(),
        control_out: bfd.counters.sent(),
    }
}

#[tokio::test]
async fn a_cut_echo_path_takes_our_session_down_with_echo_function_failed_while_control_flows() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let bed = Bed::start(true);
    let (_bgp, bfd) = bed.bgp_then_bfd().await;
    wait_echoing(&bed, &bfd).await;
    let before = bfd.status();
    bed.cut_echo_path();
    // From when the rule is in (nft has returned).
    let cut = Instant::now();
    // What our session went through meanwhile (ms, state, Echo packets back), for failures.
    let seen = RefCell::new(Vec::new());
    let down = wait_for(
        "our session goes down for the echo function",
        Duration::from_secs(5),
        || async {
            let s = bfd.status();
            seen.borrow_mut().push((
                cut.elapsed().as_millis(),
                s.state(),
                bfd.counters.echo_received(),
            ));
            Ok(s.last_change
                .filter(|t| t.from == State::Up && t.to == State::Down)
                .filter(|_| s.path_failures > before.path_failures)
                .map(|t| (t, cut.elapsed())))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", bed.report(&bfd.status())));
    let (change, took) = down;
    eprintln!("down {took:?} after the cut: {change:?}");
    assert_eq!(change.diag, Diagnostic::EchoFunctionFailed);
    assert!(change.is_path_failure());
    // 5 × 100 ms after the last Echo came back, plus the time to notice here (the exact
    // timing is the unit tests' to check).
    assert!(
        took < ms(1500),
        "took {took:?}; before the cut: {before:#?}\nafter: {:?}",
        seen.borrow()
    );

    // Control packets still flow both ways, and FRR hears why we went down.
    let (ours_before, theirs_before) = (snapshot(&bfd), bed.frr_counters());
    let theirs = wait_for(
        "FRR hears echo function failed",
        Duration::from_secs(5),
        || async {
            Ok(bed
                .frr()
                .filter(|t| t.remote_diagnostic.as_deref() == Some("echo function failed")))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", bed.report(&bfd.status())));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (ours_after, theirs_after) = (snapshot(&bfd), bed.frr_counters());
    eprintln!("FRR: {theirs:#?}\nFRR counters: {theirs_before:?} → {theirs_after:?}");
    assert!(
        ours_after.control_in > ours_before.control_in,
        "FRR's reach us"
    );
    assert!(
        theirs_after.control_in > theirs_before.control_in,
        "ours reach FRR"
    );
    assert_ne!(
        theirs.diagnostic.as_deref(),
        Some("control detection time expired"),
        "FRR never lost our Control packets"
    );
}

#[tokio::test]
async fn a_failed_echo_path_takes_our_bgp_session_down_with_cease_bfd_down() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let bed = Bed::start(true);
    let session = bed.bgp(Some(echo_profile()));
    let report = |session: &SpeakerSession| {
        format!(
            "our state: {:#?}\nFRR: {:?}\n{}",
            session.state(),
            bed.frr(),
            bed.rtr.describe()
        )
    };
    wait_for(
        "BGP established, BFD up and echoing",
        Duration::from_secs(60),
        || async {
            let state = session.state();
            let echoing = state
                .bfd
                .as_ref()
                .is_some_and(|b| b.is_up() && b.session.echo_interval.is_some());
            Ok((state.is_established() && echoing).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", report(&session)));
    let downs = session.counters.bfd_downs();
    bed.cut_echo_path();
    let (down, bfd) = wait_for(
        "our BGP session goes down for BFD's echo function",
        Duration::from_secs(5),
        || async {
            let state = session.state();
            let echo_failed = state.bfd.clone().filter(|b| {
                b.last_change
                    .is_some_and(|t| t.diag == Diagnostic::EchoFunctionFailed)
            });
            Ok(state
                .last_down
                .filter(|d| d.reason == DownReason::BfdDown)
                .filter(|_| session.counters.bfd_downs() > downs)
                .zip(echo_failed))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", report(&session)));
    eprintln!("{down:?}\n{bfd:#?}");
    // FRR's BFD goes down moments after ours (it hears our Down), so its bgpd may reset the
    // session for that before our Cease/BFD Down arrives: either way, BGP ended for BFD.
    let notified = wait_for(
        "FRR reports the session ended for BFD",
        Duration::from_secs(10),
        || async {
            let report = bed.rtr.session_report(bed.speaker_ip())?;
            let ours = report.contains(r#""lastNotificationReason":"Cease\/BFD Down""#);
            let its_own = report.contains(r#""lastResetDueTo":"BFD down received""#);
            Ok((ours || its_own).then_some(()))
        },
    )
    .await;
    notified.unwrap_or_else(|e| {
        panic!(
            "{e:#}\n{}",
            bed.rtr.session_report(bed.speaker_ip()).unwrap_or_default()
        )
    });
}

#[tokio::test]
async fn with_forwarding_off_on_our_node_we_offer_frr_no_echo_and_ours_still_runs() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let bed = Bed::start(false);
    let (_bgp, bfd) = bed.bgp_then_bfd().await;
    let theirs = wait_for(
        "BFD up, our echo running, FRR told we loop none",
        Duration::from_secs(30),
        || async {
            let ours = bfd.status();
            let running = ours.is_up() && bfd.counters.echo_received() > 10;
            Ok(bed
                .frr()
                .filter(|t| t.is_up() && t.remote_echo_receive_interval == Some(Duration::ZERO))
                .filter(|_| running))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", bed.report(&bfd.status())));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let counters = bed.frr_counters();
    eprintln!("FRR: {theirs:#?}\nFRR counters: {counters:?}");
    assert_eq!(
        counters.echo_out, 0,
        "FRR sends no Echo packets we would drop"
    );
    assert_eq!(bfd.status().path_failures, 0);
}

/// IPv6: our Echo packets are frames as for IPv4, so FRR's forwarding loops them back
/// (`net.ipv6.conf.all.forwarding` on the router); we offer FRR no IPv6 echo — FRR addresses
/// its IPv6 Echo packets to us, for its own bfdd to bounce, which ours does not — so it sends
/// none.
#[tokio::test]
async fn over_ipv6_frr_loops_our_echo_packets_and_is_offered_none() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let lan = Lan::builder()
        .host("speaker")
        .host("router")
        .build()
        .expect("LAN");
    let (speaker, router) = (lan.host("speaker"), lan.host("router"));
    let mut neighbor = Neighbor::passive(IpAddr::V6(speaker.ipv6), SPEAKER_AS);
    neighbor.bfd = true;
    neighbor.bfd_timers = Some(BfdTimers {
        receive_interval: ms(300),
        transmit_interval: ms(300),
        detect_multiplier: 3,
        echo: Some(ms(100)),
    });
    let rtr = Router::start(
        RouterKind::Frr,
        &router.ns,
        &RouterConfig {
            asn: ROUTER_AS,
            router_id: router.ipv4,
            neighbors: vec![neighbor],
            multipath: false,
        },
    )
    .expect("FRR starts");
    router
        .ns
        .sysctl("net.ipv6.conf.all.forwarding", "1")
        .expect("IPv6 forwarding in the router's namespace");
    let fsm = fsm::Config::new(SPEAKER_AS, PeerAsn::Exact(ROUTER_AS), speaker.ipv4);
    let session = SpeakerSession::start(
        speaker,
        SessionConfig::new(fsm, IpAddr::V6(router.ipv6)),
        RouteSet::default(),
    );
    wait_for("BGP established", Duration::from_secs(60), || async {
        Ok(session.state().is_established().then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", rtr.describe()));
    let mut config = BfdConfig::new(IpAddr::V6(router.ipv6), &echo_profile());
    config.local = Some(IpAddr::V6(speaker.ipv6));
    let bfd = NsBfd::start(&speaker.ns, config);
    let peer = IpAddr::V6(speaker.ipv6);
    let theirs = wait_for(
        "BFD up over IPv6, our echo back, FRR offered none",
        Duration::from_secs(30),
        || async {
            let ours = bfd.status();
            let echoing = ours.is_up()
                && ours.session.echo_interval == Some(ms(100))
                && bfd.counters.echo_received() > 10;
            Ok(rtr
                .bfd_session(peer)
                .ok()
                .flatten()
                .filter(|t| t.is_up() && t.remote_echo_receive_interval == Some(Duration::ZERO))
                .filter(|_| echoing))
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\nours: {:#?}\n{}",
            bfd.status(),
            rtr.bfd_report().unwrap_or_default()
        )
    });
    let counters = rtr.bfd_counters(peer).ok().flatten().unwrap_or_default();
    eprintln!("FRR: {theirs:#?}\nFRR counters: {counters:?}");
    assert_eq!(counters.echo_out, 0, "FRR sends us no IPv6 Echo packets");
    assert_eq!(bfd.status().path_failures, 0);
    assert!(bfd.counters.echo_received() + 3 >= bfd.counters.echo_sent());
}
