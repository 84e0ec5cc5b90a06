//! Faults the driver injects, and the helpers they need: etcd compaction (so that watches
//! resuming from an old resourceVersion get 410 Gone) and a watch of our own that proves it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::universe::BARRIER_NAMESPACE;

/// One fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL the leader (and start it again).
    KillLeader,
    /// SIGKILL a standby (and start it again).
    KillStandby,
    /// SIGSTOP the leader for longer than its lease, then SIGCONT: a deposed leader.
    FreezeLeader,
    /// SIGSTOP the leader for half a second: a hiccup it should ride out.
    PauseLeader,
    /// The leader's proxy holds every byte for longer than the lease.
    StallLeader,
    /// Every replica's connections are reset and new ones refused for a moment.
    DropConnections,
    /// kube-apiserver SIGKILLed and started again.
    RestartApiserver,
    /// etcd compacted and every connection reset: watches resume into 410 Gone.
    ExpireWatches,
}

impl Fault {
    /// Every fault, in the order a run goes through them (the leader's death twice as often).
    const ALL: [Self; 9] = [
        Self::KillLeader,
        Self::DropConnections,
        Self::FreezeLeader,
        Self::RestartApiserver,
        Self::KillStandby,
        Self::StallLeader,
        Self::ExpireWatches,
        Self::KillLeader,
        Self::PauseLeader,
    ];

    /// The `n`th fault of a run whose rotation starts at `offset`: every kind comes up once
    /// in nine faults, so even a short run meets them all.
    pub fn nth(n: usize, offset: usize) -> Self {
        Self::ALL[(n + offset) % Self::ALL.len()]
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::KillLeader => "SIGKILL the leader",
            Self::KillStandby => "SIGKILL a standby",
            Self::FreezeLeader => "SIGSTOP the leader past its lease",
            Self::PauseLeader => "SIGSTOP the leader for 0.5 s",
            Self::StallLeader => "stall the leader's connections past its lease",
            Self::DropConnections => "reset every controller connection",
            Self::RestartApiserver => "restart kube-apiserver",
            Self::ExpireWatches => "compact etcd and reset connections (410 Gone)",
        })
    }
}

/// Compacts etcd up to its current revision after one write, then shows that a watch from
/// the resourceVersion before that write is refused with 410 Gone. Returns whether it was.
pub async fn compact_and_confirm_gone(
    client: &kube::Client,
    etcd_url: &str,
) -> anyhow::Result<bool> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let old = namespaces
        .list(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .context("a list without resourceVersion")?;
    // One write, so that `old` is older than the compaction point.
    let stamp = format!(
        "{}",
        std::time::UNIX_EPOCH
            .elapsed()
            .unwrap_or_default()
            .as_nanos()
    );
    namespaces
        .patch(
            BARRIER_NAMESPACE,
            &PatchParams::apply("chaos-driver").force(),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": { "name": BARRIER_NAMESPACE, "annotations": { "chaos/compacted": stamp } },
            })),
        )
        .await?;
    let addr: SocketAddr = etcd_url
        .trim_start_matches("http://")
        .parse()
        .context("etcd's address")?;
    let range = etcd_post(addr, "/v3/kv/range", r#"{"key":"AA=="}"#).await?;
    let revision = serde_json::from_str::<serde_json::Value>(&range)?["header"]["revision"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no revision in etcd's answer: {range}"))?;
    etcd_post(
        addr,
        "/v3/kv/compaction",
        &format!(r#"{{"revision":"{revision}","physical":true}}"#),
    )
    .await?;
    let mut stream = namespaces
        .watch(&WatchParams::default().timeout(5), &old)
        .await?
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
    Ok(match first {
        Ok(Some(Ok(WatchEvent::Error(e)))) => e.code == 410,
        Ok(Some(Err(kube::Error::Api(e)))) => e.code == 410,
        _ => false,
    })
}

/// POST `body` to etcd's JSON gateway; the response body.
async fn etcd_post(addr: SocketAddr, path: &str, body: &str) -> anyhow::Result<String> {
    let io = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!(
            "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        anyhow::Ok(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(Duration::from_secs(10), io)
        .await
        .with_context(|| format!("POST {path} to etcd timed out"))??;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    anyhow::ensure!(head.contains(" 200 "), "POST {path} to etcd: {head}");
    Ok(body.to_owned())
}
