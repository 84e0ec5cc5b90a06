//! The legacy ConfigMap (MetalLB 0.12 and older, key `config`), converted the way MetalLB's
//! `configmaptocrs` tool converts it: first into MetalLB's custom resources, which then go
//! through the same conversion as resources read from the input.

use std::collections::BTreeMap;

use ferrolb_config::{BgpCommunity, parse_go_duration};
use serde_json::{Map, Value, json};

use super::resources::is_alias_name;
use super::{Kind, Run, resources};

pub(super) mod address_pool;
mod entry;

use entry::{Entry, Type, entries, rename, resource};

/// The top-level keys of the legacy configuration.
const KEYS: [&str; 4] = ["peers", "address-pools", "bgp-communities", "bfd-profiles"];

/// Whether a mapping looks like the legacy configuration.
pub(super) fn looks_like_config(map: &Map<String, Value>) -> bool {
    KEYS.iter().any(|k| map.contains_key(*k))
}

/// Converts the legacy configuration `config`, read from `source`.
pub(super) fn convert(run: &mut Run<'_>, source: &str, config: &Map<String, Value>) {
    for key in config.keys() {
        if !KEYS.contains(&key.as_str()) {
            run.warn(
                source,
                format!("{key} is not a key of MetalLB's configuration; ignored"),
            );
        }
    }
    let bfd_renames = bfd_profiles(run, source, config.get("bfd-profiles"));
    let substitutes = communities(run, source, config.get("bgp-communities"));
    peers(run, source, config.get("peers"), &bfd_renames);
    pools(run, source, config.get("address-pools"), &substitutes);
}

/// BFD profiles; returns the renamed ones (old → new) for the peers that name them.
fn bfd_profiles(run: &mut Run<'_>, source: &str, list: Option<&Value>) -> BTreeMap<String, String> {
    let mut renames = BTreeMap::new();
    for entry in entries(run, source, "bfd-profiles", list) {
        entry.check_keys(
            run,
            &[
                "name",
                "receive-interval",
                "transmit-interval",
                "detect-multiplier",
                "echo-interval",
                "echo-mode",
                "passive-mode",
                "minimum-ttl",
            ],
        );
        let Some(old) = entry.str("name") else {
            run.warn(&entry.source, "has no name; skipped");
            continue;
        };
        let Some(name) = rename(run, &entry.source, "BFD profile", old) else {
            continue;
        };
        if name != old {
            renames.insert(old.to_owned(), name.clone());
        }
        let mut spec = Map::new();
        for (from, to, ty) in [
            ("receive-interval", "receiveInterval", Type::U32),
            ("transmit-interval", "transmitInterval", Type::U32),
            ("detect-multiplier", "detectMultiplier", Type::U32),
            ("echo-interval", "echoInterval", Type::U32),
            ("echo-mode", "echoMode", Type::Bool),
            ("passive-mode", "passiveMode", Type::Bool),
            ("minimum-ttl", "minimumTtl", Type::U32),
        ] {
            entry.copy(run, from, to, ty, &mut spec);
        }
        let doc = resource("metallb.io/v1beta1", Kind::BFDProfile, &name, spec);
        resources::convert(
            run,
            Kind::BFDProfile,
            "metallb.io/v1beta1",
            &entry.source,
            &doc,
        );
    }
    renames
}

