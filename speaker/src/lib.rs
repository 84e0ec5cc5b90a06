//! ferrolb's speaker: decides which LoadBalancer IPs this node announces and announces them.
//!
//! [`election`] is the pure layer-2 decision (who answers ARP/NDP for each IP), shared with
//! `kubectl ferrolb explain`/`simulate`. The announcers (ARP/NDP, BGP) and the kube edge are
//! still to come.

pub mod election;
pub mod layer2;
