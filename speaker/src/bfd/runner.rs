//! One BFD session on tokio: a task per peer driving one [`Machine`] over UDP (RFC 5881).
//!
//! The task owns the session's sending socket and its machine; packets reach it from the
//! namespace's shared receiver (`demux`), already decoded and TTL-checked. With echo asked for
//! (single hop only), it also owns the session's [`EchoLink`], opened before the session
//! starts: it sends the machine's Echo packets and hands back those that return.
//! Timers are the machine's own deadlines: the task sleeps until [`Machine::next_deadline`].
//! Time is read from `tokio::time` and handed to the machine as a `std::time::Instant`.
//!
//! The [`BfdHandle`] holds the session's place in the receiver's table. Dropping it, or
//! [`BfdHandle::shutdown`], takes the session to AdminDown: the peer is told, for the
//! Detection Time it was keeping, and the task ends (on its own, if the handle was dropped).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferrolb_config::BfdProfile;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, trace, warn};

use super::demux::{self, Registration, Route};
use super::echo::{EchoFrameError, EchoPacket};
use super::echo_link::{self, EchoLink};
use super::machine::{self, ConfigError, Input, Machine, Output, Snapshot, Timer, Transition};
use super::packet::{ControlPacket, State};
use super::socket::{Hops, SOURCE_PORTS, SendSocket};

/// How many received packets may wait for a busy session.
const INBOX: usize = 16;

/// One session to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdConfig {
    /// The peer.
    pub peer: IpAddr,
    /// Send from this address (a BGP session's local address); `None`: the kernel's choice.
    pub local: Option<IpAddr>,
    /// Send through this interface only (`SO_BINDTODEVICE`).
    pub interface: Option<String>,
    /// Single-hop (RFC 5881) or multihop (RFC 5883).
    pub hops: Hops,
    /// Timers and role. Echo applies to single-hop sessions only (RFC 5883 §3): a multihop
    /// session runs without it, whatever these say.
    pub timers: machine::Config,
}

impl BfdConfig {
    /// A single-hop session with `peer` using `profile`'s timers, from any local address.
    pub fn new(peer: IpAddr, profile: &BfdProfile) -> Self {
        Self {
            peer,
            local: None,
            interface: None,
            hops: Hops::Single,
            timers: timers(profile),
        }
    }
}

/// The machine's timers and role from a BFDProfile; `minimumTtl` goes to [`BfdConfig::hops`].
/// With `echoMode`, `echoInterval` is both how often we would send Echo packets and how often
/// we offer to loop the peer's; whether the path allows either is learnt when the session
/// starts ([`Bfd::spawn`]).
pub fn timers(profile: &BfdProfile) -> machine::Config {
    let echo = profile.echo_mode.then_some(profile.echo_interval);
    machine::Config {
        desired_min_tx: profile.transmit_interval,
        required_min_rx: profile.receive_interval,
        detect_mult: profile.detect_multiplier,
        passive: profile.passive_mode,
        echo_transmit: echo,
        required_min_echo_rx: echo.unwrap_or_default(),
    }
}

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum BfdError {
    /// The timers cannot run.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A session with this peer already runs in this network namespace.
    #[error("a BFD session with {peer} already runs here")]
    DuplicatePeer {
        /// The peer.
        peer: IpAddr,
    },
    /// Port 3784 (or 4784) could not be opened (another BFD daemon in this namespace?).
    #[error("BFD receive socket: {0}")]
    Receive(io::Error),
    /// The session's sending socket could not be opened.
    #[error("BFD send socket: {0}")]
    Send(io::Error),
}

/// What a session reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdStatus {
    /// The peer.
    pub peer: IpAddr,
    /// Where our packets leave from.
    pub local: Option<SocketAddr>,
    /// The machine's variables.
    pub session: Snapshot,
    /// The last state change.
    pub last_change: Option<Transition>,
    /// Times the session came Up.
    pub ups: u64,
    /// Times it fell from Up because the path failed ([`Transition::is_path_failure`]): what a
    /// client such as BGP acts on.
    pub path_failures: u64,
}

impl BfdStatus {
    /// The session state.
    pub fn state(&self) -> State {
        self.session.state
    }

    /// Whether the session is Up.
    pub fn is_up(&self) -> bool {
        self.session.state == State::Up
    }
}

/// Packet counters of one session, for metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub(super) sent: AtomicU64,
    pub(super) received: AtomicU64,
    pub(super) send_errors: AtomicU64,
    pub(super) dropped_ttl: AtomicU64,
    pub(super) dropped_backlog: AtomicU64,
    pub(super) echo_sent: AtomicU64,
    pub(super) echo_send_errors: AtomicU64,
    pub(super) echo_received: AtomicU64,
}

