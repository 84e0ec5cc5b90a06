//! The independent checker: after every settled step it compares what the apiserver holds
//! now with what it held after the previous step, re-deriving every rule from the objects
//! ([`super::world`]), never from ferrolb's allocator.
//!
//! - **Shared**: an IP in two Services' status only if they may share it: the same non-empty
//!   sharing key, the same backends under `externalTrafficPolicy: Local`, no common port — and
//!   each of them admitted by the IP's pool (so a key crosses namespaces only where the pool
//!   admits both).
//! - **Fence**: every IP a Service holds lies in a pool that admits the Service's namespace and
//!   labels — whatever the Service's annotations name — in the pool it named, and is one it
//!   requested if it requested any. An IP of a pool deleted less than the grace period ago may
//!   stay (a pool that is replaced must not renumber anyone).
//! - **Moved**: a Service that held IPs keeps them unless the step made them unkeepable: the
//!   Service or its pool went away, its request (IPs, pool, families, type) or a fence stopped
//!   admitting them, or a Service sharing the IP became incompatible with it.
//! - **Not ours**: a Service that is not a class-less LoadBalancer holds no IP of our pools.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::world::{ServiceView, World, share_conflict};

/// Kinds of violation, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Shared,
    Fence,
    Moved,
    NotOurs,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Shared => "IP on two Services",
            Self::Fence => "IP outside what the Service may hold",
            Self::Moved => "IP moved without cause",
            Self::NotOurs => "IP on a Service that is not ours",
        })
    }
}

/// One broken rule, with what the checker saw.
#[derive(Clone, Debug)]
pub struct Violation {
    pub kind: Kind,
    /// The Services and IP concerned: the same subject in consecutive checks is one
    /// standing violation, reported once.
    pub subject: String,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

/// What the checker needs besides the two states.
#[derive(Debug)]
pub struct Context<'a> {
    /// Pools the driver deleted and has not re-created, with when.
    pub deleted_pools: &'a BTreeMap<String, Instant>,
    /// How long an IP of a deleted pool may stay on its Service.
    pub grace: Duration,
    /// Namespaces whose Services' moves are the driver's own doing (the barrier).
    pub exempt_namespace: &'a str,
}

/// Counts of what the checker looked at, to show it was not idle.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seen {
    /// IPs held by Services after the step.
    pub held: usize,
    /// Services that gained an IP they did not hold.
    pub gained: usize,
    /// Services that lost or changed an IP when the step allowed it.
    pub moved_with_cause: usize,
}

/// Checks `now` (after a step) against `before` (after the previous one). `between` are the
/// objects read after each operation of the step: a move is required if any of them, or
/// `now`, makes the IPs unkeepable (the controller may have acted on any of them).
pub fn check(
    before: &World,
    between: &[World],
    now: &World,
    ctx: &Context<'_>,
) -> (Vec<Violation>, Seen) {
    let mut out = Vec::new();
    let mut seen = Seen::default();
    shared(now, &mut out);
    for s in now.services.values() {
        seen.held += s.ips.len();
        fence(now, s, ctx, &mut out);
    }
    moved(before, between, now, ctx, &mut out, &mut seen);
    (out, seen)
}

fn shared(now: &World, out: &mut Vec<Violation>) {
    for (ip, holders) in now.holders() {
        if holders.len() < 2 {
            continue;
        }
        for (i, a) in holders.iter().enumerate() {
            for b in &holders[i + 1..] {
                let why = share_conflict(a, b).or_else(|| {
                    let pool = now.pool_of(ip)?;
                    [a, b]
                        .iter()
                        .find(|s| !pool.allows(&s.namespace, &s.labels))
                        .map(|s| format!("pool {} does not admit {}", pool.name, s.key))
                });
                if let Some(why) = why {
                    out.push(Violation {
                        kind: Kind::Shared,
                        subject: format!("{ip} {} {}", a.key, b.key),
                        detail: format!(
                            "{ip} is held by {a} and by {b}, which may not share it ({why})"
                        ),
                    });
                }
            }
        }
    }
}

