//! The layer-2 announcer against the real kernel: nodes and a client on one bridged LAN
//! (network namespaces), an [`Announcer`] running in-process inside each node namespace (a
//! thread with its own tokio runtime), plans given directly. Every outcome is read from the
//! client's own kernel neighbour table (`ip neigh`), the announcer's `announcing` map, its
//! conflict reports and its metrics. Needs root; skipped with a message otherwise.

mod support;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use ferrolb_speaker::layer2::announcer::{
    AnnouncerSettings, InterfaceChoice, Protocol, checksum, ipv6_frame,
};
use ferrolb_speaker::layer2::arp::{ArpFrame, Mac};
use ferrolb_speaker::layer2::ndp::{Solicitation, multicast_mac, solicited_node};
use support::*;

#[test]
fn the_owner_answers_arp_and_ndp_and_nobody_answers_for_an_unplanned_ip() -> anyhow::Result<()> {
    if !root() {
        return Ok(());
    }
    init_logs();
    let lan = lan(&["node-a", "node-b"])?;
    let client = lan.host("client");
    let a = Node::start(lan.host("node-a"), settings())?;
    let b = Node::start(lan.host("node-b"), settings())?;
    a.set_plan(&all(&[VIP4, VIP6]));
    a.wait_announcing(&[(VIP4, &["eth0"]), (VIP6, &["eth0"])], DEADLINE)?;
    assert!(b.announcing().is_empty());

    assert_eq!(resolve(client, VIP4)?, a.mac("eth0"), "ARP answered by A");
    assert_eq!(resolve(client, VIP6)?, a.mac("eth0"), "NDP answered by A");
    assert_unresolved(client, UNPLANNED4)?;
    assert_unresolved(client, UNPLANNED6)?;

    for p in [Protocol::Arp, Protocol::Ndp] {
        assert!(
            a.counter(requests, "eth0", p) >= 1,
            "{p:?} requests counted"
        );
        assert!(a.counter(replies, "eth0", p) >= 1, "{p:?} replies counted");
        assert!(a.counter(gratuitous, "eth0", p) >= 1, "{p:?} burst counted");
        assert_eq!(b.counter(replies, "eth0", p), 0, "B answers nothing");
        assert_eq!(a.counter(malformed, "eth0", p), 0);
    }
    Ok(())
}

#[test]
fn moving_an_ip_updates_the_clients_entry_by_the_new_owners_announcement() -> anyhow::Result<()> {
    if !root() {
        return Ok(());
    }
    init_logs();
    let lan = lan(&["node-a", "node-b"])?;
    let client = lan.host("client");
    let lingering = AnnouncerSettings {
        linger: Duration::from_secs(30),
        ..settings()
    };
    let a = Node::start(lan.host("node-a"), lingering.clone())?;
    let b = Node::start(lan.host("node-b"), lingering)?;
    a.set_plan(&all(&[VIP4, VIP6]));
    assert_eq!(resolve(client, VIP4)?, a.mac("eth0"));
    assert_eq!(resolve(client, VIP6)?, a.mac("eth0"));

    // The election moves the IPs: A releases them, B takes them. The client sends nothing. (If
    // B's burst reaches A before A has released, A — the lower MAC — wins that race; B then
    // probes after its 1 s hold-down, A no longer defends the lingering IPs, and B takes over:
    // still within the deadline, and A answers meanwhile.)
    a.set_plan(&[]);
    b.set_plan(&all(&[VIP4, VIP6]));
    wait_client_entry(client, VIP4, b.mac("eth0"), BURST_DEADLINE)?;
    wait_client_entry(client, VIP6, b.mac("eth0"), BURST_DEADLINE)?;
    for p in [Protocol::Arp, Protocol::Ndp] {
        assert_eq!(
            b.counter(requests, "eth0", p),
            0,
            "the client never asked B ({p:?})"
        );
    }

    // B's announcement also ended A's make-before-break linger long before its 30 s.
    a.wait_announcing(&[], BURST_DEADLINE)?;
    b.wait_announcing(&[(VIP4, &["eth0"]), (VIP6, &["eth0"])], DEADLINE)?;
    Ok(())
}

