//! Long-running child processes (etcd, kube-apiserver) that never outlive the test process.
//!
//! * Killed and reaped when dropped, which also happens while a failing test unwinds.
//! * Killed by the kernel when the test process dies without unwinding (SIGKILL, abort), through
//!   `PR_SET_PDEATHSIG`. That signal fires when the *thread* that forked the child exits, so
//!   every child is forked by one dedicated thread that lives as long as the process; forking
//!   from a test or runtime worker thread would kill the child when that thread ends.
//! * Their stdout and stderr go to a log file, whose tail ends up in error messages.

use std::collections::HashSet;
use std::fs::File;
use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};

use anyhow::{Context, anyhow};

use super::binaries::tail;

/// A running child process with its log file.
#[derive(Debug)]
pub(crate) struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
    stopped: bool,
}

impl Process {
    /// Starts `cmd` with stdin closed and stdout/stderr appended to `log`.
    pub(crate) fn spawn(name: &'static str, mut cmd: Command, log: &Path) -> anyhow::Result<Self> {
        let file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {name} log {}", log.display()))?;
        let file2 = file
            .try_clone()
            .with_context(|| format!("duplicating {name} log handle"))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(file2));
        die_with_parent::set(&mut cmd);
        let child = spawn_on_reaper_thread(cmd)
            .with_context(|| format!("starting {name} ({})", log.display()))?;
        Ok(Self {
            name,
            child,
            log: log.to_path_buf(),
            stopped: false,
        })
    }

    /// The name used in messages.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// The process id.
    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has already exited.
    pub(crate) fn exited(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        self.child
            .try_wait()
            .with_context(|| format!("checking whether {} is still running", self.name))
    }

    /// The last `lines` lines of the process's log (empty if unreadable).
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        tail(&text, lines)
    }

    /// Formats the log tail for an error message.
    pub(crate) fn describe(&self, lines: usize) -> String {
        format!(
            "--- last {lines} lines of {} log ({}) ---\n{}",
            self.name,
            self.log.display(),
            self.log_tail(lines)
        )
    }

    /// Whether the log mentions a port clash (another process grabbed our port after we chose
    /// it); the caller then retries with new ports.
    pub(crate) fn log_says_address_in_use(&self) -> bool {
        self.log_tail(200).contains("address already in use")
    }

    /// Sends `signal` (SIGTERM for a graceful stop, SIGSTOP/SIGCONT to freeze and thaw).
    pub(crate) fn signal(&self, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
        let pid =
            nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).context("pid out of range")?);
        nix::sys::signal::kill(pid, signal)
            .with_context(|| format!("cannot send {signal} to {}", self.name))
    }

    /// Waits up to `timeout` for the process to exit by itself; reaps it if it did.
    pub(crate) fn wait_exit(
        &mut self,
        timeout: std::time::Duration,
    ) -> anyhow::Result<Option<ExitStatus>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited()? {
                self.stopped = true;
                return Ok(Some(status));
            }
            if std::time::Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// SIGKILLs and reaps the process. Idempotent; errors are ignored because the process may
    /// already be gone, and Drop cannot report them anyway.
    pub(crate) fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

type SpawnReply = mpsc::Sender<std::io::Result<Child>>;

/// Forks `cmd` on the process-lifetime reaper thread (see the module docs).
fn spawn_on_reaper_thread(cmd: Command) -> anyhow::Result<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<(Command, SpawnReply)>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<(Command, SpawnReply)>();
        let spawned = std::thread::Builder::new()
            .name("ferrolb-child-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            });
        if let Err(e) = spawned {
            // Sending below fails with a clear error since `rx` was dropped with the closure.
            eprintln!("ferrolb-tests: cannot start the child-spawner thread: {e}");
        }
        tx
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .send((cmd, reply_tx))
        .map_err(|_| anyhow!("the child-spawner thread is gone"))?;
    let child = reply_rx
        .recv()
        .map_err(|_| anyhow!("the child-spawner thread did not answer"))??;
    Ok(child)
}

/// A TCP port on `ip` that is free right now and that this process has not handed out before.
///
/// Another process may still take it before our child binds it; callers detect that from the
/// child's log ([`Process::log_says_address_in_use`]) and retry with fresh ports.
pub(crate) fn free_port(ip: IpAddr) -> anyhow::Result<u16> {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    for _ in 0..100 {
        let listener =
            TcpListener::bind((ip, 0)).with_context(|| format!("binding a free port on {ip}"))?;
        let port = listener
            .local_addr()
            .context("reading a bound port")?
            .port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
        if handed_out.get_or_insert_with(HashSet::new).insert(port) {
            return Ok(port);
        }
    }
    Err(anyhow!("no unused free port on {ip} after 100 attempts"))
}

/// The only unsafe code in this crate.
mod die_with_parent {
    #![allow(unsafe_code)]

    use std::os::unix::process::CommandExt;
    use std::process::Command;

    /// Makes the kernel SIGKILL the child when the thread that forks it exits.
    pub(super) fn set(cmd: &mut Command) {
        // SAFETY: the closure runs in the forked child before exec. It only makes the
        // prctl(2) system call, which is async-signal-safe, allocates nothing and touches no
        // locks or memory shared with the parent, as `pre_exec` requires.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}
