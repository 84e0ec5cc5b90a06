//! ferrolb's own BGP session ([`ferrolb_speaker::bgp::Session`]) against GoBGP, BIRD and FRR,
//! each in its own network namespace, judged from the router's own CLI: the session comes up,
//! the routes arrive with the right next hop, AS path, communities, large communities and (on
//! iBGP) LOCAL_PREF, IPv6 prefixes ride the IPv4 session with the speaker's IPv6 address as
//! next hop, a removed route is withdrawn, TCP MD5 works with the right key and not with a
//! wrong one, and `shutdown()` takes the session down at the router.
//!
//! The session runs on a current-thread runtime on a thread inside the speaker's namespace
//! ([`SpeakerSession`]), so its sockets live there. Needs root (network namespaces); skipped
//! otherwise.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use ferrolb_speaker::bgp::fsm::{self, PeerAsn};
use ferrolb_speaker::bgp::packet::{Community, LargeCommunity, MessageType};
use ferrolb_speaker::bgp::{RouteAttrs, RouteSet, SessionConfig};
use ferrolb_tests::bgp_session::{SHUTDOWN_MESSAGE, SpeakerSession};
use ferrolb_tests::l2cluster::wait_for;
use ferrolb_tests::netns::{Host, Lan, is_root};
use ferrolb_tests::routers::{Neighbor, PeeringLan, Route, Router, RouterKind};
use ipnet::IpNet;

const SPEAKER_AS: u32 = 4_200_000_001;
const ROUTER_AS: u32 = 64512;

/// A LAN with "speaker" and "router", the router started passive with the speaker as neighbor.
struct Bed {
    _lan: Lan,
    speaker: Host,
    router: Host,
    rtr: Router,
}

impl Bed {
    fn start(kind: RouterKind, router_as: u32, password: Option<&str>) -> Self {
        Self::start_with(kind, router_as, |n| {
            n.password = password.map(str::to_owned)
        })
    }

    /// The same, with the router's side of the session set by `neighbor`.
    fn start_with(kind: RouterKind, router_as: u32, neighbor: impl FnOnce(&mut Neighbor)) -> Self {
        let PeeringLan {
            rtr,
            speaker,
            router,
            lan,
        } = PeeringLan::start(kind, (router_as, SPEAKER_AS), &[], neighbor);
        Self {
            _lan: lan,
            speaker,
            router,
            rtr,
        }
    }

    fn speaker_ip(&self) -> IpAddr {
        IpAddr::V4(self.speaker.ipv4)
    }

    fn session_config(&self, peer_as: u32, password: Option<&str>) -> SessionConfig {
        let mut fsm = fsm::Config::new(SPEAKER_AS, PeerAsn::Exact(peer_as), self.speaker.ipv4);
        fsm.backoff = fsm::Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(2),
        };
        let mut config = SessionConfig::new(fsm, IpAddr::V4(self.router.ipv4));
        config.password = password.map(str::to_owned);
        config
    }

    async fn wait_established(&self, what: &str, session: &SpeakerSession) {
        let speaker_ip = self.speaker_ip();
        wait_for(what, Duration::from_secs(60), || async {
            Ok(
                (self.rtr.established(speaker_ip)? && session.state().is_established())
                    .then_some(()),
            )
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

    /// The router's routes once `present` are all there and `absent` all gone.
    async fn wait_routes(&self, what: &str, present: &[&str], absent: &[&str]) -> Vec<Route> {
        wait_for(what, Duration::from_secs(30), || async {
            let routes = self.rtr.routes()?;
            let has = |p: &str| routes.iter().any(|r| r.prefix.to_string() == p);
            Ok(
                (present.iter().all(|p| has(p)) && !absent.iter().any(|p| has(p)))
                    .then_some(routes),
            )
        })
        .await
        .unwrap_or_else(|e| {
            let routes = self.rtr.routes();
            panic!("{e:#}\nrouter holds: {routes:#?}\n{}", self.rtr.describe())
        })
    }

    /// What the router says about the last session end.
    fn shutdown_report(&self) -> String {
        self.rtr
            .session_report(self.speaker_ip())
            .unwrap_or_else(|e| format!("{e:#}"))
    }

    async fn wait_down(&self, session: &SpeakerSession) {
        let speaker_ip = self.speaker_ip();
        wait_for(
            "the router sees the session down",
            Duration::from_secs(30),
            || async { Ok((!self.rtr.established(speaker_ip)?).then_some(())) },
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}\nour state: {:?}", session.state()));
    }
}

fn route<'a>(routes: &'a [Route], prefix: &str) -> &'a Route {
    routes
        .iter()
        .find(|r| r.prefix.to_string() == prefix)
        .unwrap_or_else(|| panic!("no route for {prefix} in {routes:#?}"))
}

