//! The Helm chart under `manifests/chart/` renders the install bundle: with its default values,
//! `helm template ferrolb manifests/chart --namespace ferrolb-system --include-crds` gives the
//! very objects of `manifests/install.yaml` (itself the rendered kustomize base, see install.rs).
//!
//! `helm` is the real one, v3 built from its Go module by `tests/setup/helm.sh` (or taken from
//! the directory in `FERROLB_HELM_BIN`). Both sides are parsed as YAML documents into JSON values
//! and keyed by (apiVersion, kind, namespace, name); the two maps must be equal object for object,
//! numbers compared by value (`255.0` in the generated CRDs is kustomize's `255`).
//! The chart adds no Helm-specific labels (`helm.sh/chart`, `app.kubernetes.io/managed-by`, …),
//! so nothing is dropped before comparing. The chart's `crds/` are the generated CRDs of
//! `manifests/crds/` plus the `app.kubernetes.io/part-of` label kustomize adds; a test keeps the
//! copies equal, byte for byte, to what that transformation gives.
//!
//! Further tests: the values knobs (ServiceMonitor, image, controller and speaker settings) change
//! exactly what they should, `helm lint --strict` passes, and on the real apiserver both the
//! rendered chart applies server-side and `helm install` (the README's flow) succeeds.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail, ensure};
use ferrolb_tests::ControlPlane;
use ferrolb_tests::fixtures::repo_path;
use ferrolb_tests::helm;
use serde_json::{Value, json};

const RELEASE: &str = "ferrolb";
const NS: &str = "ferrolb-system";
const IMAGE_REPOSITORY: &str = "ghcr.io/ferrolb/ferrolb";

/// What the chart's `crds/` files start with instead of the generator's header line.
const CHART_CRD_HEADER: &str = "# Copied from manifests/crds/ with the part-of label; do not edit (see tests/tests/helm_chart.rs).";
/// The label kustomize adds to every object of manifests/base (the chart's CRDs carry it too).
const PART_OF_LABEL: &str = "    app.kubernetes.io/part-of: ferrolb";
/// How to refresh the chart's CRDs from manifests/crds/ (what the sync test expects).
const SYNC_CRDS: &str = r##"rm -f manifests/chart/crds/*.yaml; for f in manifests/crds/*.ferrolb.io.yaml; do { echo "# Copied from manifests/crds/ with the part-of label; do not edit (see tests/tests/helm_chart.rs)."; sed -e 1d -e 's|^metadata:$|metadata:\n  labels:\n    app.kubernetes.io/part-of: ferrolb|' "$f"; } > "manifests/chart/crds/$(basename "$f")"; done"##;

// ---------------------------------------------------------------------------------------------
// helm

/// Runs helm with `args`; its stdout, or an error with its stderr.
fn run_helm(args: &[&str]) -> anyhow::Result<String> {
    let home = tempfile::tempdir()?;
    let output = helm::command(home.path())
        .args(args)
        .output()
        .context("running helm")?;
    if !output.status.success() {
        bail!(
            "`helm {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn chart_dir() -> String {
    repo_path("manifests/chart").to_string_lossy().into_owned()
}

/// `helm template ferrolb manifests/chart --namespace ferrolb-system --include-crds <extra>`.
fn helm_template(extra: &[&str]) -> anyhow::Result<String> {
    let chart = chart_dir();
    let mut args = vec![
        "template",
        RELEASE,
        &chart,
        "--namespace",
        NS,
        "--include-crds",
    ];
    args.extend_from_slice(extra);
    run_helm(&args)
}

// ---------------------------------------------------------------------------------------------
// Objects

/// (apiVersion, kind, namespace — empty when cluster-scoped —, name).
type Key = (String, String, String, String);

fn key_of(doc: &Value) -> Key {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        s(&doc["apiVersion"]),
        s(&doc["kind"]),
        s(&doc["metadata"]["namespace"]),
        s(&doc["metadata"]["name"]),
    )
}

fn show(key: &Key) -> String {
    let (api_version, kind, namespace, name) = key;
    if namespace.is_empty() {
        format!("{api_version} {kind} {name}")
    } else {
        format!("{api_version} {kind} {namespace}/{name}")
    }
}

/// Every non-empty document of the multi-document YAML `text`, keyed; a key seen twice is an
/// error.
fn objects(text: &str, source: &str) -> anyhow::Result<BTreeMap<Key, Value>> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(text).with_context(|| format!("parsing {source}"))?;
    let mut objects = BTreeMap::new();
    for mut doc in docs.into_iter().filter(|d| !d.is_null()) {
        normalize_numbers(&mut doc);
        let key = key_of(&doc);
        ensure!(
            !key.0.is_empty() && !key.1.is_empty() && !key.3.is_empty(),
            "{source}: a document without apiVersion, kind or name: {doc}"
        );
        if objects.insert(key.clone(), doc).is_some() {
            bail!("{source}: {} appears twice", show(&key));
        }
    }
    Ok(objects)
}

