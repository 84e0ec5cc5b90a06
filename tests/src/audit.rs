//! What a ServiceAccount really asked the apiserver for, from the apiserver's own audit log, set
//! against what its roles grant: so a test can prove the install's RBAC is not only sufficient
//! but has no verb the binary never uses.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::ControlPlaneBuilder;

/// One permission: (API group, resource or resource/subresource, verb).
pub type Permission = (String, String, String);

/// An audit policy and log for a control plane.
#[derive(Debug)]
pub struct Audit {
    dir: tempfile::TempDir,
}

impl Audit {
    /// An audit set-up that records, at Metadata level, every request of `users`.
    pub fn for_users(users: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let users: Vec<String> = users.iter().map(|u| format!("\"{u}\"")).collect();
        std::fs::write(
            dir.path().join("policy.yaml"),
            format!(
                "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n\
                 - level: Metadata\n  users: [{}]\n- level: None\n",
                users.join(", ")
            ),
        )?;
        Ok(Self { dir })
    }

    /// The log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("audit.log")
    }

    /// `builder` with this audit policy and log.
    pub fn configure(&self, builder: ControlPlaneBuilder) -> ControlPlaneBuilder {
        builder
            .apiserver_arg(format!(
                "--audit-policy-file={}",
                self.dir.path().join("policy.yaml").display()
            ))
            .apiserver_arg(format!("--audit-log-path={}", self.log_path().display()))
    }

    /// The permissions `user` used successfully. A server-side apply that created its object
    /// (answered 201) used `create` as well as `patch`, which is how RBAC authorized it.
    pub fn used_by(&self, user: &str) -> anyhow::Result<BTreeSet<Permission>> {
        let text = std::fs::read_to_string(self.log_path())
            .with_context(|| format!("reading {}", self.log_path().display()))?;
        let mut used = BTreeSet::new();
        for line in text.lines() {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if event["user"]["username"].as_str() != Some(user) {
                continue;
            }
            let code = event["responseStatus"]["code"].as_u64().unwrap_or(0);
            // A watch is logged when its response starts (its completion comes only when it
            // ends), and that first event may carry no status.
            let watch_started =
                event["verb"] == "watch" && event["stage"] == "ResponseStarted" && code < 300;
            if !watch_started && !(200..300).contains(&code) {
                continue;
            }
            let object = &event["objectRef"];
            let Some(resource) = object["resource"].as_str() else {
                continue;
            };
            let resource = match object["subresource"].as_str() {
                Some(sub) => format!("{resource}/{sub}"),
                None => resource.to_owned(),
            };
            let group = object["apiGroup"].as_str().unwrap_or_default().to_owned();
            let verb = event["verb"].as_str().unwrap_or_default().to_owned();
            if verb == "patch" && code == 201 {
                used.insert((group.clone(), resource.clone(), "create".to_owned()));
            }
            used.insert((group, resource, verb));
        }
        Ok(used)
    }
}

impl Audit {
    /// The response codes of `user`'s completed requests on `resource` (`services/status`, …),
    /// in the order the log has them.
    pub fn answers(&self, user: &str, resource: &str) -> anyhow::Result<Vec<u64>> {
        let text = std::fs::read_to_string(self.log_path())
            .with_context(|| format!("reading {}", self.log_path().display()))?;
        let mut codes = Vec::new();
        for line in text.lines() {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if event["user"]["username"].as_str() != Some(user)
                || event["stage"] != "ResponseComplete"
            {
                continue;
            }
            let object = &event["objectRef"];
            let on = match (object["resource"].as_str(), object["subresource"].as_str()) {
                (Some(r), Some(sub)) => format!("{r}/{sub}"),
                (Some(r), None) => r.to_owned(),
                (None, _) => continue,
            };
            if on == resource {
                codes.push(event["responseStatus"]["code"].as_u64().unwrap_or(0));
            }
        }
        Ok(codes)
    }
}

/// Every permission the Roles and ClusterRoles in the YAML file at `path` grant.
pub fn granted(path: &Path) -> anyhow::Result<BTreeSet<Permission>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)
        .with_context(|| format!("parsing {}", path.display()))?;
    let mut out = BTreeSet::new();
    for doc in docs {
        if !matches!(doc["kind"].as_str(), Some("Role" | "ClusterRole")) {
            continue;
        }
        for rule in doc["rules"].as_array().into_iter().flatten() {
            let list = |key: &str| -> Vec<String> {
                rule[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            };
            for group in list("apiGroups") {
                for resource in list("resources") {
                    for verb in list("verbs") {
                        out.insert((group.clone(), resource.clone(), verb));
                    }
                }
            }
        }
    }
    Ok(out)
}
