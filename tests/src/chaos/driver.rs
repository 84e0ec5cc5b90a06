//! The chaos loop: steps of user operations and faults, each followed by a settle and the
//! checker, until the number of operations asked for is done.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::checker::{self, Violation};
use super::faults::{Fault, compact_and_confirm_gone};
use super::ops::{Op, Scenarios, Users};
use super::proxy::Mode;
use super::replicas::{LEASE_SECONDS, Replica, lease_holder};
use super::settle::{self, settle};
use super::universe::{BARRIER_NAMESPACE, Rng};
use super::world::World;
use crate::ControlPlane;
use crate::controller::eventually;

/// What to run.
#[derive(Clone, Debug)]
pub struct Settings {
    pub seed: u64,
    /// User operations to perform (the run ends after the step that reaches it).
    pub ops: usize,
    /// Controller replicas (2 or 3).
    pub replicas: usize,
    /// Known-bug scenarios switched on.
    pub scenarios: Scenarios,
    /// At most this many operations per step.
    pub max_ops_per_step: usize,
    /// Chance, in percent, that a step starts with a fault.
    pub fault_percent: u32,
    /// How long an IP of a deleted pool may stay on its Service.
    pub pool_grace: Duration,
    /// How long the status must stay unchanged to count as settled.
    pub stable: Duration,
    /// How long a settle may take.
    pub settle_timeout: Duration,
    /// Print each step to stderr.
    pub verbose: bool,
    /// Only these faults, in turn (`None`: every kind, see [`Fault::nth`]).
    pub faults: Option<Vec<Fault>>,
    /// Print a progress line every this many steps (0: never).
    pub progress_every: usize,
}

impl Settings {
    /// The short form CI runs: `ops` operations, faults in a third of the steps.
    pub fn short(seed: u64, ops: usize) -> Self {
        Self {
            seed,
            ops,
            replicas: 3,
            scenarios: Scenarios::default(),
            max_ops_per_step: 8,
            fault_percent: 30,
            pool_grace: Duration::from_secs(60),
            stable: Duration::from_millis(500),
            settle_timeout: Duration::from_secs(60),
            verbose: false,
            faults: None,
            progress_every: 0,
        }
    }
}

/// A violation and where it was seen.
#[derive(Clone, Debug)]
pub struct Found {
    pub step: usize,
    /// What the step did.
    pub step_did: Vec<String>,
    pub violation: Violation,
    /// The first later check that no longer saw it (`None`: it stood to the end).
    pub cleared_at: Option<usize>,
}

impl Found {
    /// How long it stood, for people (a move is an event and has no length).
    pub fn standing(&self) -> String {
        if self.violation.kind == checker::Kind::Moved {
            return "an event".into();
        }
        match self.cleared_at {
            Some(at) => format!("gone at step {at}"),
            None => "still there at the end".into(),
        }
    }
}

/// What a run did and found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub scenarios: String,
    pub replicas: usize,
    pub steps: usize,
    pub ops: usize,
    pub op_errors: Vec<String>,
    pub faults: BTreeMap<String, usize>,
    /// Watch expiries whose 410 Gone our own watch saw.
    pub gone_confirmed: usize,
    /// Replica processes that exited without being killed.
    pub replica_exits: Vec<String>,
    /// Steps after which the cluster did not settle, and why.
    pub unsettled: Vec<String>,
    pub violations: Vec<Found>,
    pub checks: usize,
    pub ips_held_total: usize,
    pub gained: usize,
    pub moved_with_cause: usize,
    pub elapsed: Duration,
}

impl Report {
    fn fault(&mut self, f: Fault) {
        *self.faults.entry(f.to_string()).or_default() += 1;
    }