/// Numbers compare by value: an integral float becomes an integer. The generated CRDs say
/// `maximum: 255.0` (the chart's `crds/` keep that text), kustomize re-emits it as `255`; both are
/// the same JSON number to the apiserver.
fn normalize_numbers(value: &mut Value) {
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) {
                // Exact for the magnitudes in schemas (|f| < 2^53 fits either integer type).
                if f >= 0.0 && f < 2f64.powi(53) {
                    *value = json!(f as u64);
                } else if f < 0.0 && f > -(2f64.powi(53)) {
                    *value = json!(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_numbers),
        Value::Object(fields) => fields.values_mut().for_each(normalize_numbers),
        _ => {}
    }
}

fn install_bundle() -> anyhow::Result<BTreeMap<Key, Value>> {
    let path = repo_path("manifests/install.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    objects(&text, "manifests/install.yaml")
}

fn rendered(extra: &[&str]) -> anyhow::Result<BTreeMap<Key, Value>> {
    let text = helm_template(extra)?;
    objects(&text, &format!("helm template {}", extra.join(" ")))
}

/// The first place where `a` and `b` differ, as `path: a != b`.
fn first_difference(path: &str, a: &Value, b: &Value) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                first_difference(
                    &format!("{path}.{k}"),
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                )
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (u, v))| first_difference(&format!("{path}[{i}]"), u, v)),
        _ if a == b => None,
        _ => Some(format!("{path}: {a} != {b}")),
    }
}

/// Asserts that two object sets are equal, listing every missing, extra and differing object.
fn assert_same_objects(
    expected_name: &str,
    expected: &BTreeMap<Key, Value>,
    actual_name: &str,
    actual: &BTreeMap<Key, Value>,
) {
    let mut problems = Vec::new();
    for (key, want) in expected {
        match actual.get(key) {
            None => problems.push(format!(
                "{} is in {expected_name} but not in {actual_name}",
                show(key)
            )),
            Some(got) => {
                if let Some(diff) = first_difference("", want, got) {
                    problems.push(format!(
                        "{} differs ({expected_name} != {actual_name}) at {diff}",
                        show(key)
                    ));
                }
            }
        }
    }
    for key in actual.keys().filter(|k| !expected.contains_key(*k)) {
        problems.push(format!(
            "{} is in {actual_name} but not in {expected_name}",
            show(key)
        ));
    }
    assert!(
        problems.is_empty(),
        "{actual_name} does not render the objects of {expected_name}:\n  {}",
        problems.join("\n  ")
    );
}

fn key(api_version: &str, kind: &str, namespace: &str, name: &str) -> Key {
    (
        api_version.into(),
        kind.into(),
        namespace.into(),
        name.into(),
    )
}

fn deployment_key() -> Key {
    key("apps/v1", "Deployment", NS, "ferrolb-controller")
}

