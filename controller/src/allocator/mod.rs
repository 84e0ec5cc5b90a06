//! The allocator: which LoadBalancer IPs each Service holds. Pure (no Kubernetes, no tokio);
//! the controller's kube edge feeds it requests and writes its answers to Service status.
//!
//! Invariants, checked by property tests: an IP is held only by Services that may share it
//! (same non-empty sharing key, same backend key, no common port); every held IP lies in a pool
//! that allows its Service (or that the Service asked for); per-pool counters equal the
//! allocations; rebuilding from the current assignments reproduces them exactly.
//!
//! Cost: allocating and releasing are O(log n) in the number of allocations, whatever the pool
//! size — pools are never enumerated, used addresses are kept as merged runs ([`runs`]). Within a
//! pool the search goes upward from the address handed out last and wraps around to the lowest,
//! so a released IP is not handed to the next Service at once (with MetalLB's lowest-free-first,
//! clients that cached the old IP reach the wrong Service).

mod converge;
mod request;
mod runs;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrolb_config::{Family, IpRange, Pool, PoolName, to_u128};

pub use converge::{Converged, Note};
pub use request::{
    AllocError, FamilyPolicy, Port, Protocol, ServiceKey, ServiceRequest, SharingConflict,
};
use runs::{Runs, buggy_count};

/// The IPs a Service holds and the pool they come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The pool.
    pub pool: PoolName,
    /// One IP per family, primary family first.
    pub ips: Vec<IpAddr>,
}

/// Who uses one IP.
#[derive(Clone, Debug, PartialEq, Eq)]
struct IpUse {
    sharing_key: String,
    backend_key: String,
    users: BTreeMap<ServiceKey, BTreeSet<Port>>,
}

/// Usage of one pool, for its status and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PoolUsage {
    /// Distinct IPv4 addresses in use.
    pub assigned_v4: u128,
    /// Distinct IPv6 addresses in use.
    pub assigned_v6: u128,
    /// IPv4 addresses still free (buggy ones excluded when avoided).
    pub available_v4: u128,
    /// IPv6 addresses still free.
    pub available_v6: u128,
    /// Where the next IPv4 search starts, once one address was handed out.
    pub next_v4: Option<IpAddr>,
    /// Where the next IPv6 search starts, once one address was handed out.
    pub next_v6: Option<IpAddr>,
}

#[derive(Clone, Debug)]
struct PoolState {
    pool: Pool,
    used: [Runs; 2],
    assigned: [u128; 2],
    /// Where the next search starts, per family.
    cursor: [Option<u128>; 2],
}

fn slot(f: Family) -> usize {
    match f {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

fn from_u128(n: u128, family: Family) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX))),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

impl PoolState {
    fn new(pool: Pool) -> Self {
        let buggy = pool.avoid_buggy_ips;
        Self {
            pool,
            used: [Runs::new(buggy), Runs::new(false)],
            assigned: [0, 0],
            cursor: [None, None],
        }
    }

    fn is_buggy(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() && self.used[0].is_buggy(to_u128(ip))
    }

    fn ranges(&self, family: Family) -> impl Iterator<Item = &IpRange> {
        self.pool
            .ranges
            .iter()
            .filter(move |r| r.family() == family)
    }

    /// The first free address of `family` at or above the cursor, wrapping around to the
    /// lowest. O(r + log n) for r ranges.
    fn find_free(&self, family: Family) -> Option<IpAddr> {
        let runs = &self.used[slot(family)];
        let mut ranges: Vec<(u128, u128)> = self
            .ranges(family)
            .map(|r| (to_u128(r.start()), to_u128(r.end())))
            .collect();
        ranges.sort_unstable();
        let c = self.cursor[slot(family)].unwrap_or(0);
        let at_or_after = ranges
            .iter()
            .filter(|&&(_, hi)| hi >= c)
            .map(|&(lo, hi)| (lo.max(c), hi));
        let before = ranges
            .iter()
            .filter(|&&(lo, _)| lo < c)
            .map(|&(lo, hi)| (lo, hi.min(c - 1)));
        at_or_after
            .chain(before)
            .find_map(|(lo, hi)| runs.first_free(lo, hi))
            .map(|n| from_u128(n, family))
    }

