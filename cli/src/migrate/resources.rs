//! MetalLB's custom resources (and the Secrets their peers use) as ferrolb objects.

use ferrolb_config::{BgpCommunity, IpRange};
use serde_json::{Map, Value, json};

use super::{InputSecret, Kind, Object, Run};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The Secret type MetalLB and ferrolb require for peer passwords.
pub(super) const BASIC_AUTH: &str = "kubernetes.io/basic-auth";

/// Converts one MetalLB (or ferrolb) configuration object into the target namespace.
pub(super) fn convert(
    run: &mut Run<'_>,
    kind: Kind,
    api_version: &str,
    source: &str,
    doc: &Map<String, Value>,
) {
    let meta = doc.get("metadata");
    let Some(name) = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        run.warn(source, "has no metadata.name; skipped");
        return;
    };
    if let Some(ns) = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
    {
        run.input_namespaces.insert(ns.to_owned());
    }
    for key in doc.keys() {
        if !matches!(
            key.as_str(),
            "apiVersion" | "kind" | "metadata" | "spec" | "status"
        ) {
            run.warn(
                source,
                format!("{key} is not part of a {}; dropped", kind.as_str()),
            );
        }
    }
    let mut spec = match doc.get("spec") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(spec)) => spec.clone(),
        Some(_) => {
            run.warn(source, "spec is not a mapping; skipped");
            return;
        }
    };
    let v1beta1_peer = match (api_version, kind) {
        ("metallb.io/v1beta1", Kind::BGPPeer) => true,
        ("metallb.io/v1beta1" | "ferrolb.io/v1beta1", _)
        | ("metallb.io/v1beta2", Kind::BGPPeer) => false,
        _ => {
            run.warn(
                source,
                format!(
                    "{api_version} is not a version of {} this tool knows; read as MetalLB's \
                     current shape",
                    kind.as_str()
                ),
            );
            false
        }
    };
    let fixed = match kind {
        Kind::BGPPeer => super::peer::convert(run, source, name, v1beta1_peer, &mut spec),
        Kind::IPAddressPool => pool(run, source, &mut spec),
        Kind::BFDProfile => {
            bfd_profile(run, source, &mut spec);
            Ok(())
        }
        Kind::BGPAdvertisement => bgp_advertisement(run, source, &mut spec),
        Kind::Community => {
            community(run, source, &mut spec);
            Ok(())
        }
        Kind::L2Advertisement | Kind::Secret => Ok(()),
    };
    if let Err(why) = fixed {
        run.warn(source, format!("{why}; skipped"));
        return;
    }
    let fit = run.schemas.fit(kind, &mut spec);
    for message in fit.messages {
        run.warn(source, message);
    }
    if let Some(why) = fit.refusal {
        run.warn(source, format!("{why}; skipped"));
        return;
    }
    let mut out = json!({
        "apiVersion": ferrolb_api::API_VERSION,
        "kind": kind.as_str(),
        "metadata": metadata(meta, name, run.namespace),
        "spec": spec,
    });
    match run.schemas.check_typed(kind, &mut out) {
        Ok(messages) => {
            for message in messages {
                run.warn(source, message);
            }
        }
        Err(e) => {
            run.warn(
                source,
                format!("does not fit ferrolb's {}: {e}; skipped", kind.as_str()),
            );
            return;
        }
    }
    run.objects.push(Object {
        kind,
        name: name.to_owned(),
        source: source.to_owned(),
        origin: run.document.clone(),
        doc: out,
    });
}

/// A Secret a peer refers to, moved into the target namespace.
pub(super) fn carry_secret(run: &mut Run<'_>, secret: InputSecret) {
    let type_ = secret
        .doc
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("Opaque");
    if type_ != BASIC_AUTH {
        run.warn(
            &secret.source,
            format!(
                "has type {type_}, but a peer password Secret must be of type {BASIC_AUTH} \
                 (MetalLB required it too); carried over unchanged, fix its type"
            ),
        );
    }
    let has_password = ["data", "stringData"]
        .iter()
        .any(|k| secret.doc.get(*k).and_then(|d| d.get("password")).is_some());
    if !has_password {
        run.warn(
            &secret.source,
            "has no password key, which a peer password Secret needs",
        );
    }
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("v1"));
    out.insert("kind".into(), json!("Secret"));
    out.insert(
        "metadata".into(),
        metadata(secret.doc.get("metadata"), &secret.name, run.namespace),
    );
    for key in ["type", "data", "stringData", "immutable"] {
        if let Some(v) = secret.doc.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    let mut out = Value::Object(out);
    if let Err(e) = run.schemas.check_typed(Kind::Secret, &mut out) {
        run.warn(
            &secret.source,
            format!("is not a valid Secret: {e}; skipped"),
        );
        return;
    }
    run.objects.push(Object {
        kind: Kind::Secret,
        name: secret.name,
        source: secret.source,
        origin: secret.origin,
        doc: out,
    });
}

/// Name, namespace, labels and annotations; nothing the server sets.
fn metadata(meta: Option<&Value>, name: &str, namespace: &str) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(name));
    out.insert("namespace".into(), json!(namespace));
    if let Some(labels) = meta
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .filter(|l| !l.is_empty())
    {
        out.insert("labels".into(), Value::Object(labels.clone()));
    }
    if let Some(annotations) = meta
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    {
        let mut annotations = annotations.clone();
        annotations.remove(LAST_APPLIED);
        if !annotations.is_empty() {
            out.insert("annotations".into(), Value::Object(annotations));
        }
    }
    Value::Object(out)
}

