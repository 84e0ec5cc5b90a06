//! Connections the peer opens, handed over by the listener. With no connection of ours under
//! way (Idle waiting to retry, Connect, Active — a passive session waits there) the peer's is
//! taken at once. Otherwise the two collide (RFC 4271 §6.8): against an Established session
//! the new one is closed; in OpenConfirm the peer's identifier is known and decides at once;
//! in OpenSent the peer's connection is held until its OPEN arrives (or ours fails, and then
//! it is taken). The connection initiated by the higher BGP identifier survives
//! ([`resolve_collision`]); the loser gets Cease/Connection Collision Resolution.

use std::io;

use tokio::net::TcpStream;
use tracing::debug;

use super::socket;
use super::{Connection, Driver};
use crate::bgp::fsm::{Input, Keep, Speaker, State, resolve_collision};
use crate::bgp::listener::refuse;
use crate::bgp::packet::{Message, cease_subcode, frame_length};

impl Driver {
    /// The listener handed over a connection from the peer.
    pub(super) async fn inbound(&mut self, stream: TcpStream) {
        let conn =
            socket::accepted(&stream, &self.config).and_then(|()| Connection::new(stream, true));
        let conn = match conn {
            Ok(conn) => conn,
            Err(e) => {
                debug!(error = %e, "cannot set up the peer's connection");
                return;
            }
        };
        let replaces_theirs = self.conn.as_ref().is_some_and(|c| c.from_peer);
        match self.fsm.state() {
            State::Idle | State::Connect | State::Active => self.adopt(conn).await,
            // Both are the peer's, so there is no collision to decide: a router that dials
            // again has given up on its first connection.
            State::OpenSent | State::OpenConfirm if replaces_theirs => {
                debug!("the peer opened another connection; closing its earlier one");
                self.apply(Input::CollisionDump).await;
                self.adopt(conn).await;
            }
            State::OpenSent => {
                debug!("the peer connected while our OPEN is out; waiting for its OPEN");
                self.pending = Some(conn);
            }
            State::OpenConfirm => {
                let remote = self.fsm.negotiated().map(|n| Speaker {
                    bgp_id: n.peer_router_id,
                    asn: n.peer_asn,
                });
                match remote {
                    Some(remote) => self.collide(conn, remote).await,
                    None => reject(conn),
                }
            }
            State::Established => reject(conn),
        }
    }

    /// More of the held connection arrived: once its OPEN is whole, the collision is decided.
    pub(super) async fn pending_read(&mut self, read: io::Result<usize>) {
        let open = match (read, self.pending.as_ref()) {
            (Ok(n), Some(p)) if n > 0 => match frame_length(&p.buf) {
                Ok(Some(len)) if p.buf.len() >= len => {
                    Some(Message::decode(&p.buf[..len], &self.fsm.session_context()))
                }
                Ok(_) => return,
                Err(_) => None,
            },
            _ => None,
        };
        let Some(conn) = self.pending.take() else {
            return;
        };
        match open {
            Some(Ok(Message::Open(open))) => {
                let remote = Speaker {
                    bgp_id: open.bgp_id,
                    asn: open.asn(),
                };
                self.collide(conn, remote).await;
            }
            _ => debug!("the peer's second connection closed or did not start with an OPEN"),
        }
    }

    /// After every event: a held connection is taken when ours has gone, and closed when ours
    /// reached Established.
    pub(super) async fn settle_pending(&mut self) {
        let Some(conn) = self.pending.take() else {
            return;
        };
        match self.fsm.state() {
            State::Idle | State::Connect | State::Active => self.adopt(conn).await,
            State::Established => reject(conn),
            State::OpenSent | State::OpenConfirm => self.pending = Some(conn),
        }
    }

    /// Two connections to the same peer: keep the one the higher BGP identifier opened.
    async fn collide(&mut self, theirs: Connection, remote: Speaker) {
        let local = Speaker {
            bgp_id: self.config.fsm.router_id,
            asn: self.config.fsm.local_asn,
        };
        if self.fsm.state() == State::Established {
            reject(theirs);
            return;
        }
        match resolve_collision(local, remote) {
            Keep::LocallyInitiated => {
                debug!(peer_router_id = %remote.bgp_id, "collision: keeping our connection");
                reject(theirs);
            }
            Keep::RemotelyInitiated => {
                debug!(peer_router_id = %remote.bgp_id, "collision: keeping the peer's connection");
                if matches!(self.fsm.state(), State::OpenSent | State::OpenConfirm) {
                    self.apply(Input::CollisionDump).await;
                }
                self.adopt(theirs).await;
            }
        }
    }

    /// Runs the session on the peer's connection; an attempt of ours still connecting is
    /// dropped. An OPEN the peer already sent is read at once.
    async fn adopt(&mut self, conn: Connection) {
        self.connecting = None;
        self.conn = Some(conn);
        self.apply(Input::TcpConnectionConfirmed).await;
        if self.conn.is_some() {
            self.process_frames().await;
        } else if self.fsm.state() == State::Idle && self.fsm.next_deadline().is_none() {
            // The connection failed at once after a collision dump, which arms no restart:
            // start over rather than stay idle.
            self.apply(Input::ManualStart).await;
        }
    }
}

/// Closes the losing connection with Cease/Connection Collision Resolution, aside from the
/// session (the close waits for the peer to read it).
fn reject(conn: Connection) {
    match conn.read.reunite(conn.write) {
        Ok(stream) => {
            tokio::spawn(refuse(
                stream,
                cease_subcode::CONNECTION_COLLISION_RESOLUTION,
            ));
        }
        Err(e) => debug!(error = %e, "cannot close the losing connection cleanly"),
    }
}
