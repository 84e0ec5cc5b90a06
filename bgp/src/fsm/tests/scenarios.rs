//! Scenarios a user would notice, one per test.

use super::*;
use crate::packet::{
    AsPath, DecodeError, Families, GracefulRestart, PathAttributes, RouteRefresh, Update,
};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn manual_start_connects_and_arms_connect_retry() {
    let mut p = Peer::new(config());
    let out = p.feed(Input::ManualStart);
    assert_eq!(p.state(), State::Connect);
    assert!(out.contains(&Output::Connect));
    assert_eq!(armed(&out, Timer::ConnectRetry), Some(p.now + secs(1)));
}

#[test]
fn our_open_offers_both_families_route_refresh_and_as_trans_for_a_four_octet_asn() {
    let mut c = config();
    c.local_asn = 4_200_000_001;
    let mut p = Peer::new(c);
    p.feed(Input::ManualStart);
    let out = p.feed(Input::TcpConnectionConfirmed);
    assert_eq!(p.state(), State::OpenSent);
    let open = Open::new(
        4_200_000_001,
        90,
        router_id(),
        vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(4_200_000_001),
        ],
    );
    assert_eq!(open.my_as, 23456);
    assert!(sends(&out, &Message::Open(open)));
    assert_eq!(
        armed(&out, Timer::Hold),
        Some(p.now + secs(240)),
        "a large hold time"
    );
}

#[test]
fn open_sent_with_bad_peer_asn_sends_notification_and_goes_idle() {
    let mut p = Peer::new(config());
    p.feed(Input::ManualStart);
    p.feed(Input::TcpConnectionConfirmed);
    let out = p.receive(Message::Open(peer_open(65099, 90)));
    assert_eq!(p.state(), State::Idle);
    assert_eq!(notification_sent(&out), Some((2, 2)));
    assert!(out.contains(&Output::Close));
    let d = down(&out).expect("down");
    assert_eq!(d.reason.metric_label(), "protocol_error");
    assert_eq!(
        d.reason.to_string(),
        "peer AS 65099, expected 65002; sent NOTIFICATION OPEN Message Error/Bad Peer AS"
    );
    assert!(armed(&out, Timer::IdleHold).is_some(), "tries again later");
}

#[test]
fn dynamic_internal_and_external_peer_asns_are_checked_against_ours() {
    let cases = [
        (PeerAsn::Internal, LOCAL_AS, None),
        (PeerAsn::Internal, PEER_AS, Some((2, 2))),
        (PeerAsn::External, PEER_AS, None),
        (PeerAsn::External, LOCAL_AS, Some((2, 2))),
    ];
    for (peer_asn, sent_asn, expected) in cases {
        let mut c = config();
        c.peer_asn = peer_asn;
        let mut p = Peer::new(c);
        p.feed(Input::ManualStart);
        p.feed(Input::TcpConnectionConfirmed);
        let out = p.receive(Message::Open(peer_open(sent_asn, 90)));
        assert_eq!(
            notification_sent(&out),
            expected,
            "{peer_asn:?} vs {sent_asn}"
        );
    }
}

#[test]
fn internal_peer_with_our_router_id_gets_bad_bgp_identifier() {
    let mut c = config();
    c.peer_asn = PeerAsn::Internal;
    let mut p = Peer::new(c);
    p.feed(Input::ManualStart);
    p.feed(Input::TcpConnectionConfirmed);
    let mut open = peer_open(LOCAL_AS, 90);
    open.bgp_id = router_id();
    let out = p.receive(Message::Open(open));
    assert_eq!(notification_sent(&out), Some((2, 3)));
}

#[test]
fn peer_without_four_octet_as_is_refused_when_our_asn_needs_it() {
    let mut c = config();
    c.local_asn = 4_200_000_001;
    let mut p = Peer::new(c);
    p.feed(Input::ManualStart);
    p.feed(Input::TcpConnectionConfirmed);
    let mut open = peer_open(PEER_AS, 90);
    open.capabilities
        .retain(|c| !matches!(c, Capability::FourOctetAs(_)));
    let out = p.receive(Message::Open(open));
    assert_eq!(notification_sent(&out), Some((2, 7)));
    assert_eq!(
        notifications(&out)[0].data,
        vec![65, 4, 0xfa, 0x56, 0xea, 0x01]
    );
}

