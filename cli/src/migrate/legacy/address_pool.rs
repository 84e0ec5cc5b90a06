//! MetalLB 0.13's `AddressPool` (`metallb.io/v1beta1`, removed in 0.14): a pool carrying its
//! protocol and BGP advertisements, converted as MetalLB 0.13 read it — an IPAddressPool, plus
//! an L2Advertisement for a `layer2` pool, or one BGPAdvertisement per `bgpAdvertisements` entry
//! for a `bgp` pool (one without options if it has none). The advertisements are named after
//! the pool (`NAME`, then `NAME-2`, …).

use serde_json::{Map, Value, json};

use super::entry::{Entry, Type, entries, resource};
use crate::migrate::{Kind, Run, resources};

pub(in crate::migrate) fn convert(run: &mut Run<'_>, source: &str, doc: &Map<String, Value>) {
    let Some(name) = doc
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        run.warn(source, "has no metadata.name; skipped");
        return;
    };
    let Some(spec) = doc.get("spec").and_then(Value::as_object) else {
        run.warn(source, "has no spec; skipped");
        return;
    };
    let entry = Entry {
        map: spec,
        source: source.to_owned(),
    };
    entry.check_keys(
        run,
        &[
            "protocol",
            "addresses",
            "autoAssign",
            "avoidBuggyIPs",
            "bgpAdvertisements",
        ],
    );
    let mut pool_spec = Map::new();
    entry.copy(run, "addresses", "addresses", Type::StrList, &mut pool_spec);
    entry.copy(run, "autoAssign", "autoAssign", Type::Bool, &mut pool_spec);
    entry.copy(
        run,
        "avoidBuggyIPs",
        "avoidBuggyIPs",
        Type::Bool,
        &mut pool_spec,
    );
    // The pool keeps the AddressPool's metadata (labels select pools).
    let mut pool = doc.clone();
    pool.insert("apiVersion".into(), json!("metallb.io/v1beta1"));
    pool.insert("kind".into(), json!("IPAddressPool"));
    pool.insert("spec".into(), Value::Object(pool_spec));
    resources::convert(
        run,
        Kind::IPAddressPool,
        "metallb.io/v1beta1",
        source,
        &pool,
    );

    let ads = entries(
        run,
        source,
        "spec.bgpAdvertisements",
        spec.get("bgpAdvertisements"),
    );
    let ad_name = |i: usize| match i {
        0 => name.to_owned(),
        i => format!("{name}-{}", i + 1),
    };
    let made = match entry.str("protocol") {
        Some("layer2") => {
            if !ads.is_empty() {
                run.warn(
                    source,
                    "bgpAdvertisements on a layer2 pool (MetalLB refused that); ignored",
                );
            }
            let mut spec = Map::new();
            spec.insert("ipAddressPools".into(), json!([name]));
            let doc = resource("metallb.io/v1beta1", Kind::L2Advertisement, name, spec);
            resources::convert(
                run,
                Kind::L2Advertisement,
                "metallb.io/v1beta1",
                source,
                &doc,
            );
            format!("L2Advertisement {name:?}")
        }
        Some("bgp") if ads.is_empty() => {
            let mut spec = Map::new();
            spec.insert("ipAddressPools".into(), json!([name]));
            let doc = resource("metallb.io/v1beta1", Kind::BGPAdvertisement, name, spec);
            resources::convert(
                run,
                Kind::BGPAdvertisement,
                "metallb.io/v1beta1",
                source,
                &doc,
            );
            format!("BGPAdvertisement {name:?}")
        }
        Some("bgp") => {
            let count = ads.len();
            for (i, ad) in ads.into_iter().enumerate() {
                ad.check_keys(
                    run,
                    &[
                        "aggregationLength",
                        "aggregationLengthV6",
                        "localPref",
                        "communities",
                    ],
                );
                let mut spec = Map::new();
                for (key, ty) in [
                    ("aggregationLength", Type::U32),
                    ("aggregationLengthV6", Type::U32),
                    ("localPref", Type::U32),
                    ("communities", Type::StrList),
                ] {
                    ad.copy(run, key, key, ty, &mut spec);
                }
                spec.insert("ipAddressPools".into(), json!([name]));
                let doc = resource(
                    "metallb.io/v1beta1",
                    Kind::BGPAdvertisement,
                    &ad_name(i),
                    spec,
                );
                resources::convert(
                    run,
                    Kind::BGPAdvertisement,
                    "metallb.io/v1beta1",
                    &ad.source,
                    &doc,
                );
            }
            match count {
                1 => format!("BGPAdvertisement {name:?}"),
                n => format!("BGPAdvertisements {name:?} to {:?}", ad_name(n - 1)),
            }
        }
        other => {
            let what =
                other.map_or_else(|| "no protocol".to_owned(), |p| format!("protocol {p:?}"));
            run.warn(
                source,
                format!(
                    "{what} (MetalLB accepted layer2 or bgp): no advertisement made, so its \
                     addresses are assigned but not announced"
                ),
            );
            return;
        }
    };
    run.warn(
        source,
        format!(
            "AddressPool is MetalLB 0.13's kind (removed in 0.14): converted to IPAddressPool \
             {name:?} and {made}, as MetalLB 0.13 read it"
        ),
    );
}
