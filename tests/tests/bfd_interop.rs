//! ferrolb's BFD ([`ferrolb_speaker::bfd`]) against FRR's `bfdd` and BIRD's `protocol bfd`,
//! and against itself, each end in its own network namespace, judged from the router's own
//! CLI and from our session's status:
//! - BFD comes up on both sides of a BGP session, with the timers each side asked for agreed
//!   each way (RFC 5880 §6.8.2, §6.8.4);
//! - our side cut off without a word (its bridge port unplugged): the router's BFD notices
//!   within its detection time and the router drops our routes, far inside the 90 s hold
//!   time; our session goes down for BFD and comes back once the link does;
//! - the router's BFD falling silent while TCP still works: our session goes down at once with
//!   Cease/BFD Down (RFC 9384), and the router reports it;
//! - two ferrolb sessions over IPv6, and AdminDown on shutdown is no path failure;
//! - packets that crossed a router (TTL below 255) are dropped (RFC 5881 §5).
//!
//! Needs root (network namespaces); skipped otherwise.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_config::BfdProfile;
use ferrolb_speaker::bfd::packet::{ControlPacket, Diagnostic, Interval, State};
use ferrolb_speaker::bfd::{Bfd, BfdConfig, BfdStatus};
use ferrolb_speaker::bgp::fsm::{self, DownReason, PeerAsn};
use ferrolb_speaker::bgp::{RouteAttrs, RouteSet, SessionConfig};
use ferrolb_tests::bfd_session::NsBfd;
use ferrolb_tests::bgp_session::SpeakerSession;
use ferrolb_tests::l2cluster::wait_for;
use ferrolb_tests::netns::{Host, Lan, is_root};
use ferrolb_tests::routers::{BfdSession, BfdTimers, PeeringLan, Router, RouterKind};

const SPEAKER_AS: u32 = 4_200_000_001;
const ROUTER_AS: u32 = 64512;
const ROUTE: &str = "198.51.100.50/32";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn profile(receive: u64, transmit: u64, detect_multiplier: u8) -> BfdProfile {
    BfdProfile {
        name: "test".to_owned(),
        receive_interval: ms(receive),
        transmit_interval: ms(transmit),
        detect_multiplier,
        echo_interval: ms(50),
        echo_mode: false,
        passive_mode: false,
        minimum_ttl: None,
    }
}

/// MetalLB's defaults: 300 ms each way, three missed packets.
fn default_profile() -> BfdProfile {
    profile(300, 300, 3)
}

/// The same on the router (BIRD's own defaults differ: a multiplier of 5).
fn default_router_timers() -> Option<BfdTimers> {
    Some(BfdTimers {
        receive_interval: ms(300),
        transmit_interval: ms(300),
        detect_multiplier: 3,
        echo: None,
    })
}

fn routes() -> RouteSet {
    [(ROUTE.parse().expect("a prefix"), RouteAttrs::default())]
        .into_iter()
        .collect()
}

/// A LAN with "speaker" and "router", the router waiting for a BGP session with BFD.
struct Bed {
    lan: Lan,
    speaker: Host,
    router: Host,
    rtr: Router,
    kind: RouterKind,
}

impl Bed {
    fn start(kind: RouterKind, timers: Option<BfdTimers>) -> Self {
        let PeeringLan {
            rtr,
            speaker,
            router,
            lan,
        } = PeeringLan::start(kind, (ROUTER_AS, SPEAKER_AS), &[], |n| {
            n.bfd = true;
            n.bfd_timers = timers;
        });
        Self {
            lan,
            speaker,
            router,
            rtr,
            kind,
        }
    }

    fn speaker_ip(&self) -> IpAddr {
        IpAddr::V4(self.speaker.ipv4)
    }

    fn session_config(&self, bfd: BfdProfile) -> SessionConfig {
        self.session_config_with_backoff(bfd, ms(500))
    }

    /// With `initial` as the first wait before reconnecting.
    fn session_config_with_backoff(&self, bfd: BfdProfile, initial: Duration) -> SessionConfig {
        let mut fsm = fsm::Config::new(SPEAKER_AS, PeerAsn::Exact(ROUTER_AS), self.speaker.ipv4);
        fsm.backoff = fsm::Backoff {
            initial,
            max: initial.max(Duration::from_secs(2)),
        };
        let mut config = SessionConfig::new(fsm, IpAddr::V4(self.router.ipv4));
        config.bfd = Some(bfd);
        config
    }

