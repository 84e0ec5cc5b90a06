//! The BGP finite state machine of RFC 4271 §8, sans-IO: [`Fsm::handle`] takes an [`Input`]
//! and the current time and returns the [`Output`]s the session layer must carry out (connect,
//! send, close, arm or cancel a timer). It never reads a clock or a socket; timers are
//! deadlines it hands out and expiries it is told about.
//!
//! ```text
//!                 ManualStart / IdleHold expiry
//!        +------+ ------------------------------> +---------+ TcpConnectionConfirmed
//!        | Idle |                                 | Connect | ------------------+
//!        +------+ <--- any error, ManualStop ---- +---------+                   |
//!           ^   ^        (IdleHold armed with            | (passive: Active)    v
//!           |   |         backoff unless stopped)    +--------+  Tcp...  +----------+
//!           |   +----------------------------------- | Active | -------> | OpenSent |
//!           |                                        +--------+          +----------+
//!           |                                                              | OPEN ok:
//!           |   +-------------+   KEEPALIVE   +-------------+              | send KEEPALIVE
//!           +---| Established | <------------ | OpenConfirm | <------------+
//!               +-------------+               +-------------+
//! ```
//!
//! One `Fsm` drives one TCP connection. Connection collisions (RFC 4271 §6.8) are decided by
//! [`resolve_collision`]; the session layer runs a second `Fsm` for the second connection and
//! feeds [`Input::CollisionDump`] to the loser.
//!
//! Deviations from the RFC's text, all deliberate:
//! - A TCP failure in Connect or Active goes to Idle, and Idle restarts by itself after the
//!   IdleHold delay (RFC 4271's optional DampPeerOscillations); every delay, ConnectRetry and
//!   IdleHold alike, comes from one exponential backoff, reset on ManualStart and when a
//!   session ends after staying Established for [`Config::reset_backoff_after`] — so a peer
//!   that resets every session at once is retried less and less often (up to the cap), not
//!   every second with a full re-advertisement each time.
//! - In Idle while waiting out that delay (or after losing a collision), a connection the peer
//!   opened starts the session at once (RFC 4271's automatic start with passive TCP
//!   establishment); only a session never started or stopped by hand refuses it.
//! - `keepalive_time`, when set, is the KEEPALIVE interval, but never more than a third of the
//!   negotiated hold time. With a hold time of zero (no KEEPALIVEs, no hold timer) the
//!   session asks for TCP keepalives instead ([`Negotiated::tcp_keepalive`]), so a router that
//!   rebooted silently is still noticed.
//! - A NOTIFICATION received in OpenSent closes the session without answering it with an FSM
//!   Error NOTIFICATION.
//! - A second OPEN on an established connection is an FSM Error (RFC 6608 subcodes).
//! - BFD Down (RFC 5882) sends Cease/BFD Down (RFC 9384) and closes at once.

mod collision;
mod machine;
mod negotiate;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

pub use collision::{Keep, Speaker, resolve_collision};

use super::packet::{
    DecodeError, Families, Family, GracefulRestart, Message, Notification, Update,
};

/// Where the session stands (RFC 4271 §8.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not trying, or waiting for the IdleHold timer before trying again.
    Idle,
    /// Connecting out.
    Connect,
    /// Waiting for the peer to connect (passive peers, or after a failed OpenSent).
    Active,
    /// Connected; our OPEN is sent.
    OpenSent,
    /// The peer's OPEN is accepted; our KEEPALIVE is sent.
    OpenConfirm,
    /// Exchanging routes.
    Established,
}

impl State {
    /// A bounded metric label: `idle`, `connect`, `active`, `open_sent`, `open_confirm`,
    /// `established`.
    pub fn label(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Connect => "connect",
            State::Active => "active",
            State::OpenSent => "open_sent",
            State::OpenConfirm => "open_confirm",
            State::Established => "established",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        })
    }
}

/// The session's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Retry the connection (Connect, Active).
    ConnectRetry,
    /// No message from the peer for the hold time (OpenSent onwards).
    Hold,
    /// Time to send a KEEPALIVE (OpenConfirm, Established).
    Keepalive,
    /// Leave Idle and try again (automatic start).
    IdleHold,
}

impl Timer {
    const ALL: [Timer; 4] = [
        Timer::ConnectRetry,
        Timer::Hold,
        Timer::Keepalive,
        Timer::IdleHold,
    ];

