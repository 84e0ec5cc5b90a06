//! Installing manifests (CRDs above all) and waiting until CRDs are served.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;

use super::ControlPlane;

/// kubectl's field manager for server-side applies made by the harness.
const FIELD_MANAGER: &str = "ferrolb-tests";

impl ControlPlane {
    /// `kubectl apply --server-side -f <path>` as the admin; returns kubectl's output.
    pub async fn apply_file(&self, path: impl AsRef<Path>) -> anyhow::Result<String> {
        self.apply_path(path.as_ref()).await
    }

    /// `kubectl apply --server-side -f <dir>`: every `.yaml`, `.yml` and `.json` file directly
    /// in `dir` — or `-k <dir>` when the directory is a kustomization.
    pub async fn apply_yaml_dir(&self, dir: impl AsRef<Path>) -> anyhow::Result<String> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            bail!("{} is not a directory", dir.display());
        }
        self.apply_path(dir).await
    }

    /// Server-side applies the (possibly multi-document) YAML `manifest`.
    pub async fn apply_yaml(&self, manifest: &str) -> anyhow::Result<String> {
        let args = [
            "apply",
            "--server-side",
            "--field-manager",
            FIELD_MANAGER,
            "-f",
            "-",
        ];
        self.kubectl_with(self.kubeconfig_path(), &args, Some(manifest))
            .await?
            .into_stdout()
    }

    async fn apply_path(&self, path: &Path) -> anyhow::Result<String> {
        let path_arg = path
            .to_str()
            .with_context(|| format!("{} is not UTF-8", path.display()))?;
        let flag = if path.join("kustomization.yaml").is_file() {
            "-k"
        } else {
            "-f"
        };
        let args = [
            "apply",
            "--server-side",
            "--field-manager",
            FIELD_MANAGER,
            flag,
            path_arg,
        ];
        self.kubectl(&args).await?.into_stdout()
    }
}

/// Waits until each CRD in `names` (e.g. `ipaddresspools.ferrolb.io`) is `Established` with its
/// names accepted, and a list of its resources at every served version answers: then typed
/// clients and kubectl can use it.
pub async fn wait_crds_established(
    client: &kube::Client,
    names: &[&str],
    timeout: Duration,
) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<&str> = names.to_vec();
    let mut last = String::new();
    loop {
        let mut still = Vec::new();
        for name in pending {
            match crd_served(client, &crds, name).await {
                Ok(()) => {}
                Err(e) => {
                    last = format!("{name}: {e:#}");
                    still.push(name);
                }
            }
        }
        pending = still;
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("CRDs {pending:?} not established within {timeout:?} (last problem: {last})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `Ok` once the CRD `name` is established and served.
async fn crd_served(
    client: &kube::Client,
    crds: &Api<CustomResourceDefinition>,
    name: &str,
) -> anyhow::Result<()> {
    let crd = crds
        .get_opt(name)
        .await
        .context("reading the CRD")?
        .context("no such CRD yet")?;
    let conditions = crd
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    for wanted in ["Established", "NamesAccepted"] {
        if !conditions
            .iter()
            .any(|c| c.type_ == wanted && c.status == "True")
        {
            bail!("condition {wanted} is not True yet (conditions: {conditions:?})");
        }
    }
    let spec = &crd.spec;
    for version in spec.versions.iter().filter(|v| v.served) {
        let path = format!(
            "/apis/{}/{}/{}?limit=1",
            spec.group, version.name, spec.names.plural
        );
        let request = http::Request::get(path.as_str())
            .body(Vec::new())
            .context("building a list request")?;
        client
            .request_text(request)
            .await
            .with_context(|| format!("GET {path}"))?;
    }
    Ok(())
}
