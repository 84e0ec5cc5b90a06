//! Leader election on a `coordination.k8s.io` Lease, with terms and a deadline.
//!
//! One replica leads at a time. Each time this replica takes the Lease a new **term** begins
//! (a number that only grows); every decision and status write carries its term, and the
//! writer refuses those of a term that is over. A term ends when another replica holds the
//! Lease, or when its **deadline** passes: `lease duration − grace` after the last renewal that
//! the apiserver confirmed, counted on this replica's monotonic clock from when that renewal
//! was sent. A renewal that hangs on a dead connection therefore cannot keep a replica leading:
//! every call has a timeout, and the deadline passes whatever the call is doing. Other replicas
//! take the Lease only once they have seen it unrenewed for the whole lease duration on their
//! own clocks, which starts no earlier than our renewal was sent: the `grace` between our
//! deadline and their takeover is left for timers firing late and for writes in flight to
//! be abandoned (they are also fenced on the server, see the writer).
//!
//! Every write to the Lease is conditional on the resourceVersion last read or written, so two
//! replicas can never both believe they took it, and a leader learns it was replaced at its
//! next renewal (a conflict) instead of overwriting the new holder. Expiry is judged by how long
//! a replica has seen the Lease unchanged, never by comparing `renewTime` with its own wall
//! clock, so clocks that disagree do not make two leaders. (`renewTime` is still written for
//! people and tools that read it.)
//!
//! This replaces `kube-lease-manager`, which reports leadership only when the Lease's holder
//! changes: a renewal that failed or hung left its replica leading for as long as the failure
//! lasted (minutes, on a dead connection), and it gave no way to know when leadership was last
//! confirmed.
//!
//! [`Elector`] decides (time passed in, no I/O); [`start`] runs it against the apiserver.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

/// Whether this replica leads, in which term, and until when at the latest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Leadership {
    Following,
    Leading(Term),
}

/// A term of leadership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Term {
    /// Grows with every term this replica begins.
    pub number: u64,
    /// When the term ends unless a renewal extends it (`None`: never, without leader election).
    pub until: Option<Instant>,
}

impl Leadership {
    /// Whether term `number` is still on at `now`.
    pub(crate) fn allows(&self, number: u64, now: Instant) -> bool {
        match self {
            Self::Leading(term) => term.number == number && term.until.is_none_or(|t| now < t),
            Self::Following => false,
        }
    }
}

/// The Lease as read or written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub holder: Option<String>,
    pub version: String,
    pub transitions: i32,
}

/// A write to the Lease that makes or keeps this replica its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// There is no Lease: create it, held by us.
    Create,
    /// Write ourselves in as holder over `version`.
    Take { version: String, transitions: i32 },
    /// Renew our hold, over `version` (the one our last write made).
    Renew { version: String },
}

/// What the elector wants done next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing until then.
    Wait(Instant),
    /// Read the Lease.
    Read,
    /// Write the claim; give up on the call at the deadline.
    Claim(Claim, Instant),
}

/// How a read or a claim went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome<T> {
    Done(T),
    /// The Lease was not at the version the write named (or already existed).
    Conflict,
    /// No answer, or an error: nothing learnt.
    Failed,
}

/// Leader election, decided without I/O.
#[derive(Debug)]
pub(crate) struct Elector {
    identity: String,
    /// Others take the Lease after seeing it unchanged this long.
    duration: Duration,
    /// How long before others may take it a leader that could not renew stops leading.
    grace: Duration,
    /// The Lease as last seen (`Some(None)`: it does not exist), and since when it has been
    /// unchanged.
    seen: Option<(Option<Record>, Instant)>,
    /// The last read is current: act on it now.
    fresh: bool,
    held: Option<Held>,
    terms: u64,
    next_at: Instant,
}

#[derive(Clone, Debug)]
struct Held {
    term: u64,
    version: String,
    /// When the last confirmed renewal was sent.
    renewed: Instant,
}

impl Elector {
    pub(crate) fn new(identity: &str, duration: Duration, grace: Duration, now: Instant) -> Self {
        Self {
            identity: identity.to_owned(),
            duration,
            grace: grace.min(duration / 2),
            seen: None,
            fresh: false,
            held: None,
            terms: 0,
            next_at: now,
        }
    }

