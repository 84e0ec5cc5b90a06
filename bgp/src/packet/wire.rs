//! Byte-level helpers shared by the message codecs: a bounds-checked reader (every read is an
//! `Option`, so a short buffer can never panic) and the `(length, prefix)` encoding of NLRI.
//!
//! ```text
//! +---------------------------+
//! |   Length (1 octet)        |   prefix length in bits
//! +---------------------------+
//! |   Prefix (variable)       |   ceil(length / 8) octets, trailing bits ignored
//! +---------------------------+
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::Family;

/// A cursor over a byte slice whose reads fail (with `None`) instead of panicking.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn ipv4(&mut self) -> Option<Ipv4Addr> {
        self.u32().map(Ipv4Addr::from)
    }

    pub(crate) fn ipv6(&mut self) -> Option<Ipv6Addr> {
        let b = self.take(16)?;
        let mut octets = [0u8; 16];
        octets.copy_from_slice(b);
        Some(Ipv6Addr::from(octets))
    }

    /// Everything not yet read.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
}

/// A prefix field that is not a valid `(length, prefix)` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadPrefix;

/// Decodes a run of `(length, prefix)` pairs of one family. Bits past the prefix length are
/// cleared, as RFC 4271 §4.3 says they are irrelevant.
pub(crate) fn decode_prefixes(buf: &[u8], family: Family) -> Result<Vec<IpNet>, BadPrefix> {
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = r.u8().ok_or(BadPrefix)?;
        let bytes = r.take(usize::from(len).div_ceil(8)).ok_or(BadPrefix)?;
        let net = match family {
            Family::Ipv4Unicast => {
                if len > 32 {
                    return Err(BadPrefix);
                }
                let mut octets = [0u8; 4];
                octets[..bytes.len()].copy_from_slice(bytes);
                let net = Ipv4Net::new(Ipv4Addr::from(octets), len).map_err(|_| BadPrefix)?;
                IpNet::V4(net.trunc())
            }
            Family::Ipv6Unicast => {
                if len > 128 {
                    return Err(BadPrefix);
                }
                let mut octets = [0u8; 16];
                octets[..bytes.len()].copy_from_slice(bytes);
                let net = Ipv6Net::new(Ipv6Addr::from(octets), len).map_err(|_| BadPrefix)?;
                IpNet::V6(net.trunc())
            }
        };
        out.push(net);
    }
    Ok(out)
}

/// The number of octets `prefix` takes on the wire.
pub(crate) fn prefix_wire_len(prefix: &IpNet) -> usize {
    1 + usize::from(prefix.prefix_len()).div_ceil(8)
}

/// Appends `prefix` in `(length, prefix)` form; host bits are not sent.
pub(crate) fn put_prefix(out: &mut Vec<u8>, prefix: &IpNet) {
    let len = prefix.prefix_len();
    let n = usize::from(len).div_ceil(8);
    out.push(len);
    match prefix.trunc() {
        IpNet::V4(v4) => out.extend_from_slice(&v4.network().octets()[..n]),
        IpNet::V6(v6) => out.extend_from_slice(&v6.network().octets()[..n]),
    }
}

/// Reserves two octets for a length field and returns where they are, to be filled by
/// [`fill_u16`] once the body is written.
pub(crate) fn reserve_u16(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    at
}

/// Writes `value` into the two octets reserved at `at`.
pub(crate) fn fill_u16(out: &mut [u8], at: usize, value: u16) {
    out[at..at + 2].copy_from_slice(&value.to_be_bytes());
}
