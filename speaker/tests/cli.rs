//! The speaker's command line: bad settings end with a clear message and a usage exit code,
//! before anything touches the network or the cluster.

use std::process::Command;

fn speaker() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrolb-speaker"))
}

#[test]
fn an_empty_node_name_is_refused_with_exit_code_2() {
    let out = speaker()
        .args(["--node-name", "  "])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--node-name"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_missing_node_name_is_refused_by_the_parser() {
    let out = speaker()
        .env_remove("FERROLB_NODE_NAME")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_exclude_pattern_that_is_not_anchored_is_refused() {
    let out = speaker()
        .args(["--node-name", "n1", "--exclude-interfaces", "eth.*"])
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    // Logs go to stdout, clap's messages to stderr.
    let err = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(err.contains("exclude-interfaces"), "{err}");
}
