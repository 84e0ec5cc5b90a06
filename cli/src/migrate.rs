//! `kubectl ferrolb migrate`: MetalLB configuration in, ferrolb configuration out.
//!
//! [`migrate`] reads YAML documents (`---`-separated, and the items of `kind: List`) holding
//! MetalLB's custom resources (`metallb.io/v1beta1`; BGPPeer also `v1beta2`), the Secrets their
//! peers take passwords from, and the legacy ConfigMap (`config`, MetalLB 0.12 and older), and
//! writes the same configuration as ferrolb objects: `ferrolb.io/v1beta1`, the same kinds and
//! field names, in the target namespace. Everything it cannot carry over exactly is a
//! [`Warning`]; only input that is not YAML at all is an error. It is pure: text in, text out.
//!
//! The choices it makes:
//! - Names, labels and annotations are kept (except
//!   `kubectl.kubernetes.io/last-applied-configuration`); status and server-set metadata (uid,
//!   resourceVersion, managedFields, owner references, …) are dropped; every object lands in
//!   the target namespace.
//! - The legacy ConfigMap converts as MetalLB's own `configmaptocrs` does: each pool becomes an
//!   IPAddressPool (names made Kubernetes-compatible the same way), a `layer2` pool also gets an
//!   L2Advertisement `l2advertisementN`, a `bgp` pool one BGPAdvertisement `bgpadvertisementN`
//!   per `bgp-advertisements` entry (an empty one if it has none), the aliases become one
//!   Community `communities`, and the peers become BGPPeers `peerN` in the v1beta2 shape.
//! - A plaintext peer `password` (of a BGPPeer, or of a legacy peer) moves into a Secret
//!   `<peer>-password` of type `kubernetes.io/basic-auth` that `passwordSecret` refers to, so
//!   that whoever may read BGPPeers does not read the password. The output holds that Secret
//!   (in `stringData`): keep it private.
//! - Secrets named by a peer's `passwordSecret` are carried over into the target namespace with
//!   their type; other Secrets are skipped.
//! - Values ferrolb's CRDs refuse and that have a safe meaning without them are dropped with a
//!   warning (an `echoInterval` without `echoMode`, a `keepaliveTime: 0s` next to a non-zero
//!   `holdTime`, an unparseable pool address, a field ferrolb's kind does not have, …), so the
//!   output applies cleanly. Dropping never widens a selection (an emptied list would mean
//!   "all"); an object that cannot be made acceptable that way — a peer without a peer ASN, a
//!   pool without a usable address — is left out with a warning. What MetalLB itself would have
//!   refused is reported, not repaired.
//! - Last, the whole converted configuration goes through `ferrolb-config`, the validation the
//!   controller and speakers run, and every problem it finds is a warning on the object.

mod legacy;
mod peer;
mod resources;
mod schema;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

/// The one line that tells users their Services need no change.
pub const SERVICE_ANNOTATION_HINT: &str = "Services need no change: ferrolb reads the metallb.io/* \
     and metallb.universe.tf/* annotations as aliases of ferrolb.io/*.";

/// What `migrate` produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migration {
    /// Multi-document ferrolb YAML, ready for `kubectl apply -f -`. It opens with comment lines,
    /// [`SERVICE_ANNOTATION_HINT`] among them.
    pub yaml: String,
    /// Everything that could not be carried over exactly, in input order, then the problems
    /// ferrolb's own validation finds in the result.
    pub warnings: Vec<Warning>,
}

/// Something in the input that was dropped, changed or is suspect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// Where: `BGPPeer metallb-system/router`, `ConfigMap metallb-system/config: peers[1]`.
    pub source: String,
    /// What happened and what to do about it.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.message)
    }
}

/// Why nothing could be converted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MigrateError {
    /// The input is not YAML.
    #[error("the input is not valid YAML: {0}")]
    Yaml(String),
    /// The input holds no document.
    #[error("the input holds no YAML documents")]
    Empty,
    /// The target namespace is not a namespace name.
    #[error(
        "{0:?} is not a valid namespace name (lower-case letters, digits and '-', at most 63 \
         characters)"
    )]
    Namespace(String),
    /// The output could not be written as YAML.
    #[error("writing the output YAML: {0}")]
    Output(String),
}

