//! A TCP proxy on the host's loopback between one controller replica and the apiserver, which
//! the chaos driver can turn against the replica: **stall** (bytes are held, connections stay
//! open and silent, as behind a dead link or a full-buffer peer), **refuse** (new connections are
//! closed at once) and **drop** (every open connection is reset). TLS passes through untouched:
//! the apiserver's certificate names 127.0.0.1, so clients verify it as usual.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
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
}

impl Mode {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Stall,
            2 => Self::Refuse,
            _ => Self::Pass,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::Pass => 0,
            Self::Stall => 1,
            Self::Refuse => 2,
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
}

impl Shared {
    fn mode(&self) -> Mode {
        Mode::from_u8(self.mode.load(Ordering::SeqCst))
    }

    /// Blocks while stalled; false once the proxy stops.
    fn wait_unstalled(&self) -> bool {
        while self.mode() == Mode::Stall {
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            thread::sleep(STALL_POLL);
        }
        !self.stop.load(Ordering::SeqCst)
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

/// Relays until both directions end, then forgets the connection.
fn relay(a: TcpStream, b: TcpStream, shared: &Arc<Shared>) -> io::Result<()> {
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    shared
        .open
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id, (a.try_clone()?, b.try_clone()?));
    let (a2, b2) = (a.try_clone()?, b.try_clone()?);
    let s2 = shared.clone();
    let other = thread::spawn(move || pipe(a, b, &s2));
    pipe(b2, a2, shared);
    let _ = other.join();
    shared
        .open
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    Ok(())
}

/// Copies `from` to `to`, holding each chunk while the proxy is stalled.
fn pipe(mut from: TcpStream, mut to: TcpStream, shared: &Shared) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !shared.wait_unstalled() || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
