//! ferrolb's controller: assigns LoadBalancer IPs from IPAddressPools to Services.
//!
//! [`allocator`] is the pure core (pools, sharing, dual stack, pool changes) and [`service`]
//! the pure translation between Services and allocation requests; [`k8s`] is the kube edge
//! (watches, the decision loop, status, Events, leader election) and [`metrics`] serves
//! `/metrics`, `/healthz` and `/readyz`. [`replay`] runs the same decisions over a set of
//! Services without a cluster, for `kubectl ferrolb explain` and `simulate`.

pub mod allocator;
pub mod k8s;
pub mod metrics;
pub mod replay;
pub mod service;