/// Converts MetalLB configuration (`input`, YAML) into ferrolb objects in `namespace`.
pub fn migrate(input: &str, namespace: &str) -> Result<Migration, MigrateError> {
    if !is_dns_label(namespace) {
        return Err(MigrateError::Namespace(namespace.to_owned()));
    }
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(input).map_err(|e| MigrateError::Yaml(e.to_string()))?;
    let mut flat = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        flatten(doc, &format!("document {}", i + 1), 0, &mut flat);
    }
    if flat.is_empty() {
        return Err(MigrateError::Empty);
    }
    let mut run = Run::new(namespace);
    for (label, doc) in flat {
        run.document(&label, doc);
    }
    run.finish()
}

/// Kubernetes kinds the output holds, in the order they are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    Secret,
    BFDProfile,
    Community,
    IPAddressPool,
    BGPPeer,
    L2Advertisement,
    BGPAdvertisement,
}

impl Kind {
    /// The configuration kinds MetalLB and ferrolb share.
    fn config(kind: &str) -> Option<Self> {
        Some(match kind {
            "BFDProfile" => Self::BFDProfile,
            "Community" => Self::Community,
            "IPAddressPool" => Self::IPAddressPool,
            "BGPPeer" => Self::BGPPeer,
            "L2Advertisement" => Self::L2Advertisement,
            "BGPAdvertisement" => Self::BGPAdvertisement,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Secret => "Secret",
            Self::BFDProfile => "BFDProfile",
            Self::Community => "Community",
            Self::IPAddressPool => "IPAddressPool",
            Self::BGPPeer => "BGPPeer",
            Self::L2Advertisement => "L2Advertisement",
            Self::BGPAdvertisement => "BGPAdvertisement",
        }
    }
}

/// A converted object, with the input it came from.
#[derive(Debug)]
struct Object {
    kind: Kind,
    name: String,
    source: String,
    /// The input document it came from (`document 3`, `document 1 items[0]`).
    origin: String,
    doc: Value,
}

/// A Secret of the input; carried over only if a peer refers to it.
#[derive(Debug)]
struct InputSecret {
    source: String,
    origin: String,
    namespace: Option<String>,
    name: String,
    doc: Map<String, Value>,
}

/// A peer's `passwordSecret`.
#[derive(Debug)]
struct SecretRef {
    source: String,
    name: String,
    namespace: Option<String>,
}

/// One conversion: what has been read so far.
#[derive(Debug)]
struct Run<'a> {
    namespace: &'a str,
    schemas: schema::Schemas,
    warnings: Vec<Warning>,
    objects: Vec<Object>,
    secrets: Vec<InputSecret>,
    secret_refs: Vec<SecretRef>,
    /// Namespaces the input's configuration objects were in.
    input_namespaces: BTreeSet<String>,
    /// Legacy pool names that had to change, old → new.
    pool_renames: BTreeMap<String, String>,
    /// The input document being read.
    document: String,
    /// Services of the input (source, annotations), reported at the end.
    services: Vec<(String, Map<String, Value>)>,
}

impl<'a> Run<'a> {
    fn new(namespace: &'a str) -> Self {
        Self {
            namespace,
            schemas: schema::Schemas::load(),
            warnings: Vec::new(),
            objects: Vec::new(),
            secrets: Vec::new(),
            secret_refs: Vec::new(),
            input_namespaces: BTreeSet::new(),
            pool_renames: BTreeMap::new(),
            document: String::new(),
            services: Vec::new(),
        }
    }

