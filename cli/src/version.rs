//! `kubectl ferrolb version`: the plugin's own version and, unless `--client`, what the cluster
//! runs — the images of ferrolb's controller Deployment and speaker DaemonSet (found by their
//! `app.kubernetes.io/name=ferrolb` label, whatever install named them) and how many of their
//! pods are ready. A plugin older or newer than the cluster's ferrolb explains differently from
//! what the binaries decide; this is where a user sees that.

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::PodSpec;
use kube::Api;
use kube::api::ListParams;
use serde::Serialize;

/// The plugin's version, as built.
pub const CLIENT: &str = env!("CARGO_PKG_VERSION");

/// What `version` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Versions {
    /// This plugin's version.
    pub client: String,
    /// ferrolb's workloads in the cluster (absent with `--client`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Vec<Workload>>,
}

/// One of ferrolb's workloads in the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    /// `controller` or `speaker` (the `app.kubernetes.io/component` label).
    pub component: String,
    /// `Deployment/NAME` or `DaemonSet/NAME`.
    pub workload: String,
    /// The images of its containers, in order.
    pub images: Vec<String>,
    /// Pods ready, as its status says.
    pub ready: i32,
    /// Pods wanted, as its status says.
    pub desired: i32,
}

const SELECTOR: &str = "app.kubernetes.io/name=ferrolb";

fn images(spec: Option<&PodSpec>) -> Vec<String> {
    spec.map(|s| {
        s.containers
            .iter()
            .filter_map(|c| c.image.clone())
            .collect()
    })
    .unwrap_or_default()
}

fn component(labels: Option<&std::collections::BTreeMap<String, String>>) -> String {
    labels
        .and_then(|l| l.get("app.kubernetes.io/component"))
        .cloned()
        .unwrap_or_else(|| "?".to_owned())
}

/// ferrolb's workloads among these, controllers first, then by name.
pub fn workloads(deployments: &[Deployment], daemon_sets: &[DaemonSet]) -> Vec<Workload> {
    let mut out: Vec<Workload> = deployments
        .iter()
        .map(|d| Workload {
            component: component(d.metadata.labels.as_ref()),
            workload: format!("Deployment/{}", d.metadata.name.as_deref().unwrap_or("?")),
            images: images(d.spec.as_ref().and_then(|s| s.template.spec.as_ref())),
            ready: d
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0),
            desired: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        })
        .chain(daemon_sets.iter().map(|d| {
            let status = d.status.as_ref();
            Workload {
                component: component(d.metadata.labels.as_ref()),
                workload: format!("DaemonSet/{}", d.metadata.name.as_deref().unwrap_or("?")),
                images: images(d.spec.as_ref().and_then(|s| s.template.spec.as_ref())),
                ready: status.map_or(0, |s| s.number_ready),
                desired: status.map_or(0, |s| s.desired_number_scheduled),
            }
        }))
        .collect();
    out.sort_by(|a, b| (&a.component, &a.workload).cmp(&(&b.component, &b.workload)));
    out
}

/// Reads ferrolb's workloads in `namespace`.
pub async fn fetch(client: &kube::Client, namespace: &str) -> anyhow::Result<Vec<Workload>> {
    let lp = ListParams::default().labels(SELECTOR);
    let deployments = Api::<Deployment>::namespaced(client.clone(), namespace)
        .list(&lp)
        .await
        .with_context(|| format!("cannot list Deployments in {namespace}"))?;
    let daemon_sets = Api::<DaemonSet>::namespaced(client.clone(), namespace)
        .list(&lp)
        .await
        .with_context(|| format!("cannot list DaemonSets in {namespace}"))?;
    Ok(workloads(&deployments.items, &daemon_sets.items))
}

/// Aligned text: the plugin's version, then a line per workload.
pub fn render(v: &Versions) -> String {
    let mut out = format!("kubectl-ferrolb {}\n", v.client);
    let Some(cluster) = &v.cluster else {
        return out;
    };
    if cluster.is_empty() {
        out.push_str("no ferrolb workload (label app.kubernetes.io/name=ferrolb) in the cluster's ferrolb namespace\n");
        return out;
    }
    let width = cluster.iter().map(|w| w.workload.len()).max().unwrap_or(0);
    for w in cluster {
        out.push_str(&format!(
            "{:<10}  {:<width$}  {}/{} ready  {}\n",
            w.component,
            w.workload,
            w.ready,
            w.desired,
            w.images.join(", "),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object<T: serde::de::DeserializeOwned>(json: serde_json::Value) -> T {
        serde_json::from_value(json).expect("a valid object")
    }

    #[test]
    fn workloads_show_each_component_with_its_images_and_ready_pods() {
        let deployment: Deployment = object(serde_json::json!({
            "metadata": {"name": "ferrolb-controller",
                         "labels": {"app.kubernetes.io/name": "ferrolb",
                                    "app.kubernetes.io/component": "controller"}},
            "spec": {"replicas": 2, "selector": {},
                     "template": {"spec": {"containers": [
                         {"name": "controller", "image": "ghcr.io/ferrolb/ferrolb:0.1.0"}]}}},
            "status": {"readyReplicas": 1}
        }));
        let daemon_set: DaemonSet = object(serde_json::json!({
            "metadata": {"name": "ferrolb-speaker",
                         "labels": {"app.kubernetes.io/name": "ferrolb",
                                    "app.kubernetes.io/component": "speaker"}},
            "spec": {"selector": {},
                     "template": {"spec": {"containers": [
                         {"name": "speaker", "image": "ghcr.io/ferrolb/ferrolb:0.1.0"}]}}},
            "status": {"numberReady": 3, "desiredNumberScheduled": 3,
                       "currentNumberScheduled": 3, "numberMisscheduled": 0}
        }));
        let found = workloads(&[deployment], &[daemon_set]);
        let text = render(&Versions {
            client: "0.1.0".into(),
            cluster: Some(found),
        });
        assert_eq!(
            text,
            "kubectl-ferrolb 0.1.0\n\
             controller  Deployment/ferrolb-controller  1/2 ready  ghcr.io/ferrolb/ferrolb:0.1.0\n\
             speaker     DaemonSet/ferrolb-speaker      3/3 ready  ghcr.io/ferrolb/ferrolb:0.1.0\n"
        );
    }

    #[test]
    fn without_a_cluster_only_the_plugin_is_shown_and_an_empty_one_says_so() {
        let client = Versions {
            client: CLIENT.into(),
            cluster: None,
        };
        assert_eq!(render(&client), format!("kubectl-ferrolb {CLIENT}\n"));
        let empty = Versions {
            client: CLIENT.into(),
            cluster: Some(Vec::new()),
        };
        assert!(render(&empty).contains("no ferrolb workload"));
    }
}
