//! The operations endpoints every ferrolb binary serves: `/metrics` (OpenMetrics text from one
//! registry made in `main`), `/healthz` (the process answers) and `/readyz` (the component says
//! it is ready).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;

/// Liveness and readiness, shared with the HTTP endpoints.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    /// Marks the component ready (or not).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

struct Shared {
    registry: Registry,
    health: Arc<Health>,
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `addr` until the task is dropped.
pub async fn serve(
    addr: SocketAddr,
    registry: Registry,
    health: Arc<Health>,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared { registry, health });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving metrics and health");
    axum::serve(listener, app).await
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &shared.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            e.to_string(),
        ),
    }
}

async fn readyz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    if shared.health.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connects");
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("writes");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("reads");
        response
    }

    #[tokio::test]
    async fn metrics_health_and_readiness_are_served() {
        let mut registry = Registry::default();
        let counter = Counter::<u64>::default();
        registry.register("ferrolb_test_things", "things", counter.clone());
        counter.inc();
        let health = Arc::new(Health::default());
        let addr: SocketAddr = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            probe.local_addr().expect("addr")
        };
        tokio::spawn(serve(addr, registry, health.clone()));
        let mut metrics_page = String::new();
        for _ in 0..100 {
            if let Ok(Ok(s)) = tokio::time::timeout(
                Duration::from_secs(1),
                tokio::spawn(async move { get(addr, "/metrics").await }),
            )
            .await
            {
                metrics_page = s;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(metrics_page.starts_with("HTTP/1.1 200"), "{metrics_page}");
        assert!(
            metrics_page.contains("ferrolb_test_things_total 1"),
            "{metrics_page}"
        );
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        health.set_ready(true);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
    }
}