#[test]
fn peer_without_a_common_family_is_refused_with_unsupported_capability() {
    let mut c = config();
    c.families = Families::IPV6;
    let mut p = Peer::new(c);
    p.feed(Input::ManualStart);
    p.feed(Input::TcpConnectionConfirmed);
    let mut open = peer_open(PEER_AS, 90);
    open.capabilities
        .retain(|c| *c != Capability::Multiprotocol(AfiSafi::IPV6_UNICAST));
    let out = p.receive(Message::Open(open));
    assert_eq!(notification_sent(&out), Some((2, 7)));
    assert_eq!(notifications(&out)[0].data, vec![1, 4, 0, 2, 0, 1]);
}

#[test]
fn keepalive_in_open_confirm_establishes_with_the_negotiated_parameters() {
    let mut c = config();
    c.graceful_restart = Some(GracefulRestartConfig {
        restart_time: 120,
        restarting: false,
    });
    let mut p = Peer::new(c);
    let gr = GracefulRestart {
        restart_state: false,
        notification: true,
        restart_time: 90,
        families: vec![],
    };
    let mut open = peer_open(PEER_AS, 30);
    open.capabilities = vec![
        Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
        Capability::FourOctetAs(PEER_AS),
        Capability::GracefulRestart(gr.clone()),
    ];
    let out = p.establish_with(open);
    let n = established(&out).expect("Established output");
    assert_eq!(
        *n,
        Negotiated {
            peer_asn: PEER_AS,
            peer_router_id: peer_id(),
            internal: false,
            hold_time: secs(30),
            keepalive: Some(secs(10)),
            tcp_keepalive: None,
            four_octet_as: true,
            families: Families::IPV4,
            route_refresh: false,
            graceful_restart: Some(gr),
            extended_next_hop: false,
        }
    );
    assert_eq!(p.fsm.session_context(), n.context());
}

#[test]
fn peer_without_mp_capabilities_is_ipv4_only_with_two_octet_asns() {
    let mut p = Peer::new(config());
    let out = p.establish_with(Open::new(PEER_AS, 90, peer_id(), vec![]));
    let n = established(&out).expect("Established output");
    assert_eq!((n.families, n.four_octet_as), (Families::IPV4, false));
}

#[test]
fn hold_timer_expiry_sends_hold_timer_expired_notification() {
    let mut p = Peer::new(config());
    p.establish();
    let out = p.expire(Timer::Hold);
    assert_eq!(p.elapsed(), secs(90));
    assert_eq!(notification_sent(&out), Some((4, 0)));
    assert_eq!(p.state(), State::Idle);
    let d = down(&out).expect("down");
    assert!(d.was_established());
    assert_eq!(d.reason, DownReason::HoldTimerExpired);
}

#[test]
fn keepalive_is_sent_every_third_of_the_negotiated_hold_time() {
    let mut p = Peer::new(config());
    let out = p.establish_with(peer_open(PEER_AS, 9)); // min(90, 9) = 9 s
    assert_eq!(armed(&out, Timer::Keepalive), Some(p.now + secs(3)));
    for _ in 0..5 {
        // The peer keeps talking, so the hold timer never fires.
        p.advance(secs(2));
        p.receive(Message::Keepalive);
        let before = p.now;
        let out = p.expire(Timer::Keepalive);
        assert!(sends(&out, &Message::Keepalive));
        assert_eq!(p.now - before, secs(1));
        assert_eq!(armed(&out, Timer::Keepalive), Some(p.now + secs(3)));
    }
    assert_eq!(p.state(), State::Established);
}

#[test]
fn hold_time_zero_disables_keepalives_and_hold_timer() {
    let mut p = Peer::new(config());
    let out = p.establish_with(peer_open(PEER_AS, 0));
    assert_eq!(established(&out).map(|n| n.keepalive), Some(None));
    assert_eq!(p.fsm.next_deadline(), None, "no timer at all");
    assert_eq!(armed(&out, Timer::Keepalive), None);
    assert!(out.contains(&Output::CancelTimer(Timer::Hold)));
    p.advance(secs(3600));
    p.receive(Message::Keepalive);
    assert_eq!(p.state(), State::Established);
}

#[test]
fn received_keepalives_and_updates_push_the_hold_timer_back() {
    let mut p = Peer::new(config());
    p.establish();
    p.advance(secs(60));
    let out = p.receive(Message::Keepalive);
    assert_eq!(armed(&out, Timer::Hold), Some(p.now + secs(90)));
    p.advance(secs(60));
    let out = p.receive(Message::Update(Update::end_of_rib(Family::Ipv4Unicast)));
    assert_eq!(armed(&out, Timer::Hold), Some(p.now + secs(90)));
    // The old deadline passing is no expiry.
    assert!(p.feed(Input::TimerExpired(Timer::Hold)).is_empty());
    assert_eq!(p.state(), State::Established);
}

