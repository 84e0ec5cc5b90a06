//! ferrolb's controller, run in-process against a [`ControlPlane`].
//!
//! [`RunningController`] runs [`ferrolb_controller::k8s::run`] — the same entry point as the
//! `ferrolb-controller` binary — on a thread of its own with a tokio runtime of its own, so that
//! several replicas can run side by side in one test and each can be stopped on its own:
//! [`RunningController::stop`] shuts it down gracefully (the leader lease is released), while
//! [`RunningController::kill`] (and dropping it) simulates a crash: the runtime is shut down in
//! the background, every task of the instance (watches, status writer, the leader election
//! task) is dropped without being polled again, and nothing is cleaned up.
//!
//! [`eventually`] polls a condition until a deadline, for asserting on what the controller does
//! asynchronously.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use ferrolb_controller::k8s::{self, Settings};
use ferrolb_controller::metrics::{Health, Metrics};
use prometheus_client::registry::Registry;
use tokio::sync::oneshot;

use crate::apiserver::ControlPlane;

/// How long [`RunningController::start`] waits for the instance's client to be built.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful stop may take on top of the controller's own lease-release timeout.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Worker threads of each instance's runtime (a multi-threaded runtime, like the binary's).
const WORKER_THREADS: usize = 2;

/// Settings for a test replica named `identity`: ferrolb's namespace, leader election with a
/// short lease (3 s; a leader that cannot renew stops 1 s before a standby may take over) so
/// that fail-over tests run in seconds.
pub fn test_settings(identity: &str) -> Settings {
    Settings {
        namespace: ferrolb_api::DEFAULT_NAMESPACE.to_owned(),
        identity: identity.to_owned(),
        leader_election: true,
        lease_duration: Duration::from_secs(3),
        lease_grace: Duration::from_secs(1),
        ..Settings::default()
    }
}

/// Where an instance gets its client from (built inside the instance's own runtime: a kube
/// client belongs to the runtime it was created in).
enum ClientSource {
    Config(Box<kube::Config>),
    Kubeconfig(PathBuf),
}

impl ClientSource {
    async fn client(self) -> anyhow::Result<kube::Client> {
        let config = match self {
            Self::Config(config) => *config,
            Self::Kubeconfig(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                    .await
                    .with_context(|| format!("loading {}", path.display()))?
            }
        };
        kube::Client::try_from(config).context("building the controller's client")
    }
}

/// How an instance's thread ended its runtime.
enum Ending {
    /// `run` returned (after a graceful stop, or on its own with an error).
    Returned(anyhow::Result<()>),
    /// `run` panicked.
    Panicked(String),
    /// Killed: the runtime was dropped in the background.
    Killed,
}

/// One controller replica running in this process. Dropping it kills it (see
/// [`RunningController::kill`]).
pub struct RunningController {
    identity: String,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    registry: Registry,
    /// Completes `run`'s shutdown future.
    shutdown: Option<oneshot::Sender<()>>,
    /// Sent or dropped: kill the instance.
    kill: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl fmt::Debug for RunningController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningController")
            .field("identity", &self.identity)
            .field("ready", &self.health.is_ready())
            .field("leader", &self.is_leader())
            .field("running", &self.is_running())
            .finish_non_exhaustive()
    }
}

impl RunningController {
    /// Starts a replica with the admin's credentials.
    pub fn start(cp: &ControlPlane, settings: Settings) -> anyhow::Result<Self> {
        Self::start_with_client_config(cp.admin_config(), settings)
    }

    /// Starts a replica whose client uses `config` (e.g. a ServiceAccount's credentials).
    pub fn start_with_client_config(
        config: kube::Config,
        settings: Settings,
    ) -> anyhow::Result<Self> {
        Self::spawn(ClientSource::Config(Box::new(config)), settings)
    }

    /// Starts a replica whose client is read from the kubeconfig at `path` (e.g.
    /// [`ControlPlane::kubeconfig_for_token`]).
    pub fn start_with_kubeconfig(path: &Path, settings: Settings) -> anyhow::Result<Self> {
        Self::spawn(ClientSource::Kubeconfig(path.to_path_buf()), settings)
    }

