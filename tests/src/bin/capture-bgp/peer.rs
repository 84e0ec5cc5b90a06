//! Our end of a captured session: a minimal BGP peer on a plain TCP socket, which cuts what it
//! reads into messages by the length in each header and records them raw.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::bail;
use ferrolb_bgp::packet::{AfiSafi, Families, Message, SessionContext};

use crate::PHASE_TIMEOUT;
use crate::transcript::{Phase, Transcript, decoded};

const HEADER_LEN: usize = 19;

/// What [`Peer::read`] found.
enum Read {
    /// One whole message, as read off the socket.
    Message(Vec<u8>),
    /// Nothing within the time given.
    Quiet,
    /// The router closed the connection.
    Closed,
}

/// Our end of the session: a TCP stream, what has been read but not yet cut into messages, our
/// KEEPALIVE timer, and the families whose enhanced route refresh (RFC 7313) the router has
/// begun and not yet ended — a phase never ends inside one, so that where the phases split
/// the transcript does not depend on timing.
pub(crate) struct Peer {
    stream: TcpStream,
    buf: Vec<u8>,
    pub(crate) ctx: SessionContext,
    pub(crate) keepalive_every: Duration,
    last_sent: Instant,
    refreshing: BTreeSet<AfiSafi>,
}

impl Peer {
    pub(crate) fn new(stream: TcpStream) -> anyhow::Result<Self> {
        stream.set_read_timeout(Some(Duration::from_millis(200)))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::new(),
            ctx: SessionContext {
                four_octet_as: true,
                families: Families::BOTH,
            },
            keepalive_every: Duration::from_secs(30),
            last_sent: Instant::now(),
            refreshing: BTreeSet::new(),
        })
    }

    /// Sends `message`, encoded with the session's context.
    pub(crate) fn send(&mut self, message: &Message) -> anyhow::Result<()> {
        let bytes = message.encode(&self.ctx)?;
        self.stream.write_all(&bytes)?;
        self.last_sent = Instant::now();
        Ok(())
    }

    /// The next whole message as read off the socket, unless `until` passes first or the
    /// router closes the connection. Sends our KEEPALIVEs while it waits.
    fn read(&mut self, until: Instant) -> anyhow::Result<Read> {
        loop {
            if self.buf.len() >= HEADER_LEN {
                let length = usize::from(u16::from_be_bytes([self.buf[16], self.buf[17]]));
                if length < HEADER_LEN {
                    bail!("a header with length {length}: {:02x?}", &self.buf[..19]);
                }
                if self.buf.len() >= length {
                    return Ok(Read::Message(self.buf.drain(..length).collect()));
                }
            }
            if Instant::now() > until {
                return Ok(Read::Quiet);
            }
            if self.last_sent.elapsed() >= self.keepalive_every {
                self.send(&Message::Keepalive)?;
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(Read::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The next message, which must come within [`PHASE_TIMEOUT`].
    pub(crate) fn expect_message(&mut self) -> anyhow::Result<Vec<u8>> {
        match self.read(Instant::now() + PHASE_TIMEOUT)? {
            Read::Message(bytes) => Ok(bytes),
            Read::Quiet => bail!("the router sent nothing for {PHASE_TIMEOUT:?}"),
            Read::Closed => bail!("the router closed the connection"),
        }
    }

    /// Records messages (all but KEEPALIVEs) under `phase` until `done` says the phase is over.
    /// `done` sees each message as it comes, and `None` after every quiet 200 ms, with the
    /// time; a phase never ends while an enhanced route refresh is under way.
    pub(crate) fn record_phase(
        &mut self,
        transcript: &mut Transcript,
        phase: Phase,
        mut done: impl FnMut(Option<&Message>, Instant) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + PHASE_TIMEOUT;
        loop {
            let now = Instant::now();
            if now > deadline {
                bail!(
                    "phase {} did not end within {PHASE_TIMEOUT:?}",
                    phase.name()
                );
            }
            let over = match self.read(now + Duration::from_millis(200))? {
                Read::Closed => bail!("the router closed the connection in phase {}", phase.name()),
                Read::Quiet => done(None, Instant::now()),
                Read::Message(bytes) => {
                    let message = self.record(transcript, phase, bytes)?;
                    message.is_some_and(|m| done(Some(&m), Instant::now()))
                }
            };
            if over && self.refreshing.is_empty() {
                return Ok(());
            }
        }
    }

    /// Records one message unless it is a KEEPALIVE, and follows enhanced route refreshes;
    /// what it decodes to. A NOTIFICATION outside the shutdown phase ends the capture with an
    /// error.
    fn record(
        &mut self,
        transcript: &mut Transcript,
        phase: Phase,
        bytes: Vec<u8>,
    ) -> anyhow::Result<Option<Message>> {
        let message = decoded(&bytes, &self.ctx);
        if matches!(message, Some(Message::Keepalive)) {
            return Ok(None);
        }
        let kind = bytes.get(18).copied();
        transcript.push(phase, message.as_ref(), bytes);
        if kind == Some(3) && phase != Phase::Shutdown {
            bail!("the router sent a NOTIFICATION in phase {}", phase.name());
        }
        if let Some(Message::RouteRefresh(rr)) = &message {
            match rr.subtype {
                1 => self.refreshing.insert(rr.afi_safi),
                2 => self.refreshing.remove(&rr.afi_safi),
                _ => false,
            };
        }
        Ok(message)
    }
}
