//! `kubectl ferrolb migrate` against the real apiserver: every MetalLB configuration the CLI's
//! tests convert (MetalLB's own samples, docs examples and configmaptocrs test data, and the
//! CLI's table of cases) converts without error, and what comes out applies cleanly to
//! ferrolb's CRDs — their schemas and CEL rules are strict, so a wrong shape is refused here —
//! and every converted object is then there.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context, ensure};
use ferrolb_tests::fixtures::{control_plane_with_crds, create_namespace, repo_path};
use serde_json::Value;

/// The MetalLB inputs of the CLI's migrate tests.
fn inputs() -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for dir in ["cli/tests/fixtures/metallb", "cli/tests/fixtures/cases"] {
        for entry in std::fs::read_dir(repo_path(dir)).with_context(|| dir.to_owned())? {
            let path = entry?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let name = name.unwrap_or_default();
            let metallb = dir.ends_with("metallb") || name.ends_with(".metallb.yaml");
            if metallb && name.ends_with(".yaml") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// `(kind, name)` of every object in a multi-document YAML.
fn objects(yaml: &str) -> anyhow::Result<BTreeSet<(String, String)>> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml)?;
    Ok(docs
        .iter()
        .filter(|d| !d.is_null())
        .map(|d| {
            let field = |p: &str| d.pointer(p).and_then(Value::as_str).unwrap_or_default();
            (
                field("/kind").to_owned(),
                field("/metadata/name").to_owned(),
            )
        })
        .collect())
}

#[tokio::test]
async fn every_converted_metallb_configuration_applies_cleanly_to_ferrolbs_crds()
-> anyhow::Result<()> {
    let cp = control_plane_with_crds().await?;
    let files = inputs()?;
    ensure!(files.len() >= 30, "only {} inputs found", files.len());
    let mut failures = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let label = file.file_name().map(|n| n.to_string_lossy().into_owned());
        let label = label.unwrap_or_default();
        let text = std::fs::read_to_string(file)?;
        // One namespace per input, so inputs that reuse names do not meet.
        let namespace = format!("migrated-{i}");
        let migration = ferrolb_cli::migrate::migrate(&text, &namespace)
            .with_context(|| format!("{label} does not convert"))?;
        let want = objects(&migration.yaml)?;
        if want.is_empty() {
            continue;
        }
        create_namespace(&cp, &namespace).await?;
        if let Err(e) = cp.apply_yaml(&migration.yaml).await {
            failures.push(format!("{label}: {e:#}\n{}", migration.yaml));
            continue;
        }
        let kinds: BTreeSet<String> = want
            .iter()
            .map(|(kind, _)| match kind.as_str() {
                "Secret" => "secrets".to_owned(),
                k => format!("{}.ferrolb.io", k.to_lowercase()),
            })
            .collect();
        let kinds: Vec<String> = kinds.into_iter().collect();
        let listed = cp
            .kubectl(&["get", &kinds.join(","), "-n", &namespace, "-o", "yaml"])
            .await?
            .into_stdout()?;
        let listed: Value = serde_saphyr::from_str(&listed)?;
        let got: BTreeSet<(String, String)> = listed["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                let field = |p: &str| d.pointer(p).and_then(Value::as_str).unwrap_or_default();
                (
                    field("/kind").to_owned(),
                    field("/metadata/name").to_owned(),
                )
            })
            .collect();
        ensure!(got == want, "{label}: applied {want:?}, found {got:?}");
    }
    ensure!(
        failures.is_empty(),
        "{} of {} converted inputs were refused:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
    Ok(())
}