fn daemonset_key() -> Key {
    key("apps/v1", "DaemonSet", NS, "ferrolb-speaker")
}

/// The first (only) container of a workload.
fn container(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]["containers"][0]
}

fn get<'a>(objects: &'a BTreeMap<Key, Value>, key: &Key) -> &'a Value {
    objects
        .get(key)
        .unwrap_or_else(|| panic!("{} was not rendered", show(key)))
}

// ---------------------------------------------------------------------------------------------
// Rendering

#[test]
fn the_chart_renders_the_objects_of_the_install_bundle() -> anyhow::Result<()> {
    let bundle = install_bundle()?;
    let chart = rendered(&[])?;
    assert_same_objects(
        "manifests/install.yaml",
        &bundle,
        "helm template manifests/chart",
        &chart,
    );
    // Not vacuous: the namespace, 9 CRDs, RBAC for both binaries, the Service and workloads.
    assert_eq!(bundle.len(), 26, "objects in manifests/install.yaml");
    Ok(())
}

/// Without BGP passwords the speaker reads only its membership key: the Role that reads every
/// Secret of the namespace is left out, and nothing else changes.
#[test]
fn without_bgp_password_secrets_the_speaker_gets_no_role_over_every_secret() -> anyhow::Result<()> {
    let default = rendered(&[])?;
    let narrow = rendered(&["--set", "speaker.bgpPasswordSecrets=false"])?;
    let rbac = "rbac.authorization.k8s.io/v1";
    let gone = [
        key(
            rbac,
            "Role",
            "ferrolb-system",
            "ferrolb-speaker-bgp-passwords",
        ),
        key(
            rbac,
            "RoleBinding",
            "ferrolb-system",
            "ferrolb-speaker-bgp-passwords",
        ),
    ];
    for k in &gone {
        assert!(
            default.contains_key(k),
            "{} is not rendered by default",
            show(k)
        );
        assert!(!narrow.contains_key(k), "{} is still rendered", show(k));
    }
    let rest: BTreeMap<&Key, &Value> = default.iter().filter(|(k, _)| !gone.contains(k)).collect();
    assert_eq!(rest, narrow.iter().collect::<BTreeMap<_, _>>());
    Ok(())
}

/// The chart's `crds/` are exactly `manifests/crds/*.ferrolb.io.yaml` with the generator's header
/// replaced and kustomize's part-of label added, file for file.
#[test]
fn the_chart_crds_are_the_generated_crds() -> anyhow::Result<()> {
    let list = |dir: &Path, suffix: &str| -> anyhow::Result<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        names.retain(|n| n.ends_with(suffix));
        names.sort();
        Ok(names)
    };
    let generated_dir = repo_path("manifests/crds");
    let chart_dir = repo_path("manifests/chart/crds");
    let generated = list(&generated_dir, ".ferrolb.io.yaml")?;
    assert_eq!(generated.len(), 10, "generated CRDs: {generated:?}");
    assert_eq!(
        list(&chart_dir, "")?,
        generated,
        "manifests/chart/crds/ must hold exactly the generated CRDs; refresh them with:\n{SYNC_CRDS}"
    );
    for name in &generated {
        let source = std::fs::read_to_string(generated_dir.join(name))?;
        let (first, rest) = source.split_once('\n').context("an empty CRD file")?;
        ensure!(first.starts_with('#'), "{name} lacks its generated header");
        ensure!(
            rest.contains("\nmetadata:\n") || rest.starts_with("metadata:\n"),
            "{name}: no top-level metadata"
        );
        let expected = format!(
            "{CHART_CRD_HEADER}\n{}",
            rest.replacen(
                "metadata:\n",
                &format!("metadata:\n  labels:\n{PART_OF_LABEL}\n"),
                1
            )
        );
        let copy = std::fs::read_to_string(chart_dir.join(name))?;
        assert!(
            copy == expected,
            "manifests/chart/crds/{name} is stale; refresh the chart's CRDs with:\n{SYNC_CRDS}"
        );
    }
    Ok(())
}

