//! MetalLB on the real test cluster, as its users run it today: its own `metallb-native.yaml`
//! (from its Go module, unmodified) applied with kubectl, from images holding the `speaker` and
//! `controller` that `tests/setup/metallb.sh` builds from that module, under the references the
//! manifest names (so no registry is asked). For the migration test: ferrolb beside it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

use super::Cluster;
use super::ferrolb::running_and_ready;
use crate::apiserver::run_setup_script_lines;
use crate::image;
use crate::l2cluster::wait_for;

/// The MetalLB release the setup script builds.
pub const VERSION: &str = "0.16.1";

/// MetalLB's namespace.
pub const NAMESPACE: &str = "metallb-system";

/// A MetalLB pool and advertisement, outside ferrolb's test pool (192.0.2.200–239).
pub const POOL: &str = r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec:
  addresses: ["192.0.2.240/29"]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: metallb-system}
spec: {ipAddressPools: [lan]}
"#;

/// MetalLB built from its Go module.
#[derive(Clone, Debug)]
pub struct Metallb {
    /// The directory holding `speaker` and `controller`.
    pub bin: PathBuf,
    /// The module's root (`…/go.universe.tf/metallb@v<VERSION>`).
    pub module: PathBuf,
}

impl Metallb {
    /// Builds MetalLB (or finds it cached) with `tests/setup/metallb.sh`.
    pub fn build() -> anyhow::Result<Self> {
        let lines = run_setup_script_lines("metallb")?;
        let [bin, crds] = &lines[lines.len().saturating_sub(2)..] else {
            anyhow::bail!("tests/setup/metallb.sh printed {lines:?}, not two directories");
        };
        // The CRDs are `<module>/config/crd/bases`.
        let module = Path::new(crds)
            .ancestors()
            .nth(3)
            .context("the CRD directory is not inside MetalLB's module")?
            .to_owned();
        Ok(Self {
            bin: PathBuf::from(bin),
            module,
        })
    }

    /// MetalLB's own manifest for layer 2 (`config/manifests/metallb-native.yaml`).
    pub fn manifest(&self) -> PathBuf {
        self.module.join("config/manifests/metallb-native.yaml")
    }

    /// Writes the speaker and controller images into `out`; returns the archives.
    pub fn images(&self, out: &Path) -> anyhow::Result<Vec<PathBuf>> {
        ["speaker", "controller"]
            .iter()
            .map(|component| {
                let spec = image::metallb(component, VERSION, &self.bin.join(component));
                let archive = out.join(format!("metallb-{component}.tar"));
                image::write_archive(&spec, &archive)
                    .with_context(|| format!("writing MetalLB's {component} image"))
                    .map(|w| w.path)
            })
            .collect()
    }
}

impl Cluster {
    /// Installs MetalLB as its users do — `kubectl apply -f metallb-native.yaml` — and waits
    /// until its controller and a speaker on every live node are Running and ready; returns
    /// `kubectl get pods -o wide`. The cluster must hold MetalLB's images
    /// ([`Metallb::images`]).
    ///
    /// One change: its validating webhook goes. The test apiserver runs on the host's network,
    /// which has no route to the pods (the tests never touch the host's routes): it could not
    /// call the webhook, and would resolve the webhook Service's name through the host's DNS.
    /// This is MetalLB's `--webhook-mode=disabled`; nothing else of the manifest changes.
    pub async fn install_metallb(&self, metallb: &Metallb) -> anyhow::Result<String> {
        let manifest = metallb.manifest();
        self.kubectl_ok(&["apply", "-f", &manifest.to_string_lossy()], None)
            .await
            .context("kubectl apply -f metallb-native.yaml")?;
        self.kubectl_ok(
            &[
                "delete",
                "validatingwebhookconfiguration",
                "metallb-webhook-configuration",
            ],
            None,
        )
        .await?;
        self.wait_metallb_running().await
    }

    /// Waits until MetalLB's controller and a speaker on every live node are Running and
    /// ready; returns `kubectl get pods -o wide`.
    pub async fn wait_metallb_running(&self) -> anyhow::Result<String> {
        let pods: Api<Pod> = Api::namespaced(self.client(), NAMESPACE);
        let nodes = self.nodes().iter().filter(|n| !n.is_killed()).count();
        let waited = wait_for(
            "MetalLB's controller and a speaker per node Running and ready",
            Duration::from_secs(180),
            || {
                let pods = pods.clone();
                async move {
                    let list = pods.list(&ListParams::default()).await?;
                    let ready = |component: &str| {
                        list.items
                            .iter()
                            .filter(|p| component_of(p) == Some(component))
                            .filter(|p| p.metadata.deletion_timestamp.is_none())
                            .filter(|p| running_and_ready(p))
                            .count()
                    };
                    Ok((ready("controller") == 1 && ready("speaker") == nodes).then_some(()))
                }
            },
        )
        .await;
        let table = self
            .kubectl_ok(&["get", "pods", "-n", NAMESPACE, "-o", "wide"], None)
            .await?;
        match waited {
            Ok(()) => Ok(table),
            Err(e) => Err(self.failure(&format!("{e:#}\n{table}")).await),
        }
    }
}

/// A MetalLB pod's `component` label (`speaker`, `controller`).
pub fn component_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("component"))
        .map(String::as_str)
}