    fn index(self) -> usize {
        match self {
            Timer::ConnectRetry => 0,
            Timer::Hold => 1,
            Timer::Keepalive => 2,
            Timer::IdleHold => 3,
        }
    }
}

/// What happened.
// `Received` is the large variant; inputs are consumed at once.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Start the session (config applied, peer selected for this node).
    ManualStart,
    /// Stop the session; a connected peer gets Cease/Administrative Shutdown with `message`
    /// (RFC 9003).
    ManualStop {
        /// Why, for the peer's log.
        message: String,
    },
    /// The TCP connection is up: our connect succeeded, or the peer's was accepted.
    TcpConnectionConfirmed,
    /// The TCP connection failed or was closed by the peer.
    TcpConnectionFails,
    /// A message arrived and decoded.
    Received(Message),
    /// A message arrived and did not decode.
    DecodeError(DecodeError),
    /// A timer reached the deadline last armed for it. Expiries the FSM did not arm, or
    /// whose deadline has not come yet, are ignored.
    TimerExpired(Timer),
    /// This connection lost a collision ([`resolve_collision`]).
    CollisionDump,
    /// BFD declared the path to the peer down.
    BfdDown,
}

/// What the session layer must do, in order.
// `Established` and `UpdateReceived` are the large variants; outputs are consumed at once.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open a TCP connection to the peer.
    Connect,
    /// Send a message on the connection.
    Send(Message),
    /// Close the connection (or abandon the connection attempt).
    Close,
    /// Feed `Input::TimerExpired(timer)` at `deadline`, replacing any earlier deadline.
    ArmTimer {
        /// Which timer.
        timer: Timer,
        /// When it expires.
        deadline: Instant,
    },
    /// Forget the timer.
    CancelTimer(Timer),
    /// The session is up.
    Established(Negotiated),
    /// The session, or the attempt at one, is over.
    Down(Down),
    /// The peer sent an UPDATE. `looped` is true when our own ASN is in its path (a router
    /// reflecting our routes back); ferrolb ignores inbound routes either way.
    UpdateReceived {
        /// The UPDATE, with any RFC 7606 errors in `update.errors`.
        update: Update,
        /// Our ASN is in AS_PATH or AS4_PATH.
        looped: bool,
    },
    /// The peer asked for our routes of this family again (RFC 2918).
    RouteRefreshRequested(Family),
}

/// The peer's ASN as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerAsn {
    /// Exactly this ASN.
    Exact(u32),
    /// Our own ASN (iBGP); MetalLB's `dynamicASN: internal`.
    Internal,
    /// Any ASN but ours (eBGP); `dynamicASN: external`.
    External,
}

/// Exponential backoff for reconnecting: `initial`, doubling, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
}

impl Default for Backoff {
    /// 1 s doubling to 60 s.
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

/// Our side of graceful restart (RFC 4724).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracefulRestartConfig {
    /// Seconds the peer should keep our routes while we restart (at most 4095).
    pub restart_time: u16,
    /// Set the Restart State bit: this is the first session since the speaker restarted.
    pub restarting: bool,
}

/// How one session is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Our ASN.
    pub local_asn: u32,
    /// The peer's ASN.
    pub peer_asn: PeerAsn,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// The hold time we offer, in seconds: 0 (no keepalives) or at least 3.
    pub hold_time: u16,
    /// The families we offer; the session needs at least one in common.
    pub families: Families,
    /// Advertise graceful restart.
    pub graceful_restart: Option<GracefulRestartConfig>,
    /// Offer to take and send IPv4 unicast routes with IPv6 next hops (extended next hop
    /// encoding, RFC 8950); offered only when `families` has IPv4 unicast.
    pub extended_next_hop: bool,
    /// Wait for the peer to connect instead of connecting out.
    pub passive: bool,
    /// Delays between attempts.
    pub backoff: Backoff,
    /// How long a session must stay Established for the backoff to start over when it ends.
    pub reset_backoff_after: Duration,
    /// The KEEPALIVE interval (at most a third of the negotiated hold time); `None`: a third
    /// of it. With a hold time of zero, how long the connection may idle before TCP's first
    /// keepalive probe.
    pub keepalive_time: Option<Duration>,
}