impl Counters {
    /// Packets sent.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Packets received and handed to the machine.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Sends that failed (no route to the peer, interface down).
    pub fn send_errors(&self) -> u64 {
        self.send_errors.load(Ordering::Relaxed)
    }

    /// Packets from the peer dropped for a TTL / hop limit other than 255.
    pub fn dropped_ttl(&self) -> u64 {
        self.dropped_ttl.load(Ordering::Relaxed)
    }

    /// Packets dropped because the session had not read the ones before.
    pub fn dropped_backlog(&self) -> u64 {
        self.dropped_backlog.load(Ordering::Relaxed)
    }

    /// Echo packets sent.
    pub fn echo_sent(&self) -> u64 {
        self.echo_sent.load(Ordering::Relaxed)
    }

    /// Echo packets that could not be sent (the peer's MAC unknown, the interface gone).
    pub fn echo_send_errors(&self) -> u64 {
        self.echo_send_errors.load(Ordering::Relaxed)
    }

    /// Echo packets of this session back from the peer.
    pub fn echo_received(&self) -> u64 {
        self.echo_received.load(Ordering::Relaxed)
    }
}

/// A running session.
#[derive(Debug)]
pub struct BfdHandle {
    /// The session's status, updated on every change.
    pub state: watch::Receiver<BfdStatus>,
    /// Its counters.
    pub counters: Arc<Counters>,
    registration: Registration,
    task: JoinHandle<()>,
}

impl BfdHandle {
    /// The session's status now.
    pub fn status(&self) -> BfdStatus {
        self.state.borrow().clone()
    }

    /// Takes the session to AdminDown: the returned future tells the peer and resolves once
    /// the task has ended (up to the Detection Time the peer was keeping). The session's place
    /// is freed by this call, so a new session with the same peer may start at once.
    pub fn shutdown(self) -> impl Future<Output = ()> + Send + 'static {
        let Self {
            registration, task, ..
        } = self;
        // Leaving the table closes the task's inbox: that is its signal.
        drop(registration);
        async move {
            if let Err(e) = task.await {
                warn!(error = %e, "BFD session task ended abnormally");
            }
        }
    }
}

/// The tokio side of BFD sessions.
#[derive(Debug)]
pub struct Bfd;

impl Bfd {
    /// Starts a session on the current tokio runtime. Its sockets are created in the network
    /// namespace of the calling thread.
    pub fn spawn(mut config: BfdConfig) -> Result<BfdHandle, BfdError> {
        if config.hops != Hops::Single {
            config.timers.echo_transmit = None;
            config.timers.required_min_echo_rx = Duration::ZERO;
        }
        config.timers.validate()?;
        let first_port = rand::random_range(SOURCE_PORTS);
        let socket = SendSocket::bind(
            SocketAddr::new(config.peer, config.hops.port()),
            config.local,
            config.interface.as_deref(),
            first_port,
        )
        .map_err(BfdError::Send)?;
        let counters = Arc::new(Counters::default());
        let (tx, inbox) = mpsc::channel(INBOX);
        let registration = demux::register(
            config.peer,
            config.hops.port(),
            Route {
                tx,
                counters: Arc::clone(&counters),
                min_ttl: config.hops.min_ttl(),
            },
        )?;
        let machine = Machine::new(config.timers, registration.discriminator(), rand::random())?;
        let (state_tx, state) = watch::channel(BfdStatus {
            peer: config.peer,
            local: socket.local_addr().ok(),
            session: machine.snapshot(),
            last_change: None,
            ups: 0,
            path_failures: 0,
        });
        let driver = Driver {
            machine,
            socket,
            inbox,
            state_tx,
            counters: Arc::clone(&counters),
            echo: None,
            echo_pause: None,
            path: (config.peer, config.local, config.interface),
        };
        let span = tracing::info_span!("bfd", peer = %config.peer);
        let task = tokio::spawn(tracing::Instrument::instrument(driver.run(), span));
        Ok(BfdHandle {
            state,
            counters,
            registration,
            task,
        })
    }
}

struct Driver {
    machine: Machine,
    socket: SendSocket,
    inbox: mpsc::Receiver<ControlPacket>,
    state_tx: watch::Sender<BfdStatus>,
    counters: Arc<Counters>,
    echo: Option<EchoLink>,
    /// After a receive error on the echo link: not read again before then.
    echo_pause: Option<tokio::time::Instant>,
    /// Peer, local address and interface: where the Echo packets go.
    path: (IpAddr, Option<IpAddr>, Option<String>),
}