    fn mark(&mut self, ip: IpAddr) {
        let f = Family::of(&ip);
        let n = to_u128(ip);
        self.used[slot(f)].insert(n);
        self.assigned[slot(f)] += 1;
        self.cursor[slot(f)] = Some(n.saturating_add(1));
    }

    fn unmark(&mut self, ip: IpAddr) {
        let f = Family::of(&ip);
        self.used[slot(f)].remove(to_u128(ip));
        self.assigned[slot(f)] -= 1;
    }

    fn usage(&self) -> PoolUsage {
        let capacity = |f: Family| {
            self.ranges(f).fold(0u128, |total, r| {
                let buggy = if f == Family::V4 && self.pool.avoid_buggy_ips {
                    buggy_count(to_u128(r.start()), to_u128(r.end()))
                } else {
                    0
                };
                total.saturating_add(r.len() - buggy)
            })
        };
        PoolUsage {
            assigned_v4: self.assigned[0],
            assigned_v6: self.assigned[1],
            available_v4: capacity(Family::V4).saturating_sub(self.assigned[0]),
            available_v6: capacity(Family::V6).saturating_sub(self.assigned[1]),
            next_v4: self.cursor[0].map(|n| from_u128(n, Family::V4)),
            next_v6: self.cursor[1].map(|n| from_u128(n, Family::V6)),
        }
    }
}

/// In-memory allocation state: pools, who holds which IP, what each Service holds.
#[derive(Clone, Debug, Default)]
pub struct Allocator {
    pools: BTreeMap<PoolName, PoolState>,
    ips: BTreeMap<IpAddr, IpUse>,
    services: BTreeMap<ServiceKey, (Assignment, ServiceRequest)>,
    /// Pools that were deleted but whose holders keep their IPs for a while (in case the pool
    /// comes back): they give nothing to anyone else.
    closed: BTreeSet<PoolName>,
}

impl Allocator {
    /// An allocator over `pools` holding nothing.
    pub fn new(pools: impl IntoIterator<Item = Pool>) -> Self {
        Self {
            pools: pools
                .into_iter()
                .map(|p| (p.name.clone(), PoolState::new(p)))
                .collect(),
            ..Self::default()
        }
    }

    /// Replaces the pools. Every allocation follows the pool that now contains its IPs; those
    /// no longer allowed there (outside every pool, on an avoided .0/.255, in a pool that does
    /// not admit the Service or is not the one it named) are released and returned, so the
    /// caller can re-examine those Services.
    pub fn set_pools(&mut self, pools: impl IntoIterator<Item = Pool>) -> Vec<ServiceKey> {
        let old = std::mem::replace(self, Self::new(pools));
        let mut released = Vec::new();
        for (key, (assignment, request)) in old.services {
            if self.assign(&request, &assignment.ips).is_err() {
                released.push(key);
            }
        }
        // Where each pool's next search starts is kept: re-registering the holders (in key
        // order) must not bring a just-released address to the front.
        for (name, state) in &mut self.pools {
            if let Some(before) = old.pools.get(name) {
                state.cursor = before.cursor;
            }
        }
        released
    }

    /// Makes `pool`'s next search of `next`'s family start at `next` (a restarted controller
    /// resuming from the pool's status).
    pub fn resume_at(&mut self, pool: &PoolName, next: IpAddr) {
        if let Some(state) = self.pools.get_mut(pool) {
            state.cursor[slot(Family::of(&next))] = Some(to_u128(next));
        }
    }

    /// Marks `pools` as deleted (and every other pool as present): their holders keep their
    /// IPs, nobody else gets any of theirs. [`Allocator::set_pools`] reopens every pool.
    pub fn set_closed(&mut self, pools: BTreeSet<PoolName>) {
        self.closed = pools;
    }

    /// Whether `pool` was deleted and is only kept for its holders.
    pub fn is_closed(&self, pool: &PoolName) -> bool {
        self.closed.contains(pool)
    }

    /// The pools, by name.
    pub fn pools(&self) -> impl Iterator<Item = &Pool> {
        self.pools.values().map(|s| &s.pool)
    }

