//! An earlier build of ferrolb, for the upgrade tests: a rolling upgrade from one build to
//! another, as users do it — that build's `install.yaml` applied first, then this checkout's.
//! `tests/setup/previous-image.sh` builds it from an earlier commit of this repository.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

use super::Cluster;
use super::ferrolb::NAMESPACE;
use crate::apiserver::run_setup_script;
use crate::image::FERROLB_IMAGE;

/// Names the directory `tests/setup/previous-image.sh` wrote (it runs otherwise).
pub const PREVIOUS_ENV: &str = "FERROLB_PREVIOUS_DIR";

/// The earlier build: its image archive and its install bundle, pointed at that image.
#[derive(Clone, Debug)]
pub struct PreviousBuild {
    /// `ghcr.io/ferrolb/ferrolb:0.1.0-<commit>`.
    pub image: String,
    /// The image's archive, for [`super::ClusterBuilder::image`] or [`Cluster::import_image`].
    pub archive: PathBuf,
    /// That commit's `manifests/install.yaml`, naming `image`.
    pub install: PathBuf,
}

impl PreviousBuild {
    /// The build in `FERROLB_PREVIOUS_DIR`, or the one `tests/setup/previous-image.sh` builds
    /// (cached; cold, a release build of that commit).
    pub fn build() -> anyhow::Result<Self> {
        let dir = match std::env::var_os(PREVIOUS_ENV) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => run_setup_script("previous-image")?,
        };
        Self::in_dir(&dir)
    }

    fn in_dir(dir: &Path) -> anyhow::Result<Self> {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .with_context(|| format!("reading {}", dir.join(name).display()))
        };
        let image = read("REFERENCE")?.trim().to_owned();
        let Some((_, tag)) = image.rsplit_once(':') else {
            bail!("{} names no tagged image: {image:?}", dir.display());
        };
        if image == FERROLB_IMAGE {
            bail!("the previous build is tagged like this checkout's image ({image})");
        }
        let archive = dir.join(format!("ferrolb-{tag}.tar"));
        let install = dir.join("install.yaml");
        for file in [&archive, &install] {
            if !file.is_file() {
                bail!(
                    "{} is missing: run tests/setup/previous-image.sh",
                    file.display()
                );
            }
        }
        Ok(Self {
            image,
            archive,
            install,
        })
    }
}

impl Cluster {
    /// Imports an image archive into every live node's containerd (as a pull would leave it).
    pub fn import_image(&self, archive: &Path) -> anyhow::Result<()> {
        for node in self.nodes().iter().filter(|n| !n.is_killed()) {
            let output = std::process::Command::new("ctr")
                .arg("--address")
                .arg(node.containerd_socket())
                .args(["-n", "k8s.io", "images", "import"])
                .arg(archive)
                .output()
                .with_context(|| format!("running ctr images import on {}", node.name()))?;
            if !output.status.success() {
                bail!(
                    "ctr images import {} on {} failed: {}",
                    archive.display(),
                    node.name(),
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
        }
        Ok(())
    }

    /// Applies an install bundle naming `image` over what is installed (`kubectl apply
    /// --server-side -f`, as an upgrade or a rollback is done) and waits until the speaker
    /// DaemonSet and the controller Deployment have rolled out, pod after pod, and every
    /// ferrolb pod runs `image`.
    pub async fn roll_ferrolb_to(&self, install: &Path, image: &str) -> anyhow::Result<()> {
        self.kubectl_ok(
            &["apply", "--server-side", "-f", &install.to_string_lossy()],
            None,
        )
        .await?;
        for object in ["daemonset/ferrolb-speaker", "deployment/ferrolb-controller"] {
            let args = [
                "rollout",
                "status",
                "-n",
                NAMESPACE,
                object,
                "--timeout=240s",
            ];
            self.kubectl_ok(&args, None).await?;
        }
        self.wait_ferrolb_running(2, Some(image)).await?;
        Ok(())
    }

    /// The upgrade to this checkout: `manifests/install.yaml` applied over what is installed.
    pub async fn upgrade_ferrolb(&self) -> anyhow::Result<()> {
        let install = crate::fixtures::repo_path("manifests/install.yaml");
        self.roll_ferrolb_to(&install, FERROLB_IMAGE).await
    }

    /// The image IDs (digests) the running ferrolb containers report: which build runs.
    pub async fn ferrolb_image_ids(&self) -> anyhow::Result<BTreeSet<String>> {
        let pods: Api<Pod> = Api::namespaced(self.client(), NAMESPACE);
        let list = pods.list(&ListParams::default()).await?;
        Ok(list
            .items
            .iter()
            .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
            .flatten()
            .filter(|c| c.ready)
            .map(|c| c.image_id.clone())
            .collect())
    }
}
