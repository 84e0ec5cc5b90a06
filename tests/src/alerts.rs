//! The alert rules (`manifests/chart/alerts/ferrolb.rules.yaml`) checked by Prometheus' own
//! `promtool`: `check rules` for their syntax, and `test rules` for what they do, on series
//! scraped from a running ferrolb ([`crate::scrape`]) before and during a fault.
//!
//! A [`Phase`] is two scrapes of every target, one of the healthy lab just before a fault and
//! one while it lasts, and the alerts that fault must raise. Each phase becomes one promtool
//! test: the first scrape's values held for 30 minutes, then the second's for 30 more (a
//! counter keeps the step between them; a series missing from the second scrape, or a target
//! that no longer answers, gets a staleness marker, as Prometheus writes). Every rule is evaluated at minute 29, where none may
//! fire, and once its `for` has run out after the fault began (minute 30 + `for` + 1), where
//! exactly the phase's expected alerts of that rule must fire, with their labels and
//! annotations.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::scrape::{Samples, Target, samples};

/// The rules file, as the chart ships it.
pub const RULES: &str = "manifests/chart/alerts/ferrolb.rules.yaml";

/// Minutes each of a phase's two scrapes is held.
const HELD: u64 = 30;

/// The directory holding `promtool` and `prometheus` (`$FERROLB_PROMETHEUS_BIN`, else
/// `tests/setup/prometheus.sh` builds it).
pub fn prometheus_dir() -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("FERROLB_PROMETHEUS_BIN") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => crate::apiserver::run_setup_script("prometheus")?,
    };
    ensure!(
        dir.join("promtool").is_file(),
        "{} holds no promtool",
        dir.display()
    );
    Ok(dir)
}

#[derive(Debug, Deserialize)]
struct File {
    groups: Vec<Group>,
}

#[derive(Debug, Deserialize)]
struct Group {
    rules: Vec<Rule>,
}

/// One alerting rule of the file.
#[derive(Clone, Debug, Deserialize)]
pub struct Rule {
    /// Its name.
    pub alert: String,
    /// Its PromQL expression.
    pub expr: String,
    /// How long the expression must hold (`2m`), if at all.
    #[serde(default)]
    pub r#for: Option<String>,
    /// Labels it adds (`severity`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `summary` and `description`.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl Rule {
    /// Its `for` in minutes (0 without one).
    pub fn for_minutes(&self) -> anyhow::Result<u64> {
        let Some(d) = &self.r#for else { return Ok(0) };
        let minutes = d
            .strip_suffix('m')
            .with_context(|| format!("{}: `for: {d}` is not in minutes", self.alert))?;
        Ok(minutes.parse()?)
    }
}

/// The rules of [`RULES`].
pub fn rules() -> anyhow::Result<Vec<Rule>> {
    let text = std::fs::read_to_string(crate::fixtures::repo_path(RULES))?;
    let file: File = serde_saphyr::from_str(&text).context(RULES)?;
    Ok(file.groups.into_iter().flat_map(|g| g.rules).collect())
}

