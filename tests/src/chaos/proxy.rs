//! A TCP proxy on the host's loopback between one controller replica and the apiserver, which
//! the chaos driver can turn against the replica: **stall** (bytes are held, connections stay
//! open and silent, as behind a dead link or a full-buffer peer), **refuse** (new connections are
//! closed at once) and **drop** (every open connection is reset). TLS passes through untouched:
//! the apiserver's certificate names 127.0.0.1, so clients verify it as usual.
//!
//! The controller suite uses two more: **hold requests** (what the replica sends is held while
//! what the apiserver sends still arrives, so watches keep delivering while every request hangs;
//! once released, a held request reaches the apiserver even if its client gave up on it, and
//! [`Proxy::unanswered`] says when each has been answered) and a **delay** on every chunk the
//! replica sends.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::Context as _;

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Relays both ways.
    Pass,
    /// Holds every byte until the mode changes; accepts but does not connect new clients.
    Stall,
    /// Closes new connections at once (existing ones still relay; see [`Proxy::drop_all`]).
    Refuse,
    /// Holds every byte the client sends until the mode changes; the server's bytes still
    /// arrive. A connection whose client closed while its bytes were held is kept open towards
    /// the server until the server answers, so the late request is served, not cancelled.
    HoldRequests,
}

impl Mode {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Stall,
            2 => Self::Refuse,
            3 => Self::HoldRequests,
            _ => Self::Pass,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::Pass => 0,
            Self::Stall => 1,
            Self::Refuse => 2,
            Self::HoldRequests => 3,
        }
    }
}

/// How often a stalled relay looks at the mode again.
const STALL_POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Default)]
struct Shared {
    mode: AtomicU8,
    stop: AtomicBool,
    /// Both ends of every relayed connection, to reset them on [`Proxy::drop_all`].
    open: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
    next_id: AtomicU64,
    /// Milliseconds each chunk the client sends waits before it is passed on.
    delay_ms: AtomicU64,
    /// Connections whose held bytes were released and that the server has not answered yet.
    unanswered: AtomicUsize,
}

impl Shared {
    fn mode(&self) -> Mode {
        Mode::from_u8(self.mode.load(Ordering::SeqCst))
    }

    /// Blocks while stalled; false once the proxy stops.
    fn wait_unstalled(&self) -> bool {
        self.wait_passing(Direction::Down)
    }

    /// Blocks while bytes going `direction` are held; false once the proxy stops.
    fn wait_passing(&self, direction: Direction) -> bool {
        while self.holds(direction) {
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            thread::sleep(STALL_POLL);
        }
        !self.stop.load(Ordering::SeqCst)
    }

    fn holds(&self, direction: Direction) -> bool {
        match self.mode() {
            Mode::Stall => true,
            Mode::HoldRequests => direction == Direction::Up,
            Mode::Pass | Mode::Refuse => false,
        }
    }
}

/// A running proxy; stops accepting and resets its connections when dropped.
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    listener: TcpListener,
}

impl Proxy {
    /// Listens on `127.0.0.1:<free port>` and relays to `target`.
    pub fn start(target: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the chaos proxy")?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared::default());
        let accepting = listener.try_clone()?;
        let state = shared.clone();
        thread::Builder::new()
            .name(format!("chaos-proxy-{port}"))
            .spawn(move || accept_loop(&accepting, target, &state))?;
        Ok(Self {
            port,
            shared,
            listener,
        })
    }

    /// `https://127.0.0.1:<port>`.
    pub fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Switches the mode (leaving [`Mode::Stall`] releases the held bytes).
    pub fn set_mode(&self, mode: Mode) {
        self.shared.mode.store(mode.to_u8(), Ordering::SeqCst);
    }

    /// Delays every chunk the client sends by `delay` (zero: none).
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Connections whose held bytes were passed on and that the server has not answered (nor
    /// closed) since: zero once every request held by [`Mode::HoldRequests`] or
    /// [`Mode::Stall`] has been served.
    pub fn unanswered(&self) -> usize {
        self.shared.unanswered.load(Ordering::SeqCst)
    }

    /// Resets every open connection; returns how many there were.
    pub fn drop_all(&self) -> usize {
        let open = std::mem::take(&mut *self.shared.open.lock().unwrap_or_else(|p| p.into_inner()));
        for (a, b) in open.values() {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
        open.len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.drop_all();
        // Wakes the blocked accept().
        let _ =
            nix::sys::socket::shutdown(self.listener.as_raw_fd(), nix::sys::socket::Shutdown::Both);
    }
}

fn accept_loop(listener: &TcpListener, target: SocketAddr, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        let Ok((inbound, _)) = listener.accept() else {
            continue;
        };
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        if shared.mode() == Mode::Refuse {
            let _ = inbound.shutdown(Shutdown::Both);
            continue;
        }
        let shared = shared.clone();
        // Connecting waits out a stall, so it happens on the connection's own thread.
        thread::spawn(move || {
            if !shared.wait_unstalled() || shared.mode() == Mode::Refuse {
                let _ = inbound.shutdown(Shutdown::Both);
                return;
            }
            let Ok(outbound) = TcpStream::connect(target) else {
                let _ = inbound.shutdown(Shutdown::Both);
                return;
            };
            let _ = relay(inbound, outbound, &shared);
        });
    }
}

/// Which way bytes go: up from the client to the server, or down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

/// What the two directions of one connection know of each other.
#[derive(Debug, Default)]
struct Exchange {
    /// Held bytes were passed on; the server has not answered yet.
    awaiting: AtomicBool,
}

impl Exchange {
    fn answered(&self, shared: &Shared) {
        if self.awaiting.swap(false, Ordering::SeqCst) {
            shared.unanswered.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Relays until both directions end, then forgets the connection.
fn relay(a: TcpStream, b: TcpStream, shared: &Arc<Shared>) -> io::Result<()> {
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    shared
        .open
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id, (a.try_clone()?, b.try_clone()?));
    let (a2, b2) = (a.try_clone()?, b.try_clone()?);
    let exchange = Arc::new(Exchange::default());
    let (s2, e2) = (shared.clone(), exchange.clone());
    let other = thread::spawn(move || pipe(a, b, Direction::Up, &s2, &e2));
    pipe(b2, a2, Direction::Down, shared, &exchange);
    let _ = other.join();
    exchange.answered(shared);
    shared
        .open
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    Ok(())
}

/// Copies `from` to `to`, holding each chunk while the proxy holds that direction.
fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    direction: Direction,
    shared: &Shared,
    exchange: &Exchange,
) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if direction == Direction::Down {
            exchange.answered(shared);
        }
        let held = shared.holds(direction);
        if !shared.wait_passing(direction) {
            break;
        }
        if direction == Direction::Up {
            if held && !exchange.awaiting.swap(true, Ordering::SeqCst) {
                shared.unanswered.fetch_add(1, Ordering::SeqCst);
            }
            let delay = shared.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                thread::sleep(Duration::from_millis(delay));
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    // A late request whose client is gone still gets served: the server is not told the
    // client left until it has answered (or closes the connection itself).
    if direction == Direction::Up && exchange.awaiting.load(Ordering::SeqCst) {
        let _ = from.shutdown(Shutdown::Read);
        return;
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
