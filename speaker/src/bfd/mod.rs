//! BFD (RFC 5880, asynchronous mode with the Echo function, over single-hop IP, RFC 5881, and
//! multihop paths, RFC 5883): tells a BGP session within a second that the path to its router
//! is gone, where the BGP hold timer takes 90 s.
//!
//! - [`packet`] is the Control packet codec, pure; [`echo`] the Echo packet and its frame, pure.
//! - [`machine`] is the session state machine, sans-IO: time and jitter seed passed in.
//! - [`runner`] runs one machine per peer on tokio ([`Bfd::spawn`]); `demux` shares one
//!   receive socket per address family and port among them, and `socket` holds the UDP
//!   sockets of RFC 5881 (port 3784, source ports 49152–65535, TTL 255 out and required in)
//!   and RFC 5883 (port 4784, TTL 255 out, at least the BFDProfile's `minimumTtl` in).
//! - Echo (a BFDProfile's `echoMode`, single-hop sessions only): `echo_link` writes the
//!   session's Echo packets as whole frames to the peer's MAC, addressed to our own address
//!   and UDP 3785, so the peer's forwarding plane sends them back, and reads them when they
//!   do; the machine takes the session Down with Echo Function Failed when they stop. The
//!   peer's Echo packets are looped by the node's own IP forwarding, so we offer the peer an
//!   echo interval only where the interface forwards, and only for IPv4 (FRR's IPv6 Echo
//!   packets are addressed to us, for its bfdd to bounce, which ours does not).
//! - BGP sessions with a BFDProfile run one (`bgp::session`), and take the session down with
//!   Cease/BFD Down when it reports a path failure: a fall from Up for any reason but the
//!   peer's AdminDown (RFC 5882 §3.2). A session whose BFD never came up establishes anyway.
//!
//! Interoperates with FRR 8.4's `bfdd` (echo included) and BIRD 2.0.12
//! (`tests/tests/bfd_interop.rs`, `tests/tests/bfd_echo.rs`).
//!
//! Not implemented, on purpose:
//! - Authentication (§6.7): packets with the A bit are refused.
//! - Demand mode (§6.6) for ourselves: we never set D. A peer in Demand mode is honoured.

mod demux;
pub mod echo;
mod echo_link;
pub mod machine;
pub mod packet;
pub mod runner;
mod socket;

pub use runner::{Bfd, BfdConfig, BfdError, BfdHandle, BfdStatus, Counters};
pub use socket::Hops;
