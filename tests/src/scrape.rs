//! What Prometheus would scrape from the lab: every speaker's and controller's `/metrics`, each
//! as one target with the `job` and `instance` labels Prometheus gives its series, and the
//! series parsed out of the text format.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use crate::lab::{self, ClusterLab};

/// The metrics ports install.yaml gives the speaker (`--metrics-port`) and the controller.
pub const SPEAKER_METRICS_PORT: u16 = 7948;
pub const CONTROLLER_METRICS_PORT: u16 = 7472;

/// One scraped target.
#[derive(Clone, Debug)]
pub struct Target {
    /// `speaker` or `controller`.
    pub job: &'static str,
    /// `address:port`, as Prometheus names a target.
    pub instance: String,
    /// The `/metrics` body.
    pub text: String,
}

/// Every speaker (on its node's address, from the LAN client) and every controller replica (on
/// its pod's address, from node-1) that answers; a target that does not is left out, as its
/// series go stale in Prometheus.
pub async fn lab_targets(lab: &ClusterLab) -> anyhow::Result<Vec<Target>> {
    let state = lab.state();
    let mut targets = Vec::new();
    for node in &state.nodes {
        let ip = IpAddr::V4(node.ipv4);
        if let Ok(text) =
            lab::http_get_path(&state.client_netns, ip, SPEAKER_METRICS_PORT, "/metrics")
        {
            targets.push(Target {
                job: "speaker",
                instance: format!("{ip}:{SPEAKER_METRICS_PORT}"),
                text,
            });
        }
    }
    let pods: Api<Pod> = Api::namespaced(lab.cluster().client(), crate::fixtures::NAMESPACE);
    let controllers = pods
        .list(&kube::api::ListParams::default().labels("app.kubernetes.io/component=controller"))
        .await?;
    for pod in &controllers.items {
        let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()) else {
            continue;
        };
        let ip: IpAddr = ip.parse().context("a controller pod's IP")?;
        if let Ok(text) = lab::http_get_path(
            &state.nodes[0].netns,
            ip,
            CONTROLLER_METRICS_PORT,
            "/metrics",
        ) {
            targets.push(Target {
                job: "controller",
                instance: format!("{ip}:{CONTROLLER_METRICS_PORT}"),
                text,
            });
        }
    }
    Ok(targets)
}

/// A series as PromQL names it (`name{a="x",…}`, labels sorted, values escaped as in the text
/// format, which PromQL strings read the same way) with its value.
pub type Samples = BTreeMap<String, f64>;

/// The `ferrolb_…` samples of `target`, with its `instance` and `job` labels added.
pub fn samples(target: &Target) -> anyhow::Result<Samples> {
    let mut out = Samples::new();
    for line in target.text.lines() {
        let line = line.trim();
        if !line.starts_with("ferrolb_") {
            continue;
        }
        let (name, mut labels, rest) = parse_line(line).with_context(|| format!("{line:?}"))?;
        labels.insert("instance".into(), target.instance.clone());
        labels.insert("job".into(), target.job.into());
        let value = rest
            .split_whitespace()
            .next()
            .with_context(|| format!("no value in {line:?}"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().with_context(|| format!("value in {line:?}"))?,
        };
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        out.insert(format!("{name}{{{}}}", labels.join(",")), value);
    }
    Ok(out)
}

/// `name{a="x",b="y"} rest` → (name, labels with their values still escaped, rest).
fn parse_line(line: &str) -> anyhow::Result<(&str, BTreeMap<String, String>, &str)> {
    let name_end = line.find(['{', ' ']).context("no value")?;
    let name = &line[..name_end];
    let mut labels = BTreeMap::new();
    let Some(inside) = line[name_end..].strip_prefix('{') else {
        return Ok((name, labels, &line[name_end..]));
    };
    let mut rest = inside;
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((name, labels, after));
        }
        let (key, after) = rest.split_once("=\"").context("a label without a value")?;
        let bytes = after.as_bytes();
        let mut i = 0;
        while i < bytes.len() && bytes[i] != b'"' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        anyhow::ensure!(i < bytes.len(), "an unterminated label value");
        labels.insert(key.trim().to_owned(), after[..i].to_owned());
        rest = &after[i + 1..];
    }
}

/// The value of the series of `metric` whose labels include all of `labels`, summed over the
/// series that match (0 when none do).
pub fn value(samples: &Samples, metric: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| {
            series.strip_prefix(metric).is_some_and(|rest| {
                rest.starts_with('{')
                    && labels.iter().all(|(k, v)| {
                        // A whole label: `{k="v"` or `,k="v"`, not the end of another name.
                        let pair = format!("{k}=\"{v}\"");
                        rest.contains(&format!("{{{pair}")) || rest.contains(&format!(",{pair}"))
                    })
            })
        })
        .map(|(_, v)| v)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_get_the_target_labels_and_keep_their_own() {
        let target = Target {
            job: "speaker",
            instance: "192.0.2.1:7948".into(),
            text: "# HELP ferrolb_a A.\n# TYPE ferrolb_a gauge\n\
                   ferrolb_a{peer=\"r\\\"1\",address=\"192.0.2.6\"} 0\n\
                   ferrolb_b_total 7\nferrolb_c_bucket{le=\"+Inf\"} 3\nprocess_cpu 1\n"
                .into(),
        };
        let s = samples(&target).expect("parses");
        assert_eq!(
            s.keys().collect::<Vec<_>>(),
            [
                "ferrolb_a{address=\"192.0.2.6\",instance=\"192.0.2.1:7948\",job=\"speaker\",peer=\"r\\\"1\"}",
                "ferrolb_b_total{instance=\"192.0.2.1:7948\",job=\"speaker\"}",
                "ferrolb_c_bucket{instance=\"192.0.2.1:7948\",job=\"speaker\",le=\"+Inf\"}",
            ]
        );
        assert_eq!(value(&s, "ferrolb_b_total", &[]), 7.0);
        assert_eq!(value(&s, "ferrolb_a", &[("address", "192.0.2.6")]), 0.0);
        assert_eq!(value(&s, "ferrolb_c_bucket", &[("le", "+Inf")]), 3.0);
        // A label is matched whole: `le` is not `e`.
        assert_eq!(value(&s, "ferrolb_c_bucket", &[("e", "+Inf")]), 0.0);
        // `ferrolb_b` is not a prefix match for `ferrolb_b_total`.
        assert_eq!(value(&s, "ferrolb_b", &[]), 0.0);
    }
}