    /// How long a term lasts after a confirmed renewal.
    fn term_length(&self) -> Duration {
        self.duration - self.grace
    }

    /// How often a leader renews: twice per term, so one lost renewal costs nothing.
    fn renew_every(&self) -> Duration {
        self.term_length() / 2
    }

    /// How soon a failed call is tried again, and how often a follower reads the Lease.
    pub(crate) fn retry(&self) -> Duration {
        self.term_length() / 4
    }

    /// What this replica is now.
    pub(crate) fn leadership(&self) -> Leadership {
        match &self.held {
            Some(h) => Leadership::Leading(Term {
                number: h.term,
                until: Some(h.renewed + self.term_length()),
            }),
            None => Leadership::Following,
        }
    }

    /// The version to release, if this replica holds the Lease at `now`.
    pub(crate) fn held_version(&mut self, now: Instant) -> Option<String> {
        self.expire(now);
        self.held.as_ref().map(|h| h.version.clone())
    }

    /// Ends the term if its deadline has passed.
    fn expire(&mut self, now: Instant) {
        if self
            .held
            .as_ref()
            .is_some_and(|h| now >= h.renewed + self.term_length())
        {
            self.held = None;
            self.fresh = false;
        }
    }

    pub(crate) fn next(&mut self, now: Instant) -> Step {
        self.expire(now);
        if now < self.next_at {
            return Step::Wait(self.next_at);
        }
        // (After a conflict the Lease is read first.)
        if let Some(h) = &self.held
            && self.seen.is_some()
        {
            let version = h.version.clone();
            let deadline = (h.renewed + self.term_length()).min(now + self.renew_every());
            return Step::Claim(Claim::Renew { version }, deadline);
        }
        let deadline = now + self.renew_every();
        match &self.seen {
            Some((lease, since)) if self.fresh => {
                self.fresh = false;
                match lease {
                    None => Step::Claim(Claim::Create, deadline),
                    Some(r) => {
                        let ours = r.holder.as_deref() == Some(self.identity.as_str());
                        let free = r.holder.is_none();
                        if ours || free || now >= *since + self.duration {
                            let transitions = r.transitions + i32::from(!ours);
                            let version = r.version.clone();
                            Step::Claim(
                                Claim::Take {
                                    version,
                                    transitions,
                                },
                                deadline,
                            )
                        } else {
                            self.next_at = (now + self.retry()).min(*since + self.duration);
                            Step::Wait(self.next_at)
                        }
                    }
                }
            }
            _ => Step::Read,
        }
    }

    /// The Lease was read (`Done(None)`: it does not exist).
    pub(crate) fn read(&mut self, outcome: Outcome<Option<Record>>, now: Instant) {
        let Outcome::Done(lease) = outcome else {
            self.next_at = now + self.retry();
            return;
        };
        let since = match &self.seen {
            Some((before, since)) if *before == lease => *since,
            _ => now,
        };
        if let Some(h) = &mut self.held {
            match &lease {
                // Still ours (something else about it changed): renew over the new version.
                Some(r) if r.holder.as_deref() == Some(self.identity.as_str()) => {
                    h.version.clone_from(&r.version);
                }
                _ => self.held = None,
            }
        }
        self.seen = Some((lease, since));
        self.fresh = true;
        self.next_at = now;
    }

    /// A claim sent at `sent` was answered (`Done(version)`: it is the Lease's new version).
    pub(crate) fn claimed(&mut self, outcome: Outcome<String>, sent: Instant, now: Instant) {
        match outcome {
            Outcome::Done(version) => {
                let term = match &self.held {
                    Some(h) => h.term,
                    None => {
                        self.terms += 1;
                        self.terms
                    }
                };
                self.seen = Some((
                    Some(Record {
                        holder: Some(self.identity.clone()),
                        version: version.clone(),
                        transitions: 0,
                    }),
                    now,
                ));
                self.held = Some(Held {
                    term,
                    version,
                    renewed: sent,
                });
                self.next_at = sent + self.renew_every();
            }
            // Someone else wrote it: read it before anything else.
            Outcome::Conflict => {
                self.seen = None;
                self.next_at = now;
            }
            Outcome::Failed => {
                self.next_at = now + self.retry();
            }
        }
        self.expire(now);
    }
}

