//! The BFD session state machine of RFC 5880 §6.8, asynchronous mode with the Echo function,
//! sans-IO: [`Machine::handle`] takes an [`Input`] and the current time and returns the [`Output`]s the
//! runner must carry out (send a packet now, arm or cancel a timer, report a state change). It
//! never reads a clock or a socket, and its jitter comes from a seed it is given, so every run
//! of a test is the same run.
//!
//! ```text
//!                             +--+
//!                             |  | UP, ADMIN DOWN, TIMER
//!                             |  V
//!                     DOWN  +------+  INIT
//!              +------------|      |------------+
//!              |            | DOWN |            |
//!              |  +-------->|      |<--------+  |
//!              |  |         +------+         |  |
//!              |  |                          |  |
//!              |  |               ADMIN DOWN,|  |
//!              |  |ADMIN DOWN,          DOWN,|  |
//!              |  |TIMER                TIMER|  |
//!              V  |                          |  V
//!            +------+                      +------+
//!       +----|      |                      |      |----+
//!   DOWN|    | INIT |--------------------->|  UP  |    |INIT, UP
//!       +--->|      | INIT, UP             |      |<---+
//!            +------+                      +------+
//! ```
//! (RFC 5880 §6.2: the edges are the state the remote reports, or TIMER for the detection
//! time passing.)
//!
//! - Discriminators: ours is given; the remote's is learnt from each packet and forgotten when
//!   a Detection Time passes in silence.
//! - Timers (§6.8.2–§6.8.4): we transmit every max(our Desired Min TX, the remote's Required
//!   Min RX), less 0–25 % jitter (10–25 % with a detect multiplier of 1); the remote is
//!   declared gone after its Detect Mult × max(our Required Min RX, its Desired Min TX).
//! - Slow start (§6.8.3): while not Up, Desired Min TX is at least one second. On Up it drops
//!   to the configured value through a Poll Sequence (§6.5): P rides the periodic packets
//!   until the remote answers with F. Leaving Up restores the slow value at once.
//! - A Poll from the remote is answered at once with F.
//! - Passive mode (§6.1): nothing is sent until the remote has been heard. A Required Min RX of
//!   0 from the remote stops our periodic packets; a remote in Demand mode stops them once
//!   both ends are Up (Polls still go out).
//! - Echo (§6.4, §6.8.9; `machine/echo.rs`): once Up, if configured to and if the remote's last
//!   packet offered a Required Min Echo RX Interval, we send Echo packets every max(ours, its)
//!   less jitter, and declare the session Down with diagnostic 2 (Echo Function Failed) when
//!   none has come back for Detect Mult of those intervals. While echo runs our Required Min
//!   RX is raised to at least a second (§6.8.3), announced with a Poll Sequence, so the
//!   remote's Control packets slow down; it is lowered again, by Poll, when echo stops. A
//!   reduction counts for the remote's Detection Time only once the remote answered the Poll.
//! - [`Input::AdminDown`] (§6.8.16) moves to AdminDown with diagnostic AdministrativelyDown,
//!   tells the remote at once, and keeps telling it (at the slow rate, AdminDown not being Up)
//!   until the Detection Time the remote was keeping has passed; then it falls silent
//!   ([`Machine::is_silent`]).
//!
//! The machine changes its own timers only at the Up/Down edges and as echo starts and stops;
//! besides [`Machine::set_echo`] before it starts, it has no run-time reconfiguration (a new
//! profile is a new session).

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use super::echo::EchoPacket;
use super::packet::{ControlPacket, Diagnostic, Interval, State};

mod config;
mod echo;
mod jitter;

pub use config::{Config, ConfigError, MAX_INTERVAL, SLOW_TRANSMIT};
use jitter::Jitter;

/// The session's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Time to send the next periodic packet.
    Transmit,
    /// The remote has been silent for a Detection Time.
    Detection,
    /// Time to send the next Echo packet.
    EchoTransmit,
    /// None of our Echo packets came back for the echo function's detection time.
    EchoDetection,
}

impl Timer {
    const ALL: [Timer; 4] = [
        Timer::Transmit,
        Timer::Detection,
        Timer::EchoTransmit,
        Timer::EchoDetection,
    ];
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Enable the session (§6.8.16): start transmitting, unless passive. Re-enables a session
    /// taken to AdminDown.
    Start,
    /// A packet for this session arrived: it decoded, and the receiver found this session by
    /// its Your Discriminator or (when 0) by its source address, with TTL 255.
    Received(ControlPacket),
    /// A timer reached the deadline last armed for it. Expiries the machine did not arm, or
    /// whose deadline has not come yet, are ignored.
    TimerExpired(Timer),
    /// Take the session down on purpose (§6.8.16).
    AdminDown,
    /// One of our Echo packets came back (its discriminator found this session).
    EchoReturned(EchoPacket),
}

