//! The tokio shell around [`Swim`]: one UDP socket, one task, the timers, the metrics and the
//! live set published on a watch channel.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until};
use tracing::{debug, warn};

use super::metrics::MembershipMetrics;
use super::settings::MembershipSettings;
use super::swim::{Output, Swim};

/// Datagrams read before each timer run, at most (so a flood cannot starve the timers).
const DRAIN_BEFORE_TICK: usize = 256;

/// Starts the membership of this speaker.
#[derive(Debug)]
pub struct Membership;

impl Membership {
    /// Binds one UDP socket on `bind` (the node's IP on the announcing interface, so that a dead
    /// link makes this node look dead; a specific address, not a wildcard, because it is also
    /// what peers gossip), announces this node to `seeds` (the other nodes' names and
    /// membership addresses) and runs the protocol on a task. Must be called within a tokio
    /// runtime. Dropping the handle stops the task without leaving; call
    /// [`MembershipHandle::leave`] on a graceful shutdown.
    pub fn spawn(
        settings: MembershipSettings,
        key: Vec<u8>,
        bind: SocketAddr,
        seeds: BTreeMap<String, SocketAddr>,
        metrics: MembershipMetrics,
    ) -> io::Result<MembershipHandle> {
        let socket = std::net::UdpSocket::bind(bind)?;
        socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(socket)?;
        let local_addr = socket.local_addr()?;
        if key.is_empty() {
            warn!("the membership key is empty: datagrams are not authenticated");
        }
        // An incarnation above any earlier run's of this node.
        let incarnation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let now = Instant::now();
        let mut swim = Swim::new(settings, local_addr, &key, incarnation, rand::random(), now);
        let joined = swim.join(seeds, now);
        let (live_tx, live) = watch::channel(swim.live());
        metrics.members_alive.set(1);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let driver = Driver {
            swim,
            socket,
            live: live_tx,
            metrics,
        };
        let task = tokio::spawn(driver.run(commands_rx, joined));
        Ok(MembershipHandle {
            live,
            commands,
            task: Some(task),
            local_addr,
        })
    }
}

/// The running membership.
pub struct MembershipHandle {
    /// The names of the live speakers, this one included.
    pub live: watch::Receiver<BTreeSet<String>>,
    commands: mpsc::UnboundedSender<Command>,
    task: Option<JoinHandle<()>>,
    local_addr: SocketAddr,
}

impl fmt::Debug for MembershipHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MembershipHandle")
            .field("local_addr", &self.local_addr)
            .field("live", &*self.live.borrow())
            .finish_non_exhaustive()
    }
}

impl MembershipHandle {
    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Replaces the seeds (from the Node list); new ones are pinged at once.
    pub fn set_seeds(&self, seeds: BTreeMap<String, SocketAddr>) {
        let _ = self.commands.send(Command::SetSeeds(seeds));
    }

    /// Replaces the shared key (from the Secret), with a rotation window (see
    /// [`MembershipSettings::key_rotation_window`]).
    pub fn set_key(&self, key: Vec<u8>) {
        let _ = self.commands.send(Command::SetKey(key));
    }

    /// Leaves gracefully: every live member is told at once and drops this node.
    pub async fn leave(mut self) {
        let (done, left) = oneshot::channel();
        if self.commands.send(Command::Leave(done)).is_ok() {
            let _ = left.await;
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MembershipHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

enum Command {
    SetSeeds(BTreeMap<String, SocketAddr>),
    SetKey(Vec<u8>),
    Leave(oneshot::Sender<()>),
}

enum Event {
    Command(Option<Command>),
    Tick,
    Datagram(io::Result<(usize, SocketAddr)>),
}

struct Driver {
    swim: Swim,
    socket: UdpSocket,
    live: watch::Sender<BTreeSet<String>>,
    metrics: MembershipMetrics,
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>, joined: Vec<Output>) {
        self.emit(joined).await;
        let mut buf = vec![0; 65_536];
        loop {
            let deadline = self.swim.next_deadline();
            let event = tokio::select! {
                biased;
                command = commands.recv() => Event::Command(command),
                () = sleep_until(deadline) => Event::Tick,
                received = self.socket.recv_from(&mut buf) => Event::Datagram(received),
            };
            match event {
                Event::Command(Some(Command::SetSeeds(seeds))) => {
                    let out = self.swim.set_seeds(seeds, Instant::now());
                    self.emit(out).await;
                }
                Event::Command(Some(Command::SetKey(key))) => {
                    self.swim.set_key(&key, Instant::now());
                }
                Event::Command(Some(Command::Leave(done))) => {
                    let out = self.swim.leave(Instant::now());
                    self.emit(out).await;
                    let _ = done.send(());
                    return;
                }
                Event::Command(None) => return,
                Event::Tick => {
                    // Datagrams that arrived while this task waited for a CPU are read before
                    // the timers run, so a late wake-up does not become a false suspicion.
                    for _ in 0..DRAIN_BEFORE_TICK {
                        let Ok((len, from)) = self.socket.try_recv_from(&mut buf) else {
                            break;
                        };
                        let out = self.swim.handle_packet(from, &buf[..len], Instant::now());
                        self.emit(out).await;
                    }
                    let out = self.swim.handle_tick(Instant::now());
                    self.emit(out).await;
                }
                Event::Datagram(Ok((len, from))) => {
                    let out = self.swim.handle_packet(from, &buf[..len], Instant::now());
                    self.emit(out).await;
                }
                Event::Datagram(Err(error)) => {
                    debug!(%error, "membership receive failed");
                    sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }

    async fn emit(&mut self, outputs: Vec<Output>) {
        let mut changed = false;
        for output in &outputs {
            self.metrics.record(output);
            match output {
                Output::Send { to, bytes, .. } => {
                    if let Err(error) = self.socket.send_to(bytes, *to).await {
                        debug!(%to, %error, "membership send failed");
                    }
                }
                Output::Up { .. } | Output::Down { .. } => changed = true,
                Output::Suspect { .. } | Output::Received(_) | Output::Dropped(_) => {}
            }
        }
        if changed {
            let live = self.swim.live();
            self.metrics
                .members_alive
                .set(i64::try_from(live.len()).unwrap_or(i64::MAX));
            self.live.send_if_modified(|current| {
                if *current == live {
                    false
                } else {
                    *current = live;
                    true
                }
            });
        }
    }
}
