//! BGP mode: the speaker's sessions with routers and what it advertises on them.
//!
//! - [`packet`] and [`fsm`] are the sans-IO codec and state machine of the `ferrolb-bgp` crate.
//! - [`session`] runs one FSM per peer on tokio over a real TCP connection (TCP MD5, TTL,
//!   source address) and keeps the peer's routes equal to a desired [`RouteSet`].
//! - [`listener`] takes the connections routers open to this node and hands each to the
//!   session of its peer.
//! - [`bmp`] exports the sessions and what they advertise to BMP collectors.

pub use ferrolb_bgp::{fsm, packet};

pub mod advertise;
pub mod bmp;
pub mod listener;
pub mod session;
pub mod unnumbered;

pub use session::{RouteAttrs, RouteSet, Session, SessionConfig, SessionHandle, SessionState};