/// A change of the session's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: State,
    /// The state now.
    pub to: State,
    /// Why (our bfd.LocalDiag after the change).
    pub diag: Diagnostic,
    /// What the remote said it was when this happened.
    pub remote: State,
}

impl Transition {
    /// Whether this change means the path to the remote failed: Up to Down for any reason but
    /// the remote taking its session down on purpose. A remote AdminDown says nothing about
    /// the path, and its clients must not be torn down for it (RFC 5882 §3.2).
    pub fn is_path_failure(&self) -> bool {
        self.from == State::Up && self.to == State::Down && self.remote != State::AdminDown
    }
}

/// What the runner must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this packet now.
    Send(ControlPacket),
    /// Send this Echo packet now.
    SendEcho(EchoPacket),
    /// Feed `Input::TimerExpired(timer)` at `deadline`, replacing any earlier deadline.
    ArmTimer {
        /// Which timer.
        timer: Timer,
        /// When it expires.
        deadline: Instant,
    },
    /// Forget the timer.
    CancelTimer(Timer),
    /// The session changed state.
    StateChanged(Transition),
}

/// A snapshot of the session's variables (RFC 5880 §6.8.1), for status and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// bfd.SessionState.
    pub state: State,
    /// bfd.LocalDiag.
    pub local_diag: Diagnostic,
    /// bfd.RemoteSessionState.
    pub remote_state: State,
    /// The diagnostic in the remote's last packet.
    pub remote_diag: Diagnostic,
    /// bfd.LocalDiscr.
    pub local_discriminator: u32,
    /// bfd.RemoteDiscr (0: not known).
    pub remote_discriminator: u32,
    /// The interval between our periodic packets, before jitter.
    pub transmit_interval: Duration,
    /// How long the remote may stay silent, once it has been heard.
    pub detection_time: Option<Duration>,
    /// The remote's Detect Mult, once heard.
    pub remote_detect_mult: Option<u8>,
    /// The Required Min RX Interval we advertise now.
    pub required_min_rx: Duration,
    /// The remote's Required Min Echo RX Interval (0: it loops no Echo packets).
    pub remote_min_echo_rx: Duration,
    /// While the echo function runs: the interval between our Echo packets, before jitter.
    pub echo_interval: Option<Duration>,
    /// While it runs: how long our Echo packets may all go missing.
    pub echo_detection_time: Option<Duration>,
}

/// One BFD session.
#[derive(Debug, Clone)]
pub struct Machine {
    config: Config,
    state: State,
    local_discr: u32,
    local_diag: Diagnostic,
    remote_discr: u32,
    remote_state: State,
    remote_diag: Diagnostic,
    remote_demand: bool,
    remote_detect_mult: Option<u8>,
    remote_desired_min_tx: Duration,
    remote_min_rx: Duration,
    remote_min_echo_rx: Duration,
    /// bfd.DesiredMinTxInterval as we advertise it now.
    desired_min_tx: Duration,
    /// bfd.RequiredMinRxInterval as we advertise it now.
    required_min_rx: Duration,
    /// The Required Min RX the remote's Detection Time is reckoned from: a reduction counts
    /// only once the remote has answered the Poll announcing it (§6.8.3).
    detect_min_rx: Duration,
    /// A Poll Sequence is under way.
    polling: bool,
    /// Its Poll has gone out.
    poll_sent: bool,
    /// Our intervals changed after the Poll went out: poll once more when it is answered.
    repoll: bool,
    /// While the echo function runs: the interval between Echo packets, before jitter.
    echo_interval: Option<Duration>,
    /// The sequence number of the last Echo packet sent.
    echo_sequence: u32,
    /// While AdminDown: transmit until then.
    admin_down_until: Option<Instant>,
    started: bool,
    /// When the last periodic packet went out.
    last_transmit: Option<Instant>,
    transmit_at: Option<Instant>,
    detect_at: Option<Instant>,
    echo_transmit_at: Option<Instant>,
    echo_detect_at: Option<Instant>,
    jitter: Jitter,
}