fn fence(now: &World, s: &ServiceView, ctx: &Context<'_>, out: &mut Vec<Violation>) {
    if s.ips.is_empty() {
        return;
    }
    if !s.ours {
        out.push(Violation {
            kind: Kind::NotOurs,
            subject: s.key.clone(),
            detail: format!("{s} is not a class-less LoadBalancer but holds IPs"),
        });
        return;
    }
    for ip in &s.ips {
        let problem = match now.pool_of(*ip) {
            None => {
                let in_grace = ctx
                    .deleted_pools
                    .values()
                    .any(|at| at.elapsed() < ctx.grace);
                (!in_grace).then(|| format!("{ip} is in no pool"))
            }
            Some(p) if !p.allows(&s.namespace, &s.labels) => Some(format!(
                "{ip} is in pool {}, which does not admit namespace {} (admits {})",
                p.name,
                s.namespace,
                p.namespaces
                    .as_ref()
                    .map(|n| n.iter().cloned().collect::<Vec<_>>().join(","))
                    .unwrap_or_else(|| "every namespace".into())
            )),
            Some(p) if s.pool.as_ref().is_some_and(|named| *named != p.name) => Some(format!(
                "{ip} is in pool {}, not in the pool the Service names",
                p.name
            )),
            Some(_) => match &s.requested {
                Ok(r) if !r.is_empty() && !r.contains(ip) => {
                    Some(format!("{ip} is not one of the requested IPs"))
                }
                Err(why) => Some(format!("{ip} held although {why}")),
                _ => None,
            },
        };
        if let Some(problem) = problem {
            out.push(Violation {
                kind: Kind::Fence,
                subject: format!("{} {ip}", s.key),
                detail: format!("{s}: {problem}"),
            });
        }
    }
}

fn moved(
    before: &World,
    between: &[World],
    now: &World,
    ctx: &Context<'_>,
    out: &mut Vec<Violation>,
    seen: &mut Seen,
) {
    for old in before.services.values() {
        let current = now.services.get(&old.key).filter(|s| s.uid == old.uid);
        let gained = current.is_some_and(|c| c.ips.iter().any(|ip| !old.ips.contains(ip)));
        if gained {
            seen.gained += 1;
        }
        let lost: Vec<IpAddr> = old
            .ips
            .iter()
            .copied()
            .filter(|ip| current.is_none_or(|c| !c.ips.contains(ip)))
            .collect();
        if lost.is_empty() || old.namespace == ctx.exempt_namespace {
            continue;
        }
        let Some(current) = current else {
            seen.moved_with_cause += 1;
            continue;
        };
        let cause = std::iter::once(now).chain(between).find_map(|w| {
            let s = w.services.get(&old.key).filter(|s| s.uid == old.uid)?;
            unkeepable(before, w, old, s)
        });
        match cause {
            Some(_) => seen.moved_with_cause += 1,
            None => out.push(Violation {
                kind: Kind::Moved,
                subject: old.key.clone(),
                detail: format!(
                    "{} lost {} (was {old}, now {current}) although nothing required it",
                    old.key,
                    lost.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            }),
        }
    }
    for s in now.services.values() {
        if before.services.get(&s.key).is_none_or(|o| o.uid != s.uid) && !s.ips.is_empty() {
            seen.gained += 1;
        }
    }
}

/// Why `old.ips` cannot stay with the Service as it is `now`; `None` if they can.
fn unkeepable(before: &World, now: &World, old: &ServiceView, s: &ServiceView) -> Option<String> {
    if !s.ours {
        return Some("no longer ours".into());
    }
    let requested = match &s.requested {
        Err(why) => return Some(why.clone()),
        Ok(r) => r,
    };
    if s.families.is_empty() || (s.require_dual && s.families.len() < 2) {
        return Some("no usable family".into());
    }
    if old.ips.iter().any(|ip| !s.families.contains(&ip.is_ipv4())) {
        return Some("family no longer wanted".into());
    }
    if !requested.is_empty() {
        let mut a = requested.clone();
        let mut b = old.ips.clone();
        a.sort();
        b.sort();
        if a != b {
            return Some("requested IPs changed".into());
        }
    }
    let pools: Vec<_> = old.ips.iter().map(|ip| now.pool_of(*ip)).collect();
    let Some(Some(pool)) = pools.first() else {
        return Some("pool gone".into());
    };
    if pools.iter().any(|p| p.is_none_or(|p| p.name != pool.name)) {
        return Some("IPs no longer in one pool".into());
    }
    if !pool.allows(&s.namespace, &s.labels) {
        return Some(format!("pool {} no longer admits it", pool.name));
    }
    if s.pool.as_ref().is_some_and(|named| *named != pool.name) {
        return Some("named another pool".into());
    }
    if pool.avoid_buggy
        && old.ips.iter().any(|ip| match ip {
            IpAddr::V4(v4) => matches!(v4.octets()[3], 0 | 255),
            IpAddr::V6(_) => false,
        })
    {
        return Some("buggy IP avoided".into());
    }
    // A former co-holder that became incompatible: one of the two has to go.
    for other in before.services.values() {
        if other.key == s.key || !other.ips.iter().any(|ip| old.ips.contains(ip)) {
            continue;
        }
        if let Some(o) = now.services.get(&other.key).filter(|o| o.uid == other.uid)
            && let Some(why) = share_conflict(s, o)
        {
            return Some(format!("no longer shareable with {}: {why}", o.key));
        }
    }
    None
}
