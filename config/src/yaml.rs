//! Builds a [`Snapshot`] from YAML documents (what `kubectl apply -f` would read), for tests and
//! for tools that reason about configuration files without a cluster.

use base64::Engine;
use serde_json::Value;

use crate::{Labels, NodeName, SecretInfo, Snapshot};

impl Snapshot {
    /// Reads every document of `text`: ferrolb.io/v1beta1 objects, and v1 Nodes, Namespaces and
    /// Secrets (for their labels and passwords). Objects outside `namespace` are ignored, as the
    /// components ignore them. Documents of other kinds are an error, so a typo is not silently
    /// dropped.
    pub fn from_yaml(namespace: &str, text: &str) -> Result<Self, String> {
        let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| e.to_string())?;
        let mut snapshot = Snapshot {
            namespace: namespace.to_owned(),
            ..Snapshot::default()
        };
        for (i, doc) in docs.into_iter().enumerate() {
            if doc.is_null() {
                continue;
            }
            snapshot
                .add(doc)
                .map_err(|e| format!("document {}: {e}", i + 1))?;
        }
        Ok(snapshot)
    }

    fn add(&mut self, doc: Value) -> Result<(), String> {
        let api_version = doc["apiVersion"].as_str().unwrap_or_default().to_owned();
        let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
        let name = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let labels = || -> Labels {
            serde_json::from_value(doc["metadata"]["labels"].clone()).unwrap_or_default()
        };
        let in_namespace = doc["metadata"]["namespace"]
            .as_str()
            .is_none_or(|ns| ns == self.namespace);
        fn typed<T: serde::de::DeserializeOwned>(doc: Value) -> Result<T, String> {
            serde_json::from_value(doc).map_err(|e| e.to_string())
        }
        match (api_version.as_str(), kind.as_str()) {
            ("v1", "Node") => {
                self.nodes.insert(NodeName(name), labels());
            }
            ("v1", "Namespace") => {
                self.namespaces.insert(name, labels());
            }
            ("v1", "Secret") if in_namespace => {
                let type_ = doc["type"].as_str().unwrap_or("Opaque").to_owned();
                let password = match (&doc["stringData"]["password"], &doc["data"]["password"]) {
                    (Value::String(p), _) => Some(p.clone()),
                    (_, Value::String(b64)) => base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok()),
                    _ => None,
                };
                self.secrets.insert(name, SecretInfo { type_, password });
            }
            ("v1", "Secret") => {}
            (ferrolb_api::API_VERSION, _) if !in_namespace => {}
            (ferrolb_api::API_VERSION, "IPAddressPool") => self.pools.push(typed(doc)?),
            (ferrolb_api::API_VERSION, "L2Advertisement") => {
                self.l2_advertisements.push(typed(doc)?)
            }
            (ferrolb_api::API_VERSION, "BGPAdvertisement") => {
                self.bgp_advertisements.push(typed(doc)?)
            }
            (ferrolb_api::API_VERSION, "BGPPeer") => self.peers.push(typed(doc)?),
            (ferrolb_api::API_VERSION, "BFDProfile") => self.bfd_profiles.push(typed(doc)?),
            (ferrolb_api::API_VERSION, "Community") => self.communities.push(typed(doc)?),
            _ => return Err(format!("unsupported object {api_version}/{kind} {name:?}")),
        }
        Ok(())
    }
}
