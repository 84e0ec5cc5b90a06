//! Joining the membership of speakers: this node's address, its peers' addresses (the other
//! Nodes' InternalIPs) and the shared key from the Secret — never without it.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use anyhow::Context as _;
use ferrolb_config::NodeName;
use tokio::sync::mpsc;

use super::watch::{Changed, Stores};
use super::{MEMBERLIST_KEY, MembershipConfig, Settings, Speaker, view};
use crate::membership::{Membership, MembershipHandle};
use crate::metrics::Metrics;

/// Starts the membership once this node's address and the key are known (the speaker is not
/// ready meanwhile). `None` when shutdown comes first.
pub(super) async fn start(
    stores: &Stores,
    settings: &Settings,
    config: &MembershipConfig,
    secret_name: &str,
    metrics: &Metrics,
    changed_rx: &mut mpsc::UnboundedReceiver<Changed>,
    shutdown: &mut Pin<&mut impl Future<Output = ()>>,
) -> anyhow::Result<Option<MembershipHandle>> {
    let mut warned_address = false;
    let bind = loop {
        if let Some(addr) = bind_address(stores, &settings.node, config) {
            break addr;
        }
        if !warned_address {
            tracing::warn!(node = %settings.node, "waiting for this node's InternalIP (the Node's status.addresses; or give the membership a bind address): the speaker stays not ready and announces nothing until then");
            warned_address = true;
        }
        tokio::select! {
            _ = changed_rx.recv() => {}
            () = &mut *shutdown => return Ok(None),
        }
    };
    // Never unauthenticated: without the key anyone on the node network could speak
    // for a speaker. Wait for the Secret (not ready meanwhile).
    let mut warned = false;
    let key = loop {
        let key = memberlist_key(stores, secret_name);
        if !key.is_empty() {
            break key;
        }
        if !warned {
            tracing::warn!(
                secret = %secret_name, namespace = %settings.namespace, key = MEMBERLIST_KEY,
                "waiting for the membership key: create the Secret with a random key (the install bundle's does); the speaker stays not ready and announces nothing until then"
            );
            warned = true;
        }
        tokio::select! {
            _ = changed_rx.recv() => {}
            () = &mut *shutdown => return Ok(None),
        }
    };
    let handle = Membership::spawn(
        config.protocol.clone(),
        key,
        bind,
        seeds(stores, &settings.node, bind),
        metrics.membership.clone(),
    )
    .with_context(|| format!("cannot start the membership on {bind}"))?;
    tracing::info!(addr = %bind, "membership started");
    Ok(Some(handle))
}

impl Speaker {
    /// Follows the membership key. A Secret deleted or emptied leaves the key in use in place:
    /// the membership never falls back to unauthenticated datagrams.
    pub(super) fn refresh_key(&self) {
        if let Some(membership) = &self.membership {
            let key = memberlist_key(&self.stores, &self.secret_name);
            if key.is_empty() {
                tracing::warn!(secret = %self.secret_name, "the membership Secret is gone or has no key; keeping the key in use");
                return;
            }
            membership.set_key(key);
        }
    }

    pub(super) fn refresh_seeds(&self) {
        if let (Some(membership), Some(config)) = (&self.membership, &self.settings.membership)
            && let Some(bind) = bind_address(&self.stores, &self.settings.node, config)
        {
            membership.set_seeds(seeds(&self.stores, &self.settings.node, bind));
        }
    }
}

/// This node's membership address.
fn bind_address(stores: &Stores, node: &NodeName, config: &MembershipConfig) -> Option<SocketAddr> {
    let ip = match config.bind {
        Some(ip) => ip,
        None => {
            let me = stores
                .nodes
                .get(&kube::runtime::reflector::ObjectRef::new(node.as_str()))?;
            *view::internal_ips(&me).first()?
        }
    };
    Some(SocketAddr::new(ip, config.port))
}

/// The other nodes' membership addresses (their first InternalIP of our family).
fn seeds(stores: &Stores, me: &NodeName, bind: SocketAddr) -> BTreeMap<String, SocketAddr> {
    stores
        .nodes
        .state()
        .iter()
        .filter_map(|n| {
            let name = n.metadata.name.clone()?;
            if name == me.as_str() {
                return None;
            }
            let ip = view::internal_ips(n)
                .into_iter()
                .find(|ip| ip.is_ipv4() == bind.is_ipv4())?;
            Some((name, SocketAddr::new(ip, bind.port())))
        })
        .collect()
}

/// The shared membership key from the Secret (empty when missing).
fn memberlist_key(stores: &Stores, secret: &str) -> Vec<u8> {
    stores
        .membership_secret
        .state()
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(secret))
        .and_then(|s| s.data.as_ref()?.get(MEMBERLIST_KEY).map(|b| b.0.clone()))
        .unwrap_or_default()
}