fn net(s: &str) -> IpNet {
    s.parse().expect("a prefix")
}

fn attrs(
    local_pref: Option<u32>,
    communities: &[(u16, u16)],
    large: &[(u32, u32, u32)],
) -> RouteAttrs {
    RouteAttrs {
        local_pref,
        communities: communities
            .iter()
            .map(|(a, v)| Community::new(*a, *v))
            .collect(),
        large_communities: large
            .iter()
            .map(|(g, l1, l2)| LargeCommunity {
                global_admin: *g,
                local_data1: *l1,
                local_data2: *l2,
            })
            .collect(),
        as_path_prepend: 0,
    }
}

/// Whether the router's report names the Cease/Administrative Shutdown we sent.
fn shows_admin_shutdown(kind: RouterKind, report: &str) -> bool {
    match kind {
        RouterKind::Gobgp => {
            report.contains(SHUTDOWN_MESSAGE) && report.contains("administrative shutdown")
        }
        // BIRD 2.0.12 shows the reason, not the RFC 9003 message.
        RouterKind::Bird => report.contains("Received: Administrative shutdown"),
        RouterKind::Frr => {
            report.contains(r#""lastNotificationReason":"Cease\/Administrative Shutdown""#)
                && report.contains(&format!(
                    r#""lastShutdownDescription":"{SHUTDOWN_MESSAGE}""#
                ))
        }
    }
}

fn set(strings: &[&str]) -> BTreeSet<String> {
    strings.iter().map(|s| (*s).to_owned()).collect()
}

/// eBGP: Established, routes with next hop, AS path, communities and large communities, IPv6
/// over the IPv4 session, a withdrawal, then shutdown seen by the router.
async fn ebgp_session_advertises_and_withdraws(kind: RouterKind) {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let bed = Bed::start(kind, ROUTER_AS, None);
    let routes: RouteSet = [
        (
            net("198.51.100.10/32"),
            attrs(None, &[(65000, 100), (65000, 200)], &[(SPEAKER_AS, 1, 2)]),
        ),
        (net("198.51.100.20/32"), attrs(None, &[(65000, 300)], &[])),
        (net("203.0.113.0/24"), attrs(None, &[(65000, 300)], &[])),
        (
            net("2001:db8:100::10/128"),
            attrs(None, &[(65000, 600)], &[(SPEAKER_AS, 6, 6)]),
        ),
        (net("2001:db8:100::/64"), attrs(None, &[], &[])),
    ]
    .into_iter()
    .collect();
    let mut session = SpeakerSession::start(
        &bed.speaker,
        bed.session_config(ROUTER_AS, None),
        routes.clone(),
    );
    bed.wait_established(&format!("{kind} establishes with ferrolb"), &session)
        .await;

    let all = [
        "198.51.100.10/32",
        "198.51.100.20/32",
        "203.0.113.0/24",
        "2001:db8:100::10/128",
        "2001:db8:100::/64",
    ];
    let held = bed
        .wait_routes(&format!("{kind} holds every route"), &all, &[])
        .await;
    eprintln!("{kind} holds: {held:#?}");
    let speaker_v4 = bed.speaker_ip();
    let speaker_v6 = IpAddr::V6(bed.speaker.ipv6);
    for prefix in &all[..3] {
        let r = route(&held, prefix);
        assert_eq!(r.next_hop, speaker_v4, "{r:?}");
        assert_eq!(r.as_path, vec![SPEAKER_AS], "{r:?}");
    }
    for prefix in &all[3..] {
        let r = route(&held, prefix);
        assert_eq!(r.next_hop, speaker_v6, "{r:?}");
        assert_eq!(r.as_path, vec![SPEAKER_AS], "{r:?}");
    }
    let r = route(&held, "198.51.100.10/32");
    assert_eq!(r.communities, set(&["65000:100", "65000:200"]), "{r:?}");
    assert_eq!(r.large_communities, set(&["4200000001:1:2"]), "{r:?}");
    let r = route(&held, "198.51.100.20/32");
    assert_eq!(r.communities, set(&["65000:300"]), "{r:?}");
    assert!(r.large_communities.is_empty(), "{r:?}");
    let r = route(&held, "2001:db8:100::10/128");
    assert_eq!(r.communities, set(&["65000:600"]), "{r:?}");
    assert_eq!(r.large_communities, set(&["4200000001:6:6"]), "{r:?}");
    // eBGP carries no LOCAL_PREF; routers that show one show their own default.
    assert_eq!(session.counters.prefixes_advertised(), 5);

    // Withdraw one prefix of each family, change another's communities.
    let mut less = routes.clone();
    less.remove(&net("198.51.100.20/32"));
    less.remove(&net("2001:db8:100::/64"));
    less.insert(net("203.0.113.0/24"), attrs(None, &[(65000, 999)], &[]));
    session.set_routes(less);
    let held = bed
        .wait_routes(
            &format!("{kind} drops the withdrawn routes"),
            &["198.51.100.10/32", "203.0.113.0/24", "2001:db8:100::10/128"],
            &["198.51.100.20/32", "2001:db8:100::/64"],
        )
        .await;
    let changed = wait_for(
        "the changed communities arrive",
        Duration::from_secs(30),
        || async {
            let routes = bed.rtr.routes()?;
            Ok(routes
                .into_iter()
                .find(|r| r.prefix.to_string() == "203.0.113.0/24")
                .filter(|r| r.communities == set(&["65000:999"])))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{held:#?}"));
    assert_eq!(changed.next_hop, speaker_v4);
    assert_eq!(session.counters.prefixes_advertised(), 3);
    assert!(session.counters.sent(MessageType::Update) >= 4);
    assert!(session.counters.received(MessageType::Keepalive) >= 1);

    session.shutdown();
    bed.wait_down(&session).await;
    let reason = wait_for(
        "the router reports our Cease/Administrative Shutdown",
        Duration::from_secs(10),
        || async {
            let seen = bed.shutdown_report();
            Ok(shows_admin_shutdown(kind, &seen).then_some(seen))
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}
{}",
            bed.shutdown_report()
        )
    });
    eprintln!("{kind} reports the shutdown as:\n{reason}");
}

/// iBGP (same AS): LOCAL_PREF arrives, the AS path is empty.
async fn ibgp_session_carries_local_pref(kind: RouterKind) {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let bed = Bed::start(kind, SPEAKER_AS, None);
    let routes: RouteSet = [
        (
            net("198.51.100.30/32"),
            attrs(Some(250), &[(65000, 30)], &[]),
        ),
        (net("198.51.100.31/32"), attrs(None, &[], &[])),
        (net("2001:db8:100::30/128"), attrs(Some(180), &[], &[])),
    ]
    .into_iter()
    .collect();
    let mut session =
        SpeakerSession::start(&bed.speaker, bed.session_config(SPEAKER_AS, None), routes);
    bed.wait_established(&format!("{kind} establishes iBGP"), &session)
        .await;
    let held = bed
        .wait_routes(
            &format!("{kind} holds the iBGP routes"),
            &[
                "198.51.100.30/32",
                "198.51.100.31/32",
                "2001:db8:100::30/128",
            ],
            &[],
        )
        .await;
    eprintln!("{kind} holds: {held:#?}");
    let r = route(&held, "198.51.100.30/32");
    assert_eq!(r.local_pref, Some(250), "{r:?}");
    assert!(r.as_path.is_empty(), "{r:?}");
    assert_eq!(r.next_hop, bed.speaker_ip(), "{r:?}");
    assert_eq!(r.communities, set(&["65000:30"]), "{r:?}");
    let r = route(&held, "198.51.100.31/32");
    assert_eq!(r.local_pref, Some(100), "{r:?}");
    let r = route(&held, "2001:db8:100::30/128");
    assert_eq!(r.local_pref, Some(180), "{r:?}");
    assert_eq!(r.next_hop, IpAddr::V6(bed.speaker.ipv6), "{r:?}");
    session.shutdown();
    bed.wait_down(&session).await;
}

/// TCP MD5: a wrong password never establishes, the right one does.
async fn md5_password_must_match(kind: RouterKind) {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let bed = Bed::start(kind, ROUTER_AS, Some("s3cr3t"));
    let routes: RouteSet = [(net("198.51.100.40/32"), RouteAttrs::default())]
        .into_iter()
        .collect();
    let mut wrong = SpeakerSession::start(
        &bed.speaker,
        bed.session_config(ROUTER_AS, Some("wrong")),
        routes.clone(),
    );
    let speaker_ip = bed.speaker_ip();
    let outcome = wait_for(
        "a session with the wrong MD5 key",
        Duration::from_secs(8),
        || async {
            Ok((bed.rtr.established(speaker_ip)? || wrong.state().is_established()).then_some(()))
        },
    )
    .await;
    assert!(
        outcome.is_err(),
        "{kind} established with a wrong MD5 key: {:?}",
        wrong.state()
    );
    wrong.shutdown();

    let right = SpeakerSession::start(
        &bed.speaker,
        bed.session_config(ROUTER_AS, Some("s3cr3t")),
        routes,
    );
    bed.wait_established(
        &format!("{kind} establishes with the right MD5 key"),
        &right,
    )
    .await;
    bed.wait_routes(
        &format!("{kind} holds the route over MD5"),
        &["198.51.100.40/32"],
        &[],
    )
    .await;
}

/// GTSM (RFC 5082) on an eBGP session between directly connected hosts: with it on at the
/// router, a speaker with `ttlSecurity: 1` gets a session and advertises, and every segment
/// of it reaches the router at TTL 255 (counted by nftables in the router's namespace); with it
/// off at the router (which then sends TTL 1), the speaker's own minimum TTL of 255 keeps the
/// session from forming. Whether a GTSM router refuses a speaker sending TTL 1 is the router's
/// business, and not reliable: FRR and GoBGP set the minimum TTL on a connection they accepted
/// only after the OPEN sent right behind the handshake got in (each took such a session here).
async fn gtsm_must_be_on_at_both_ends(kind: RouterKind) {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let routes: RouteSet = [(net("198.51.100.41/32"), RouteAttrs::default())]
        .into_iter()
        .collect();
    let gtsm = |bed: &Bed, on: bool| {
        let mut config = bed.session_config(ROUTER_AS, None);
        config.ttl_security = on.then_some(1);
        config
    };

    let bed = Bed::start_with(kind, ROUTER_AS, |n| n.ttl_security = true);
    let speaker_ip = bed.speaker_ip();
    // Counters of the BGP segments from the speaker, by TTL, ahead of the router's sockets.
    let table = format!(
        "table inet gtsm {{\n  chain input {{ type filter hook input priority -300; \
         ip saddr {speaker_ip} tcp dport 179 ip ttl 255 counter; \
         ip saddr {speaker_ip} tcp dport 179 ip ttl != 255 counter; }}\n}}"
    );
    bed.router.ns.exec(&["nft", &table]).expect("nft counters");
    let with = SpeakerSession::start(&bed.speaker, gtsm(&bed, true), routes.clone());
    bed.wait_established(&format!("{kind} establishes with GTSM at both ends"), &with)
        .await;
    bed.wait_routes(
        &format!("{kind} holds the route over a GTSM session"),
        &["198.51.100.41/32"],
        &[],
    )
    .await;
    let listed = bed
        .router
        .ns
        .output(&["nft", "list table inet gtsm"])
        .expect("nft list");
    let counted: Vec<u64> = listed
        .lines()
        .filter_map(|l| l.split("counter packets ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(
        matches!(counted[..], [at_255, 0] if at_255 > 0),
        "segments at TTL 255 and at any other TTL: {counted:?}\n{listed}"
    );
    drop(with);
    drop(bed);

    let bed = Bed::start(kind, ROUTER_AS, None);
    let mut only_ours = SpeakerSession::start(&bed.speaker, gtsm(&bed, true), routes);
    let speaker_ip = bed.speaker_ip();
    let outcome = wait_for(
        "a GTSM session with a router sending TTL 1",
        Duration::from_secs(8),
        || async {
            Ok(
                (bed.rtr.established(speaker_ip)? || only_ours.state().is_established())
                    .then_some(()),
            )
        },
    )
    .await;
    assert!(
        outcome.is_err(),
        "the speaker with GTSM established with {kind} sending TTL 1: {:?}",
        only_ours.state()
    );
    only_ours.shutdown();
}

#[tokio::test]
async fn gobgp_runs_gtsm_only_when_both_ends_do() {
    gtsm_must_be_on_at_both_ends(RouterKind::Gobgp).await;
}

#[tokio::test]
async fn bird_runs_gtsm_only_when_both_ends_do() {
    gtsm_must_be_on_at_both_ends(RouterKind::Bird).await;
}

#[tokio::test]
async fn frr_runs_gtsm_only_when_both_ends_do() {
    gtsm_must_be_on_at_both_ends(RouterKind::Frr).await;
}

#[tokio::test]
async fn gobgp_gets_routes_from_ferrolb_and_sees_them_withdrawn() {
    ebgp_session_advertises_and_withdraws(RouterKind::Gobgp).await;
}

#[tokio::test]
async fn bird_gets_routes_from_ferrolb_and_sees_them_withdrawn() {
    ebgp_session_advertises_and_withdraws(RouterKind::Bird).await;
}

#[tokio::test]
async fn frr_gets_routes_from_ferrolb_and_sees_them_withdrawn() {
    ebgp_session_advertises_and_withdraws(RouterKind::Frr).await;
}

#[tokio::test]
async fn gobgp_gets_local_pref_over_ibgp() {
    ibgp_session_carries_local_pref(RouterKind::Gobgp).await;
}

#[tokio::test]
async fn bird_gets_local_pref_over_ibgp() {
    ibgp_session_carries_local_pref(RouterKind::Bird).await;
}

#[tokio::test]
async fn frr_gets_local_pref_over_ibgp() {
    ibgp_session_carries_local_pref(RouterKind::Frr).await;
}

#[tokio::test]
async fn gobgp_accepts_only_the_right_md5_key() {
    md5_password_must_match(RouterKind::Gobgp).await;
}

#[tokio::test]
async fn bird_accepts_only_the_right_md5_key() {
    md5_password_must_match(RouterKind::Bird).await;
}

#[tokio::test]
async fn frr_accepts_only_the_right_md5_key() {
    md5_password_must_match(RouterKind::Frr).await;
}
