//! Arbitrary bytes through the BGP message decoder, under every session context the codec
//! distinguishes (2- or 4-octet ASNs × the negotiated families). For each input:
//!
//! - decoding never panics, whether the bytes are taken as one message or cut into frames with
//!   `frame_length` the way the session reads a TCP stream;
//! - an error always yields a NOTIFICATION that can itself be sent (encodes within 4096 octets);
//! - a message that decodes encodes again, and that encoding decodes to the same value: the
//!   codec keeps everything it accepts. UPDATE attribute errors (RFC 7606) are reported on
//!   decode and never sent, so the value compared is the decoded one without them.

#![no_main]

use ferrolb_bgp::packet::{Families, Message, SessionContext, frame_length};
use libfuzzer_sys::fuzz_target;

fn contexts() -> impl Iterator<Item = SessionContext> {
    [false, true].into_iter().flat_map(|four_octet_as| {
        [
            Families::NONE,
            Families::IPV4,
            Families::IPV6,
            Families::BOTH,
        ]
        .into_iter()
        .map(move |families| SessionContext {
            four_octet_as,
            families,
        })
    })
}

fuzz_target!(|data: &[u8]| {
    for ctx in contexts() {
        check(data, &ctx);
        // The same bytes as a stream: every complete frame, as the session would read them.
        let mut rest = data;
        while let Ok(Some(length)) = frame_length(rest) {
            if length == data.len() || length > rest.len() {
                break;
            }
            check(&rest[..length], &ctx);
            rest = &rest[length..];
        }
    }
});

fn check(bytes: &[u8], ctx: &SessionContext) {
    match Message::decode(bytes, ctx) {
        Ok(message) => round_trip(message, ctx),
        Err(error) => {
            let _ = error.to_string();
            let notification = Message::Notification(error.notification());
            if let Err(e) = notification.encode(ctx) {
                panic!("the NOTIFICATION for {error:?} cannot be sent: {e}");
            }
        }
    }
}

fn round_trip(message: Message, ctx: &SessionContext) {
    let mut expected = message;
    if let Message::Update(update) = &mut expected {
        update.errors.clear();
    }
    let bytes = match expected.encode(ctx) {
        Ok(bytes) => bytes,
        Err(e) => panic!("decoded {expected:?} but cannot encode it: {e}"),
    };
    match Message::decode(&bytes, ctx) {
        Ok(again) => assert_eq!(again, expected, "re-decoding {bytes:02x?} under {ctx:?}"),
        Err(e) => panic!("our own encoding {bytes:02x?} of {expected:?} does not decode: {e}"),
    }
}
