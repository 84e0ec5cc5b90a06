//! The validation table: one line per rule, refused with its field and message, or accepted.

use super::*;

const POOL: &str = "IPAddressPool";
const PEER: &str = "BGPPeer";
const BGPADV: &str = "BGPAdvertisement";
const L2ADV: &str = "L2Advertisement";
const BFD: &str = "BFDProfile";
const COMM: &str = "Community";

/// A valid spec per kind; each case's spec is merged over it (RFC 7386: `null` removes a field,
/// lists are replaced).
fn base_spec(kind: &str) -> &'static str {
    match kind {
        POOL => "{addresses: [192.0.2.0/28]}",
        PEER => "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1}",
        _ => "{}",
    }
}

#[derive(Debug, Clone, Copy)]
enum Expect {
    Accepted,
    /// Refused; one line of kubectl's error has `<field>: ` and `message`.
    Refused {
        field: &'static str,
        message: &'static str,
    },
}

#[derive(Debug, Clone, Copy)]
struct Case {
    kind: &'static str,
    what: &'static str,
    /// YAML merged over [`base_spec`].
    spec: &'static str,
    expect: Expect,
}

/// A case that must be accepted.
const fn ok(kind: &'static str, what: &'static str, spec: &'static str) -> Case {
    Case {
        kind,
        what,
        spec,
        expect: Expect::Accepted,
    }
}

/// A case that must be refused with `message` on `field`.
const fn no(
    kind: &'static str,
    what: &'static str,
    spec: &'static str,
    field: &'static str,
    message: &'static str,
) -> Case {
    Case {
        kind,
        what,
        spec,
        expect: Expect::Refused { field, message },
    }
}

const ADDRESS: &str = "must be a CIDR (192.0.2.0/24) or a range of one address family (192.0.2.10-192.0.2.20) of unicast addresses";
const COMMUNITY: &str = "must be a legacy community AS:VALUE (two numbers 0-65535), a large community large:A:B:C (three numbers 0-4294967295) or a Community alias name";
const COMMUNITY_VALUE: &str = "must be a legacy community AS:VALUE (two numbers 0-65535) or a large community large:A:B:C (three numbers 0-4294967295)";
const ONE_PEER_ASN: &str = "exactly one of peerASN and dynamicASN must be set";
const ONE_PEER_ADDRESS: &str = "exactly one of peerAddress and interface must be set";
const HOLD_TIME: &str = "holdTime must be 0 (no keepalives) or at least 3s";
const CONNECT_TIME: &str = "connectTime must be a whole number of seconds between 1s and 65535s";
const KEEPALIVE_ALONE: &str = "keepaliveTime without holdTime implies holdTime = 3 x keepaliveTime, which must be 0 or at least 3s";
const SELECTORS_AND_AGGREGATION: &str = "serviceSelectors and a non-default aggregationLength/aggregationLengthV6 are mutually exclusive";
const IP: &str = "must be an IPv4 or IPv6 address";
const DUPLICATE: &str = "Duplicate value";
const SHOULD_MATCH: &str = "in body should match";

