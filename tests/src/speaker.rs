//! Runs a real speaker binary inside a node's network namespace, talking to the test apiserver
//! through a [`Forwarder`], so it can be killed (SIGKILL), stopped (SIGTERM) or frozen like a
//! speaker on a real node. The binary is `ferrolb-speaker` ([`SpeakerProcess::start`]) or, for
//! side-by-side benchmarks, MetalLB's speaker ([`SpeakerCommand::metallb`]).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use nix::sys::signal::Signal;

use crate::ControlPlane;
use crate::apiserver::Process;
use crate::forward::Forwarder;

/// The `ferrolb-speaker` binary next to the test executable (`target/<profile>/`), or the one
/// `FERROLB_SPEAKER_BIN` names (a benchmark of the image's static musl build, say).
pub fn binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("FERROLB_SPEAKER_BIN") {
        return Ok(PathBuf::from(path));
    }
    crate::fixtures::workspace_binary("ferrolb-speaker")
}

/// What to run as a node's speaker: the program, its arguments and environment (the kubeconfig
/// is added by [`SpeakerProcess::spawn`]), and where it reports readiness.
#[derive(Clone, Debug)]
pub struct SpeakerCommand {
    /// The name used in messages (`ferrolb-speaker`, `metallb-speaker`).
    pub name: &'static str,
    /// The binary.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// The address (inside the node's namespace) and path answering 200 once it is ready.
    pub ready: (String, String),
    /// The credentials to run with (a kubeconfig on the control plane); `None`: the admin's.
    pub kubeconfig: Option<PathBuf>,
}

impl SpeakerCommand {
    /// `ferrolb-speaker --node-name <node> --metrics-addr 127.0.0.1:7472 <extra…>`, ready on
    /// `/readyz` of its metrics address.
    pub fn ferrolb(node: &str, extra: &[&str]) -> anyhow::Result<Self> {
        let mut args: Vec<String> = ["--node-name", node, "--metrics-addr", "127.0.0.1:7472"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        Ok(Self {
            name: "ferrolb-speaker",
            program: binary()?,
            args,
            env: vec![(
                "RUST_LOG".into(),
                std::env::var("FERROLB_SPEAKER_LOG")
                    .unwrap_or_else(|_| "info,ferrolb_speaker=debug,kube=warn".into()),
            )],
            ready: ("127.0.0.1:7472".into(), "/readyz".into()),
            kubeconfig: None,
        })
    }

    /// MetalLB's speaker (`speaker` of `go.universe.tf/metallb`, v0.16) for `node`, as its
    /// DaemonSet runs it: namespace `metallb-system`, its placeholder Pod `pod`, memberlist bound
    /// to the node's LAN address `ml_bind` and keyed by the file `secretkey` in `secret_dir`,
    /// peers found through the Pods labelled `app=metallb,component=speaker` in that namespace
    /// (v0.16 has no separate memberlist namespace flag). Metrics (HTTPS,
    /// `--port`) and health probes (`--health-probe-port`, bound to 127.0.0.1) stay inside the
    /// node's namespace; ready on the probe's `/readyz`.
    pub fn metallb(
        binary: &Path,
        node: &str,
        pod: &str,
        ml_bind: std::net::IpAddr,
        secret_dir: &Path,
    ) -> Self {
        let args = [
            "--namespace",
            METALLB_NAMESPACE,
            "--port",
            "7472",
            "--health-probe-port",
            "17472",
            "--ml-bindaddr",
            &ml_bind.to_string(),
            "--ml-labels",
            METALLB_SPEAKER_LABELS,
            "--ml-secret-key-path",
            &secret_dir.display().to_string(),
            "--log-level",
            "info",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        Self {
            name: "metallb-speaker",
            program: binary.to_owned(),
            args,
            env: vec![
                ("METALLB_NODE_NAME".into(), node.to_owned()),
                ("METALLB_POD_NAME".into(), pod.to_owned()),
            ],
            ready: ("127.0.0.1:17472".into(), "/readyz".into()),
            kubeconfig: None,
        }
    }
}

/// MetalLB's namespace in MetalLB clusters.
pub const METALLB_NAMESPACE: &str = "metallb-system";
/// The labels of MetalLB's speaker Pods (its memberlist finds peers by them).
pub const METALLB_SPEAKER_LABELS: &str = "app=metallb,component=speaker";

/// A speaker process on one node.
#[derive(Debug)]
pub struct SpeakerProcess {
    node: String,
    process: Process,
    _forwarder: Forwarder,
    log: PathBuf,
    log_start: u64,
    ready: (String, String),
}

impl SpeakerProcess {
    /// Starts a `ferrolb-speaker` for `node` inside network namespace `netns`, with admin
    /// credentials on `cp`, `extra` flags appended. Logs go to `<dir>/speaker-<node>.log`.
    pub fn start(
        cp: &ControlPlane,
        netns: &str,
        node: &str,
        dir: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        Self::spawn(cp, netns, node, dir, &SpeakerCommand::ferrolb(node, extra)?)
    }

    /// Starts `command` as the speaker of `node` inside network namespace `netns`, with its
    /// credentials on `cp` (admin by default; `KUBECONFIG`, through a forwarder on the
    /// namespace's loopback).
    /// Logs go to `<dir>/speaker-<node>.log` (appended to across restarts).
    pub fn spawn(
        cp: &ControlPlane,
        netns: &str,
        node: &str,
        dir: &Path,
        command: &SpeakerCommand,
    ) -> anyhow::Result<Self> {
        let forwarder = Forwarder::start(netns, cp.address())?;
        let kubeconfig = dir.join(format!("kubeconfig-{node}"));
        let credentials = command
            .kubeconfig
            .as_deref()
            .unwrap_or_else(|| cp.kubeconfig_path());
        let text = std::fs::read_to_string(credentials)
            .with_context(|| format!("cannot read {}", credentials.display()))?
            .replace(cp.server_url(), &forwarder.https_url());
        std::fs::write(&kubeconfig, text).context("cannot write the node kubeconfig")?;
        let log = dir.join(format!("speaker-{node}.log"));
        let log_start = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns])
            .arg(&command.program)
            .args(&command.args)
            .env("KUBECONFIG", &kubeconfig)
            .envs(command.env.iter().map(|(k, v)| (k, v)));
        let process = Process::spawn(command.name, cmd, &log)?;
        Ok(Self {
            node: node.to_owned(),
            process,
            _forwarder: forwarder,
            log,
            log_start,
            ready: command.ready.clone(),
        })
    }