impl Machine {
    /// A session in Down with local discriminator `local_discriminator` (unique in this
    /// system) and jitter drawn from `seed`. Nothing happens until [`Input::Start`].
    pub fn new(
        config: Config,
        local_discriminator: NonZeroU32,
        seed: u64,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut jitter = Jitter(seed);
        // Echo packets of an earlier session with this discriminator are not mistaken for ours.
        let echo_sequence = jitter.next() as u32;
        Ok(Self {
            config,
            state: State::Down,
            local_discr: local_discriminator.get(),
            local_diag: Diagnostic::None,
            remote_discr: 0,
            remote_state: State::Down,
            remote_diag: Diagnostic::None,
            remote_demand: false,
            remote_detect_mult: None,
            remote_desired_min_tx: Duration::ZERO,
            // §6.8.1: initialised to 1 µs.
            remote_min_rx: Duration::from_micros(1),
            remote_min_echo_rx: Duration::ZERO,
            desired_min_tx: config.desired_min_tx.max(SLOW_TRANSMIT),
            required_min_rx: config.required_min_rx,
            detect_min_rx: config.required_min_rx,
            polling: false,
            poll_sent: false,
            repoll: false,
            echo_interval: None,
            echo_sequence,
            admin_down_until: None,
            started: false,
            last_transmit: None,
            transmit_at: None,
            detect_at: None,
            echo_transmit_at: None,
            echo_detect_at: None,
            jitter,
        })
    }

