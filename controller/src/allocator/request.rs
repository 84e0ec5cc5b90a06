//! What a Service asks of the allocator, in plain values (no Kubernetes types), and why a
//! request can fail.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use ferrolb_config::{Family, Labels, PoolName};

/// A Service's identity: `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ServiceKey {
    /// `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A transport protocol of a Service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP
    Tcp,
    /// UDP
    Udp,
    /// SCTP
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        })
    }
}

/// A (protocol, port) a Service listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    /// Protocol.
    pub protocol: Protocol,
    /// Port number.
    pub port: u16,
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.protocol, self.port)
    }
}

/// How many families a Service wants (`spec.ipFamilyPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FamilyPolicy {
    /// One IP, of the primary family.
    #[default]
    SingleStack,
    /// Both families if one pool can give both; else the primary family, adding the other later.
    PreferDualStack,
    /// Both families, from one pool, or nothing.
    RequireDualStack,
}

/// Everything the allocator needs to know about a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRequest {
    /// The Service.
    pub key: ServiceKey,
    /// Its labels (pools select Services by them).
    pub labels: Labels,
    /// Families of its cluster IPs, primary first; empty when it has no cluster IP.
    pub families: Vec<Family>,
    /// Its family policy.
    pub policy: FamilyPolicy,
    /// Specific IPs asked for (annotation or `spec.loadBalancerIP`).
    pub requested_ips: Vec<IpAddr>,
    /// A pool asked for by name.
    pub pool: Option<PoolName>,
    /// The sharing key (`allow-shared-ip`); empty means "do not share".
    pub sharing_key: String,
    /// Services share an IP only with the same backend key: the selector for
    /// `externalTrafficPolicy: Local`, empty otherwise.
    pub backend_key: String,
    /// Its ports.
    pub ports: BTreeSet<Port>,
}

impl ServiceRequest {
    /// A single-stack IPv4 Service with no ports, for tests and tools.
    pub fn new(key: ServiceKey) -> Self {
        Self {
            key,
            labels: Labels::new(),
            families: vec![Family::V4],
            policy: FamilyPolicy::SingleStack,
            requested_ips: Vec::new(),
            pool: None,
            sharing_key: String::new(),
            backend_key: String::new(),
            ports: BTreeSet::new(),
        }
    }

    /// The families this Service must get (all of them), given its policy.
    pub fn wanted_families(&self) -> Vec<Family> {
        match self.policy {
            FamilyPolicy::SingleStack => self.families.iter().take(1).copied().collect(),
            FamilyPolicy::PreferDualStack | FamilyPolicy::RequireDualStack => self.families.clone(),
        }
    }
}

/// `a, b, c`: values as users write them, for messages.
pub(crate) fn list<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why two Services cannot share an IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SharingConflict {
    /// One of them has no sharing key, or the keys differ.
    Key,
    /// Their backend keys (eTP Local selectors) differ.
    Backend,
    /// Both use this port.
    Port(Port),
    /// They are in different namespaces, and the pool is not fenced to both.
    Namespace,
}

