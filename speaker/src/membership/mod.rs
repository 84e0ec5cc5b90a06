//! Membership: which speakers are alive, learned among the speakers themselves over UDP on the
//! node network, without the Kubernetes apiserver, fast enough for sub-second layer-2 failover
//! (MetalLB's memberlist takes ~5 s).
//!
//! The protocol is SWIM with suspicion and incarnation numbers, written here rather than taken
//! from `foca`: failover needs every member (the one next in the IP's hash order, not the prober)
//! to learn a death at once, and a leave to reach every member directly; both are small
//! additions to an in-house core and awkward around foca's gossip-only dissemination.
//!
//! - [`swim`] is the protocol, sans-IO: `handle_packet(from, bytes, now)`, `handle_tick(now)`,
//!   `join`/`set_seeds`/`leave`, each returning datagrams to send and membership changes.
//! - [`wire`] is the datagram codec; [`auth`] its HMAC-SHA256 seal with a shared key (from a
//!   Secret) that can be rotated at runtime. Datagrams carry the sender's incarnation and a
//!   sequence number, checked against a replay window; a dead member is kept as a tombstone (for
//!   as long as it is a seed), so no captured datagram can bring it back.
//! - [`Membership::spawn`] is the tokio driver: one UDP socket, one task, a
//!   `watch::Receiver<BTreeSet<String>>` of live node names.
//!
//! With the default [`MembershipSettings`], a member that dies hard is declared dead by every
//! other member within 700 ms plus one network delay (see
//! [`MembershipSettings::detection_bound`]); one that leaves is dropped one network delay after
//! it says so. Each member sends O(1) datagrams per 100 ms probe period whatever the cluster's
//! size: one ping, the acks of the pings it gets (one on average), indirect probes only after a
//! missed ack, and one seed retry per 500 ms while some seed is not live.

pub mod auth;
mod driver;
mod members;
mod metrics;
mod settings;
pub mod swim;
pub mod wire;

pub use driver::{Membership, MembershipHandle};
pub use metrics::{KindLabels, MembershipMetrics, ReasonLabels};
pub use settings::MembershipSettings;
pub use swim::{DownReason, DropReason, Output, Swim};

#[cfg(test)]
mod tests;