/// An alert a fault must raise.
#[derive(Clone, Debug)]
pub struct Expected {
    /// The rule's name.
    pub alert: &'static str,
    /// The labels the expression gives it (the rule's own are added).
    pub labels: Vec<(&'static str, String)>,
    /// Its summary, rendered; the description is the rule's, which has no templates.
    pub summary: String,
}

/// A fault as recorded: every target scraped before and during it, and what it must raise.
#[derive(Clone, Debug)]
pub struct Phase {
    /// What the fault is (`bgp`, …).
    pub name: &'static str,
    pub before: Vec<Target>,
    pub during: Vec<Target>,
    pub firing: Vec<Expected>,
}

fn all_samples(targets: &[Target]) -> anyhow::Result<Samples> {
    let mut out = Samples::new();
    for t in targets {
        out.extend(samples(t)?);
    }
    Ok(out)
}

/// A value in promtool's series notation.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// The series' values: `before` held for `HELD` minutes, then `during` for `HELD` more, in
/// promtool's notation (`axN` is N + 1 values, `_` no sample). A series that stops being exported
/// gets a staleness marker first, as Prometheus writes one at the first scrape without it (or
/// when the whole target is gone): without it, its last value would be read for 5 minutes more.
fn values(before: Option<f64>, during: Option<f64>) -> String {
    let n = HELD - 1;
    let first = match before {
        Some(v) => format!("{}x{n}", number(v)),
        None => format!("_x{n}"),
    };
    let second = match (before, during) {
        (_, Some(v)) => format!("{}x{n}", number(v)),
        (Some(_), None) => format!("stale _x{}", n - 1),
        (None, None) => format!("_x{n}"),
    };
    format!("{first} {second}")
}

/// promtool's unit-test file (JSON, which its YAML reader takes) for `phases`.
pub fn unit_tests(rules_file: &Path, rules: &[Rule], phases: &[Phase]) -> anyhow::Result<Value> {
    let mut tests = Vec::new();
    for phase in phases {
        let before = all_samples(&phase.before)?;
        let during = all_samples(&phase.during)?;
        let names: std::collections::BTreeSet<&String> =
            before.keys().chain(during.keys()).collect();
        let input: Vec<Value> = names
            .into_iter()
            .map(|series| {
                json!({
                    "series": series,
                    "values": values(
                        before.get(series).copied(),
                        during.get(series).copied()
                    ),
                })
            })
            .collect();
        for e in &phase.firing {
            ensure!(
                rules.iter().any(|r| r.alert == e.alert),
                "phase {}: no rule {}",
                phase.name,
                e.alert
            );
        }
        let mut checks = Vec::new();
        for rule in rules {
            checks.push(json!({
                "eval_time": format!("{}m", HELD - 1),
                "alertname": rule.alert,
                "exp_alerts": [],
            }));
            let expected: Vec<Value> = phase
                .firing
                .iter()
                .filter(|e| e.alert == rule.alert)
                .map(|e| {
                    let mut labels = rule.labels.clone();
                    labels.extend(e.labels.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
                    let mut annotations = rule.annotations.clone();
                    annotations.insert("summary".into(), e.summary.clone());
                    json!({"exp_labels": labels, "exp_annotations": annotations})
                })
                .collect();
            checks.push(json!({
                "eval_time": format!("{}m", HELD + rule.for_minutes()? + 1),
                "alertname": rule.alert,
                "exp_alerts": expected,
            }));
        }
        tests.push(json!({
            "name": phase.name,
            "interval": "1m",
            "input_series": input,
            "alert_rule_test": checks,
        }));
    }
    Ok(json!({
        "rule_files": [rules_file],
        "evaluation_interval": "1m",
        "tests": tests,
    }))
}

/// Runs `promtool` with `args`; its output, or an error holding it.
pub fn promtool(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(dir.join("promtool"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running promtool")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(out.status.success(), "promtool {args:?} failed:\n{text}");
    Ok(text)
}

/// Writes the phases' unit tests beside a copy of the rules in `work` and runs `promtool test
/// rules` on them; its output.
pub fn test_rules(prometheus: &Path, work: &Path, phases: &[Phase]) -> anyhow::Result<String> {
    let rules_file = work.join("ferrolb.rules.yaml");
    std::fs::copy(crate::fixtures::repo_path(RULES), &rules_file)?;
    let tests = unit_tests(&rules_file, &rules()?, phases)?;
    let tests_file = work.join("ferrolb.test.yaml");
    std::fs::write(&tests_file, serde_json::to_string_pretty(&tests)?)?;
    promtool(
        prometheus,
        &["test", "rules", tests_file.to_str().context("path")?],
    )
}

/// How long a fault may take to show in the scraped series.
pub const SHOWS_WITHIN: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_file_has_every_alert_the_issue_asks_for_with_static_descriptions() {
        let rules = rules().expect("the rules file");
        let names: Vec<&str> = rules.iter().map(|r| r.alert.as_str()).collect();
        for wanted in [
            "FerrolbPoolNearlyExhausted",
            "FerrolbServicesPending",
            "FerrolbSplitBrain",
            "FerrolbBGPSessionDown",
            "FerrolbBFDSessionDown",
            "FerrolbMembershipShrinking",
            "FerrolbNoControllerLeader",
            "FerrolbConfigInvalid",
        ] {
            assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
        }
        for r in &rules {
            r.for_minutes().expect("`for` in minutes");
            assert!(r.labels.contains_key("severity"), "{}", r.alert);
            assert!(r.annotations.contains_key("summary"), "{}", r.alert);
            let description = &r.annotations["description"];
            assert!(!description.contains("{{"), "{}: {description}", r.alert);
        }
    }

    #[test]
    fn a_phase_holds_each_scrape_for_half_an_hour_and_checks_every_rule_twice() {
        let target = |text: &str| Target {
            job: "speaker",
            instance: "192.0.2.1:7948".into(),
            text: text.into(),
        };
        let rules = rules().expect("the rules file");
        let phase = Phase {
            name: "bgp",
            before: vec![target(
                "ferrolb_speaker_bgp_session_up{peer=\"r\"} 1\nferrolb_gone 2\n",
            )],
            during: vec![target("ferrolb_speaker_bgp_session_up{peer=\"r\"} 0\n")],
            firing: vec![Expected {
                alert: "FerrolbBGPSessionDown",
                labels: vec![("peer", "r".into())],
                summary: "down".into(),
            }],
        };
        let file = unit_tests(Path::new("/r.yaml"), &rules, &[phase]).expect("the unit tests");
        let test = &file["tests"][0];
        let series: Vec<(&str, &str)> = test["input_series"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|s| {
                (
                    s["series"].as_str().unwrap_or_default(),
                    s["values"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            series,
            [
                (
                    "ferrolb_gone{instance=\"192.0.2.1:7948\",job=\"speaker\"}",
                    "2x29 stale _x28"
                ),
                (
                    "ferrolb_speaker_bgp_session_up{instance=\"192.0.2.1:7948\",job=\"speaker\",peer=\"r\"}",
                    "1x29 0x29"
                ),
            ]
        );
        let checks = test["alert_rule_test"].as_array().expect("a list");
        assert_eq!(checks.len(), 2 * rules.len());
        let bgp: Vec<&Value> = checks
            .iter()
            .filter(|c| c["alertname"] == "FerrolbBGPSessionDown")
            .collect();
        assert_eq!(bgp[0]["eval_time"], "29m");
        assert_eq!(bgp[0]["exp_alerts"], json!([]));
        assert_eq!(bgp[1]["eval_time"], "33m");
        assert_eq!(bgp[1]["exp_alerts"][0]["exp_labels"]["peer"], "r");
        assert_eq!(bgp[1]["exp_alerts"][0]["exp_labels"]["severity"], "warning");
        assert_eq!(
            bgp[1]["exp_alerts"][0]["exp_annotations"]["summary"],
            "down"
        );
        // Every other rule is expected silent after the fault too.
        assert!(
            checks
                .iter()
                .filter(|c| c["alertname"] != "FerrolbBGPSessionDown")
                .all(|c| c["exp_alerts"] == json!([]))
        );
    }
}
