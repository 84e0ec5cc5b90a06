//! Rules of BGP peers and BFD profiles.

use super::*;

#[test]
fn peer_rules() {
    let secret = |name: &str, type_: &str, data: &str| {
        format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {NS}}}\ntype: {type_}\n{data}\n"
        )
    };
    check(vec![
        (
            "missing profile and secret are transient",
            object(
                "BGPPeer",
                "p",
                "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, bfdProfile: fast, passwordSecret: {name: md5}}",
            ),
            vec![
                (
                    BGPPeer,
                    "p",
                    "spec.bfdProfile",
                    "BFDProfile \"fast\" not found",
                    T,
                ),
                (
                    BGPPeer,
                    "p",
                    "spec.passwordSecret.name",
                    "Secret \"md5\" not found",
                    T,
                ),
            ],
        ),
        (
            "a secret of the wrong type, or without the key",
            format!(
                "{}{}{}{}",
                secret("opaque", "Opaque", "stringData: {password: x}"),
                secret(
                    "nokey",
                    "kubernetes.io/basic-auth",
                    "stringData: {username: x}"
                ),
                object(
                    "BGPPeer",
                    "p1",
                    "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, passwordSecret: {name: opaque}}"
                ),
                object(
                    "BGPPeer",
                    "p2",
                    "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.2, passwordSecret: {name: nokey}}"
                )
            ),
            vec![
                (
                    BGPPeer,
                    "p1",
                    "spec.passwordSecret.name",
                    "must be kubernetes.io/basic-auth",
                    E,
                ),
                (
                    BGPPeer,
                    "p2",
                    "spec.passwordSecret.name",
                    "has no password key",
                    E,
                ),
            ],
        ),
        (
            "everything checkable on one peer at once",
            object(
                "BGPPeer",
                "p",
                "{myASN: 0, peerASN: 64512, dynamicASN: external, holdTime: 2s, keepaliveTime: 5s, connectTime: 1500ms, routerID: '2001:db8::1', password: x, passwordSecret: {name: s}}",
            ),
            vec![
                (BGPPeer, "p", "spec.myASN", "missing local ASN", E),
                (
                    BGPPeer,
                    "p",
                    "spec",
                    "exactly one of peerASN and dynamicASN",
                    E,
                ),
                (
                    BGPPeer,
                    "p",
                    "spec",
                    "exactly one of peerAddress and interface",
                    E,
                ),
                (BGPPeer, "p", "spec.holdTime", "must be 0 or at least 3s", E),
                (
                    BGPPeer,
                    "p",
                    "spec.keepaliveTime",
                    "must not exceed holdTime",
                    E,
                ),
                (
                    BGPPeer,
                    "p",
                    "spec.connectTime",
                    "whole number of seconds",
                    E,
                ),
                (BGPPeer, "p", "spec.routerID", "not an IPv4 address", E),
                (
                    BGPPeer,
                    "p",
                    "spec",
                    "password and passwordSecret are mutually exclusive",
                    E,
                ),
            ],
        ),
        (
            "ebgp multihop on an iBGP peer; family mismatch",
            object(
                "BGPPeer",
                "p",
                "{myASN: 64512, peerASN: 64512, peerAddress: 192.0.2.1, sourceAddress: '2001:db8::1', ebgpMultiHop: true}",
            ),
            vec![
                (BGPPeer, "p", "spec.ebgpMultiHop", "ibgp peer", E),
                (BGPPeer, "p", "spec.sourceAddress", "same address family", E),
            ],
        ),
        (
            "ttlSecurity beyond 254 hops",
            object(
                "BGPPeer",
                "p",
                "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, ttlSecurity: 255}",
            ),
            vec![(
                BGPPeer,
                "p",
                "spec.ttlSecurity",
                "from 1 to 254, not 255",
                E,
            )],
        ),
        (
            "keepalive alone implies hold = 3x keepalive",
            object(
                "BGPPeer",
                "p",
                "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, keepaliveTime: 500ms}",
            ),
            vec![(
                BGPPeer,
                "p",
                "spec.keepaliveTime",
                "hold time 1s must be 0 or at least 3s",
                E,
            )],
        ),
        (
            "two peers for the same router from the same nodes",
            format!(
                "{}{}",
                object(
                    "BGPPeer",
                    "a",
                    "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1}"
                ),
                object(
                    "BGPPeer",
                    "b",
                    "{myASN: 64514, peerASN: 64512, peerAddress: 192.0.2.1}"
                )
            ),
            vec![(
                BGPPeer,
                "b",
                "spec.peerAddress",
                "already peers with the same router",
                E,
            )],
        ),
        (
            "graceful shutdown out of range",
            object(
                "BGPPeer",
                "g",
                "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, gracefulShutdown: {drainTime: 10m, asPathPrepend: 11}}",
            ),
            vec![
                (
                    BGPPeer,
                    "g",
                    "spec.gracefulShutdown.drainTime",
                    "drainTime must be at most 300s",
                    E,
                ),
                (
                    BGPPeer,
                    "g",
                    "spec.gracefulShutdown.asPathPrepend",
                    "asPathPrepend must be 0-10",
                    E,
                ),
            ],
        ),
        (
            "BFD ranges",
            object(
                "BFDProfile",
                "f",
                "{receiveInterval: 5, detectMultiplier: 300}",
            ),
            vec![
                (
                    BFDProfile,
                    "f",
                    "spec.receiveInterval",
                    "5 is outside 10-60000",
                    E,
                ),
                (
                    BFDProfile,
                    "f",
                    "spec.detectMultiplier",
                    "300 is outside 2-255",
                    E,
                ),
            ],
        ),
        (
            "BFD echo mode is used as it is, with a single-hop peer",
            format!(
                "{}{}",
                object("BFDProfile", "echo", "{echoMode: true, echoInterval: 60}"),
                object(
                    "BGPPeer",
                    "direct",
                    "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, bfdProfile: echo}"
                )
            ),
            vec![],
        ),
        (
            "a multihop peer runs its profile's echo mode without echo, and says so",
            format!(
                "{}{}{}",
                object("BFDProfile", "echo", "{echoMode: true}"),
                object(
                    "BGPPeer",
                    "far",
                    "{myASN: 64513, peerASN: 64512, peerAddress: 203.0.113.1, ebgpMultiHop: true, bfdProfile: echo}"
                ),
                object(
                    "BGPPeer",
                    "gtsm",
                    "{myASN: 64513, peerASN: 64512, peerAddress: 203.0.113.2, ttlSecurity: 2, bfdProfile: echo}"
                )
            ),
            ["far", "gtsm"]
                .into_iter()
                .map(|peer| {
                    (
                        BGPPeer,
                        peer,
                        "spec.bfdProfile",
                        "BFDProfile \"echo\" asks for echoMode, which does not apply to multihop BFD (RFC 5883): with this peer (ebgpMultiHop, or ttlSecurity over one hop) BFD runs without echo",
                        W,
                    )
                })
                .collect(),
        ),
    ]);
}