    /// What `key` holds.
    pub fn assignment(&self, key: &ServiceKey) -> Option<&Assignment> {
        self.services.get(key).map(|(a, _)| a)
    }

    /// The request `key` was last given its IPs for.
    pub fn request_of(&self, key: &ServiceKey) -> Option<&ServiceRequest> {
        self.services.get(key).map(|(_, r)| r)
    }

    /// Every Service holding IPs.
    pub fn assignments(&self) -> impl Iterator<Item = (&ServiceKey, &Assignment)> {
        self.services.iter().map(|(k, (a, _))| (k, a))
    }

    /// The Services using `ip`.
    pub fn users_of(&self, ip: IpAddr) -> impl Iterator<Item = &ServiceKey> {
        self.ips.get(&ip).into_iter().flat_map(|u| u.users.keys())
    }

    /// A pool's usage; `None` for an unknown pool.
    pub fn usage(&self, pool: &PoolName) -> Option<PoolUsage> {
        self.pools.get(pool).map(PoolState::usage)
    }

    /// Releases whatever `key` holds. Returns true if it held something.
    pub fn release(&mut self, key: &ServiceKey) -> bool {
        let Some((assignment, _)) = self.services.remove(key) else {
            return false;
        };
        for ip in assignment.ips {
            let Some(entry) = self.ips.get_mut(&ip) else {
                continue;
            };
            entry.users.remove(key);
            if entry.users.is_empty() {
                self.ips.remove(&ip);
                if let Some(state) = self.pools.get_mut(&assignment.pool) {
                    state.unmark(ip);
                }
            }
        }
        true
    }

    /// Gives `request` exactly `ips` (requested IPs, or the IPs a Service already holds). All
    /// must lie in one pool that allows the Service (or that it named), fit its families, and be
    /// shareable with their current users. Idempotent.
    pub fn assign(&mut self, request: &ServiceRequest, ips: &[IpAddr]) -> Result<(), AllocError> {
        let Some(&first) = ips.first() else {
            return Err(AllocError::NoClusterIp);
        };
        let families: Vec<Family> = ips.iter().map(Family::of).collect();
        let distinct: BTreeSet<Family> = families.iter().copied().collect();
        let wanted: BTreeSet<Family> = request.wanted_families().into_iter().collect();
        if ips.len() > 2 || distinct.len() != ips.len() || !distinct.is_subset(&wanted) {
            return Err(AllocError::FamilyMismatch {
                ips: ips.to_vec(),
                families: request.families.clone(),
            });
        }
        let pool = self
            .pools
            .values()
            .find(|s| s.pool.contains(first))
            .ok_or(AllocError::NotInAnyPool(first))?;
        if let Some(other) = ips.iter().find(|ip| !pool.pool.contains(**ip)) {
            return Err(match self.pools.values().any(|s| s.pool.contains(*other)) {
                true => AllocError::DifferentPools(first, *other),
                false => AllocError::NotInAnyPool(*other),
            });
        }
        let name = pool.pool.name.clone();
        if let Some(asked) = request.pool.as_ref().filter(|asked| **asked != name) {
            return Err(AllocError::NotInRequestedPool {
                ip: first,
                pool: asked.clone(),
            });
        }
        // Naming the pool does not open its fence: a tenant gets a fenced pool's IPs by no
        // annotation or field.
        if !pool.pool.allows(&request.key.namespace, &request.labels) {
            return Err(AllocError::PoolNotAllowed {
                pool: name,
                namespace: request.key.namespace.clone(),
            });
        }
        let holds_them = self
            .services
            .get(&request.key)
            .is_some_and(|(a, _)| a.pool == name && ips.iter().all(|ip| a.ips.contains(ip)));
        if self.closed.contains(&name) && !holds_them {
            return Err(AllocError::PoolDeleted(name));
        }
        if let Some(ip) = ips.iter().find(|ip| pool.is_buggy(**ip)) {
            return Err(AllocError::BuggyIp {
                ip: *ip,
                pool: name,
            });
        }
        self.claim(request, &name, ips)
    }

