//! The transitions of RFC 4271 §8.2.2, one function per state. Every error path with a BGP
//! connection sends its NOTIFICATION before closing.

use std::time::{Duration, Instant};

use super::negotiate::{negotiate, our_open};
use super::{Down, DownReason, Fsm, Input, Output, State, Timer};
use crate::packet::{Family, Message, Notification, cease_subcode, error_code, fsm_subcode};

/// RFC 4271 §8.2.2: the hold timer while waiting for the peer's OPEN ("a large value";
/// 4 minutes is suggested).
const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);

/// Whether a session that ends this way restarts by itself after the IdleHold delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restart {
    Yes,
    No,
}

impl Fsm {
    /// Feeds one input; returns what to do, in order.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        if let Input::TimerExpired(timer) = input {
            match self.timers[timer.index()] {
                Some(deadline) if deadline <= now => self.timers[timer.index()] = None,
                // Cancelled, re-armed later, or early: not an expiry.
                _ => return out,
            }
        }
        match self.state {
            State::Idle => self.idle(input, now, &mut out),
            State::Connect | State::Active => self.connecting(input, now, &mut out),
            State::OpenSent => self.open_sent(input, now, &mut out),
            State::OpenConfirm => self.open_confirm(input, now, &mut out),
            State::Established => self.established(input, now, &mut out),
        }
        out
    }

    fn idle(&mut self, input: Input, now: Instant, out: &mut Vec<Output>) {
        match input {
            Input::ManualStart => {
                self.stopped = false;
                self.next_delay = self.config.backoff.initial;
                self.cancel(Timer::IdleHold, out);
                self.start(now, out);
            }
            Input::TimerExpired(Timer::IdleHold) => self.start(now, out),
            // Waiting to retry: the retry is cancelled and the session stays down.
            Input::ManualStop { .. } => {
                self.cancel_all(out);
                self.stopped = true;
                self.next_delay = self.config.backoff.initial;
            }
            // Not ours to take while stopped: refuse the peer's connection.
            Input::TcpConnectionConfirmed if self.stopped => out.push(Output::Close),
            // Waiting to restart (or after losing a collision): the peer dialled us, which
            // is an automatic start on its connection (RFC 4271 event 5) — the backoff is
            // there to spare the peer our attempts, not to refuse its own.
            Input::TcpConnectionConfirmed => {
                self.cancel(Timer::IdleHold, out);
                self.open_on_connection(now, out);
            }
            _ => {}
        }
    }

    /// ManualStart and automatic start: connect out, or wait for the peer.
    fn start(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.config.passive {
            self.state = State::Active;
        } else {
            self.connect(now, out);
        }
    }

    fn connect(&mut self, now: Instant, out: &mut Vec<Output>) {
        let delay = self.backoff();
        self.arm(Timer::ConnectRetry, now + delay, out);
        out.push(Output::Connect);
        self.state = State::Connect;
    }

    /// Connect and Active: no BGP connection yet.
    fn connecting(&mut self, input: Input, now: Instant, out: &mut Vec<Output>) {
        match input {
            Input::ManualStart | Input::BfdDown => {}
            Input::ManualStop { .. } => self.stop(None, out),
            Input::TimerExpired(Timer::ConnectRetry) => {
                if self.state == State::Connect {
                    // The attempt is taking too long: abandon it and try again.
                    out.push(Output::Close);
                }
                self.connect(now, out);
            }
            Input::TcpConnectionConfirmed => {
                self.cancel(Timer::ConnectRetry, out);
                self.open_on_connection(now, out);
            }
            Input::TcpConnectionFails => {
                self.down(DownReason::ConnectionFailed, None, Restart::Yes, now, out);
            }
            Input::Received(m) => {
                let reason = DownReason::UnexpectedEvent(m.kind().label());
                self.down(reason, None, Restart::Yes, now, out);
            }
            Input::DecodeError(_) => {
                let reason = DownReason::UnexpectedEvent("message");
                self.down(reason, None, Restart::Yes, now, out);
            }
            Input::TimerExpired(_) | Input::CollisionDump => {
                let reason = DownReason::UnexpectedEvent("event");
                self.down(reason, None, Restart::Yes, now, out);
            }
        }
    }

    /// A connection is up: send our OPEN and wait for the peer's.
    fn open_on_connection(&mut self, now: Instant, out: &mut Vec<Output>) {
        out.push(Output::Send(Message::Open(our_open(&self.config))));
        self.arm(Timer::Hold, now + OPEN_HOLD_TIME, out);
        self.state = State::OpenSent;
    }

    fn open_sent(&mut self, input: Input, now: Instant, out: &mut Vec<Output>) {
        match input {
            Input::Received(Message::Open(open)) => match negotiate(&self.config, &open) {
                Ok(negotiated) => {
                    out.push(Output::Send(Message::Keepalive));
                    match negotiated.keepalive {
                        Some(keepalive) => {
                            self.arm(Timer::Keepalive, now + keepalive, out);
                            self.arm(Timer::Hold, now + negotiated.hold_time, out);
                        }
                        None => self.cancel(Timer::Hold, out),
                    }
                    self.negotiated = Some(negotiated);
                    self.state = State::OpenConfirm;
                }
                Err(refusal) => {
                    let reason = DownReason::ProtocolError {
                        sent: refusal.notification.clone(),
                        detail: refusal.detail,
                    };
                    self.down(reason, Some(refusal.notification), Restart::Yes, now, out);
                }
            },
            Input::TcpConnectionFails => {
                // RFC 4271: back to Active, to connect again when ConnectRetry expires.
                out.push(Output::Close);
                self.cancel_all(out);
                self.emit_down(DownReason::ConnectionFailed, out);
                self.state = State::Active;
                if !self.config.passive {
                    let delay = self.backoff();
                    self.arm(Timer::ConnectRetry, now + delay, out);
                }
            }
            other => self.connected(other, fsm_subcode::UNEXPECTED_IN_OPEN_SENT, now, out),
        }
    }

    fn open_confirm(&mut self, input: Input, now: Instant, out: &mut Vec<Output>) {
        match input {
            Input::Received(Message::Keepalive) => {
                self.restart_hold(now, out);
                // The backoff starts over only once the session has proved stable (`down`).
                self.established_at = Some(now);
                self.state = State::Established;
                if let Some(negotiated) = &self.negotiated {
                    out.push(Output::Established(negotiated.clone()));
                }
            }
            other => self.connected(other, fsm_subcode::UNEXPECTED_IN_OPEN_CONFIRM, now, out),
        }
    }

    fn established(&mut self, input: Input, now: Instant, out: &mut Vec<Output>) {
        match input {
            Input::Received(Message::Keepalive) => self.restart_hold(now, out),
            Input::Received(Message::Update(update)) => {
                self.restart_hold(now, out);
                let looped = update.attributes.contains_as(self.config.local_asn);
                out.push(Output::UpdateReceived { update, looped });
            }
            Input::Received(Message::RouteRefresh(rr)) => {
                self.restart_hold(now, out);
                // RFC 2918 §4: a family we did not negotiate is ignored; subtypes 1 and 2
                // (RFC 7313) mark a refresh we would be receiving, not one asked of us.
                let family = Family::from_afi_safi(rr.afi_safi).filter(|f| {
                    self.negotiated
                        .as_ref()
                        .is_some_and(|n| n.families.contains(*f))
                });
                if let (Some(family), 0) = (family, rr.subtype) {
                    out.push(Output::RouteRefreshRequested(family));
                }
            }
            other => self.connected(other, fsm_subcode::UNEXPECTED_IN_ESTABLISHED, now, out),
        }
    }

    /// The events OpenSent, OpenConfirm and Established handle alike. Anything else is a
    /// Finite State Machine Error with the state's RFC 6608 subcode.
    fn connected(&mut self, input: Input, unexpected: u8, now: Instant, out: &mut Vec<Output>) {
        match input {
            Input::ManualStart | Input::TcpConnectionConfirmed => {}
            Input::ManualStop { message } => {
                self.stop(Some(Notification::administrative_shutdown(&message)), out);
            }
            Input::TimerExpired(Timer::Hold) => {
                let n = Notification::hold_timer_expired();
                self.down(
                    DownReason::HoldTimerExpired,
                    Some(n),
                    Restart::Yes,
                    now,
                    out,
                );
            }
            Input::TimerExpired(Timer::Keepalive) if self.state != State::OpenSent => {
                out.push(Output::Send(Message::Keepalive));
                if let Some(keepalive) = self.negotiated.as_ref().and_then(|n| n.keepalive) {
                    self.arm(Timer::Keepalive, now + keepalive, out);
                }
            }
            Input::TcpConnectionFails => {
                self.down(DownReason::ConnectionFailed, None, Restart::Yes, now, out);
            }
            Input::Received(Message::Notification(n)) => {
                let reason = DownReason::NotificationReceived(n);
                self.down(reason, None, Restart::Yes, now, out);
            }
            Input::DecodeError(e) => {
                let n = e.notification();
                let reason = DownReason::ProtocolError {
                    sent: n.clone(),
                    detail: e.to_string(),
                };
                self.down(reason, Some(n), Restart::Yes, now, out);
            }
            Input::CollisionDump => {
                let n = Notification::cease(cease_subcode::CONNECTION_COLLISION_RESOLUTION);
                self.down(
                    DownReason::CollisionResolved,
                    Some(n),
                    Restart::No,
                    now,
                    out,
                );
            }
            Input::BfdDown => {
                let n = Notification::cease(cease_subcode::BFD_DOWN);
                self.down(DownReason::BfdDown, Some(n), Restart::Yes, now, out);
            }
            other => {
                let n = Notification::new(error_code::FSM, unexpected, vec![]);
                let reason = DownReason::ProtocolError {
                    sent: n.clone(),
                    detail: format!("unexpected {} in {}", describe(&other), self.state),
                };
                self.down(reason, Some(n), Restart::Yes, now, out);
            }
        }
    }

    /// ManualStop: NOTIFICATION if connected, close, Idle, no automatic restart.
    fn stop(&mut self, notification: Option<Notification>, out: &mut Vec<Output>) {
        if let Some(n) = notification {
            out.push(Output::Send(Message::Notification(n)));
        }
        out.push(Output::Close);
        self.cancel_all(out);
        self.emit_down(DownReason::ManualStop, out);
        self.state = State::Idle;
        self.stopped = true;
        self.negotiated = None;
        self.established_at = None;
        self.next_delay = self.config.backoff.initial;
    }

    /// Any other end: NOTIFICATION if there is one, close, Idle, and (unless told not to)
    /// the IdleHold timer for the automatic restart.
    fn down(
        &mut self,
        reason: DownReason,
        notification: Option<Notification>,
        restart: Restart,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        if let Some(n) = notification {
            out.push(Output::Send(Message::Notification(n)));
        }
        out.push(Output::Close);
        self.cancel_all(out);
        self.emit_down(reason, out);
        if self.state == State::Established
            && self.established_at.is_some_and(|at| {
                now.saturating_duration_since(at) >= self.config.reset_backoff_after
            })
        {
            self.next_delay = self.config.backoff.initial;
        }
        self.established_at = None;
        self.state = State::Idle;
        self.negotiated = None;
        if restart == Restart::Yes {
            let delay = self.backoff();
            self.arm(Timer::IdleHold, now + delay, out);
        }
    }

    fn emit_down(&self, reason: DownReason, out: &mut Vec<Output>) {
        out.push(Output::Down(Down {
            from: self.state,
            reason,
        }));
    }

    fn restart_hold(&mut self, now: Instant, out: &mut Vec<Output>) {
        let hold = self.negotiated.as_ref().map(|n| n.hold_time);
        if let Some(hold) = hold.filter(|h| !h.is_zero()) {
            self.arm(Timer::Hold, now + hold, out);
        }
    }

    /// The next delay of the backoff, which then doubles up to its maximum.
    fn backoff(&mut self) -> Duration {
        let delay = self.next_delay;
        self.next_delay = (delay * 2).min(self.config.backoff.max);
        delay
    }

    fn arm(&mut self, timer: Timer, deadline: Instant, out: &mut Vec<Output>) {
        self.timers[timer.index()] = Some(deadline);
        out.push(Output::ArmTimer { timer, deadline });
    }

    fn cancel(&mut self, timer: Timer, out: &mut Vec<Output>) {
        if self.timers[timer.index()].take().is_some() {
            out.push(Output::CancelTimer(timer));
        }
    }

    fn cancel_all(&mut self, out: &mut Vec<Output>) {
        for timer in Timer::ALL {
            self.cancel(timer, out);
        }
    }
}

fn describe(input: &Input) -> String {
    match input {
        Input::Received(m) => format!("{} message", m.kind().label()),
        Input::TimerExpired(t) => format!("{t:?} timer expiry"),
        other => format!("{other:?}"),
    }
}
