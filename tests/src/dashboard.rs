//! The Grafana dashboard (`manifests/chart/dashboards/ferrolb.json`) against what the binaries
//! export: every query's metrics and labels must exist in scraped `/metrics` text, so no panel
//! is dead. A metric counts only with at least one series (a family that merely declares itself
//! draws nothing), and a label only if some series of a metric of the same query carries it,
//! or Prometheus adds it when scraping (`instance`, `pod`, …). PromQL is not parsed in full:
//! metric names are the `ferrolb_…` identifiers, labels those in `{…}` matchers, `by (…)`,
//! `without (…)` and `label_values(…, label)`; that is all the dashboard uses.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::lab::ClusterLab;

/// Labels Prometheus adds to every scraped series (target labels of a ServiceMonitor or a
/// Kubernetes scrape config), and the histogram bucket bound.
pub const SCRAPE_LABELS: [&str; 8] = [
    "instance",
    "job",
    "pod",
    "namespace",
    "container",
    "endpoint",
    "service",
    "le",
];

/// The dashboard as the chart ships it.
pub fn load() -> anyhow::Result<Value> {
    let path = crate::fixtures::repo_path("manifests/chart/dashboards/ferrolb.json");
    let text = std::fs::read_to_string(&path)?;
    Ok(serde_json::from_str(&text)?)
}

/// Every query: each panel's targets (rows' nested panels too) and each query variable's.
pub fn queries(dashboard: &Value) -> Vec<(String, String)> {
    fn panels(list: &Value, out: &mut Vec<(String, String)>) {
        for panel in list.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("?");
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((format!("panel {title:?}"), expr.to_owned()));
                }
            }
            panels(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dashboard["panels"], &mut out);
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if var["type"] != "query" {
            continue;
        }
        let query = var["query"]["query"]
            .as_str()
            .or_else(|| var["query"].as_str());
        if let Some(q) = query {
            let name = var["name"].as_str().unwrap_or("?");
            out.push((format!("variable ${name}"), q.to_owned()));
        }
    }
    out
}

fn identifiers(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let bytes = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            let start = i;
            if bytes[i].is_ascii_alphabetic() || bytes[i] == b'_' {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                return Some((start, &text[start..i]));
            }
            if bytes[i] == b'"' {
                // Skip a string literal (label values, legend text).
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            i += 1;
        }
        None
    })
}

/// The `ferrolb_…` metric names a query reads.
pub fn metric_names(query: &str) -> BTreeSet<String> {
    identifiers(query)
        .filter(|(_, id)| id.starts_with("ferrolb_"))
        .map(|(_, id)| id.to_owned())
        .collect()
}

/// The label names a query matches on or groups by.
pub fn label_names(query: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = query;
    // `{a="x", b=~"y"}`: identifiers directly followed by a matcher operator.
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
        let inside = &rest[open + 1..close];
        for (at, id) in identifiers(inside) {
            let after = inside[at + id.len()..].trim_start();
            if ["=", "!=", "=~", "!~"]
                .iter()
                .any(|op| after.starts_with(op))
            {
                out.insert(id.to_owned());
            }
        }
        rest = &rest[close.min(rest.len())..];
        if rest.is_empty() {
            break;
        }
        rest = &rest[1..];
    }
    // `by (a, b)`, `without (a)`.
    let words: Vec<(usize, &str)> = identifiers(query).collect();
    for (at, word) in &words {
        if *word == "by" || *word == "without" {
            let after = query[at + word.len()..].trim_start();
            if let Some(list) = after.strip_prefix('(')
                && let Some(end) = list.find(')')
            {
                out.extend(identifiers(&list[..end]).map(|(_, id)| id.to_owned()));
            }
        }
    }
    // `label_values(metric, label)`.
    if let Some(args) = query.trim().strip_prefix("label_values(")
        && let Some((_, label)) = args.trim_end_matches(')').rsplit_once(',')
    {
        out.insert(label.trim().to_owned());
    }
    out
}

/// Series names in Prometheus' text format with the label names each carries (over all its
/// series).
pub fn exposition(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = out.entry(line[..name_end].to_owned()).or_default();
        if line[name_end..].starts_with('{')
            && let Some(close) = line.rfind('}')
        {
            for (at, id) in identifiers(&line[name_end + 1..close]) {
                if line[name_end + 1 + at + id.len()..].starts_with('=') {
                    labels.insert(id.to_owned());
                }
            }
        }
    }
    out
}