#[test]
fn the_service_monitor_is_off_by_default_and_one_object_when_enabled() -> anyhow::Result<()> {
    let default = rendered(&[])?;
    assert!(
        default.keys().all(|k| k.1 != "ServiceMonitor"),
        "a ServiceMonitor by default"
    );
    let enabled = rendered(&[
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "serviceMonitor.labels.release=prometheus",
    ])?;
    let mut added: Vec<&Key> = enabled
        .keys()
        .filter(|k| !default.contains_key(*k))
        .collect();
    assert_eq!(
        added,
        vec![&key(
            "monitoring.coreos.com/v1",
            "ServiceMonitor",
            NS,
            "ferrolb"
        )],
        "serviceMonitor.enabled=true adds exactly one ServiceMonitor"
    );
    let monitor = &enabled[added.remove(0)];
    let rest: BTreeMap<Key, Value> = enabled
        .iter()
        .filter(|(k, _)| k.1 != "ServiceMonitor")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_same_objects(
        "the default render",
        &default,
        "the render with the ServiceMonitor",
        &rest,
    );

    // It scrapes the metrics Service: its selector matches the Service's labels, by port name.
    let service = get(&default, &key("v1", "Service", NS, "ferrolb-metrics"));
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .context("matchLabels")?;
    assert!(!selector.is_empty());
    for (label, value) in selector {
        assert_eq!(
            &service["metadata"]["labels"][label], value,
            "the ServiceMonitor selects label {label}"
        );
    }
    assert_eq!(
        monitor["spec"]["namespaceSelector"]["matchNames"],
        json!([NS])
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], json!("metrics"));
    assert_eq!(service["spec"]["ports"][0]["name"], json!("metrics"));
    assert_eq!(monitor["spec"]["endpoints"][0]["interval"], json!("30s"));
    assert_eq!(
        monitor["metadata"]["labels"]["release"],
        json!("prometheus")
    );
    assert_eq!(
        monitor["metadata"]["labels"]["app.kubernetes.io/part-of"],
        json!("ferrolb")
    );
    Ok(())
}

#[test]
fn the_grafana_dashboard_is_off_by_default_and_one_config_map_of_the_file_when_enabled()
-> anyhow::Result<()> {
    let default = rendered(&[])?;
    let enabled = rendered(&[
        "--set",
        "grafanaDashboard.enabled=true",
        "--set",
        "grafanaDashboard.annotations.grafana_folder=Networking",
    ])?;
    let added: Vec<&Key> = enabled
        .keys()
        .filter(|k| !default.contains_key(*k))
        .collect();
    let config_map = key("v1", "ConfigMap", NS, "ferrolb-grafana-dashboard");
    assert_eq!(
        added,
        vec![&config_map],
        "grafanaDashboard.enabled=true adds exactly one ConfigMap"
    );
    assert_eq!(default.len() + 1, enabled.len());
    let cm = &enabled[&config_map];
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], json!("1"));
    assert_eq!(
        cm["metadata"]["annotations"]["grafana_folder"],
        json!("Networking")
    );
    // The very dashboard of the file (the one the lab test checks against live metrics).
    let file = std::fs::read_to_string(repo_path("manifests/chart/dashboards/ferrolb.json"))?;
    let shipped = cm["data"]["ferrolb.json"]
        .as_str()
        .context("the ConfigMap holds ferrolb.json")?;
    assert_eq!(shipped, file.trim_end());
    let parsed: Value = serde_json::from_str(shipped)?;
    assert_eq!(parsed["uid"], json!("ferrolb"));
    Ok(())
}