impl Config {
    /// A session with MetalLB's defaults: hold time 90 s, both families, active, no graceful
    /// restart, no extended next hop, 1 s → 60 s backoff started over after a session stable for 60 s, keepalives
    /// every third of the hold time.
    pub fn new(local_asn: u32, peer_asn: PeerAsn, router_id: Ipv4Addr) -> Self {
        Self {
            local_asn,
            peer_asn,
            router_id,
            hold_time: 90,
            families: Families::BOTH,
            graceful_restart: None,
            extended_next_hop: false,
            passive: false,
            backoff: Backoff::default(),
            reset_backoff_after: Duration::from_secs(60),
            keepalive_time: None,
        }
    }
}

/// A [`Config`] the FSM cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Hold time of 1 or 2 seconds.
    #[error("hold time {0}s must be 0 or at least 3s")]
    HoldTime(u16),
    /// Router ID 0.0.0.0.
    #[error("router ID 0.0.0.0 is not a valid BGP identifier")]
    RouterId,
    /// ASN 0 (RFC 7607).
    #[error("ASN 0 is reserved")]
    Asn,
    /// No family.
    #[error("no address family to offer")]
    NoFamily,
    /// A zero or inverted backoff.
    #[error("backoff must start above zero and not exceed its maximum")]
    Backoff,
}

/// What the two sides agreed on, from our config and the peer's OPEN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The peer's ASN.
    pub peer_asn: u32,
    /// The peer's BGP identifier.
    pub peer_router_id: Ipv4Addr,
    /// iBGP: the peer's ASN is ours.
    pub internal: bool,
    /// The smaller of both hold times; zero means no hold timer and no keepalives.
    pub hold_time: Duration,
    /// The KEEPALIVE interval: the configured one within a third of the hold time, or `None`
    /// when the hold time is zero.
    pub keepalive: Option<Duration>,
    /// With a hold time of zero, the TCP keepalive the connection must use instead.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Both sides support 4-octet ASNs.
    pub four_octet_as: bool,
    /// The families both sides support.
    pub families: Families,
    /// The peer accepts ROUTE-REFRESH.
    pub route_refresh: bool,
    /// The peer's graceful restart capability, when both sides advertise one.
    pub graceful_restart: Option<GracefulRestart>,
    /// Both sides offered IPv4 unicast routes with IPv6 next hops (RFC 8950) and IPv4
    /// unicast is a negotiated family: IPv4 routes may be sent in MP_REACH_NLRI with an IPv6
    /// next hop ([`crate::packet::UpdateBuilder::ipv4_next_hop_ipv6`]).
    pub extended_next_hop: bool,
}

impl Negotiated {
    /// The codec context for this session's UPDATEs.
    pub fn context(&self) -> super::packet::SessionContext {
        super::packet::SessionContext {
            four_octet_as: self.four_octet_as,
            families: self.families,
        }
    }
}

/// TCP keepalive settings (`SO_KEEPALIVE`, `TCP_KEEPIDLE`, `TCP_KEEPINTVL`, `TCP_KEEPCNT`): a
/// peer that rebooted answers the first probe with a reset; one that is gone is declared so
/// after `idle + interval × probes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpKeepalive {
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between unanswered probes.
    pub interval: Duration,
    /// Unanswered probes before the connection fails.
    pub probes: u32,
}

impl TcpKeepalive {
    /// Idle time when `keepalive_time` is not set.
    pub const DEFAULT_IDLE: Duration = Duration::from_secs(30);

    /// The settings for a session whose configured keepalive time is `keepalive_time`.
    pub fn for_keepalive_time(keepalive_time: Option<Duration>) -> Self {
        let idle = keepalive_time
            .unwrap_or(Self::DEFAULT_IDLE)
            .max(Duration::from_secs(1));
        Self {
            idle,
            interval: (idle / 3).clamp(Duration::from_secs(1), Duration::from_secs(10)),
            probes: 3,
        }
    }

    /// How long a dead peer takes to be noticed: the idle time, then every probe unanswered.
    pub fn detection(&self) -> Duration {
        self.idle + self.interval * self.probes
    }
}

/// The end of a session or of an attempt at one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Down {
    /// The state it was in.
    pub from: State,
    /// Why it ended.
    pub reason: DownReason,
}

