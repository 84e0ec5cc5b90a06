//! The shell both binaries share, so the controller and the speaker log, stop, serve their
//! metrics and health, watch the cluster and publish Events the same way: [`logs`],
//! [`shutdown_signal`], [`ops`] (`/metrics`, `/healthz`, `/readyz`), [`reflect`] (a cache
//! kept by a background watch), [`events`], [`version`] (the oldest Kubernetes supported). No decisions live here.

pub mod events;
pub mod logs;
pub mod ops;
pub mod reflect;
pub mod version;

/// Runs a binary's async `main` on a multi-threaded runtime: exit code 0 when it returns
/// `Ok`, 1 with the error chain logged when it fails (or the runtime cannot start).
pub fn block_on_main<F>(binary: &str, main: F) -> std::process::ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{binary}: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{binary} stops: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}

/// Completes at `deadline`, never without one: a timer arm of a `select!` loop whose next
/// deadline may not exist.
pub async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
