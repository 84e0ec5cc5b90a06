//! AS_PATH and AS4_PATH (RFC 4271 §4.3, RFC 6793 §3, confederation segments RFC 5065).
//!
//! ```text
//! segment:  +-------------+----------------+---------------------------+
//!           | type (1)    | count (1)      | count x ASN (2 or 4 each) |
//!           +-------------+----------------+---------------------------+
//! type:     1 AS_SET, 2 AS_SEQUENCE, 3 AS_CONFED_SEQUENCE, 4 AS_CONFED_SET
//! ```
//!
//! AS_PATH carries 2-octet ASNs unless both sides negotiated 4-octet AS; AS4_PATH always
//! carries 4-octet ASNs. A segment of zero ASNs, an unknown segment type or a truncated segment
//! makes the path malformed (RFC 7606 §7.2).

use std::fmt;

use super::wire::Reader;

/// AS_TRANS (RFC 6793): stands in for a 4-octet ASN where only two octets fit.
pub const AS_TRANS: u16 = 23456;

/// A path of AS segments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AsPath {
    /// Segments, nearest AS first.
    pub segments: Vec<AsSegment>,
}

/// One AS path segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsSegment {
    /// Set or sequence.
    pub kind: SegmentKind,
    /// ASNs, at least one.
    pub asns: Vec<u32>,
}

/// The type of an [`AsSegment`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentKind {
    /// AS_SET (1): unordered, from aggregation.
    Set,
    /// AS_SEQUENCE (2): ordered.
    Sequence,
    /// AS_CONFED_SEQUENCE (3).
    ConfedSequence,
    /// AS_CONFED_SET (4).
    ConfedSet,
}

impl SegmentKind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Set,
            2 => Self::Sequence,
            3 => Self::ConfedSequence,
            4 => Self::ConfedSet,
            _ => return None,
        })
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::Set => 1,
            Self::Sequence => 2,
            Self::ConfedSequence => 3,
            Self::ConfedSet => 4,
        }
    }

    /// Whether this is a confederation segment.
    pub fn is_confed(self) -> bool {
        matches!(self, Self::ConfedSequence | Self::ConfedSet)
    }
}

/// An AS path that is not well formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MalformedPath;

impl AsPath {
    /// A single AS_SEQUENCE, or the empty path for no ASNs (what an iBGP speaker originates).
    pub fn sequence(asns: impl IntoIterator<Item = u32>) -> Self {
        let asns: Vec<u32> = asns.into_iter().collect();
        if asns.is_empty() {
            return Self::default();
        }
        Self {
            segments: vec![AsSegment {
                kind: SegmentKind::Sequence,
                asns,
            }],
        }
    }

    /// Whether `asn` appears anywhere in the path (the loop check of RFC 4271 §9.1.2).
    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// Whether any ASN needs four octets.
    pub fn needs_four_octets(&self) -> bool {
        self.segments
            .iter()
            .any(|s| s.asns.iter().any(|a| *a > u32::from(u16::MAX)))
    }

    /// The path without confederation segments, as it goes into AS4_PATH.
    pub(crate) fn without_confed(&self) -> Self {
        Self {
            segments: self
                .segments
                .iter()
                .filter(|s| !s.kind.is_confed())
                .cloned()
                .collect(),
        }
    }

    pub(crate) fn decode(buf: &[u8], four_octet: bool) -> Result<Self, MalformedPath> {
        let mut r = Reader::new(buf);
        let mut segments = Vec::new();
        while !r.is_empty() {
            let kind = r.u8().and_then(SegmentKind::from_u8).ok_or(MalformedPath)?;
            let count = r.u8().ok_or(MalformedPath)?;
            if count == 0 {
                return Err(MalformedPath);
            }
            let mut asns = Vec::with_capacity(usize::from(count));
            for _ in 0..count {
                let asn = if four_octet {
                    r.u32()
                } else {
                    r.u16().map(u32::from)
                };
                asns.push(asn.ok_or(MalformedPath)?);
            }
            segments.push(AsSegment { kind, asns });
        }
        Ok(Self { segments })
    }

    /// Encodes the path; in 2-octet form an ASN above 65535 becomes AS_TRANS. Empty segments
    /// are skipped and segments of more than 255 ASNs are split.
    pub(crate) fn encode(&self, four_octet: bool, out: &mut Vec<u8>) {
        for segment in &self.segments {
            for chunk in segment.asns.chunks(usize::from(u8::MAX)) {
                out.push(segment.kind.to_u8());
                out.push(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
                for asn in chunk {
                    if four_octet {
                        out.extend_from_slice(&asn.to_be_bytes());
                    } else {
                        let two = u16::try_from(*asn).unwrap_or(AS_TRANS);
                        out.extend_from_slice(&two.to_be_bytes());
                    }
                }
            }
        }
    }
}

impl fmt::Display for AsPath {
    /// `65001 65002 {65003,65004} (65005)`, the usual router CLI form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.segments.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            let list = |sep: &str| {
                s.asns
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(sep)
            };
            match s.kind {
                SegmentKind::Sequence => write!(f, "{}", list(" "))?,
                SegmentKind::Set => write!(f, "{{{}}}", list(","))?,
                SegmentKind::ConfedSequence => write!(f, "({})", list(" "))?,
                SegmentKind::ConfedSet => write!(f, "[{}]", list(","))?,
            }
        }
        Ok(())
    }
}