#[test]
fn the_image_values_change_both_workloads_and_nothing_else() -> anyhow::Result<()> {
    let default = rendered(&[])?;
    for workload in [deployment_key(), daemonset_key()] {
        assert_eq!(
            container(get(&default, &workload))["image"],
            json!(format!("{IMAGE_REPOSITORY}:0.1.0")),
            "{} defaults to the appVersion tag",
            show(&workload)
        );
    }
    let custom = rendered(&[
        "--set",
        "image.tag=0.2.0-rc.1",
        "--set",
        "image.repository=registry.example/ferrolb",
        "--set",
        "image.pullPolicy=Always",
    ])?;
    // Exactly these two fields of each workload's container change.
    let mut expected = default.clone();
    for workload in [deployment_key(), daemonset_key()] {
        let c = expected
            .get_mut(&workload)
            .and_then(|w| w["spec"]["template"]["spec"]["containers"].get_mut(0))
            .and_then(Value::as_object_mut)
            .with_context(|| format!("{} has no container", show(&workload)))?;
        c.insert("image".into(), json!("registry.example/ferrolb:0.2.0-rc.1"));
        c.insert("imagePullPolicy".into(), json!("Always"));
    }
    assert_same_objects(
        "the default render with the new image",
        &expected,
        "the render with image.* set",
        &custom,
    );

    // The tag alone keeps the repository.
    let tagged = rendered(&["--set", "image.tag=9.9.9"])?;
    for workload in [deployment_key(), daemonset_key()] {
        let c = container(get(&tagged, &workload));
        assert_eq!(c["image"], json!(format!("{IMAGE_REPOSITORY}:9.9.9")));
        assert!(c.get("imagePullPolicy").is_none());
    }
    Ok(())
}