    fn spawn(source: ClientSource, settings: Settings) -> anyhow::Result<Self> {
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        let health = Arc::new(Health::default());
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let (kill_tx, kill_rx) = oneshot::channel();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let identity = settings.identity.clone();
        let thread = {
            let (metrics, health) = (metrics.clone(), health.clone());
            std::thread::Builder::new()
                .name(format!("controller {identity}"))
                .spawn(move || {
                    instance(
                        source,
                        settings,
                        metrics,
                        health,
                        shutdown_rx,
                        kill_rx,
                        started_tx,
                    )
                })
                .context("spawning the controller thread")?
        };
        let mut controller = Self {
            identity,
            health,
            metrics,
            registry,
            shutdown: Some(shutdown_tx),
            kill: Some(kill_tx),
            thread: Some(thread),
        };
        match started_rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(())) => Ok(controller),
            Ok(Err(e)) => {
                // The thread has ended (or is about to) without running anything.
                let _ = controller.join();
                Err(e)
            }
            Err(_) => match controller.join() {
                Err(e) => Err(e),
                Ok(()) => Err(anyhow!(
                    "controller {} did not build its client within {START_TIMEOUT:?}",
                    controller.identity
                )),
            },
        }
    }

    /// The identity in the leader lease.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Readiness as `/readyz` reports it.
    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// The instance's metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The instance's metrics in the text format `/metrics` serves.
    pub fn metrics_text(&self) -> anyhow::Result<String> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// Whether this replica says it leads (its `ferrolb_controller_leader` gauge).
    pub fn is_leader(&self) -> bool {
        self.metrics.leader.get() == 1
    }

    /// Whether `run` is still running (false once it returned, panicked or was killed).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Waits until the replica is ready (a standby: caches synced; the leader: allocations
    /// rebuilt).
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let what = format!("controller {} ready", self.identity);
        eventually(&what, timeout, || async {
            anyhow::ensure!(self.is_running(), "the controller is not running");
            anyhow::ensure!(self.health.is_ready(), "not ready");
            Ok(())
        })
        .await
    }

    /// Waits until the replica leads and is ready.
    pub async fn wait_leading(&self, timeout: Duration) -> anyhow::Result<()> {
        let what = format!("controller {} leading", self.identity);
        eventually(&what, timeout, || async {
            anyhow::ensure!(self.is_running(), "the controller is not running");
            anyhow::ensure!(self.is_leader(), "not leading");
            anyhow::ensure!(self.health.is_ready(), "leading but not ready");
            Ok(())
        })
        .await
    }

    /// Stops gracefully: completes the shutdown future `run` was given and waits for the
    /// thread (the leader lease is released on the way). Blocks the calling thread for as long
    /// as that takes (a few seconds at most). Returns `run`'s error, if it had one.
    pub fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while !thread.is_finished() {
            if Instant::now() > deadline {
                // Give up on grace; `Drop` kills what is left.
                self.thread = Some(thread);
                anyhow::bail!(
                    "controller {} did not stop within {STOP_TIMEOUT:?}",
                    self.identity
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        join(&self.identity, thread)
    }

    /// Simulates a crash: the instance's runtime is shut down in the background, so no task of
    /// it runs again — the lease is not released, queued status writes and Events are lost.
    /// Returns once the thread is gone.
    pub fn kill(mut self) -> anyhow::Result<()> {
        self.join()
    }

    /// Kills (dropping the kill sender) and joins the thread.
    fn join(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.kill.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(thread) => join(&self.identity, thread),
            None => Ok(()),
        }
    }
}

impl Drop for RunningController {
    fn drop(&mut self) {
        if let Err(e) = self.join() {
            eprintln!("ferrolb-tests: controller {}: {e:#}", self.identity);
        }
    }
}

fn join(identity: &str, thread: JoinHandle<anyhow::Result<()>>) -> anyhow::Result<()> {
    match thread.join() {
        Ok(result) => result.with_context(|| format!("controller {identity}")),
        Err(_) => Err(anyhow!("the thread of controller {identity} panicked")),
    }
}

/// The body of an instance's thread.
fn instance(
    source: ClientSource,
    settings: Settings,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: oneshot::Receiver<()>,
    kill: oneshot::Receiver<()>,
    started: std::sync::mpsc::Sender<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .thread_name(format!("ctl-{}", settings.identity))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = started.send(Err(anyhow!("building the controller's runtime: {e}")));
            return Ok(());
        }
    };
    let ending = runtime.block_on(async move {
        let client = match source.client().await {
            Ok(client) => client,
            Err(e) => {
                let _ = started.send(Err(e));
                return Ending::Returned(Ok(()));
            }
        };
        let _ = started.send(Ok(()));
        // Only an explicit stop shuts down gracefully; a dropped handle is a kill.
        let shutdown = async move {
            if shutdown.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        // `run` is a task of its own, so that a kill drops it together with every other task
        // instead of dropping it here, while the others (the lease task) still run.
        let task = tokio::spawn(k8s::run(client, settings, metrics, health, shutdown));
        tokio::select! {
            biased;
            _ = kill => Ending::Killed,
            joined = task => match joined {
                Ok(result) => Ending::Returned(result),
                Err(e) => Ending::Panicked(e.to_string()),
            },
        }
    });
    match ending {
        Ending::Killed => {
            runtime.shutdown_background();
            Ok(())
        }
        Ending::Returned(result) => {
            runtime.shutdown_timeout(Duration::from_secs(2));
            result
        }
        Ending::Panicked(e) => {
            runtime.shutdown_background();
            Err(anyhow!("the controller panicked: {e}"))
        }
    }
}

/// Polls `check` every 50 ms until it returns `Ok` (whose value is returned) or `timeout`
/// passes (the last error is returned, saying what was awaited). `check` runs at least once.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let started = Instant::now();
    loop {
        let last = match check().await {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        if started.elapsed() > timeout {
            return Err(last.context(format!("{what}: still not the case after {timeout:?}")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