#[test]
fn stale_or_early_timer_expiries_are_ignored() {
    let mut p = Peer::new(config());
    p.feed(Input::ManualStart);
    assert!(
        p.feed(Input::TimerExpired(Timer::ConnectRetry)).is_empty(),
        "early"
    );
    assert!(
        p.feed(Input::TimerExpired(Timer::Hold)).is_empty(),
        "never armed"
    );
    p.feed(Input::TcpConnectionConfirmed);
    p.advance(secs(10));
    assert!(
        p.feed(Input::TimerExpired(Timer::ConnectRetry)).is_empty(),
        "cancelled"
    );
    assert_eq!(p.state(), State::OpenSent);
}

#[test]
fn connect_retry_backs_off_and_resets_after_a_stable_session() {
    let mut p = Peer::new(config());
    let mut delays = Vec::new();
    let out = p.feed(Input::ManualStart);
    delays.push(armed(&out, Timer::ConnectRetry).expect("armed") - p.now);
    // The peer refuses, then stops answering: each wait doubles, up to a minute.
    let out = p.feed(Input::TcpConnectionFails);
    delays.push(armed(&out, Timer::IdleHold).expect("armed") - p.now);
    let out = p.expire(Timer::IdleHold);
    assert!(out.contains(&Output::Connect));
    delays.push(armed(&out, Timer::ConnectRetry).expect("armed") - p.now);
    for _ in 0..6 {
        let out = p.expire(Timer::ConnectRetry);
        assert!(out.contains(&Output::Close) && out.contains(&Output::Connect));
        delays.push(armed(&out, Timer::ConnectRetry).expect("armed") - p.now);
    }
    let expected: Vec<Duration> = [1, 2, 4, 8, 16, 32, 60, 60, 60].map(secs).to_vec();
    assert_eq!(delays, expected);

    // Once established for the stable period, the next failure starts over at one second.
    p.feed(Input::TcpConnectionConfirmed);
    p.receive(Message::Open(peer_open(PEER_AS, 90)));
    p.receive(Message::Keepalive);
    assert_eq!(p.state(), State::Established);
    p.advance(p.fsm.config().reset_backoff_after);
    let out = p.feed(Input::TcpConnectionFails);
    assert_eq!(armed(&out, Timer::IdleHold), Some(p.now + secs(1)));
    let out = p.expire(Timer::IdleHold);
    assert_eq!(armed(&out, Timer::ConnectRetry), Some(p.now + secs(2)));
}

#[test]
fn tcp_failure_in_open_sent_goes_to_active_and_reconnects_when_connect_retry_expires() {
    let mut p = Peer::new(config());
    p.feed(Input::ManualStart);
    p.feed(Input::TcpConnectionConfirmed);
    let out = p.feed(Input::TcpConnectionFails);
    assert_eq!(p.state(), State::Active);
    assert_eq!(down(&out).map(|d| d.from), Some(State::OpenSent));
    let out = p.expire(Timer::ConnectRetry);
    assert_eq!(p.state(), State::Connect);
    assert!(out.contains(&Output::Connect));
}

#[test]
fn manual_stop_sends_cease_administrative_shutdown_with_message() {
    let mut p = Peer::new(config());
    p.establish();
    let out = p.feed(Input::ManualStop {
        message: "node drained".into(),
    });
    let sent = notifications(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].code, sent[0].subcode), (6, 2));
    assert_eq!(sent[0].shutdown_message(), Some("node drained"));
    assert_eq!(sent[0].data[0], 12, "RFC 9003 length octet");
    assert_eq!(p.state(), State::Idle);
    assert_eq!(down(&out).map(|d| &d.reason), Some(&DownReason::ManualStop));
    assert_eq!(
        p.fsm.next_deadline(),
        None,
        "no automatic restart after a stop"
    );
    // ManualStart brings it back, with a fresh backoff.
    let out = p.feed(Input::ManualStart);
    assert_eq!(armed(&out, Timer::ConnectRetry), Some(p.now + secs(1)));
}

