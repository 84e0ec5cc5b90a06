//! The monitor's snapshot against its live stream: a collector that subscribes while a
//! session is between writing a batch of UPDATEs and committing it still ends up with every
//! route once.

use super::*;

fn pdu(text: &str) -> Vec<u8> {
    let mut out = vec![0xff; 16];
    out.extend(u16::try_from(19 + text.len()).expect("short").to_be_bytes());
    out.push(2);
    out.extend(text.as_bytes());
    out
}

fn up(monitor: &Arc<Monitor>) -> Tap {
    let mut tap = monitor.tap("192.0.2.1".parse().expect("ip"), None);
    tap.open_sent(&pdu("our OPEN"));
    tap.open_received(&pdu("their OPEN"));
    tap.established(SessionUp {
        local: "192.0.2.11:40000".parse().expect("addr"),
        remote: "192.0.2.1:179".parse().expect("addr"),
        peer_asn: 64513,
        peer_bgp_id: Ipv4Addr::new(10, 0, 0, 2),
        four_octet_as: true,
        encode: Box::new(|rib: &super::super::RouteSet| {
            rib.keys().map(|p| pdu(&p.to_string())).collect()
        }),
        end_of_rib: vec![pdu("EoR")],
    });
    tap
}

/// The UPDATE payloads (as text) among `messages`.
fn updates(messages: &[Bytes]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match Message::decode(m).expect("decodes") {
            Message::RouteMonitoring { update, .. } => {
                Some(String::from_utf8_lossy(&update[19..]).into_owned())
            }
            _ => None,
        })
        .collect()
}

fn drain(rx: &mut mpsc::Receiver<Bytes>) -> Vec<Bytes> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

#[test]
fn a_collector_subscribing_mid_batch_gets_the_batch_once() {
    let monitor = Monitor::new("node-a");
    let mut tap = up(&monitor);
    let route: super::super::RouteSet =
        [("198.51.100.7/32".parse().expect("net"), Default::default())]
            .into_iter()
            .collect();

    // Written to the peer, not committed: a collector arriving now sees neither the route
    // in its snapshot nor, yet, on its live queue.
    tap.update_sent(&pdu("198.51.100.7/32"));
    let (snapshot, mut live) = monitor.subscribe().expect("open");
    assert!(updates(&snapshot).is_empty(), "{:?}", updates(&snapshot));
    assert!(drain(&mut live).is_empty());

    tap.commit(Some(Arc::new(route)), false);
    assert_eq!(
        updates(&drain(&mut live)),
        ["198.51.100.7/32"],
        "the batch, once"
    );

    // Arriving after the commit: the route from the table, and no End-of-RIB before the
    // session has sent one.
    let (snapshot, _later) = monitor.subscribe().expect("open");
    assert_eq!(updates(&snapshot), ["198.51.100.7/32"]);

    tap.update_sent(&pdu("EoR"));
    tap.commit(None, true);
    assert_eq!(updates(&drain(&mut live)), ["EoR"]);
    let (snapshot, _last) = monitor.subscribe().expect("open");
    assert_eq!(updates(&snapshot), ["198.51.100.7/32", "EoR"]);
}
