//! Changes to the cluster's Node objects, as an operator (or an autoscaler) makes them: labels,
//! cordons, taints.

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams};

use super::L2Cluster;

impl L2Cluster {
    /// Sets (or with `None` removes) a label on a Node.
    pub async fn label_node(
        &self,
        node: &str,
        key: &str,
        value: Option<&str>,
    ) -> anyhow::Result<()> {
        let patch = serde_json::json!({"metadata": {"labels": {key: value}}});
        Api::<Node>::all(self.client())
            .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Cordons (`kubectl cordon`) or uncordons a Node: sets `spec.unschedulable`.
    pub async fn cordon_node(&self, node: &str, cordoned: bool) -> anyhow::Result<()> {
        let patch = serde_json::json!({"spec": {"unschedulable": cordoned.then_some(true)}});
        Api::<Node>::all(self.client())
            .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Adds (or with `present` false removes) the taint `key` with `effect` on a Node, as the
    /// cluster autoscaler (`ToBeDeletedByClusterAutoscaler`) or an operator (`NoExecute`) does.
    pub async fn taint_node(
        &self,
        node: &str,
        key: &str,
        effect: &str,
        present: bool,
    ) -> anyhow::Result<()> {
        let api = Api::<Node>::all(self.client());
        let current = api.get(node).await?;
        let mut taints: Vec<serde_json::Value> = current
            .spec
            .and_then(|s| s.taints)
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.key != key)
            .map(|t| serde_json::json!({"key": t.key, "value": t.value, "effect": t.effect}))
            .collect();
        if present {
            taints.push(serde_json::json!({"key": key, "effect": effect}));
        }
        let patch = serde_json::json!({"spec": {"taints": taints}});
        api.patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }
}
