//! A session's timers and role, and the configurations a machine refuses.

use std::time::Duration;

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
    /// Desired Min Echo TX Interval (a BFDProfile's `echoInterval`, with `echoMode`): once Up,
    /// send Echo packets no faster than this, nor than the remote asks; `None`: send none.
    pub echo_transmit: Option<Duration>,
    /// Required Min Echo RX Interval: how often we can loop the remote's Echo packets; zero
    /// asks the remote to send us none.
    pub required_min_echo_rx: Duration,
}

impl Default for Config {
    /// MetalLB's BFDProfile defaults: 300 ms both ways, three missed packets.
    fn default() -> Self {
        Self {
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            detect_mult: 3,
            passive: false,
            echo_transmit: None,
            required_min_echo_rx: Duration::ZERO,
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
    /// An Echo transmit interval below a microsecond.
    #[error("echo interval must be at least 1 µs")]
    ZeroEchoInterval,
    /// An interval over what 32 bits of microseconds can carry.
    #[error("{field} interval {interval:?} exceeds {MAX_INTERVAL:?}")]
    IntervalTooLong {
        /// `transmit`, `receive`, `echo transmit` or `echo receive`.
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
        if self
            .echo_transmit
            .is_some_and(|d| d < Duration::from_micros(1))
        {
            return Err(ConfigError::ZeroEchoInterval);
        }
        for (field, interval) in [
            ("transmit", self.desired_min_tx),
            ("receive", self.required_min_rx),
            ("echo transmit", self.echo_transmit.unwrap_or_default()),
            ("echo receive", self.required_min_echo_rx),
        ] {
            if interval > MAX_INTERVAL {
                return Err(ConfigError::IntervalTooLong { field, interval });
            }
        }
        Ok(())
    }
}
