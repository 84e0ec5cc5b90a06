//! The record of one session: each message the router sent, with the phase it came in, and how
//! it is written to a fixture file.

use std::fmt::Write as _;

use ferrolb_bgp::packet::{Family, Message, SessionContext};
use ipnet::IpNet;

/// The phase of the session a message arrived in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    Open,
    Announce,
    ReAnnounce,
    RefreshRequest,
    Withdraw,
    Shutdown,
}

impl Phase {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Phase::Open => "open",
            Phase::Announce => "announce",
            Phase::ReAnnounce => "re-announce",
            Phase::RefreshRequest => "refresh-request",
            Phase::Withdraw => "withdraw",
            Phase::Shutdown => "shutdown",
        }
    }
}

/// A received message: its phase, where it stands in its family's run of messages, and its
/// bytes.
struct Recorded {
    phase: Phase,
    family: Option<Family>,
    /// Counts the markers (End-of-RIB, ROUTE-REFRESH) of its phase and family before it; a
    /// marker has a segment of its own.
    segment: usize,
    /// The first prefix it announces or withdraws.
    prefix: Option<IpNet>,
    bytes: Vec<u8>,
}

/// The messages of one session, in the order they arrived.
#[derive(Default)]
pub(crate) struct Transcript {
    messages: Vec<Recorded>,
}

impl Transcript {
    /// How many messages it holds.
    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }

    /// Adds a message that came in `phase`; `message` is what it decodes to, if anything.
    pub(crate) fn push(&mut self, phase: Phase, message: Option<&Message>, bytes: Vec<u8>) {
        let (family, marker, prefix) = match message {
            Some(Message::Update(u)) => {
                let prefix = u.announced().chain(u.withdrawals()).next().copied();
                let eor = u.end_of_rib_family();
                (
                    eor.or(prefix.as_ref().map(Family::of)),
                    eor.is_some(),
                    prefix,
                )
            }
            Some(Message::RouteRefresh(rr)) => (Family::from_afi_safi(rr.afi_safi), true, None),
            _ => (None, false, None),
        };
        let before = self
            .messages
            .iter()
            .rev()
            .find(|m| m.phase == phase && m.family == family);
        let mut segment = before.map_or(0, |m| m.segment);
        if marker || before.is_some_and(|m| m.prefix.is_none()) {
            segment += 1;
        }
        self.messages.push(Recorded {
            phase,
            family,
            segment,
            prefix: if marker { None } else { prefix },
            bytes,
        });
    }

    /// One comment line (`# <router> <version>, <phase>: <TYPE>`) and one hex line per
    /// message. GoBGP sends its routes in an order that changes from run to run (Go's map
    /// order), so that the file does not, within a phase the messages are grouped by family
    /// (IPv4 first, those of no family last), and between two markers of a family the routes
    /// are sorted by prefix; no message moves past a marker of its family.
    pub(crate) fn render(&self, version: &str) -> String {
        let mut messages: Vec<&Recorded> = self.messages.iter().collect();
        messages.sort_by_key(|m| (m.phase, m.family.is_none(), m.family, m.segment, m.prefix));
        let mut out = String::new();
        for m in messages {
            let kind = match m.bytes.get(18) {
                Some(1) => "OPEN".to_owned(),
                Some(2) => "UPDATE".to_owned(),
                Some(3) => "NOTIFICATION".to_owned(),
                Some(4) => "KEEPALIVE".to_owned(),
                Some(5) => "ROUTE-REFRESH".to_owned(),
                other => format!("type {other:?}"),
            };
            let _ = writeln!(out, "# {version}, {}: {kind}", m.phase.name());
            for b in &m.bytes {
                let _ = write!(out, "{b:02x}");
            }
            out.push('\n');
        }
        out
    }
}

/// What the decoder made of one received message, for deciding when a phase is over. A message
/// it rejects is still recorded; the codec tests then show the failure.
pub(crate) fn decoded(bytes: &[u8], ctx: &SessionContext) -> Option<Message> {
    match Message::decode(bytes, ctx) {
        Ok(m) => Some(m),
        Err(e) => {
            eprintln!("warning: ferrolb's decoder rejects a captured message: {e}");
            None
        }
    }
}
