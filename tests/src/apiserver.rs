//! A real etcd + kube-apiserver per test, like controller-runtime's envtest.
//!
//! [`ControlPlane::start`] (or [`ControlPlane::builder`]) creates a temporary directory, generates
//! a CA, serving, admin-client and service-account keys with rcgen, starts etcd and
//! kube-apiserver on free ports, waits until `/readyz` answers 200 and writes an admin
//! kubeconfig. RBAC is enforced, the service range is dual-stack (`198.19.0.0/16` and
//! `2001:db8:19::/112`) and there is no kube-controller-manager: no namespace deletion, garbage
//! collection or EndpointSlice controller. Dropping the [`ControlPlane`] (also while a test
//! panics) kills the apiserver, then etcd, and removes the directory; the children are also
//! killed by the kernel if the test process dies. Set `FERROLB_KEEP_TEST_DIRS=1` to keep the
//! directory (logs, certificates, kubeconfigs) for debugging.

mod access;
mod binaries;
mod crds;
mod pki;
mod process;
mod restart;
pub(crate) use process::Process;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use access::{KubectlOutput, client_from_kubeconfig};
pub use binaries::{
    BIN_DIR_ENV, Binaries, binaries, located, old_apiserver, run_setup_script,
    run_setup_script_lines,
};
pub use crds::wait_crds_established;

use pki::{Ca, write_file};
use process::free_port;

/// Set to `1` to keep control-plane directories after the test.
pub const KEEP_DIRS_ENV: &str = "FERROLB_KEEP_TEST_DIRS";
/// The default `--service-cluster-ip-range`: dual-stack, IPv4 first.
pub const DEFAULT_SERVICE_CIDRS: &str = "198.19.0.0/16,2001:db8:19::/112";
/// The service-account issuer (and default API audience).
pub const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc";
/// Lines of each log included in start-up errors.
const LOG_TAIL_LINES: usize = 40;
/// Attempts at starting when a chosen port was taken by another process meanwhile.
const START_ATTEMPTS: usize = 3;

/// A user of the static token file (`--token-auth-file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUser {
    /// The bearer token.
    pub token: String,
    /// The username.
    pub name: String,
    /// The groups (`system:authenticated` is added by the apiserver).
    pub groups: Vec<String>,
}

/// Options for a [`ControlPlane`]; finish with [`ControlPlaneBuilder::start`].
#[derive(Debug, Clone)]
pub struct ControlPlaneBuilder {
    bind_address: IpAddr,
    advertise_address: Option<IpAddr>,
    service_cluster_ip_range: String,
    token_users: Vec<TokenUser>,
    extra_apiserver_args: Vec<String>,
    ready_timeout: Duration,
    kubelets: bool,
    apiserver_binary: Option<PathBuf>,
}

impl Default for ControlPlaneBuilder {
    fn default() -> Self {
        Self {
            bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            advertise_address: None,
            service_cluster_ip_range: DEFAULT_SERVICE_CIDRS.to_owned(),
            token_users: Vec::new(),
            extra_apiserver_args: Vec::new(),
            ready_timeout: Duration::from_secs(90),
            kubelets: false,
            apiserver_binary: None,
        }
    }
}

impl ControlPlaneBuilder {
    /// Address the apiserver listens on (default 127.0.0.1), e.g. a lab bridge address that
    /// other network namespaces reach. It is in the serving certificate. etcd always listens on
    /// 127.0.0.1.
    #[must_use]
    pub fn bind_address(mut self, ip: IpAddr) -> Self {
        self.bind_address = ip;
        self
    }

    /// `--advertise-address` (default: the bind address). Also put in the serving certificate.
    #[must_use]
    pub fn advertise_address(mut self, ip: IpAddr) -> Self {
        self.advertise_address = Some(ip);
        self
    }

    /// `--service-cluster-ip-range` (default [`DEFAULT_SERVICE_CIDRS`]). The first address of
    /// each range (the `kubernetes` Service) goes into the serving certificate.
    #[must_use]
    pub fn service_cluster_ip_range(mut self, cidrs: impl Into<String>) -> Self {
        self.service_cluster_ip_range = cidrs.into();
        self
    }

    /// Adds a static token user (the token file is read once, at start-up).
    #[must_use]
    pub fn token_user(mut self, token: &str, name: &str, groups: &[&str]) -> Self {
        self.token_users.push(TokenUser {
            token: token.to_owned(),
            name: name.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        });
        self
    }

