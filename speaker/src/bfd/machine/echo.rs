//! The echo function of one session (RFC 5880 §6.4, §6.8.9): when it runs, what it sends, and
//! when its silence takes the session down.
//!
//! It runs while the session is Up, we are configured to send Echo packets, and the remote's
//! last Control packet offered a nonzero Required Min Echo RX Interval (§6.8.9: none may be
//! sent otherwise, and a zero stops them). Echo packets go out every max(ours, the remote's)
//! less 0–25 % jitter (§6.8.9 allows it), the first at once. Each names the session and counts;
//! one that comes back with our discriminator and a sequence number among the last
//! 2 × Detect Mult sent re-arms the echo detection timer. When that timer expires — Detect
//! Mult intervals without a single Echo back — the session goes Down with diagnostic 2, Echo
//! Function Failed. How long that is RFC 5880 leaves to us (§6.8.5); FRR's bfdd uses the
//! interval times the remote's multiplier, we use ours, which the BFDProfile sets.
//!
//! While it runs, the remote's Control packets only need to say the remote is alive: our
//! Required Min RX is raised to at least a second (§6.8.3's SHOULD), through a Poll Sequence,
//! and lowered again when echo stops while Up.

use std::time::{Duration, Instant};

use super::{EchoPacket, Machine, Output, SLOW_TRANSMIT, State, Timer};
use crate::bfd::packet::Diagnostic;

impl Machine {
    /// How long our Echo packets may all go missing, while the echo function runs.
    pub(super) fn echo_detection_time(&self) -> Option<Duration> {
        self.echo_interval
            .map(|interval| interval.saturating_mul(u32::from(self.config.detect_mult)))
    }

    /// The interval the echo function should run at now, or `None` if it should not run.
    fn wanted_echo_interval(&self) -> Option<Duration> {
        let ours = self.config.echo_transmit?;
        let offered = self.state == State::Up && !self.remote_min_echo_rx.is_zero();
        offered.then(|| ours.max(self.remote_min_echo_rx))
    }

    /// Starts, retimes or stops the echo function to match the state and the remote's offer.
    pub(super) fn update_echo(&mut self, now: Instant, out: &mut Vec<Output>) {
        let wanted = self.wanted_echo_interval();
        if wanted == self.echo_interval {
            return;
        }
        let starting = self.echo_interval.is_none();
        self.echo_interval = wanted;
        match self.echo_detection_time() {
            Some(detection) => {
                if starting {
                    self.set_required_min_rx(self.config.required_min_rx.max(SLOW_TRANSMIT));
                }
                // The first Echo at once, and one at a change of interval (§6.8.9 allows a
                // packet between the scheduled ones).
                self.send_echo(now, out);
                self.arm(Timer::EchoDetection, now + detection, out);
            }
            None => {
                self.cancel(Timer::EchoTransmit, out);
                self.cancel(Timer::EchoDetection, out);
                if self.state == State::Up {
                    self.set_required_min_rx(self.config.required_min_rx);
                }
            }
        }
    }

    /// Sends the next Echo packet and arms the one after it.
    pub(super) fn send_echo(&mut self, now: Instant, out: &mut Vec<Output>) {
        let Some(interval) = self.echo_interval else {
            return;
        };
        self.echo_sequence = self.echo_sequence.wrapping_add(1);
        out.push(Output::SendEcho(EchoPacket {
            discriminator: self.local_discr,
            sequence: self.echo_sequence,
        }));
        let next = now + self.jitter.apply(interval, self.config.detect_mult);
        self.arm(Timer::EchoTransmit, next, out);
    }

    /// One of our Echo packets came back: the path works for another detection time.
    pub(super) fn echo_returned(
        &mut self,
        packet: EchoPacket,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let Some(detection) = self.echo_detection_time() else {
            return;
        };
        let age = self.echo_sequence.wrapping_sub(packet.sequence);
        let window = 2 * u32::from(self.config.detect_mult);
        if packet.discriminator != self.local_discr || age >= window {
            return;
        }
        self.arm(Timer::EchoDetection, now + detection, out);
    }

    /// None came back for a detection time (§6.8.5): the forwarding path is gone.
    pub(super) fn echo_failed(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.state == State::Up {
            self.change_state(State::Down, Diagnostic::EchoFunctionFailed, out);
        }
        self.schedule(now, out);
    }
}
