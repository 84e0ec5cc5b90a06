//! ferrolb's BFD session alone ([`ferrolb_speaker::bfd::Bfd`]), run for a test inside a
//! host's network namespace: a current-thread tokio runtime on a thread that has entered it,
//! so the session's sockets live there. The test reads its status and packet counters;
//! dropping it takes the session to AdminDown (the peer is told) and waits for it to end.

use std::sync::Arc;

use ferrolb_speaker::bfd::{Bfd, BfdConfig, BfdStatus, Counters};
use tokio::sync::{oneshot, watch};

use crate::netns::{Netns, NsThread};

/// A ferrolb BFD session alone, on a thread inside a namespace.
#[derive(Debug)]
pub struct NsBfd {
    state: watch::Receiver<BfdStatus>,
    /// The session's packet counters.
    pub counters: Arc<Counters>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<NsThread<()>>,
}

impl NsBfd {
    /// Starts a session with `config` in `ns`.
    pub fn start(ns: &Netns, config: BfdConfig) -> Self {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = ns
            .spawn("bfd-session", move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                runtime.block_on(async move {
                    let handle = Bfd::spawn(config).expect("BFD starts");
                    let _ = handle_tx.send((handle.state.clone(), Arc::clone(&handle.counters)));
                    let _ = stop_rx.await;
                    handle.shutdown().await;
                });
            })
            .expect("a thread in the namespace");
        let (state, counters) = handle_rx.recv().expect("the session starts");
        Self {
            state,
            counters,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// The session's status now.
    pub fn status(&self) -> BfdStatus {
        self.state.borrow().clone()
    }

    /// AdminDown, told to the peer; returns once the session ended.
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the BFD thread ends cleanly");
        }
    }
}

impl Drop for NsBfd {
    fn drop(&mut self) {
        self.shutdown();
    }
}
