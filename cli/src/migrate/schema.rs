//! Fitting a converted object to ferrolb's CRD, so that the apiserver takes it: fields the CRD
//! does not have are dropped (it would prune or refuse them), values outside its bounds are
//! dropped when that leaves a safe meaning, and then the object is checked against the API
//! types.
//!
//! Dropping is never allowed to widen what an object selects: a list emptied by dropping its
//! bad entries, or a list or mapping field of the wrong shape, would mean "all" (all pools, all
//! nodes, all interfaces), so such an object is refused instead.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::Kind;

/// The OpenAPI schema of `spec` of every ferrolb configuration kind, from the API types (the
/// same schema the installed CRDs carry).
#[derive(Debug)]
pub(super) struct Schemas {
    spec: BTreeMap<String, Value>,
}

/// What fitting an object changed, and whether it must be left out.
#[derive(Debug, Default)]
pub(super) struct Fit {
    /// One line per change.
    pub messages: Vec<String>,
    /// Why the object cannot be written, if it cannot.
    pub refusal: Option<String>,
}

impl Fit {
    fn refuse(&mut self, why: String) {
        if self.refusal.is_none() {
            self.refusal = Some(why);
        }
    }
}

impl Schemas {
    pub(super) fn load() -> Self {
        let mut spec = BTreeMap::new();
        for crd in ferrolb_api::all_crds() {
            let kind = crd.spec.names.kind.clone();
            let schema = serde_json::to_value(&crd.spec.versions)
                .ok()
                .and_then(|v| v.get(0).cloned())
                .and_then(|v| {
                    v.pointer("/schema/openAPIV3Schema/properties/spec")
                        .cloned()
                });
            if let Some(schema) = schema {
                spec.insert(kind, schema);
            }
        }
        Self { spec }
    }

    /// Drops from `spec` what ferrolb's CRD for `kind` would refuse or prune.
    pub(super) fn fit(&self, kind: Kind, spec: &mut Map<String, Value>) -> Fit {
        let mut fit = Fit::default();
        if let Some(schema) = self.spec.get(kind.as_str()) {
            fit_object(kind, schema, spec, "spec", &mut fit);
        }
        fit
    }

    /// Checks `doc` against ferrolb's API type for `kind`. A single offending scalar `spec`
    /// field is dropped (its message returned); anything else is an error naming the problem.
    pub(super) fn check_typed(&self, kind: Kind, doc: &mut Value) -> Result<Vec<String>, String> {
        let Err(error) = fits(kind, doc) else {
            return Ok(Vec::new());
        };
        let keys: Vec<String> = doc
            .get("spec")
            .and_then(Value::as_object)
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default();
        for key in keys {
            let mut without = doc.clone();
            if let Some(spec) = without.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove(&key);
            }
            if fits(kind, &without).is_err() {
                continue;
            }
            let value = doc
                .get("spec")
                .and_then(|s| s.get(&key))
                .cloned()
                .unwrap_or_default();
            if self.is_collection(kind, &key) {
                return Err(format!(
                    "spec.{key}: {value} is not of the right shape ({error}), and leaving it out \
                     would select everything"
                ));
            }
            *doc = without;
            return Ok(vec![format!(
                "spec.{key}: {value} does not fit ferrolb's {} ({error}); dropped",
                kind.as_str()
            )]);
        }
        Err(error)
    }

    /// Whether `spec.key` of `kind` is a list or a mapping.
    fn is_collection(&self, kind: Kind, key: &str) -> bool {
        self.spec
            .get(kind.as_str())
            .and_then(|s| s.pointer(&format!("/properties/{key}/type")))
            .and_then(Value::as_str)
            .is_some_and(|t| t == "array" || t == "object")
    }
}

