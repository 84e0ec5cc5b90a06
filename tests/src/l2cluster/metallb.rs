//! MetalLB's speaker in an [`L2Cluster`](super::L2Cluster), for side-by-side benchmarks: its
//! CRDs, namespace, pool and advertisement, the memberlist key, and a placeholder Pod per
//! speaker, as MetalLB's manifests and controller would have made them.
//!
//! There is no kubelet, so the speaker Pods stay Pending; what MetalLB v0.16's speaker needs from
//! them (read from `go.universe.tf/metallb@v0.16.1`):
//! * `internal/k8s/k8s.go` GETs its own Pod (`METALLB_POD_NAME`) at start and exits without it;
//! * `internal/speakerlist` lists the Pods matching `--ml-labels` in `--namespace` and joins the
//!   memberlist at their `status.podIP` (with host networking, the node's IP), so the Pods get
//!   `nodeName` and a patched `status.podIP`;
//! * the memberlist key is the file `secretkey` in `--ml-secret-key-path`.
//!
//! Services need nothing MetalLB-specific: the speaker finds an IP's pool by containment
//! (`poolFor` in `speaker/main.go`); the `metallb.io/ip-allocated-from-pool` annotation its
//! controller writes is set anyway, as on a real cluster.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use ferrolb_config::NodeName;
use ferrolb_speaker::election::rendezvous_hash;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

use crate::ControlPlane;
use crate::netns::Host;
pub use crate::speaker::{METALLB_NAMESPACE, METALLB_SPEAKER_LABELS};

/// The annotation MetalLB's controller puts on Services it gave an IP.
pub const POOL_ANNOTATION: &str = "metallb.io/ip-allocated-from-pool";

/// The memberlist key every speaker shares (the controller would generate one).
const MEMBERLIST_KEY: &str = "a-test-key-for-the-metallb-speakers";

/// Where MetalLB comes from: the directory holding its `speaker` binary and the directory of its
/// CRDs (`config/crd/bases` of the module), as `tests/setup/metallb.sh` prints them.
#[derive(Clone, Debug)]
pub struct MetallbSpeakers {
    /// MetalLB's `speaker` binary.
    pub binary: PathBuf,
    /// `config/crd/bases` of MetalLB's module (without the conversion-webhook patch).
    pub crds: PathBuf,
}

impl MetallbSpeakers {
    /// From `tests/setup/metallb.sh`'s two output lines: the bin dir and the CRD dir.
    pub fn new(bin_dir: &Path, crd_dir: &Path) -> anyhow::Result<Self> {
        let binary = bin_dir.join("speaker");
        if !binary.is_file() {
            anyhow::bail!(
                "{} is missing: run tests/setup/metallb.sh",
                binary.display()
            );
        }
        if !crd_dir.is_dir() {
            anyhow::bail!("{} is not a directory", crd_dir.display());
        }
        Ok(Self {
            binary,
            crds: crd_dir.to_owned(),
        })
    }
}

/// The pool and advertisement: the addresses of [`super::BASE_CONFIG`].
pub const METALLB_CONFIG: &str = r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec:
  addresses: ["192.0.2.200-192.0.2.239", "2001:db8:0:1::200-2001:db8:0:1::2ff"]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: metallb-system}
spec: {ipAddressPools: [lan]}
"#;

/// The placeholder speaker Pod of `node`.
pub fn pod_name(node: &str) -> String {
    format!("speaker-{node}")
}

/// The directory holding the memberlist key file, under the cluster's directory.
pub fn secret_dir(cluster_dir: &Path) -> PathBuf {
    cluster_dir.join("metallb-memberlist")
}

/// Installs MetalLB's CRDs, namespace, configuration and memberlist secret (also as a file
/// under `cluster_dir`), and a speaker Pod per host in `nodes`.
pub async fn install(
    cp: &ControlPlane,
    speakers: &MetallbSpeakers,
    cluster_dir: &Path,
    nodes: &[&Host],
) -> anyhow::Result<()> {
    cp.apply_yaml_dir(&speakers.crds)
        .await
        .with_context(|| format!("applying MetalLB's CRDs from {}", speakers.crds.display()))?;
    let names = crd_names(&speakers.crds)?;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    crate::apiserver::wait_crds_established(&cp.client(), &names, Duration::from_secs(60)).await?;
    crate::fixtures::create_namespace(cp, METALLB_NAMESPACE).await?;
    cp.apply_yaml(METALLB_CONFIG)
        .await
        .context("applying MetalLB's pool and L2Advertisement")?;

    let client = cp.client();
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "memberlist", "namespace": METALLB_NAMESPACE},
        "stringData": {"secretkey": MEMBERLIST_KEY},
    }))?;
    Api::<Secret>::namespaced(client.clone(), METALLB_NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await?;
    let dir = secret_dir(cluster_dir);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("secretkey"), MEMBERLIST_KEY)?;

    let pods = Api::<Pod>::namespaced(client, METALLB_NAMESPACE);
    for host in nodes {
        let labels: serde_json::Map<String, serde_json::Value> = METALLB_SPEAKER_LABELS
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.into()))
            .collect();
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": pod_name(&host.name), "namespace": METALLB_NAMESPACE, "labels": labels},
            "spec": {
                "nodeName": host.name,
                "hostNetwork": true,
                "containers": [{"name": "speaker", "image": "quay.io/metallb/speaker:v0.16.1"}],
            },
        }))?;
        pods.create(&PostParams::default(), &pod).await?;
        let ip = host.ipv4.to_string();
        let status = serde_json::json!({
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": ip, "hostIPs": [{"ip": ip}]},
        });
        pods.patch_status(
            &pod_name(&host.name),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .with_context(|| format!("setting the podIP of {}", pod_name(&host.name)))?;
    }
    Ok(())
}

/// The `metadata.name`s of the CRDs in `dir`.
fn crd_names(dir: &Path) -> anyhow::Result<Vec<String>> {
    Ok(crate::fixtures::read_manifest_dir(dir)?
        .iter()
        .filter(|d| d.kind() == "CustomResourceDefinition")
        .map(|d| d.name().to_owned())
        .collect())
}

/// MetalLB's layer-2 election (`ShouldAnnounce` in `speaker/layer2_controller.go`) for a
/// Service with `externalTrafficPolicy: Cluster`, a ready endpoint, and an advertisement
/// selecting every node: the live node with the smallest SHA-256(`node#ip`).
pub fn elect(ip: IpAddr, live: &[String]) -> Option<String> {
    live.iter()
        .min_by_key(|n| rendezvous_hash(&NodeName::from((*n).clone()), ip))
        .cloned()
}

/// The memberlist members a MetalLB speaker knows of, from its log (`node event - forcing sync`
/// lines: joins add, leaves remove).
pub fn members(log: &str) -> BTreeSet<String> {
    let mut members = BTreeSet::new();
    for line in log.lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if entry["msg"] != "node event - forcing sync" {
            continue;
        }
        let Some(name) = entry["node name"].as_str() else {
            continue;
        };
        match entry["node event"].as_str() {
            Some("NodeJoin" | "NodeUpdate") => {
                members.insert(name.to_owned());
            }
            Some("NodeLeave") => {
                members.remove(name);
            }
            _ => {}
        }
    }
    members
}