#[test]
fn peer_defaults_and_resolved_references() {
    let yaml = format!(
        "{}{}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: md5, namespace: {NS}}}\ntype: kubernetes.io/basic-auth\ndata: {{password: c2VjcmV0}}\n",
        object("BFDProfile", "fast", "{transmitInterval: 100}"),
        object(
            "BGPPeer",
            "r",
            "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, holdTime: 9s, bfdProfile: fast, passwordSecret: {name: md5}}"
        )
    );
    let out = outcome(&yaml);
    assert!(out.is_valid(), "{:?}", out.errors);
    let peer = &out.config.peers["r"];
    assert_eq!(peer.hold_time.as_secs(), 9);
    assert_eq!(peer.keepalive_time.as_secs(), 3);
    assert_eq!(peer.port, 179);
    assert_eq!(peer.password.as_deref(), Some("secret"));
    let bfd = &out.config.bfd_profiles["fast"];
    assert_eq!(
        (
            bfd.transmit_interval.as_millis(),
            bfd.receive_interval.as_millis(),
            bfd.detect_multiplier
        ),
        (100, 300, 3)
    );
}

#[test]
fn graceful_shutdown_is_on_by_default_tunable_and_can_be_turned_off() {
    let yaml = format!(
        "{}{}{}",
        object(
            "BGPPeer",
            "default",
            "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1}"
        ),
        object(
            "BGPPeer",
            "tuned",
            "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.2, gracefulShutdown: {drainTime: 30s, localPref: 10, asPathPrepend: 1}}"
        ),
        object(
            "BGPPeer",
            "none",
            "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.3, gracefulShutdown: {disabled: true}}"
        )
    );
    let out = outcome(&yaml);
    assert!(out.is_valid(), "{:?}", out.errors);
    let shutdown = |name: &str| out.config.peers[name].graceful_shutdown.clone();
    let defaults = shutdown("default").expect("on by default");
    assert_eq!(
        (
            defaults.drain_time.as_secs(),
            defaults.local_pref,
            defaults.as_path_prepend
        ),
        (10, 0, 3)
    );
    let tuned = shutdown("tuned").expect("on");
    assert_eq!(
        (
            tuned.drain_time.as_secs(),
            tuned.local_pref,
            tuned.as_path_prepend
        ),
        (30, 10, 1)
    );
    assert_eq!(shutdown("none"), None);
}
