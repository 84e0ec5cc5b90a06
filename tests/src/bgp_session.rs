//! ferrolb's own BGP session ([`ferrolb_speaker::bgp::Session`]) run for a test inside a host's
//! network namespace: a current-thread tokio runtime on a thread that has entered the
//! namespace, so the session's sockets (BGP and BFD) live there. The test keeps the route set,
//! the state and the counters; dropping it stops the session.

use std::sync::Arc;

use std::time::Duration;

use ferrolb_speaker::bgp::bmp::{self, Monitor};
use ferrolb_speaker::bgp::listener::Listener;
use ferrolb_speaker::bgp::session::Counters;
use ferrolb_speaker::bgp::{RouteSet, Session, SessionConfig, SessionState};
use tokio::sync::{oneshot, watch};

use std::future::Future;
use std::net::SocketAddrV6;
use std::pin::Pin;

use ferrolb_speaker::bgp::unnumbered::{Found, Link};
use tokio::sync::Notify;

use crate::netns::{Host, Netns, NsThread};

/// How long an unnumbered session's link may take to show its neighbour.
const FIND_WITHIN: Duration = Duration::from_secs(30);

/// Makes the session's config, in the session's runtime (an unnumbered one first finds its
/// neighbour there, sends its address, and keeps the link finder running with the session).
type MakeConfig = Box<
    dyn FnOnce(
            std::sync::mpsc::Sender<SocketAddrV6>,
        ) -> Pin<Box<dyn Future<Output = (SessionConfig, Option<Link>)> + Send>>
        + Send,
>;

fn given(config: SessionConfig) -> MakeConfig {
    Box::new(move |_| Box::pin(async move { (config, None) }))
}

/// The Cease/Administrative Shutdown message [`SpeakerSession::shutdown`] sends.
pub const SHUTDOWN_MESSAGE: &str = "ferrolb interop test done";

/// Our session, running on a thread inside the speaker's namespace.
#[derive(Debug)]
pub struct SpeakerSession {
    routes: watch::Sender<RouteSet>,
    state: watch::Receiver<SessionState>,
    /// The session's counters.
    pub counters: Arc<Counters>,
    /// The neighbour an unnumbered session found on its link.
    pub neighbour: Option<SocketAddrV6>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<NsThread<()>>,
}

impl SpeakerSession {
    /// Starts the session in `host`'s namespace, advertising `routes`.
    pub fn start(host: &Host, config: SessionConfig, routes: RouteSet) -> Self {
        Self::start_on(&host.ns, given(config), routes, None, None)
    }

    /// An unnumbered session in `ns`: the speaker's link finder ([`Link`]) runs on
    /// `interface` for as long as the session, and once it has found the neighbour, `config`
    /// makes the session to it (its link-local address, scoped to the interface, port 0 to be
    /// set); the listener on `port` takes the router's connections.
    pub fn start_unnumbered(
        ns: &Netns,
        interface: &str,
        config: impl FnOnce(SocketAddrV6) -> SessionConfig + Send + 'static,
        routes: RouteSet,
        port: u16,
    ) -> Self {
        let interface = interface.to_owned();
        let make: MakeConfig = Box::new(move |found| {
            Box::pin(async move {
                let changed = Arc::new(Notify::new());
                let link = Link::start(interface.clone(), Arc::clone(&changed));
                let deadline = tokio::time::Instant::now() + FIND_WITHIN;
                let at = loop {
                    if let Found::Peer(at) = link.found() {
                        break at;
                    }
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    if tokio::time::timeout(left, changed.notified())
                        .await
                        .is_err()
                    {
                        panic!(
                            "no neighbour found on {interface} within {FIND_WITHIN:?}: {:?}",
                            link.found()
                        );
                    }
                };
                let _ = found.send(at);
                (config(at), Some(link))
            })
        });
        Self::start_on(ns, make, routes, Some(port), None)
    }

    /// The same, exporting the session to the BMP collector at `collector` (`ip:port`) as the
    /// speaker binary does with `--bmp-collector`.
    pub fn start_exporting(
        host: &Host,
        config: SessionConfig,
        routes: RouteSet,
        collector: String,
    ) -> Self {
        Self::start_on(&host.ns, given(config), routes, None, Some(collector))
    }

    /// The same, with the speaker's listener on `port` of the host handing the router's
    /// connections to the session, as the speaker binary does.
    pub fn start_listening(
        host: &Host,
        config: SessionConfig,
        routes: RouteSet,
        port: u16,
    ) -> Self {
        Self::start_on(&host.ns, given(config), routes, Some(port), None)
    }

    fn start_on(
        ns: &Netns,
        config: MakeConfig,
        routes: RouteSet,
        listen: Option<u16>,
        collector: Option<String>,
    ) -> Self {
        let (routes_tx, routes_rx) = watch::channel(routes);
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (found_tx, found_rx) = std::sync::mpsc::channel();
        let thread = ns
            .spawn("bgp-session", move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                runtime.block_on(async move {
                    let (config, _link) = config(found_tx).await;
                    let peer = config.peer;
                    let password = config.password.clone();
                    let vrf = config.vrf.clone();
                    let monitor = collector.as_ref().map(|_| Monitor::new("speaker"));
                    let export = monitor
                        .as_ref()
                        .zip(collector)
                        .map(|(m, c)| tokio::spawn(bmp::export(Arc::clone(m), c)));
                    let handle = Session::spawn_monitored(config, routes_rx, monitor.as_ref())
                        .expect("a valid config");
                    let listener = listen.map(|port| {
                        Listener::bind(port, vrf.as_deref())
                            .unwrap_or_else(|e| panic!("listens on {port} in {vrf:?}: {e}"))
                    });
                    let _inbound = listener.as_ref().map(|l| {
                        l.register(peer, password.as_deref(), handle.inbound.clone())
                            .expect("registers the peer")
                    });
                    let _ = handle_tx.send((handle.state.clone(), Arc::clone(&handle.counters)));
                    let _ = stop_rx.await;
                    handle.shutdown(SHUTDOWN_MESSAGE).await;
                    if let (Some(monitor), Some(export)) = (monitor, export) {
                        monitor.close();
                        let _ = tokio::time::timeout(Duration::from_secs(2), export).await;
                    }
                });
            })
            .expect("a thread in the speaker's namespace");
        let (state, counters) = handle_rx.recv().expect("the session starts");
        Self {
            routes: routes_tx,
            state,
            counters,
            // Sent before the session started.
            neighbour: found_rx.try_recv().ok(),
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Replaces the routes to advertise.
    pub fn set_routes(&self, routes: RouteSet) {
        self.routes.send_replace(routes);
    }

    /// The session's state now.
    pub fn state(&self) -> SessionState {
        self.state.borrow().clone()
    }

    /// ManualStop: Cease/Administrative Shutdown, then close; returns once the task ended.
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the session thread ends cleanly");
        }
    }
}

impl Drop for SpeakerSession {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