    /// Sets the echo function's two halves, which the runner may only know once it has looked
    /// at the path (is there an interface to send frames on, does the node forward). Meant for
    /// before [`Input::Start`]; later, it counts from the next input.
    pub fn set_echo(
        &mut self,
        echo_transmit: Option<Duration>,
        required_min_echo_rx: Duration,
    ) -> Result<(), ConfigError> {
        let config = Config {
            echo_transmit,
            required_min_echo_rx,
            ..self.config
        };
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// The timers and role the machine runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// bfd.SessionState.
    pub fn state(&self) -> State {
        self.state
    }

    /// The session's variables now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            state: self.state,
            local_diag: self.local_diag,
            remote_state: self.remote_state,
            remote_diag: self.remote_diag,
            local_discriminator: self.local_discr,
            remote_discriminator: self.remote_discr,
            transmit_interval: self.transmit_interval(),
            detection_time: self.detection_time(),
            remote_detect_mult: self.remote_detect_mult,
            required_min_rx: self.required_min_rx,
            remote_min_echo_rx: self.remote_min_echo_rx,
            echo_interval: self.echo_interval,
            echo_detection_time: self.echo_detection_time(),
        }
    }

    /// Whether a Poll Sequence of ours is waiting for its Final.
    pub fn is_polling(&self) -> bool {
        self.polling
    }

    /// The deadline armed for `timer`, if any.
    pub fn deadline(&self, timer: Timer) -> Option<Instant> {
        match timer {
            Timer::Transmit => self.transmit_at,
            Timer::Detection => self.detect_at,
            Timer::EchoTransmit => self.echo_transmit_at,
            Timer::EchoDetection => self.echo_detect_at,
        }
    }

    fn slot(&mut self, timer: Timer) -> &mut Option<Instant> {
        match timer {
            Timer::Transmit => &mut self.transmit_at,
            Timer::Detection => &mut self.detect_at,
            Timer::EchoTransmit => &mut self.echo_transmit_at,
            Timer::EchoDetection => &mut self.echo_detect_at,
        }
    }

    /// The earliest armed timer and its deadline.
    pub fn next_deadline(&self) -> Option<(Timer, Instant)> {
        Timer::ALL
            .into_iter()
            .filter_map(|t| self.deadline(t).map(|d| (t, d)))
            .min_by_key(|(_, d)| *d)
    }

    /// Whether the session is AdminDown and has said so for long enough: nothing more will be
    /// sent, and the runner may end.
    pub fn is_silent(&self) -> bool {
        self.state == State::AdminDown && self.transmit_at.is_none()
    }

    /// The interval between periodic packets before jitter (§6.8.2).
    pub fn transmit_interval(&self) -> Duration {
        self.desired_min_tx.max(self.remote_min_rx)
    }

    /// The Detection Time (§6.8.4), once the remote has been heard.
    pub fn detection_time(&self) -> Option<Duration> {
        let mult = self.remote_detect_mult?;
        Some(
            self.detect_min_rx
                .max(self.remote_desired_min_tx)
                .saturating_mul(u32::from(mult)),
        )
    }

    /// Feeds `input` at `now`; returns what to do.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Start => self.start(now, &mut out),
            Input::Received(packet) => self.receive(&packet, now, &mut out),
            Input::TimerExpired(timer) => {
                let slot = self.slot(timer);
                if slot.is_some_and(|at| at <= now) {
                    *slot = None;
                    match timer {
                        Timer::Transmit => self.transmit(now, &mut out),
                        Timer::Detection => self.detection_expired(now, &mut out),
                        Timer::EchoTransmit => self.send_echo(now, &mut out),
                        Timer::EchoDetection => self.echo_failed(now, &mut out),
                    }
                }
            }
            Input::AdminDown => self.admin_down(now, &mut out),
            Input::EchoReturned(packet) => self.echo_returned(packet, now, &mut out),
        }
        // Whatever changed, the echo function follows the state and the remote's offer.
        self.update_echo(now, &mut out);
        out
    }

    fn start(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.state == State::AdminDown {
            self.admin_down_until = None;
            self.change_state(State::Down, self.local_diag, out);
        } else if self.started {
            return;
        }
        self.started = true;
        self.schedule(now, out);
    }

    /// §6.8.6, from "Set bfd.RemoteDiscr" on: the checks of a packet on its own were made by
    /// [`ControlPacket::decode`], the choice of session by the receiver.
    fn receive(&mut self, p: &ControlPacket, now: Instant, out: &mut Vec<Output>) {
        if p.your_discriminator != 0 && p.your_discriminator != self.local_discr {
            return;
        }
        self.remote_discr = p.my_discriminator;
        self.remote_state = p.state;
        self.remote_diag = p.diag;
        self.remote_demand = p.demand;
        self.remote_min_rx = p.required_min_rx.as_duration();
        self.remote_desired_min_tx = p.desired_min_tx.as_duration();
        self.remote_min_echo_rx = p.required_min_echo_rx.as_duration();
        self.remote_detect_mult = Some(p.detect_mult);
        if p.final_ && self.polling {
            self.poll_answered();
        }
        if self.state == State::AdminDown {
            // Discarded (§6.8.6), once the remote's variables are noted.
            self.schedule(now, out);
            return;
        }
        // Heard: the remote has a Detection Time to keep to.
        if let Some(detection) = self.detection_time() {
            self.arm(Timer::Detection, now + detection, out);
        }
        let next = if p.state == State::AdminDown {
            (self.state != State::Down).then_some((State::Down, Diagnostic::NeighborSignaledDown))
        } else {
            match (self.state, p.state) {
                (State::Down, State::Down) => Some((State::Init, self.local_diag)),
                (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                    Some((State::Up, Diagnostic::None))
                }
                (State::Up, State::Down) => Some((State::Down, Diagnostic::NeighborSignaledDown)),
                _ => None,
            }
        };
        if let Some((state, diag)) = next {
            self.change_state(state, diag, out);
        }
        if p.poll {
            out.push(Output::Send(self.packet(false, true)));
        }
        self.schedule(now, out);
    }

    fn detection_expired(&mut self, now: Instant, out: &mut Vec<Output>) {
        if matches!(self.state, State::Init | State::Up) {
            self.change_state(State::Down, Diagnostic::ControlDetectionTimeExpired, out);
        }
        // §6.8.1 and §6.8.18: a silent remote's discriminator and timing are forgotten.
        self.remote_discr = 0;
        self.remote_state = State::Down;
        self.remote_demand = false;
        self.remote_detect_mult = None;
        self.remote_desired_min_tx = Duration::ZERO;
        self.remote_min_rx = Duration::from_micros(1);
        self.remote_min_echo_rx = Duration::ZERO;
        self.schedule(now, out);
    }

    fn admin_down(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.state == State::AdminDown {
            return;
        }
        // The remote's Detection Time as it stands: our Detect Mult times our interval.
        let remote_detection = self
            .transmit_interval()
            .saturating_mul(u32::from(self.config.detect_mult));
        self.change_state(State::AdminDown, Diagnostic::AdministrativelyDown, out);
        if self.remote_discr == 0 || self.remote_min_rx.is_zero() {
            // Nobody is listening for us.
            self.cancel(Timer::Transmit, out);
            return;
        }
        // Tell the remote at once, then (at the slow rate) until that time has passed.
        self.admin_down_until = Some(now + remote_detection);
        out.push(Output::Send(self.packet(false, false)));
        self.last_transmit = Some(now);
        self.arm_transmit(now, out);
    }

    /// Sends the periodic packet that is due and arms the next, or falls silent.
    fn transmit(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.may_transmit(now) {
            out.push(Output::Send(self.packet(self.polling, false)));
            self.poll_sent |= self.polling;
            self.last_transmit = Some(now);
            self.arm_transmit(now, out);
        } else {
            out.push(Output::CancelTimer(Timer::Transmit));
        }
    }

    /// Whether periodic packets may go out now (§6.8.7).
    fn may_transmit(&self, now: Instant) -> bool {
        if !self.started {
            return false;
        }
        if self.state == State::AdminDown {
            return self.admin_down_until.is_some_and(|until| now < until);
        }
        if self.config.passive && self.remote_discr == 0 {
            return false;
        }
        if self.remote_min_rx.is_zero() {
            return false;
        }
        let demand_active =
            self.remote_demand && self.state == State::Up && self.remote_state == State::Up;
        !demand_active || self.polling
    }

    /// Arms, moves earlier, or cancels the transmit timer to match what may be sent now.
    fn schedule(&mut self, now: Instant, out: &mut Vec<Output>) {
        if !self.may_transmit(now) {
            self.cancel(Timer::Transmit, out);
            return;
        }
        match self.transmit_at {
            // The first packet goes out at once, the first after a silence no sooner than
            // the interval allows.
            None if self.state != State::AdminDown => {
                let at = match self.last_transmit {
                    Some(last) => now.max(
                        last + self
                            .jitter
                            .apply(self.transmit_interval(), self.config.detect_mult),
                    ),
                    None => now,
                };
                self.arm(Timer::Transmit, at, out);
            }
            None => self.arm_transmit(now, out),
            // A shorter interval applies to the packet already scheduled.
            Some(at) if at > now + self.transmit_interval() => self.arm_transmit(now, out),
            Some(_) => {}
        }
    }

    fn arm_transmit(&mut self, now: Instant, out: &mut Vec<Output>) {
        let interval = self
            .jitter
            .apply(self.transmit_interval(), self.config.detect_mult);
        self.arm(Timer::Transmit, now + interval, out);
    }

    fn arm(&mut self, timer: Timer, deadline: Instant, out: &mut Vec<Output>) {
        *self.slot(timer) = Some(deadline);
        out.push(Output::ArmTimer { timer, deadline });
    }

    fn cancel(&mut self, timer: Timer, out: &mut Vec<Output>) {
        if self.slot(timer).take().is_some() {
            out.push(Output::CancelTimer(timer));
        }
    }

    fn change_state(&mut self, to: State, diag: Diagnostic, out: &mut Vec<Output>) {
        let from = self.state;
        self.state = to;
        self.local_diag = diag;
        match (from, to) {
            // §6.8.3: the configured rate once Up, announced with a Poll Sequence.
            (_, State::Up) => {
                self.desired_min_tx = self.config.desired_min_tx;
                self.polling = self.desired_min_tx != self.config.desired_min_tx.max(SLOW_TRANSMIT);
                (self.poll_sent, self.repoll) = (false, false);
            }
            (State::Up, _) => {
                self.desired_min_tx = self.config.desired_min_tx.max(SLOW_TRANSMIT);
                self.required_min_rx = self.config.required_min_rx;
                self.detect_min_rx = self.required_min_rx;
                (self.polling, self.poll_sent, self.repoll) = (false, false, false);
            }
            (_, State::AdminDown) => self.polling = false,
            _ => {}
        }
        out.push(Output::StateChanged(Transition {
            from,
            to,
            diag,
            remote: self.remote_state,
        }));
    }

    /// The remote answered our Poll with F (§6.5): the intervals it carried are in force.
    fn poll_answered(&mut self) {
        if self.repoll {
            // They changed again since that Poll went out: the next packets poll anew.
            (self.repoll, self.poll_sent) = (false, false);
        } else {
            (self.polling, self.poll_sent) = (false, false);
            self.detect_min_rx = self.required_min_rx;
        }
    }

    /// Advertises `required_min_rx` from now on; while Up, through a Poll Sequence (§6.8.3).
    /// An increase counts for the remote's Detection Time at once, a reduction once answered.
    fn set_required_min_rx(&mut self, required_min_rx: Duration) {
        if required_min_rx == self.required_min_rx {
            return;
        }
        self.required_min_rx = required_min_rx;
        if self.state != State::Up {
            self.detect_min_rx = required_min_rx;
            return;
        }
        self.detect_min_rx = self.detect_min_rx.max(required_min_rx);
        if self.polling && self.poll_sent {
            self.repoll = true;
        } else {
            self.polling = true;
        }
    }

    fn packet(&self, poll: bool, final_: bool) -> ControlPacket {
        ControlPacket {
            diag: self.local_diag,
            state: self.state,
            poll,
            final_,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.config.detect_mult,
            my_discriminator: self.local_discr,
            your_discriminator: self.remote_discr,
            desired_min_tx: Interval::from_duration(self.desired_min_tx),
            required_min_rx: Interval::from_duration(self.required_min_rx),
            required_min_echo_rx: Interval::from_duration(self.config.required_min_echo_rx),
        }
    }
}

#[cfg(test)]
mod tests;