/// Why an allocation failed. Each says what to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// There is no usable pool at all.
    #[error("no IPAddressPool is configured: create one in ferrolb's namespace")]
    NoPools,
    /// The Service has no cluster IP, so its family is unknown.
    #[error("the Service has no cluster IP (a headless Service cannot get a load-balancer IP)")]
    NoClusterIp,
    /// RequireDualStack with one cluster IP.
    #[error("RequireDualStack needs two cluster IPs, the Service has {0}")]
    NotEnoughClusterIps(usize),
    /// The named pool does not exist.
    #[error("unknown pool {0}: fix the address-pool annotation or create the pool")]
    UnknownPool(PoolName),
    /// The named pool was deleted; its holders keep their IPs for a grace period.
    #[error("pool {0} was deleted; it gives no IPs until it is created again")]
    PoolDeleted(PoolName),
    /// The pool's serviceAllocation excludes the Service.
    #[error("pool {pool} does not allow Services in namespace {namespace} with these labels")]
    PoolNotAllowed {
        /// the pool
        pool: PoolName,
        /// the Service's namespace
        namespace: String,
    },
    /// A requested IP is in no pool.
    #[error("{0} is not in any IPAddressPool")]
    NotInAnyPool(IpAddr),
    /// Requested IPs from two pools.
    #[error("the requested IPs {0} and {1} are in different pools")]
    DifferentPools(IpAddr, IpAddr),
    /// A requested IP is not in the requested pool.
    #[error("{ip} is not in the requested pool {pool}")]
    NotInRequestedPool {
        /// the IP
        ip: IpAddr,
        /// the pool
        pool: PoolName,
    },
    /// Requested IPs that do not fit the Service's families.
    #[error("requested IPs {} do not match the Service's IP families ({})", list(.ips), list(.families))]
    FamilyMismatch {
        /// requested
        ips: Vec<IpAddr>,
        /// the Service's
        families: Vec<Family>,
    },
    /// A buggy (.0/.255) IP requested from a pool that avoids them.
    #[error("{ip} ends in .0 or .255, which pool {pool} avoids")]
    BuggyIp {
        /// the IP
        ip: IpAddr,
        /// the pool
        pool: PoolName,
    },
    /// The IP is held by another Service that it cannot be shared with.
    #[error("{ip} is used by {other}: {}", match .why {
        SharingConflict::Key => "they do not have the same allow-shared-ip key".to_string(),
        SharingConflict::Backend => "they have different externalTrafficPolicy Local selectors".to_string(),
        SharingConflict::Port(p) => format!("both use port {p}"),
        SharingConflict::Namespace => "it is in another namespace, and a sharing key crosses namespaces only in a pool fenced to both".to_string(),
    })]
    Conflict {
        /// the IP
        ip: IpAddr,
        /// who holds it
        other: ServiceKey,
        /// why it cannot be shared
        why: SharingConflict,
    },
    /// No pool that may serve the Service has a free address of the needed families.
    #[error("no available IPs{}", if .tried.is_empty() { ": no pool with autoAssign allows this Service".to_string() } else { format!(" in pools {}: add addresses to one of them, or free some", list(.tried)) })]
    Exhausted {
        /// the pools that were tried
        tried: Vec<PoolName>,
    },
}

impl AllocError {
    /// Every [`AllocError::reason`], and `NotAssigned` (no IP and no error said why).
    pub const REASONS: [&'static str; 14] = [
        "NoPools",
        "NoClusterIP",
        "NotEnoughClusterIPs",
        "UnknownPool",
        "PoolDeleted",
        "PoolNotAllowed",
        "NotInAnyPool",
        "DifferentPools",
        "NotInRequestedPool",
        "FamilyMismatch",
        "BuggyIP",
        "SharingConflict",
        "PoolExhausted",
        "NotAssigned",
    ];

    /// A short name of the kind of failure (the `reason` label of
    /// `ferrolb_controller_services_pending`): one per variant, a bounded set.
    pub fn reason(&self) -> &'static str {
        match self {
            AllocError::NoPools => "NoPools",
            AllocError::NoClusterIp => "NoClusterIP",
            AllocError::NotEnoughClusterIps(_) => "NotEnoughClusterIPs",
            AllocError::UnknownPool(_) => "UnknownPool",
            AllocError::PoolDeleted(_) => "PoolDeleted",
            AllocError::PoolNotAllowed { .. } => "PoolNotAllowed",
            AllocError::NotInAnyPool(_) => "NotInAnyPool",
            AllocError::DifferentPools(..) => "DifferentPools",
            AllocError::NotInRequestedPool { .. } => "NotInRequestedPool",
            AllocError::FamilyMismatch { .. } => "FamilyMismatch",
            AllocError::BuggyIp { .. } => "BuggyIP",
            AllocError::Conflict { .. } => "SharingConflict",
            AllocError::Exhausted { .. } => "PoolExhausted",
        }
    }
}