#[test]
fn the_controller_speaker_and_namespace_values_reach_the_objects() -> anyhow::Result<()> {
    let values = tempfile::Builder::new().suffix(".yaml").tempfile()?;
    std::fs::write(
        values.path(),
        r#"
namespace:
  create: false
controller:
  replicas: 3
  logFormat: plain
  resources:
    requests: {cpu: 50m, memory: 64Mi}
  extraArgs: [--lb-class=example.com/lb]
speaker:
  logFormat: plain
  resources:
    limits: {memory: 128Mi}
  excludeInterfaces: ["^eth1$", "^docker.*"]
  ignoreExcludeLB: true
  extraArgs: [--gratuitous-refresh-secs=30]
  nodeSelector: {kubernetes.io/os: linux}
  tolerations: []
"#,
    )?;
    let default = rendered(&[])?;
    let custom = rendered(&["-f", &values.path().to_string_lossy()])?;

    // namespace.create=false drops exactly the Namespace.
    let dropped: Vec<&Key> = default
        .keys()
        .filter(|k| !custom.contains_key(*k))
        .collect();
    assert_eq!(dropped, vec![&key("v1", "Namespace", "", NS)]);
    assert!(custom.keys().all(|k| default.contains_key(k)));

    let deployment = get(&custom, &deployment_key());
    assert_eq!(deployment["spec"]["replicas"], json!(3));
    let c = container(deployment);
    assert_eq!(
        c["args"],
        json!(["--log-format=plain", "--lb-class=example.com/lb"])
    );
    // Helm merges maps with the defaults: the default limit stays (`limits: null` drops it).
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}})
    );

    let daemonset = get(&custom, &daemonset_key());
    let c = container(daemonset);
    assert_eq!(
        c["args"],
        json!([
            "--log-format=plain",
            "--metrics-port=7948",
            "--exclude-interfaces=^eth1$,^docker.*",
            "--ignore-exclude-lb",
            "--gratuitous-refresh-secs=30"
        ])
    );
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}})
    );
    let pod = &daemonset["spec"]["template"]["spec"];
    assert!(
        pod.get("tolerations").is_none(),
        "tolerations: [] renders none"
    );
    assert_eq!(pod["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    // The security-relevant parts do not move with the values.
    let default_ds = get(&default, &daemonset_key());
    assert_eq!(
        c["securityContext"],
        container(default_ds)["securityContext"]
    );
    assert_eq!(pod["hostNetwork"], json!(true));
    Ok(())
}

/// The chart says which Kubernetes it needs (1.31, see README "Install"): helm refuses an
/// older cluster before it writes anything, and renders for the oldest one it accepts.
#[test]
fn helm_refuses_kubernetes_before_1_31() -> anyhow::Result<()> {
    let refused = helm_template(&["--kube-version", "1.30.14"])
        .err()
        .context("helm rendered the chart for Kubernetes 1.30")?;
    let refused = format!("{refused:#}");
    assert!(
        refused.contains("1.30.14") && refused.contains(">=1.31"),
        "helm's refusal names neither the version nor the requirement: {refused}"
    );
    helm_template(&["--kube-version", "1.31.0"])?;
    helm_template(&["--kube-version", "1.37.2"])?;
    Ok(())
}

#[test]
fn helm_lint_strict_passes() -> anyhow::Result<()> {
    let chart = chart_dir();
    run_helm(&["lint", "--strict", &chart])?;
    run_helm(&[
        "lint",
        "--strict",
        &chart,
        "--set",
        "serviceMonitor.enabled=true",
    ])?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// On the real apiserver

#[tokio::test]
async fn the_rendered_chart_applies_server_side() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let manifest = helm_template(&[])?;
    cp.apply_yaml(&manifest)
        .await
        .context("the rendered chart applies server-side")?;
    let out = cp
        .kubectl(&[
            "get",
            "deployment,daemonset,service",
            "-n",
            NS,
            "-o",
            "name",
        ])
        .await?
        .into_stdout()?;
    for name in [
        "deployment.apps/ferrolb-controller",
        "daemonset.apps/ferrolb-speaker",
        "service/ferrolb-metrics",
    ] {
        assert!(out.lines().any(|l| l == name), "{name} missing: {out}");
    }
    Ok(())
}

/// README.md's "Install with Helm": a labelled namespace, then `helm install` with
/// `namespace.create=false` — CRDs from `crds/` first, then the templates.
#[tokio::test]
async fn helm_install_into_a_prepared_namespace_succeeds() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    cp.kubectl(&["create", "namespace", NS])
        .await?
        .into_stdout()?;
    cp.kubectl(&[
        "label",
        "namespace",
        NS,
        "pod-security.kubernetes.io/enforce=privileged",
    ])
    .await?
    .into_stdout()?;

    let home = tempfile::tempdir()?;
    let kubeconfig = cp.kubeconfig_path().to_string_lossy().into_owned();
    let chart = chart_dir();
    let args = [
        "install",
        RELEASE,
        &chart,
        "--namespace",
        NS,
        "--set",
        "namespace.create=false",
        "--kubeconfig",
        &kubeconfig,
    ];
    let output = tokio::process::Command::from(helm::command(home.path()))
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .context("running helm install")?;
    ensure!(
        output.status.success(),
        "`helm {}` failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("STATUS: deployed"),
        "helm install: {stdout}"
    );

    // Every object of the bundle but the namespace (which the user made) is there.
    let bundle = install_bundle()?;
    for (api_version, kind, namespace, name) in bundle.keys() {
        if kind == "Namespace" {
            continue;
        }
        let group = api_version.split_once('/').map_or("", |(g, _)| g);
        let resource = if group.is_empty() {
            kind.to_lowercase()
        } else {
            format!("{}.{group}", kind.to_lowercase())
        };
        let mut args = vec!["get", resource.as_str(), name.as_str(), "-o", "name"];
        if !namespace.is_empty() {
            args.extend(["-n", namespace.as_str()]);
        }
        cp.kubectl(&args)
            .await?
            .into_stdout()
            .with_context(|| format!("{kind} {name} after helm install"))?;
    }
    Ok(())
}
