//! Every configuration rule, table-driven: a snapshot as YAML (what a user applies), and the
//! problems it must produce — kind, object, field and reason — while the good objects stay usable.

use ferrolb_config::{ObjectKind, Outcome, Severity, Snapshot, parse};

const NS: &str = "ferrolb-system";

fn outcome(yaml: &str) -> Outcome {
    parse(&Snapshot::from_yaml(NS, yaml).expect("test YAML parses"))
}

fn pool(name: &str, addresses: &[&str]) -> String {
    let list: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "---\napiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {name}, namespace: {NS}}}\nspec: {{addresses: [{}]}}\n",
        list.join(", ")
    )
}

fn object(kind: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: ferrolb.io/v1beta1\nkind: {kind}\nmetadata: {{name: {name}, namespace: {NS}}}\nspec: {spec}\n"
    )
}

/// (what the case shows, snapshot, expected problems as (kind, name, field, reason fragment, severity)).
type Case = (
    &'static str,
    String,
    Vec<(
        ObjectKind,
        &'static str,
        &'static str,
        &'static str,
        Severity,
    )>,
);

fn check(cases: Vec<Case>) {
    for (what, yaml, expected) in cases {
        let out = outcome(&yaml);
        let got: Vec<String> = out.errors.iter().map(ToString::to_string).collect();
        assert_eq!(out.errors.len(), expected.len(), "{what}: got {got:#?}");
        for (kind, name, field, reason, severity) in expected {
            assert!(
                out.errors.iter().any(|e| e.kind == kind
                    && e.name == name
                    && e.field == field
                    && e.reason.contains(reason)
                    && e.severity == severity),
                "{what}: expected {kind} {name:?} {field}: …{reason}… ({severity:?}); got {got:#?}"
            );
        }
    }
}

use ObjectKind::*;
use Severity::{Error as E, Transient as T, Warning as W};

mod advertisements;
mod peers;

#[test]
fn pool_address_rules() {
    check(vec![
        (
            "reversed range",
            pool("p", &["10.0.0.5-10.0.0.1"]),
            vec![(
                IPAddressPool,
                "p",
                "spec.addresses[0]",
                "start 10.0.0.5 is after its end 10.0.0.1",
                E,
            )],
        ),
        (
            "prefix too long",
            pool("p", &["1.2.3.4/33"]),
            vec![(
                IPAddressPool,
                "p",
                "spec.addresses[0]",
                "prefix length 33 is longer than 32",
                E,
            )],
        ),
        (
            "link-local v6 mixed with v4 ranges",
            pool("p", &["192.0.2.10-192.0.2.20", "fe80::/10"]),
            vec![(IPAddressPool, "p", "spec.addresses[1]", "link-local", E)],
        ),
        (
            "spaces around the dash are fine",
            pool("p", &["192.0.2.10 - 192.0.2.20"]),
            vec![],
        ),
        (
            "empty address list",
            pool("p", &[]),
            vec![(IPAddressPool, "p", "spec.addresses", "no addresses", E)],
        ),
        (
            "not an address",
            pool("p", &["lan"]),
            vec![(IPAddressPool, "p", "spec.addresses[0]", "neither a CIDR", E)],
        ),
        (
            "mixed-family range",
            pool("p", &["192.0.2.1-2001:db8::1"]),
            vec![(
                IPAddressPool,
                "p",
                "spec.addresses[0]",
                "mixes IPv4 and IPv6",
                E,
            )],
        ),
        (
            "entries of one pool overlap",
            pool("p", &["192.0.2.0/24", "192.0.2.100-192.0.2.110"]),
            vec![(
                IPAddressPool,
                "p",
                "spec.addresses[1]",
                "overlaps 192.0.2.0/24, an earlier entry",
                E,
            )],
        ),
        (
            "two pools overlap: the older keeps working",
            format!(
                "{}{}",
                pool("a-first", &["192.0.2.0/25"]),
                pool("b-second", &["192.0.2.100-192.0.2.200"])
            ),
            vec![(
                IPAddressPool,
                "b-second",
                "spec.addresses[0]",
                "overlaps 192.0.2.0/25 of IPAddressPool \"a-first\"",
                E,
            )],
        ),
        (
            "dual stack pool",
            pool(
                "p",
                &["192.0.2.0/28", "2001:db8:0:1::200-2001:db8:0:1::2ff"],
            ),
            vec![],
        ),
        (
            "duplicate pool names (two sources)",
            format!(
                "{}{}",
                pool("p", &["192.0.2.0/28"]),
                pool("p", &["198.51.100.0/28"])
            ),
            vec![(
                IPAddressPool,
                "p",
                "metadata.name",
                "duplicate IPAddressPool name",
                E,
            )],
        ),
    ]);
}

#[test]
fn the_older_pool_wins_an_overlap_by_creation_time_not_by_name() {
    let yaml = "
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: a-newer, namespace: ferrolb-system, creationTimestamp: '2026-02-01T00:00:00Z'}
spec: {addresses: [192.0.2.0/24]}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: z-older, namespace: ferrolb-system, creationTimestamp: '2026-01-01T00:00:00Z'}
spec: {addresses: [192.0.2.128/25]}
";
    let out = outcome(yaml);
    assert!(out.is_usable(IPAddressPool, "z-older"));
    assert!(!out.is_usable(IPAddressPool, "a-newer"));
    assert_eq!(
        out.config
            .pools
            .keys()
            .map(|p| p.as_str())
            .collect::<Vec<_>>(),
        ["z-older"]
    );
}

