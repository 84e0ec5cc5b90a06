//! Two machines joined by a simulated link with a fixed delay, driven in time order: the
//! handshake, the Poll Sequence and failure detection as two real ends play them out. Each
//! end's forwarding plane loops the other's Echo packets back to it, a round trip later.

use std::collections::BTreeMap;

use super::*;

/// Which end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum End {
    A,
    B,
}

impl End {
    fn other(self) -> Self {
        match self {
            End::A => End::B,
            End::B => End::A,
        }
    }
}

/// Every packet either end sent, with when.
#[derive(Debug, Clone)]
pub(super) struct Sent {
    pub(super) at: Duration,
    pub(super) from: End,
    pub(super) packet: ControlPacket,
}

/// What travels.
#[derive(Debug, Clone, Copy)]
enum Frame {
    Control(ControlPacket),
    /// One of the receiver's own Echo packets, coming back.
    Echo(EchoPacket),
}

pub(super) struct Pair {
    machines: [Machine; 2],
    start: Instant,
    now: Instant,
    delay: Duration,
    /// Packets on the wire: (arrival, sequence) → (to, frame).
    wire: BTreeMap<(Instant, u64), (End, Frame)>,
    sequence: u64,
    /// Packets from this end are lost.
    pub(super) cut: [bool; 2],
    /// Echo packets from this end are not looped back (its Control packets still pass).
    pub(super) echo_cut: [bool; 2],
    /// Echo packets each end sent.
    pub(super) echoes: [u64; 2],
    pub(super) log: Vec<Sent>,
    pub(super) transitions: Vec<(Duration, End, Transition)>,
}

fn index(end: End) -> usize {
    match end {
        End::A => 0,
        End::B => 1,
    }
}

impl Pair {
    pub(super) fn new(a: Config, b: Config) -> Self {
        let start = Instant::now();
        let mut pair = Self {
            machines: [
                Machine::new(a, discr(OUR_DISCR), 1).expect("valid"),
                Machine::new(b, discr(THEIR_DISCR), 2).expect("valid"),
            ],
            start,
            now: start,
            delay: ms(1),
            wire: BTreeMap::new(),
            sequence: 0,
            cut: [false; 2],
            echo_cut: [false; 2],
            echoes: [0; 2],
            log: Vec::new(),
            transitions: Vec::new(),
        };
        for end in [End::A, End::B] {
            pair.feed(end, Input::Start);
        }
        pair
    }

    pub(super) fn machine(&self, end: End) -> &Machine {
        &self.machines[index(end)]
    }

    pub(super) fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    pub(super) fn feed(&mut self, end: End, input: Input) {
        let out = self.machines[index(end)].handle(input, self.now);
        for o in out {
            match o {
                Output::Send(packet) => {
                    self.log.push(Sent {
                        at: self.elapsed(),
                        from: end,
                        packet,
                    });
                    if !self.cut[index(end)] {
                        self.sequence += 1;
                        self.wire.insert(
                            (self.now + self.delay, self.sequence),
                            (end.other(), Frame::Control(packet)),
                        );
                    }
                }
                Output::SendEcho(packet) => {
                    self.echoes[index(end)] += 1;
                    if !self.cut[index(end)] && !self.echo_cut[index(end)] {
                        self.sequence += 1;
                        self.wire.insert(
                            (self.now + 2 * self.delay, self.sequence),
                            (end, Frame::Echo(packet)),
                        );
                    }
                }
                Output::StateChanged(t) => self.transitions.push((self.elapsed(), end, t)),
                Output::ArmTimer { .. } | Output::CancelTimer(_) => {}
            }
        }
    }