#[test]
fn a_link_down_on_the_owner_stops_its_answering_and_link_up_announces_again() -> anyhow::Result<()>
{
    if !root() {
        return Ok(());
    }
    init_logs();
    let lan = lan(&["node-a"])?;
    let client = lan.host("client");
    let a = Node::start(lan.host("node-a"), settings())?;
    a.set_plan(&all(&[VIP4, VIP6]));
    a.wait_announcing(&[(VIP4, &["eth0"]), (VIP6, &["eth0"])], DEADLINE)?;

    a.ns().link_down("eth0")?;
    a.wait_announcing(&[], BURST_DEADLINE)?;
    assert_unresolved(client, VIP4)?;

    let before = a.counter(gratuitous, "eth0", Protocol::Arp);
    a.ns().link_up("eth0")?;
    a.wait_announcing(&[(VIP4, &["eth0"]), (VIP6, &["eth0"])], DEADLINE)?;
    wait_until("A announces again after link-up", DEADLINE, || {
        Ok(a.counter(gratuitous, "eth0", Protocol::Arp) > before)
    })?;
    assert_eq!(resolve(client, VIP4)?, a.mac("eth0"));
    assert_eq!(resolve(client, VIP6)?, a.mac("eth0"));
    Ok(())
}

#[test]
fn an_ip_planned_on_a_named_interface_is_answered_only_there() -> anyhow::Result<()> {
    if !root() {
        return Ok(());
    }
    init_logs();
    let lan = lan(&["node-c"])?;
    let client = lan.host("client");
    let c = Node::start(lan.host("node-c"), settings())?;
    c.set_plan(&[
        (VIP4, named(&["eth1"])),
        (VIP6, named(&["eth1", "eth7"])),
        (UNPLANNED4, InterfaceChoice::All),
    ]);
    c.wait_announcing(
        &[
            (VIP4, &["eth1"]),
            (VIP6, &["eth1"]),
            (UNPLANNED4, &["eth0", "eth1"]),
        ],
        DEADLINE,
    )?;
    // Both of C's interfaces hear the client's broadcast and multicast; only eth1 answers.
    assert_eq!(resolve(client, VIP4)?, c.mac("eth1"));
    assert_eq!(resolve(client, VIP6)?, c.mac("eth1"));
    for p in [Protocol::Arp, Protocol::Ndp] {
        assert_eq!(c.counter(replies, "eth0", p), 0, "eth0 answered ({p:?})");
        assert!(c.counter(replies, "eth1", p) >= 1);
    }
    // eth0 hears eth1's announcements of the IP they share: the node's own MACs never conflict.
    assert_eq!(c.counter(conflicts, "eth0", Protocol::Arp), 0);
    assert_eq!(c.counter(conflicts, "eth1", Protocol::Arp), 0);
    Ok(())
}

/// Refresh often and hold down briefly, so split-brain tests run in seconds.
fn split_brain_settings() -> AnnouncerSettings {
    AnnouncerSettings {
        refresh: Duration::from_millis(300),
        hold_down: Duration::from_secs(1),
        linger: Duration::from_secs(5),
        ..settings()
    }
}

#[test]
fn in_a_split_brain_the_higher_mac_goes_silent_until_the_winner_is_gone() -> anyhow::Result<()> {
    if !root() {
        return Ok(());
    }
    init_logs();
    let lan = lan(&["node-a", "node-b"])?;
    let client = lan.host("client");
    let mut a = Node::start(lan.host("node-a"), split_brain_settings())?;
    let mut b = Node::start(lan.host("node-b"), split_brain_settings())?;
    assert!(a.mac("eth0") < b.mac("eth0"), "A wins by MAC order");
    a.set_plan(&all(&[VIP4, VIP6]));
    a.wait_announcing(&[(VIP4, &["eth0"]), (VIP6, &["eth0"])], DEADLINE)?;

    // Both believe they own the IPs.
    b.set_plan(&all(&[VIP4, VIP6]));
    for vip in [VIP4, VIP6] {
        let lost = b.wait_conflict(&format!("B loses {vip}"), |c| c.ip == ip(vip))?;
        assert_eq!(
            (
                lost.we_lose,
                lost.theirs,
                lost.ours,
                lost.interface.as_str()
            ),
            (true, a.mac("eth0"), b.mac("eth0"), "eth0")
        );
        let won = a.wait_conflict(&format!("A wins {vip}"), |c| c.ip == ip(vip))?;
        assert_eq!((won.we_lose, won.theirs), (false, b.mac("eth0")));
    }
    b.wait_announcing(&[], BURST_DEADLINE)?;
    assert_eq!(resolve(client, VIP4)?, a.mac("eth0"));
    assert_eq!(resolve(client, VIP6)?, a.mac("eth0"));

    // A keeps refreshing, so B stays silent through several hold-downs.
    let quiet = Instant::now();
    while quiet.elapsed() < Duration::from_secs(3) {
        assert!(
            b.announcing().is_empty(),
            "B came back while A still announces"
        );
        assert_eq!(a.announcing().len(), 2);
        std::thread::sleep(POLL);
    }
    assert!(a.counter(conflicts, "eth0", Protocol::Arp) >= 1);
    assert!(b.counter(conflicts, "eth0", Protocol::Ndp) >= 1);

    // A stops announcing (it lingers silently): B no longer sees it and takes over.
    a.set_plan(&[]);
    b.wait_announcing(&[(VIP4, &["eth0"]), (VIP6, &["eth0"])], DEADLINE)?;
    wait_client_entry(client, VIP4, b.mac("eth0"), BURST_DEADLINE)?;
    wait_client_entry(client, VIP6, b.mac("eth0"), BURST_DEADLINE)?;
    a.wait_announcing(&[], BURST_DEADLINE)?;
    Ok(())
}

