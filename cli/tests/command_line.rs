//! The plugin's command line: subcommands parse, `migrate` works on a file without a cluster,
//! and mistakes end with a message and a non-zero exit.

use std::process::Command;

fn plugin(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-ferrolb"))
        .args(args)
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .expect("runs")
}

#[test]
fn migrate_converts_a_file_and_prints_warnings_on_stderr() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/metallb/configmaptocrs-config-data-full.yaml"
    );
    let fixture = if std::path::Path::new(fixture).exists() {
        fixture.to_owned()
    } else {
        // Any fixture will do.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/metallb");
        let first = std::fs::read_dir(dir)
            .expect("fixtures")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "yaml"))
            .expect("a yaml fixture");
        first.to_string_lossy().into_owned()
    };
    let out = plugin(&["migrate", "-f", &fixture]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(yaml.contains("apiVersion: ferrolb.io/v1beta1"), "{yaml}");
}

#[test]
fn explain_refuses_a_target_that_is_not_a_service() {
    let out = plugin(&["explain", "deployment/web"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not deployment"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn conflicting_simulate_flags_are_a_usage_error() {
    let out = plugin(&["simulate", "--node-down", "a", "--config", "x.yaml"]);
    assert_eq!(out.status.code(), Some(2), "clap refuses conflicting flags");
}

#[test]
fn a_missing_migrate_file_is_reported() {
    let out = plugin(&["migrate", "-f", "/nonexistent/metallb.yaml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}
