//! The known-bug scenarios of a chaos run: what the generator does only when asked, because
//! it triggers a bug of issue #13 (or one this suite found) that is not fixed yet.

use std::fmt;

/// Known-bug scenarios, off in the default mix (issue #13): each makes the generator do what
/// triggers one of the bugs found by review.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scenarios {
    /// `address-pool` names fenced pools, and the `evil` tenant asks for a fenced pool's IP
    /// with `address-pool` + `loadBalancerIPs` (the allocator skips the fence for a named pool).
    pub fence_bypass: bool,
    /// Pools are replaced (deleted and re-created at once), which renumbers their Services.
    pub pool_replace: bool,
    /// Users keep editing Services while no controller leads (after a leader is killed), which
    /// the one-pass rebuild can turn into an IP moving between Services.
    pub ops_during_failover: bool,
    /// Users keep editing Services while the old leader is frozen or cut off, and it comes back
    /// with its queued writes (a deposed leader keeps writing).
    pub ops_during_stuck_leader: bool,
    /// Dual-stack Services request an IP of one family only (found by this suite: the
    /// controller then adds the other family and takes it away again, without end).
    pub partial_dual_request: bool,
    /// PreferDualStack Services (otherwise dual-stack ones are RequireDualStack). One that
    /// holds a single family gets the other added during a new leader's rebuild, taking an IP
    /// whose holder has not registered yet (found by this suite; a form of the restart
    /// rebuild order).
    pub prefer_dual_stack: bool,
}

impl Scenarios {
    /// Parses `fence-bypass,pool-replace,ops-during-failover,ops-during-stuck-leader,
    /// partial-dual-request,prefer-dual-stack` (or `all`).
    pub fn parse(list: &str) -> anyhow::Result<Self> {
        let mut s = Self::default();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "fence-bypass" => s.fence_bypass = true,
                "pool-replace" => s.pool_replace = true,
                "ops-during-failover" => s.ops_during_failover = true,
                "ops-during-stuck-leader" => s.ops_during_stuck_leader = true,
                "partial-dual-request" => s.partial_dual_request = true,
                "prefer-dual-stack" => s.prefer_dual_stack = true,
                "all" => {
                    s = Self {
                        fence_bypass: true,
                        pool_replace: true,
                        ops_during_failover: true,
                        ops_during_stuck_leader: true,
                        partial_dual_request: true,
                        prefer_dual_stack: true,
                    };
                }
                other => anyhow::bail!("unknown scenario {other}"),
            }
        }
        Ok(s)
    }
}

impl fmt::Display for Scenarios {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on: Vec<&str> = [
            (self.fence_bypass, "fence-bypass"),
            (self.pool_replace, "pool-replace"),
            (self.ops_during_failover, "ops-during-failover"),
            (self.ops_during_stuck_leader, "ops-during-stuck-leader"),
            (self.partial_dual_request, "partial-dual-request"),
            (self.prefer_dual_stack, "prefer-dual-stack"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
        f.write_str(if on.is_empty() { "none" } else { "" })?;
        f.write_str(&on.join(","))
    }
}
