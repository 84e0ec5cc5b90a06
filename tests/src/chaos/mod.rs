//! The chaos suite of issue #13: a seeded, randomized driver on a real apiserver that asks
//! whether ferrolb ever puts one IP on two Services, moves an IP the user did not move, or lets
//! a tenant across a pool's fence — while its controller replicas are killed, frozen and cut
//! off, the apiserver restarts and watches expire.
//!
//! - [`universe`]: the namespaces, pool slots and barrier every run uses, and the seeded RNG.
//! - [`ops`]: what users do (Services, pools, namespaces), with the known-bug [`Scenarios`]
//!   kept out of the default mix; `objects` writes what they ask for.
//! - [`replicas`] runs `ferrolb-controller` processes, each behind a [`proxy`] that can stall,
//!   refuse or reset its connections; [`faults`] lists the faults.
//! - [`world`] reads the apiserver back and interprets it independently of ferrolb's code;
//!   [`checker`] holds the rules; [`settle`] waits for quiescence by polling the objects.
//! - [`driver`] runs it all and returns a [`Report`].

pub mod checker;
pub mod driver;
pub mod faults;
mod objects;
pub mod ops;
pub mod proxy;
pub mod replicas;
pub mod scenarios;
pub mod settle;
pub mod universe;
pub mod world;

pub use driver::{Report, Settings, run};
pub use faults::Fault;
pub use scenarios::Scenarios;
