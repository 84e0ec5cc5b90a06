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
//! Further tests: `helm lint --strict` passes, helm refuses Kubernetes before 1.31, and on the
//! real apiserver both the rendered chart applies server-side and `helm install` (the operator guide's
//! flow) succeeds. The values knobs are `helm_values.rs`'.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, ensure};
use ferrolb_tests::ControlPlane;
use ferrolb_tests::fixtures::repo_path;
use ferrolb_tests::helm;
use ferrolb_tests::helm::{
    Key, NS, RELEASE, assert_same_objects, chart_dir, helm_template, install_bundle, key, rendered,
    run_helm, show,
};
use serde_json::Value;

/// What the chart's `crds/` files start with instead of the generator's header line.
const CHART_CRD_HEADER: &str = "# Copied from manifests/crds/ with the part-of label; do not edit (see tests/tests/helm_chart.rs).";
/// The label kustomize adds to every object of manifests/base (the chart's CRDs carry it too).
const PART_OF_LABEL: &str = "    app.kubernetes.io/part-of: ferrolb";
/// How to refresh the chart's CRDs from manifests/crds/ (what the sync test expects).
const SYNC_CRDS: &str = r##"rm -f manifests/chart/crds/*.yaml; for f in manifests/crds/*.ferrolb.io.yaml; do { echo "# Copied from manifests/crds/ with the part-of label; do not edit (see tests/tests/helm_chart.rs)."; sed -e 1d -e 's|^metadata:$|metadata:\n  labels:\n    app.kubernetes.io/part-of: ferrolb|' "$f"; } > "manifests/chart/crds/$(basename "$f")"; done"##;

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

/// docs/operator-guide.md's "With Helm": a labelled namespace, then `helm install` with
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
