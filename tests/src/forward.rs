//! A TCP forwarder from inside a network namespace to an address of the test's own namespace.
//!
//! The test apiserver listens on the host's loopback; processes in a node namespace (speakers,
//! kube-proxy) cannot reach it. The forwarder binds a listener on the namespace's loopback (by
//! switching one thread into the namespace just for the `bind`) and relays every connection to
//! the target, so those processes use `https://127.0.0.1:<port>` as if the apiserver were local.
//! Nothing is configured on any interface of the host.

use std::fs::File;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use anyhow::Context as _;
use nix::sched::{CloneFlags, setns};

/// A running forwarder; stops accepting when dropped.
#[derive(Debug)]
pub struct Forwarder {
    port: u16,
    stop: Arc<AtomicBool>,
    listener: TcpListener,
}

impl Forwarder {
    /// Listens on `127.0.0.1:<free port>` inside network namespace `netns` (a name under
    /// `/run/netns`) and relays each connection to `target`.
    pub fn start(netns: &str, target: SocketAddr) -> anyhow::Result<Self> {
        Self::start_on(netns, SocketAddr::from(([127, 0, 0, 1], 0)), target)
    }

    /// Listens on `listen` (an address of the namespace; port 0 picks one) inside network
    /// namespace `netns` and relays each connection to `target`.
    pub fn start_on(netns: &str, listen: SocketAddr, target: SocketAddr) -> anyhow::Result<Self> {
        let path = format!("/run/netns/{netns}");
        let netns_file = File::open(&path).with_context(|| format!("cannot open {path}"))?;
        let listener = thread::scope(|s| {
            s.spawn(|| -> anyhow::Result<TcpListener> {
                let home = File::open("/proc/thread-self/ns/net")
                    .context("cannot open this thread's network namespace")?;
                setns(&netns_file, CloneFlags::CLONE_NEWNET)
                    .with_context(|| format!("cannot enter {netns}"))?;
                let bound = TcpListener::bind(listen);
                // Back home, so this (scoped, ending) thread leaves no trace either way.
                setns(&home, CloneFlags::CLONE_NEWNET).context("cannot return")?;
                bound.with_context(|| format!("cannot listen in {netns}"))
            })
            .join()
            .map_err(|_| anyhow::anyhow!("forwarder set-up thread panicked"))?
        })?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let accepting = listener.try_clone()?;
        let stopped = stop.clone();
        thread::Builder::new()
            .name(format!("fwd-{netns}"))
            .spawn(move || accept_loop(&accepting, target, &stopped))?;
        Ok(Self {
            port,
            stop,
            listener,
        })
    }

    /// The port on the namespace's loopback.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `https://127.0.0.1:<port>`, as seen from inside the namespace.
    pub fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocked accept().
        let _ =
            nix::sys::socket::shutdown(self.listener.as_raw_fd(), nix::sys::socket::Shutdown::Both);
    }
}

fn accept_loop(listener: &TcpListener, target: SocketAddr, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let Ok((inbound, _)) = listener.accept() else {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            continue;
        };
        let Ok(outbound) = TcpStream::connect(target) else {
            let _ = inbound.shutdown(Shutdown::Both);
            continue;
        };
        let _ = relay(inbound, outbound);
    }
}

/// Copies both ways on two threads; each direction closes its write side when its read ends.
fn relay(a: TcpStream, b: TcpStream) -> io::Result<()> {
    let (a2, b2) = (a.try_clone()?, b.try_clone()?);
    thread::spawn(move || pipe(a, b));
    thread::spawn(move || pipe(b2, a2));
    Ok(())
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
