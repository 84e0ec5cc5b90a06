//! The pure core of ferrolb's BGP speaker: the wire codec ([`packet`]) and the session state
//! machine ([`fsm`]). Neither touches a socket or a clock: bytes and values go in, values and
//! actions come out, and time is an argument. The tokio session layer and the advertisement
//! logic live in the speaker; this crate is what the fuzz target and the property tests drive.
//!
//! - [`packet`] encodes and decodes BGP-4 messages (RFC 4271) with the extensions a
//!   LoadBalancer speaker meets: MP-BGP for IPv4/IPv6 unicast (RFC 4760), 4-octet ASNs
//!   (RFC 6793), route refresh (RFC 2918), graceful restart (RFC 4724), IPv4 routes with IPv6
//!   next hops (RFC 8950), communities (RFC 1997) and large communities (RFC 8092). Every malformed input is a typed error that names the
//!   NOTIFICATION it maps to (RFC 4271 §6) and, for UPDATE attributes, the RFC 7606 recovery.
//!   [`packet::UpdateBuilder`] packs many prefixes into as few UPDATEs as fit in 4096 bytes.
//! - [`fsm`] is the RFC 4271 §8 finite state machine, sans-IO:
//!   `Fsm::handle(Input, now) -> Vec<Output>`.
//! - [`bmp`] encodes (and, for the tests and the fuzz target, decodes) the BGP Monitoring
//!   Protocol messages (RFC 7854, Adj-RIB-Out per RFC 8671) a speaker sends a collector.

pub mod bmp;
pub mod fsm;
pub mod packet;