/// The rules, one line per case: `ok(kind, what, spec)` must be accepted and
/// `no(kind, what, spec, field, message)` refused with `message` on `field`; `spec` is YAML merged
/// over [`base_spec`] (`null` removes a field). Each refused value sits next to the valid values
/// at the same boundary, so a rule that refuses too much fails as surely as one that refuses too
/// little.
#[rustfmt::skip]
fn cases() -> Vec<Case> {
    vec![
        // IPAddressPool.spec.addresses
        ok(POOL, "an IPv4 CIDR", "{addresses: [192.0.2.0/24]}"),
        ok(POOL, "an IPv6 CIDR", "{addresses: ['2001:db8::/64']}"),
        ok(POOL, "a single IPv4 address as /32", "{addresses: [192.0.2.7/32]}"),
        ok(POOL, "an IPv4 range", "{addresses: [192.0.2.10-192.0.2.20]}"),
        ok(POOL, "a range with spaces around '-'", "{addresses: ['192.0.2.10 - 192.0.2.20']}"),
        ok(POOL, "an IPv6 range", "{addresses: ['2001:db8::10-2001:db8::20']}"),
        ok(POOL, "IPv4 and IPv6 entries in one pool", "{addresses: [192.0.2.0/28, '2001:db8::/120']}"),
        no(POOL, "a prefix length of 33", "{addresses: [1.2.3.4/33]}", "spec.addresses[0]", ADDRESS),
        no(POOL, "an IPv6 prefix length of 129", "{addresses: ['2001:db8::/129']}", "spec.addresses[0]", ADDRESS),
        no(POOL, "a link-local IPv6 CIDR", "{addresses: ['fe80::/10']}", "spec.addresses[0]", ADDRESS),
        no(POOL, "a link-local IPv4 CIDR", "{addresses: [169.254.0.0/16]}", "spec.addresses[0]", ADDRESS),
        no(POOL, "a loopback CIDR", "{addresses: [127.0.0.0/8]}", "spec.addresses[0]", ADDRESS),
        no(POOL, "a multicast CIDR", "{addresses: [224.0.0.0/4]}", "spec.addresses[0]", ADDRESS),
        no(POOL, "the whole IPv4 space", "{addresses: [0.0.0.0/0]}", "spec.addresses[0]", ADDRESS),
        no(POOL, "a range mixing IPv4 and IPv6", "{addresses: ['192.0.2.1-2001:db8::1']}", "spec.addresses[0]", ADDRESS),
        no(POOL, "a range with three ends", "{addresses: [192.0.2.1-192.0.2.5-192.0.2.9]}", "spec.addresses[0]", ADDRESS),
        no(POOL, "a link-local IPv6 range", "{addresses: ['fe80::1-fe80::9']}", "spec.addresses[0]", ADDRESS),
        no(POOL, "garbage text", "{addresses: [garbage]}", "spec.addresses[0]", ADDRESS),
        no(POOL, "garbage text with a dash", "{addresses: [not-an-address]}", "spec.addresses[0]", ADDRESS),
        no(POOL, "a bad second entry (its index is reported)", "{addresses: [192.0.2.0/28, bogus]}", "spec.addresses[1]", ADDRESS),
        no(POOL, "an empty list of addresses", "{addresses: []}", "spec.addresses", "should have at least 1 items"),
        no(POOL, "no addresses at all", "{addresses: null}", "spec.addresses", "Required value"),
        // IPAddressPool.spec.serviceAllocation
        ok(POOL, "distinct namespaces", "{serviceAllocation: {namespaces: [web, api], priority: 0}}"),
        no(POOL, "duplicate namespaces", "{serviceAllocation: {namespaces: [web, web]}}", "spec.serviceAllocation.namespaces[1]", DUPLICATE),
        no(POOL, "a negative priority", "{serviceAllocation: {priority: -1}}", "spec.serviceAllocation.priority", "should be greater than or equal to 0"),

        // BGPPeer: AS numbers
        ok(PEER, "the base peer", "{}"),
        no(PEER, "myASN 0", "{myASN: 0}", "spec.myASN", "should be greater than or equal to 1"),
        ok(PEER, "myASN 4294967295", "{myASN: 4294967295}"),
        no(PEER, "myASN 4294967296", "{myASN: 4294967296}", "spec.myASN", "should be less than or equal to 4294967295"),
        no(PEER, "both peerASN and dynamicASN", "{dynamicASN: external}", "spec", ONE_PEER_ASN),
        no(PEER, "neither peerASN nor dynamicASN", "{peerASN: null}", "spec", ONE_PEER_ASN),
        ok(PEER, "dynamicASN internal alone", "{peerASN: null, dynamicASN: internal}"),
        no(PEER, "dynamicASN sideways", "{peerASN: null, dynamicASN: sideways}", "spec.dynamicASN", "Unsupported value: \"sideways\""),
        // BGPPeer: where the peer is
        no(PEER, "both peerAddress and interface", "{interface: eth1}", "spec", ONE_PEER_ADDRESS),
        no(PEER, "neither peerAddress nor interface", "{peerAddress: null}", "spec", ONE_PEER_ADDRESS),
        ok(PEER, "interface alone (unnumbered)", "{peerAddress: null, interface: eth1}"),
        no(PEER, "an interface name with '/'", "{peerAddress: null, interface: eth/1}", "spec.interface", SHOULD_MATCH),
        no(PEER, "peerAddress 192.0.2.256", "{peerAddress: 192.0.2.256}", "spec.peerAddress", IP),
        no(PEER, "peerAddress a host name", "{peerAddress: router.example.com}", "spec.peerAddress", IP),
        ok(PEER, "an IPv6 peerAddress", "{peerAddress: '2001:db8::1'}"),
        no(PEER, "sourceAddress IPv6 for an IPv4 peer", "{sourceAddress: '2001:db8::2'}", "spec.sourceAddress", "sourceAddress and peerAddress must be of the same address family"),
        no(PEER, "sourceAddress IPv4 for an IPv6 peer", "{peerAddress: '2001:db8::1', sourceAddress: 192.0.2.2}", "spec.sourceAddress", "sourceAddress and peerAddress must be of the same address family"),
        ok(PEER, "sourceAddress of the peer's family", "{sourceAddress: 192.0.2.2}"),
        no(PEER, "sourceAddress not an IP", "{sourceAddress: eth0}", "spec.sourceAddress", IP),
        no(PEER, "routerID IPv6", "{routerID: '2001:db8::1'}", "spec.routerID", "must be an IPv4 address"),
        ok(PEER, "routerID IPv4", "{routerID: 10.0.0.1}"),
        no(PEER, "peerPort 0", "{peerPort: 0}", "spec.peerPort", "should be greater than or equal to 1"),
        no(PEER, "peerPort 70000", "{peerPort: 70000}", "spec.peerPort", "should be less than or equal to 65535"),
        ok(PEER, "peerPort 1", "{peerPort: 1}"),
        ok(PEER, "peerPort 65535", "{peerPort: 65535}"),
        // BGPPeer: secrets
        no(PEER, "both password and passwordSecret", "{password: s3cret, passwordSecret: {name: md5}}", "spec", "password and passwordSecret are mutually exclusive"),
        ok(PEER, "password alone", "{password: s3cret}"),
        ok(PEER, "passwordSecret alone", "{passwordSecret: {name: md5}}"),
        // BGPPeer: timers
        no(PEER, "holdTime 2s", "{holdTime: 2s}", "spec.holdTime", HOLD_TIME),
        no(PEER, "holdTime 2999ms", "{holdTime: 2999ms}", "spec.holdTime", HOLD_TIME),
        ok(PEER, "holdTime 0s", "{holdTime: 0s}"),
        ok(PEER, "holdTime 3s", "{holdTime: 3s}"),
        ok(PEER, "holdTime 1m30s", "{holdTime: 1m30s}"),
        no(PEER, "holdTime '3 days'", "{holdTime: 3 days}", "spec.holdTime", SHOULD_MATCH),
        no(PEER, "keepaliveTime '-1s'", "{keepaliveTime: -1s}", "spec.keepaliveTime", SHOULD_MATCH),
        no(PEER, "keepaliveTime above holdTime", "{holdTime: 9s, keepaliveTime: 10s}", "spec.keepaliveTime", "keepaliveTime must not exceed holdTime"),
        ok(PEER, "keepaliveTime equal to holdTime", "{holdTime: 9s, keepaliveTime: 9s}"),
        no(PEER, "keepaliveTime 500ms without holdTime", "{keepaliveTime: 500ms}", "spec.keepaliveTime", KEEPALIVE_ALONE),
        ok(PEER, "keepaliveTime 1s without holdTime", "{keepaliveTime: 1s}"),
        ok(PEER, "keepaliveTime 0s without holdTime", "{keepaliveTime: 0s}"),
        no(PEER, "connectTime 1500ms", "{connectTime: 1500ms}", "spec.connectTime", CONNECT_TIME),
        no(PEER, "connectTime 0s", "{connectTime: 0s}", "spec.connectTime", CONNECT_TIME),
        no(PEER, "connectTime 999ms", "{connectTime: 999ms}", "spec.connectTime", CONNECT_TIME),
        no(PEER, "connectTime 65536s", "{connectTime: 65536s}", "spec.connectTime", CONNECT_TIME),
        no(PEER, "connectTime 70000s", "{connectTime: 70000s}", "spec.connectTime", CONNECT_TIME),
        ok(PEER, "connectTime 1s", "{connectTime: 1s}"),
        ok(PEER, "connectTime 1000ms", "{connectTime: 1000ms}"),
        ok(PEER, "connectTime 2m", "{connectTime: 2m}"),
        ok(PEER, "connectTime 65535s", "{connectTime: 65535s}"),
        // BGPPeer: multi-hop
        no(PEER, "ebgpMultiHop with peerASN equal to myASN", "{peerASN: 64513, ebgpMultiHop: true}", "spec.ebgpMultiHop", "ebgpMultiHop cannot be set for an iBGP peer"),
        no(PEER, "ebgpMultiHop with dynamicASN internal", "{peerASN: null, dynamicASN: internal, ebgpMultiHop: true}", "spec.ebgpMultiHop", "ebgpMultiHop cannot be set for an iBGP peer"),
        ok(PEER, "ebgpMultiHop for an eBGP peer", "{ebgpMultiHop: true}"),
        ok(PEER, "ebgpMultiHop with dynamicASN external", "{peerASN: null, dynamicASN: external, ebgpMultiHop: true}"),
        ok(PEER, "ebgpMultiHop false for an iBGP peer", "{peerASN: 64513, ebgpMultiHop: false}"),

        // BGPAdvertisement
        no(BGPADV, "aggregationLength 33", "{aggregationLength: 33}", "spec.aggregationLength", "should be less than or equal to 32"),
        no(BGPADV, "aggregationLength 0", "{aggregationLength: 0}", "spec.aggregationLength", "should be greater than or equal to 1"),
        ok(BGPADV, "aggregationLength 1", "{aggregationLength: 1}"),
        ok(BGPADV, "aggregationLength 32", "{aggregationLength: 32}"),
        no(BGPADV, "aggregationLengthV6 129", "{aggregationLengthV6: 129}", "spec.aggregationLengthV6", "should be less than or equal to 128"),
        ok(BGPADV, "aggregationLengthV6 128", "{aggregationLengthV6: 128}"),
        no(BGPADV, "serviceSelectors with aggregationLength 24", "{aggregationLength: 24, serviceSelectors: [{matchLabels: {app: web}}]}", "spec", SELECTORS_AND_AGGREGATION),
        no(BGPADV, "serviceSelectors with aggregationLengthV6 64", "{aggregationLengthV6: 64, serviceSelectors: [{matchLabels: {app: web}}]}", "spec", SELECTORS_AND_AGGREGATION),
        ok(BGPADV, "serviceSelectors with aggregationLength 32", "{aggregationLength: 32, serviceSelectors: [{matchLabels: {app: web}}]}"),
        ok(BGPADV, "serviceSelectors with aggregationLengthV6 128", "{aggregationLengthV6: 128, serviceSelectors: [{matchLabels: {app: web}}]}"),
        ok(BGPADV, "aggregationLength 24 without serviceSelectors", "{aggregationLength: 24, aggregationLengthV6: 64}"),
        no(BGPADV, "community 65536:1", "{communities: ['65536:1']}", "spec.communities[0]", COMMUNITY),
        no(BGPADV, "community 1:65536", "{communities: ['1:65536']}", "spec.communities[0]", COMMUNITY),
        no(BGPADV, "community large:1:2:4294967296", "{communities: ['large:1:2:4294967296']}", "spec.communities[0]", COMMUNITY),
        no(BGPADV, "community 1:2:3", "{communities: ['1:2:3']}", "spec.communities[0]", COMMUNITY),
        no(BGPADV, "community large:1:2", "{communities: ['large:1:2']}", "spec.communities[0]", COMMUNITY),
        no(BGPADV, "duplicate communities", "{communities: ['65535:65281', '65535:65281']}", "spec.communities[1]", DUPLICATE),
        ok(BGPADV, "community 65535:65535", "{communities: ['65535:65535']}"),
        ok(BGPADV, "community 0:0", "{communities: ['0:0']}"),
        ok(BGPADV, "community large:4294967295:0:1", "{communities: ['large:4294967295:0:1']}"),
        ok(BGPADV, "a community alias name", "{communities: [no-export-lab, '64513:100']}"),
        no(BGPADV, "duplicate peers", "{peers: [router, router]}", "spec.peers[1]", DUPLICATE),

        // L2Advertisement
        no(L2ADV, "an interface name of 16 characters", "{interfaces: [abcdefghijklmnop]}", "spec.interfaces[0]", "Too long"),
        ok(L2ADV, "an interface name of 15 characters", "{interfaces: [abcdefghijklmno]}"),
        no(L2ADV, "an interface name with a space", "{interfaces: ['eth 0']}", "spec.interfaces[0]", SHOULD_MATCH),
        no(L2ADV, "duplicate interfaces", "{interfaces: [eth0, eth0]}", "spec.interfaces[1]", DUPLICATE),
        ok(L2ADV, "distinct interfaces", "{interfaces: [eth0, bond0.100]}"),
        no(L2ADV, "duplicate ipAddressPools", "{ipAddressPools: [lan, lan]}", "spec.ipAddressPools[1]", DUPLICATE),
        no(L2ADV, "preference weight 0", "{preferredNodeSelectors: [{weight: 0, preference: {}}]}", "spec.preferredNodeSelectors[0].weight", "should be greater than or equal to 1"),
        no(L2ADV, "preference weight 101", "{preferredNodeSelectors: [{weight: 101, preference: {}}]}", "spec.preferredNodeSelectors[0].weight", "should be less than or equal to 100"),
        ok(L2ADV, "preference weight 1", "{preferredNodeSelectors: [{weight: 1, preference: {matchLabels: {edge: 'true'}}}]}"),
        ok(L2ADV, "preference weight 100", "{preferredNodeSelectors: [{weight: 100, preference: {}}]}"),

        // BFDProfile
        no(BFD, "receiveInterval 5", "{receiveInterval: 5}", "spec.receiveInterval", "should be greater than or equal to 10"),
        ok(BFD, "receiveInterval 10", "{receiveInterval: 10}"),
        no(BFD, "transmitInterval 60001", "{transmitInterval: 60001}", "spec.transmitInterval", "should be less than or equal to 60000"),
        ok(BFD, "transmitInterval 60000", "{transmitInterval: 60000}"),
        no(BFD, "detectMultiplier 1", "{detectMultiplier: 1}", "spec.detectMultiplier", "should be greater than or equal to 2"),
        no(BFD, "detectMultiplier 256", "{detectMultiplier: 256}", "spec.detectMultiplier", "should be less than or equal to 255"),
        ok(BFD, "detectMultiplier 2", "{detectMultiplier: 2}"),
        ok(BFD, "detectMultiplier 255", "{detectMultiplier: 255}"),
        no(BFD, "minimumTtl 255", "{minimumTtl: 255}", "spec.minimumTtl", "should be less than or equal to 254"),
        no(BFD, "minimumTtl 0", "{minimumTtl: 0}", "spec.minimumTtl", "should be greater than or equal to 1"),
        ok(BFD, "minimumTtl 254", "{minimumTtl: 254}"),
        no(BFD, "echoInterval without echoMode", "{echoInterval: 50}", "spec.echoInterval", "echoInterval only applies with echoMode: true"),
        no(BFD, "echoInterval with echoMode false", "{echoInterval: 50, echoMode: false}", "spec.echoInterval", "echoInterval only applies with echoMode: true"),
        ok(BFD, "echoInterval with echoMode true", "{echoInterval: 50, echoMode: true}"),
        ok(BFD, "echoMode without echoInterval", "{echoMode: true}"),

        // Community
        no(COMM, "value 65536:1", "{communities: [{name: a, value: '65536:1'}]}", "spec.communities[0].value", COMMUNITY_VALUE),
        no(COMM, "value large:1:2:4294967296", "{communities: [{name: a, value: 'large:1:2:4294967296'}]}", "spec.communities[0].value", COMMUNITY_VALUE),
        no(COMM, "a value that is an alias name", "{communities: [{name: a, value: no-export}]}", "spec.communities[0].value", COMMUNITY_VALUE),
        no(COMM, "duplicate alias names", "{communities: [{name: a, value: '1:1'}, {name: a, value: '1:2'}]}", "spec.communities[1]", DUPLICATE),
        no(COMM, "an alias name with ':'", "{communities: [{name: 'a:b', value: '1:1'}]}", "spec.communities[0].name", SHOULD_MATCH),
        ok(COMM, "value 65535:65281", "{communities: [{name: no-export, value: '65535:65281'}]}"),
        ok(COMM, "value large:4294967295:0:1", "{communities: [{name: big, value: 'large:4294967295:0:1'}]}"),
        ok(COMM, "two aliases", "{communities: [{name: a, value: '1:1'}, {name: b, value: '1:1'}]}"),
    ]
}