/// The aliases, as one Community `communities`. Returns the aliases whose names ferrolb does
/// not accept, with their values, to be written as values where advertisements use them.
fn communities(run: &mut Run<'_>, source: &str, map: Option<&Value>) -> BTreeMap<String, String> {
    let mut substitutes = BTreeMap::new();
    let here = format!("{source}: bgp-communities");
    let aliases = match map {
        None | Some(Value::Null) => return substitutes,
        Some(Value::Object(aliases)) => aliases,
        Some(other) => {
            run.warn(
                here,
                format!("{other} is not a mapping of alias to value; skipped"),
            );
            return substitutes;
        }
    };
    // serde_json's map is ordered by key: the aliases come out sorted, as configmaptocrs
    // sorts them.
    let mut kept = Vec::new();
    for (name, value) in aliases {
        let Some(value) = value.as_str() else {
            run.warn(
                &here,
                format!("{name}: {value} is not a community; dropped"),
            );
            continue;
        };
        match BgpCommunity::parse(value) {
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                run.warn(&here, format!("{name}: {e}; dropped"));
                continue;
            }
            None => {
                run.warn(
                    &here,
                    format!("{name}: {value:?} is not a community (AS:VALUE); dropped"),
                );
                continue;
            }
        }
        if is_alias_name(name) {
            kept.push(json!({ "name": name, "value": value }));
        } else {
            run.warn(
                &here,
                format!(
                    "alias {name:?} is not a name ferrolb accepts; advertisements that use it \
                     get its value {value:?} instead"
                ),
            );
            substitutes.insert(name.clone(), value.to_owned());
        }
    }
    if !kept.is_empty() {
        let mut spec = Map::new();
        spec.insert("communities".into(), Value::Array(kept));
        let doc = resource("metallb.io/v1beta1", Kind::Community, "communities", spec);
        resources::convert(run, Kind::Community, "metallb.io/v1beta1", &here, &doc);
    }
    substitutes
}

fn peers(
    run: &mut Run<'_>,
    source: &str,
    list: Option<&Value>,
    bfd_renames: &BTreeMap<String, String>,
) {
    for (i, entry) in entries(run, source, "peers", list).into_iter().enumerate() {
        entry.check_keys(
            run,
            &[
                "my-asn",
                "peer-asn",
                "peer-address",
                "peer-port",
                "source-address",
                "hold-time",
                "keepalive-time",
                "router-id",
                "node-selectors",
                "password",
                "bfd-profile",
                "ebgp-multihop",
            ],
        );
        let mut spec = Map::new();
        for (from, to, ty) in [
            ("my-asn", "myASN", Type::U32),
            ("peer-asn", "peerASN", Type::U32),
            ("peer-address", "peerAddress", Type::Str),
            ("source-address", "sourceAddress", Type::Str),
            ("peer-port", "peerPort", Type::U16),
            ("hold-time", "holdTime", Type::Str),
            ("keepalive-time", "keepaliveTime", Type::Str),
            ("router-id", "routerID", Type::Str),
            ("password", "password", Type::Str),
            ("bfd-profile", "bfdProfile", Type::Str),
            ("ebgp-multihop", "ebgpMultiHop", Type::Bool),
        ] {
            entry.copy(run, from, to, ty, &mut spec);
        }
        for (from, to) in [
            ("hold-time", "holdTime"),
            ("keepalive-time", "keepaliveTime"),
        ] {
            legacy_duration(run, &entry, from, to, &mut spec);
        }
        if let Some(new) = spec
            .get("bfdProfile")
            .and_then(Value::as_str)
            .and_then(|p| bfd_renames.get(p))
        {
            spec.insert("bfdProfile".into(), json!(new));
        }
        if let Some(selectors) = node_selectors(run, &entry, entry.map.get("node-selectors")) {
            spec.insert("nodeSelectors".into(), selectors);
        }
        let name = format!("peer{}", i + 1);
        let doc = resource("metallb.io/v1beta2", Kind::BGPPeer, &name, spec);
        resources::convert(
            run,
            Kind::BGPPeer,
            "metallb.io/v1beta2",
            &entry.source,
            &doc,
        );
    }
}

/// A legacy timer: MetalLB used it in whole seconds, rounded down (as configmaptocrs writes it).
fn legacy_duration(
    run: &mut Run<'_>,
    entry: &Entry<'_>,
    from: &str,
    to: &str,
    spec: &mut Map<String, Value>,
) {
    let Some(text) = spec.get(to).and_then(Value::as_str).map(str::to_owned) else {
        return;
    };
    match parse_go_duration(&text) {
        Err(e) => {
            spec.remove(to);
            run.warn(&entry.source, format!("{from}: {e}; dropped"));
        }
        Ok(d) if d.subsec_nanos() != 0 => {
            let secs = d.as_secs();
            spec.insert(to.into(), json!(format!("{secs}s")));
            run.warn(
                &entry.source,
                format!("{from}: {text:?} rounded down to {secs}s, the whole seconds MetalLB used"),
            );
        }
        Ok(_) => {}
    }
}