#[test]
fn a_rogue_claim_from_the_client_is_a_conflict_decided_by_mac_order() -> anyhow::Result<()> {
    if !root() {
        return Ok(());
    }
    init_logs();
    let lan = lan(&["node-a"])?;
    let client = lan.host("client");
    let mut a = Node::start(lan.host("node-a"), split_brain_settings())?;
    a.set_plan(&all(&[VIP4, VIP6]));
    a.wait_announcing(&[(VIP4, &["eth0"]), (VIP6, &["eth0"])], DEADLINE)?;
    let IpAddr::V4(vip4) = ip(VIP4) else {
        unreachable!()
    };
    let IpAddr::V6(vip6) = ip(VIP6) else {
        unreachable!()
    };

    // A higher MAC claims VIP4: A wins, keeps answering and re-announces.
    let higher = Mac([0xee, 0, 0, 0, 0, 0x01]);
    let before = a.counter(gratuitous, "eth0", Protocol::Arp);
    let garp = ArpFrame::gratuitous(vip4, higher).map(|f| f.encode().to_vec());
    send_from_client(client, false, garp.to_vec())?;
    let won = a.wait_conflict("a higher MAC claims VIP4", |c| c.theirs == higher)?;
    assert!(!won.we_lose);
    wait_until("A re-announces", BURST_DEADLINE, || {
        Ok(a.counter(gratuitous, "eth0", Protocol::Arp) >= before + 2)
    })?;
    assert_eq!(a.announcing().len(), 2);

    // A lower MAC claims VIP6 by an advertisement: A goes silent for VIP6 only...
    let lower = Mac([0x02, 0, 0, 0, 0, 0x01]);
    let na = ferrolb_speaker::layer2::announcer::NdpFrame::unsolicited(vip6, lower);
    send_from_client(client, true, vec![na.encode()])?;
    let lost = a.wait_conflict("a lower MAC claims VIP6", |c| c.theirs == lower)?;
    assert!(lost.we_lose);
    a.wait_announcing(&[(VIP4, &["eth0"])], BURST_DEADLINE)?;
    // ... until the hold-down passes without the rogue, then announces it again.
    a.wait_announcing(&[(VIP4, &["eth0"]), (VIP6, &["eth0"])], DEADLINE)?;
    assert_eq!(resolve(client, VIP6)?, a.mac("eth0"));
    Ok(())
}

#[test]
fn a_draining_node_answers_until_its_successor_claims_the_ip() -> anyhow::Result<()> {
    if !root() {
        return Ok(());
    }
    init_logs();
    let lan = lan(&["node-a", "node-b"])?;
    let client = lan.host("client");
    let lingering = AnnouncerSettings {
        linger: Duration::from_secs(30),
        ..settings()
    };
    let a = Node::start(lan.host("node-a"), lingering.clone())?;
    let b = Node::start(lan.host("node-b"), lingering)?;
    a.set_plan(&all(&[VIP4, VIP6]));
    a.wait_announcing(&[(VIP4, &["eth0"]), (VIP6, &["eth0"])], DEADLINE)?;

    a.drain()?;
    let grat = a.counter(gratuitous, "eth0", Protocol::Arp);
    // Still answered while draining (and no new announcement is sent).
    assert_eq!(resolve(client, VIP4)?, a.mac("eth0"));
    assert_eq!(resolve(client, VIP6)?, a.mac("eth0"));
    assert!(
        a.drained.try_recv().is_err(),
        "drain must wait for a successor"
    );
    assert_eq!(a.counter(gratuitous, "eth0", Protocol::Arp), grat);

    let takeover = Instant::now();
    b.set_plan(&all(&[VIP4, VIP6]));
    let drained = a
        .drained
        .recv_timeout(DEADLINE)
        .context("drain ended after the successor claimed both IPs")?;
    assert!(drained.duration_since(takeover) < BURST_DEADLINE);
    assert!(a.announcing().is_empty());
    wait_client_entry(client, VIP4, b.mac("eth0"), BURST_DEADLINE)?;
    Ok(())
}

