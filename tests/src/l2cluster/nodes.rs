//! Changes to the cluster's Node objects, as an operator makes them: labels, cordons.

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
}
