//! The real `helm` (v3, built from its Go module by `tests/setup/helm.sh`, or taken from the
//! directory in `FERROLB_HELM_BIN`), run with its own empty config, cache and data directories
//! and no ambient kubeconfig, so a user's helm set-up never leaks into a test; and the chart's
//! rendering as objects keyed by (apiVersion, kind, namespace, name), compared object by object
//! with numbers by value, for the chart's tests (`tests/tests/helm_chart.rs`, `helm_values.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};

use crate::fixtures::repo_path;

/// Environment variable naming a directory that already holds `helm`.
pub const HELM_BIN_ENV: &str = "FERROLB_HELM_BIN";

/// The `helm` binary, located (and built if needed) once per process.
///
/// # Panics
///
/// When it cannot be had: the tests that need it must fail, never skip.
pub fn helm() -> &'static Path {
    static HELM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match HELM.get_or_init(|| locate().map_err(|e| format!("{e:#}"))) {
        Ok(helm) => helm,
        Err(e) => panic!(
            "helm is unavailable: {e}\nBuild it with `bash tests/setup/helm.sh` (needs Go and the \
             Go module proxy) or point {HELM_BIN_ENV} at a directory that holds it."
        ),
    }
}

fn locate() -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os(HELM_BIN_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => crate::apiserver::run_setup_script("helm")?,
    };
    let helm = dir.join("helm");
    ensure!(
        std::fs::metadata(&helm).is_ok_and(|m| m.is_file()),
        "{} holds no helm",
        dir.display()
    );
    Ok(helm)
}

/// A helm command whose config, cache and data live under `home`, with no `KUBECONFIG`,
/// `HELM_NAMESPACE` or `HELM_KUBECONTEXT` from the environment and stdin closed.
pub fn command(home: &Path) -> Command {
    let mut cmd = Command::new(helm());
    cmd.env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("KUBECONFIG")
        .env_remove("HELM_NAMESPACE")
        .env_remove("HELM_KUBECONTEXT")
        .stdin(Stdio::null());
    cmd
}

/// The release name the tests render.
pub const RELEASE: &str = "ferrolb";
/// The namespace the tests render into.
pub const NS: &str = "ferrolb-system";
/// The chart's default image repository.
pub const IMAGE_REPOSITORY: &str = "ghcr.io/ferrolb/ferrolb";

// ---------------------------------------------------------------------------------------------
// helm

/// Runs helm with `args`; its stdout, or an error with its stderr.
pub fn run_helm(args: &[&str]) -> anyhow::Result<String> {
    let home = tempfile::tempdir()?;
    let output = command(home.path())
        .args(args)
        .output()
        .context("running helm")?;
    stdout_of(args, &output)
}

/// helm's stdout, or an error naming the command with its stderr when it failed.
pub fn stdout_of(args: &[&str], output: &std::process::Output) -> anyhow::Result<String> {
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

pub fn chart_dir() -> String {
    repo_path("manifests/chart").to_string_lossy().into_owned()
}

/// `helm template ferrolb manifests/chart --namespace ferrolb-system --include-crds <extra>`.
pub fn helm_template(extra: &[&str]) -> anyhow::Result<String> {
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
pub type Key = (String, String, String, String);

pub fn key_of(doc: &Value) -> Key {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        s(&doc["apiVersion"]),
        s(&doc["kind"]),
        s(&doc["metadata"]["namespace"]),
        s(&doc["metadata"]["name"]),
    )
}

pub fn show(key: &Key) -> String {
    let (api_version, kind, namespace, name) = key;
    if namespace.is_empty() {
        format!("{api_version} {kind} {name}")
    } else {
        format!("{api_version} {kind} {namespace}/{name}")
    }
}

/// Every non-empty document of the multi-document YAML `text`, keyed; a key seen twice is an
/// error.
pub fn objects(text: &str, source: &str) -> anyhow::Result<BTreeMap<Key, Value>> {
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
pub fn normalize_numbers(value: &mut Value) {
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

pub fn install_bundle() -> anyhow::Result<BTreeMap<Key, Value>> {
    let path = repo_path("manifests/install.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    objects(&text, "manifests/install.yaml")
}

pub fn rendered(extra: &[&str]) -> anyhow::Result<BTreeMap<Key, Value>> {
    let text = helm_template(extra)?;
    objects(&text, &format!("helm template {}", extra.join(" ")))
}

/// The first place where `a` and `b` differ, as `path: a != b`.
pub fn first_difference(path: &str, a: &Value, b: &Value) -> Option<String> {
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
pub fn assert_same_objects(
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

pub fn key(api_version: &str, kind: &str, namespace: &str, name: &str) -> Key {
    (
        api_version.into(),
        kind.into(),
        namespace.into(),
        name.into(),
    )
}

pub fn deployment_key() -> Key {
    key("apps/v1", "Deployment", NS, "ferrolb-controller")
}

pub fn daemonset_key() -> Key {
    key("apps/v1", "DaemonSet", NS, "ferrolb-speaker")
}

/// The first (only) container of a workload.
pub fn container(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]["containers"][0]
}

pub fn get<'a>(objects: &'a BTreeMap<Key, Value>, key: &Key) -> &'a Value {
    objects
        .get(key)
        .unwrap_or_else(|| panic!("{} was not rendered", show(key)))
}

// ---------------------------------------------------------------------------------------------
// Rendering
