//! BMP export (RFC 7854, Adj-RIB-Out per RFC 8671) read by a real collector: pmacct's
//! `pmbmpd` (Debian's `pmacct`) in its own namespace, ferrolb's session to FRR in another.
//! The collector must log the Initiation with the node's name, the session's Peer Up, the
//! route as Route Monitoring of the Adj-RIB-Out (and its withdrawal), the Peer Down with
//! the reason, and the Termination. Needs root.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ferrolb_speaker::bgp::fsm::{self, PeerAsn};
use ferrolb_speaker::bgp::{RouteAttrs, RouteSet, SessionConfig};
use ferrolb_tests::bgp_session::SpeakerSession;
use ferrolb_tests::bmp_collector::{PORT, Pmbmpd};
use ferrolb_tests::l2cluster::wait_for;
use ferrolb_tests::netns::is_root;
use ferrolb_tests::routers::{PeeringLan, RouterKind};
use serde_json::Value;

const SPEAKER_AS: u32 = 4_200_000_001;
const ROUTER_AS: u32 = 64512;
const PREFIX: &str = "198.51.100.61/32";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pmbmpd_logs_the_session_its_routes_and_their_end() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let bed = PeeringLan::start(
        RouterKind::Frr,
        (ROUTER_AS, SPEAKER_AS),
        &["collector"],
        |_| {},
    );
    let (speaker, router, rtr) = (&bed.speaker, &bed.router, &bed.rtr);
    let collector = bed.lan.host("collector");
    let pmbmpd = Pmbmpd::start(&collector.ns, IpAddr::V4(collector.ipv4)).expect("pmbmpd");

    let fsm = fsm::Config::new(SPEAKER_AS, PeerAsn::Exact(ROUTER_AS), speaker.ipv4);
    let config = SessionConfig::new(fsm, IpAddr::V4(router.ipv4));
    let routes: RouteSet = [(PREFIX.parse().expect("a prefix"), RouteAttrs::default())]
        .into_iter()
        .collect();
    let target = SocketAddr::new(IpAddr::V4(collector.ipv4), PORT).to_string();
    let mut session = SpeakerSession::start_exporting(speaker, config, routes, target);

    let logged = |pred: &dyn Fn(&Value) -> bool| pmbmpd.messages().into_iter().find(|m| pred(m));
    let route = |log_type: &'static str| {
        move |m: &Value| {
            m["bmp_msg_type"] == "route_monitor"
                && m["ip_prefix"] == PREFIX
                && m["log_type"] == log_type
        }
    };
    wait_for("pmbmpd logs the route", Duration::from_secs(60), || async {
        Ok(logged(&route("update")).map(drop))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", pmbmpd.describe(), rtr.describe()));
    session.set_routes(RouteSet::new());
    wait_for(
        "pmbmpd logs the withdrawal",
        Duration::from_secs(30),
        || async { Ok(logged(&route("withdraw")).map(drop)) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", pmbmpd.describe()));
    session.shutdown();
    wait_for("pmbmpd logs the end", Duration::from_secs(30), || async {
        Ok(logged(&|m| m["bmp_msg_type"] == "term").map(drop))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", pmbmpd.describe()));

    let all = pmbmpd.describe();
    let one = |kind: &str| {
        let found = pmbmpd.of_type(kind);
        assert_eq!(found.len(), 1, "one {kind}:\n{all}");
        found.into_iter().next().expect("one")
    };
    let init = one("init");
    assert_eq!(init["bmp_init_info_sysname"], "speaker", "{all}");
    assert!(
        init["bmp_init_info_sysdescr"]
            .as_str()
            .is_some_and(|d| d.starts_with("ferrolb speaker")),
        "{all}"
    );
    let router_ip = router.ipv4.to_string();
    let up = one("peer_up");
    assert_eq!(up["peer_ip"], router_ip.as_str(), "{all}");
    assert_eq!(up["peer_asn"], ROUTER_AS, "{all}");
    assert_eq!(up["bgp_id"], router_ip.as_str(), "{all}");
    assert_eq!(up["local_ip"], speaker.ipv4.to_string().as_str(), "{all}");
    assert_eq!(up["remote_port"], 179, "{all}");
    let announced = logged(&route("update")).expect("logged");
    assert_eq!(announced["is_out"], 1, "Adj-RIB-Out (RFC 8671):\n{all}");
    assert_eq!(announced["is_post"], 1, "post-policy:\n{all}");
    assert_eq!(announced["peer_ip"], router_ip.as_str(), "{all}");
    assert_eq!(
        announced["bgp_nexthop"],
        speaker.ipv4.to_string().as_str(),
        "{all}"
    );
    assert_eq!(
        announced["as_path"],
        SPEAKER_AS.to_string().as_str(),
        "{all}"
    );
    let down = one("peer_down");
    assert_eq!(down["peer_ip"], router_ip.as_str(), "{all}");
    assert_eq!(
        down["reason_type"], 1,
        "closed by us with a NOTIFICATION:\n{all}"
    );
    assert_eq!(
        one("term")["bmp_term_info_reason"],
        "Session administratively closed",
        "{all}"
    );
}
