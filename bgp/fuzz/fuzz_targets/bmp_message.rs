//! The BMP codec (`ferrolb_bgp::bmp`) both ways. For each input:
//!
//! - the bytes themselves, cut with `frame_length` and decoded, never panic; a message that
//!   decodes encodes again to bytes that decode to the same value;
//! - the same bytes, read as the fields of a message (peer header, TLVs, statistics, a Peer
//!   Down reason, whole BGP PDUs), build a message that encodes, frames at its own length and
//!   decodes back to itself: the encoder round trip, over messages the raw bytes would rarely
//!   spell.

#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use ferrolb_bgp::bmp::{Message, PeerDownReason, PeerHeader, Stat, Tlv, flag, frame_length};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fn pdu(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let body: Vec<u8> = u.arbitrary()?;
    let body = &body[..body.len().min(4096 - 19)];
    let mut out = vec![0xff; 16];
    out.extend(((19 + body.len()) as u16).to_be_bytes());
    out.push(u.int_in_range(1..=5)?);
    out.extend_from_slice(body);
    Ok(out)
}

fn address(u: &mut Unstructured<'_>) -> Result<IpAddr> {
    Ok(if u.arbitrary()? {
        IpAddr::from(u.arbitrary::<[u8; 16]>()?)
    } else {
        IpAddr::from(u.arbitrary::<[u8; 4]>()?)
    })
}

fn header(u: &mut Unstructured<'_>) -> Result<PeerHeader> {
    Ok(PeerHeader {
        peer_type: u.arbitrary()?,
        flags: u.arbitrary::<u8>()? & !flag::IPV6,
        distinguisher: u.arbitrary()?,
        address: address(u)?,
        asn: u.arbitrary()?,
        bgp_id: Ipv4Addr::from(u.arbitrary::<[u8; 4]>()?),
        seconds: u.arbitrary()?,
        microseconds: u.arbitrary()?,
    })
}

fn tlvs(u: &mut Unstructured<'_>) -> Result<Vec<Tlv>> {
    let n = u.int_in_range(0..=4)?;
    (0..n)
        .map(|_| {
            Ok(Tlv {
                kind: u.arbitrary()?,
                value: u.arbitrary()?,
            })
        })
        .collect()
}

fn message(u: &mut Unstructured<'_>) -> Result<Message> {
    Ok(match u.int_in_range(0..=5)? {
        0 => Message::Initiation(tlvs(u)?),
        1 => Message::Termination(tlvs(u)?),
        2 => Message::RouteMonitoring {
            peer: header(u)?,
            update: pdu(u)?,
        },
        3 => {
            let peer = header(u)?;
            let n = u.int_in_range(0..=4)?;
            let stats = (0..n)
                .map(|_| {
                    Ok(if u.arbitrary()? {
                        Stat::Counter(u.arbitrary()?, u.arbitrary()?)
                    } else {
                        Stat::Gauge(u.arbitrary()?, u.arbitrary()?)
                    })
                })
                .collect::<Result<_>>()?;
            Message::StatisticsReport { peer, stats }
        }
        4 => Message::PeerDown {
            peer: header(u)?,
            reason: match u.int_in_range(1..=5)? {
                1 => PeerDownReason::LocalNotification(pdu(u)?),
                2 => PeerDownReason::LocalNoNotification(u.arbitrary()?),
                3 => PeerDownReason::RemoteNotification(pdu(u)?),
                4 => PeerDownReason::RemoteNoData,
                _ => PeerDownReason::Deconfigured,
            },
        },
        _ => {
            let peer = header(u)?;
            let local_address = match peer.address {
                IpAddr::V4(_) => IpAddr::from(u.arbitrary::<[u8; 4]>()?),
                IpAddr::V6(_) => IpAddr::from(u.arbitrary::<[u8; 16]>()?),
            };
            Message::PeerUp {
                peer,
                local_address,
                local_port: u.arbitrary()?,
                remote_port: u.arbitrary()?,
                sent_open: pdu(u)?,
                received_open: pdu(u)?,
                info: tlvs(u)?,
            }
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some(len)) = frame_length(rest) {
        if rest.len() < len {
            break;
        }
        if let Ok(decoded) = Message::decode(&rest[..len]) {
            let again = decoded.encode().expect("a decoded message encodes");
            assert_eq!(Message::decode(&again).as_ref(), Ok(&decoded));
        }
        rest = &rest[len..];
    }

    let mut u = Unstructured::new(data);
    if let Ok(built) = message(&mut u)
        && let Ok(bytes) = built.encode()
    {
        assert_eq!(frame_length(&bytes), Ok(Some(bytes.len())));
        assert_eq!(Message::decode(&bytes), Ok(built));
    }
});