    /// A plain-text summary for people.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "seed {} · scenarios {} · {} replicas · {} steps · {} operations ({} failed) · {:.0} s",
            self.seed,
            self.scenarios,
            self.replicas,
            self.steps,
            self.ops,
            self.op_errors.len(),
            self.elapsed.as_secs_f64()
        );
        let total: usize = self.faults.values().sum();
        let _ = writeln!(s, "faults: {total}");
        for (f, n) in &self.faults {
            let _ = writeln!(s, "  {n:>5}  {f}");
        }
        let _ = writeln!(
            s,
            "410 Gone confirmed after compaction: {}",
            self.gone_confirmed
        );
        let _ = writeln!(
            s,
            "checks: {} · IPs seen held (summed over checks): {} · Services that gained IPs: {} · moves the step required: {}",
            self.checks, self.ips_held_total, self.gained, self.moved_with_cause
        );
        let _ = writeln!(
            s,
            "replica exits on their own: {}",
            self.replica_exits.len()
        );
        for e in &self.replica_exits {
            let _ = writeln!(s, "  {}", e.lines().next().unwrap_or_default());
        }
        let _ = writeln!(s, "unsettled steps: {}", self.unsettled.len());
        for u in &self.unsettled {
            let _ = writeln!(s, "  {u}");
        }
        let _ = writeln!(s, "violations: {}", self.violations.len());
        for f in &self.violations {
            let _ = writeln!(s, "  step {}: {} ({})", f.step, f.violation, f.standing());
            for d in &f.step_did {
                let _ = writeln!(s, "      after: {d}");
            }
        }
        s
    }
}

/// Everything a run holds.
struct Run {
    settings: Settings,
    cp: ControlPlane,
    client: kube::Client,
    replicas: Vec<Replica>,
    users: Users,
    rng: Rng,
    world: World,
    round: usize,
    report: Report,
    deleted_pools: BTreeMap<String, Instant>,
    /// Violations seen after the previous check (reported once while they persist).
    standing: BTreeSet<String>,
    /// State violations still standing, by id, with their index in the report.
    open: BTreeMap<String, usize>,
    /// The objects after each operation of the current step.
    between: Vec<World>,
    started: Instant,
}

