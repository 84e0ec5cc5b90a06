//! The BFD session that watches a BGP session's path (RFC 5882 §4.3): started when the BGP
//! session first establishes, from the connection's local address, and kept across reconnects
//! while that address stays. Its failures are reported to the FSM as [`Input::BfdDown`]; a
//! session that was never Up, or that the peer took down on purpose (AdminDown), never is —
//! BFD does not hold BGP back from establishing.
//!
//! Why at Established and not at connect: FRR's `bgpd` registers its BFD session before the
//! BGP session is up and replaces it, with the local address, once it is; the replaced one
//! signals Down. A BFD session of ours already Up with the first would take that Down for a
//! failure and reset the BGP session that had just come up.
//!
//! A peer that may be farther than one hop (`ebgpMultiHop`, or GTSM allowing more than one)
//! gets multihop BFD (RFC 5883: port 4784, packets accepted from `minimumTtl` up, 254 by
//! default as in FRR); any other single-hop (RFC 5881). A profile's `echoMode` applies to
//! single-hop sessions only (RFC 5883 §3 rules echo out across routers).
//!
//! [`Input::BfdDown`]: crate::bgp::fsm::Input::BfdDown

use std::net::IpAddr;

use ferrolb_config::BfdProfile;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::bfd::{Bfd, BfdConfig, BfdHandle, BfdStatus, Hops};

/// The least TTL multihop BFD accepts without a `minimumTtl`: FRR's default (one router).
const DEFAULT_MULTIHOP_MIN_TTL: u8 = 254;

/// The BFD side of one BGP session; inert without a profile.
#[derive(Debug, Default)]
pub(super) struct Guard {
    handle: Option<BfdHandle>,
    status: Option<watch::Receiver<BfdStatus>>,
    /// The path failures already reported to the FSM.
    reported: u64,
    /// Said once that a multihop session runs without the echo its profile asks for.
    told_multihop_echo: bool,
}

impl Guard {
    /// Runs BFD with `peer` from `local`, multihop if `multihop`, unless it already does.
    pub fn attach(
        &mut self,
        profile: &BfdProfile,
        peer: IpAddr,
        local: IpAddr,
        multihop: bool,
        interface: Option<&str>,
    ) {
        if let Some(handle) = &self.handle {
            if handle.status().local.map(|l| l.ip()) == Some(local) {
                return;
            }
            debug!(%local, "local address changed; restarting BFD");
            if let Some(old) = self.handle.take() {
                // Its place is freed by this call; the AdminDown goes on behind.
                tokio::spawn(old.shutdown());
            }
        }
        if profile.echo_mode && multihop && !self.told_multihop_echo {
            self.told_multihop_echo = true;
            warn!(
                profile = %profile.name,
                "BFD echo mode does not apply to multihop BFD (RFC 5883); this session runs \
                 BFD without echo"
            );
        }
        if profile.minimum_ttl.is_some() && !multihop {
            debug!(profile = %profile.name, "minimumTtl applies to multihop BFD only");
        }
        let mut config = BfdConfig::new(peer, profile);
        config.local = Some(local);
        // A link-local peer is reached out of its link only.
        config.interface = interface.map(str::to_string);
        if multihop {
            config.hops = Hops::Multi {
                min_ttl: profile.minimum_ttl.unwrap_or(DEFAULT_MULTIHOP_MIN_TTL),
            };
        }
        match Bfd::spawn(config) {
            Ok(handle) => {
                self.reported = handle.status().path_failures;
                self.status = Some(handle.state.clone());
                self.handle = Some(handle);
            }
            Err(e) => {
                warn!(error = %e, profile = %profile.name, "cannot run BFD; BGP goes on without it")
            }
        }
    }

    /// Waits for the BFD status to change; never returns without a session.
    pub async fn changed(&mut self) {
        match self.status.as_mut() {
            Some(status) => {
                if status.changed().await.is_err() {
                    // The session task ended: nothing will change any more.
                    self.status = None;
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    }

    /// Whether BFD saw the path fail since the last call.
    pub fn take_failure(&mut self) -> bool {
        let Some(status) = &self.status else {
            return false;
        };
        let failures = status.borrow().path_failures;
        let new = failures > self.reported;
        self.reported = failures;
        new
    }

    /// The BFD session's status, if one runs.
    pub fn status(&self) -> Option<BfdStatus> {
        self.status.as_ref().map(|s| s.borrow().clone())
    }

    /// Takes BFD to AdminDown and waits for it to end.
    pub async fn shutdown(&mut self) {
        self.status = None;
        if let Some(handle) = self.handle.take() {
            handle.shutdown().await;
        }
    }
}
