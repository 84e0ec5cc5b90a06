//! Each router's own view of its routes, read into one [`Route`] shape: GoBGP's and FRR's
//! JSON, BIRD's text.

use std::collections::BTreeSet;
use std::net::IpAddr;

use anyhow::Context as _;
use ipnet::IpNet;

use super::Route;

/// Parses `gobgp global rib -a <family> -j`: `{"<prefix>": [path, …]}`, each path with `attrs`
/// typed by attribute code.
pub fn parse_gobgp_rib(json: &str) -> anyhow::Result<Vec<Route>> {
    let v: serde_json::Value =
        serde_json::from_str(json).with_context(|| format!("parsing {json}"))?;
    let mut routes = Vec::new();
    let Some(prefixes) = v.as_object() else {
        return Ok(routes);
    };
    for (prefix, paths) in prefixes {
        let prefix: IpNet = prefix.parse().with_context(|| format!("prefix {prefix}"))?;
        for path in paths.as_array().into_iter().flatten() {
            let mut route = Route {
                prefix,
                next_hop: IpAddr::from([0, 0, 0, 0]),
                local_pref: None,
                communities: BTreeSet::new(),
                large_communities: BTreeSet::new(),
                as_path: Vec::new(),
                best: path["best"].as_bool().unwrap_or(false),
            };
            for attr in path["attrs"].as_array().into_iter().flatten() {
                match attr["type"].as_u64() {
                    Some(2) => {
                        for segment in attr["as_paths"].as_array().into_iter().flatten() {
                            route.as_path.extend(
                                segment["asns"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .filter_map(|a| a.as_u64())
                                    .filter_map(|a| u32::try_from(a).ok()),
                            );
                        }
                    }
                    Some(3) | Some(14) => {
                        if let Some(nh) = attr["nexthop"].as_str().and_then(|s| s.parse().ok()) {
                            route.next_hop = nh;
                        }
                    }
                    Some(5) => {
                        route.local_pref =
                            attr["value"].as_u64().and_then(|v| u32::try_from(v).ok())
                    }
                    Some(8) => {
                        for c in attr["communities"].as_array().into_iter().flatten() {
                            if let Some(c) = c.as_u64() {
                                route
                                    .communities
                                    .insert(format!("{}:{}", c >> 16, c & 0xffff));
                            }
                        }
                    }
                    Some(32) => {
                        for c in attr["value"].as_array().into_iter().flatten() {
                            // GoBGP 3 writes {"ASN":…,"LocalData1":…,"LocalData2":…}.
                            let field = |name: &str| c[name].as_u64().unwrap_or(0);
                            route.large_communities.insert(format!(
                                "{}:{}:{}",
                                field("ASN"),
                                field("LocalData1"),
                                field("LocalData2")
                            ));
                        }
                    }
                    _ => {}
                }
            }
            routes.push(route);
        }
    }
    Ok(routes)
}

/// Parses `vtysh -c 'show bgp <family> unicast <prefix> json'`.
pub fn parse_frr_prefix(prefix: &str, json: &str) -> anyhow::Result<Vec<Route>> {
    let v: serde_json::Value =
        serde_json::from_str(json).with_context(|| format!("parsing {json}"))?;
    let prefix: IpNet = prefix.parse().with_context(|| format!("prefix {prefix}"))?;
    let mut routes = Vec::new();
    for path in v["paths"].as_array().into_iter().flatten() {
        let hops: Vec<IpAddr> = path["nexthops"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["ip"].as_str()?.parse().ok())
            .collect();
        // The global next hop; on an unnumbered link the link-local one is all there is.
        let next_hop = hops
            .iter()
            .find(|ip| match ip {
                IpAddr::V6(v6) => !v6.is_unicast_link_local(),
                IpAddr::V4(_) => true,
            })
            .or(hops.first())
            .copied()
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let words = |field: &str| -> BTreeSet<String> {
            path[field]["string"]
                .as_str()
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        };
        routes.push(Route {
            prefix,
            next_hop,
            local_pref: path["locPrf"].as_u64().and_then(|v| u32::try_from(v).ok()),
            communities: words("community")
                .into_iter()
                .map(|c| frr_well_known(&c).map_or(c, str::to_owned))
                .collect(),
            large_communities: words("largeCommunity"),
            as_path: path["aspath"]["string"]
                .as_str()
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|a| a.parse().ok())
                .collect(),
            best: path["bestpath"]["overall"].as_bool().unwrap_or(false)
                || path["multipath"].as_bool().unwrap_or(false),
        });
    }
    Ok(routes)
}

