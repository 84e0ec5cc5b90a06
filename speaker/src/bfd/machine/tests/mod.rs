//! State machine tests: the RFC 5880 §6.2 transition table, scenarios named as sentences, and
//! two machines wired to each other through a simulated link.

use std::time::{Duration, Instant};

use super::*;

mod echo;
mod pair;
mod props;
mod scenarios;
mod table;

const OUR_DISCR: u32 = 0x0a0a_0001;
const THEIR_DISCR: u32 = 0x0b0b_0002;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn discr(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("non-zero")
}

/// One machine with a clock the test moves by hand.
struct Session {
    machine: Machine,
    start: Instant,
    now: Instant,
}

impl Session {
    fn new(config: Config) -> Self {
        let start = Instant::now();
        Self {
            machine: Machine::new(config, discr(OUR_DISCR), 7).expect("a valid config"),
            start,
            now: start,
        }
    }

    /// Started, with the first (immediate) packet's timer armed.
    fn started(config: Config) -> Self {
        let mut s = Self::new(config);
        s.feed(Input::Start);
        s
    }

    /// Started and brought Up by a remote with `remote`'s timers; the poll that going Up
    /// starts is still open.
    fn up(config: Config) -> Self {
        let mut s = Self::started(config);
        s.receive(remote(State::Down));
        s.receive(remote(State::Up));
        assert_eq!(s.state(), State::Up);
        s
    }

    fn state(&self) -> State {
        self.machine.state()
    }

    fn feed(&mut self, input: Input) -> Vec<Output> {
        self.machine.handle(input, self.now)
    }

    fn receive(&mut self, packet: ControlPacket) -> Vec<Output> {
        self.feed(Input::Received(packet))
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Moves the clock to `timer`'s deadline and fires it.
    fn expire(&mut self, timer: Timer) -> Vec<Output> {
        let deadline = self
            .machine
            .deadline(timer)
            .unwrap_or_else(|| panic!("{timer:?} is not armed"));
        self.now = self.now.max(deadline);
        self.feed(Input::TimerExpired(timer))
    }

    /// Fires the transmit timer; the packet it sent.
    fn next_packet(&mut self) -> ControlPacket {
        let out = self.expire(Timer::Transmit);
        let sent = sent(&out);
        assert_eq!(sent.len(), 1, "{out:#?}");
        sent[0]
    }
}

/// A packet from the remote (their discriminator, ours once past Down), with MetalLB's
/// default timers.
fn remote(state: State) -> ControlPacket {
    ControlPacket {
        diag: Diagnostic::None,
        state,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: THEIR_DISCR,
        your_discriminator: if matches!(state, State::Down | State::AdminDown) {
            0
        } else {
            OUR_DISCR
        },
        desired_min_tx: Interval(300_000),
        required_min_rx: Interval(300_000),
        required_min_echo_rx: Interval::ZERO,
    }
}

fn sent(out: &[Output]) -> Vec<ControlPacket> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(p) => Some(*p),
            _ => None,
        })
        .collect()
}

fn armed(out: &[Output], timer: Timer) -> Option<Instant> {
    out.iter().rev().find_map(|o| match o {
        Output::ArmTimer { timer: t, deadline } if *t == timer => Some(*deadline),
        _ => None,
    })
}

fn cancelled(out: &[Output], timer: Timer) -> bool {
    out.contains(&Output::CancelTimer(timer))
}

fn transition(out: &[Output]) -> Option<Transition> {
    out.iter().find_map(|o| match o {
        Output::StateChanged(t) => Some(*t),
        _ => None,
    })
}
