//! One Service's way to its IPs (MetalLB's `convergeBalancer`, deterministic): keep what it
//! holds if it may, otherwise release it, then allocate what it lacks. Level-triggered: running
//! it again on the same inputs changes nothing.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ferrolb_config::Family;

use super::request::list;
use super::{AllocError, Allocator, Assignment, FamilyPolicy, ServiceRequest};

/// Something worth telling the Service's owner (the kube edge turns these into Events).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// IPs were assigned (`additional`: the second family of a PreferDualStack Service).
    Allocated {
        /// the assignment
        assignment: Assignment,
        /// only the missing family was added
        additional: bool,
    },
    /// The IPs the Service held were taken back.
    ClearAssignment {
        /// why
        reason: String,
    },
    /// No IPs could be assigned.
    AllocationFailed(AllocError),
}

/// The result of [`Allocator::converge`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Converged {
    /// What the Service holds now (`None`: nothing; its status must be cleared).
    pub assignment: Option<Assignment>,
    /// What happened, for Events.
    pub notes: Vec<Note>,
    /// Whether IPs were released, so pending Services may now fit.
    pub released: bool,
}

/// Whether `current` has one IP of each of some of the families `request` wants, and no other.
fn fits_families(request: &ServiceRequest, current: &[IpAddr]) -> bool {
    let wanted: BTreeSet<Family> = request.wanted_families().into_iter().collect();
    !current.is_empty()
        && current.iter().all(|ip| wanted.contains(&Family::of(ip)))
        && current.len()
            == current
                .iter()
                .map(Family::of)
                .collect::<BTreeSet<_>>()
                .len()
}

fn same_ips(a: &[IpAddr], b: &[IpAddr]) -> bool {
    a.iter().collect::<BTreeSet<_>>() == b.iter().collect::<BTreeSet<_>>()
}

impl Allocator {
    /// Registers `request` as the holder of `current` (the IPs its status shows) if it may keep
    /// them, exactly as [`Allocator::converge`] would keep them; otherwise changes nothing.
    /// Rebuilding after a restart or a leader change registers every such holder first, and
    /// only then converges anyone: a Service that must move, or that asks for another's IP,
    /// can then never take an IP that a later Service holds. Returns whether it holds them.
    pub fn keep(&mut self, request: &ServiceRequest, current: &[IpAddr]) -> bool {
        let wanted = request.wanted_families();
        let enough_families = match request.policy {
            FamilyPolicy::RequireDualStack => wanted.len() >= 2,
            _ => !wanted.is_empty(),
        };
        let usable = enough_families
            && fits_families(request, current)
            && (request.requested_ips.is_empty() || same_ips(&request.requested_ips, current));
        usable && self.assign(request, current).is_ok()
    }

    /// Brings `request` to its IPs, starting from `current` (the IPs in its status).
    pub fn converge(&mut self, request: &ServiceRequest, current: &[IpAddr]) -> Converged {
        let mut out = Converged {
            assignment: None,
            notes: Vec::new(),
            released: false,
        };
        let wanted: BTreeSet<Family> = request.wanted_families().into_iter().collect();
        let precondition = if self.pools().next().is_none() {
            Some(AllocError::NoPools)
        } else if wanted.is_empty() {
            Some(AllocError::NoClusterIp)
        } else if request.policy == FamilyPolicy::RequireDualStack && wanted.len() < 2 {
            Some(AllocError::NotEnoughClusterIps(wanted.len()))
        } else {
            None
        };
        if let Some(err) = precondition {
            out.released = self.release(&request.key);
            out.notes.push(Note::AllocationFailed(err));
            return out;
        }

        // Keep the current IPs if they still fit everything the Service asks for.
        let mut held = None;
        if fits_families(request, current) {
            let reason = if !request.requested_ips.is_empty()
                && !same_ips(&request.requested_ips, current)
            {
                Some(format!(
                    "current IPs {} are not the requested {}, will assign the requested ones",
                    list(current),
                    list(&request.requested_ips)
                ))
            } else {
                match self.assign(request, current) {
                    Ok(()) => None,
                    Err(e) => Some(format!(
                        "current IPs {} are not allowed any more ({e}), will attempt a new assignment",
                        list(current)
                    )),
                }
            };
            match reason {
                None => held = self.assignment(&request.key).cloned(),
                Some(reason) => {
                    out.released |= self.release(&request.key);
                    out.notes.push(Note::ClearAssignment { reason });
                }
            }
        } else if self.release(&request.key) {
            // The allocator remembered IPs the status no longer shows (written by someone
            // else, or cleared by hand): start over.
            out.released = true;
        }

        if let Some(assignment) = held {
            // PreferDualStack gets the other family later if it can — unless the Service named
            // its IPs: then it holds exactly those (as MetalLB does), or every round would add
            // the other family and the next would take it away again.
            if request.policy == FamilyPolicy::PreferDualStack
                && request.requested_ips.is_empty()
                && assignment.ips.len() < wanted.len()
                && let Some(more) = self.add_missing_family(request)
            {
                out.notes.push(Note::Allocated {
                    assignment: more.clone(),
                    additional: true,
                });
                out.assignment = Some(more);
                return out;
            }
            out.assignment = Some(assignment);
            return out;
        }

        let result = if request.requested_ips.is_empty() {
            self.allocate(request)
        } else {
            self.assign(request, &request.requested_ips).map(|()| {
                self.assignment(&request.key)
                    .cloned()
                    .unwrap_or(Assignment {
                        pool: Default::default(),
                        ips: request.requested_ips.clone(),
                    })
            })
        };
        match result {
            Ok(assignment) => {
                out.notes.push(Note::Allocated {
                    assignment: assignment.clone(),
                    additional: false,
                });
                out.assignment = Some(assignment);
            }
            Err(e) => {
                out.released |= self.release(&request.key);
                out.notes.push(Note::AllocationFailed(e));
            }
        }
        out
    }
}
