//! The node's BGP listeners: one per VRF its peers use (the default VRF is `None`), open while
//! some peer needs it, each handing the routers' connections to the sessions registered on it.

use std::collections::{BTreeMap, BTreeSet};

use crate::bgp::listener::{Listener, Registration};
use crate::bgp::{SessionConfig, SessionHandle};

const NOT_LISTENING: &str = "this speaker does not listen for BGP (--bgp-listen-port 0); set a port to take the router's connections";

pub(super) struct Listeners {
    /// 0: never listen.
    port: u16,
    open: BTreeMap<Option<String>, Listener>,
    /// Why a VRF's listener could not be opened, as last logged.
    errors: BTreeMap<Option<String>, String>,
}

impl Listeners {
    pub(super) fn new(port: u16) -> Self {
        Self {
            port,
            open: BTreeMap::new(),
            errors: BTreeMap::new(),
        }
    }

    /// Opens a listener in each of `vrfs` not open yet and closes those no peer needs.
    /// Returns whether one was opened (sessions started before may now register).
    pub(super) fn reconcile(&mut self, vrfs: BTreeSet<Option<String>>) -> bool {
        let vrfs = if self.port == 0 {
            BTreeSet::new()
        } else {
            vrfs
        };
        self.open.retain(|vrf, _| vrfs.contains(vrf));
        self.errors.retain(|vrf, _| vrfs.contains(vrf));
        let mut opened = false;
        for vrf in vrfs {
            if self.open.contains_key(&vrf) {
                continue;
            }
            let place = vrf
                .as_ref()
                .map(|v| format!(" in VRF {v:?}"))
                .unwrap_or_default();
            match Listener::bind(self.port, vrf.as_deref()) {
                Ok(listener) => {
                    tracing::info!(
                        port = self.port,
                        vrf = vrf.as_deref().unwrap_or(""),
                        "taking BGP connections from this node's peers"
                    );
                    self.open.insert(vrf.clone(), listener);
                    self.errors.remove(&vrf);
                    opened = true;
                }
                Err(e) => {
                    let why = format!(
                        "this node cannot listen for BGP on port {}{place}: {e} (set --bgp-listen-port, or give the speaker CAP_NET_BIND_SERVICE)",
                        self.port
                    );
                    if self.errors.get(&vrf) != Some(&why) {
                        tracing::warn!("{why}");
                    }
                    self.errors.insert(vrf, why);
                }
            }
        }
        opened
    }

    /// Why a session in `vrf` cannot be taken from the router, if it cannot.
    pub(super) fn error(&self, vrf: &Option<String>) -> Option<String> {
        if self.port == 0 {
            return Some(NOT_LISTENING.to_string());
        }
        self.errors.get(vrf).cloned()
    }

    /// Hands the router's connections for `config`'s peer to the session; the reason when its
    /// VRF has no listener or the peer's key cannot be set on it.
    pub(super) fn register(
        &self,
        config: &SessionConfig,
        handle: &SessionHandle,
    ) -> Result<Registration, String> {
        let Some(listener) = self.open.get(&config.vrf) else {
            return Err(self
                .error(&config.vrf)
                .unwrap_or_else(|| "this node has no BGP listener for it".to_string()));
        };
        let (peer, password) = (config.peer, config.password.as_deref());
        listener
            .register(peer, password, handle.inbound.clone())
            .map_err(|e| {
                let peer = peer.ip();
                tracing::warn!(%peer, error = %e, "cannot take BGP connections from this peer; only ours will carry the session");
                format!("connections from {peer} cannot be taken: {e}")
            })
    }
}