/// `node-selectors` (`match-labels`, `match-expressions`) as label selectors.
fn node_selectors(run: &mut Run<'_>, entry: &Entry<'_>, list: Option<&Value>) -> Option<Value> {
    let selectors = match list? {
        Value::Null => return None,
        Value::Array(selectors) => selectors,
        other => {
            run.warn(
                &entry.source,
                format!("node-selectors: {other} is not a list; dropped, so every node peers"),
            );
            return None;
        }
    };
    let mut out = Vec::new();
    for (i, selector) in selectors.iter().enumerate() {
        let here = format!("node-selectors[{i}]");
        let Some(selector) = selector.as_object() else {
            run.warn(
                &entry.source,
                format!("{here}: {selector} is not a mapping; dropped"),
            );
            continue;
        };
        let mut converted = Map::new();
        for (key, value) in selector {
            match key.as_str() {
                "match-labels" => {
                    converted.insert("matchLabels".into(), value.clone());
                }
                "match-expressions" => {
                    let expressions = value.as_array().cloned().unwrap_or_default();
                    let expressions: Vec<Value> = expressions
                        .into_iter()
                        .map(|mut e| {
                            normalize_operator(run, entry, &here, &mut e);
                            e
                        })
                        .collect();
                    converted.insert("matchExpressions".into(), Value::Array(expressions));
                }
                other => run.warn(
                    &entry.source,
                    format!(
                        "{here}: {other} is not a selector field (match-labels, \
                         match-expressions); ignored"
                    ),
                ),
            }
        }
        out.push(Value::Object(converted));
    }
    Some(Value::Array(out))
}

/// Legacy selectors took operators in any case (`in`, `notin`); Kubernetes spells them `In`…
fn normalize_operator(run: &mut Run<'_>, entry: &Entry<'_>, here: &str, expression: &mut Value) {
    let Some(op) = expression.get("operator").and_then(Value::as_str) else {
        return;
    };
    let canonical = match op.to_ascii_lowercase().as_str() {
        "in" => "In",
        "notin" => "NotIn",
        "exists" => "Exists",
        "doesnotexist" | "!" => "DoesNotExist",
        _ => {
            run.warn(
                &entry.source,
                format!(
                    "{here}: operator {op:?} is not In, NotIn, Exists or DoesNotExist; kept as is"
                ),
            );
            return;
        }
    };
    if let Some(map) = expression.as_object_mut() {
        map.insert("operator".into(), json!(canonical));
    }
}

