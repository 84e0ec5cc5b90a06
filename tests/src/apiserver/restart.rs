//! Restarting the kube-apiserver of a running [`ControlPlane`] (etcd and its data stay), as an
//! apiserver upgrade or crash does: every client's connections and watches break, and the new
//! apiserver serves the same objects on the same address.

use std::ffi::OsString;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::anyhow;

use super::{Attempt, ControlPlane, LOG_TAIL_LINES, Process, wait_ready};

/// A program and its arguments, kept to start the same process again.
#[derive(Debug, Clone)]
pub(crate) struct SavedCommand {
    program: OsString,
    args: Vec<OsString>,
}

impl SavedCommand {
    /// What `cmd` runs (its environment is inherited, as it was the first time).
    pub(crate) fn of(cmd: &Command) -> Self {
        Self {
            program: cmd.get_program().to_owned(),
            args: cmd.get_args().map(ToOwned::to_owned).collect(),
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        cmd
    }
}

/// How long a restarted apiserver may take to be ready again.
const RESTART_READY_TIMEOUT: Duration = Duration::from_secs(90);

impl ControlPlane {
    /// SIGKILLs the kube-apiserver and starts it again with the same flags on the same port,
    /// then waits until `/readyz` answers. Returns how long the apiserver was unavailable.
    pub async fn restart_apiserver(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.apiserver.stop();
        let log = self.workdir.path().join("apiserver.log");
        self.apiserver = Process::spawn("kube-apiserver", self.apiserver_command.command(), &log)?;
        match wait_ready(
            &mut self.apiserver,
            &mut self.etcd,
            &self.admin_config,
            RESTART_READY_TIMEOUT,
        )
        .await
        {
            Ok(()) => Ok(started.elapsed()),
            Err(Attempt::Failed(e) | Attempt::PortClash(e)) => Err(anyhow!(
                "the restarted kube-apiserver did not come back: {e:#}\n{}",
                self.apiserver.describe(LOG_TAIL_LINES)
            )),
        }
    }
}
