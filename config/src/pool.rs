//! IPAddressPools: typed ranges, allocation rules, and the rule that no two pools overlap.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_api::IPAddressPool;
use ipnet::IpNet;

use crate::error::{ConfigError, ObjectKind, Problems};
use crate::range::{Family, IpRange};
use crate::selector::{Labels, Selector, any_matches, parse_list};
use crate::{PoolName, Snapshot, by_age, first_of_each_name, name_of};

/// A usable pool.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    /// The pool's name.
    pub name: PoolName,
    /// Its address ranges, in the order written (allocation walks them in this order).
    pub ranges: Vec<IpRange>,
    /// May the controller pick from it for Services that did not ask for it?
    pub auto_assign: bool,
    /// Skip IPv4 addresses ending in .0 and .255.
    pub avoid_buggy_ips: bool,
    /// Which Services it serves and its priority; `None` serves everyone as a fallback.
    pub allocation: Option<ServiceAllocation>,
    /// The pool's labels (advertisements select pools by them).
    pub labels: Labels,
}

/// A pool's `serviceAllocation`, with namespace selectors resolved against the Namespaces.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceAllocation {
    /// Lower first; 0 means "after every pool with a priority".
    pub priority: u32,
    /// `Some`: only Services in these namespaces (`namespaces` plus the namespaces
    /// `namespaceSelectors` match). `None`: any namespace.
    pub namespaces: Option<BTreeSet<String>>,
    /// Services must match one of these (empty: any Service).
    pub service_selectors: Vec<Selector>,
}

impl Pool {
    /// Whether `ip` is one of the pool's addresses.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }

    /// The families the pool has addresses of.
    pub fn families(&self) -> BTreeSet<Family> {
        self.ranges.iter().map(IpRange::family).collect()
    }

    /// Number of addresses of `family`, saturating.
    pub fn size(&self, family: Family) -> u128 {
        self.ranges
            .iter()
            .filter(|r| r.family() == family)
            .fold(0u128, |n, r| n.saturating_add(r.len()))
    }

    /// The CIDRs that make up the pool (ranges summarised).
    pub fn cidrs(&self) -> Vec<IpNet> {
        self.ranges.iter().flat_map(IpRange::cidrs).collect()
    }

    /// Whether a Service in `namespace` with `labels` may get addresses from this pool
    /// (MetalLB's "compatible"): its namespace is allowed and one service selector matches.
    pub fn allows(&self, namespace: &str, labels: &Labels) -> bool {
        match &self.allocation {
            None => true,
            Some(a) => {
                a.namespaces
                    .as_ref()
                    .is_none_or(|ns| ns.contains(namespace))
                    && any_matches(&a.service_selectors, labels)
            }
        }
    }
}

/// Disjoint accepted ranges of one family, keyed by start, with their pool.
type RangeIndex = BTreeMap<IpAddr, (IpAddr, PoolName)>;

/// The accepted range that overlaps `r`, if any. Accepted ranges are disjoint, so only the one
/// with the greatest start at or below `r`'s end can overlap.
fn overlapping<'a>(index: &'a RangeIndex, r: &IpRange) -> Option<(IpRange, &'a PoolName)> {
    let (start, (end, pool)) = index.range(..=r.end()).next_back()?;
    if *end < r.start() {
        return None;
    }
    Some((IpRange::new(*start, *end).ok()?, pool))
}

