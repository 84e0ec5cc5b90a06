//! FSM tests: a walk over every (state, event) pair, and scenarios named as sentences.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::*;
use crate::packet::{AfiSafi, Capability, Open};

mod extended_next_hop;
mod robustness;
mod scenarios;
mod table;

const LOCAL_AS: u32 = 65001;
const PEER_AS: u32 = 65002;

fn router_id() -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 1)
}

fn peer_id() -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 2)
}

fn config() -> Config {
    Config::new(LOCAL_AS, PeerAsn::Exact(PEER_AS), router_id())
}

/// An OPEN like GoBGP's: both families, route refresh, 4-octet AS.
fn peer_open(asn: u32, hold_time: u16) -> Open {
    Open::new(
        asn,
        hold_time,
        peer_id(),
        vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(asn),
        ],
    )
}

/// An FSM with a clock that tests move by hand.
struct Peer {
    fsm: Fsm,
    start: Instant,
    now: Instant,
}

impl Peer {
    fn new(config: Config) -> Self {
        let start = Instant::now();
        Self {
            fsm: Fsm::new(config).expect("valid config"),
            start,
            now: start,
        }
    }

    fn state(&self) -> State {
        self.fsm.state()
    }

    fn feed(&mut self, input: Input) -> Vec<Output> {
        self.fsm.handle(input, self.now)
    }

    /// Seconds since the test began.
    fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// Moves the clock to `timer`'s deadline and fires it.
    fn expire(&mut self, timer: Timer) -> Vec<Output> {
        let deadline = self.fsm.deadline(timer);
        let deadline = deadline.unwrap_or_else(|| panic!("{timer:?} is not armed"));
        self.now = self.now.max(deadline);
        self.feed(Input::TimerExpired(timer))
    }

    fn receive(&mut self, message: Message) -> Vec<Output> {
        self.feed(Input::Received(message))
    }

    /// ManualStart → connected → peer OPEN → peer KEEPALIVE.
    fn establish_with(&mut self, open: Open) -> Vec<Output> {
        let mut out = self.feed(Input::ManualStart);
        out.extend(self.feed(Input::TcpConnectionConfirmed));
        out.extend(self.receive(Message::Open(open)));
        out.extend(self.receive(Message::Keepalive));
        assert_eq!(self.state(), State::Established, "{out:#?}");
        out
    }

    fn establish(&mut self) -> Vec<Output> {
        self.establish_with(peer_open(PEER_AS, 90))
    }
}

/// The NOTIFICATIONs sent.
fn notifications(out: &[Output]) -> Vec<&Notification> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(Message::Notification(n)) => Some(n),
            _ => None,
        })
        .collect()
}

/// The one NOTIFICATION sent, as (code, subcode).
fn notification_sent(out: &[Output]) -> Option<(u8, u8)> {
    let sent = notifications(out);
    assert!(sent.len() <= 1, "more than one NOTIFICATION: {out:#?}");
    sent.first().map(|n| (n.code, n.subcode))
}

fn sends(out: &[Output], message: &Message) -> bool {
    out.contains(&Output::Send(message.clone()))
}

fn armed(out: &[Output], timer: Timer) -> Option<Instant> {
    out.iter().rev().find_map(|o| match o {
        Output::ArmTimer { timer: t, deadline } if *t == timer => Some(*deadline),
        _ => None,
    })
}

fn down(out: &[Output]) -> Option<&Down> {
    out.iter().find_map(|o| match o {
        Output::Down(d) => Some(d),
        _ => None,
    })
}

fn established(out: &[Output]) -> Option<&Negotiated> {
    out.iter().find_map(|o| match o {
        Output::Established(n) => Some(n),
        _ => None,
    })
}