    /// Runs every event (arrivals and timers of both ends) up to `until` after the start.
    pub(super) fn run_until(&mut self, until: Duration) {
        let until = self.start + until;
        loop {
            let arrival = self.wire.keys().next().map(|(at, _)| *at);
            let timers = [End::A, End::B].into_iter().filter_map(|end| {
                self.machine(end)
                    .next_deadline()
                    .map(|(timer, at)| (at, end, timer))
            });
            let timer = timers.min_by_key(|(at, ..)| *at);
            let next_is_arrival = match (arrival, timer) {
                (Some(a), Some((t, ..))) => a <= t,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => return,
            };
            if next_is_arrival {
                let Some(((at, seq), (to, frame))) = self.wire.pop_first() else {
                    return;
                };
                if at > until {
                    self.wire.insert((at, seq), (to, frame));
                    self.now = until;
                    return;
                }
                self.now = at;
                let input = match frame {
                    Frame::Control(packet) => Input::Received(packet),
                    Frame::Echo(packet) => Input::EchoReturned(packet),
                };
                self.feed(to, input);
            } else if let Some((at, end, timer)) = timer {
                if at > until {
                    self.now = until;
                    return;
                }
                self.now = at;
                self.feed(end, Input::TimerExpired(timer));
            }
        }
    }

    /// When `end` last entered `state`.
    pub(super) fn entered(&self, end: End, state: State) -> Option<Duration> {
        self.transitions
            .iter()
            .rev()
            .find(|(_, e, t)| *e == end && t.to == state)
            .map(|(at, ..)| *at)
    }

    /// The packets `end` sent after `after`.
    pub(super) fn sent_by(&self, end: End, after: Duration) -> Vec<&Sent> {
        self.log
            .iter()
            .filter(|s| s.from == end && s.at > after)
            .collect()
    }
}

#[test]
fn two_machines_come_up_through_the_three_way_handshake() {
    let mut pair = Pair::new(Config::default(), Config::default());
    pair.run_until(ms(5000));
    for end in [End::A, End::B] {
        assert_eq!(pair.machine(end).state(), State::Up, "{end:?}");
        let path: Vec<State> = pair
            .transitions
            .iter()
            .filter(|(_, e, _)| *e == end)
            .map(|(_, _, t)| t.to)
            .collect();
        assert!(
            path == [State::Init, State::Up] || path == [State::Up],
            "{end:?} went {path:?}"
        );
    }
    let a = pair.machine(End::A).snapshot();
    assert_eq!(a.remote_discriminator, THEIR_DISCR);
    assert_eq!(
        pair.machine(End::B).snapshot().remote_discriminator,
        OUR_DISCR
    );
    // Both send their first packet at once: Down meets Down, both go Init then Up within a
    // couple of slow intervals.
    let up = pair.entered(End::A, State::Up).expect("A came up");
    assert!(up < ms(2100), "A came up only after {up:?}");
}

#[test]
fn once_up_both_ends_poll_down_to_the_configured_rate() {
    let mut pair = Pair::new(Config::default(), Config::default());
    pair.run_until(ms(5000));
    for end in [End::A, End::B] {
        let m = pair.machine(end);
        assert!(!m.is_polling(), "{end:?}'s poll got its final");
        assert_eq!(m.transmit_interval(), ms(300), "{end:?}");
        assert_eq!(m.detection_time(), Some(ms(900)), "{end:?}");
    }
    let up = pair.entered(End::A, State::Up).expect("up");
    let after: Vec<&Sent> = pair.sent_by(End::A, up);
    assert!(after.iter().any(|s| s.packet.poll), "A polled after Up");
    assert!(
        pair.sent_by(End::B, up).iter().any(|s| s.packet.final_),
        "B answered with F"
    );
    // Steady state: every gap of A's packets is 75–100 % of 300 ms.
    let steady: Vec<Duration> = pair
        .sent_by(End::A, ms(3000))
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .collect();
    assert!(steady.len() >= 5, "{steady:?}");
    for gap in steady {
        assert!(gap >= ms(225) && gap <= ms(300), "gap {gap:?}");
    }
}