#[test]
fn pool_service_allocation_rules() {
    check(vec![
        (
            "repeated namespace and bad selector operator",
            object(
                "IPAddressPool",
                "p",
                "{addresses: [192.0.2.0/28], serviceAllocation: {namespaces: [a, a], serviceSelectors: [{matchExpressions: [{key: app, operator: Equals, values: [x]}]}]}}",
            ),
            vec![
                (
                    IPAddressPool,
                    "p",
                    "spec.serviceAllocation.namespaces[1]",
                    "duplicate namespace",
                    E,
                ),
                (
                    IPAddressPool,
                    "p",
                    "spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].operator",
                    "unknown operator",
                    E,
                ),
            ],
        ),
        (
            "duplicate selectors",
            object(
                "IPAddressPool",
                "p",
                "{addresses: [192.0.2.0/28], serviceAllocation: {namespaceSelectors: [{matchLabels: {a: b}}, {matchLabels: {a: b}}]}}",
            ),
            vec![(
                IPAddressPool,
                "p",
                "spec.serviceAllocation.namespaceSelectors[1]",
                "duplicate selector",
                E,
            )],
        ),
    ]);
}

#[test]
fn namespace_selectors_resolve_against_namespace_labels() {
    let yaml = format!(
        "{}---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: web, labels: {{tier: web}}}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: db}}\n",
        object(
            "IPAddressPool",
            "p",
            "{addresses: [192.0.2.0/28], serviceAllocation: {priority: 5, namespaces: [extra], namespaceSelectors: [{matchLabels: {tier: web}}]}}"
        )
    );
    let out = outcome(&yaml);
    let pool = &out.config.pools["p"];
    let none = Default::default();
    assert!(pool.allows("web", &none) && pool.allows("extra", &none));
    assert!(!pool.allows("db", &none));
    assert_eq!(pool.allocation.as_ref().map(|a| a.priority), Some(5));
}

#[test]
fn a_broken_snapshot_reports_every_error_at_once_and_keeps_the_good_objects() {
    let yaml = format!(
        "{}{}{}{}{}{}",
        pool("good", &["192.0.2.200-192.0.2.239"]),
        pool("bad-range", &["10.0.0.5-10.0.0.1", "1.2.3.4/33"]),
        pool("overlapping", &["192.0.2.210/32"]),
        object(
            "L2Advertisement",
            "l2",
            "{ipAddressPools: [good, bad-range]}"
        ),
        object(
            "BGPPeer",
            "peer",
            "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, bfdProfile: missing}"
        ),
        object("BGPAdvertisement", "adv", "{communities: [nope]}")
    );
    let out = outcome(&yaml);
    let fields: Vec<(String, &str)> = out
        .errors
        .iter()
        .map(|e| (format!("{} {}", e.kind, e.name), e.field.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("IPAddressPool bad-range".to_string(), "spec.addresses[0]"),
            ("IPAddressPool bad-range".to_string(), "spec.addresses[1]"),
            ("IPAddressPool overlapping".to_string(), "spec.addresses[0]"),
            ("L2Advertisement l2".to_string(), "spec.ipAddressPools[1]"),
            ("BGPAdvertisement adv".to_string(), "spec.communities[0]"),
            ("BGPPeer peer".to_string(), "spec.bfdProfile"),
        ]
    );
    assert!(!out.is_valid());
    assert!(out.is_usable(IPAddressPool, "good"));
    assert!(
        out.is_usable(L2Advertisement, "l2"),
        "a warning does not disable the advertisement"
    );
    assert_eq!(out.config.pools.len(), 1);
    let l2 = &out.config.l2_advertisements["l2"];
    assert_eq!(
        l2.pools.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        ["good"]
    );
    assert!(out.config.peers.is_empty() && out.config.bgp_advertisements.is_empty());
}

#[test]
fn objects_outside_ferrolbs_namespace_are_ignored() {
    let yaml = "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: elsewhere, namespace: default}\nspec: {addresses: ['10.0.0.5-10.0.0.1']}\n";
    let out = outcome(yaml);
    assert!(out.is_valid() && out.config.pools.is_empty());
}

#[test]
fn the_committed_samples_are_a_valid_configuration() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/samples");
    let mut yaml = String::new();
    for entry in std::fs::read_dir(&dir).expect("samples dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            yaml.push_str("\n---\n");
            yaml.push_str(&std::fs::read_to_string(&path).expect("readable"));
        }
    }
    let out = outcome(&yaml);
    assert!(out.is_valid(), "{:#?}", out.errors);
    assert!(out.errors.is_empty(), "{:#?}", out.errors);
    assert!(out.config.pools.len() >= 3 && !out.config.peers.is_empty());
}

#[test]
fn an_edit_that_overlaps_a_pool_in_use_is_refused_on_the_edited_pool() {
    // "a-edited" sorts first and is as old as "b-serving", but b is in use with these very
    // addresses while a's addresses changed: a is the one refused.
    let yaml = format!(
        "{}{}",
        pool("a-edited", &["192.0.2.0/28", "192.0.2.64/28"]),
        pool("b-serving", &["192.0.2.64/27"])
    );
    let mut snapshot = Snapshot::from_yaml(NS, &yaml).expect("parses");
    let range = |s: &str| ferrolb_config::IpRange::parse_entry(s).expect("valid");
    snapshot.pools_in_use = [
        ("a-edited".into(), vec![range("192.0.2.0/28")]),
        ("b-serving".into(), vec![range("192.0.2.64/27")]),
    ]
    .into();
    let out = parse(&snapshot);
    assert!(out.is_usable(IPAddressPool, "b-serving"));
    assert!(!out.is_usable(IPAddressPool, "a-edited"));
    // Without that history, the name decides.
    let out = outcome(&yaml);
    assert!(out.is_usable(IPAddressPool, "a-edited") && !out.is_usable(IPAddressPool, "b-serving"));
}
