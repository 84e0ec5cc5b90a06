//! Last-known-good: what a component serves while an object it used has turned invalid. Each
//! test feeds a [`Serving`] the snapshots a user's edits produce, in order, and checks what is
//! served after each.

use ferrolb_config::{ObjectKind, PeerName, PoolName, Serving, Snapshot};

const NS: &str = "ferrolb-system";

fn snapshot(yaml: &str) -> Snapshot {
    Snapshot::from_yaml(NS, yaml).expect("test YAML parses")
}

/// A pool created at `day` of January 2026 (older pools win conflicts between new objects).
fn pool(name: &str, day: u8, addresses: &str) -> String {
    format!(
        "---\napiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {name}, namespace: {NS}, creationTimestamp: '2026-01-{day:02}T00:00:00Z'}}\nspec: {{addresses: [\"{addresses}\"]}}\n"
    )
}

fn object(kind: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: ferrolb.io/v1beta1\nkind: {kind}\nmetadata: {{name: {name}, namespace: {NS}}}\nspec: {spec}\n"
    )
}

fn secret(name: &str, password: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {NS}}}\ntype: kubernetes.io/basic-auth\nstringData: {{password: {password}}}\n"
    )
}

/// Each served pool with its addresses, as text.
fn served_pools(serving: &Serving) -> Vec<(String, String)> {
    serving
        .config()
        .pools
        .values()
        .map(|p| {
            let ranges: Vec<String> = p.ranges.iter().map(ToString::to_string).collect();
            (p.name.to_string(), ranges.join(","))
        })
        .collect()
}

fn pair(name: &str, ranges: &str) -> (String, String) {
    (name.to_owned(), ranges.to_owned())
}

fn l2_pools(serving: &Serving) -> Vec<String> {
    serving.config().l2_advertisements["lan"]
        .pools
        .iter()
        .map(PoolName::to_string)
        .collect()
}

const L2: &str = "{ipAddressPools: [older, newer]}";

#[test]
fn an_edit_making_the_older_pool_overlap_a_pool_in_use_keeps_both_pools_as_they_were() {
    let mut serving = Serving::default();
    let older = pool("older", 1, "192.0.2.200-192.0.2.209");
    let newer = pool("newer", 2, "192.0.2.210-192.0.2.219");
    let ad = object("L2Advertisement", "lan", L2);
    serving.update(&snapshot(&format!("{older}{newer}{ad}")));
    let before = served_pools(&serving);

    // The older pool is edited to take the newer one's addresses. By age alone the older would
    // win and the newer (with its Services) would go; the pool in use with unchanged addresses
    // wins instead, and the edited one stays in its last valid version.
    let edited = pool("older", 1, "192.0.2.200-192.0.2.219");
    let outcome = serving.update(&snapshot(&format!("{edited}{newer}{ad}")));
    assert_eq!(served_pools(&serving), before);
    assert!(serving.is_held_back(ObjectKind::IPAddressPool, "older"));
    assert!(!outcome.is_usable(ObjectKind::IPAddressPool, "older"));
    assert_eq!(l2_pools(&serving), ["newer", "older"]);

    // Fixed: the new version is served and nothing is held back.
    let fixed = pool("older", 1, "192.0.2.190-192.0.2.209");
    serving.update(&snapshot(&format!("{fixed}{newer}{ad}")));
    assert_eq!(
        served_pools(&serving),
        [
            pair("newer", "192.0.2.210-192.0.2.219"),
            pair("older", "192.0.2.190-192.0.2.209")
        ]
    );
    assert!(serving.held_back().is_empty());
}

#[test]
fn an_edit_making_the_newer_pool_overlap_keeps_its_last_version_until_it_is_deleted() {
    let mut serving = Serving::default();
    let older = pool("older", 1, "192.0.2.200-192.0.2.209");
    let newer = pool("newer", 2, "192.0.2.210-192.0.2.219");
    let ad = object("L2Advertisement", "lan", L2);
    serving.update(&snapshot(&format!("{older}{newer}{ad}")));
    let before = served_pools(&serving);

    let edited = pool("newer", 2, "192.0.2.205-192.0.2.219");
    serving.update(&snapshot(&format!("{older}{edited}{ad}")));
    assert_eq!(served_pools(&serving), before);
    assert!(serving.is_held_back(ObjectKind::IPAddressPool, "newer"));

    // Deleted: its last version goes too.
    serving.update(&snapshot(&format!("{older}{ad}")));
    assert_eq!(
        served_pools(&serving),
        [pair("older", "192.0.2.200-192.0.2.209")]
    );
    assert!(serving.held_back().is_empty());
}

