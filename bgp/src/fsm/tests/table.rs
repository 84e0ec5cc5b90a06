//! Every (state, event) pair of RFC 4271 §8.2.2 for the events we implement: the next state,
//! the NOTIFICATION sent (code, subcode) if any, and whether the connection is closed.
//! Timer expiries are fired at the timer's deadline when the state has it armed; a timer the
//! state never arms is ignored.

use super::*;
use crate::packet::{DecodeError, Message, RouteRefresh, Update};

#[derive(Debug, Clone, Copy)]
enum Ev {
    ManualStart,
    ManualStop,
    TcpConfirmed,
    TcpFails,
    Open,
    Keepalive,
    Update,
    Notification,
    RouteRefresh,
    DecodeError,
    ConnectRetry,
    Hold,
    KeepaliveTimer,
    IdleHold,
    CollisionDump,
    BfdDown,
}

const ALL: [Ev; 16] = [
    Ev::ManualStart,
    Ev::ManualStop,
    Ev::TcpConfirmed,
    Ev::TcpFails,
    Ev::Open,
    Ev::Keepalive,
    Ev::Update,
    Ev::Notification,
    Ev::RouteRefresh,
    Ev::DecodeError,
    Ev::ConnectRetry,
    Ev::Hold,
    Ev::KeepaliveTimer,
    Ev::IdleHold,
    Ev::CollisionDump,
    Ev::BfdDown,
];

/// Brings a fresh FSM into `state`: Idle after a failed attempt (IdleHold armed), Connect,
/// Active after a failure in OpenSent (ConnectRetry armed), OpenSent, OpenConfirm, Established.
fn peer_in(state: State) -> Peer {
    let mut p = Peer::new(config());
    match state {
        State::Idle => {
            p.feed(Input::ManualStart);
            p.feed(Input::TcpConnectionFails);
        }
        State::Connect => {
            p.feed(Input::ManualStart);
        }
        State::Active => {
            p.feed(Input::ManualStart);
            p.feed(Input::TcpConnectionConfirmed);
            p.feed(Input::TcpConnectionFails);
        }
        State::OpenSent | State::OpenConfirm | State::Established => {
            p.feed(Input::ManualStart);
            p.feed(Input::TcpConnectionConfirmed);
            if state != State::OpenSent {
                p.receive(Message::Open(peer_open(PEER_AS, 90)));
            }
            if state == State::Established {
                p.receive(Message::Keepalive);
            }
        }
    }
    assert_eq!(p.state(), state);
    p
}

fn fire(p: &mut Peer, ev: Ev) -> Vec<Output> {
    let timer = |p: &mut Peer, t: Timer| {
        if p.fsm.deadline(t).is_some() {
            p.expire(t)
        } else {
            p.feed(Input::TimerExpired(t))
        }
    };
    match ev {
        Ev::ManualStart => p.feed(Input::ManualStart),
        Ev::ManualStop => p.feed(Input::ManualStop {
            message: "maintenance".into(),
        }),
        Ev::TcpConfirmed => p.feed(Input::TcpConnectionConfirmed),
        Ev::TcpFails => p.feed(Input::TcpConnectionFails),
        Ev::Open => p.receive(Message::Open(peer_open(PEER_AS, 90))),
        Ev::Keepalive => p.receive(Message::Keepalive),
        Ev::Update => p.receive(Message::Update(Update::end_of_rib(Family::Ipv4Unicast))),
        Ev::Notification => p.receive(Message::Notification(Notification::cease(3))),
        Ev::RouteRefresh => p.receive(Message::RouteRefresh(RouteRefresh {
            afi_safi: Family::Ipv4Unicast.afi_safi(),
            subtype: 0,
        })),
        Ev::DecodeError => p.feed(Input::DecodeError(DecodeError::BadMessageType { kind: 9 })),
        Ev::ConnectRetry => timer(p, Timer::ConnectRetry),
        Ev::Hold => timer(p, Timer::Hold),
        Ev::KeepaliveTimer => timer(p, Timer::Keepalive),
        Ev::IdleHold => timer(p, Timer::IdleHold),
        Ev::CollisionDump => p.feed(Input::CollisionDump),
        Ev::BfdDown => p.feed(Input::BfdDown),
    }
}