    /// The node it runs for.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Its whole log so far (earlier runs on this node included).
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// What this process (not an earlier one on the node) has logged so far.
    pub fn own_log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| {
                let start = usize::try_from(self.log_start).unwrap_or(usize::MAX);
                String::from_utf8_lossy(b.get(start..).unwrap_or_default()).into_owned()
            })
            .unwrap_or_default()
    }

    /// The address (inside its namespace) and path that answer 200 once it is ready.
    pub fn ready_endpoint(&self) -> (&str, &str) {
        (&self.ready.0, &self.ready.1)
    }

    /// Whether it still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.process.exited(), Ok(None))
    }

    /// Kills it hard, like a node losing power (no leave, no drain).
    pub fn kill(&mut self) {
        self.process.stop();
    }

    /// SIGTERM, then waits up to `timeout` for a clean exit.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        self.ask_to_stop()?;
        self.wait_stopped(timeout)
    }

    /// SIGTERM, without waiting: it hands over, drains and exits on its own.
    pub fn ask_to_stop(&self) -> anyhow::Result<()> {
        self.process.signal(Signal::SIGTERM)
    }

    /// Waits up to `timeout` for it to exit after [`SpeakerProcess::ask_to_stop`].
    pub fn wait_stopped(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        self.process
            .wait_exit(timeout)?
            .ok_or_else(|| anyhow!("speaker on {} ignored SIGTERM for {timeout:?}", self.node))
    }

    /// The process id (for a benchmark thread that freezes and thaws it on its own).
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) it.
    pub fn freeze(&self, frozen: bool) -> anyhow::Result<()> {
        self.process.signal(if frozen {
            Signal::SIGSTOP
        } else {
            Signal::SIGCONT
        })
    }

    /// The last lines of its log, for failure messages.
    pub fn describe(&self) -> String {
        self.process.describe(40)
    }
}
