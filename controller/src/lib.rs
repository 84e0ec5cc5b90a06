//! ferrolb's controller: assigns LoadBalancer IPs from IPAddressPools to Services.
//!
//! [`allocator`] is the pure core (pools, sharing, dual stack, pool changes); the kube edge
//! (watches, reconcile, status, leader election, metrics) feeds it and writes its answers.

pub mod allocator;
