//! Runs the real `ferrolb-speaker` binary inside a node's network namespace, talking to the test
//! apiserver through a [`Forwarder`], so it can be killed (SIGKILL), stopped (SIGTERM) or frozen
//! like a speaker on a real node.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use nix::sys::signal::Signal;

use crate::ControlPlane;
use crate::apiserver::Process;
use crate::forward::Forwarder;

/// The `ferrolb-speaker` binary next to the test executable (`target/<profile>/`), built by
/// `cargo test --workspace` (the speaker crate's own CLI test needs it) or `cargo build`.
pub fn binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the test executable")?;
    // Tests run from target/<profile>/deps/, binaries from target/<profile>/.
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("ferrolb-speaker"))
        .collect();
    candidates
        .iter()
        .find(|bin| bin.is_file())
        .cloned()
        .ok_or_else(|| {
            anyhow!(
                "ferrolb-speaker is missing (looked at {candidates:?}): run `cargo build -p ferrolb-speaker` (tests/run.sh does)"
            )
        })
}

/// A speaker process on one node.
#[derive(Debug)]
pub struct SpeakerProcess {
    node: String,
    process: Process,
    _forwarder: Forwarder,
    log: PathBuf,
}

impl SpeakerProcess {
    /// Starts a speaker for `node` inside network namespace `netns`, with admin credentials
    /// on `cp`, `extra` flags appended. Logs go to `<dir>/speaker-<node>.log`.
    pub fn start(
        cp: &ControlPlane,
        netns: &str,
        node: &str,
        dir: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let forwarder = Forwarder::start(netns, cp.address())?;
        let kubeconfig = dir.join(format!("kubeconfig-{node}"));
        let text = std::fs::read_to_string(cp.kubeconfig_path())
            .context("cannot read the admin kubeconfig")?
            .replace(cp.server_url(), &forwarder.https_url());
        std::fs::write(&kubeconfig, text).context("cannot write the node kubeconfig")?;
        let log = dir.join(format!("speaker-{node}.log"));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns])
            .arg(binary()?)
            .args(["--node-name", node, "--metrics-addr", "127.0.0.1:7472"])
            .args(extra)
            .env("KUBECONFIG", &kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("FERROLB_SPEAKER_LOG")
                    .unwrap_or_else(|_| "info,ferrolb_speaker=debug,kube=warn".into()),
            );
        let process = Process::spawn("ferrolb-speaker", cmd, &log)?;
        Ok(Self {
            node: node.to_owned(),
            process,
            _forwarder: forwarder,
            log,
        })
    }

    /// The node it runs for.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Its whole log so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
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
        self.process.signal(Signal::SIGTERM)?;
        self.process
            .wait_exit(timeout)?
            .ok_or_else(|| anyhow!("speaker on {} ignored SIGTERM for {timeout:?}", self.node))
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