#[test]
fn collision_keeps_the_connection_opened_by_the_higher_router_id() {
    let low = Ipv4Addr::new(10, 0, 0, 1);
    let high = Ipv4Addr::new(10, 0, 0, 9);
    let us = |bgp_id| Speaker { bgp_id, asn: 65001 };
    let them = |bgp_id| Speaker { bgp_id, asn: 65002 };
    assert_eq!(
        resolve_collision(us(high), them(low)),
        Keep::LocallyInitiated
    );
    assert_eq!(
        resolve_collision(us(low), them(high)),
        Keep::RemotelyInitiated
    );
    // RFC 6286 §2.3: equal identifiers, the higher ASN's connection wins.
    assert_eq!(
        resolve_collision(us(low), them(low)),
        Keep::RemotelyInitiated
    );

    // The losing connection is closed with Cease/Connection Collision Resolution.
    let mut loser = Peer::new(config());
    loser.feed(Input::ManualStart);
    loser.feed(Input::TcpConnectionConfirmed);
    loser.receive(Message::Open(peer_open(PEER_AS, 90)));
    let out = loser.feed(Input::CollisionDump);
    assert_eq!(notification_sent(&out), Some((6, 7)));
    assert_eq!(loser.state(), State::Idle);
    assert_eq!(
        loser.fsm.next_deadline(),
        None,
        "the other connection carries the session"
    );
}

#[test]
fn bfd_down_takes_an_established_session_down_at_once() {
    let mut p = Peer::new(config());
    p.establish();
    p.advance(secs(1));
    let out = p.feed(Input::BfdDown);
    assert_eq!(p.state(), State::Idle);
    assert_eq!(notification_sent(&out), Some((6, 10)));
    assert!(out.contains(&Output::Close));
    let d = down(&out).expect("down");
    assert!(d.was_established());
    assert_eq!(d.reason.event_reason(), "BFDDown");
    // Up for a second only: the backoff goes on from where the attempts left it.
    assert_eq!(armed(&out, Timer::IdleHold), Some(p.now + secs(2)));
}

#[test]
fn decode_errors_send_their_own_notification() {
    let mut p = Peer::new(config());
    p.establish();
    let out = p.feed(Input::DecodeError(DecodeError::ConnectionNotSynchronized));
    assert_eq!(notification_sent(&out), Some((1, 1)));
    assert_eq!(p.state(), State::Idle);
}

#[test]
fn a_notification_from_the_peer_is_logged_and_not_answered() {
    let mut p = Peer::new(config());
    p.establish();
    let n = Notification::administrative_shutdown("router maintenance");
    let out = p.receive(Message::Notification(n));
    assert_eq!(notification_sent(&out), None);
    let d = down(&out).expect("down");
    assert_eq!(
        d.reason.to_string(),
        "peer sent NOTIFICATION Cease/Administrative Shutdown \"router maintenance\""
    );
    assert_eq!(d.reason.metric_label(), "notification_received");
}

#[test]
fn updates_are_surfaced_and_our_own_routes_reflected_back_are_flagged_as_looped() {
    let mut p = Peer::new(config());
    p.establish();
    for (path, looped) in [
        (vec![PEER_AS, LOCAL_AS], true),
        (vec![PEER_AS, 65100], false),
    ] {
        let update = Update {
            attributes: PathAttributes {
                as_path: Some(AsPath::sequence(path)),
                ..PathAttributes::default()
            },
            ..Update::default()
        };
        let out = p.receive(Message::Update(update.clone()));
        assert!(out.contains(&Output::UpdateReceived { update, looped }));
    }
}

#[test]
fn route_refresh_for_a_negotiated_family_asks_for_our_routes_again() {
    let mut p = Peer::new(config());
    p.establish();
    let ask = |afi_safi, subtype| Message::RouteRefresh(RouteRefresh { afi_safi, subtype });
    let out = p.receive(ask(AfiSafi::IPV6_UNICAST, 0));
    assert!(out.contains(&Output::RouteRefreshRequested(Family::Ipv6Unicast)));
    let evpn = AfiSafi { afi: 25, safi: 70 };
    for ignored in [ask(evpn, 0), ask(AfiSafi::IPV4_UNICAST, 1)] {
        let out = p.receive(ignored);
        assert!(
            !out.iter()
                .any(|o| matches!(o, Output::RouteRefreshRequested(_)))
        );
    }
}

#[test]
fn passive_sessions_wait_for_the_peer_to_connect() {
    let mut c = config();
    c.passive = true;
    let mut p = Peer::new(c);
    let out = p.feed(Input::ManualStart);
    assert_eq!(p.state(), State::Active);
    assert!(out.is_empty(), "no connect, no timer: {out:?}");
    p.feed(Input::TcpConnectionConfirmed);
    p.receive(Message::Open(peer_open(PEER_AS, 90)));
    p.receive(Message::Keepalive);
    assert_eq!(p.state(), State::Established);
    let out = p.feed(Input::TcpConnectionFails);
    let out2 = p.expire(Timer::IdleHold);
    assert!(armed(&out, Timer::IdleHold).is_some());
    assert_eq!(p.state(), State::Active);
    assert!(!out2.contains(&Output::Connect));
}

