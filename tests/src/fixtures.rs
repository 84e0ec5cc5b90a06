//! Shared set-up for suites that need ferrolb's API in a [`ControlPlane`]: the repository's
//! manifest directories, installing the CRDs, creating ferrolb's namespace and reading YAML
//! manifests the way `kubectl apply -f` does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::apiserver::{ControlPlane, wait_crds_established};

/// The namespace ferrolb's configuration lives in (`ferrolb_api::DEFAULT_NAMESPACE`).
pub const NAMESPACE: &str = ferrolb_api::DEFAULT_NAMESPACE;

/// How long freshly applied CRDs may take to be established and served.
pub const CRD_ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// A binary of the workspace next to the test executable (`target/<profile>/`, built by `cargo
/// build --workspace --bins`, which tests/setup/prepare.sh runs for `./lab` and the tests).
pub fn workspace_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the test executable")?;
    // Tests run from target/<profile>/deps/, binaries from target/<profile>/.
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(name))
        .collect();
    candidates
        .iter()
        .find(|bin| bin.is_file())
        .cloned()
        .with_context(|| {
            format!(
                "{name} is missing (looked at {candidates:?}): run `cargo build --workspace --bins` (`./lab` and tests/setup/prepare.sh do)"
            )
        })
}

/// A path relative to the root of the repository (the workspace).
pub fn repo_path(relative: impl AsRef<Path>) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// `manifests/crds/`: the generated CRD YAML.
pub fn crds_dir() -> PathBuf {
    repo_path("manifests/crds")
}

/// `manifests/samples/`: example configurations for users.
pub fn samples_dir() -> PathBuf {
    repo_path("manifests/samples")
}

/// The name of every ferrolb CRD (`ipaddresspools.ferrolb.io`, …), from the API types.
pub fn crd_names() -> Vec<String> {
    ferrolb_api::all_crds()
        .into_iter()
        .filter_map(|crd| crd.metadata.name)
        .collect()
}

/// Server-side applies `manifests/crds/` and waits until every ferrolb CRD is established and
/// served.
pub async fn install_crds(cp: &ControlPlane) -> anyhow::Result<()> {
    cp.apply_yaml_dir(crds_dir())
        .await
        .context("applying manifests/crds/")?;
    let names = crd_names();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    wait_crds_established(&cp.client(), &names, CRD_ESTABLISH_TIMEOUT).await
}

/// `kubectl create namespace <name>`.
pub async fn create_namespace(cp: &ControlPlane, name: &str) -> anyhow::Result<()> {
    cp.kubectl(&["create", "namespace", name])
        .await?
        .into_stdout()
        .with_context(|| format!("creating namespace {name}"))?;
    Ok(())
}

/// A control plane with ferrolb's CRDs installed and its namespace ([`NAMESPACE`]) created.
pub async fn control_plane_with_crds() -> anyhow::Result<ControlPlane> {
    control_plane_with_crds_from(ControlPlane::builder()).await
}

/// [`control_plane_with_crds`] on a control plane built by `builder`.
pub async fn control_plane_with_crds_from(
    builder: crate::ControlPlaneBuilder,
) -> anyhow::Result<ControlPlane> {
    let cp = builder.start().await?;
    install_crds(&cp).await?;
    create_namespace(&cp, NAMESPACE).await?;
    Ok(cp)
}

/// One document of a YAML manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestDoc {
    /// The file it was read from.
    pub file: PathBuf,
    /// The document, as JSON.
    pub doc: Value,
}

impl ManifestDoc {
    /// `apiVersion`, or `""`.
    pub fn api_version(&self) -> &str {
        self.doc["apiVersion"].as_str().unwrap_or_default()
    }

    /// `kind`, or `""`.
    pub fn kind(&self) -> &str {
        self.doc["kind"].as_str().unwrap_or_default()
    }

    /// `metadata.name`, or `""`.
    pub fn name(&self) -> &str {
        self.doc["metadata"]["name"].as_str().unwrap_or_default()
    }
}

/// Every non-empty document of every `.yaml`/`.yml` file directly in `dir`, files in name order
/// (as `kubectl apply -f <dir>` reads them).
pub fn read_manifest_dir(dir: &Path) -> anyhow::Result<Vec<ManifestDoc>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    files.retain(|f| f.extension().is_some_and(|e| e == "yaml" || e == "yml"));
    files.sort();
    if files.is_empty() {
        bail!("{} holds no YAML files", dir.display());
    }
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let values: Vec<Value> = serde_saphyr::from_multiple(&text)
            .with_context(|| format!("parsing {}", file.display()))?;
        docs.extend(
            values
                .into_iter()
                .filter(|doc| !doc.is_null())
                .map(|doc| ManifestDoc {
                    file: file.clone(),
                    doc,
                }),
        );
    }
    Ok(docs)
}
