//! Controller replicas as real `ferrolb-controller` processes, each reaching the apiserver
//! through a [`Proxy`] of its own, so the driver can SIGKILL, SIGSTOP/SIGCONT or cut off one of
//! them. Who leads is read from the Lease in the apiserver and confirmed by the holder's own
//! `/metrics` and `/readyz`.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::proxy::{Mode, Proxy};
use crate::ControlPlane;
use crate::apiserver::Process;

/// Set to a `ferrolb-controller` binary to run that one (e.g. a release build).
pub const CONTROLLER_BIN_ENV: &str = "FERROLB_CONTROLLER_BIN";

/// The lease duration the replicas run with, in seconds (the binary's `--lease-duration`).
pub const LEASE_SECONDS: u64 = 3;

/// The `ferrolb-controller` binary: [`CONTROLLER_BIN_ENV`], else next to the test executable
/// (`target/<profile>/`, built by `cargo build --workspace --bins`, which tests/run.sh runs).
pub fn binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(CONTROLLER_BIN_ENV) {
        return Ok(PathBuf::from(path));
    }
    crate::fixtures::workspace_binary("ferrolb-controller")
}

/// One replica: its proxy, its process (absent between a kill and the restart) and whether
/// it is frozen.
#[derive(Debug)]
pub struct Replica {
    /// The identity in the lease (`chaos-0`, …).
    pub identity: String,
    /// Its connection to the apiserver.
    pub proxy: Proxy,
    process: Option<Process>,
    metrics: SocketAddr,
    kubeconfig: PathBuf,
    log: PathBuf,
    stopped: bool,
}

impl Replica {
    /// Starts replica `index` of the control plane's cluster, with logs in `dir`.
    pub fn start(cp: &ControlPlane, index: usize, dir: &Path) -> anyhow::Result<Self> {
        let identity = format!("chaos-{index}");
        let proxy = Proxy::start(cp.address())?;
        let kubeconfig = dir.join(format!("{identity}.kubeconfig"));
        let mut config: serde_json::Value = serde_json::from_slice(
            &std::fs::read(cp.kubeconfig_path()).context("reading the admin kubeconfig")?,
        )?;
        config["clusters"][0]["cluster"]["server"] = proxy.https_url().into();
        std::fs::write(&kubeconfig, format!("{config:#}\n"))
            .with_context(|| format!("writing {}", kubeconfig.display()))?;
        let metrics = {
            let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            l.local_addr()?
        };
        let mut replica = Self {
            log: dir.join(format!("{identity}.log")),
            identity,
            proxy,
            process: None,
            metrics,
            kubeconfig,
            stopped: false,
        };
        replica.spawn()?;
        Ok(replica)
    }

    /// Starts the process (again).
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new(binary()?);
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("FERROLB_CHAOS_CONTROLLER_LOG")
                    .unwrap_or_else(|_| "info,kube=warn".into()),
            )
            .args(["--identity", &self.identity])
            .args(["--metrics-addr", &self.metrics.to_string()])
            .args(["--lease-duration", &LEASE_SECONDS.to_string()]);
        self.process = Some(Process::spawn("ferrolb-controller", cmd, &self.log)?);
        self.stopped = false;
        Ok(())
    }

    /// SIGKILLs the process (a crash); [`Replica::spawn`] starts it again.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
        self.stopped = false;
    }

    /// SIGSTOP: a stuck process that still holds its connections and its lease.
    pub fn freeze(&mut self) -> anyhow::Result<()> {
        if let Some(p) = &self.process {
            p.signal(Signal::SIGSTOP)?;
            self.stopped = true;
        }
        Ok(())
    }

    /// SIGCONT after [`Replica::freeze`].
    pub fn thaw(&mut self) -> anyhow::Result<()> {
        if let Some(p) = &self.process {
            p.signal(Signal::SIGCONT)?;
        }
        self.stopped = false;
        Ok(())
    }

    /// Whether the process runs and is not frozen or cut off.
    pub fn healthy(&mut self) -> bool {
        let alive = match &mut self.process {
            Some(p) => matches!(p.exited(), Ok(None)),
            None => false,
        };
        alive && !self.stopped
    }

    /// Whether the process exited on its own (not killed by us).
    pub fn exited_by_itself(&mut self) -> Option<String> {
        let p = self.process.as_mut()?;
        match p.exited() {
            Ok(Some(status)) => Some(format!("{status}\n{}", p.describe(20))),
            _ => None,
        }
    }

    /// Whether this replica says it leads (`ferrolb_controller_leader 1` on `/metrics`).
    pub async fn says_leading(&self) -> bool {
        http_get(self.metrics, "/metrics")
            .await
            .is_ok_and(|r| r.lines().any(|l| l.trim() == "ferrolb_controller_leader 1"))
    }

    /// Whether this replica says it leads and is ready (`/readyz` 200).
    pub async fn says_leading_and_ready(&self) -> bool {
        let ready = http_get(self.metrics, "/readyz")
            .await
            .is_ok_and(|r| r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200"));
        ready && self.says_leading().await
    }

    /// Restores the proxy to [`Mode::Pass`].
    pub fn reconnect(&self) {
        self.proxy.set_mode(Mode::Pass);
    }
}

/// The holder of the controller's Lease and whether it is unexpired now.
pub async fn lease_holder(client: &kube::Client) -> anyhow::Result<Option<String>> {
    let api: Api<Lease> = Api::namespaced(client.clone(), ferrolb_api::DEFAULT_NAMESPACE);
    let Some(lease) = api.get_opt(ferrolb_controller::k8s::LEASE_NAME).await? else {
        return Ok(None);
    };
    let Some(spec) = lease.spec else {
        return Ok(None);
    };
    let (Some(holder), Some(renewed), Some(seconds)) = (
        spec.holder_identity,
        spec.renew_time,
        spec.lease_duration_seconds,
    ) else {
        return Ok(None);
    };
    let expires = renewed.0 + Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
    Ok((expires > Timestamp::now()).then_some(holder))
}

/// A minimal HTTP/1.0 GET; the whole response.
async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let io = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        anyhow::Ok(String::from_utf8_lossy(&response).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(2), io)
        .await
        .context("timed out")?
}