impl Down {
    /// Whether an established session went down (worth an Event and a flap count), rather
    /// than an attempt failing.
    pub fn was_established(&self) -> bool {
        self.from == State::Established
    }
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// [`Input::ManualStop`].
    ManualStop,
    /// The TCP connection failed or was closed.
    ConnectionFailed,
    /// Nothing from the peer for the hold time.
    HoldTimerExpired,
    /// The peer sent a NOTIFICATION.
    NotificationReceived(Notification),
    /// We found an error and sent this NOTIFICATION.
    ProtocolError {
        /// The NOTIFICATION sent.
        sent: Notification,
        /// What was wrong, for the log.
        detail: String,
    },
    /// BFD declared the peer down.
    BfdDown,
    /// This connection lost a collision.
    CollisionResolved,
    /// An event the state does not expect, outside a BGP connection.
    UnexpectedEvent(&'static str),
}

impl DownReason {
    /// A bounded metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            DownReason::ManualStop => "manual_stop",
            DownReason::ConnectionFailed => "connection_failed",
            DownReason::HoldTimerExpired => "hold_timer_expired",
            DownReason::NotificationReceived(_) => "notification_received",
            DownReason::ProtocolError { .. } => "protocol_error",
            DownReason::BfdDown => "bfd_down",
            DownReason::CollisionResolved => "collision",
            DownReason::UnexpectedEvent(_) => "unexpected_event",
        }
    }

    /// A Kubernetes Event reason (UpperCamelCase).
    pub fn event_reason(&self) -> &'static str {
        match self {
            DownReason::ManualStop => "ManualStop",
            DownReason::ConnectionFailed => "ConnectionFailed",
            DownReason::HoldTimerExpired => "HoldTimerExpired",
            DownReason::NotificationReceived(_) => "NotificationReceived",
            DownReason::ProtocolError { .. } => "ProtocolError",
            DownReason::BfdDown => "BFDDown",
            DownReason::CollisionResolved => "CollisionResolved",
            DownReason::UnexpectedEvent(_) => "UnexpectedEvent",
        }
    }
}

impl fmt::Display for DownReason {
    /// A sentence fit for a log line or an Event message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::ManualStop => f.write_str("stopped"),
            DownReason::ConnectionFailed => f.write_str("TCP connection failed or closed"),
            DownReason::HoldTimerExpired => f.write_str("hold timer expired"),
            DownReason::NotificationReceived(n) => write!(f, "peer sent NOTIFICATION {n}"),
            DownReason::ProtocolError { sent, detail } => {
                write!(f, "{detail}; sent NOTIFICATION {sent}")
            }
            DownReason::BfdDown => f.write_str("BFD session down"),
            DownReason::CollisionResolved => {
                f.write_str("connection collision: the other connection was kept")
            }
            DownReason::UnexpectedEvent(what) => write!(f, "unexpected {what}"),
        }
    }
}

/// The state machine of one BGP connection.
#[derive(Debug, Clone)]
pub struct Fsm {
    config: Config,
    state: State,
    timers: [Option<Instant>; 4],
    next_delay: Duration,
    negotiated: Option<Negotiated>,
    /// When the current session reached Established.
    established_at: Option<Instant>,
    /// Not started, or stopped by hand: the peer's connections are refused.
    stopped: bool,
}

impl Fsm {
    /// An FSM in Idle; nothing happens until [`Input::ManualStart`].
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        if config.hold_time == 1 || config.hold_time == 2 {
            return Err(ConfigError::HoldTime(config.hold_time));
        }
        if config.router_id.is_unspecified() {
            return Err(ConfigError::RouterId);
        }
        if config.local_asn == 0 || config.peer_asn == PeerAsn::Exact(0) {
            return Err(ConfigError::Asn);
        }
        if config.families.is_empty() {
            return Err(ConfigError::NoFamily);
        }
        if config.backoff.initial.is_zero() || config.backoff.max < config.backoff.initial {
            return Err(ConfigError::Backoff);
        }
        Ok(Self {
            next_delay: config.backoff.initial,
            config,
            state: State::Idle,
            timers: [None; 4],
            negotiated: None,
            established_at: None,
            stopped: true,
        })
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What was negotiated, from OpenConfirm on.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// The codec context for decoding what arrives now: the negotiated one once the peer's
    /// OPEN is accepted, the RFC 4271 baseline before.
    pub fn session_context(&self) -> super::packet::SessionContext {
        self.negotiated
            .as_ref()
            .map(Negotiated::context)
            .unwrap_or_default()
    }

    /// The deadline `timer` is armed for, if it is.
    pub fn deadline(&self, timer: Timer) -> Option<Instant> {
        self.timers[timer.index()]
    }

    /// The earliest armed timer.
    pub fn next_deadline(&self) -> Option<(Timer, Instant)> {
        Timer::ALL
            .into_iter()
            .filter_map(|t| self.timers[t.index()].map(|d| (t, d)))
            .min_by_key(|(_, d)| *d)
    }
}