/// Handle to the election task.
pub(crate) struct Campaign {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Campaign {
    /// Stops campaigning and gives the Lease up if this replica holds it (so a standby takes
    /// over at once). Waits at most `timeout`.
    pub(crate) async fn release(self, timeout: Duration) {
        let _ = self.stop.send(());
        match tokio::time::timeout(timeout, self.task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "leader election task failed"),
            Err(_) => tracing::warn!("timed out giving the leader lease up"),
        }
    }
}

/// The Lease `name` in `namespace`, campaigned for as `identity`.
pub(crate) struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub duration: Duration,
    pub grace: Duration,
}

/// Starts campaigning; the receiver says whether this replica leads.
pub(crate) fn start(
    client: Client,
    settings: LeaseSettings,
) -> (watch::Receiver<Leadership>, Campaign) {
    let (tx, rx) = watch::channel(Leadership::Following);
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(campaign(client, settings, tx, stopped));
    (rx, Campaign { stop, task })
}

async fn campaign(
    client: Client,
    settings: LeaseSettings,
    tx: watch::Sender<Leadership>,
    mut stop: oneshot::Receiver<()>,
) {
    let lease = LeaseApi {
        api: Api::namespaced(client, &settings.namespace),
        settings,
    };
    let s = &lease.settings;
    let mut elector = Elector::new(&s.identity, s.duration, s.grace, Instant::now());
    loop {
        let step = elector.next(Instant::now());
        match step {
            Step::Wait(at) => tokio::select! {
                () = tokio::time::sleep_until(at) => {}
                _ = &mut stop => break,
            },
            Step::Read => {
                let outcome = lease.read(Instant::now() + elector.retry()).await;
                elector.read(outcome, Instant::now());
            }
            Step::Claim(claim, deadline) => {
                let sent = Instant::now();
                let outcome = lease.claim(&claim, deadline).await;
                elector.claimed(outcome, sent, Instant::now());
            }
        }
        publish(&tx, elector.leadership(), &lease.settings.identity);
    }
    if let Some(version) = elector.held_version(Instant::now()) {
        let deadline = Instant::now() + elector.retry();
        tx.send_replace(Leadership::Following);
        lease.release(&version, deadline).await;
    }
    tx.send_replace(Leadership::Following);
}

fn publish(tx: &watch::Sender<Leadership>, now: Leadership, identity: &str) {
    tx.send_if_modified(|was| {
        if *was == now {
            return false;
        }
        match (*was, now) {
            (Leadership::Following, Leadership::Leading(t)) => {
                tracing::debug!(identity, term = t.number, "took the leader lease");
            }
            (Leadership::Leading(t), Leadership::Following) => {
                tracing::debug!(identity, term = t.number, "no longer hold the leader lease");
            }
            _ => {}
        }
        *was = now;
        true
    });
}

/// The Lease in the apiserver.
struct LeaseApi {
    api: Api<Lease>,
    settings: LeaseSettings,
}