    /// Waits until the router accepts BGP connections, so a first attempt does not fail.
    async fn wait_router_listening(&self) {
        wait_for(
            "the router listens on port 179",
            Duration::from_secs(30),
            || async {
                let listening = self
                    .router
                    .ns
                    .output(&["ss", "-Hltn", "sport", "=", ":179"])?;
                Ok((!listening.trim().is_empty()).then_some(()))
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", self.rtr.describe()));
    }

    /// The router's BFD session with us; `None` while it has none (or cannot be asked).
    fn router_bfd(&self) -> Option<BfdSession> {
        self.rtr.bfd_session(self.speaker_ip()).ok().flatten()
    }

    fn router_holds_our_route(&self) -> bool {
        self.rtr
            .routes()
            .is_ok_and(|routes| routes.iter().any(|r| r.prefix.to_string() == ROUTE))
    }

    /// Established, BFD Up on both sides and our route at the router.
    async fn wait_up(&self, session: &SpeakerSession) -> (BfdStatus, BfdSession) {
        let kind = self.kind;
        wait_for(
            &format!("{kind} and ferrolb: BGP established, BFD up, route held"),
            Duration::from_secs(60),
            || async {
                let state = session.state();
                let ours = state.bfd.clone().filter(|b| b.is_up());
                let theirs = self.router_bfd().filter(BfdSession::is_up);
                Ok((state.is_established() && self.router_holds_our_route())
                    .then_some(())
                    .and(ours.zip(theirs)))
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", self.report(session)))
    }

    fn report(&self, session: &SpeakerSession) -> String {
        format!(
            "our state: {:#?}\nrouter BFD: {:?}\n{}",
            session.state(),
            self.rtr.bfd_sessions(),
            self.rtr.describe()
        )
    }

    /// Unplugs the speaker from the LAN: its interface stays up, its packets go nowhere, and
    /// nobody is told.
    fn cut_speaker(&self) {
        let port = &self.speaker.interface("eth0").bridge_port;
        self.lan
            .bridge()
            .ip(&["link", "set", port, "nomaster"])
            .expect("unplugging the speaker");
    }

    fn heal_speaker(&self) {
        let port = &self.speaker.interface("eth0").bridge_port;
        self.lan
            .bridge()
            .ip(&["link", "set", port, "master", "br0"])
            .expect("plugging the speaker back");
    }

    /// Drops every BFD packet the router sends (its BFD falls silent; TCP still works).
    fn silence_router_bfd(&self) {
        let nft = |args: &[&str]| {
            let mut cmd = vec!["nft"];
            cmd.extend_from_slice(args);
            self.router
                .ns
                .exec(&cmd)
                .expect("nft in the router's namespace");
        };
        nft(&["add", "table", "inet", "ferrolb_test"]);
        nft(&[
            "add",
            "chain",
            "inet",
            "ferrolb_test",
            "out",
            "{ type filter hook output priority 0; }",
        ]);
        nft(&[
            "add",
            "rule",
            "inet",
            "ferrolb_test",
            "out",
            "udp",
            "dport",
            "3784",
            "drop",
        ]);
    }
}

/// Both sides agree on each direction's timers: ours asks for 200 ms out and 400 ms in, the
/// router 100 ms both ways with a multiplier of 5.
async fn bfd_comes_up_with_the_timers_agreed_each_way(kind: RouterKind) {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let bed = Bed::start(
        kind,
        Some(BfdTimers {
            receive_interval: ms(100),
            transmit_interval: ms(100),
            detect_multiplier: 5,
            echo: None,
        }),
    );
    let session = SpeakerSession::start(
        &bed.speaker,
        bed.session_config(profile(400, 200, 3)),
        routes(),
    );
    bed.wait_up(&session).await;
    // Our Poll Sequence (and the router's) may still be running: wait for the final values.
    let expected_ours = (ms(200), Some(ms(2000)));
    let expected_theirs = (Some(ms(400)), Some(ms(600)));
    let (ours, theirs) = wait_for(
        &format!("{kind} and ferrolb agree on the timers"),
        Duration::from_secs(10),
        || async {
            let ours = session.state().bfd.expect("BFD runs");
            let theirs = bed.router_bfd();
            let settled = (ours.session.transmit_interval, ours.session.detection_time)
                == expected_ours
                && theirs
                    .as_ref()
                    .map(|t| (t.transmit_interval, t.detection_time))
                    == Some(expected_theirs);
            Ok(settled.then_some((ours, theirs)))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", bed.report(&session)));
    eprintln!("ours: {ours:#?}\n{kind}: {theirs:#?}");
    assert!(ours.is_up());
    assert_eq!(ours.session.remote_detect_mult, Some(5));
    assert_eq!(ours.path_failures, 0);
    assert_ne!(ours.session.remote_discriminator, 0);
    assert!(session.counters.established() >= 1);
}

/// Our side disappears without a word: the router notices through BFD, not the hold timer.
async fn router_drops_our_routes_within_the_detection_time_when_we_are_cut_off(kind: RouterKind) {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let bed = Bed::start(kind, default_router_timers());
    let session = SpeakerSession::start(
        &bed.speaker,
        bed.session_config(default_profile()),
        routes(),
    );
    bed.wait_up(&session).await;
    // Both Poll Sequences done: 3 × 300 ms each way.
    let theirs = wait_for(
        "both sides at their final timers",
        Duration::from_secs(10),
        || async {
            let ours = session.state().bfd.and_then(|b| b.session.detection_time);
            let theirs = bed
                .router_bfd()
                .filter(|t| t.detection_time == Some(ms(900)));
            Ok(theirs.filter(|_| ours == Some(ms(900))))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", bed.report(&session)));
    eprintln!("{kind} BFD before the cut: {theirs:?}");

    let downs = session.counters.bfd_downs();
    let cut = Instant::now();
    bed.cut_speaker();
    // When each side noticed, polled together: the router dropping our route, and our
    // session going down for BFD.
    let (mut router_took, mut ours_took) = (None, None);
    let down = wait_for(
        &format!("{kind} drops our route and our session goes down for BFD"),
        Duration::from_secs(10),
        || {
            if router_took.is_none() && !bed.router_holds_our_route() {
                router_took = Some(cut.elapsed());
            }
            let state = session.state();
            let down = state.last_down.filter(|d| {
                d.reason == DownReason::BfdDown && session.counters.bfd_downs() > downs
            });
            if ours_took.is_none() && down.is_some() {
                ours_took = Some(cut.elapsed());
            }
            let done = router_took.is_some() && ours_took.is_some();
            async move { Ok(done.then_some((down, state.bfd))) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", bed.report(&session)));
    let (router_took, ours_took) = (
        router_took.unwrap_or_default(),
        ours_took.unwrap_or_default(),
    );
    eprintln!(
        "{kind} dropped our route {router_took:?} after the cut; we saw BFD down after \
         {ours_took:?}: {down:#?}"
    );
    // 900 ms of detection, then BGP's reaction, plus the time to ask the router's CLI.
    assert!(router_took < ms(2500), "{kind} took {router_took:?}");
    assert!(ours_took < ms(2500), "we took {ours_took:?}");
    assert_eq!(session.counters.bfd_downs(), downs + 1);
    let bfd = down.1.expect("BFD still runs");
    assert_eq!(
        bfd.last_change.map(|t| t.diag),
        Some(Diagnostic::ControlDetectionTimeExpired)
    );
    if let Some(theirs) = bed.router_bfd() {
        assert!(!theirs.is_up(), "{kind} still has BFD up: {theirs:?}");
    }

    // Plugged back, everything returns: BFD, BGP, the route.
    bed.heal_speaker();
    bed.wait_up(&session).await;
    assert!(session.counters.established() >= 2);
}

/// The router's BFD falls silent while its BGP still listens: our BFD detects it and our
/// session sends Cease/BFD Down at once.
async fn router_bfd_going_silent_takes_our_session_down_with_cease_bfd_down(kind: RouterKind) {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let bed = Bed::start(kind, default_router_timers());
    bed.wait_router_listening().await;
    // Slow to reconnect, so the session can be stopped before it does: BIRD forgets why a
    // session ended once it is up again.
    let mut session = SpeakerSession::start(
        &bed.speaker,
        bed.session_config_with_backoff(default_profile(), Duration::from_secs(3)),
        routes(),
    );
    bed.wait_up(&session).await;
    let downs = session.counters.bfd_downs();
    let silenced = Instant::now();
    bed.silence_router_bfd();
    let down = wait_for(
        "our session goes down for BFD",
        Duration::from_secs(10),
        || async {
            let state = session.state();
            let timed_out = state
                .bfd
                .as_ref()
                .and_then(|b| b.last_change)
                .is_some_and(|t| {
                    t.is_path_failure() && t.diag == Diagnostic::ControlDetectionTimeExpired
                });
            Ok(state
                .last_down
                .filter(|d| d.reason == DownReason::BfdDown)
                .filter(|_| timed_out && session.counters.bfd_downs() > downs))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", bed.report(&session)));
    let took = silenced.elapsed();
    session.shutdown();
    eprintln!("down {took:?} after {kind}'s BFD went silent: {down:?}");
    assert!(took < ms(2000), "took {took:?}");
    let report = wait_for(
        &format!("{kind} reports our Cease/BFD Down"),
        Duration::from_secs(10),
        || async {
            let report = bed.rtr.session_report(bed.speaker_ip())?;
            Ok(shows_cease_bfd_down(kind, &report).then_some(report))
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\n{}",
            bed.rtr.session_report(bed.speaker_ip()).unwrap_or_default()
        )
    });
    eprintln!("{kind} reports:\n{report}");
}

/// Whether the router's report on its BGP session names the Cease/BFD Down we sent.
fn shows_cease_bfd_down(kind: RouterKind, report: &str) -> bool {
    match kind {
        RouterKind::Frr => report.contains(r#""lastNotificationReason":"Cease\/BFD Down""#),
        // BIRD 2.0.12 predates RFC 9384 and shows the code and subcode.
        RouterKind::Bird => report.contains("Last error:       Received: Unknown error 6.10"),
        RouterKind::Gobgp => false,
    }
}

#[tokio::test]
async fn frr_and_ferrolb_bring_bfd_up_with_the_timers_agreed_each_way() {
    bfd_comes_up_with_the_timers_agreed_each_way(RouterKind::Frr).await;
}

#[tokio::test]
async fn bird_and_ferrolb_bring_bfd_up_with_the_timers_agreed_each_way() {
    bfd_comes_up_with_the_timers_agreed_each_way(RouterKind::Bird).await;
}

#[tokio::test]
async fn frr_drops_our_routes_within_the_detection_time_when_we_are_cut_off() {
    router_drops_our_routes_within_the_detection_time_when_we_are_cut_off(RouterKind::Frr).await;
}

#[tokio::test]
async fn bird_drops_our_routes_within_the_detection_time_when_we_are_cut_off() {
    router_drops_our_routes_within_the_detection_time_when_we_are_cut_off(RouterKind::Bird).await;
}

#[tokio::test]
async fn frr_bfd_going_silent_takes_our_session_down_with_cease_bfd_down() {
    router_bfd_going_silent_takes_our_session_down_with_cease_bfd_down(RouterKind::Frr).await;
}

#[tokio::test]
async fn bird_bfd_going_silent_takes_our_session_down_with_cease_bfd_down() {
    router_bfd_going_silent_takes_our_session_down_with_cease_bfd_down(RouterKind::Bird).await;
}

#[tokio::test]
async fn two_ferrolb_sessions_come_up_over_ipv6_and_admin_down_is_no_path_failure() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let lan = Lan::builder().host("a").host("b").build().expect("LAN");
    let (a, b) = (lan.host("a"), lan.host("b"));
    let config = |local: &Host, peer: &Host| {
        let mut c = BfdConfig::new(IpAddr::V6(peer.ipv6), &profile(100, 100, 3));
        c.local = Some(IpAddr::V6(local.ipv6));
        c
    };
    let mut ours = NsBfd::start(&a.ns, config(a, b));
    let theirs = NsBfd::start(&b.ns, config(b, a));
    let up = wait_for("both ends up", Duration::from_secs(10), || async {
        let (x, y) = (ours.status(), theirs.status());
        let settled = x.is_up()
            && y.is_up()
            && x.session.transmit_interval == ms(100)
            && y.session.detection_time == Some(ms(300));
        Ok(settled.then_some((x, y)))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{:#?}\n{:#?}", ours.status(), theirs.status()));
    eprintln!("{up:#?}");
    assert_eq!(up.0.local.map(|l| l.ip()), Some(IpAddr::V6(a.ipv6)));
    assert!(ours.counters.received() > 0 && theirs.counters.sent() > 0);
    assert_eq!(theirs.counters.dropped_ttl(), 0);

    ours.shutdown();
    let down = wait_for(
        "the other end hears AdminDown",
        Duration::from_secs(5),
        || async {
            let s = theirs.status();
            Ok((s.state() == State::Down).then_some(s))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{:#?}", theirs.status()));
    let change = down.last_change.expect("a change");
    assert_eq!(change.diag, Diagnostic::NeighborSignaledDown);
    assert_eq!(change.remote, State::AdminDown);
    assert_eq!(
        down.path_failures, 0,
        "AdminDown is not a path failure: {down:#?}"
    );
}

#[tokio::test]
async fn ferrolb_drops_bfd_packets_that_crossed_a_router() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let lan = Lan::builder()
        .host("speaker")
        .host("sender")
        .build()
        .expect("LAN");
    let (speaker, sender) = (lan.host("speaker"), lan.host("sender"));
    let peer = IpAddr::V4(sender.ipv4);
    let mut config = BfdConfig::new(peer, &default_profile());
    // Passive: the session only answers, so what it hears is all that moves it.
    config.timers.passive = true;
    let session = NsBfd::start(&speaker.ns, config);
    let hello = ControlPacket {
        diag: Diagnostic::None,
        state: State::Down,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 0x5eed,
        your_discriminator: 0,
        desired_min_tx: Interval(1_000_000),
        required_min_rx: Interval(300_000),
        required_min_echo_rx: Interval::ZERO,
    };
    let target = (speaker.ipv4, 3784);
    let send = |ttl: u32| {
        sender
            .ns
            .run(move || {
                let socket = std::net::UdpSocket::bind("0.0.0.0:49999")?;
                socket.set_ttl(ttl)?;
                socket.send_to(&hello.encode(), target).map(drop)
            })
            .expect("a thread in the sender's namespace")
            .expect("sent");
    };
    send(254);
    wait_for(
        "the TTL 254 packet is dropped",
        Duration::from_secs(5),
        || async { Ok((session.counters.dropped_ttl() == 1).then_some(())) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{:#?}", session.status()));
    assert_eq!(session.counters.received(), 0);
    assert_eq!(session.status().state(), State::Down);
    assert_eq!(session.counters.sent(), 0, "a passive session stays silent");

    send(255);
    let init = wait_for(
        "the TTL 255 packet is taken",
        Duration::from_secs(5),
        || async {
            let s = session.status();
            Ok((s.state() == State::Init).then_some(s))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{:#?}", session.status()));
    assert_eq!(init.session.remote_discriminator, 0x5eed);
    assert_eq!(session.counters.dropped_ttl(), 1);
    assert_eq!(session.counters.received(), 1);
}

#[test]
fn a_session_restarted_at_once_with_the_same_peer_starts_on_the_same_runtime() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let lan = Lan::builder().host("a").host("b").build().expect("LAN");
    let config = BfdConfig::new(IpAddr::V4(lan.host("b").ipv4), &default_profile());
    let outcome = lan
        .host("a")
        .ns
        .run(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let first = Bfd::spawn(config.clone())?;
                // Still running its AdminDown while the next one starts.
                let stopping = first.shutdown();
                let second = Bfd::spawn(config.clone())?;
                let duplicate = Bfd::spawn(config.clone()).map(drop);
                stopping.await;
                second.shutdown().await;
                // The last session is gone; the receive socket is taken over by the next.
                let third = Bfd::spawn(config)?;
                third.shutdown().await;
                Ok::<_, ferrolb_speaker::bfd::BfdError>(duplicate)
            })
        })
        .expect("a thread in the namespace");
    let duplicate = outcome.expect("every restart starts");
    assert!(
        matches!(
            duplicate,
            Err(ferrolb_speaker::bfd::BfdError::DuplicatePeer { .. })
        ),
        "a second session with the same peer is refused: {duplicate:?}"
    );
}
