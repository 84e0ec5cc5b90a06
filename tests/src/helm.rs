//! The real `helm` (v3, built from its Go module by `tests/setup/helm.sh`, or taken from the
//! directory in `FERROLB_HELM_BIN`), run with its own empty config, cache and data directories
//! and no ambient kubeconfig, so a user's helm set-up never leaks into a test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::ensure;

/// Environment variable naming a directory that already holds `helm`.
pub const HELM_BIN_ENV: &str = "FERROLB_HELM_BIN";

/// The `helm` binary, located (and built if needed) once per process.
///
/// # Panics
///
/// When it cannot be had: the tests that need it must fail, never skip.
pub fn helm() -> &'static Path {
    static HELM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match HELM.get_or_init(|| locate().map_err(|e| format!("{e:#}"))) {
        Ok(helm) => helm,
        Err(e) => panic!(
            "helm is unavailable: {e}\nBuild it with `bash tests/setup/helm.sh` (needs Go and the \
             Go module proxy) or point {HELM_BIN_ENV} at a directory that holds it."
        ),
    }
}

fn locate() -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os(HELM_BIN_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => crate::apiserver::run_setup_script("helm")?,
    };
    let helm = dir.join("helm");
    ensure!(
        std::fs::metadata(&helm).is_ok_and(|m| m.is_file()),
        "{} holds no helm",
        dir.display()
    );
    Ok(helm)
}

/// A helm command whose config, cache and data live under `home`, with no `KUBECONFIG`,
/// `HELM_NAMESPACE` or `HELM_KUBECONTEXT` from the environment and stdin closed.
pub fn command(home: &Path) -> Command {
    let mut cmd = Command::new(helm());
    cmd.env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("KUBECONFIG")
        .env_remove("HELM_NAMESPACE")
        .env_remove("HELM_KUBECONTEXT")
        .stdin(Stdio::null());
    cmd
}
