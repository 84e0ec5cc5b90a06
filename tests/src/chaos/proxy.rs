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
//!
//! Holding requests reads the TLS record layer (its headers are clear text): a connection opened
//! during the hold still completes its handshake and only its application data is held. A
//! request on a new connection then waits on the wire like one on an old connection, instead of
//! never being sent because its client gave up during a held handshake.

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
    /// Holds the application data the client sends until the mode changes (TLS handshakes
    /// complete); the server's bytes still arrive. A connection whose client closed while its bytes were held is kept open towards
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
    /// The server has sent encrypted records: TLS 1.3, whose client then sends its Finished
    /// message as its first application-data record.
    server_encrypted: AtomicBool,
}

/// The TLS content type of application data (and of every encrypted TLS 1.3 record).
const APPLICATION_DATA: u8 = 23;

/// Where one direction of a TLS stream is in its records.
#[derive(Debug, Default)]
struct Records {
    /// Header bytes of the current record read so far (a header is 5 bytes).
    header: usize,
    /// The body length, as its two header bytes arrive.
    length: usize,
    /// Body bytes of the current record still to come.
    left: usize,
    /// The current record's content type.
    kind: u8,
    /// Application-data records begun so far.
    encrypted: u64,
}

impl Records {
    /// Reads `bytes` on, and says how many of them come before the first byte of a request:
    /// an application-data record other than a TLS 1.3 client's Finished (its first encrypted
    /// record, sent after the server's encrypted flight). All of `bytes` if none.
    fn before_requests(&mut self, bytes: &[u8], server_encrypted: bool) -> usize {
        let mut request_at = None;
        for (i, &b) in bytes.iter().enumerate() {
            if self.left == 0 && self.header == 0 {
                self.kind = b;
                if b == APPLICATION_DATA {
                    self.encrypted += 1;
                    let finished = self.encrypted == 1 && server_encrypted;
                    if !finished && request_at.is_none() {
                        request_at = Some(i);
                    }
                }
            }
            if self.header < 5 {
                if self.header >= 3 {
                    self.length = (self.length << 8) | usize::from(b);
                }
                self.header += 1;
                if self.header == 5 {
                    self.left = std::mem::take(&mut self.length);
                    if self.left == 0 {
                        self.header = 0;
                    }
                }
            } else {
                self.left -= 1;
                if self.left == 0 {
                    self.header = 0;
                }
            }
        }
        request_at.unwrap_or(bytes.len())
    }

    /// Reads `bytes` on; true if an application-data record began in them.
    fn saw_encrypted(&mut self, bytes: &[u8]) -> bool {
        let before = self.encrypted;
        self.before_requests(bytes, false);
        self.encrypted > before
    }
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
    let mut records = Records::default();
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut start = 0;
        match direction {
            Direction::Down => {
                exchange.answered(shared);
                // Before the bytes reach the client, which answers them with its Finished.
                if records.saw_encrypted(&buf[..n]) {
                    exchange.server_encrypted.store(true, Ordering::SeqCst);
                }
            }
            Direction::Up => {
                let encrypted = exchange.server_encrypted.load(Ordering::SeqCst);
                let free = records.before_requests(&buf[..n], encrypted);
                if shared.mode() == Mode::HoldRequests {
                    // The handshake goes through; the requests after it wait.
                    if to.write_all(&buf[..free]).is_err() {
                        break;
                    }
                    start = free;
                }
            }
        }
        if start == n {
            continue;
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
        if to.write_all(&buf[start..n]).is_err() {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One TLS record: its content type, a version, its length and a body of `len` bytes.
    fn record(kind: u8, len: u16) -> Vec<u8> {
        let mut r = vec![kind, 3, 3];
        r.extend_from_slice(&len.to_be_bytes());
        r.extend(std::iter::repeat_n(0xAB, usize::from(len)));
        r
    }

    #[test]
    fn a_tls13_clients_finished_passes_and_its_first_request_is_where_holding_starts() {
        let mut client = Records::default();
        let hello = record(22, 300);
        assert_eq!(client.before_requests(&hello, false), hello.len());
        // The server's flight: a hello in clear text, then encrypted records.
        let mut server = Records::default();
        assert!(!server.saw_encrypted(&record(22, 90)));
        assert!(server.saw_encrypted(&[record(20, 1), record(23, 2000)].concat()));
        // Change cipher spec, Finished and the first request, in one chunk.
        let (ccs, finished, request) = (record(20, 1), record(23, 53), record(23, 400));
        let flight = [ccs.clone(), finished.clone(), request].concat();
        assert_eq!(
            client.before_requests(&flight, true),
            ccs.len() + finished.len()
        );
        // Later records are requests from their first byte.
        assert_eq!(client.before_requests(&record(23, 10), true), 0);
    }

    #[test]
    fn a_record_split_across_reads_is_followed_to_its_end() {
        let mut client = Records::default();
        let hello = record(22, 300);
        let (head, tail) = hello.split_at(3);
        assert_eq!(client.before_requests(head, false), 3);
        assert_eq!(client.before_requests(tail, false), tail.len());
        // TLS 1.2: no encrypted record came from the server, so the first one is a request.
        let chunk = [record(22, 40), record(23, 100)].concat();
        assert_eq!(client.before_requests(&chunk, false), 45);
    }

    /// Reads what arrives until `want` bytes came or `within` passed.
    fn read_some(stream: &mut TcpStream, want: usize, within: Duration) -> io::Result<Vec<u8>> {
        stream.set_read_timeout(Some(within))?;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() < want {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        Ok(got)
    }

    #[test]
    fn a_connection_opened_during_a_hold_shakes_hands_and_its_request_arrives_after_its_client_left()
    -> anyhow::Result<()> {
        let server = TcpListener::bind("127.0.0.1:0")?;
        let proxy = Proxy::start(server.local_addr()?)?;
        proxy.set_mode(Mode::HoldRequests);
        let mut client = TcpStream::connect(("127.0.0.1", proxy.port))?;
        let (mut upstream, _) = server.accept()?;

        // A TLS 1.3 handshake: it goes through although requests are held.
        let hello = record(22, 200);
        client.write_all(&hello)?;
        assert_eq!(
            read_some(&mut upstream, hello.len(), Duration::from_secs(5))?,
            hello
        );
        let flight = [record(22, 90), record(20, 1), record(23, 1500)].concat();
        upstream.write_all(&flight)?;
        assert_eq!(
            read_some(&mut client, flight.len(), Duration::from_secs(5))?,
            flight
        );
        let finished = [record(20, 1), record(23, 53)].concat();
        let request = record(23, 300);
        client.write_all(&[finished.clone(), request.clone()].concat())?;
        assert_eq!(
            read_some(&mut upstream, finished.len(), Duration::from_secs(5))?,
            finished
        );

        // The request is held; its client gives up on it.
        assert!(read_some(&mut upstream, 1, Duration::from_millis(300))?.is_empty());
        drop(client);
        proxy.set_mode(Mode::Pass);
        assert_eq!(
            read_some(&mut upstream, request.len(), Duration::from_secs(5))?,
            request
        );
        assert_eq!(proxy.unanswered(), 1, "the late request has no answer yet");
        upstream.write_all(&record(23, 20))?;
        let answered = (0..250).any(|_| {
            thread::sleep(Duration::from_millis(20));
            proxy.unanswered() == 0
        });
        assert!(answered, "the server's answer was not counted");
        Ok(())
    }
}
