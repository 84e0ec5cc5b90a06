//! The pure core of the BGP speaker: the wire codec ([`packet`]) and the session state machine
//! ([`fsm`]). Neither touches a socket or a clock: bytes and values go in, values and actions
//! come out, and time is an argument. The tokio session layer and the advertisement logic sit
//! on top of these two modules.
//!
//! - [`packet`] encodes and decodes BGP-4 messages (RFC 4271) with the extensions a
//!   LoadBalancer speaker meets: MP-BGP for IPv4/IPv6 unicast (RFC 4760), 4-octet ASNs
//!   (RFC 6793), route refresh (RFC 2918), graceful restart (RFC 4724), communities (RFC 1997)
//!   and large communities (RFC 8092). Every malformed input is a typed error that names the
//!   NOTIFICATION it maps to (RFC 4271 §6) and, for UPDATE attributes, the RFC 7606 recovery.
//!   [`packet::UpdateBuilder`] packs many prefixes into as few UPDATEs as fit in 4096 bytes.
//! - [`fsm`] is the RFC 4271 §8 finite state machine, sans-IO:
//!   `Fsm::handle(Input, now) -> Vec<Output>`.
//! - [`session`] runs one FSM per peer on tokio over a real TCP connection (TCP MD5, TTL,
//!   source address) and keeps the peer's routes equal to a desired [`RouteSet`].

pub mod fsm;
pub mod packet;
pub mod session;

pub use session::{RouteAttrs, RouteSet, Session, SessionConfig, SessionHandle, SessionState};