impl LeaseApi {
    async fn read(&self, deadline: Instant) -> Outcome<Option<Record>> {
        match tokio::time::timeout_at(deadline, self.api.get_opt(&self.settings.name)).await {
            Ok(Ok(lease)) => Outcome::Done(lease.map(|l| record(&l))),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, lease = %self.settings.name, "cannot read the leader lease");
                Outcome::Failed
            }
            Err(_) => {
                tracing::warn!(lease = %self.settings.name, "timed out reading the leader lease");
                Outcome::Failed
            }
        }
    }

    async fn claim(&self, claim: &Claim, deadline: Instant) -> Outcome<String> {
        let now = MicroTime(Timestamp::now());
        let seconds = i32::try_from(self.settings.duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let identity = &self.settings.identity;
        let result = match claim {
            Claim::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.settings.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(identity.clone()),
                        acquire_time: Some(now.clone()),
                        renew_time: Some(now),
                        lease_duration_seconds: Some(seconds),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                let params = PostParams {
                    field_manager: Some(self.field_manager()),
                    ..PostParams::default()
                };
                tokio::time::timeout_at(deadline, self.api.create(&params, &lease)).await
            }
            Claim::Take {
                version,
                transitions,
            } => {
                let patch = json!({
                    "metadata": {"resourceVersion": version},
                    "spec": {
                        "holderIdentity": identity,
                        "acquireTime": now,
                        "renewTime": now,
                        "leaseDurationSeconds": seconds,
                        "leaseTransitions": transitions,
                    },
                });
                self.patch(patch, deadline).await
            }
            Claim::Renew { version } => {
                let patch = json!({
                    "metadata": {"resourceVersion": version},
                    "spec": {
                        "holderIdentity": identity,
                        "renewTime": now,
                        "leaseDurationSeconds": seconds,
                    },
                });
                self.patch(patch, deadline).await
            }
        };
        match result {
            Ok(Ok(lease)) => match lease.metadata.resource_version {
                Some(version) => Outcome::Done(version),
                None => Outcome::Failed,
            },
            Ok(Err(kube::Error::Api(e))) if e.code == 409 => Outcome::Conflict,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, lease = %self.settings.name, "cannot write the leader lease");
                Outcome::Failed
            }
            Err(_) => {
                tracing::warn!(lease = %self.settings.name, "timed out writing the leader lease");
                Outcome::Failed
            }
        }
    }

    /// Clears the holder, if the Lease is still at `version` (ours).
    async fn release(&self, version: &str, deadline: Instant) {
        let patch = json!({
            "metadata": {"resourceVersion": version},
            "spec": {
                "holderIdentity": null,
                "acquireTime": null,
                "renewTime": null,
                "leaseDurationSeconds": null,
            },
        });
        match self.patch(patch, deadline).await {
            Ok(Ok(_)) => tracing::info!(lease = %self.settings.name, "leader lease released"),
            Ok(Err(kube::Error::Api(e))) if e.code == 409 => {
                tracing::info!(lease = %self.settings.name, "the leader lease was already taken over");
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, lease = %self.settings.name, "cannot release the leader lease");
            }
            Err(_) => {
                tracing::warn!(lease = %self.settings.name, "timed out releasing the leader lease");
            }
        }
    }

    async fn patch(
        &self,
        patch: serde_json::Value,
        deadline: Instant,
    ) -> Result<Result<Lease, kube::Error>, tokio::time::error::Elapsed> {
        let params = PatchParams {
            field_manager: Some(self.field_manager()),
            ..PatchParams::default()
        };
        tokio::time::timeout_at(
            deadline,
            self.api
                .patch(&self.settings.name, &params, &Patch::Merge(patch)),
        )
        .await
    }

    /// One field manager per replica, so the Lease's managed fields say who wrote it.
    fn field_manager(&self) -> String {
        format!("{}/{}", super::FIELD_MANAGER, self.settings.identity)
    }
}