/// Runs the chaos suite on a control plane of its own.
pub async fn run(settings: Settings) -> anyhow::Result<Report> {
    let started = Instant::now();
    let cp = crate::fixtures::control_plane_with_crds_from(
        ControlPlane::builder().apiserver_arg("--watch-cache=false"),
    )
    .await?;
    let client = cp.client();
    let users = Users::new(settings.scenarios);
    users.set_up(&client).await?;
    // The barrier's namespace, pool and Service, in round 0.
    settle::bump_barrier(&client, 0)
        .await
        .context("the barrier")?;
    let replicas = (0..settings.replicas)
        .map(|i| Replica::start(&cp, i, cp.dir()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut run = Run {
        rng: Rng::new(settings.seed),
        report: Report {
            seed: settings.seed,
            scenarios: settings.scenarios.to_string(),
            replicas: settings.replicas,
            ..Report::default()
        },
        settings,
        cp,
        client,
        replicas,
        users,
        world: World::default(),
        round: 0,
        deleted_pools: BTreeMap::new(),
        standing: BTreeSet::new(),
        open: BTreeMap::new(),
        between: Vec::new(),
        started,
    };
    run.settle_and_check(&["start".to_owned()]).await?;
    while run.report.ops < run.settings.ops {
        run.step().await?;
    }
    run.report.elapsed = started.elapsed();
    Ok(run.report)
}

impl Run {
    async fn step(&mut self) -> anyhow::Result<()> {
        self.report.steps += 1;
        let step = self.report.steps;
        let mut did = Vec::new();
        let mut ops_done_in_fault = false;
        if self.rng.chance(self.settings.fault_percent) {
            let n: usize = self.report.faults.values().sum();
            let fault = match &self.settings.faults {
                Some(only) if !only.is_empty() => only[n % only.len()],
                _ => Fault::nth(n, usize::try_from(self.settings.seed % 9).unwrap_or(0)),
            };
            did.push(fault.to_string());
            ops_done_in_fault = self.inject(fault, &mut did).await?;
            self.report.fault(fault);
            if !ops_done_in_fault {
                // No user operation while a fault heals: settle and check first.
                self.settle_and_check(&did).await?;
                did.clear();
            }
        }
        if !ops_done_in_fault {
            self.user_ops(&mut did).await;
        }
        if self.settings.verbose {
            eprintln!("step {step}: {}", did.join("; "));
        }
        let every = self.settings.progress_every;
        if every > 0 && step.is_multiple_of(every) {
            let r = &self.report;
            eprintln!(
                "chaos progress: step {step}, {} operations, {} faults, {} unsettled, {} violations, {:.0} s",
                r.ops,
                r.faults.values().sum::<usize>(),
                r.unsettled.len(),
                r.violations.len(),
                self.started.elapsed().as_secs_f64()
            );
        }
        self.settle_and_check(&did).await
    }

    /// A batch of 1..=max operations.
    async fn user_ops(&mut self, did: &mut Vec<Op>) {
        let n = 1 + self.rng.below(self.settings.max_ops_per_step);
        for _ in 0..n {
            match self
                .users
                .random_op(&self.client, &mut self.rng, &self.world)
                .await
            {
                Ok(op) => {
                    if let Some(name) = op.strip_prefix("delete pool ") {
                        self.deleted_pools.insert(name.to_owned(), Instant::now());
                    }
                    did.push(op);
                }
                Err(e) => {
                    let e = format!("step {}: {e:#}", self.report.steps);
                    did.push(format!("failed: {e}"));
                    self.report.op_errors.push(e);
                }
            }
            self.report.ops += 1;
            if let Ok(w) = World::read(&self.client).await {
                self.between.push(w);
            }
        }
        let absent = self.users.absent_pools();
        self.deleted_pools
            .retain(|name, _| absent.contains(&name.as_str()));
    }

    fn leader_index(&self, holder: Option<&str>) -> Option<usize> {
        let holder = holder?;
        self.replicas.iter().position(|r| r.identity == holder)
    }

    /// Injects `fault` and heals it. Returns true if the step's user operations were done
    /// inside the fault (a known-bug scenario).
    async fn inject(&mut self, fault: Fault, did: &mut Vec<Op>) -> anyhow::Result<bool> {
        let holder = lease_holder(&self.client).await.ok().flatten();
        let leader = self.leader_index(holder.as_deref()).unwrap_or(0);
        let lease = Duration::from_secs(LEASE_SECONDS);
        let scenarios = self.settings.scenarios;
        let mut ops_inside = false;
        match fault {
            Fault::KillLeader => {
                self.replicas[leader].kill();
                if scenarios.ops_during_failover {
                    // The tenant: while no one leads, ask for another Service's IP.
                    match self
                        .users
                        .steal_ip(&self.client, &mut self.rng, &self.world)
                        .await
                    {
                        Ok(Some(op)) => {
                            did.push(op);
                            self.report.ops += 1;
                        }
                        Ok(None) => {}
                        Err(e) => self.report.op_errors.push(format!("{e:#}")),
                    }
                    self.user_ops(did).await;
                    ops_inside = true;
                }
                self.replicas[leader].spawn()?;
            }
            Fault::KillStandby => {
                let standby = (leader + 1) % self.replicas.len();
                self.replicas[standby].kill();
                self.replicas[standby].spawn()?;
            }
            Fault::PauseLeader => {
                self.replicas[leader].freeze()?;
                // The fault's own length: a half-second hiccup.
                tokio::time::sleep(Duration::from_millis(500)).await;
                self.replicas[leader].thaw()?;
            }
            Fault::FreezeLeader | Fault::StallLeader => {
                if fault == Fault::FreezeLeader {
                    self.replicas[leader].freeze()?;
                } else {
                    self.replicas[leader].proxy.set_mode(Mode::Stall);
                }
                let old = self.replicas[leader].identity.clone();
                // Until another replica has taken the lease (bounded).
                let client = self.client.clone();
                let taken = eventually("another replica leads", lease * 10, || async {
                    let h = lease_holder(&client).await?;
                    anyhow::ensure!(h.as_ref().is_some_and(|h| *h != old), "not yet");
                    Ok(())
                })
                .await;
                if let Err(e) = taken {
                    did.push(format!("no takeover while {old} was stuck: {e:#}"));
                }
                if scenarios.ops_during_stuck_leader {
                    self.user_ops(did).await;
                    ops_inside = true;
                }
                if fault == Fault::FreezeLeader {
                    self.replicas[leader].thaw()?;
                } else {
                    self.replicas[leader].reconnect();
                }
            }
            Fault::DropConnections => {
                for r in &self.replicas {
                    r.proxy.set_mode(Mode::Refuse);
                    r.proxy.drop_all();
                }
                let ms = 200 + 100 * u64::try_from(self.rng.below(14)).unwrap_or(0);
                // The outage's own length.
                tokio::time::sleep(Duration::from_millis(ms)).await;
                for r in &self.replicas {
                    r.reconnect();
                }
            }
            Fault::RestartApiserver => {
                let down = self.cp.restart_apiserver().await?;
                did.push(format!("apiserver back after {:.1} s", down.as_secs_f64()));
            }
            Fault::ExpireWatches => {
                let gone = compact_and_confirm_gone(&self.client, self.cp.etcd_url()).await?;
                for r in &self.replicas {
                    r.proxy.drop_all();
                }
                if gone {
                    self.report.gone_confirmed += 1;
                } else {
                    did.push("our own watch from before the compaction was not refused".into());
                }
            }
        }
        Ok(ops_inside)
    }

    async fn settle_and_check(&mut self, did: &[String]) -> anyhow::Result<()> {
        for r in &mut self.replicas {
            if let Some(exit) = r.exited_by_itself() {
                self.report
                    .replica_exits
                    .push(format!("{} exited: {exit}", r.identity));
                r.spawn()?;
            }
        }
        self.round += 1;
        let (now, unsettled) = settle(
            &self.client,
            &mut self.replicas,
            self.round,
            self.settings.stable,
            self.settings.settle_timeout,
        )
        .await;
        let step = self.report.steps;
        if let Some(why) = &unsettled {
            let line = format!("step {step}: {why} (after: {})", did.join("; "));
            eprintln!("chaos seed {}: did not settle: {line}", self.settings.seed);
            self.report.unsettled.push(line);
        }
        let ctx = checker::Context {
            deleted_pools: &self.deleted_pools,
            grace: self.settings.pool_grace,
            exempt_namespace: BARRIER_NAMESPACE,
        };
        let between = std::mem::take(&mut self.between);
        let (violations, seen) = checker::check(&self.world, &between, &now, &ctx);
        self.report.checks += 1;
        self.report.ips_held_total += seen.held;
        self.report.gained += seen.gained;
        self.report.moved_with_cause += seen.moved_with_cause;
        let mut standing = BTreeSet::new();
        for v in violations {
            let text = v.to_string();
            let kind = v.kind;
            // A move is an event; the other kinds are states that may stand for a while.
            let id = match v.kind {
                checker::Kind::Moved => text.clone(),
                _ => format!("{:?} {}", v.kind, v.subject),
            };
            if !self.standing.contains(&id) {
                eprintln!(
                    "chaos seed {} step {step}: VIOLATION {text}\n  after: {}",
                    self.settings.seed,
                    did.join("\n  after: ")
                );
                self.report.violations.push(Found {
                    step,
                    step_did: did.to_vec(),
                    violation: v,
                    cleared_at: None,
                });
                if kind != checker::Kind::Moved {
                    self.open
                        .insert(id.clone(), self.report.violations.len() - 1);
                }
            }
            standing.insert(id);
        }
        // A state violation that this check no longer sees has cleared.
        let cleared: Vec<String> = self
            .open
            .keys()
            .filter(|id| !standing.contains(*id))
            .cloned()
            .collect();
        for id in cleared {
            if let Some(i) = self.open.remove(&id) {
                self.report.violations[i].cleared_at = Some(step);
            }
        }
        self.standing = standing;
        self.world = now;
        Ok(())
    }
}
