//! What the session's loop waits on: each future never completes when its thing is absent, so
//! `select!` can list them all.

use std::io;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::{Connecting, Connection};
use crate::bgp::fsm;

/// Awaits the connect in progress, or never.
pub(super) async fn maybe(connecting: Option<&mut Connecting>) -> io::Result<TcpStream> {
    match connecting {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// Reads more of the stream into the connection's buffer, or never without a connection.
pub(super) async fn read_some(conn: Option<&mut Connection>) -> io::Result<usize> {
    match conn {
        Some(c) => c.read.read_buf(&mut c.buf).await,
        None => std::future::pending().await,
    }
}

/// Sleeps until the FSM's next deadline, or forever without one.
pub(super) async fn sleep_until(deadline: Option<(fsm::Timer, std::time::Instant)>) -> fsm::Timer {
    match deadline {
        Some((timer, at)) => {
            tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
            timer
        }
        None => std::future::pending().await,
    }
}
