//! The BFD session state machine of RFC 5880 §6.8, asynchronous mode, sans-IO:
//! [`Machine::handle`] takes an [`Input`] and the current time and returns the [`Output`]s the
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
//! - [`Input::AdminDown`] (§6.8.16) moves to AdminDown with diagnostic AdministrativelyDown,
//!   tells the remote at once, and keeps telling it (at the slow rate, AdminDown not being Up)
//!   until the Detection Time the remote was keeping has passed; then it falls silent
//!   ([`Machine::is_silent`]).
//!
//! The machine only changes its own timers at the Up/Down edges; it has no run-time
//! reconfiguration (a new profile is a new session).

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use super::packet::{ControlPacket, Diagnostic, Interval, State};

/// The slowest a session transmits while not Up (RFC 5880 §6.8.3: not less than one second).
pub const SLOW_TRANSMIT: Duration = Duration::from_secs(1);

/// The most an interval may be: it travels as a 32-bit count of microseconds.
pub const MAX_INTERVAL: Duration = Duration::from_micros(u32::MAX as u64);

/// A session's timers and role (a BFDProfile's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Desired Min TX Interval once Up.
    pub desired_min_tx: Duration,
    /// Required Min RX Interval.
    pub required_min_rx: Duration,
    /// Detect Mult.
    pub detect_mult: u8,
    /// Wait for the remote to speak first.
    pub passive: bool,
}

impl Default for Config {
    /// MetalLB's BFDProfile defaults: 300 ms both ways, three missed packets.
    fn default() -> Self {
        Self {
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            detect_mult: 3,
            passive: false,
        }
    }
}

/// A configuration the machine cannot run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Detect Mult 0 (the packet field must not be 0).
    #[error("detect multiplier must be at least 1")]
    ZeroDetectMult,
    /// Desired Min TX 0 (reserved on the wire) or below a microsecond.
    #[error("desired minimum transmit interval must be at least 1 µs")]
    ZeroTransmitInterval,
    /// An interval over what 32 bits of microseconds can carry.
    #[error("{field} interval {interval:?} exceeds {MAX_INTERVAL:?}")]
    IntervalTooLong {
        /// `transmit` or `receive`.
        field: &'static str,
        /// The interval.
        interval: Duration,
    },
}

impl Config {
    /// Checks that a machine can run with these timers.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.detect_mult == 0 {
            return Err(ConfigError::ZeroDetectMult);
        }
        if self.desired_min_tx < Duration::from_micros(1) {
            return Err(ConfigError::ZeroTransmitInterval);
        }
        for (field, interval) in [
            ("transmit", self.desired_min_tx),
            ("receive", self.required_min_rx),
        ] {
            if interval > MAX_INTERVAL {
                return Err(ConfigError::IntervalTooLong { field, interval });
            }
        }
        Ok(())
    }
}

/// The session's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Time to send the next periodic packet.
    Transmit,
    /// The remote has been silent for a Detection Time.
    Detection,
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
}

/// SplitMix64: small, seedable, and good enough to spread transmissions.
#[derive(Debug, Clone)]
struct Jitter(u64);

impl Jitter {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `interval` less a random 0–25 % (10–25 % when `detect_mult` is 1), §6.8.7.
    fn apply(&mut self, interval: Duration, detect_mult: u8) -> Duration {
        let (lowest, highest) = if detect_mult == 1 {
            (750, 900)
        } else {
            (750, 1000)
        };
        let per_mille = lowest + self.next() % (highest - lowest + 1);
        let nanos = interval.as_nanos() * u128::from(per_mille) / 1000;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
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
    /// bfd.DesiredMinTxInterval as we advertise it now.
    desired_min_tx: Duration,
    /// A Poll Sequence is under way.
    polling: bool,
    /// While AdminDown: transmit until then.
    admin_down_until: Option<Instant>,
    started: bool,
    /// When the last periodic packet went out.
    last_transmit: Option<Instant>,
    transmit_at: Option<Instant>,
    detect_at: Option<Instant>,
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
            desired_min_tx: config.desired_min_tx.max(SLOW_TRANSMIT),
            polling: false,
            admin_down_until: None,
            started: false,
            last_transmit: None,
            transmit_at: None,
            detect_at: None,
            jitter: Jitter(seed),
        })
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
        }
    }

    /// The earliest armed timer and its deadline.
    pub fn next_deadline(&self) -> Option<(Timer, Instant)> {
        [Timer::Transmit, Timer::Detection]
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
            self.config
                .required_min_rx
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
            Input::TimerExpired(Timer::Transmit) => {
                if self.transmit_at.is_some_and(|at| at <= now) {
                    self.transmit_at = None;
                    self.transmit(now, &mut out);
                }
            }
            Input::TimerExpired(Timer::Detection) => {
                if self.detect_at.is_some_and(|at| at <= now) {
                    self.detect_at = None;
                    self.detection_expired(now, &mut out);
                }
            }
            Input::AdminDown => self.admin_down(now, &mut out),
        }
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
        self.remote_detect_mult = Some(p.detect_mult);
        if p.final_ && self.polling {
            self.polling = false;
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
        match timer {
            Timer::Transmit => self.transmit_at = Some(deadline),
            Timer::Detection => self.detect_at = Some(deadline),
        }
        out.push(Output::ArmTimer { timer, deadline });
    }

    fn cancel(&mut self, timer: Timer, out: &mut Vec<Output>) {
        let slot = match timer {
            Timer::Transmit => &mut self.transmit_at,
            Timer::Detection => &mut self.detect_at,
        };
        if slot.take().is_some() {
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
            }
            (State::Up, _) => {
                self.desired_min_tx = self.config.desired_min_tx.max(SLOW_TRANSMIT);
                self.polling = false;
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
            required_min_rx: Interval::from_duration(self.config.required_min_rx),
            required_min_echo_rx: Interval::ZERO,
        }
    }
}

#[cfg(test)]
mod tests;