#[test]
fn a_drain_without_successor_ends_when_the_linger_passes() -> anyhow::Result<()> {
    if !root() {
        return Ok(());
    }
    init_logs();
    let lan = lan(&["node-a"])?;
    let linger = Duration::from_millis(800);
    let a = Node::start(
        lan.host("node-a"),
        AnnouncerSettings {
            linger,
            ..settings()
        },
    )?;
    a.set_plan(&all(&[VIP4]));
    a.wait_announcing(&[(VIP4, &["eth0"])], DEADLINE)?;
    let start = Instant::now();
    a.drain()?;
    let drained = a.drained.recv_timeout(DEADLINE).context("drain ended")?;
    let took = drained.duration_since(start);
    assert!(
        took >= linger && took < linger + Duration::from_secs(2),
        "{took:?}"
    );
    assert!(a.announcing().is_empty());
    Ok(())
}

#[test]
fn malformed_frames_are_counted_and_the_responder_keeps_answering() -> anyhow::Result<()> {
    if !root() {
        return Ok(());
    }
    init_logs();
    let lan = lan(&["node-a"])?;
    let client = lan.host("client");
    let a = Node::start(lan.host("node-a"), settings())?;
    a.set_plan(&all(&[VIP4, VIP6]));
    a.wait_announcing(&[(VIP4, &["eth0"]), (VIP6, &["eth0"])], DEADLINE)?;
    let me = mac(client.mac("eth0"));
    let IpAddr::V6(vip6) = ip(VIP6) else {
        unreachable!()
    };

    // ARP: cut short, an unknown operation, IPv6-sized protocol addresses.
    let IpAddr::V4(vip4) = ip(VIP4) else {
        unreachable!()
    };
    let request = ArpFrame {
        eth_destination: Mac::BROADCAST,
        eth_source: me,
        operation: ferrolb_speaker::layer2::arp::Operation::Request,
        sender_mac: me,
        sender_ip: client.ipv4,
        target_mac: Mac::ZERO,
        target_ip: vip4,
    }
    .encode();
    let mut rarp = request;
    rarp[20..22].copy_from_slice(&[0, 3]);
    let mut wide = request;
    wide[19] = 16;
    send_from_client(
        client,
        false,
        vec![request[..30].to_vec(), rarp.to_vec(), wide.to_vec()],
    )?;

    // NDP: routed (hop limit 64), a bad checksum, a zero-length option with a good checksum.
    let group = solicited_node(vip6);
    let ns = Solicitation {
        target: vip6,
        source_mac: Some(me),
    }
    .encode(client.ipv6, group);
    let frame = |hop_limit: u8, icmp: &[u8]| {
        ipv6_frame(
            multicast_mac(group),
            me,
            client.ipv6,
            group,
            hop_limit,
            icmp,
        )
    };
    let mut bad_sum = ns.clone();
    bad_sum[2] ^= 0xff;
    let mut bad_option = ns.clone();
    bad_option[25] = 0;
    bad_option[2..4].copy_from_slice(&[0, 0]);
    let sum = checksum(client.ipv6, group, &bad_option);
    bad_option[2..4].copy_from_slice(&sum.to_be_bytes());
    send_from_client(
        client,
        true,
        vec![
            frame(64, &ns),
            frame(255, &bad_sum),
            frame(255, &bad_option),
        ],
    )?;

    wait_until("A counts every malformed frame", DEADLINE, || {
        Ok(a.counter(malformed, "eth0", Protocol::Arp) == 3
            && a.counter(malformed, "eth0", Protocol::Ndp) == 3)
    })?;
    assert_eq!(
        a.counter(replies, "eth0", Protocol::Ndp),
        0,
        "none was answered"
    );
    assert_eq!(resolve(client, VIP4)?, a.mac("eth0"));
    assert_eq!(resolve(client, VIP6)?, a.mac("eth0"));
    Ok(())
}