enum Event {
    Packet(ControlPacket),
    Closed,
    Timer(Timer),
    Echo(io::Result<Result<EchoPacket, EchoFrameError>>),
}

impl Driver {
    async fn run(mut self) {
        self.open_echo().await;
        self.apply(Input::Start).await;
        let mut stopping = false;
        let mut frame = [0u8; 256];
        loop {
            let deadline = self.machine.next_deadline();
            let echo_paused = self
                .echo_pause
                .is_some_and(|until| tokio::time::Instant::now() < until);
            let event = tokio::select! {
                packet = self.inbox.recv(), if !stopping => match packet {
                    Some(p) => Event::Packet(p),
                    None => Event::Closed,
                },
                timer = sleep_until(deadline) => Event::Timer(timer),
                echo = echo_link::recv(self.echo.as_ref(), &mut frame), if !echo_paused => {
                    Event::Echo(echo)
                }
            };
            match event {
                Event::Packet(p) => {
                    self.counters.received.fetch_add(1, Ordering::Relaxed);
                    self.apply(Input::Received(p)).await;
                }
                Event::Closed => {
                    stopping = true;
                    self.apply(Input::AdminDown).await;
                }
                Event::Timer(timer) => {
                    if matches!(timer, Timer::Detection | Timer::EchoDetection) {
                        self.drain(&mut frame).await;
                    }
                    self.apply(Input::TimerExpired(timer)).await;
                }
                Event::Echo(echo) => self.echo_back(echo).await,
            }
            if stopping && self.machine.is_silent() {
                debug!("BFD session ended");
                return;
            }
        }
    }

    /// Hands the machine what has already arrived, before it hears that a detection time
    /// passed: after the task was held up (a busy node), the packets that prove the path
    /// alive may be waiting unread, and the deadline would otherwise win the race.
    async fn drain(&mut self, frame: &mut [u8]) {
        while let Ok(packet) = self.inbox.try_recv() {
            self.counters.received.fetch_add(1, Ordering::Relaxed);
            self.apply(Input::Received(packet)).await;
        }
        while let Some(echo) = self.echo.as_ref().map(|link| link.try_recv(frame)) {
            match echo {
                Ok(Some(echo)) => self.echo_back(Ok(echo)).await,
                Ok(None) => break,
                Err(e) => {
                    debug!(error = %e, "BFD echo receive failed");
                    break;
                }
            }
        }
    }

    async fn apply(&mut self, input: Input) {
        let now = tokio::time::Instant::now().into_std();
        for output in self.machine.handle(input, now) {
            match output {
                Output::Send(packet) => match self.socket.send(&packet.encode()).await {
                    Ok(()) => {
                        self.counters.sent.fetch_add(1, Ordering::Relaxed);
                        trace!(state = %packet.state, poll = packet.poll, fin = packet.final_, "sent");
                    }
                    Err(e) => {
                        self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                        debug!(error = %e, "BFD send failed");
                    }
                },
                Output::SendEcho(packet) => self.send_echo(packet).await,
                Output::StateChanged(t) => self.changed(t),
                // The machine keeps its own deadlines; `run` sleeps until the next one.
                Output::ArmTimer { .. } | Output::CancelTimer(_) => {}
            }
        }
        let session = self.machine.snapshot();
        let echo_before = self.state_tx.borrow().session.echo_interval;
        if session.echo_interval != echo_before {
            match session.echo_interval {
                Some(interval) => info!(
                    ?interval,
                    detection_time = ?session.echo_detection_time,
                    "BFD echo function running"
                ),
                None => debug!("BFD echo function stopped"),
            }
        }
        self.state_tx.send_if_modified(|status| {
            if status.session == session {
                false
            } else {
                status.session = session;
                true
            }
        });
    }