fn pools(
    run: &mut Run<'_>,
    source: &str,
    list: Option<&Value>,
    substitutes: &BTreeMap<String, String>,
) {
    let (mut bgp_index, mut l2_index) = (1, 1);
    for entry in entries(run, source, "address-pools", list) {
        entry.check_keys(
            run,
            &[
                "name",
                "protocol",
                "addresses",
                "auto-assign",
                "avoid-buggy-ips",
                "bgp-advertisements",
            ],
        );
        let Some(old) = entry.str("name") else {
            run.warn(&entry.source, "has no name; skipped");
            continue;
        };
        let Some(name) = rename(run, &entry.source, "pool", old) else {
            continue;
        };
        if name != old {
            run.pool_renames.insert(old.to_owned(), name.clone());
            run.warn(
                &entry.source,
                format!(
                    "Services that ask for pool {old:?} by annotation (address-pool) must ask \
                     for {name:?} now"
                ),
            );
        }
        let mut spec = Map::new();
        entry.copy(run, "addresses", "addresses", Type::StrList, &mut spec);
        entry.copy(run, "auto-assign", "autoAssign", Type::Bool, &mut spec);
        entry.copy(
            run,
            "avoid-buggy-ips",
            "avoidBuggyIPs",
            Type::Bool,
            &mut spec,
        );
        let doc = resource("metallb.io/v1beta1", Kind::IPAddressPool, &name, spec);
        resources::convert(
            run,
            Kind::IPAddressPool,
            "metallb.io/v1beta1",
            &entry.source,
            &doc,
        );

        let advertisements = entries(
            run,
            &entry.source,
            "bgp-advertisements",
            entry.map.get("bgp-advertisements"),
        );
        match entry.str("protocol") {
            Some("layer2") => {
                if !advertisements.is_empty() {
                    run.warn(
                        &entry.source,
                        "bgp-advertisements on a layer2 pool (MetalLB refused that); ignored",
                    );
                }
                let mut spec = Map::new();
                spec.insert("ipAddressPools".into(), json!([name]));
                let ad = format!("l2advertisement{l2_index}");
                l2_index += 1;
                let doc = resource("metallb.io/v1beta1", Kind::L2Advertisement, &ad, spec);
                resources::convert(
                    run,
                    Kind::L2Advertisement,
                    "metallb.io/v1beta1",
                    &entry.source,
                    &doc,
                );
            }
            Some("bgp") => {
                if advertisements.is_empty() {
                    let mut spec = Map::new();
                    spec.insert("ipAddressPools".into(), json!([name]));
                    let ad = format!("bgpadvertisement{bgp_index}");
                    bgp_index += 1;
                    let doc = resource("metallb.io/v1beta1", Kind::BGPAdvertisement, &ad, spec);
                    resources::convert(
                        run,
                        Kind::BGPAdvertisement,
                        "metallb.io/v1beta1",
                        &entry.source,
                        &doc,
                    );
                }
                for ad in advertisements {
                    let spec = bgp_advertisement(run, &ad, &name, substitutes);
                    let ad_name = format!("bgpadvertisement{bgp_index}");
                    bgp_index += 1;
                    let doc =
                        resource("metallb.io/v1beta1", Kind::BGPAdvertisement, &ad_name, spec);
                    resources::convert(
                        run,
                        Kind::BGPAdvertisement,
                        "metallb.io/v1beta1",
                        &ad.source,
                        &doc,
                    );
                }
            }
            other => {
                let what =
                    other.map_or_else(|| "no protocol".to_owned(), |p| format!("protocol {p:?}"));
                run.warn(
                    &entry.source,
                    format!(
                        "{what} (MetalLB accepted layer2 or bgp): no advertisement made, so its \
                         addresses are assigned but not announced; add an L2Advertisement or \
                         BGPAdvertisement for pool {name:?}"
                    ),
                );
            }
        }
    }
}

/// One `bgp-advertisements` entry of pool `pool`.
fn bgp_advertisement(
    run: &mut Run<'_>,
    entry: &Entry<'_>,
    pool: &str,
    substitutes: &BTreeMap<String, String>,
) -> Map<String, Value> {
    entry.check_keys(
        run,
        &[
            "aggregation-length",
            "aggregation-length-v6",
            "localpref",
            "communities",
        ],
    );
    let mut spec = Map::new();
    entry.copy(
        run,
        "aggregation-length",
        "aggregationLength",
        Type::U32,
        &mut spec,
    );
    entry.copy(
        run,
        "aggregation-length-v6",
        "aggregationLengthV6",
        Type::U32,
        &mut spec,
    );
    entry.copy(run, "localpref", "localPref", Type::U32, &mut spec);
    entry.copy(run, "communities", "communities", Type::StrList, &mut spec);
    if let Some(Value::Array(communities)) = spec.get_mut("communities") {
        for c in communities.iter_mut() {
            if let Some(value) = c.as_str().and_then(|alias| substitutes.get(alias)) {
                *c = json!(value);
            }
        }
    }
    spec.insert("ipAddressPools".into(), json!([pool]));
    spec
}