#[test]
fn graceful_restart_is_advertised_with_the_restart_state_when_restarting() {
    let mut c = config();
    c.graceful_restart = Some(GracefulRestartConfig {
        restart_time: 120,
        restarting: true,
    });
    let mut p = Peer::new(c);
    p.feed(Input::ManualStart);
    let out = p.feed(Input::TcpConnectionConfirmed);
    let Some(Output::Send(Message::Open(open))) = out.iter().find(|o| matches!(o, Output::Send(_)))
    else {
        panic!("no OPEN sent: {out:?}");
    };
    let gr = open.graceful_restart().expect("GR capability");
    assert!(gr.restart_state);
    assert_eq!(gr.restart_time, 120);
    assert_eq!(gr.families.len(), 2);
    assert!(gr.families.iter().all(|f| f.forwarding_preserved));
}

#[test]
fn configs_the_fsm_cannot_run_are_rejected() {
    let with = |f: fn(&mut Config)| {
        let mut c = config();
        f(&mut c);
        Fsm::new(c).err()
    };
    assert_eq!(with(|c| c.hold_time = 2), Some(ConfigError::HoldTime(2)));
    assert_eq!(
        with(|c| c.router_id = Ipv4Addr::UNSPECIFIED),
        Some(ConfigError::RouterId)
    );
    assert_eq!(with(|c| c.local_asn = 0), Some(ConfigError::Asn));
    assert_eq!(
        with(|c| c.families = Families::NONE),
        Some(ConfigError::NoFamily)
    );
    assert_eq!(
        with(|c| c.backoff.initial = Duration::ZERO),
        Some(ConfigError::Backoff)
    );
    assert_eq!(with(|c| c.hold_time = 0), None);
    assert_eq!(with(|c| c.hold_time = 3), None);
}

#[test]
fn a_peer_connection_while_idle_is_refused() {
    let mut p = Peer::new(config());
    assert_eq!(p.feed(Input::TcpConnectionConfirmed), vec![Output::Close]);
    assert_eq!(p.state(), State::Idle);
}

#[test]
fn a_peer_connecting_while_we_wait_to_retry_is_taken_at_once() {
    // Our attempt failed and the next waits out the backoff; the router dials us meanwhile
    // (as it does when it comes back from a restart): the session starts on its connection.
    let mut p = Peer::new(config());
    p.feed(Input::ManualStart);
    p.feed(Input::TcpConnectionFails);
    assert_eq!(p.state(), State::Idle);
    assert!(p.fsm.deadline(Timer::IdleHold).is_some());
    let out = p.feed(Input::TcpConnectionConfirmed);
    assert_eq!(p.state(), State::OpenSent);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Send(Message::Open(_))))
    );
    assert!(out.contains(&Output::CancelTimer(Timer::IdleHold)));
    assert!(!out.contains(&Output::Close));

    // The same after losing a collision (no automatic restart is armed then).
    let mut p = Peer::new(config());
    p.feed(Input::ManualStart);
    p.feed(Input::TcpConnectionConfirmed);
    p.feed(Input::CollisionDump);
    assert_eq!(p.state(), State::Idle);
    p.feed(Input::TcpConnectionConfirmed);
    assert_eq!(p.state(), State::OpenSent);
}

#[test]
fn a_session_never_started_or_stopped_refuses_the_peers_connection() {
    let mut p = Peer::new(config());
    let out = p.feed(Input::TcpConnectionConfirmed);
    assert_eq!(p.state(), State::Idle);
    assert!(out.contains(&Output::Close));

    p.feed(Input::ManualStart);
    p.feed(Input::ManualStop {
        message: "bye".into(),
    });
    let out = p.feed(Input::TcpConnectionConfirmed);
    assert_eq!(p.state(), State::Idle);
    assert!(out.contains(&Output::Close));
}

#[test]
fn stopping_a_session_that_waits_to_retry_cancels_the_retry_and_refuses_the_peer() {
    let mut p = Peer::new(config());
    p.feed(Input::ManualStart);
    let out = p.feed(Input::TcpConnectionFails);
    assert!(armed(&out, Timer::IdleHold).is_some(), "waits to retry");
    assert_eq!(p.state(), State::Idle);

    let out = p.feed(Input::ManualStop {
        message: "bye".into(),
    });
    assert!(
        out.contains(&Output::CancelTimer(Timer::IdleHold)),
        "{out:#?}"
    );
    assert_eq!(p.fsm.deadline(Timer::IdleHold), None, "no restart armed");
    let out = p.feed(Input::TcpConnectionConfirmed);
    assert_eq!(p.state(), State::Idle);
    assert!(
        out.contains(&Output::Close),
        "a stopped session refuses the peer"
    );
}