fn record(lease: &Lease) -> Record {
    let spec = lease.spec.as_ref();
    Record {
        holder: spec
            .and_then(|s| s.holder_identity.clone())
            .filter(|h| !h.is_empty()),
        version: lease.metadata.resource_version.clone().unwrap_or_default(),
        transitions: spec.and_then(|s| s.lease_transitions).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(3);
    const G: Duration = Duration::from_secs(1);

    fn held_by(holder: Option<&str>, version: &str) -> Outcome<Option<Record>> {
        Outcome::Done(Some(Record {
            holder: holder.map(str::to_owned),
            version: version.to_owned(),
            transitions: 4,
        }))
    }

    /// An elector that took the Lease at `t0` (the claim sent then) as version "10".
    fn leading_since(t0: Instant) -> Elector {
        let mut e = Elector::new("me", D, G, t0);
        assert_eq!(e.next(t0), Step::Read);
        e.read(held_by(None, "9"), t0);
        assert!(matches!(e.next(t0), Step::Claim(Claim::Take { .. }, _)));
        e.claimed(Outcome::Done("10".into()), t0, t0);
        e
    }

    #[test]
    fn a_released_lease_is_taken_at_once_and_begins_a_term() {
        let t0 = Instant::now();
        let mut e = Elector::new("me", D, G, t0);
        assert_eq!(e.next(t0), Step::Read);
        e.read(held_by(None, "9"), t0);
        assert_eq!(
            e.next(t0),
            Step::Claim(
                Claim::Take {
                    version: "9".into(),
                    transitions: 5
                },
                t0 + Duration::from_secs(1)
            )
        );
        e.claimed(Outcome::Done("10".into()), t0, t0);
        assert_eq!(
            e.leadership(),
            Leadership::Leading(Term {
                number: 1,
                until: Some(t0 + D - G)
            })
        );
    }

    #[test]
    fn a_held_lease_is_taken_only_after_it_was_seen_unrenewed_for_the_lease_duration() {
        let t0 = Instant::now();
        let mut e = Elector::new("me", D, G, t0);
        e.next(t0);
        e.read(held_by(Some("other"), "9"), t0);
        let Step::Wait(at) = e.next(t0) else {
            panic!("claimed a held lease")
        };
        // Renewed in the meantime: the count starts again.
        e.read(held_by(Some("other"), "11"), at);
        let renewed = at;
        let mut now = at;
        loop {
            match e.next(now) {
                Step::Wait(at) => now = at,
                Step::Read => e.read(held_by(Some("other"), "11"), now),
                Step::Claim(claim, _) => {
                    assert!(now >= renewed + D, "took it after {:?}", now - renewed);
                    assert_eq!(
                        claim,
                        Claim::Take {
                            version: "11".into(),
                            transitions: 5
                        }
                    );
                    break;
                }
            }
        }
    }

    #[test]
    fn a_leader_whose_renewals_are_not_confirmed_stops_leading_before_others_may_take_over() {
        let t0 = Instant::now();
        let mut e = leading_since(t0);
        let mut now = t0;
        // Every renewal fails or hangs until its deadline.
        while let Leadership::Leading(_) = e.leadership() {
            match e.next(now) {
                Step::Wait(at) => now = at,
                Step::Claim(Claim::Renew { version }, deadline) => {
                    assert_eq!(version, "10");
                    assert!(deadline <= t0 + D - G, "a renewal may hang past the term");
                    let sent = now;
                    now = deadline;
                    e.claimed(Outcome::Failed, sent, now);
                }
                step => panic!("a leader did {step:?}"),
            }
        }
        assert!(now <= t0 + D - G, "led until {:?}", now - t0);
    }

    #[test]
    fn a_leader_learns_at_its_next_renewal_that_the_lease_was_taken_over() {
        let t0 = Instant::now();
        let mut e = leading_since(t0);
        let Step::Wait(at) = e.next(t0) else {
            panic!("renewed at once")
        };
        let Step::Claim(Claim::Renew { .. }, _) = e.next(at) else {
            panic!("no renewal")
        };
        e.claimed(Outcome::Conflict, at, at);
        assert_eq!(e.next(at), Step::Read);
        e.read(held_by(Some("other"), "12"), at);
        assert_eq!(e.leadership(), Leadership::Following);
    }

    #[test]
    fn a_lease_taken_again_after_a_lost_term_begins_a_new_term() {
        let t0 = Instant::now();
        let mut e = leading_since(t0);
        let later = t0 + D;
        assert!(matches!(e.next(later), Step::Read), "the term is over");
        assert_eq!(e.leadership(), Leadership::Following);
        e.read(held_by(Some("me"), "10"), later);
        assert!(matches!(e.next(later), Step::Claim(Claim::Take { .. }, _)));
        e.claimed(Outcome::Done("13".into()), later, later);
        let Leadership::Leading(term) = e.leadership() else {
            panic!("not leading")
        };
        assert_eq!(term.number, 2);
    }

    #[test]
    fn a_term_allows_its_own_writes_until_its_deadline_only() {
        let t0 = Instant::now();
        let lead = Leadership::Leading(Term {
            number: 2,
            until: Some(t0 + D),
        });
        assert!(lead.allows(2, t0));
        assert!(!lead.allows(1, t0), "a past term");
        assert!(!lead.allows(2, t0 + D), "past the deadline");
        assert!(!Leadership::Following.allows(2, t0));
    }
}