/// What in the dashboard the scraped series do not back: one line per metric or label.
pub fn dead_references(
    dashboard: &Value,
    scraped: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (place, query) in queries(dashboard) {
        let metrics = metric_names(&query);
        if metrics.is_empty() {
            problems.push(format!("{place}: no ferrolb metric in {query:?}"));
        }
        let mut labels_there: BTreeSet<&str> = SCRAPE_LABELS.into_iter().collect();
        for metric in &metrics {
            match scraped.get(metric) {
                Some(labels) => labels_there.extend(labels.iter().map(String::as_str)),
                None => problems.push(format!("{place}: {metric} has no series")),
            }
        }
        for label in label_names(&query) {
            if !labels_there.contains(label.as_str()) {
                problems.push(format!(
                    "{place}: no series of {metrics:?} has the label {label:?}"
                ));
            }
        }
    }
    problems
}

/// Scrapes every speaker and controller replica ([`crate::scrape::lab_targets`]) and checks the
/// dashboard against the union.
pub async fn check_lab(lab: &ClusterLab) -> anyhow::Result<()> {
    let targets = crate::scrape::lab_targets(lab).await?;
    let speakers = targets.iter().filter(|t| t.job == "speaker").count();
    anyhow::ensure!(
        speakers == lab.state().nodes.len(),
        "{speakers} of {} speakers answered on /metrics",
        lab.state().nodes.len()
    );
    anyhow::ensure!(
        targets.iter().any(|t| t.job == "controller"),
        "no controller answered on /metrics"
    );
    let text: String = targets.iter().map(|t| format!("{}\n", t.text)).collect();
    let scraped = exposition(&text);
    let board = load()?;
    let queries = queries(&board);
    anyhow::ensure!(
        queries.len() >= 20,
        "only {} queries in the dashboard",
        queries.len()
    );
    let dead = dead_references(&board, &scraped);
    anyhow::ensure!(dead.is_empty(), "dead panels:\n{}", dead.join("\n"));
    eprintln!(
        "the dashboard's {} queries all find their series among {} scraped",
        queries.len(),
        scraped.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_come_out_of_the_queries_the_dashboard_writes() {
        let q = r#"sum by (instance, peer) (rate(ferrolb_speaker_bgp_messages_sent_total{instance=~"$instance", type="update"}[5m]))"#;
        assert_eq!(
            metric_names(q),
            BTreeSet::from(["ferrolb_speaker_bgp_messages_sent_total".to_owned()])
        );
        assert_eq!(
            label_names(q),
            ["instance", "peer", "type"]
                .into_iter()
                .map(String::from)
                .collect::<BTreeSet<_>>()
        );
        let v = "label_values(ferrolb_speaker_membership_members_alive, instance)";
        assert_eq!(label_names(v), BTreeSet::from(["instance".to_owned()]));
        // A label value that looks like a metric is not one.
        assert!(metric_names(r#"up{job="ferrolb_x"}"#).is_empty());
    }

    #[test]
    fn a_query_of_a_missing_metric_or_label_is_reported() {
        let scraped = exposition(
            "# HELP ferrolb_a A.\n# TYPE ferrolb_a gauge\nferrolb_a{pool=\"lan\",family=\"ipv4\"} 3\n\
             # HELP ferrolb_b B.\n# TYPE ferrolb_b counter\n",
        );
        assert_eq!(
            scraped["ferrolb_a"],
            BTreeSet::from(["family".to_owned(), "pool".to_owned()])
        );
        let dashboard = serde_json::json!({"panels": [
            {"title": "ok", "targets": [{"expr": "max by (pool, instance) (ferrolb_a)"}]},
            {"type": "row", "title": "r", "panels": [
                {"title": "declared only", "targets": [{"expr": "rate(ferrolb_b[5m])"}]},
                {"title": "wrong label", "targets": [{"expr": "sum by (node) (ferrolb_a)"}]}
            ]}
        ]});
        assert_eq!(
            dead_references(&dashboard, &scraped),
            [
                "panel \"declared only\": ferrolb_b has no series",
                "panel \"wrong label\": no series of {\"ferrolb_a\"} has the label \"node\"",
            ]
        );
    }
}
