//! The controller's metrics and its `/metrics`, `/healthz`, `/readyz` endpoints. One registry,
//! made in `main` and passed down; labels are bounded (pool, family, result), never per IP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(test)]
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of per-pool gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// Pool name.
    pub pool: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
}

/// Labels of counters by outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// Outcome.
    pub result: String,
}

impl ResultLabels {
    /// Labels for `result`.
    pub fn of(result: &str) -> Self {
        Self {
            result: result.to_owned(),
        }
    }
}

/// Every metric the controller exports.
#[derive(Debug)]
pub struct Metrics {
    /// Addresses per pool and family (saturating at 2^53 for huge IPv6 pools).
    pub pool_capacity: Family<PoolLabels, Gauge<f64, AtomicU64>>,
    /// Addresses in use per pool and family.
    pub pool_assigned: Family<PoolLabels, Gauge>,
    /// Allocation decisions by result (allocated, failed, released).
    pub allocations: Family<ResultLabels, Counter>,
    /// Service reconciles by result.
    pub reconciles: Family<ResultLabels, Counter>,
    /// Reconcile duration by result.
    pub reconcile_duration: Family<ResultLabels, Histogram>,
    /// Status writes by result.
    pub status_writes: Family<ResultLabels, Counter>,
    /// 1 while this replica holds the leader lease.
    pub leader: Gauge,
    /// 1 while the configuration has no invalid object.
    pub config_valid: Gauge,
}

impl Metrics {
    /// Creates the metrics and registers them under `ferrolb_controller_`.
    pub fn new(registry: &mut Registry) -> Arc<Self> {
        let m = Self {
            pool_capacity: Family::default(),
            pool_assigned: Family::default(),
            allocations: Family::default(),
            reconciles: Family::default(),
            reconcile_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_05, 4.0, 10))
            }),
            status_writes: Family::default(),
            leader: Gauge::default(),
            config_valid: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("ferrolb_controller");
        r.register(
            "pool_capacity_addresses",
            "Addresses in the pool",
            m.pool_capacity.clone(),
        );
        r.register(
            "pool_assigned_addresses",
            "Addresses of the pool in use",
            m.pool_assigned.clone(),
        );
        r.register("allocations", "Allocation decisions", m.allocations.clone());
        r.register("reconciles", "Service reconciles", m.reconciles.clone());
        r.register(
            "reconcile_duration_seconds",
            "Service reconcile duration",
            m.reconcile_duration.clone(),
        );
        r.register(
            "status_writes",
            "Service status writes",
            m.status_writes.clone(),
        );
        r.register(
            "leader",
            "1 while this replica is the leader",
            m.leader.clone(),
        );
        r.register(
            "config_valid",
            "1 while every configuration object is valid",
            m.config_valid.clone(),
        );
        Arc::new(m)
    }
}

/// Liveness and readiness, shared with the HTTP endpoints.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    /// Marks the controller ready (or not).
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
        let metrics = Metrics::new(&mut registry);
        metrics
            .reconciles
            .get_or_create(&ResultLabels::of("assigned"))
            .inc();
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
            metrics_page.contains("ferrolb_controller_reconciles_total{result=\"assigned\"} 1"),
            "{metrics_page}"
        );
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        health.set_ready(true);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
    }
}