    /// Checks sharing and records `request` as holding `ips` from `pool` (replacing what it
    /// held before).
    fn claim(
        &mut self,
        request: &ServiceRequest,
        pool: &PoolName,
        ips: &[IpAddr],
    ) -> Result<(), AllocError> {
        for ip in ips {
            self.check_shareable(request, *ip)?;
        }
        let unchanged = self
            .services
            .get(&request.key)
            .is_some_and(|(a, r)| a.pool == *pool && a.ips == ips && r == request);
        if unchanged {
            return Ok(());
        }
        self.release(&request.key);
        for ip in ips {
            let entry = self.ips.entry(*ip).or_insert_with(|| IpUse {
                sharing_key: request.sharing_key.clone(),
                backend_key: request.backend_key.clone(),
                users: BTreeMap::new(),
            });
            if entry.users.is_empty()
                && let Some(state) = self.pools.get_mut(pool)
            {
                state.mark(*ip);
            }
            entry
                .users
                .insert(request.key.clone(), request.ports.clone());
            // A sole user may change the keys in place.
            if entry.users.len() == 1 {
                entry.sharing_key = request.sharing_key.clone();
                entry.backend_key = request.backend_key.clone();
            }
        }
        let assignment = Assignment {
            pool: pool.clone(),
            ips: ips.to_vec(),
        };
        self.services
            .insert(request.key.clone(), (assignment, request.clone()));
        Ok(())
    }

    /// Whether `request` may use `ip` next to its current users. A sharing key is a name
    /// within a namespace: Services of two namespaces share an IP only in a pool fenced to
    /// both (its owner's say-so), so a tenant cannot join another namespace's IP.
    fn check_shareable(&self, request: &ServiceRequest, ip: IpAddr) -> Result<(), AllocError> {
        let Some(entry) = self.ips.get(&ip) else {
            return Ok(());
        };
        let fence = self
            .pools
            .values()
            .find(|s| s.pool.contains(ip))
            .and_then(|s| s.pool.allocation.as_ref())
            .and_then(|a| a.namespaces.as_ref());
        for (other, ports) in entry.users.iter().filter(|(k, _)| **k != request.key) {
            let conflict = |why| AllocError::Conflict {
                ip,
                other: other.clone(),
                why,
            };
            if request.sharing_key.is_empty() || request.sharing_key != entry.sharing_key {
                return Err(conflict(SharingConflict::Key));
            }
            let fenced_to_both = fence.is_some_and(|ns| {
                ns.contains(&request.key.namespace) && ns.contains(&other.namespace)
            });
            if other.namespace != request.key.namespace && !fenced_to_both {
                return Err(conflict(SharingConflict::Namespace));
            }
            if request.backend_key != entry.backend_key {
                return Err(conflict(SharingConflict::Backend));
            }
            if let Some(port) = request.ports.intersection(ports).next() {
                return Err(conflict(SharingConflict::Port(*port)));
            }
        }
        Ok(())
    }

    /// An IP of `family` in `pool` that `request` may take: a shareable IP already used with the
    /// same sharing key (so sharers pack onto one IP), else a free one.
    fn candidate(
        &self,
        request: &ServiceRequest,
        pool: &PoolName,
        family: Family,
    ) -> Option<IpAddr> {
        let state = self.pools.get(pool)?;
        if !request.sharing_key.is_empty() {
            let shared = self.ips.iter().find(|(ip, u)| {
                Family::of(ip) == family
                    && u.sharing_key == request.sharing_key
                    && state.pool.contains(**ip)
                    && self.check_shareable(request, **ip).is_ok()
            });
            if let Some((ip, _)) = shared {
                return Some(*ip);
            }
        }
        state.find_free(family)
    }

    /// Allocates from `pool` one IP of each family in `families`; `None` if it cannot give all.
    fn try_pool(
        &mut self,
        request: &ServiceRequest,
        pool: &PoolName,
        families: &[Family],
    ) -> Option<Vec<IpAddr>> {
        let ips: Option<Vec<IpAddr>> = families
            .iter()
            .map(|f| self.candidate(request, pool, *f))
            .collect();
        let ips = ips?;
        self.claim(request, pool, &ips).ok()?;
        Some(ips)
    }