#[test]
fn a_last_version_overlapping_a_pool_that_is_valid_now_is_dropped() {
    let mut serving = Serving::default();
    let a = pool("a", 1, "192.0.2.200-192.0.2.209");
    serving.update(&snapshot(&a));
    // "a" turns invalid and a new pool "b" takes its old addresses: "b" is valid now, so the
    // last version of "a" cannot be served beside it.
    let broken = pool("a", 1, "192.0.2.300");
    let b = pool("b", 2, "192.0.2.200-192.0.2.205");
    serving.update(&snapshot(&format!("{broken}{b}")));
    assert_eq!(
        served_pools(&serving),
        [pair("b", "192.0.2.200-192.0.2.205")]
    );
    assert!(serving.held_back().is_empty());
}

const PEER: &str = "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, bfdProfile: fast, passwordSecret: {name: md5}}";

#[test]
fn a_peer_whose_secret_or_bfd_profile_goes_missing_keeps_its_last_valid_version() {
    let mut serving = Serving::default();
    let peer = object("BGPPeer", "router", PEER);
    let profile = object("BFDProfile", "fast", "{receiveInterval: 100}");
    let md5 = secret("md5", "s3cret");
    serving.update(&snapshot(&format!("{peer}{profile}{md5}")));
    let name = PeerName::from("router");
    let before = serving.config().peers[&name].clone();
    assert_eq!(before.password.as_deref(), Some("s3cret"));

    // The Secret is gone for a moment (recreated by a secret manager, say).
    let outcome = serving.update(&snapshot(&format!("{peer}{profile}")));
    assert_eq!(serving.config().peers.get(&name), Some(&before));
    assert!(serving.is_held_back(ObjectKind::BGPPeer, "router"));
    assert!(!outcome.is_usable(ObjectKind::BGPPeer, "router"));

    // The BFDProfile is gone too: the peer keeps the profile it ran with.
    serving.update(&snapshot(&peer));
    assert_eq!(serving.config().peers.get(&name), Some(&before));
    assert_eq!(
        serving.config().bfd_profiles["fast"].receive_interval,
        std::time::Duration::from_millis(100)
    );

    // Both back, with a new password: the new version is served.
    serving.update(&snapshot(&format!(
        "{peer}{profile}{}",
        secret("md5", "rotated")
    )));
    assert_eq!(
        serving.config().peers[&name].password.as_deref(),
        Some("rotated")
    );
    assert!(serving.held_back().is_empty());

    // The peer deleted: nothing is kept.
    serving.update(&snapshot(&format!("{profile}{md5}")));
    assert!(serving.config().peers.is_empty());
}

#[test]
fn an_invalid_bfd_profile_edit_keeps_the_profile_and_its_peers() {
    let mut serving = Serving::default();
    let peer = object("BGPPeer", "router", PEER);
    let md5 = secret("md5", "s3cret");
    let profile = object("BFDProfile", "fast", "{receiveInterval: 100}");
    serving.update(&snapshot(&format!("{peer}{profile}{md5}")));
    let before = serving.config().clone();

    let broken = object("BFDProfile", "fast", "{receiveInterval: 1}");
    serving.update(&snapshot(&format!("{peer}{broken}{md5}")));
    assert_eq!(serving.config(), &before);
    assert!(serving.is_held_back(ObjectKind::BFDProfile, "fast"));
    assert!(!serving.is_held_back(ObjectKind::BGPPeer, "router"));
}

#[test]
fn a_last_peer_version_is_dropped_when_a_valid_peer_takes_its_session() {
    let mut serving = Serving::default();
    let md5 = secret("md5", "s3cret");
    let profile = object("BFDProfile", "fast", "{receiveInterval: 100}");
    let peer = object("BGPPeer", "router", PEER);
    serving.update(&snapshot(&format!("{peer}{profile}{md5}")));
    // The old peer loses its Secret while a new object for the same router appears.
    let other = object(
        "BGPPeer",
        "router-2",
        "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1}",
    );
    serving.update(&snapshot(&format!("{peer}{other}{profile}")));
    let peers: Vec<String> = serving
        .config()
        .peers
        .keys()
        .map(ToString::to_string)
        .collect();
    assert_eq!(peers, ["router-2"]);
}
