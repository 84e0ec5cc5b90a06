//! The fixed cast of a chaos run: namespaces, pool slots (disjoint address ranges that a pool
//! of that name always draws from, so pools never overlap), and the barrier the driver uses to
//! know the controller has caught up. Addresses are from DESIGN.md's documentation ranges.

use std::net::IpAddr;

/// Namespaces Services live in. `evil` is the tenant that tries to cross fences.
pub const NAMESPACES: [&str; 5] = ["prod", "dev", "evil", "team-a", "team-b"];

/// The namespace of the barrier Service (and of nothing else).
pub const BARRIER_NAMESPACE: &str = "chaos-barrier";
/// The barrier Service's name.
pub const BARRIER_SERVICE: &str = "barrier";
/// The barrier pool: two IPs the barrier Service alternates between.
pub const BARRIER_POOL: &str = "chaos-barrier";
/// The two barrier IPs.
pub const BARRIER_IPS: [&str; 2] = ["192.0.2.248", "192.0.2.249"];

/// How a pool may be fenced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Never fenced: Services may name it in `address-pool` (in the default mix).
    Open,
    /// Fenced by namespace lists, namespace selectors or Service selectors, and edited so;
    /// named in `address-pool` only with the `fence-bypass` scenario.
    Fenced,
}

/// A pool name and the addresses it may use.
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    pub name: &'static str,
    pub role: Role,
    /// First and last IPv4 address.
    pub v4: (&'static str, &'static str),
    /// First and last IPv6 address, if the pool is dual-stack.
    pub v6: Option<(&'static str, &'static str)>,
    /// Whether the pool starts with autoAssign.
    pub auto_assign: bool,
}

/// Every pool slot. Small on purpose: pools run out, sharing and contention happen.
pub const SLOTS: [Slot; 5] = [
    Slot {
        name: "shared",
        role: Role::Open,
        v4: ("192.0.2.200", "192.0.2.211"),
        v6: Some(("2001:db8:0:1::200", "2001:db8:0:1::20b")),
        auto_assign: true,
    },
    Slot {
        name: "spare",
        role: Role::Open,
        v4: ("192.0.2.212", "192.0.2.219"),
        v6: Some(("2001:db8:0:1::210", "2001:db8:0:1::217")),
        auto_assign: true,
    },
    Slot {
        name: "manual",
        role: Role::Open,
        v4: ("198.51.100.32", "198.51.100.39"),
        v6: None,
        auto_assign: false,
    },
    Slot {
        name: "prod-only",
        role: Role::Fenced,
        v4: ("198.51.100.0", "198.51.100.11"),
        v6: Some(("2001:db8:100::", "2001:db8:100::b")),
        auto_assign: true,
    },
    Slot {
        name: "team",
        role: Role::Fenced,
        v4: ("198.51.100.16", "198.51.100.27"),
        v6: None,
        auto_assign: true,
    },
];

impl Slot {
    /// Every address of the slot (first and last of each family included).
    pub fn addresses(&self) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for (lo, hi) in std::iter::once(self.v4).chain(self.v6) {
            let (Ok(lo), Ok(hi)) = (lo.parse::<IpAddr>(), hi.parse::<IpAddr>()) else {
                continue;
            };
            let mut ip = lo;
            while ip <= hi {
                out.push(ip);
                ip = next(ip);
            }
        }
        out
    }
}

/// The address after `ip`.
pub fn next(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4).wrapping_add(1)).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6).wrapping_add(1)).into()),
    }
}

/// The address `n` before `ip` (to shrink a range's end).
pub fn back(ip: IpAddr, n: u32) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4).wrapping_sub(n)).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6).wrapping_sub(u128::from(n))).into()),
    }
}

/// A deterministic pseudo-random generator (SplitMix64): the same seed replays the same run.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % (n.max(1) as u64)).unwrap_or(0)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.next_u64() % 100 < u64::from(percent)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}
