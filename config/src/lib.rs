//! Turns a snapshot of every ferrolb object (plus Node and Namespace labels and the Secrets peers
//! refer to) into one validated, normalised [`Config`]: pools as typed address ranges,
//! advertisements and peers with their references and selectors resolved.
//!
//! Pure: values in, values out; no I/O, no Kubernetes client. Every problem is reported at once,
//! as a [`ConfigError`] naming the object, the field and the reason; a bad object never hides the
//! good ones. Objects with an error are left out of the `Config` and listed in
//! [`Outcome::errors`]; when two objects conflict (overlapping pools, two aliases of one name),
//! the one already in use (for pools: with unchanged addresses), else the older one (by creation
//! time, then name) keeps working and the other is refused.
//!
//! A component that serves the configuration over time keeps it in a [`Serving`]: an object
//! that turns invalid is then served in its last valid version until it is fixed or deleted.

mod advertisement;
mod error;
mod names;
mod peer;
mod pool;
mod range;
mod selector;
mod serving;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};

use ferrolb_api::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement, ObjectMeta,
};

pub use advertisement::{BgpAdvertisement, BgpCommunity, L2Advertisement as L2Ad};
pub use error::{ConfigError, ObjectKind, Severity};
pub use names::{NodeName, PeerName, PoolName};
pub use peer::{BfdProfile, GracefulShutdown, Peer, PeerAsn, PeerTarget, parse_go_duration};
pub use pool::{Pool, ServiceAllocation};
pub use range::{Family, IpRange, RangeError, to_u128};
pub use selector::{Labels, Selector, any_matches};
pub use serving::Serving;

/// A Secret a BGPPeer may refer to, reduced to what the config needs.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SecretInfo {
    /// The Secret's `type`.
    pub type_: String,
    /// The `password` key, if present and UTF-8.
    pub password: Option<String>,
}

/// Everything the configuration is made of, as read from the cluster (or from files).
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The namespace ferrolb reads its configuration from (Secrets must be in it).
    pub namespace: String,
    /// IPAddressPools.
    pub pools: Vec<IPAddressPool>,
    /// L2Advertisements.
    pub l2_advertisements: Vec<L2Advertisement>,
    /// BGPAdvertisements.
    pub bgp_advertisements: Vec<BGPAdvertisement>,
    /// BGPPeers.
    pub peers: Vec<BGPPeer>,
    /// BFDProfiles.
    pub bfd_profiles: Vec<BFDProfile>,
    /// Communities.
    pub communities: Vec<Community>,
    /// Secrets in ferrolb's namespace, by name.
    pub secrets: BTreeMap<String, SecretInfo>,
    /// Nodes and their labels.
    pub nodes: BTreeMap<NodeName, Labels>,
    /// Namespaces and their labels.
    pub namespaces: BTreeMap<String, Labels>,
    /// The pools in use before this snapshot, with their ranges. When two pools overlap, one
    /// that is in use with unchanged addresses wins over one that changed; otherwise the older
    /// wins (by creation time, then name).
    pub pools_in_use: BTreeMap<PoolName, Vec<IpRange>>,
}

/// The validated configuration: only the objects that are usable.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    /// Pools by name.
    pub pools: BTreeMap<PoolName, Pool>,
    /// L2Advertisements by name.
    pub l2_advertisements: BTreeMap<String, L2Ad>,
    /// BGPAdvertisements by name.
    pub bgp_advertisements: BTreeMap<String, BgpAdvertisement>,
    /// BGPPeers by name.
    pub peers: BTreeMap<PeerName, Peer>,
    /// BFDProfiles by name.
    pub bfd_profiles: BTreeMap<String, BfdProfile>,
    /// Community aliases, by alias name.
    pub communities: BTreeMap<String, BgpCommunity>,
}

/// The result of [`parse`]: the usable configuration and every problem found.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// The objects that can be used.
    pub config: Config,
    /// Every problem, sorted by kind, name and field.
    pub errors: Vec<ConfigError>,
}

impl Outcome {
    /// True when no object was refused (warnings allowed).
    pub fn is_valid(&self) -> bool {
        !self.errors.iter().any(ConfigError::disables_object)
    }

    /// The problems of one object.
    pub fn errors_for<'a>(
        &'a self,
        kind: ObjectKind,
        name: &'a str,
    ) -> impl Iterator<Item = &'a ConfigError> + 'a {
        self.errors
            .iter()
            .filter(move |e| e.kind == kind && e.name == name)
    }

    /// Whether the named object is in use.
    pub fn is_usable(&self, kind: ObjectKind, name: &str) -> bool {
        !self
            .errors_for(kind, name)
            .any(ConfigError::disables_object)
    }
}

/// Validates a snapshot into a configuration. Never fails as a whole: see [`Outcome`].
pub fn parse(snapshot: &Snapshot) -> Outcome {
    parse_keeping(snapshot, &Config::default(), &mut BTreeSet::new())
}

/// [`parse`], serving the `last` valid version of pools, peers and BFD profiles that are still
/// there but invalid now (before the objects that refer to them are parsed); each one kept is
/// added to `held_back`.
pub(crate) fn parse_keeping(
    snapshot: &Snapshot,
    last: &Config,
    held_back: &mut BTreeSet<(ObjectKind, String)>,
) -> Outcome {
    let mut errors = Vec::new();
    let mut config = Config {
        bfd_profiles: peer::parse_bfd_profiles(&snapshot.bfd_profiles, &mut errors),
        communities: advertisement::parse_communities(&snapshot.communities, &mut errors),
        ..Config::default()
    };
    serving::keep_bfd_profiles(snapshot, last, &mut config, held_back);
    config.pools = pool::parse_pools(snapshot, &mut errors);
    serving::keep_pools(snapshot, last, &mut config, held_back);
    config.peers = peer::parse_peers(snapshot, &config.bfd_profiles, &mut errors);
    serving::keep_peers(snapshot, last, &mut config, held_back);
    config.l2_advertisements = advertisement::parse_l2(snapshot, &config.pools, &mut errors);
    config.bgp_advertisements = advertisement::parse_bgp(snapshot, &config, &mut errors);
    errors.sort();
    errors.dedup();
    Outcome { config, errors }
}

/// Objects in the order that decides conflicts: oldest first, then by name.
pub(crate) fn by_age<T>(objects: &[T], meta: impl Fn(&T) -> &ObjectMeta) -> Vec<&T> {
    let mut sorted: Vec<&T> = objects.iter().collect();
    sorted.sort_by(|a, b| {
        let (a, b) = (meta(a), meta(b));
        (&a.creation_timestamp, &a.name).cmp(&(&b.creation_timestamp, &b.name))
    });
    sorted
}

/// An object's name ("" when it has none, which the apiserver never allows).
pub(crate) fn name_of(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

/// Refuses the second and later objects of one kind that share a name (possible only when a
/// snapshot is assembled from several sources, e.g. files).
pub(crate) fn first_of_each_name<'a, T>(
    kind: ObjectKind,
    objects: Vec<&'a T>,
    meta: impl Fn(&T) -> &ObjectMeta,
    errors: &mut Vec<ConfigError>,
) -> Vec<&'a T> {
    let mut seen = BTreeSet::new();
    objects
        .into_iter()
        .filter(|o| {
            let name = name_of(meta(o));
            let first = seen.insert(name.to_owned());
            if !first {
                errors.push(ConfigError::new(
                    kind,
                    name,
                    "metadata.name",
                    format!("duplicate {kind} name {name:?}"),
                ));
            }
            first
        })
        .collect()
}