pub(crate) fn parse_pools(
    snapshot: &Snapshot,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<PoolName, Pool> {
    let kind = ObjectKind::IPAddressPool;
    let ordered = by_age(&snapshot.pools, |p| &p.metadata);
    let unique = first_of_each_name(kind, ordered, |p| &p.metadata, errors);

    // A pool that is in use with exactly these addresses goes first, so an edit that makes
    // another pool overlap it is refused on the edited pool, not on the one already serving.
    let mut parsed: Vec<(Pool, Problems<'_>)> = unique
        .into_iter()
        .map(|object| {
            let mut problems = Problems::new(kind, name_of(&object.metadata));
            let pool = parse_pool(object, snapshot, &mut problems);
            (pool, problems)
        })
        .collect();
    parsed.sort_by_key(|(pool, _)| snapshot.pools_in_use.get(&pool.name) != Some(&pool.ranges));

    let mut index: BTreeMap<Family, RangeIndex> = BTreeMap::new();
    let mut pools = BTreeMap::new();
    for (pool, mut problems) in parsed {
        // Overlaps, with the pool's own entries and with every older pool.
        let mut own: BTreeMap<Family, RangeIndex> = BTreeMap::new();
        for (i, r) in pool.ranges.iter().enumerate() {
            let field = format!("spec.addresses[{i}]");
            let family = r.family();
            if let Some((other, owner)) = index.get(&family).and_then(|ix| overlapping(ix, r)) {
                problems.error(
                    field,
                    format!("{r} overlaps {other} of IPAddressPool {:?}; an address may belong to one pool only", owner.as_str()),
                );
            } else if let Some((other, _)) = own.get(&family).and_then(|ix| overlapping(ix, r)) {
                problems.error(
                    field,
                    format!("{r} overlaps {other}, an earlier entry of this pool"),
                );
            } else {
                own.entry(family)
                    .or_default()
                    .insert(r.start(), (r.end(), pool.name.clone()));
            }
        }

        if problems.usable() {
            for (family, ranges) in own {
                index.entry(family).or_default().extend(ranges);
            }
            pools.insert(pool.name.clone(), pool);
        }
        errors.append(&mut problems.list);
    }
    pools
}

fn parse_pool(object: &IPAddressPool, snapshot: &Snapshot, problems: &mut Problems<'_>) -> Pool {
    let spec = &object.spec;
    if spec.addresses.is_empty() {
        problems.error("spec.addresses", "the pool has no addresses");
    }
    let mut ranges = Vec::new();
    for (i, entry) in spec.addresses.iter().enumerate() {
        match IpRange::parse_entry(&entry.0) {
            Ok(r) => ranges.push(r),
            Err(e) => problems.error(format!("spec.addresses[{i}]"), e.to_string()),
        }
    }

    let allocation = spec.service_allocation.as_ref().map(|a| {
        let priority = match a.priority {
            Some(p) if p < 0 => {
                problems.error(
                    "spec.serviceAllocation.priority",
                    "priority must not be negative",
                );
                0
            }
            Some(p) => p.unsigned_abs(),
            None => 0,
        };
        let mut explicit = BTreeSet::new();
        for (i, ns) in a.namespaces.iter().enumerate() {
            if !explicit.insert(ns.clone()) {
                problems.error(
                    format!("spec.serviceAllocation.namespaces[{i}]"),
                    format!("duplicate namespace {ns:?}"),
                );
            }
        }
        let ns_selectors = parse_list(
            &a.namespace_selectors,
            "spec.serviceAllocation.namespaceSelectors",
            problems,
        );
        let service_selectors = parse_list(
            &a.service_selectors,
            "spec.serviceAllocation.serviceSelectors",
            problems,
        );
        let restricted = !a.namespaces.is_empty() || !a.namespace_selectors.is_empty();
        let namespaces = restricted.then(|| {
            let selected = snapshot
                .namespaces
                .iter()
                .filter(|(_, labels)| ns_selectors.iter().any(|s| s.matches(labels)))
                .map(|(name, _)| name.clone());
            explicit.iter().cloned().chain(selected).collect()
        });
        ServiceAllocation {
            priority,
            namespaces,
            service_selectors,
        }
    });

    Pool {
        name: PoolName::from(name_of(&object.metadata)),
        ranges,
        auto_assign: spec.auto_assign,
        avoid_buggy_ips: spec.avoid_buggy_ips,
        allocation,
        labels: object.metadata.labels.clone().unwrap_or_default(),
    }
}
