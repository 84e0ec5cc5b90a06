//! ferrolb's controller against a real kube-apiserver: every test starts its own control plane
//! with ferrolb's CRDs, runs the controller in-process ([`RunningController`]) and checks what a
//! user sees — Service status, the pool annotation, the `ferrolb.io/IPAssigned` condition,
//! Events (`events.k8s.io/v1`, what `ferrolb_runtime::events` writes), pool counters and conditions, the
//! `controller` ConfigurationState and the leader Lease.
//!
//! Addresses come from the documentation ranges of DESIGN.md only (the layer-2 pool range
//! 192.0.2.200–250 and 2001:db8:0:1::200–2ff). Everything the controller does asynchronously is
//! awaited with [`eventually`] and a deadline; a negative assertion ("left alone") is made only
//! after the controller provably handled something that came later.

mod allocation;
mod compat;
mod events;
mod leadership;
mod lifecycle;
mod pending;
mod pool_grace;
mod rebuild;
mod support;
mod tenancy;
mod validity;