/// RFC 7386 JSON merge patch: `patch` over `target`.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(target) = target {
        for (key, value) in fields {
            if value.is_null() {
                target.remove(key);
            } else {
                merge(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// The manifest of `case`, named `name`, as YAML (JSON is YAML).
fn case_manifest(case: &Case, name: &str) -> anyhow::Result<String> {
    let mut spec: Value = serde_saphyr::from_str(base_spec(case.kind))?;
    let overlay: Value = serde_saphyr::from_str(case.spec)
        .with_context(|| format!("the spec of case {:?} is not YAML", case.what))?;
    merge(&mut spec, &overlay);
    let manifest = json!({
        "apiVersion": API_VERSION,
        "kind": case.kind,
        "metadata": { "name": name, "namespace": NAMESPACE },
        "spec": spec,
    });
    Ok(format!("{manifest:#}\n"))
}

/// What went wrong with `case`, if anything.
fn judge(case: &Case, name: &str, out: &KubectlOutput) -> Option<String> {
    match case.expect {
        Expect::Accepted if out.success() => None,
        Expect::Accepted => Some("was refused, but it is valid".to_owned()),
        Expect::Refused { .. } if out.success() => {
            Some("was accepted, but it is invalid".to_owned())
        }
        Expect::Refused { field, message } => {
            let invalid = format!("The {} \"{name}\" is invalid", case.kind);
            let prefix = format!("{field}: ");
            let on_field = out
                .stderr
                .lines()
                .any(|line| line_has_field(line, &prefix) && line.contains(message));
            if !out.stderr.contains(&invalid) {
                Some(format!(
                    "was refused, but not as an invalid object ({invalid:?})"
                ))
            } else if !on_field {
                Some(format!(
                    "was refused, but no line reports {message:?} on {field:?}"
                ))
            } else {
                None
            }
        }
    }
}

/// Whether `line` reports an error on exactly the field `prefix` (`spec.x: `), not on a field
/// whose path merely ends the same way.
fn line_has_field(line: &str, prefix: &str) -> bool {
    line.match_indices(prefix)
        .any(|(at, _)| at == 0 || matches!(line.as_bytes()[at - 1], b' ' | b'\t'))
}

/// How many kubectl processes apply cases at the same time.
const PARALLEL_KUBECTLS: usize = 8;

/// Applies `case` (number `i`) with `kubectl apply -f -`; a report if it did not go as expected.
async fn run_case(cp: &ControlPlane, i: usize, case: &Case) -> anyhow::Result<Option<String>> {
    let name = format!("case-{i:03}");
    let manifest = case_manifest(case, &name)?;
    let out = cp
        .kubectl_with(cp.kubeconfig_path(), &["apply", "-f", "-"], Some(&manifest))
        .await?;
    Ok(judge(case, &name, &out).map(|problem| {
        format!(
            "case {i} ({} {name}: {}) {problem}\n  expected: {:?}\n  manifest: {}\n  \
             kubectl exit: {}\n  kubectl stdout: {}\n  kubectl stderr:\n{}",
            case.kind,
            case.what,
            case.expect,
            words(&manifest),
            out.status,
            out.stdout.trim(),
            out.stderr.trim_end()
        )
    }))
}

/// Runs every case and returns the reports of the failed ones, in table order.
async fn run_cases(cp: &Arc<ControlPlane>, cases: &[Case]) -> anyhow::Result<Vec<String>> {
    let mut workers = JoinSet::new();
    for worker in 0..PARALLEL_KUBECTLS {
        let cp = Arc::clone(cp);
        let mine: Vec<(usize, Case)> = cases
            .iter()
            .copied()
            .enumerate()
            .skip(worker)
            .step_by(PARALLEL_KUBECTLS)
            .collect();
        workers.spawn(async move {
            let mut failures = Vec::new();
            for (i, case) in mine {
                if let Some(report) = run_case(&cp, i, &case).await? {
                    failures.push((i, report));
                }
            }
            anyhow::Ok(failures)
        });
    }
    let mut failures = Vec::new();
    while let Some(joined) = workers.join_next().await {
        failures.extend(joined??);
    }
    failures.sort_by_key(|(i, _)| *i);
    Ok(failures.into_iter().map(|(_, report)| report).collect())
}

/// Fails with every report if any case failed.
fn check_reports(failures: &[String], total: usize) -> anyhow::Result<()> {
    if !failures.is_empty() {
        bail!(
            "{} of {total} cases failed:\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
    Ok(())
}

#[tokio::test]
async fn invalid_objects_are_refused_with_the_field_and_message_and_valid_neighbours_accepted()
-> anyhow::Result<()> {
    let cp = Arc::new(control_plane_with_crds().await?);
    let cases = cases();
    // Guard the table itself: every rule has a refused case and a neighbour that is accepted.
    for kind in [POOL, PEER, BGPADV, L2ADV, BFD, COMM] {
        let of_kind = || cases.iter().filter(|c| c.kind == kind);
        ensure!(
            of_kind().any(|c| matches!(c.expect, Expect::Accepted)),
            "{kind}: no valid case"
        );
        ensure!(
            of_kind().any(|c| matches!(c.expect, Expect::Refused { .. })),
            "{kind}: no invalid case"
        );
    }
    check_reports(&run_cases(&cp, &cases).await?, cases.len())
}

// ---------------------------------------------------------------------------------------------
// Immutable fields.

/// `kubectl apply -f -` of `manifest`.
async fn kubectl_apply(cp: &ControlPlane, manifest: &str) -> anyhow::Result<KubectlOutput> {
    cp.kubectl_with(cp.kubeconfig_path(), &["apply", "-f", "-"], Some(manifest))
        .await
}

/// `kubectl apply -f -` of `manifest`; an error with kubectl's stderr if it is refused.
pub(crate) async fn apply(cp: &ControlPlane, manifest: &str) -> anyhow::Result<()> {
    kubectl_apply(cp, manifest).await?.into_stdout().map(drop)
}

/// Options of `kubectl patch`: the patch type, and the status subresource.
const MERGE: &[&str] = &["--type=merge"];
const JSON_PATCH: &[&str] = &["--type=json"];
const STATUS_MERGE: &[&str] = &["--subresource=status", "--type=merge"];
const STATUS_JSON_PATCH: &[&str] = &["--subresource=status", "--type=json"];

/// `kubectl patch <target> -n ferrolb-system <how…> -p <patch>`, e.g. target `bgppeer/gr`.
async fn kubectl_patch(
    cp: &ControlPlane,
    target: &str,
    how: &[&str],
    patch: &str,
) -> anyhow::Result<KubectlOutput> {
    let mut args = vec!["patch", target, "-n", NAMESPACE];
    args.extend_from_slice(how);
    args.extend(["-p", patch]);
    cp.kubectl(&args).await
}

/// A manifest of `kind` named `name` in [`NAMESPACE`] with `spec` (YAML flow).
pub(crate) fn manifest(kind: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: {API_VERSION}\nkind: {kind}\nmetadata: {{name: {name}, namespace: \
         {NAMESPACE}}}\nspec: {spec}\n"
    )
}

/// Checks that `out` is a refusal whose stderr has `field: ` and `message` on one line.
fn assert_refused(out: &KubectlOutput, field: &str, message: &str) {
    let prefix = format!("{field}: ");
    assert!(
        !out.success()
            && out
                .stderr
                .lines()
                .any(|l| line_has_field(l, &prefix) && l.contains(message)),
        "`{}` should be refused with {message:?} on {field:?}; exit {}, stderr:\n{}",
        out.command,
        out.status,
        out.stderr
    );
}

#[tokio::test]
async fn immutable_fields_refuse_changes_once_set() -> anyhow::Result<()> {
    let cp = control_plane_with_crds().await?;
    let client = cp.client();
    let peer = |graceful: bool, hold: &str| {
        let spec = format!(
            "{{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, holdTime: {hold}, \
             enableGracefulRestart: {graceful}}}"
        );
        manifest("BGPPeer", "gr", &spec)
    };
    const GRACEFUL: &str = "spec.enableGracefulRestart";
    const GRACEFUL_IMMUTABLE: &str = "enableGracefulRestart is immutable";

    // BGPPeer.spec.enableGracefulRestart: other fields change, it does not (not even by removing
    // it, which defaults it to false).
    apply(&cp, &peer(true, "90s")).await?;
    apply(&cp, &peer(true, "30s")).await?;
    let to_false = r#"{"spec":{"enableGracefulRestart":false}}"#;
    let patched = kubectl_patch(&cp, "bgppeer/gr", MERGE, to_false).await?;
    assert_refused(&patched, GRACEFUL, GRACEFUL_IMMUTABLE);
    let reapplied = kubectl_apply(&cp, &peer(false, "30s")).await?;
    assert_refused(&reapplied, GRACEFUL, GRACEFUL_IMMUTABLE);
    let remove = r#"[{"op":"remove","path":"/spec/enableGracefulRestart"}]"#;
    let removed = kubectl_patch(&cp, "bgppeer/gr", JSON_PATCH, remove).await?;
    assert_refused(&removed, GRACEFUL, GRACEFUL_IMMUTABLE);
    let stored = Api::<BGPPeer>::namespaced(client.clone(), NAMESPACE)
        .get("gr")
        .await?;
    assert!(stored.spec.enable_graceful_restart);
    assert_eq!(stored.spec.hold_time.as_deref(), Some("30s"));

    // ServiceL2Status.status: set once by the speaker, then node, serviceName and
    // serviceNamespace stay; the interfaces may change.
    apply(&cp, &manifest("ServiceL2Status", "l2", "{}")).await?;
    let set = r#"{"status":{"node":"node-a","serviceName":"web","serviceNamespace":"default"}}"#;
    kubectl_patch(&cp, "servicel2status/l2", STATUS_MERGE, set)
        .await?
        .into_stdout()?;
    let interfaces = r#"{"status":{"interfaces":[{"name":"eth1"}]}}"#;
    kubectl_patch(&cp, "servicel2status/l2", STATUS_MERGE, interfaces)
        .await?
        .into_stdout()?;
    for (field, patch, message) in [
        (
            "status.node",
            r#"{"status":{"node":"node-b"}}"#,
            "node is immutable",
        ),
        (
            "status.serviceName",
            r#"{"status":{"serviceName":"db"}}"#,
            "serviceName is immutable",
        ),
        (
            "status.serviceNamespace",
            r#"{"status":{"serviceNamespace":"prod"}}"#,
            "serviceNamespace is immutable",
        ),
    ] {
        let out = kubectl_patch(&cp, "servicel2status/l2", STATUS_MERGE, patch).await?;
        assert_refused(&out, field, message);
    }

    // The typed client (as the speaker writes) is refused the same way.
    let l2 = Api::<ServiceL2Status>::namespaced(client.clone(), NAMESPACE);
    let to_b = Patch::Merge(json!({ "status": { "node": "node-b" } }));
    match l2.patch_status("l2", &PatchParams::default(), &to_b).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(status.message.contains("status.node"), "{status:?}");
            assert!(status.message.contains("node is immutable"), "{status:?}");
        }
        other => panic!("changing status.node through the typed client: {other:?}"),
    }
    let status = l2.get("l2").await?.status.context("the status was lost")?;
    assert_eq!(status.node.as_deref(), Some("node-a"));
    let eth1 = InterfaceName {
        name: "eth1".to_owned(),
    };
    assert_eq!(status.interfaces, vec![eth1]);

    // ServiceBGPStatus has the same rules.
    let bgp = Api::<ServiceBGPStatus>::namespaced(client, NAMESPACE);
    let fresh = in_namespace(ServiceBGPStatus::new("bgp", ServiceBGPStatusSpec {}));
    bgp.create(&PostParams::default(), &fresh).await?;
    let set = Patch::Merge(json!({ "status": { "node": "node-a", "peers": ["router"] } }));
    bgp.patch_status("bgp", &PatchParams::default(), &set)
        .await?;
    let to_b = r#"{"status":{"node":"node-b"}}"#;
    let refused = kubectl_patch(&cp, "servicebgpstatus/bgp", STATUS_MERGE, to_b).await?;
    assert_refused(&refused, "status.node", "node is immutable");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Rules that first slipped through (found by this suite): sub-millisecond connectTime fractions,
// and immutable status fields that could be removed and then set again.

#[tokio::test]
async fn sub_second_connect_times_and_removed_immutable_fields_are_refused() -> anyhow::Result<()> {
    let cp = Arc::new(control_plane_with_crds().await?);

    // "Time between connection attempts (Go duration, whole seconds, 1s-65535s)": the rule
    // checks `getMilliseconds() % 1000`, so fractions below a millisecond pass.
    #[rustfmt::skip]
    let cases = [
        no(PEER, "connectTime 1s500us", "{connectTime: 1s500us}", "spec.connectTime", CONNECT_TIME),
        no(PEER, "connectTime 1000001us", "{connectTime: 1000001us}", "spec.connectTime", CONNECT_TIME),
        no(PEER, "connectTime 1.0001s", "{connectTime: 1.0001s}", "spec.connectTime", CONNECT_TIME),
    ];
    let mut problems = run_cases(&cp, &cases).await?;

    // "The node that answers ARP/NDP for the Service's IPs. Immutable.": `self == oldSelf` on an
    // optional field is not evaluated when the new object lacks the field, so the node can be
    // removed, and another one set afterwards.
    apply(&cp, &manifest("ServiceL2Status", "l2", "{}")).await?;
    let set = r#"{"status":{"node":"node-a","serviceName":"web","serviceNamespace":"default"}}"#;
    kubectl_patch(&cp, "servicel2status/l2", STATUS_MERGE, set)
        .await?
        .into_stdout()?;
    let remove = r#"[{"op":"remove","path":"/status/node"}]"#;
    let removed = kubectl_patch(&cp, "servicel2status/l2", STATUS_JSON_PATCH, remove).await?;
    if removed.success() || !removed.stderr.contains("immutable") {
        problems.push(format!(
            "removing the immutable status.node of a ServiceL2Status: exit {}, stdout {:?}, \
             stderr {:?}",
            removed.status, removed.stdout, removed.stderr
        ));
    }
    check_reports(&problems, cases.len() + 1)
}
