//! `kubectl ferrolb migrate`: MetalLB configuration in, ferrolb YAML and warnings out.
//!
//! The table of cases lives in `fixtures/cases/`: `NAME.metallb.yaml` is the input,
//! `NAME.ferrolb.yaml` the expected output (compared as parsed YAML values, document by
//! document), `NAME.warnings` one expected warning per line (`source: message`, each line a
//! prefix of one warning, and as many warnings as lines). `fixtures/metallb/` holds MetalLB's
//! own sample configurations, docs examples and configmaptocrs test data (each names its
//! source). `tests/tests/migrate.rs` of the `ferrolb-tests` crate applies the output of every
//! one of them to a real apiserver with ferrolb's CRDs.

use std::path::{Path, PathBuf};

use ferrolb_cli::migrate::{MigrateError, Migration, SERVICE_ANNOTATION_HINT, Warning, migrate};
use proptest::prelude::*;
use serde_json::{Value, json};

const NS: &str = "ferrolb-system";

fn fixtures(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn docs(yaml: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml)
        .unwrap_or_else(|e| panic!("output is not YAML: {e}\n{yaml}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn convert(input: &str) -> Migration {
    migrate(input, NS).unwrap_or_else(|e| panic!("migrate failed: {e}"))
}

fn show(warnings: &[Warning]) -> String {
    warnings
        .iter()
        .map(|w| format!("  {w}\n"))
        .collect::<String>()
}

#[test]
fn every_case_converts_to_its_expected_ferrolb_objects_and_warnings() {
    let dir = fixtures("cases");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("cases directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".metallb.yaml"))
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 6, "{inputs:?}");
    for input in inputs {
        let stem = input.to_string_lossy().replace(".metallb.yaml", "");
        let case = Path::new(&stem)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let migration = convert(&read(&input));

        let want = docs(&read(Path::new(&format!("{stem}.ferrolb.yaml"))));
        let got = docs(&migration.yaml);
        assert_eq!(
            got.len(),
            want.len(),
            "{case}: {} objects, expected {}:\n{}",
            got.len(),
            want.len(),
            migration.yaml
        );
        for (got, want) in got.iter().zip(&want) {
            assert_eq!(got, want, "{case}: object differs:\n{}", migration.yaml);
        }

        let expected: Vec<String> = read(Path::new(&format!("{stem}.warnings")))
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect();
        let warnings: Vec<String> = migration.warnings.iter().map(|w| w.to_string()).collect();
        for line in &expected {
            assert!(
                warnings.iter().any(|w| w.starts_with(line.as_str())),
                "{case}: no warning starts with {line:?}; the warnings are:\n{}",
                show(&migration.warnings)
            );
        }
        assert_eq!(
            warnings.len(),
            expected.len(),
            "{case}: {} warnings, expected {}:\n{}",
            warnings.len(),
            expected.len(),
            show(&migration.warnings)
        );
    }
}

/// MetalLB's samples, docs examples and configmaptocrs data, with the warnings each may give
/// (everything else must convert silently).
#[test]
fn metallbs_own_sample_configurations_convert_without_errors() {
    let dir = fixtures("metallb");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures/metallb")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 30, "{files:?}");
    for file in files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let input = read(&file);
        let migration = migrate(&input, "lb").unwrap_or_else(|e| panic!("{name}: {e}"));
        let out = docs(&migration.yaml);
        let has_config = ["apiVersion: metallb.io/", "address-pools", "peers:"]
            .iter()
            .any(|k| input.contains(k));
        assert!(!out.is_empty() || !has_config, "{name}: nothing converted");
        for doc in &out {
            let api_version = doc["apiVersion"].as_str().unwrap_or_default();
            let kind = doc["kind"].as_str().unwrap_or_default();
            assert!(
                api_version == "ferrolb.io/v1beta1" || (api_version == "v1" && kind == "Secret"),
                "{name}: {doc}"
            );
            assert_eq!(doc["metadata"]["namespace"], json!("lb"), "{name}: {doc}");
            assert!(doc.get("status").is_none(), "{name}: {doc}");
        }
        // Every MetalLB configuration object of the input is there, under its name (legacy
        // conversions name theirs).
        let input_docs: Vec<Value> = serde_saphyr::from_multiple(&input).expect("fixture YAML");
        for doc in input_docs.iter().filter(|d| {
            d["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("metallb.io/"))
        }) {
            let found = out.iter().any(|o| {
                o["kind"] == doc["kind"] && o["metadata"]["name"] == doc["metadata"]["name"]
            });
            assert!(found, "{name}: {} missing from\n{}", doc, migration.yaml);
        }
        // Warnings only for what MetalLB's samples really hold that ferrolb treats differently.
        for w in &migration.warnings {
            let allowed = [
                "not MetalLB configuration; skipped",
                "a Service, not",
                "FRR-K8s configuration",
                "ferrolb will use it, but",
                "echoInterval applies only with echoMode",
                "plaintext password moved into Secret",
                "keepaliveTime 0s with a non-zero holdTime",
                "not in the input",
                "is not a valid Kubernetes name; renamed",
                "by annotation (address-pool)",
                "protocol \"l2\"",
            ];
            assert!(
                allowed.iter().any(|a| w.message.contains(a)),
                "{name}: unexpected warning {w}"
            );
        }
    }
}

/// Fields whose spelling, not meaning, differs between configmaptocrs' output and ours: its
/// explicit defaults (`holdTime: 1m30s`, `echoMode: false`), Go's `omitempty` (no
/// `ebgpMultiHop: false`) and Go's duration printing.
fn normalize(mut doc: Value) -> Value {
    if let Some(spec) = doc.get_mut("spec").and_then(Value::as_object_mut) {
        for key in ["holdTime", "keepaliveTime"] {
            let secs = spec
                .get(key)
                .and_then(Value::as_str)
                .and_then(|t| ferrolb_config::parse_go_duration(t).ok())
                .map(|d| d.as_secs());
            match (key, secs) {
                ("holdTime", Some(90)) => {
                    spec.remove(key);
                }
                (_, Some(s)) => {
                    spec.insert(key.into(), json!(s));
                }
                _ => {}
            }
        }
        spec.retain(|_, v| *v != json!(false));
    }
    doc
}

#[test]
fn the_legacy_configmap_converts_as_metallbs_configmaptocrs_converts_it() {
    // configmaptocrs' own test data: the ConfigMap, and the CRs it made of it (its golden file).
    for case in [
        "config-yaml-full",
        "config-yaml-peers",
        "config-yaml-convert-names",
    ] {
        let dir = fixtures("metallb");
        let legacy = convert(&read(&dir.join(format!("configmaptocrs-{case}.yaml"))));
        let golden = convert(&read(
            &dir.join(format!("configmaptocrs-{case}.golden.yaml")),
        ));
        let legacy: Vec<Value> = docs(&legacy.yaml).into_iter().map(normalize).collect();
        let golden: Vec<Value> = docs(&golden.yaml).into_iter().map(normalize).collect();
        assert_eq!(legacy, golden, "{case}");
    }
    // The ConfigMap's data alone (configmaptocrs -only-data) converts the same as the ConfigMap.
    for case in ["full", "peers"] {
        let dir = fixtures("metallb");
        let data = convert(&read(
            &dir.join(format!("configmaptocrs-config-data-{case}.yaml")),
        ));
        let map = convert(&read(
            &dir.join(format!("configmaptocrs-config-yaml-{case}.yaml")),
        ));
        assert_eq!(docs(&data.yaml), docs(&map.yaml), "{case}");
    }
}

#[test]
fn the_output_tells_users_their_service_annotations_keep_working() {
    let migration = convert(&read(
        &fixtures("metallb").join("configsamples-bgppeer_simple.yaml"),
    ));
    assert!(
        migration
            .yaml
            .lines()
            .any(|l| l == format!("# {SERVICE_ANNOTATION_HINT}")),
        "{}",
        migration.yaml
    );
    assert!(SERVICE_ANNOTATION_HINT.contains("metallb.io/*"));
    assert!(SERVICE_ANNOTATION_HINT.contains("metallb.universe.tf/*"));
}

#[test]
fn objects_land_in_the_target_namespace() {
    let input = "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\n\
                 metadata: {name: a, namespace: metallb-system}\n";
    let migration = migrate(input, "lb-config").expect("converts");
    assert_eq!(
        docs(&migration.yaml)[0]["metadata"]["namespace"],
        json!("lb-config")
    );
    assert_eq!(
        migrate(input, "Not A Namespace"),
        Err(MigrateError::Namespace("Not A Namespace".into()))
    );
}

#[test]
fn input_that_is_not_yaml_is_an_error_naming_where() {
    let err = migrate("kind: IPAddressPool\n  spec: [unclosed\n", NS).expect_err("not YAML");
    assert!(matches!(err, MigrateError::Yaml(_)), "{err}");
    assert!(err.to_string().contains("line"), "{err}");
    assert_eq!(migrate("", NS), Err(MigrateError::Empty));
    assert_eq!(migrate("---\n---\n", NS), Err(MigrateError::Empty));
}

#[test]
fn a_configmap_whose_config_is_not_yaml_is_a_warning_and_converts_nothing() {
    let input = "apiVersion: v1\nkind: ConfigMap\n\
                 metadata: {name: config, namespace: metallb-system}\n\
                 data:\n  config: \"address-pools: [unclosed\"\n";
    let migration = convert(input);
    assert!(docs(&migration.yaml).is_empty(), "{}", migration.yaml);
    assert_eq!(migration.warnings.len(), 1, "{}", show(&migration.warnings));
    assert_eq!(
        migration.warnings[0].source,
        "ConfigMap metallb-system/config"
    );
    assert!(
        migration.warnings[0]
            .message
            .starts_with("key config is not valid YAML"),
        "{}",
        migration.warnings[0]
    );
}

#[test]
fn a_pool_with_an_unparseable_address_keeps_the_others_and_says_which() {
    let input = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\n\
                 metadata: {name: p, namespace: metallb-system}\n\
                 spec:\n  addresses: [192.0.2.0/24, 192.0.2.999/24]\n";
    let migration = convert(input);
    assert_eq!(
        docs(&migration.yaml)[0]["spec"]["addresses"],
        json!(["192.0.2.0/24"])
    );
    assert_eq!(migration.warnings.len(), 1, "{}", show(&migration.warnings));
    assert!(
        migration.warnings[0]
            .message
            .starts_with("spec.addresses[1]: \"192.0.2.999/24\" is neither a CIDR"),
        "{}",
        migration.warnings[0]
    );
}

/// Any JSON value (bounded), to put where the converter expects a particular shape.
fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        "[a-z0-9:./ -]{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("192.0.2.0/24"),
            Just("10.0.0.1"),
            Just("90s"),
            Just("65535:1"),
            Just("layer2"),
            Just("bgp"),
            Just("")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        let keys = prop_oneof![
            "[a-z]{1,8}",
            Just("name".to_owned()),
            Just("addresses".to_owned()),
            Just("protocol".to_owned()),
            Just("peer-address".to_owned()),
            Just("password".to_owned()),
            Just("passwordSecret".to_owned()),
            Just("communities".to_owned()),
            Just("node-selectors".to_owned()),
            Just("match-expressions".to_owned()),
            Just("bgp-advertisements".to_owned()),
            Just("holdTime".to_owned()),
            Just("peer-asn".to_owned()),
            Just("my-asn".to_owned()),
            Just("hold-time".to_owned()),
            Just("match-labels".to_owned()),
            Just("aggregation-length".to_owned()),
            Just("echo-interval".to_owned()),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(keys, inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Whatever shape the values take, migrate answers (never panics), and what it writes is
    /// YAML holding only ferrolb objects.
    #[test]
    fn odd_shapes_never_panic_and_the_output_stays_valid_yaml(
        spec in any_value(),
        peer in any_value(),
        pool in any_value(),
        aliases in any_value(),
        profile in any_value(),
        kind in prop_oneof![
            Just("IPAddressPool"), Just("L2Advertisement"), Just("BGPAdvertisement"),
            Just("BGPPeer"), Just("BFDProfile"), Just("Community"),
        ],
        version in prop_oneof![Just("v1beta1"), Just("v1beta2")],
    ) {
        let object = json!({
            "apiVersion": format!("metallb.io/{version}"),
            "kind": kind,
            "metadata": { "name": "x", "namespace": "metallb-system" },
            "spec": spec,
        });
        let legacy = json!({
            "peers": [peer],
            "address-pools": [pool],
            "bgp-communities": aliases,
            "bfd-profiles": [profile],
        });
        let legacy_text = serde_saphyr::to_string(&legacy).unwrap_or_default();
        let config_map = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": { "name": "config", "namespace": "metallb-system" },
            "data": { "config": legacy_text },
        });
        let input = serde_saphyr::to_string_multiple(&[object, config_map, legacy])
            .unwrap_or_default();
        if let Ok(migration) = migrate(&input, NS) {
            for doc in docs(&migration.yaml) {
                let api_version = doc["apiVersion"].as_str().unwrap_or_default();
                prop_assert!(api_version == "ferrolb.io/v1beta1" || api_version == "v1", "{}", doc);
            }
        }
    }
}
