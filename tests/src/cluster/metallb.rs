//! MetalLB on the real test cluster, as its users run it today: its own `metallb-native.yaml`
//! (from its Go module, unmodified) applied with kubectl, from images holding the `speaker` and
//! `controller` that `tests/setup/metallb.sh` builds from that module, under the references the
//! manifest names (so no registry is asked). For the migration test: ferrolb beside it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::apiserver::run_setup_script_lines;
use crate::image;

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
