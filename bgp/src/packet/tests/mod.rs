//! Codec tests: `(bytes, value)` vectors both ways, messages captured from GoBGP, BIRD and FRR,
//! malformed-input tables with the NOTIFICATION each maps to, property tests, the UPDATE
//! builder, and netgauze as an oracle.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::*;

mod builder;
mod captured;
mod extended_next_hop;
mod malformed;
mod oracle;
mod props;
mod vectors;
mod vectors_update;

/// A 4-octet-AS session with both families: what ferrolb negotiates with GoBGP, BIRD and FRR.
fn ctx4() -> SessionContext {
    SessionContext {
        four_octet_as: true,
        families: Families::BOTH,
    }
}

/// A session with a peer that lacks the 4-octet AS capability.
fn ctx2() -> SessionContext {
    SessionContext {
        four_octet_as: false,
        families: Families::BOTH,
    }
}

/// A whole message: marker, length, type, body.
fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xff; 16];
    let len = u16::try_from(19 + body.len()).expect("test message fits");
    out.extend_from_slice(&len.to_be_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    out
}

/// An UPDATE from its three fields, lengths filled in.
fn update_bytes(withdrawn: &[u8], attributes: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&u16::try_from(withdrawn.len()).expect("fits").to_be_bytes());
    body.extend_from_slice(withdrawn);
    body.extend_from_slice(&u16::try_from(attributes.len()).expect("fits").to_be_bytes());
    body.extend_from_slice(attributes);
    body.extend_from_slice(nlri);
    message(2, &body)
}

fn net(s: &str) -> IpNet {
    s.parse().expect("test prefix")
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().expect("test address")
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().expect("test address")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn decode(bytes: &[u8], ctx: &SessionContext) -> Message {
    match Message::decode(bytes, ctx) {
        Ok(m) => m,
        Err(e) => panic!("decode failed: {e} -> {}", e.notification()),
    }
}

fn encode(message: &Message, ctx: &SessionContext) -> Vec<u8> {
    match message.encode(ctx) {
        Ok(b) => b,
        Err(e) => panic!("encode failed: {e}"),
    }
}

/// Asserts that `bytes` decode to `value` and `value` encodes to `bytes`.
fn both_ways(bytes: &[u8], value: &Message, ctx: &SessionContext) {
    assert_eq!(&decode(bytes, ctx), value, "decoding");
    assert_eq!(encode(value, ctx), bytes, "encoding");
}