/// The number of a well-known community FRR shows by name (its `community.string`).
fn frr_well_known(name: &str) -> Option<&'static str> {
    Some(match name {
        "graceful-shutdown" => "65535:0",
        "llgr-stale" => "65535:6",
        "no-llgr" => "65535:7",
        "blackhole" => "65535:666",
        "no-export" => "65535:65281",
        "no-advertise" => "65535:65282",
        "local-AS" => "65535:65283",
        "no-peer" => "65535:65284",
        _ => return None,
    })
}

/// Parses `birdc show route all` (BIRD has no JSON): a route line starts with the prefix (or,
/// for further paths of the same prefix, with spaces), `via <nh>` names the next hop and
/// `BGP.*` lines carry the attributes.
pub fn parse_bird_routes(text: &str) -> anyhow::Result<Vec<Route>> {
    let mut routes: Vec<Route> = Vec::new();
    let mut prefix: Option<IpNet> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        let first = line.split_whitespace().next().unwrap_or_default();
        if !line.starts_with(char::is_whitespace)
            && let Ok(p) = first.parse::<IpNet>()
        {
            prefix = Some(p);
            routes.push(new_route(p));
        } else if line.starts_with(char::is_whitespace)
            && trimmed.starts_with("unicast [")
            && let Some(p) = prefix
        {
            // Another path of the same prefix.
            routes.push(new_route(p));
        }
        let Some(route) = routes.last_mut() else {
            continue;
        };
        // `<prefix> unicast [proto time] * (pref) …`: the star marks the primary path.
        if let Some((_, after)) = line.split_once("unicast [")
            && let Some((_, tail)) = after.split_once(']')
            && tail.trim_start().starts_with('*')
        {
            route.best = true;
        }
        if let Some(rest) = trimmed.strip_prefix("via ") {
            if let Some(nh) = rest.split_whitespace().next().and_then(|s| s.parse().ok()) {
                route.next_hop = nh;
            }
        } else if let Some(rest) = trimmed.strip_prefix("BGP.next_hop:") {
            if route.next_hop.is_unspecified()
                && let Some(nh) = rest.split_whitespace().next().and_then(|s| s.parse().ok())
            {
                route.next_hop = nh;
            }
        } else if let Some(rest) = trimmed.strip_prefix("BGP.local_pref:") {
            route.local_pref = rest.trim().parse().ok();
        } else if let Some(rest) = trimmed.strip_prefix("BGP.as_path:") {
            route.as_path = rest
                .split_whitespace()
                .filter_map(|a| a.parse().ok())
                .collect();
        } else if let Some(rest) = trimmed.strip_prefix("BGP.community:") {
            route.communities = tuples(rest);
        } else if let Some(rest) = trimmed.strip_prefix("BGP.large_community:") {
            route.large_communities = tuples(rest);
        }
    }
    Ok(routes)
}

fn new_route(prefix: IpNet) -> Route {
    Route {
        prefix,
        next_hop: IpAddr::from([0, 0, 0, 0]),
        local_pref: None,
        communities: BTreeSet::new(),
        large_communities: BTreeSet::new(),
        as_path: Vec::new(),
        best: false,
    }
}

/// `(65000,100) (1,2)` or `(4200000001, 1, 2)` → `{"65000:100", "1:2"}`.
fn tuples(text: &str) -> BTreeSet<String> {
    text.split(')')
        .filter_map(|t| t.trim().strip_prefix('('))
        .map(|t| t.split(',').map(str::trim).collect::<Vec<_>>().join(":"))
        .collect()
}