    /// Opens the session's [`EchoLink`] if its timers ask for echo, and tells the machine what
    /// the path allows: sending Echo packets needs the link, looping the peer's needs the
    /// interface to forward.
    async fn open_echo(&mut self) {
        let config = *self.machine.config();
        if config.echo_transmit.is_none() && config.required_min_echo_rx.is_zero() {
            return;
        }
        let (peer, local, interface) = self.path.clone();
        let (transmit, receive) = match EchoLink::open(peer, local, interface.as_deref()).await {
            Ok(link) if link.link_local() => {
                warn!(
                    "BFD echo is not run from an IPv6 link-local address (RFC 5881 §4); the \
                     session runs without echo"
                );
                (None, Duration::ZERO)
            }
            Ok(link) => {
                let receive = self.loop_back(&link, config.required_min_echo_rx);
                debug!(interface = link.interface(), "BFD echo link open");
                self.echo = Some(link);
                (config.echo_transmit, receive)
            }
            Err(e) => {
                warn!(
                    error = %e,
                    "cannot send BFD Echo packets to the peer; the session runs without echo"
                );
                (None, Duration::ZERO)
            }
        };
        if let Err(e) = self.machine.set_echo(transmit, receive) {
            warn!(error = %e, "BFD echo settings refused; the session runs without echo");
        }
    }

    /// The Required Min Echo RX Interval to offer: `wanted`, if the node will loop the peer's
    /// Echo packets.
    fn loop_back(&self, link: &EchoLink, wanted: Duration) -> Duration {
        let interface = link.interface();
        if wanted.is_zero() {
            return wanted;
        }
        if self.path.0.is_ipv6() {
            // FRR addresses its IPv6 Echo packets to us and expects our BFD, not our
            // forwarding, to send them back; we do not, so we offer none.
            debug!("not offering to loop the peer's IPv6 Echo packets");
            return Duration::ZERO;
        }
        match link.forwards() {
            Ok(true) => wanted,
            Ok(false) => {
                warn!(
                    interface,
                    "IP forwarding is off on the interface toward the BFD peer, so its Echo                      packets would not come back: offering it none (set                      net.ipv4.conf.{interface}.forwarding=1 to loop them)"
                );
                Duration::ZERO
            }
            Err(e) => {
                warn!(interface, error = %e, "cannot tell whether the interface forwards; offering the BFD peer no echo");
                Duration::ZERO
            }
        }
    }

    async fn send_echo(&mut self, packet: EchoPacket) {
        let Some(link) = self.echo.as_mut() else {
            return;
        };
        match link.send(packet).await {
            Ok(()) => {
                self.counters.echo_sent.fetch_add(1, Ordering::Relaxed);
                trace!(sequence = packet.sequence, "echo sent");
            }
            Err(e) => {
                self.counters
                    .echo_send_errors
                    .fetch_add(1, Ordering::Relaxed);
                debug!(error = %e, "BFD Echo send failed");
            }
        }
    }

    async fn echo_back(&mut self, echo: io::Result<Result<EchoPacket, EchoFrameError>>) {
        match echo {
            Ok(Ok(packet))
                if packet.discriminator == self.machine.snapshot().local_discriminator =>
            {
                self.counters.echo_received.fetch_add(1, Ordering::Relaxed);
                trace!(sequence = packet.sequence, "echo back");
                self.apply(Input::EchoReturned(packet)).await;
            }
            // Another session's, from the same address.
            Ok(Ok(_)) => {}
            Ok(Err(e)) => debug!(error = %e, "dropping a frame on the BFD echo socket"),
            Err(e) => {
                // Not at once again (an error that persists would spin); the machine's timers
                // go on meanwhile.
                warn!(error = %e, "BFD echo receive failed; retrying in 100 ms");
                self.echo_pause = Some(tokio::time::Instant::now() + Duration::from_millis(100));
            }
        }
    }

    fn changed(&mut self, t: Transition) {
        if t.from == State::Up
            && let Some(link) = self.echo.as_mut()
        {
            link.forget_peer_mac();
        }
        if t.is_path_failure() {
            warn!(diag = %t.diag, remote = %t.remote, "BFD session down");
        } else if t.to == State::Up {
            let s = self.machine.snapshot();
            info!(
                remote_discriminator = s.remote_discriminator,
                transmit_interval = ?s.transmit_interval,
                detection_time = ?s.detection_time,
                "BFD session up"
            );
        } else {
            debug!(from = %t.from, to = %t.to, diag = %t.diag, "BFD state change");
        }
        self.state_tx.send_modify(|status| {
            status.last_change = Some(t);
            status.session = self.machine.snapshot();
            if t.to == State::Up {
                status.ups += 1;
            }
            if t.is_path_failure() {
                status.path_failures += 1;
            }
        });
    }
}

/// Sleeps until the machine's next deadline, or forever without one.
async fn sleep_until(deadline: Option<(Timer, std::time::Instant)>) -> Timer {
    match deadline {
        Some((timer, at)) => {
            tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
            timer
        }
        None => std::future::pending().await,
    }
}
