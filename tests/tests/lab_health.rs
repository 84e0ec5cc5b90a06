//! The lab (the real cluster of `./lab`) says "up" only when it works, and names what does not: a missing program before
//! anything is built, and in a running lab a dead kube-proxy or a stopped router daemon —
//! things that leave no trace in the apiserver and that a user would otherwise only notice as
//! a LoadBalancer IP that does not answer.
//!
//! Needs root; skipped otherwise.

use std::collections::BTreeSet;
use std::os::unix::fs::symlink;
use std::time::Duration;

use ferrolb_tests::l2cluster::wait_for;
use ferrolb_tests::lab::{Check, ClusterLab};
use ferrolb_tests::netns::is_root;
use ferrolb_tests::routers::RouterKind;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const SETTLE: Duration = Duration::from_secs(60);

fn failing(checks: &[Check]) -> BTreeSet<String> {
    checks
        .iter()
        .filter(|c| !c.ok())
        .map(|c| c.subject.clone())
        .collect()
}

fn problem<'a>(checks: &'a [Check], subject: &str) -> &'a str {
    checks
        .iter()
        .find(|c| c.subject == subject)
        .and_then(|c| c.problem.as_deref())
        .unwrap_or_default()
}

#[tokio::test]
async fn health_names_a_killed_kube_proxy_and_a_stopped_router_daemon() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let lab = ClusterLab::start(2, RouterKind::Bird, Duration::from_secs(120))
        .await
        .expect("lab starts");

    // A fresh lab passes every check, and checks every part.
    let healthy = lab
        .wait_healthy(SETTLE)
        .await
        .unwrap_or_else(|e| panic!("a fresh lab is healthy: {e}"));
    let subjects: BTreeSet<&str> = healthy.iter().map(|c| c.subject.as_str()).collect();
    for expected in [
        "node node-1",
        "speaker on node-2",
        "kube-proxy on node-1",
        "kube-proxy on node-2",
        "router bird",
        "BGP session node-1 - router",
        "BGP session node-2 - router",
    ] {
        assert!(
            subjects.contains(expected),
            "no check of {expected}: {subjects:?}"
        );
    }

    // node-2's kube-proxy dies. Its nftables rules stay behind, so only a check of the process
    // itself notices; nothing else is affected.
    let state = lab.state().clone();
    let node_2 = state
        .nodes
        .iter()
        .find(|n| n.name == "node-2")
        .expect("node-2");
    kill(
        Pid::from_raw(i32::try_from(node_2.kube_proxy_pid).expect("pid")),
        Signal::SIGKILL,
    )
    .expect("kube-proxy killed");
    // While the kernel tears the process down its socket closes before it becomes a zombie,
    // so the check may first see the health port refuse; it settles on "not running".
    let checks = wait_for(
        "the health check notices the process is gone",
        Duration::from_secs(10),
        || async {
            let checks = lab.health().await;
            let gone = problem(&checks, "kube-proxy on node-2").contains("not running");
            Ok(gone.then_some(checks))
        },
    )
    .await
    .expect("a failing check");
    assert_eq!(
        failing(&checks),
        BTreeSet::from(["kube-proxy on node-2".to_owned()]),
        "{checks:#?}"
    );
    let why = problem(&checks, "kube-proxy on node-2");
    assert!(why.contains("not running"), "{why}");
    assert!(why.contains(&node_2.kube_proxy_pid.to_string()), "{why}");

    // The router's daemon stops: the check names it, and the sessions go with it.
    let (name, pid) = state.router.daemons.first().cloned().expect("a daemon");
    assert_eq!(name, "bird");
    kill(
        Pid::from_raw(i32::try_from(pid).expect("pid")),
        Signal::SIGKILL,
    )
    .expect("bird killed");
    let checks = wait_for(
        "the router check fails",
        Duration::from_secs(10),
        || async {
            let checks = lab.health().await;
            Ok(failing(&checks).contains("router bird").then_some(checks))
        },
    )
    .await
    .expect("the router check fails");
    assert_eq!(
        problem(&checks, "router bird"),
        format!("bird (pid {pid}) is not running")
    );
    for node in ["node-1", "node-2"] {
        assert_eq!(
            problem(&checks, &format!("BGP session {node} - router")),
            "not Established",
            "{checks:#?}"
        );
    }
    // And the lab as a whole reports them, one line each.
    let err = lab
        .wait_healthy(Duration::from_secs(1))
        .await
        .expect_err("unhealthy");
    let text = err.to_string();
    assert!(
        text.contains("FAIL  kube-proxy on node-2: not running"),
        "{text}"
    );
    assert!(text.contains("FAIL  router bird: bird"), "{text}");
}

#[test]
fn up_refuses_to_start_without_nftables_and_says_so() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    // A PATH with everything the lab runs but `nft`.
    let bin = tempfile::tempdir().expect("dir");
    let path = std::env::var_os("PATH").unwrap_or_default();
    for program in [
        "ip",
        "conntrack",
        "containerd",
        "ctr",
        "runc",
        "unshare",
        "bird",
        "birdc",
        "setsid",
        "bash",
    ] {
        let found = std::env::split_paths(&path)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{program} is installed here"));
        symlink(found, bin.path().join(program)).expect("symlink");
    }
    let state = tempfile::tempdir().expect("state dir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrolb-lab"))
        .args(["up", "--nodes", "1"])
        .env("PATH", bin.path())
        .env("FERROLB_LAB_STATE", state.path())
        .output()
        .expect("ferrolb-lab runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "up succeeded without nft: {stderr}");
    assert!(
        stderr.contains("nft is missing (kube-proxy programs the Services' rules with it; Debian package nftables)"),
        "{stderr}"
    );
    assert!(stderr.contains("./lab"), "no way out named: {stderr}");
    assert!(
        !state.path().join("lab.log").exists(),
        "a supervisor was started"
    );
}