#[test]
fn a_cut_link_is_detected_by_both_ends_within_the_detection_time() {
    let mut pair = Pair::new(Config::default(), Config::default());
    pair.run_until(ms(5000));
    pair.cut = [true, true];
    let cut_at = pair.elapsed();
    pair.run_until(ms(7000));
    for end in [End::A, End::B] {
        let (at, _, t) = *pair
            .transitions
            .iter()
            .rev()
            .find(|(_, e, t)| *e == end && t.to == State::Down)
            .unwrap_or_else(|| panic!("{end:?} never went down"));
        assert_eq!(t.diag, Diagnostic::ControlDetectionTimeExpired);
        assert!(t.is_path_failure());
        let took = at - cut_at;
        // The last packet arrived at most one interval before the cut: 900 ms after it at
        // most, and never before the remaining part of it.
        assert!(took <= ms(900) && took >= ms(600), "{end:?} took {took:?}");
    }
}

#[test]
fn a_session_recovers_once_the_link_heals() {
    let mut pair = Pair::new(Config::default(), Config::default());
    pair.run_until(ms(5000));
    pair.cut = [true, true];
    pair.run_until(ms(7000));
    pair.cut = [false, false];
    pair.run_until(ms(12000));
    for end in [End::A, End::B] {
        assert_eq!(pair.machine(end).state(), State::Up, "{end:?}");
        assert_eq!(pair.machine(end).transmit_interval(), ms(300));
    }
}

#[test]
fn a_one_way_cut_takes_both_ends_down_and_only_the_deaf_end_times_out() {
    let mut pair = Pair::new(Config::default(), Config::default());
    pair.run_until(ms(5000));
    // B's packets are lost: A times out; B hears A go Down and follows.
    pair.cut = [false, true];
    pair.run_until(ms(7000));
    let a = pair
        .transitions
        .iter()
        .find(|(at, e, t)| *at > ms(5000) && *e == End::A && t.to == State::Down)
        .expect("A went down");
    assert_eq!(a.2.diag, Diagnostic::ControlDetectionTimeExpired);
    let b = pair
        .transitions
        .iter()
        .find(|(at, e, t)| *at > ms(5000) && *e == End::B && t.to == State::Down)
        .expect("B went down");
    assert_eq!(b.2.diag, Diagnostic::NeighborSignaledDown);
    assert!(b.2.is_path_failure(), "{b:?}");
}

#[test]
fn a_passive_end_answers_an_active_one() {
    let passive = Config {
        passive: true,
        ..Config::default()
    };
    let mut pair = Pair::new(Config::default(), passive);
    pair.run_until(ms(5000));
    assert_eq!(pair.machine(End::B).state(), State::Up);
    let first = |end: End| pair.log.iter().find(|s| s.from == end).map(|s| s.at);
    assert!(first(End::B) > first(End::A), "the passive end spoke first");
}

#[test]
fn two_passive_ends_never_speak() {
    let passive = Config {
        passive: true,
        ..Config::default()
    };
    let mut pair = Pair::new(passive, passive);
    pair.run_until(ms(10000));
    assert!(pair.log.is_empty(), "{:?}", pair.log);
}

#[test]
fn asymmetric_timers_are_agreed_each_way() {
    let a = Config {
        desired_min_tx: ms(200),
        required_min_rx: ms(400),
        detect_mult: 3,
        ..Config::default()
    };
    let b = Config {
        desired_min_tx: ms(100),
        required_min_rx: ms(100),
        detect_mult: 5,
        ..Config::default()
    };
    let mut pair = Pair::new(a, b);
    pair.run_until(ms(6000));
    let (ma, mb) = (pair.machine(End::A), pair.machine(End::B));
    // A sends every max(200, B's 100) = 200 ms; B every max(100, A's 400) = 400 ms.
    assert_eq!(ma.transmit_interval(), ms(200));
    assert_eq!(mb.transmit_interval(), ms(400));
    // A waits B's 5 × max(A's 400, B's 100); B waits A's 3 × max(B's 100, A's 200).
    assert_eq!(ma.detection_time(), Some(ms(2000)));
    assert_eq!(mb.detection_time(), Some(ms(600)));
}
