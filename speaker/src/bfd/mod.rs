//! BFD (RFC 5880, asynchronous mode, over single-hop IP, RFC 5881, and multihop paths, RFC
//! 5883): tells a BGP session within
//! a second that the path to its router is gone, where the BGP hold timer takes 90 s.
//!
//! - [`packet`] is the Control packet codec, pure.
//! - [`machine`] is the session state machine, sans-IO: time and jitter seed passed in.
//! - [`runner`] runs one machine per peer on tokio ([`Bfd::spawn`]); `demux` shares one
//!   receive socket per address family and port among them, and `socket` holds the UDP
//!   sockets of RFC 5881 (port 3784, source ports 49152–65535, TTL 255 out and required in)
//!   and RFC 5883 (port 4784, TTL 255 out, at least the BFDProfile's `minimumTtl` in).
//! - BGP sessions with a BFDProfile run one (`bgp::session`), and take the session down with
//!   Cease/BFD Down when it reports a path failure: a fall from Up for any reason but the
//!   peer's AdminDown (RFC 5882 §3.2). A session whose BFD never came up establishes anyway.
//!
//! Interoperates with FRR 8.4's `bfdd` and BIRD 2.0.12 (`tests/tests/bfd_interop.rs`).
//!
//! Not implemented, on purpose:
//! - Echo mode (§6.4): we advertise a Required Min Echo RX Interval of 0, so the peer sends
//!   us no Echo packets, and we send none; a BFDProfile with `echoMode` is used without echo
//!   and gets a warning on its status (`ferrolb-config`).
//! - Authentication (§6.7): packets with the A bit are refused.
//! - Demand mode (§6.6) for ourselves: we never set D. A peer in Demand mode is honoured.

mod demux;
pub mod echo;
pub mod machine;
pub mod packet;
pub mod runner;
mod socket;

pub use runner::{Bfd, BfdConfig, BfdError, BfdHandle, BfdStatus, Counters};
pub use socket::Hops;