    fn warn(&mut self, source: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Warning {
            source: source.into(),
            message: message.into(),
        });
    }

    /// Dispatches one document by apiVersion and kind.
    fn document(&mut self, label: &str, doc: Value) {
        self.document = label.to_owned();
        let Value::Object(doc) = doc else {
            self.warn(label, "not a Kubernetes object (a YAML mapping); skipped");
            return;
        };
        let api_version = doc.get("apiVersion").and_then(Value::as_str);
        let kind = doc.get("kind").and_then(Value::as_str);
        let (Some(api_version), Some(kind)) = (api_version, kind) else {
            if legacy::looks_like_config(&doc) {
                // The ConfigMap's `config` key on its own (configmaptocrs' `-only-data`).
                legacy::convert(self, &format!("legacy configuration ({label})"), &doc);
            } else {
                self.warn(label, "has no apiVersion and kind; skipped");
            }
            return;
        };
        let source = object_label(kind, &doc);
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        if let ("metallb.io" | "ferrolb.io", Some(config_kind)) = (group, Kind::config(kind)) {
            resources::convert(self, config_kind, api_version, &source, &doc);
            return;
        }
        match (group, kind) {
            ("metallb.io", "AddressPool") => legacy::address_pool::convert(self, &source, &doc),
            ("metallb.io", "ServiceL2Status" | "ServiceBGPStatus" | "ConfigurationState") => {
                self.warn(
                    source,
                    "status written by MetalLB's components, not configuration; ferrolb writes \
                     its own; skipped",
                );
            }
            ("", "ConfigMap") => self.config_map(source, &doc),
            ("", "Secret") => {
                let meta = doc.get("metadata");
                let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str);
                let namespace = meta
                    .and_then(|m| m.get("namespace"))
                    .and_then(Value::as_str);
                match name {
                    Some(name) => self.secrets.push(InputSecret {
                        source,
                        origin: label.to_owned(),
                        namespace: namespace.map(str::to_owned),
                        name: name.to_owned(),
                        doc,
                    }),
                    None => self.warn(source, "has no metadata.name; skipped"),
                }
            }
            ("", "Service") => {
                let annotations = doc
                    .get("metadata")
                    .and_then(|m| m.get("annotations"))
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                self.services.push((source, annotations));
            }
            ("frrk8s.metallb.io", _) => self.warn(
                source,
                "FRR-K8s configuration: ferrolb speaks BGP itself, without FRR, and has no \
                 equivalent (routes received from peers are ignored); skipped",
            ),
            ("apiextensions.k8s.io", "CustomResourceDefinition") => self.warn(
                source,
                "a CRD, not configuration: install ferrolb's CRDs (manifests/crds/) instead; \
                 skipped",
            ),
            ("metallb.io", _) => self.warn(
                source,
                "a metallb.io kind without a ferrolb counterpart (not configuration); skipped",
            ),
            _ if version.is_empty() => {
                self.warn(source, "apiVersion has no version; skipped");
            }
            _ => self.warn(source, "not MetalLB configuration; skipped"),
        }
    }

    /// The legacy configuration, and MetalLB's other ConfigMaps.
    fn config_map(&mut self, source: String, doc: &Map<String, Value>) {
        let name = doc
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let data = doc.get("data").and_then(Value::as_object);
        let key = |k: &str| data.and_then(|d| d.get(k)).and_then(Value::as_str);
        if let Some(text) = key("config") {
            match serde_saphyr::from_str::<Value>(text) {
                Ok(Value::Object(config))
                    if name == "config" || legacy::looks_like_config(&config) =>
                {
                    legacy::convert(self, &source, &config);
                }
                Ok(Value::Null) if name == "config" => {
                    self.warn(source, "key config is empty; nothing to convert");
                }
                Ok(_) if name == "config" => self.warn(
                    source,
                    "key config is not a MetalLB configuration (a mapping with address-pools, \
                     peers, …); nothing converted",
                ),
                Err(e) if name == "config" => self.warn(
                    source,
                    format!(
                        "key config is not valid YAML, so nothing was converted from it: {}",
                        first_line(&e.to_string())
                    ),
                ),
                _ => self.warn(source, "not MetalLB configuration; skipped"),
            }
            return;
        }
        match name {
            "bgpextras" => self.warn(
                source,
                "raw FRR configuration (key extras) has no ferrolb equivalent: ferrolb does not \
                 run FRR; skipped",
            ),
            "metallb-excludel2" => {
                let patterns = key("excludel2.yaml")
                    .and_then(|t| serde_saphyr::from_str::<Value>(t).ok())
                    .and_then(|v| v.get("announcedInterfacesToExclude").cloned())
                    .and_then(|v| v.as_array().cloned())
                    .map(|list| {
                        list.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(",")
                    });
                let flag = match patterns {
                    Some(p) => format!("run ferrolb-speaker with --exclude-interfaces={p}"),
                    None => "ferrolb-speaker takes the list as --exclude-interfaces".to_owned(),
                };
                self.warn(
                    source,
                    format!(
                        "interfaces never announced on are a speaker flag in ferrolb: {flag} \
                         (without it, MetalLB's default list applies); skipped"
                    ),
                );
            }
            "metallb-memberlist-config" => self.warn(
                source,
                "memberlist tuning: ferrolb's speakers run their own membership protocol, tuned \
                 with ferrolb-speaker flags; skipped",
            ),
            _ => self.warn(source, "not MetalLB configuration; skipped"),
        }
    }

    /// Resolves Secrets, removes duplicates, validates, writes the YAML.
    fn finish(mut self) -> Result<Migration, MigrateError> {
        self.resolve_secrets();
        self.report_services();
        if self.input_namespaces.len() > 1 {
            let list: Vec<&str> = self.input_namespaces.iter().map(String::as_str).collect();
            let message = format!(
                "objects from the namespaces {} are all written to {}; MetalLB reads only its \
                 own namespace, so those from the others had no effect there",
                list.join(", "),
                self.namespace
            );
            self.warn("input", message);
        }
        let objects = self.dedupe();
        let docs: Vec<&Value> = objects.iter().map(|o| &o.doc).collect();
        let mut yaml = format!(
            "# ferrolb configuration converted from MetalLB's by `kubectl ferrolb migrate`.\n\
             # {SERVICE_ANNOTATION_HINT}\n"
        );
        if !docs.is_empty() {
            let body = serde_saphyr::to_string_multiple(&docs)
                .map_err(|e| MigrateError::Output(e.to_string()))?;
            yaml.push_str(&body);
        }
        self.validate(&objects, &yaml);
        Ok(Migration {
            yaml,
            warnings: self.warnings,
        })
    }

    /// Carries over the Secrets peers refer to; skips the others.
    fn resolve_secrets(&mut self) {
        let mut used = BTreeSet::new();
        let refs = std::mem::take(&mut self.secret_refs);
        for r in &refs {
            let matching = |s: &&InputSecret| s.name == r.name;
            let found = self
                .secrets
                .iter()
                .position(|s| {
                    matching(&s)
                        && r.namespace
                            .as_ref()
                            .is_none_or(|ns| s.namespace.as_ref() == Some(ns))
                })
                .or_else(|| self.secrets.iter().position(|s| matching(&s)));
            match found {
                Some(i) => {
                    used.insert(i);
                }
                None => {
                    let message = format!(
                        "spec.passwordSecret names Secret {:?}, which is not in the input: copy it \
                         into namespace {} (type kubernetes.io/basic-auth, key password), or add \
                         it to the input",
                        r.name, self.namespace
                    );
                    self.warn(r.source.clone(), message);
                }
            }
        }
        let secrets = std::mem::take(&mut self.secrets);
        for (i, secret) in secrets.into_iter().enumerate() {
            if used.contains(&i) {
                resources::carry_secret(self, secret);
            } else if secret.name == "memberlist" {
                self.warn(
                    secret.source,
                    "MetalLB's memberlist key: ferrolb's speakers use their own membership \
                     Secret; skipped",
                );
            } else {
                self.warn(
                    secret.source,
                    "no BGPPeer's passwordSecret names it; skipped",
                );
            }
        }
    }

    /// Services are not configuration: say so, and whether their annotations still work.
    fn report_services(&mut self) {
        let services = std::mem::take(&mut self.services);
        for (source, annotations) in services {
            let metallb: Vec<&String> = annotations
                .keys()
                .filter(|k| k.starts_with("metallb.io/") || k.starts_with("metallb.universe.tf/"))
                .collect();
            if metallb.is_empty() {
                self.warn(source, "a Service, not MetalLB configuration; skipped");
                continue;
            }
            let keys: Vec<&str> = metallb.iter().map(|k| k.as_str()).collect();
            let renamed: Vec<String> = metallb
                .iter()
                .filter(|k| k.ends_with("/address-pool"))
                .filter_map(|k| {
                    let pool = annotations.get(k.as_str())?.as_str()?;
                    let new = self.pool_renames.get(pool)?;
                    Some(format!(
                        "{k} names pool {pool:?}, which is now {new:?}: update the annotation"
                    ))
                })
                .collect();
            let mut message = format!(
                "a Service, not configuration; skipped. Its annotations {} keep working as \
                 aliases of ferrolb.io/*",
                keys.join(", ")
            );
            if renamed.is_empty() {
                message.push_str(" (no change needed)");
            } else {
                message.push_str(&format!(", but {}", renamed.join("; ")));
            }
            if keys.iter().any(|k| k.starts_with("metallb.universe.tf/")) {
                message.push_str(
                    "; metallb.universe.tf/* is deprecated (read, with a warning event), \
                     ferrolb.io/* is the lasting spelling",
                );
            }
            self.warn(source, message);
        }
    }

    /// One object per kind and name: the later definition wins, as with `kubectl apply`.
    fn dedupe(&mut self) -> Vec<Object> {
        let objects = std::mem::take(&mut self.objects);
        let mut index: BTreeMap<(Kind, String), usize> = BTreeMap::new();
        let mut out: Vec<Option<Object>> = Vec::new();
        for object in objects {
            let key = (object.kind, object.name.clone());
            if let Some(previous) = index
                .get(&key)
                .and_then(|&i| out.get_mut(i))
                .and_then(Option::take)
            {
                let (kind, name) = (object.kind.as_str(), &object.name);
                let message = if previous.doc == object.doc {
                    format!(
                        "{kind} {name:?} is defined more than once, identically ({} and {}); \
                         written once",
                        previous.origin, object.origin
                    )
                } else {
                    format!(
                        "{kind} {name:?} is defined twice, differently ({} and {}); the later \
                         definition wins, as with kubectl apply",
                        previous.origin, object.origin
                    )
                };
                self.warn(object.source.clone(), message);
            }
            index.insert(key, out.len());
            out.push(Some(object));
        }
        let mut out: Vec<Object> = out.into_iter().flatten().collect();
        out.sort_by_key(|o| o.kind);
        out
    }

    /// Runs ferrolb's own configuration validation over the result.
    fn validate(&mut self, objects: &[Object], yaml: &str) {
        let snapshot = match ferrolb_config::Snapshot::from_yaml(self.namespace, yaml) {
            Ok(snapshot) => snapshot,
            Err(e) => {
                self.warn(
                    "output",
                    format!("could not check the converted configuration: {e}"),
                );
                return;
            }
        };
        let outcome = ferrolb_config::parse(&snapshot);
        for e in outcome.errors {
            // A missing Secret is already reported, with what to do about it.
            if e.severity == ferrolb_config::Severity::Transient
                && e.field.starts_with("spec.passwordSecret")
            {
                continue;
            }
            let source = objects
                .iter()
                .find(|o| o.kind.as_str() == e.kind.as_str() && o.name == e.name)
                .map_or_else(|| format!("{} {}", e.kind, e.name), |o| o.source.clone());
            let verdict = match e.severity {
                ferrolb_config::Severity::Error => "ferrolb will not use this object",
                ferrolb_config::Severity::Transient => {
                    "ferrolb will not use this object until the reference exists"
                }
                ferrolb_config::Severity::Warning => "ferrolb will use it, but",
            };
            self.warn(source, format!("{verdict}: {}: {}", e.field, e.reason));
        }
    }
}

/// The first line of a parser's message (the rest is a source excerpt), without `error: `.
fn first_line(message: &str) -> &str {
    let line = message.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line)
}

/// `Kind namespace/name` (or `Kind name`) of a document, for warnings.
fn object_label(kind: &str, doc: &Map<String, Value>) -> String {
    let meta = doc.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("(unnamed)");
    match meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
    {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Documents, with `kind: *List` documents replaced by their items.
fn flatten(doc: Value, label: &str, depth: usize, out: &mut Vec<(String, Value)>) {
    if doc.is_null() {
        return;
    }
    let is_list = doc
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"));
    match (is_list, doc.get("items")) {
        (true, Some(Value::Array(items))) if depth < 4 => {
            for (i, item) in items.iter().enumerate() {
                flatten(item.clone(), &format!("{label} items[{i}]"), depth + 1, out);
            }
        }
        (true, Some(Value::Null) | None) => {}
        _ => out.push((label.to_owned(), doc)),
    }
}

/// An RFC 1123 label, as namespace names are.
fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}
