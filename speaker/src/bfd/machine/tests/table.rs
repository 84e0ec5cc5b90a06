//! Every (our state, what the remote reports) pair of RFC 5880 §6.2 and §6.8.6, and the
//! detection timer in every state: the state reached and the diagnostic it carries.

use super::*;

/// Brings a started session into `state`.
fn session_in(state: State) -> Session {
    let mut s = Session::started(Config::default());
    match state {
        State::Down => {}
        State::Init => {
            s.receive(remote(State::Down));
        }
        State::Up => {
            s.receive(remote(State::Down));
            s.receive(remote(State::Init));
        }
        State::AdminDown => {
            s.receive(remote(State::Down));
            s.feed(Input::AdminDown);
        }
    }
    assert_eq!(s.state(), state);
    s
}

const STATES: [State; 4] = [State::AdminDown, State::Down, State::Init, State::Up];

/// What the session moves to: `None` stays put.
fn expected(ours: State, theirs: State) -> Option<(State, Diagnostic)> {
    use Diagnostic::{NeighborSignaledDown as Neighbor, None as NoDiag};
    use State::*;
    match (ours, theirs) {
        (AdminDown, _) => None,
        (Down, AdminDown) => None,
        (Down, Down) => Some((Init, NoDiag)),
        (Down, Init) => Some((Up, NoDiag)),
        (Down, Up) => None,
        (Init, AdminDown) => Some((Down, Neighbor)),
        (Init, Down) => None,
        (Init, Init) | (Init, Up) => Some((Up, NoDiag)),
        (Up, AdminDown) | (Up, Down) => Some((Down, Neighbor)),
        (Up, Init) | (Up, Up) => None,
    }
}

#[test]
fn every_state_meets_every_remote_state_as_rfc_5880_says() {
    for ours in STATES {
        for theirs in STATES {
            let mut s = session_in(ours);
            let out = s.receive(remote(theirs));
            let got = transition(&out).map(|t| (t.to, t.diag));
            assert_eq!(
                got,
                expected(ours, theirs),
                "{ours} receiving {theirs}: {out:#?}"
            );
            if let Some(t) = transition(&out) {
                assert_eq!(t.from, ours);
                assert_eq!(t.remote, theirs);
            }
        }
    }
}

#[test]
fn the_detection_time_passing_takes_init_and_up_down_and_leaves_the_rest() {
    for ours in [State::Down, State::Init, State::Up] {
        let mut s = session_in(ours);
        if ours == State::Down {
            // Heard, but still Down.
            s.receive(remote(State::AdminDown));
        }
        let out = s.expire(Timer::Detection);
        let expected = matches!(ours, State::Init | State::Up)
            .then_some((State::Down, Diagnostic::ControlDetectionTimeExpired));
        assert_eq!(
            transition(&out).map(|t| (t.to, t.diag)),
            expected,
            "{ours}: {out:#?}"
        );
        assert_eq!(s.machine.snapshot().remote_discriminator, 0, "{ours}");
    }
}

#[test]
fn only_a_fall_from_up_that_the_remote_did_not_ask_for_is_a_path_failure() {
    let cases = [
        (State::Up, State::Down, State::Down, true),
        (State::Up, State::Down, State::Up, true),
        (State::Up, State::Down, State::AdminDown, false),
        (State::Init, State::Down, State::AdminDown, false),
        (State::Init, State::Down, State::Init, false),
        (State::Up, State::AdminDown, State::Up, false),
        (State::Down, State::Init, State::Down, false),
    ];
    for (from, to, remote, failure) in cases {
        let t = Transition {
            from,
            to,
            diag: Diagnostic::None,
            remote,
        };
        assert_eq!(t.is_path_failure(), failure, "{t:?}");
    }
}