fn pool(run: &mut Run<'_>, source: &str, spec: &mut Map<String, Value>) -> Result<(), String> {
    let Some(addresses) = spec.get("addresses") else {
        return Err("spec.addresses is missing (MetalLB refuses such a pool too)".into());
    };
    let Some(addresses) = addresses.as_array() else {
        return Err(format!("spec.addresses {addresses} is not a list"));
    };
    let mut kept = Vec::new();
    for (i, entry) in addresses.iter().enumerate() {
        match entry.as_str().map(|e| (e, IpRange::parse_entry(e))) {
            Some((_, Ok(_))) => kept.push(entry.clone()),
            Some((_, Err(e))) => run.warn(source, format!("spec.addresses[{i}]: {e}; dropped")),
            None => run.warn(
                source,
                format!("spec.addresses[{i}]: {entry} is not a CIDR or range; dropped"),
            ),
        }
    }
    if kept.is_empty() {
        return Err("the pool has no usable address".into());
    }
    spec.insert("addresses".into(), Value::Array(kept));
    Ok(())
}

fn bfd_profile(run: &mut Run<'_>, source: &str, spec: &mut Map<String, Value>) {
    if spec.contains_key("echoInterval") && spec.get("echoMode") != Some(&Value::Bool(true)) {
        spec.remove("echoInterval");
        run.warn(
            source,
            "spec.echoInterval applies only with echoMode: true, and ferrolb's CRD refuses it \
             otherwise; dropped",
        );
    }
}

fn bgp_advertisement(
    run: &mut Run<'_>,
    source: &str,
    spec: &mut Map<String, Value>,
) -> Result<(), String> {
    let selects_services = spec
        .get("serviceSelectors")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());
    let aggregates = |key: &str, full: f64| {
        spec.get(key)
            .and_then(Value::as_f64)
            .is_some_and(|len| len != full)
    };
    if selects_services
        && (aggregates("aggregationLength", 32.0) || aggregates("aggregationLengthV6", 128.0))
    {
        return Err(
            "serviceSelectors with an aggregationLength other than 32 (or 128 for IPv6) \
                    is refused by ferrolb's CRD, as by MetalLB's"
                .into(),
        );
    }
    if is_zero(spec.get("localPref")) {
        // Go's zero value: MetalLB sends no LOCAL_PREF.
        spec.remove("localPref");
    }
    let Some(Value::Array(communities)) = spec.get("communities") else {
        return Ok(());
    };
    let mut kept = Vec::new();
    for (i, c) in communities.iter().enumerate() {
        let problem = match c.as_str() {
            None => Some(format!("{c} is not a community")),
            Some(text) => match BgpCommunity::parse(text) {
                Some(Ok(_)) => None,
                Some(Err(e)) => Some(e),
                None if is_alias_name(text) => None,
                None => Some(format!(
                    "{text:?} is neither a community (AS:VALUE, large:A:B:C) nor a name ferrolb \
                     accepts for an alias"
                )),
            },
        };
        match problem {
            None => kept.push(c.clone()),
            Some(p) => run.warn(source, format!("spec.communities[{i}]: {p}; dropped")),
        }
    }
    spec.insert("communities".into(), Value::Array(kept));
    Ok(())
}

fn community(run: &mut Run<'_>, source: &str, spec: &mut Map<String, Value>) {
    let Some(Value::Array(aliases)) = spec.get("communities") else {
        return;
    };
    let mut kept = Vec::new();
    for (i, alias) in aliases.iter().enumerate() {
        let name = alias.get("name").and_then(Value::as_str);
        let value = alias.get("value").and_then(Value::as_str);
        let problem = match (name, value) {
            (Some(n), _) if !is_alias_name(n) => Some(format!(
                "alias name {n:?} is not one ferrolb accepts (letters, digits, '-', '_' and '.', \
                 starting and ending with a letter or digit)"
            )),
            (Some(_), Some(v)) => match BgpCommunity::parse(v) {
                Some(Ok(_)) => None,
                Some(Err(e)) => Some(e),
                None => Some(format!(
                    "{v:?} is not a community value (AS:VALUE or large:A:B:C)"
                )),
            },
            _ => Some("an alias needs a name and a value".to_owned()),
        };
        match problem {
            None => kept.push(alias.clone()),
            Some(p) => run.warn(source, format!("spec.communities[{i}]: {p}; dropped")),
        }
    }
    spec.insert("communities".into(), Value::Array(kept));
}

/// A Community alias name ferrolb's CRD accepts: `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`.
pub(super) fn is_alias_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A number that is 0: Go's zero value, which MetalLB treats as "not set".
pub(super) fn is_zero(value: Option<&Value>) -> bool {
    value.and_then(Value::as_f64) == Some(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_names_follow_the_crd_pattern() {
        for ok in ["no-export", "NO_ADVERTISE", "a", "vpn.only"] {
            assert!(is_alias_name(ok), "{ok}");
        }
        for bad in ["", "-x", "x-", "a b", "x:y"] {
            assert!(!is_alias_name(bad), "{bad}");
        }
    }
}