type Row = (State, State, Option<(u8, u8)>, bool);

/// (from, to, NOTIFICATION, closes) for each event in [`ALL`] order.
fn expected(from: State) -> [Row; 16] {
    use State::*;
    let stay = (from, from, None, false);
    let fail = (from, Idle, None, true);
    let err = |code, sub| (from, Idle, Some((code, sub)), true);
    match from {
        Idle => [
            (Idle, Connect, None, false),  // ManualStart
            stay,                          // ManualStop
            (Idle, OpenSent, None, false), // TcpConfirmed: the peer dialled us
            stay,
            stay,
            stay,
            stay,
            stay,
            stay,
            stay,
            stay,
            stay,
            stay,
            (Idle, Connect, None, false), // IdleHold: automatic start
            stay,
            stay,
        ],
        Connect => [
            stay,
            fail,                             // ManualStop: no BGP connection to notify
            (Connect, OpenSent, None, false), // TcpConfirmed
            fail,
            fail,
            fail,
            fail,
            fail,
            fail,
            fail,
            (Connect, Connect, None, true), // ConnectRetry: abandon and retry
            stay,
            stay,
            stay,
            fail, // CollisionDump
            stay, // BfdDown
        ],
        Active => [
            stay,
            fail,
            (Active, OpenSent, None, false),
            fail,
            fail,
            fail,
            fail,
            fail,
            fail,
            fail,
            (Active, Connect, None, false), // ConnectRetry: connect out
            stay,
            stay,
            stay,
            fail,
            stay,
        ],
        OpenSent => [
            stay,
            err(6, 2),                      // Cease/Administrative Shutdown
            stay,                           // second connection: collision handling
            (OpenSent, Active, None, true), // TcpFails
            (OpenSent, OpenConfirm, None, false),
            err(5, 1),
            err(5, 1),
            fail, // NOTIFICATION received
            err(5, 1),
            err(1, 3), // the decode error's own NOTIFICATION
            stay,
            err(4, 0), // Hold Timer Expired
            stay,
            stay,
            err(6, 7),  // Connection Collision Resolution
            err(6, 10), // BFD Down
        ],
        OpenConfirm => [
            stay,
            err(6, 2),
            stay,
            fail,
            err(5, 2),
            (OpenConfirm, Established, None, false),
            err(5, 2),
            fail,
            err(5, 2),
            err(1, 3),
            stay,
            err(4, 0),
            stay, // KeepaliveTimer: sends a KEEPALIVE
            stay,
            err(6, 7),
            err(6, 10),
        ],
        Established => [
            stay,
            err(6, 2),
            stay,
            fail,
            err(5, 3),
            stay,
            stay, // KEEPALIVE, UPDATE
            fail,
            stay, // ROUTE-REFRESH
            err(1, 3),
            stay,
            err(4, 0),
            stay,
            stay,
            err(6, 7),
            err(6, 10),
        ],
    }
}

#[test]
fn every_state_handles_every_event_as_rfc_4271_section_8_says() {
    use State::*;
    for state in [Idle, Connect, Active, OpenSent, OpenConfirm, Established] {
        for (ev, (from, to, notification, closes)) in ALL.into_iter().zip(expected(state)) {
            let mut p = peer_in(state);
            let out = fire(&mut p, ev);
            let what = format!("{from} + {ev:?}: {out:#?}");
            assert_eq!(p.state(), to, "{what}");
            assert_eq!(notification_sent(&out), notification, "{what}");
            assert_eq!(out.contains(&Output::Close), closes, "{what}");
            // A NOTIFICATION always goes out before the connection closes.
            if let (Some(n), Some(c)) = (
                out.iter()
                    .position(|o| matches!(o, Output::Send(Message::Notification(_)))),
                out.iter().position(|o| *o == Output::Close),
            ) {
                assert!(n < c, "{what}");
            }
            // Whatever ends a session says so.
            assert_eq!(
                down(&out).is_some(),
                to == Idle && from != Idle || to == Active && from == OpenSent,
                "{what}"
            );
        }
    }
}
