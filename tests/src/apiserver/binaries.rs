//! Locating the control-plane binaries (etcd, kube-apiserver, kube-proxy, kubectl).
//!
//! `FERROLB_K8S_BIN` names a directory that already holds them; otherwise
//! `tests/setup/control-plane.sh` builds them (or finds them cached) and prints their directory as
//! its last stdout line. This happens once per process; runs of the script from several test
//! processes are serialised with a file lock so that only one cold build happens at a time.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, bail};

/// Environment variable naming a directory that already holds the binaries.
pub const BIN_DIR_ENV: &str = "FERROLB_K8S_BIN";

/// The binaries every control plane needs; kube-proxy is only needed by the lab.
const REQUIRED: [&str; 3] = ["etcd", "kube-apiserver", "kubectl"];

/// The directory holding the control-plane binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// The directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the binary `name` in the directory (it may not exist, e.g. a tool the script does
    /// not build).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The etcd server.
    pub fn etcd(&self) -> PathBuf {
        self.path("etcd")
    }

    /// kube-apiserver.
    pub fn kube_apiserver(&self) -> PathBuf {
        self.path("kube-apiserver")
    }

    /// kube-proxy (for the lab; the control plane does not run it).
    pub fn kube_proxy(&self) -> PathBuf {
        self.path("kube-proxy")
    }

    /// kubectl.
    pub fn kubectl(&self) -> PathBuf {
        self.path("kubectl")
    }
}

/// The binaries, located (and built if needed) once per process.
///
/// # Panics
///
/// When they cannot be had: tests that need a control plane must fail, never skip.
pub fn binaries() -> &'static Binaries {
    match located() {
        Ok(b) => b,
        Err(e) => panic!(
            "the control-plane binaries (etcd, kube-apiserver, kubectl) are unavailable: {e}\n\
             Build them with `bash tests/setup/control-plane.sh` (needs Go and the Go module \
             proxy) or point {BIN_DIR_ENV} at a directory that holds them."
        ),
    }
}

/// The binaries, located (and built if needed) once per process, or why they cannot be had;
/// for programs that report the reason instead of panicking (the lab).
pub fn located() -> Result<&'static Binaries, &'static str> {
    static BINARIES: OnceLock<Result<Binaries, String>> = OnceLock::new();
    BINARIES
        .get_or_init(|| locate().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(String::as_str)
}

fn locate() -> anyhow::Result<Binaries> {
    let dir = match std::env::var_os(BIN_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => run_setup_script("control-plane")?,
    };
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|b| !is_executable(&dir.join(b)))
        .collect();
    if !missing.is_empty() {
        bail!(
            "{} lacks executable(s) {}",
            dir.display(),
            missing.join(", ")
        );
    }
    Ok(Binaries { dir })
}

/// An older kube-apiserver of the compatibility tests, by release (`"1.28"` or `"1.31"`), built
/// (or found cached) by `tests/setup/old-apiserver.sh`.
///
/// # Panics
///
/// When it cannot be had: the tests that need it must fail, never skip.
pub fn old_apiserver(release: &str) -> PathBuf {
    let lines = run_setup_script_lines("old-apiserver")
        .unwrap_or_else(|e| panic!("the old kube-apiservers are unavailable: {e:#}"));
    let prefix = format!("{release}.");
    let dir = lines
        .iter()
        .find_map(|l| l.strip_prefix(&prefix)?.split_once(' ').map(|(_, d)| d))
        .unwrap_or_else(|| panic!("tests/setup/old-apiserver.sh builds no {release}: {lines:?}"));
    let path = Path::new(dir).join("kube-apiserver");
    assert!(
        is_executable(&path),
        "{} is not an executable kube-apiserver",
        path.display()
    );
    path
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn workspace_root() -> PathBuf {
    // This crate lives in `<workspace>/tests`.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Runs `tests/setup/<name>.sh`, which builds (or finds cached) binaries and prints their
/// directory as its last line. One build at a time across processes (test binaries may run
/// concurrently), its progress in a log file whose tail ends up in the error.
pub fn run_setup_script(name: &str) -> anyhow::Result<PathBuf> {
    let lines = run_setup_script_lines(name)?;
    let last = lines
        .last()
        .context("the setup script printed no directory")?;
    Ok(PathBuf::from(last))
}

/// [`run_setup_script`], returning every non-empty line the script printed (for scripts that
/// print more than one directory).
pub fn run_setup_script_lines(name: &str) -> anyhow::Result<Vec<String>> {
    let script = workspace_root().join(format!("tests/setup/{name}.sh"));
    let tmp = std::env::temp_dir();
    let lock_path = tmp.join(format!("ferrolb-{name}-build.lock"));
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;

    let log_path = tmp.join(format!("ferrolb-{name}-build.{}.log", std::process::id()));
    let log =
        File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    eprintln!(
        "ferrolb-tests: locating binaries with {} (a cold build takes minutes; progress in {})",
        script.display(),
        log_path.display()
    );
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::from(log))
        .output()
        .with_context(|| format!("running bash {}", script.display()))?;
    drop(lock);

    let mut stderr = String::new();
    if let Ok(mut f) = File::open(&log_path) {
        // Best effort: the log only decorates the error message.
        let _ = f.read_to_string(&mut stderr);
    }
    if !output.status.success() {
        bail!(
            "{} failed ({}); last lines of its log {}:\n{}",
            script.display(),
            output.status,
            log_path.display(),
            tail(&stderr, 30)
        );
    }
    // The log is no longer needed once the script succeeded.
    let _ = std::fs::remove_file(&log_path);
    let lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if lines.is_empty() {
        bail!("{} printed no directory", script.display());
    }
    Ok(lines)
}

/// The last `n` lines of `text`.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