    /// The pools automatic allocation tries, in order: pools whose serviceAllocation selects
    /// the Service (by priority, 0 last, then by name), then pools without serviceAllocation
    /// (by name). Only pools with autoAssign. Deterministic.
    pub fn auto_pools(&self, request: &ServiceRequest) -> Vec<PoolName> {
        let mut pinned: Vec<(u32, &PoolName)> = Vec::new();
        let mut fallback: Vec<&PoolName> = Vec::new();
        let open = self
            .pools
            .values()
            .filter(|s| s.pool.auto_assign && !self.closed.contains(&s.pool.name));
        for state in open {
            let pool = &state.pool;
            match &pool.allocation {
                Some(a) if pool.allows(&request.key.namespace, &request.labels) => {
                    pinned.push((
                        if a.priority == 0 {
                            u32::MAX
                        } else {
                            a.priority
                        },
                        &pool.name,
                    ));
                }
                Some(_) => {}
                None => fallback.push(&pool.name),
            }
        }
        pinned.sort();
        pinned
            .into_iter()
            .map(|(_, p)| p.clone())
            .chain(fallback.into_iter().cloned())
            .collect()
    }

    /// Chooses IPs for `request`, which holds none yet: from the named pool, else by automatic
    /// pool order. Dual stack: RequireDualStack takes both families from one pool or fails;
    /// PreferDualStack takes both from the first pool that has both, else the primary family
    /// (else the secondary) from the first pool that has it.
    pub fn allocate(&mut self, request: &ServiceRequest) -> Result<Assignment, AllocError> {
        if self.pools.is_empty() {
            return Err(AllocError::NoPools);
        }
        let families = request.wanted_families();
        if families.is_empty() {
            return Err(AllocError::NoClusterIp);
        }
        if request.policy == FamilyPolicy::RequireDualStack && families.len() < 2 {
            return Err(AllocError::NotEnoughClusterIps(families.len()));
        }
        let candidates = match &request.pool {
            Some(name) => {
                let state = self
                    .pools
                    .get(name)
                    .ok_or_else(|| AllocError::UnknownPool(name.clone()))?;
                if self.closed.contains(name) {
                    return Err(AllocError::PoolDeleted(name.clone()));
                }
                if !state.pool.allows(&request.key.namespace, &request.labels) {
                    return Err(AllocError::PoolNotAllowed {
                        pool: name.clone(),
                        namespace: request.key.namespace.clone(),
                    });
                }
                vec![name.clone()]
            }
            None => self.auto_pools(request),
        };
        let mut attempts: Vec<Vec<Family>> = vec![families.clone()];
        if request.policy == FamilyPolicy::PreferDualStack && families.len() == 2 {
            attempts.push(vec![families[0]]);
            attempts.push(vec![families[1]]);
        }
        for wanted in &attempts {
            for pool in &candidates {
                if let Some(ips) = self.try_pool(request, pool, wanted) {
                    return Ok(Assignment {
                        pool: pool.clone(),
                        ips,
                    });
                }
            }
        }
        Err(AllocError::Exhausted { tried: candidates })
    }

    /// PreferDualStack with one IP: adds the missing family from the same pool, if it can.
    pub fn add_missing_family(&mut self, request: &ServiceRequest) -> Option<Assignment> {
        let (assignment, _) = self.services.get(&request.key)?.clone();
        let missing: Vec<Family> = request
            .wanted_families()
            .into_iter()
            .filter(|f| !assignment.ips.iter().any(|ip| Family::of(ip) == *f))
            .collect();
        let [family] = missing.as_slice() else {
            return None;
        };
        if self.closed.contains(&assignment.pool) {
            return None;
        }
        let extra = self.candidate(request, &assignment.pool, *family)?;
        let mut ips = assignment.ips.clone();
        ips.push(extra);
        // Primary family first.
        ips.sort_by_key(|ip| request.families.iter().position(|f| *f == Family::of(ip)));
        self.claim(request, &assignment.pool, &ips).ok()?;
        Some(Assignment {
            pool: assignment.pool,
            ips,
        })
    }
}

#[cfg(test)]
mod tests;
