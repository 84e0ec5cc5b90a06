//! Malformed inputs, each with the NOTIFICATION (code, subcode, data) it maps to under
//! RFC 4271 §6 and, for UPDATE attributes, how RFC 7606 handles it.

use super::*;

const ORIGIN: &[u8] = &[0x40, 1, 1, 0];
const AS_PATH_EMPTY: &[u8] = &[0x40, 2, 0];
const NEXT_HOP: &[u8] = &[0x40, 3, 4, 10, 0, 0, 1];
const NLRI: &[u8] = &[24, 192, 0, 2];

fn open_body(version: u8, hold: u16, id: [u8; 4], params: &[u8]) -> Vec<u8> {
    let mut body = vec![version, 0xfd, 0xe9];
    body.extend_from_slice(&hold.to_be_bytes());
    body.extend_from_slice(&id);
    body.push(u8::try_from(params.len()).expect("short"));
    body.extend_from_slice(params);
    body
}

fn with_header(mut bytes: Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    f(&mut bytes);
    bytes
}

/// (what, bytes, code, subcode, data) of a message the session cannot survive.
type Reset = (&'static str, Vec<u8>, u8, u8, Vec<u8>);
/// (what, bytes, RFC 7606 action, UPDATE Message Error subcode, data).
type Survived = (&'static str, Vec<u8>, ErrorAction, u8, Vec<u8>);

/// An UPDATE announcing [`NLRI`] with `attrs`.
fn announce(attrs: &[&[u8]]) -> Vec<u8> {
    update_bytes(&[], &attrs.concat(), NLRI)
}

/// Messages the session cannot survive: (what, bytes, code, subcode, data).
#[test]
fn malformed_messages_map_to_the_notification_rfc_4271_gives_them() {
    let keepalive = message(4, &[]);
    let cases: Vec<Reset> = vec![
        (
            "bad marker",
            with_header(keepalive.clone(), |b| b[3] = 0),
            1,
            1,
            vec![],
        ),
        (
            "length below 19",
            with_header(keepalive.clone(), |b| b[17] = 18),
            1,
            2,
            vec![0, 18],
        ),
        (
            "length above 4096",
            with_header(message(2, &[0; 4078]), |b| {
                b[16..18].copy_from_slice(&[0x10, 0x01])
            }),
            1,
            2,
            vec![0x10, 0x01],
        ),
        (
            "length not the frame's",
            [&keepalive[..], &[0]].concat(),
            1,
            2,
            vec![0, 19],
        ),
        ("KEEPALIVE with a body", message(4, &[0]), 1, 2, vec![0, 20]),
        ("unknown type 6", message(6, &[]), 1, 3, vec![6]),
        ("unknown type 0", message(0, &[]), 1, 3, vec![0]),
        (
            "OPEN shorter than 29",
            message(1, &[4, 0, 1, 0, 90, 1, 1, 1, 1]),
            1,
            2,
            vec![0, 28],
        ),
        (
            "UPDATE shorter than 23",
            message(2, &[0, 0, 0]),
            1,
            2,
            vec![0, 22],
        ),
        (
            "NOTIFICATION shorter than 21",
            message(3, &[6]),
            1,
            2,
            vec![0, 20],
        ),
        (
            "ROUTE-REFRESH shorter than 23",
            message(5, &[0, 1, 0]),
            1,
            2,
            vec![0, 22],
        ),
        (
            "ROUTE-REFRESH longer than 23",
            message(5, &[0, 1, 0, 1, 0]),
            7,
            1,
            message(5, &[0, 1, 0, 1, 0]),
        ),
        (
            "OPEN version 3",
            message(1, &open_body(3, 90, [1, 1, 1, 1], &[])),
            2,
            1,
            vec![0, 4],
        ),
        (
            "hold time 1",
            message(1, &open_body(4, 1, [1, 1, 1, 1], &[])),
            2,
            6,
            vec![],
        ),
        (
            "hold time 2",
            message(1, &open_body(4, 2, [1, 1, 1, 1], &[])),
            2,
            6,
            vec![],
        ),
        (
            "BGP identifier 0",
            message(1, &open_body(4, 90, [0; 4], &[])),
            2,
            3,
            vec![],
        ),
        (
            "authentication parameter",
            message(1, &open_body(4, 90, [1, 1, 1, 1], &[1, 1, 0])),
            2,
            4,
            vec![],
        ),
        (
            "parameter overruns",
            message(1, &open_body(4, 90, [1, 1, 1, 1], &[2, 5, 2, 0])),
            2,
            0,
            vec![],
        ),
        (
            "opt parm len short of the message",
            with_header(
                message(1, &open_body(4, 90, [1, 1, 1, 1], &[2, 2, 2, 0])),
                |b| b[28] = 3,
            ),
            2,
            0,
            vec![],
        ),
        (
            "capability overruns its parameter",
            message(1, &open_body(4, 90, [1, 1, 1, 1], &[2, 2, 65, 4])),
            2,
            0,
            vec![],
        ),
        (
            "MP capability of 3 octets",
            message(1, &open_body(4, 90, [1, 1, 1, 1], &[2, 5, 1, 3, 0, 1, 0])),
            2,
            0,
            vec![1, 3, 0, 1, 0],
        ),
        (
            "graceful restart of 3 octets",
            message(
                1,
                &open_body(4, 90, [1, 1, 1, 1], &[2, 5, 64, 3, 0, 120, 0]),
            ),
            2,
            0,
            vec![64, 3, 0, 120, 0],
        ),
        (
            "withdrawn length overruns",
            update_bytes(&[], &[], &[])
                .into_iter()
                .enumerate()
                .map(|(i, b)| if i == 20 { 9 } else { b })
                .collect(),
            3,
            1,
            vec![],
        ),
        (
            "attribute length overruns",
            with_header(update_bytes(&[], &[], &[]), |b| b[22] = 1),
            3,
            1,
            vec![],
        ),
        (
            "withdrawn prefix /33",
            update_bytes(&[33, 1, 2, 3, 4, 5], &[], &[]),
            3,
            10,
            vec![],
        ),
        (
            "NLRI prefix /33",
            update_bytes(
                &[],
                &[ORIGIN, AS_PATH_EMPTY, NEXT_HOP].concat(),
                &[33, 1, 2, 3, 4, 5],
            ),
            3,
            10,
            vec![],
        ),
        (
            "NLRI prefix truncated",
            update_bytes(
                &[],
                &[ORIGIN, AS_PATH_EMPTY, NEXT_HOP].concat(),
                &[24, 10, 0],
            ),
            3,
            10,
            vec![],
        ),
        (
            "unrecognized well-known attribute",
            announce(&[ORIGIN, AS_PATH_EMPTY, NEXT_HOP, &[0x40, 99, 1, 7]]),
            3,
            2,
            vec![0x40, 99, 1, 7],
        ),
        (
            "MP_UNREACH_NLRI twice",
            update_bytes(
                &[],
                &[&[0x80, 15, 3, 0, 2, 1][..], &[0x80, 15, 3, 0, 2, 1]].concat(),
                &[],
            ),
            3,
            1,
            vec![],
        ),
        (
            "MP_REACH_NLRI next hop of 5 octets",
            update_bytes(
                &[],
                &[
                    &[0x80, 14, 10, 0, 2, 1, 5, 1, 2, 3, 4, 5, 0][..],
                    ORIGIN,
                    AS_PATH_EMPTY,
                ]
                .concat(),
                &[],
            ),
            3,
            9,
            vec![0x80, 14, 10, 0, 2, 1, 5, 1, 2, 3, 4, 5, 0],
        ),
        (
            "MP_REACH_NLRI prefix /129",
            update_bytes(
                &[],
                &[&[0x80, 14, 22, 0, 2, 1, 16][..], &[0x20; 16], &[0, 129]].concat(),
                &[],
            ),
            3,
            9,
            [&[0x80, 14, 22, 0, 2, 1, 16][..], &[0x20; 16], &[0, 129]].concat(),
        ),
        (
            "MP_UNREACH_NLRI truncated",
            update_bytes(&[], &[0x80, 15, 2, 0, 2], &[]),
            3,
            9,
            vec![0x80, 15, 2, 0, 2],
        ),
        (
            "MP_UNREACH_NLRI with wrong flags",
            update_bytes(&[], &[0xc0, 15, 3, 0, 2, 1], &[]),
            3,
            4,
            vec![0xc0, 15, 3, 0, 2, 1],
        ),
        (
            "MP_REACH_NLRI overruns the attribute list",
            update_bytes(&[], &[0x80, 14, 9, 0, 2, 1], &[]),
            3,
            9,
            vec![0x80, 14, 9, 0, 2, 1],
        ),
    ];
    for (what, bytes, code, subcode, data) in cases {
        let ctx = ctx4();
        match Message::decode(&bytes, &ctx) {
            Ok(m) => panic!("{what}: decoded as {m:?}"),
            Err(e) => assert_eq!(
                e.notification(),
                Notification::new(code, subcode, data),
                "{what}: {e}"
            ),
        }
    }
}

/// RFC 7313 puts the whole bad ROUTE-REFRESH in the NOTIFICATION's data; at 4096 octets that
/// would make a NOTIFICATION too long to send, so the session closed without one. The data is
/// cut to what fits.
#[test]
fn the_notification_for_a_4096_octet_route_refresh_still_fits_in_a_message() {
    let bytes = message(5, &vec![0; MAX_MESSAGE_LEN - HEADER_LEN]);
    let error = match Message::decode(&bytes, &ctx4()) {
        Ok(m) => panic!("decoded as {m:?}"),
        Err(e) => e,
    };
    let n = error.notification();
    assert_eq!((n.code, n.subcode), (7, 1));
    assert_eq!(n.data, bytes[..MAX_NOTIFICATION_DATA]);
    let sent = encode(&Message::Notification(n), &ctx4());
    assert_eq!(sent.len(), MAX_MESSAGE_LEN);
}

/// UPDATE attribute errors RFC 7606 lets the session survive: (what, bytes, action, code,
/// subcode, data). Treat-as-withdraw turns the announced prefix into a withdrawal; attribute
/// discard keeps it.
#[test]
fn attribute_errors_are_survived_as_rfc_7606_says_and_name_their_notification() {
    use ErrorAction::{AttributeDiscard as Discard, TreatAsWithdraw as Withdraw};
    let cases: Vec<Survived> = vec![
        (
            "ORIGIN flagged optional",
            announce(&[&[0xc0, 1, 1, 0], AS_PATH_EMPTY, NEXT_HOP]),
            Withdraw,
            4,
            vec![0xc0, 1, 1, 0],
        ),
        (
            "ORIGIN with the partial bit",
            announce(&[&[0x60, 1, 1, 0], AS_PATH_EMPTY, NEXT_HOP]),
            Withdraw,
            4,
            vec![0x60, 1, 1, 0],
        ),
        (
            "MED flagged transitive",
            announce(&[ORIGIN, AS_PATH_EMPTY, NEXT_HOP, &[0xc0, 4, 4, 0, 0, 0, 1]]),
            Withdraw,
            4,
            vec![0xc0, 4, 4, 0, 0, 0, 1],
        ),
        (
            "ORIGIN of 2 octets",
            announce(&[&[0x40, 1, 2, 0, 0], AS_PATH_EMPTY, NEXT_HOP]),
            Withdraw,
            5,
            vec![0x40, 1, 2, 0, 0],
        ),
        (
            "ORIGIN value 3",
            announce(&[&[0x40, 1, 1, 3], AS_PATH_EMPTY, NEXT_HOP]),
            Withdraw,
            6,
            vec![0x40, 1, 1, 3],
        ),
        (
            "NEXT_HOP of 5 octets",
            announce(&[ORIGIN, AS_PATH_EMPTY, &[0x40, 3, 5, 10, 0, 0, 1, 0]]),
            Withdraw,
            5,
            vec![0x40, 3, 5, 10, 0, 0, 1, 0],
        ),
        (
            "NEXT_HOP 0.0.0.0",
            announce(&[ORIGIN, AS_PATH_EMPTY, &[0x40, 3, 4, 0, 0, 0, 0]]),
            Withdraw,
            8,
            vec![0x40, 3, 4, 0, 0, 0, 0],
        ),
        (
            "NEXT_HOP multicast",
            announce(&[ORIGIN, AS_PATH_EMPTY, &[0x40, 3, 4, 224, 0, 0, 5]]),
            Withdraw,
            8,
            vec![0x40, 3, 4, 224, 0, 0, 5],
        ),
        (
            "NEXT_HOP loopback",
            announce(&[ORIGIN, AS_PATH_EMPTY, &[0x40, 3, 4, 127, 0, 0, 1]]),
            Withdraw,
            8,
            vec![0x40, 3, 4, 127, 0, 0, 1],
        ),
        (
            "MED of 3 octets",
            announce(&[ORIGIN, AS_PATH_EMPTY, NEXT_HOP, &[0x80, 4, 3, 0, 0, 1]]),
            Withdraw,
            5,
            vec![0x80, 4, 3, 0, 0, 1],
        ),
        (
            "LOCAL_PREF of 2 octets",
            announce(&[ORIGIN, AS_PATH_EMPTY, NEXT_HOP, &[0x40, 5, 2, 0, 1]]),
            Withdraw,
            5,
            vec![0x40, 5, 2, 0, 1],
        ),
        (
            "COMMUNITIES of 3 octets",
            announce(&[ORIGIN, AS_PATH_EMPTY, NEXT_HOP, &[0xc0, 8, 3, 0, 0, 1]]),
            Withdraw,
            5,
            vec![0xc0, 8, 3, 0, 0, 1],
        ),
        (
            "COMMUNITIES empty",
            announce(&[ORIGIN, AS_PATH_EMPTY, NEXT_HOP, &[0xc0, 8, 0]]),
            Withdraw,
            5,
            vec![0xc0, 8, 0],
        ),
        (
            "LARGE_COMMUNITY of 8 octets",
            announce(&[
                ORIGIN,
                AS_PATH_EMPTY,
                NEXT_HOP,
                &[0xc0, 32, 8, 0, 0, 0, 1, 0, 0, 0, 2],
            ]),
            Withdraw,
            5,
            vec![0xc0, 32, 8, 0, 0, 0, 1, 0, 0, 0, 2],
        ),
        (
            "AS_PATH segment type 5",
            announce(&[ORIGIN, &[0x40, 2, 6, 5, 1, 0, 0, 0, 1], NEXT_HOP]),
            Withdraw,
            11,
            vec![],
        ),
        (
            "AS_PATH segment of 0 ASNs",
            announce(&[ORIGIN, &[0x40, 2, 2, 2, 0], NEXT_HOP]),
            Withdraw,
            11,
            vec![],
        ),
        (
            "AS_PATH segment overruns",
            announce(&[ORIGIN, &[0x40, 2, 6, 2, 2, 0, 0, 0, 1], NEXT_HOP]),
            Withdraw,
            11,
            vec![],
        ),
        (
            "missing ORIGIN",
            announce(&[AS_PATH_EMPTY, NEXT_HOP]),
            Withdraw,
            3,
            vec![1],
        ),
        (
            "missing AS_PATH",
            announce(&[ORIGIN, NEXT_HOP]),
            Withdraw,
            3,
            vec![2],
        ),
        (
            "missing NEXT_HOP",
            announce(&[ORIGIN, AS_PATH_EMPTY]),
            Withdraw,
            3,
            vec![3],
        ),
        (
            "attribute list ends mid-header",
            announce(&[ORIGIN, AS_PATH_EMPTY, NEXT_HOP, &[0x40, 9]]),
            Withdraw,
            1,
            vec![],
        ),
        (
            "attribute overruns the list",
            announce(&[ORIGIN, AS_PATH_EMPTY, NEXT_HOP, &[0xc0, 8, 8, 0, 0, 0, 1]]),
            Withdraw,
            1,
            vec![],
        ),
        (
            "ORIGIN twice",
            announce(&[ORIGIN, AS_PATH_EMPTY, NEXT_HOP, &[0x40, 1, 1, 2]]),
            Discard,
            1,
            vec![],
        ),
        (
            "ATOMIC_AGGREGATE of 1 octet",
            announce(&[ORIGIN, AS_PATH_EMPTY, NEXT_HOP, &[0x40, 6, 1, 0]]),
            Discard,
            5,
            vec![0x40, 6, 1, 0],
        ),
        (
            "AGGREGATOR of 6 octets on a 4-octet session",
            announce(&[
                ORIGIN,
                AS_PATH_EMPTY,
                NEXT_HOP,
                &[0xc0, 7, 6, 0, 1, 10, 0, 0, 1],
            ]),
            Discard,
            5,
            vec![0xc0, 7, 6, 0, 1, 10, 0, 0, 1],
        ),
        (
            "AGGREGATOR flagged non-transitive",
            announce(&[
                ORIGIN,
                AS_PATH_EMPTY,
                NEXT_HOP,
                &[0x80, 7, 8, 0, 0, 0, 1, 10, 0, 0, 1],
            ]),
            Discard,
            4,
            vec![0x80, 7, 8, 0, 0, 0, 1, 10, 0, 0, 1],
        ),
    ];
    for (what, bytes, action, subcode, data) in cases {
        let Message::Update(update) = decode(&bytes, &ctx4()) else {
            panic!("{what}: not an UPDATE");
        };
        assert_eq!(update.errors.len(), 1, "{what}: {:?}", update.errors);
        let error = &update.errors[0];
        assert_eq!(error.action(), action, "{what}");
        assert_eq!(
            error.notification(),
            Notification::new(3, subcode, data),
            "{what}"
        );
        let withdrawn = update.withdrawn.contains(&net("192.0.2.0/24"));
        let announced = update.nlri.contains(&net("192.0.2.0/24"));
        assert_eq!(withdrawn, action == Withdraw, "{what}: withdrawn");
        assert_eq!(announced, action == Discard, "{what}: announced");
    }
}

#[test]
fn as4_path_errors_on_a_two_octet_session_discard_only_that_attribute() {
    let cases: [&[u8]; 2] = [
        &[0xc0, 17, 6, 2, 2, 0, 0, 0, 1],       // overrun
        &[0xc0, 17, 6, 3, 1, 0, 0, 0xfd, 0xe9], // confederation segment
    ];
    for as4 in cases {
        let Message::Update(u) =
            decode(&announce(&[ORIGIN, AS_PATH_EMPTY, NEXT_HOP, as4]), &ctx2())
        else {
            panic!("not an UPDATE");
        };
        assert_eq!(u.errors.len(), 1);
        assert_eq!(u.errors[0].action(), ErrorAction::AttributeDiscard);
        assert_eq!(
            u.errors[0].notification(),
            Notification::new(3, 9, as4.to_vec())
        );
        assert_eq!(u.attributes.as4_path, None);
        assert_eq!(u.nlri, vec![net("192.0.2.0/24")]);
    }
}

#[test]
fn a_bad_next_hop_is_ignored_when_the_update_has_no_ipv4_nlri() {
    // RFC 4760 §3: NEXT_HOP beside MP_REACH_NLRI alone is ignored.
    let mut attrs = vec![0x80, 14, 24, 0, 2, 1, 16];
    attrs.extend_from_slice(&v6("2001:db8::1").octets());
    attrs.extend_from_slice(&[0, 16, 0x20, 0x01]);
    attrs.extend_from_slice(&[ORIGIN, AS_PATH_EMPTY, &[0x40, 3, 4, 0, 0, 0, 0]].concat());
    let Message::Update(u) = decode(&update_bytes(&[], &attrs, &[]), &ctx4()) else {
        panic!("not an UPDATE");
    };
    assert_eq!(u.errors, vec![]);
    assert_eq!(u.announced().count(), 1);
}

#[test]
fn withdrawals_alone_need_no_mandatory_attributes() {
    let Message::Update(u) = decode(&update_bytes(&[24, 192, 0, 2], &[], &[]), &ctx4()) else {
        panic!("not an UPDATE");
    };
    assert_eq!(u.errors, vec![]);
}