    /// Appends a kube-apiserver flag such as `--feature-gates=Foo=true`; it comes after the
    /// harness's flags, so it wins for single-valued flags.
    #[must_use]
    pub fn apiserver_arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_apiserver_args.push(arg.into());
        self
    }

    /// Configures the apiserver for a real cluster with kubelets (see `crate::cluster`): the
    /// Node authorizer before RBAC, the ServiceAccount admission plugin (pods get their token
    /// volumes), and a client certificate for calling kubelets (`kubelet-client.crt`, user
    /// `kube-apiserver-kubelet-client` in `system:masters`).
    #[must_use]
    pub fn for_kubelets(mut self) -> Self {
        self.kubelets = true;
        self
    }

    /// Runs this kube-apiserver instead of the harness's (an older release, to test against
    /// what users on older clusters run; see [`old_apiserver`]).
    #[must_use]
    pub fn apiserver_binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.apiserver_binary = Some(path.into());
        self
    }

    /// How long to wait for `/readyz` (default 90 s).
    #[must_use]
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Starts etcd and kube-apiserver and waits until the apiserver is ready.
    ///
    /// # Panics
    ///
    /// When the control-plane binaries cannot be had (see [`binaries`]).
    pub async fn start(self) -> anyhow::Result<ControlPlane> {
        let binaries = binaries();
        let mut last = None;
        for attempt in 1..=START_ATTEMPTS {
            match self.try_start(binaries).await {
                Ok(cp) => return Ok(cp),
                Err(Attempt::PortClash(e)) => {
                    tracing::warn!(attempt, error = %format!("{e:#}"), "port clash; retrying");
                    last = Some(e);
                }
                Err(Attempt::Failed(e)) => return Err(e),
            }
        }
        Err(last
            .unwrap_or_else(|| anyhow!("no start attempt was made"))
            .context(format!(
                "starting a control plane: ports were taken by others {START_ATTEMPTS} times"
            )))
    }

    async fn try_start(&self, binaries: &'static Binaries) -> Result<ControlPlane, Attempt> {
        let started = Instant::now();
        let workdir = Workdir::new()?;
        let dir = workdir.path().to_path_buf();
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let advertise = self.advertise_address.unwrap_or(self.bind_address);

        // Certificates, keys and the token file.
        let ca = Ca::new()?;
        let ca_path = dir.join("ca.crt");
        write_file(&ca_path, ca.cert_pem())?;
        let mut ips = vec![self.bind_address, advertise, loopback];
        ips.extend(first_service_ips(&self.service_cluster_ip_range)?);
        let mut seen = std::collections::HashSet::new();
        ips.retain(|ip| seen.insert(*ip));
        let dns = [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ];
        let serving = ca.serving_cert(&ips, &dns)?.write(&dir, "apiserver")?;
        let admin = ca
            .client_cert("admin", &["system:masters"])?
            .write(&dir, "admin")?;
        let (sa_key, sa_pub) = pki::service_account_key()?;
        let (sa_key_path, sa_pub_path) = (dir.join("sa.key"), dir.join("sa.pub"));
        write_file(&sa_key_path, &sa_key)?;
        write_file(&sa_pub_path, &sa_pub)?;
        let admin_token = access::random_token()?;
        let tokens_path = dir.join("tokens.csv");
        write_file(
            &tokens_path,
            &access::token_file(&admin_token, &self.token_users),
        )?;

        // etcd.
        let etcd_port = free_port(loopback)?;
        let etcd_peer_port = free_port(loopback)?;
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer_port}");
        let mut cmd = Command::new(binaries.etcd());
        cmd.arg(format!("--data-dir={}", dir.join("etcd").display()))
            .arg(format!("--listen-client-urls={etcd_url}"))
            .arg(format!("--advertise-client-urls={etcd_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg("--name=ferrolb-test")
            .arg(format!("--initial-cluster=ferrolb-test={peer_url}"))
            .arg("--unsafe-no-fsync")
            .arg("--quota-backend-bytes=536870912")
            .arg("--log-level=warn");
        let mut etcd = Process::spawn("etcd", cmd, &dir.join("etcd.log"))?;
        wait_etcd(&mut etcd, etcd_port, Duration::from_secs(30)).await?;

        // kube-apiserver.
        let port = free_port(self.bind_address)?;
        let addr = SocketAddr::new(self.bind_address, port);
        let server_url = format!("https://{addr}");
        let mut cmd = Command::new(
            self.apiserver_binary
                .clone()
                .unwrap_or_else(|| binaries.kube_apiserver()),
        );
        cmd.arg(format!("--etcd-servers={etcd_url}"))
            .arg(format!("--bind-address={}", self.bind_address))
            .arg(format!("--advertise-address={advertise}"))
            .arg(format!("--secure-port={port}"))
            .arg(format!(
                "--cert-dir={}",
                dir.join("apiserver-certs").display()
            ))
            .arg(format!("--tls-cert-file={}", serving.cert.display()))
            .arg(format!("--tls-private-key-file={}", serving.key.display()))
            .arg(format!("--client-ca-file={}", ca_path.display()))
            .arg(format!("--token-auth-file={}", tokens_path.display()))
            .arg(format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"))
            .arg(format!(
                "--service-account-key-file={}",
                sa_pub_path.display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                sa_key_path.display()
            ))
            .arg(format!(
                "--service-cluster-ip-range={}",
                self.service_cluster_ip_range
            ))
            .arg("--allow-privileged=true")
            .arg("--enable-priority-and-fairness=false")
            .arg("--profiling=false")
            .arg("--v=1");
        if self.kubelets {
            let kubelet_client = ca
                .client_cert("kube-apiserver-kubelet-client", &["system:masters"])?
                .write(&dir, "kubelet-client")?;
            cmd.arg("--authorization-mode=Node,RBAC")
                .arg(format!(
                    "--kubelet-client-certificate={}",
                    kubelet_client.cert.display()
                ))
                .arg(format!(
                    "--kubelet-client-key={}",
                    kubelet_client.key.display()
                ))
                .arg("--kubelet-preferred-address-types=InternalIP");
        } else {
            // No kube-controller-manager creates the `default` ServiceAccounts.
            cmd.arg("--authorization-mode=RBAC")
                .arg("--disable-admission-plugins=ServiceAccount");
        }
        if advertise.is_loopback() {
            // Endpoints may not hold loopback addresses; the reconciler would only log errors.
            cmd.arg("--endpoint-reconciler-type=none");
        }
        cmd.args(&self.extra_apiserver_args);
        let apiserver_command = restart::SavedCommand::of(&cmd);
        let mut apiserver = Process::spawn("kube-apiserver", cmd, &dir.join("apiserver.log"))?;

        let kubeconfig = dir.join("kubeconfig");
        write_file(
            &kubeconfig,
            &access::kubeconfig_json(&server_url, &ca_path, access::Credentials::Cert(&admin)),
        )?;
        let admin_config = access::config_from_kubeconfig(&kubeconfig).await?;
        wait_ready(&mut apiserver, &mut etcd, &admin_config, self.ready_timeout).await?;

        let startup = started.elapsed();
        tracing::info!(%server_url, ?startup, dir = %dir.display(), "control plane ready");
        Ok(ControlPlane {
            apiserver,
            apiserver_command,
            etcd,
            workdir,
            binaries,
            ca,
            server_url,
            addr,
            etcd_url,
            kubeconfig,
            admin_config,
            admin_token,
            startup,
        })
    }
}

// A control plane can be shared between tasks and threads (e.g. in an `Arc`).
const _: () = {
    const fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<ControlPlane>();
};

/// Why one start attempt failed.
enum Attempt {
    /// A chosen port was taken meanwhile: retry with new ports.
    PortClash(anyhow::Error),
    /// Anything else: give up.
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for Attempt {
    fn from(e: anyhow::Error) -> Self {
        Self::Failed(e)
    }
}

/// A running etcd + kube-apiserver; stopped and cleaned up on drop.
#[derive(Debug)]
pub struct ControlPlane {
    apiserver: Process,
    /// How the apiserver was started, to start it again ([`ControlPlane::restart_apiserver`]).
    apiserver_command: restart::SavedCommand,
    etcd: Process,
    workdir: Workdir,
    binaries: &'static Binaries,
    ca: Ca,
    server_url: String,
    addr: SocketAddr,
    etcd_url: String,
    kubeconfig: PathBuf,
    admin_config: kube::Config,
    admin_token: String,
    startup: Duration,
}

impl ControlPlane {
    /// Starts a control plane with default options (see [`ControlPlaneBuilder`]).
    ///
    /// # Panics
    ///
    /// When the control-plane binaries cannot be had (see [`binaries`]).
    pub async fn start() -> anyhow::Result<Self> {
        Self::builder().start().await
    }

    /// Options for a control plane.
    pub fn builder() -> ControlPlaneBuilder {
        ControlPlaneBuilder::default()
    }

    /// `https://<bind address>:<port>`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The apiserver's listening address.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// etcd's client URL (`http://127.0.0.1:<port>`).
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// The admin kubeconfig (client certificate in `system:masters`, file paths to the keys).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The temporary directory holding logs (`etcd.log`, `apiserver.log`), keys and kubeconfigs.
    pub fn dir(&self) -> &Path {
        self.workdir.path()
    }

    /// The CA certificate (PEM) that signed the serving and client certificates.
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// Path of the CA certificate file.
    pub fn ca_path(&self) -> PathBuf {
        self.dir().join("ca.crt")
    }

    /// The bearer token of the static `admin` token user (in `system:masters`).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The binaries this control plane runs (kube-proxy is there too, for the lab).
    pub fn binaries(&self) -> &'static Binaries {
        self.binaries
    }

    /// Time from the start of [`ControlPlaneBuilder::start`]'s successful attempt to ready.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Process ids of (kube-apiserver, etcd).
    pub fn pids(&self) -> (u32, u32) {
        (self.apiserver.id(), self.etcd.id())
    }

    /// A kube client configuration for the admin.
    pub fn admin_config(&self) -> kube::Config {
        self.admin_config.clone()
    }

    /// A new admin client. Create clients inside the runtime that uses them: a kube client
    /// belongs to the tokio runtime it was created in.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or if the TLS setup fails (it was already used successfully to
    /// wait for readiness).
    pub fn client(&self) -> kube::Client {
        match kube::Client::try_from(self.admin_config.clone()) {
            Ok(client) => client,
            Err(e) => panic!("building the admin client of {}: {e}", self.server_url),
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // Apiserver first, so it does not log a storm of etcd errors.
        self.apiserver.stop();
        self.etcd.stop();
        // `workdir` is removed (or kept) when it drops right after this.
    }
}

/// The temporary directory; removed on drop unless [`KEEP_DIRS_ENV`] is `1`.
#[derive(Debug)]
struct Workdir {
    dir: Option<TempDir>,
    path: PathBuf,
}

/// Prefix of control-plane directories in the system's temporary directory.
const WORKDIR_PREFIX: &str = "ferrolb-cp-";
/// Prefixes of every working directory [`sweep_stale_workdirs`] may remove: control planes,
/// clusters and routers.
const SWEPT_PREFIXES: [&str; 3] = [WORKDIR_PREFIX, "ferrolb-cluster-", "ferrolb-router-"];
/// File in a control-plane directory naming the test process that owns it.
const OWNER_FILE: &str = "owner.pid";

/// Marks `dir` as owned by this process, so [`sweep_stale_workdirs`] removes it once this
/// process is gone without having removed it (its name must start with one of the swept
/// prefixes).
pub fn claim_workdir(dir: &Path) -> anyhow::Result<()> {
    std::fs::write(dir.join(OWNER_FILE), std::process::id().to_string())
        .with_context(|| format!("writing the owner of {}", dir.display()))
}

/// Removes working directories (control planes, clusters, routers) whose owning process is gone (one killed with
/// SIGKILL never runs its destructors; its child processes died with it through
/// PR_SET_PDEATHSIG, but the directory stays). Directories kept on purpose
/// ([`KEEP_DIRS_ENV`]) have no owner file and are left alone. Returns how many it removed.
pub fn sweep_stale_workdirs() -> usize {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| SWEPT_PREFIXES.iter().any(|p| n.starts_with(p)));
        let Ok(pid) = std::fs::read_to_string(path.join(OWNER_FILE)) else {
            continue;
        };
        let alive = Path::new("/proc").join(pid.trim()).exists();
        if ours && !alive && std::fs::remove_dir_all(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

impl Workdir {
    fn new() -> anyhow::Result<Self> {
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(|| {
            sweep_stale_workdirs();
        });
        let dir = tempfile::Builder::new()
            .prefix(WORKDIR_PREFIX)
            .tempdir()
            .context("creating the control-plane directory")?;
        claim_workdir(dir.path())?;
        Ok(Self {
            path: dir.path().to_path_buf(),
            dir: Some(dir),
        })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        if std::env::var(KEEP_DIRS_ENV).is_ok_and(|v| v == "1") {
            // Without an owner it is never swept.
            let _ = std::fs::remove_file(dir.path().join(OWNER_FILE));
            let kept = dir.keep();
            eprintln!(
                "ferrolb-tests: kept control-plane directory {}",
                kept.display()
            );
        } else if let Err(e) = dir.close() {
            eprintln!("ferrolb-tests: removing {}: {e}", self.path.display());
        }
    }
}

/// The first address of each comma-separated CIDR (the `kubernetes` Service's ClusterIP).
fn first_service_ips(cidrs: &str) -> anyhow::Result<Vec<IpAddr>> {
    cidrs
        .split(',')
        .map(|cidr| {
            let base = cidr.trim().split('/').next().unwrap_or_default();
            let ip: IpAddr = base
                .parse()
                .with_context(|| format!("service CIDR {cidr:?} does not start with an IP"))?;
            Ok(match ip {
                IpAddr::V4(v4) => IpAddr::V4(u32::from(v4).wrapping_add(1).into()),
                IpAddr::V6(v6) => IpAddr::V6(u128::from(v6).wrapping_add(1).into()),
            })
        })
        .collect()
}

/// Fails the attempt if `process` has exited: a port clash if its log says so.
fn check_alive(process: &mut Process, others: &[&Process]) -> Result<(), Attempt> {
    let Some(status) = process.exited()? else {
        return Ok(());
    };
    let mut msg = format!(
        "{} exited early ({status})\n{}",
        process.name(),
        process.describe(LOG_TAIL_LINES)
    );
    for other in others {
        msg.push('\n');
        msg.push_str(&other.describe(LOG_TAIL_LINES));
    }
    let e = anyhow!(msg);
    Err(if process.log_says_address_in_use() {
        Attempt::PortClash(e)
    } else {
        Attempt::Failed(e)
    })
}

/// Polls etcd's `/health` until it reports healthy.
async fn wait_etcd(etcd: &mut Process, port: u16, timeout: Duration) -> Result<(), Attempt> {
    let deadline = Instant::now() + timeout;
    loop {
        check_alive(etcd, &[])?;
        let last =
            match http_get_plain(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), "/health").await {
                Ok(body) if body.contains("\"health\":\"true\"") => return Ok(()),
                Ok(body) => body,
                Err(e) => format!("{e:#}"),
            };
        if Instant::now() > deadline {
            return Err(Attempt::Failed(anyhow!(
                "etcd was not healthy within {timeout:?} (last: {last})\n{}",
                etcd.describe(LOG_TAIL_LINES)
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A minimal HTTP/1.0 GET (etcd's client port speaks plain HTTP); returns the whole response.
async fn http_get_plain(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
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
        .with_context(|| format!("GET http://{addr}{path} timed out"))?
        .with_context(|| format!("GET http://{addr}{path}"))
}

/// Polls the apiserver's `/readyz` (as admin) until it answers 200.
async fn wait_ready(
    apiserver: &mut Process,
    etcd: &mut Process,
    admin: &kube::Config,
    timeout: Duration,
) -> Result<(), Attempt> {
    let mut config = admin.clone();
    config.default_retry = false;
    config.connect_timeout = Some(Duration::from_secs(2));
    config.read_timeout = Some(Duration::from_secs(5));
    let client = kube::Client::try_from(config).context("building the readiness client")?;
    let deadline = Instant::now() + timeout;
    loop {
        check_alive(apiserver, &[&*etcd])?;
        check_alive(etcd, &[&*apiserver])?;
        let request = http::Request::get("/readyz")
            .body(Vec::new())
            .context("building the /readyz request")?;
        let last = match tokio::time::timeout(Duration::from_secs(5), client.request_text(request))
            .await
        {
            Ok(Ok(body)) if body.trim() == "ok" => return Ok(()),
            Ok(Ok(body)) => body,
            Ok(Err(e)) => e.to_string(),
            Err(_) => String::from("/readyz timed out"),
        };
        if Instant::now() > deadline {
            return Err(Attempt::Failed(anyhow!(
                "kube-apiserver was not ready within {timeout:?} (last /readyz: {last})\n{}\n{}",
                apiserver.describe(LOG_TAIL_LINES),
                etcd.describe(LOG_TAIL_LINES)
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