fn fit_object(kind: Kind, schema: &Value, map: &mut Map<String, Value>, path: &str, fit: &mut Fit) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    if properties.is_none() && additional.is_none() {
        return;
    }
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        let child_path = format!("{path}.{key}");
        let Some(child_schema) = properties.and_then(|p| p.get(&key)).or(additional) else {
            map.remove(&key);
            fit.messages.push(format!(
                "{child_path} is not a field of ferrolb's {}; dropped",
                kind.as_str()
            ));
            continue;
        };
        let Some(value) = map.get_mut(&key) else {
            continue;
        };
        if let Some(problem) = out_of_bounds(child_schema, value) {
            if required.contains(&key.as_str()) || value.is_array() {
                fit.refuse(format!(
                    "{child_path}: {problem}, which ferrolb's CRD refuses"
                ));
            } else {
                map.remove(&key);
                fit.messages.push(format!(
                    "{child_path}: {problem}, which ferrolb's CRD refuses; dropped"
                ));
            }
            continue;
        }
        fit_value(kind, child_schema, value, &child_path, fit);
    }
}

fn fit_value(kind: Kind, schema: &Value, value: &mut Value, path: &str, fit: &mut Fit) {
    match value {
        Value::Object(map) => fit_object(kind, schema, map, path, fit),
        Value::Array(items) => {
            let Some(item_schema) = schema.get("items") else {
                return;
            };
            let before = items.len();
            let mut kept = Vec::new();
            for (i, mut item) in std::mem::take(items).into_iter().enumerate() {
                let item_path = format!("{path}[{i}]");
                match out_of_bounds(item_schema, &item) {
                    Some(problem) => fit.messages.push(format!(
                        "{item_path}: {problem}, which ferrolb's CRD refuses; dropped"
                    )),
                    None => {
                        fit_value(kind, item_schema, &mut item, &item_path, fit);
                        kept.push(item);
                    }
                }
            }
            if kept.is_empty() && before > 0 {
                fit.refuse(format!(
                    "{path} has no usable entry left, and an empty list would select everything"
                ));
            }
            *items = kept;
        }
        _ => {}
    }
}

/// The bound of `schema` that `value` breaks, if any (numbers, lengths, item counts, enums).
fn out_of_bounds(schema: &Value, value: &Value) -> Option<String> {
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    let count = |key: &str| schema.get(key).and_then(Value::as_u64);
    match value {
        Value::Number(n) => {
            let x = n.as_f64()?;
            let (min, max) = (bound("minimum"), bound("maximum"));
            if min.is_some_and(|m| x < m) || max.is_some_and(|m| x > m) {
                let show = |b: Option<f64>| b.map_or_else(String::new, |b| format!("{b}"));
                return Some(format!("{n} is outside {}..{}", show(min), show(max)));
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(max) = count("maxLength").filter(|m| len > *m) {
                return Some(format!("{s:?} is longer than {max} characters"));
            }
            if let Some(min) = count("minLength").filter(|m| len < *m) {
                return Some(format!("{s:?} is shorter than {min} characters"));
            }
            if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
                && !allowed.iter().any(|a| a.as_str() == Some(s))
            {
                let allowed: Vec<String> = allowed.iter().map(Value::to_string).collect();
                return Some(format!("{s:?} is not one of {}", allowed.join(", ")));
            }
        }
        Value::Array(items) => {
            let len = items.len() as u64;
            if let Some(max) = count("maxItems").filter(|m| len > *m) {
                return Some(format!("{len} entries, more than {max}"));
            }
        }
        _ => {}
    }
    None
}

fn fits(kind: Kind, doc: &Value) -> Result<(), String> {
    fn typed<T: DeserializeOwned>(doc: &Value) -> Result<(), String> {
        serde_json::from_value::<T>(doc.clone())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
    match kind {
        Kind::Secret => typed::<k8s_openapi::api::core::v1::Secret>(doc),
        Kind::BFDProfile => typed::<ferrolb_api::BFDProfile>(doc),
        Kind::Community => typed::<ferrolb_api::Community>(doc),
        Kind::IPAddressPool => typed::<ferrolb_api::IPAddressPool>(doc),
        Kind::BGPPeer => typed::<ferrolb_api::BGPPeer>(doc),
        Kind::L2Advertisement => typed::<ferrolb_api::L2Advertisement>(doc),
        Kind::BGPAdvertisement => typed::<ferrolb_api::BGPAdvertisement>(doc),
    }
}
