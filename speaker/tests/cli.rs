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

/// The default of `flag` as `--help` prints it.
fn default_of(help: &str, flag: &str) -> Option<String> {
    // The option's own heading, not a mention of it in another's description.
    let start = help.find(&format!("\n      {flag} "))? + 1;
    let rest = &help[start..];
    // The next option's heading ends this one's entry.
    let next = rest[flag.len()..]
        .find("\n      -")
        .map_or(rest.len(), |i| i + flag.len());
    let entry = &rest[..next];
    let at = entry.find("[default: ")? + "[default: ".len();
    Some(entry[at..].split(']').next()?.to_owned())
}

#[test]
fn the_default_ports_on_the_host_network_are_not_metallbs_nor_kubernetes() {
    let out = speaker().arg("--help").output().expect("runs");
    let help = String::from_utf8_lossy(&out.stdout);
    let metrics: u16 = default_of(&help, "--metrics-port")
        .unwrap_or_else(|| panic!("no --metrics-port default in\n{help}"))
        .parse()
        .expect("a port");
    let membership: u16 = default_of(&help, "--memberlist-port")
        .expect("a --memberlist-port default")
        .parse()
        .expect("a port");
    // MetalLB's speaker: metrics 7472, FRR metrics 7473, memberlist 7946 (all on the host
    // network, so both can run during a migration only if ours differ); node exporter 9100;
    // kubelet, kube-proxy, controller-manager, scheduler 10248-10259.
    let taken = [7472, 7473, 7946, 9100];
    for port in [metrics, membership] {
        assert!(!taken.contains(&port), "{port} clashes");
        assert!(
            !(10248..=10259).contains(&port),
            "{port} clashes with Kubernetes"
        );
    }
    assert_ne!(metrics, membership);
    // No address default: the metrics bind to the node's address unless told otherwise.
    assert_eq!(default_of(&help, "--metrics-addr"), None, "{help}");
}
