//! The router fixture itself, against the real daemons: a GoBGP "speaker" in one namespace
//! advertises routes with communities to GoBGP, BIRD and FRR in another, and each router's
//! routes read back through [`Router::routes`] must carry what was sent. This is what the BGP
//! interop tests rely on to judge ferrolb's speaker.
//!
//! Needs root (network namespaces); skipped otherwise. The last test checks the operator
//! guide's FRR and BIRD configurations with the daemons' own parsers.

use std::net::IpAddr;
use std::time::Duration;

use ferrolb_tests::l2cluster::wait_for;
use ferrolb_tests::netns::{Lan, is_root};
use ferrolb_tests::routers::{Neighbor, Router, RouterConfig, RouterKind};

const SPEAKER_AS: u32 = 4_200_000_001;
const ROUTER_AS: u32 = 64512;

async fn routes_arrive_from_a_gobgp_speaker(kind: RouterKind) {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let lan = Lan::builder()
        .host("speaker")
        .host("router")
        .build()
        .expect("LAN");
    let (speaker, router) = (lan.host("speaker"), lan.host("router"));
    let speaker_ip = IpAddr::V4(speaker.ipv4);
    let router_ip = IpAddr::V4(router.ipv4);
    let rtr = Router::start(
        kind,
        &router.ns,
        &RouterConfig {
            asn: ROUTER_AS,
            router_id: router.ipv4,
            neighbors: vec![Neighbor::passive(speaker_ip, SPEAKER_AS)],
            multipath: true,
        },
    )
    .expect("router starts");
    let mut active = Neighbor::passive(router_ip, ROUTER_AS);
    active.passive = false;
    let spk = Router::start(
        RouterKind::Gobgp,
        &speaker.ns,
        &RouterConfig {
            asn: SPEAKER_AS,
            router_id: speaker.ipv4,
            neighbors: vec![active],
            multipath: false,
        },
    )
    .expect("speaker starts");
    wait_for(
        &format!("{kind} establishes"),
        Duration::from_secs(60),
        || async { Ok(rtr.established(speaker_ip)?.then_some(())) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", rtr.describe(), spk.describe()));

    let g = |args: &[&str]| {
        let mut cmd = vec!["gobgp", "-u", "127.0.0.1", "-p", "50051", "global", "rib"];
        cmd.extend_from_slice(args);
        speaker.ns.output(&cmd).expect("gobgp rib add")
    };
    g(&[
        "-a",
        "ipv4",
        "add",
        "198.51.100.10/32",
        "community",
        "65000:100,65000:200",
        "large-community",
        "4200000001:1:2",
    ]);
    let v6_next_hop = speaker.ipv6.to_string();
    g(&[
        "-a",
        "ipv6",
        "add",
        "2001:db8:100::10/128",
        "nexthop",
        &v6_next_hop,
        "community",
        "65000:300",
    ]);

    let routes = wait_for(
        &format!("{kind} holds both routes"),
        Duration::from_secs(30),
        || async {
            let routes = rtr.routes()?;
            let has = |p: &str| routes.iter().any(|r| r.prefix.to_string() == p);
            Ok((has("198.51.100.10/32") && has("2001:db8:100::10/128")).then_some(routes))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", rtr.describe()));
    let v4 = routes
        .iter()
        .find(|r| r.prefix.to_string() == "198.51.100.10/32")
        .expect("v4 route");
    assert_eq!(v4.next_hop, speaker_ip, "{v4:?}");
    assert_eq!(v4.as_path, vec![SPEAKER_AS], "{v4:?}");
    assert!(
        v4.communities.contains("65000:100") && v4.communities.contains("65000:200"),
        "{v4:?}"
    );
    assert!(v4.large_communities.contains("4200000001:1:2"), "{v4:?}");
    let v6 = routes
        .iter()
        .find(|r| r.prefix.to_string() == "2001:db8:100::10/128")
        .expect("v6 route");
    assert_eq!(v6.next_hop, IpAddr::V6(speaker.ipv6), "{v6:?}");
    assert!(v6.communities.contains("65000:300"), "{v6:?}");
}

#[tokio::test]
async fn gobgp_receives_and_reports_routes_with_communities() {
    routes_arrive_from_a_gobgp_speaker(RouterKind::Gobgp).await;
}

#[tokio::test]
async fn bird_receives_and_reports_routes_with_communities() {
    routes_arrive_from_a_gobgp_speaker(RouterKind::Bird).await;
}

#[tokio::test]
async fn frr_receives_and_reports_routes_with_communities() {
    routes_arrive_from_a_gobgp_speaker(RouterKind::Frr).await;
}

/// The router configurations of `docs/operator-guide.md` (its ```frr and ```bird blocks), as
/// the daemons' own parsers read them: `vtysh --dryrun` and `bird -p`. A block the parser
/// refuses fails here naming the parser's complaint. (The Debian packages the setup installs
/// provide both; no root needed.)
#[test]
fn the_operator_guides_frr_and_bird_configurations_parse() {
    let guide =
        std::fs::read_to_string(ferrolb_tests::fixtures::repo_path("docs/operator-guide.md"))
            .expect("the guide");
    let work = tempfile::tempdir().expect("a temporary directory");
    for (lang, parser) in [
        ("frr", ["vtysh", "--dryrun", "-f"]),
        ("bird", ["bird", "-p", "-c"]),
    ] {
        let fence = format!("```{lang}\n");
        let start = guide
            .find(&fence)
            .unwrap_or_else(|| panic!("no {fence:?} block"))
            + fence.len();
        let end = start + guide[start..].find("```").expect("the block's end");
        let file = work.path().join(format!("guide.{lang}"));
        std::fs::write(&file, &guide[start..end]).expect("write");
        let out = std::process::Command::new(parser[0])
            .args(&parser[1..])
            .arg(&file)
            .output()
            .unwrap_or_else(|e| panic!("{} (from the lab's Debian packages): {e}", parser[0]));
        assert!(
            out.status.success(),
            "{} refuses the guide's {lang} configuration: {}{}",
            parser[0],
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
