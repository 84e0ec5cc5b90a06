//! The session's reports to BMP ([`crate::bgp::bmp`]): the OPENs and NOTIFICATIONs it sends
//! and receives, its coming up and going down, and every UPDATE it sends.

use std::sync::Arc;

use super::adj_rib_out::announcements;
use super::{Driver, RouteSet};
use crate::bgp::bmp;
use crate::bgp::fsm::{Down, DownReason};
use crate::bgp::packet::{Message, Update};

impl Driver {
    /// `message` went to the peer as `bytes`.
    pub(super) fn monitor_sent(&mut self, message: &Message, bytes: &[u8]) {
        let Some(tap) = self.bmp.as_mut() else {
            return;
        };
        match message {
            Message::Open(_) => tap.open_sent(bytes),
            Message::Update(_) => tap.update_sent(bytes),
            Message::Notification(_) => tap.notification_sent(bytes),
            _ => {}
        }
    }

    /// `message` came from the peer as `frame`.
    pub(super) fn monitor_received(&mut self, message: &Message, frame: &[u8]) {
        if let (Some(tap), Message::Open(_)) = (self.bmp.as_mut(), message) {
            tap.open_received(frame);
        }
    }

    /// The session is Established (call once `self.established` is set).
    pub(super) fn monitor_established(&mut self) {
        let (Some(tap), Some(est), Some(conn)) = (self.bmp.as_mut(), &self.established, &self.conn)
        else {
            return;
        };
        let Ok(remote) = conn.read.peer_addr() else {
            return;
        };
        let local_asn = self.config.fsm.local_asn;
        let negotiated = est.negotiated.clone();
        let est = est.clone();
        // The table committed is `self.advertised`, which holds only what the session carries.
        let encode: bmp::RibEncoder = Box::new(move |rib: &RouteSet| {
            let ctx = est.negotiated.context();
            announcements(&est, local_asn, rib)
                .into_iter()
                .filter_map(|u| Message::Update(u).encode(&ctx).ok())
                .collect()
        });
        let ctx = negotiated.context();
        let end_of_rib = negotiated
            .families
            .iter()
            .filter_map(|f| Message::Update(Update::end_of_rib(f)).encode(&ctx).ok())
            .collect();
        tap.established(bmp::SessionUp {
            local: conn.local,
            remote,
            peer_asn: negotiated.peer_asn,
            peer_bgp_id: negotiated.peer_router_id,
            four_octet_as: negotiated.four_octet_as,
            encode,
            end_of_rib,
        });
    }

    /// The UPDATEs written since the last commit go to the collectors; with `rib`, the peer
    /// now holds `self.advertised`; with `end_of_rib`, the End-of-RIBs were among them.
    pub(super) fn monitor_commit(&mut self, rib: bool, end_of_rib: bool) {
        let Some(tap) = self.bmp.as_mut() else {
            return;
        };
        let rib = rib.then(|| Arc::new(self.advertised.clone()));
        tap.commit(rib, end_of_rib);
    }

    pub(super) fn monitor_down(&mut self, down: &Down) {
        let ctx = self.fsm.session_context();
        let Some(tap) = self.bmp.as_mut() else {
            return;
        };
        let received = match &down.reason {
            DownReason::NotificationReceived(n) => {
                Message::Notification(n.clone()).encode(&ctx).ok()
            }
            _ => None,
        };
        tap.down(received, matches!(down.reason, DownReason::ManualStop));
    }
}
