//! What a session counts, read by the speaker's metrics at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::bgp::packet::MessageType;

/// Message and prefix counters of one session, for metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub(super) sent: [AtomicU64; 5],
    pub(super) received: [AtomicU64; 5],
    pub(super) prefixes_advertised: AtomicU64,
    pub(super) established: AtomicU64,
    pub(super) bfd_downs: AtomicU64,
}

impl Counters {
    pub(super) fn index(kind: MessageType) -> usize {
        match kind {
            MessageType::Open => 0,
            MessageType::Update => 1,
            MessageType::Notification => 2,
            MessageType::Keepalive => 3,
            MessageType::RouteRefresh => 4,
        }
    }

    /// Messages of `kind` sent.
    pub fn sent(&self, kind: MessageType) -> u64 {
        self.sent[Self::index(kind)].load(Ordering::Relaxed)
    }

    /// Messages of `kind` received (decoded).
    pub fn received(&self, kind: MessageType) -> u64 {
        self.received[Self::index(kind)].load(Ordering::Relaxed)
    }

    /// Prefixes the peer currently holds from us.
    pub fn prefixes_advertised(&self) -> u64 {
        self.prefixes_advertised.load(Ordering::Relaxed)
    }

    /// Times the session reached Established.
    pub fn established(&self) -> u64 {
        self.established.load(Ordering::Relaxed)
    }

    /// Times BFD reported the path to the peer down.
    pub fn bfd_downs(&self) -> u64 {
        self.bfd_downs.load(Ordering::Relaxed)
    }
}
