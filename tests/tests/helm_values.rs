//! The Helm chart's values change exactly what they say: the ServiceMonitor, the Grafana
//! dashboard and the alert rules are off by default and each one object when enabled; the image,
//! controller, speaker and namespace values reach the objects and nothing else. Rendered with
//! the real `helm template` ([`ferrolb_tests::helm`]).

use std::collections::BTreeMap;

use anyhow::Context;
use ferrolb_tests::fixtures::repo_path;
use ferrolb_tests::helm::{
    IMAGE_REPOSITORY, Key, NS, assert_same_objects, container, daemonset_key, deployment_key, get,
    key, rendered, show,
};
use serde_json::{Value, json};

#[test]
fn the_service_monitor_is_off_by_default_and_one_object_when_enabled() -> anyhow::Result<()> {
    let default = rendered(&[])?;
    assert!(
        default.keys().all(|k| k.1 != "ServiceMonitor"),
        "a ServiceMonitor by default"
    );
    let enabled = rendered(&[
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "serviceMonitor.labels.release=prometheus",
    ])?;
    let mut added: Vec<&Key> = enabled
        .keys()
        .filter(|k| !default.contains_key(*k))
        .collect();
    assert_eq!(
        added,
        vec![&key(
            "monitoring.coreos.com/v1",
            "ServiceMonitor",
            NS,
            "ferrolb"
        )],
        "serviceMonitor.enabled=true adds exactly one ServiceMonitor"
    );
    let monitor = &enabled[added.remove(0)];
    let rest: BTreeMap<Key, Value> = enabled
        .iter()
        .filter(|(k, _)| k.1 != "ServiceMonitor")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_same_objects(
        "the default render",
        &default,
        "the render with the ServiceMonitor",
        &rest,
    );

    // It scrapes the metrics Service: its selector matches the Service's labels, by port name.
    let service = get(&default, &key("v1", "Service", NS, "ferrolb-metrics"));
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .context("matchLabels")?;
    assert!(!selector.is_empty());
    for (label, value) in selector {
        assert_eq!(
            &service["metadata"]["labels"][label], value,
            "the ServiceMonitor selects label {label}"
        );
    }
    assert_eq!(
        monitor["spec"]["namespaceSelector"]["matchNames"],
        json!([NS])
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], json!("metrics"));
    assert_eq!(service["spec"]["ports"][0]["name"], json!("metrics"));
    assert_eq!(monitor["spec"]["endpoints"][0]["interval"], json!("30s"));
    assert_eq!(
        monitor["metadata"]["labels"]["release"],
        json!("prometheus")
    );
    assert_eq!(
        monitor["metadata"]["labels"]["app.kubernetes.io/part-of"],
        json!("ferrolb")
    );
    Ok(())
}

#[test]
fn the_grafana_dashboard_is_off_by_default_and_one_config_map_of_the_file_when_enabled()
-> anyhow::Result<()> {
    let default = rendered(&[])?;
    let enabled = rendered(&[
        "--set",
        "grafanaDashboard.enabled=true",
        "--set",
        "grafanaDashboard.annotations.grafana_folder=Networking",
    ])?;
    let added: Vec<&Key> = enabled
        .keys()
        .filter(|k| !default.contains_key(*k))
        .collect();
    let config_map = key("v1", "ConfigMap", NS, "ferrolb-grafana-dashboard");
    assert_eq!(
        added,
        vec![&config_map],
        "grafanaDashboard.enabled=true adds exactly one ConfigMap"
    );
    assert_eq!(default.len() + 1, enabled.len());
    let cm = &enabled[&config_map];
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], json!("1"));
    assert_eq!(
        cm["metadata"]["annotations"]["grafana_folder"],
        json!("Networking")
    );
    // The very dashboard of the file (the one the lab test checks against live metrics).
    let file = std::fs::read_to_string(repo_path("manifests/chart/dashboards/ferrolb.json"))?;
    let shipped = cm["data"]["ferrolb.json"]
        .as_str()
        .context("the ConfigMap holds ferrolb.json")?;
    assert_eq!(shipped, file.trim_end());
    let parsed: Value = serde_json::from_str(shipped)?;
    assert_eq!(parsed["uid"], json!("ferrolb"));
    Ok(())
}

#[test]
fn the_image_values_change_both_workloads_and_nothing_else() -> anyhow::Result<()> {
    let default = rendered(&[])?;
    for workload in [deployment_key(), daemonset_key()] {
        assert_eq!(
            container(get(&default, &workload))["image"],
            json!(format!("{IMAGE_REPOSITORY}:0.1.0")),
            "{} defaults to the appVersion tag",
            show(&workload)
        );
    }
    let custom = rendered(&[
        "--set",
        "image.tag=0.2.0-rc.1",
        "--set",
        "image.repository=registry.example/ferrolb",
        "--set",
        "image.pullPolicy=Always",
    ])?;
    // Exactly these two fields of each workload's container change.
    let mut expected = default.clone();
    for workload in [deployment_key(), daemonset_key()] {
        let c = expected
            .get_mut(&workload)
            .and_then(|w| w["spec"]["template"]["spec"]["containers"].get_mut(0))
            .and_then(Value::as_object_mut)
            .with_context(|| format!("{} has no container", show(&workload)))?;
        c.insert("image".into(), json!("registry.example/ferrolb:0.2.0-rc.1"));
        c.insert("imagePullPolicy".into(), json!("Always"));
    }
    assert_same_objects(
        "the default render with the new image",
        &expected,
        "the render with image.* set",
        &custom,
    );

    // The tag alone keeps the repository.
    let tagged = rendered(&["--set", "image.tag=9.9.9"])?;
    for workload in [deployment_key(), daemonset_key()] {
        let c = container(get(&tagged, &workload));
        assert_eq!(c["image"], json!(format!("{IMAGE_REPOSITORY}:9.9.9")));
        assert!(c.get("imagePullPolicy").is_none());
    }
    Ok(())
}

#[test]
fn the_controller_speaker_and_namespace_values_reach_the_objects() -> anyhow::Result<()> {
    let values = tempfile::Builder::new().suffix(".yaml").tempfile()?;
    std::fs::write(
        values.path(),
        r#"
namespace:
  create: false
controller:
  replicas: 3
  logFormat: plain
  resources:
    requests: {cpu: 50m, memory: 64Mi}
  extraArgs: [--lb-class=example.com/lb]
speaker:
  logFormat: plain
  resources:
    limits: {memory: 128Mi}
  excludeInterfaces: ["^eth1$", "^docker.*"]
  ignoreExcludeLB: true
  serviceBGPStatus: true
  bmpCollectors: ["bmp.example.net:1790", "192.0.2.50:1790"]
  extraArgs: [--gratuitous-refresh-secs=30]
  nodeSelector: {kubernetes.io/os: linux}
  tolerations: []
"#,
    )?;
    let default = rendered(&[])?;
    let custom = rendered(&["-f", &values.path().to_string_lossy()])?;

    // namespace.create=false drops exactly the Namespace.
    let dropped: Vec<&Key> = default
        .keys()
        .filter(|k| !custom.contains_key(*k))
        .collect();
    assert_eq!(dropped, vec![&key("v1", "Namespace", "", NS)]);
    assert!(custom.keys().all(|k| default.contains_key(k)));

    let deployment = get(&custom, &deployment_key());
    assert_eq!(deployment["spec"]["replicas"], json!(3));
    let c = container(deployment);
    assert_eq!(
        c["args"],
        json!(["--log-format=plain", "--lb-class=example.com/lb"])
    );
    // Helm merges maps with the defaults: the default limit stays (`limits: null` drops it).
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}})
    );

    let daemonset = get(&custom, &daemonset_key());
    let c = container(daemonset);
    assert_eq!(
        c["args"],
        json!([
            "--log-format=plain",
            "--metrics-port=7948",
            "--exclude-interfaces=^eth1$,^docker.*",
            "--ignore-exclude-lb",
            "--service-bgp-status",
            "--bmp-collector=bmp.example.net:1790,192.0.2.50:1790",
            "--gratuitous-refresh-secs=30"
        ])
    );
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}})
    );
    let pod = &daemonset["spec"]["template"]["spec"];
    assert!(
        pod.get("tolerations").is_none(),
        "tolerations: [] renders none"
    );
    assert_eq!(pod["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    // The security-relevant parts do not move with the values.
    let default_ds = get(&default, &daemonset_key());
    assert_eq!(
        c["securityContext"],
        container(default_ds)["securityContext"]
    );
    assert_eq!(pod["hostNetwork"], json!(true));
    Ok(())
}

/// The chart says which Kubernetes it needs (1.31, see README "Install"): helm refuses an
/// older cluster before it writes anything, and renders for the oldest one it accepts.
#[test]
fn the_alert_rules_are_off_by_default_and_one_prometheus_rule_of_the_file_when_enabled()
-> anyhow::Result<()> {
    let default = rendered(&[])?;
    let enabled = rendered(&[
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "prometheusRule.labels.release=prometheus",
    ])?;
    let added: Vec<&Key> = enabled
        .keys()
        .filter(|k| !default.contains_key(*k))
        .collect();
    let rule = key("monitoring.coreos.com/v1", "PrometheusRule", NS, "ferrolb");
    assert_eq!(
        added,
        vec![&rule],
        "prometheusRule.enabled=true adds exactly one PrometheusRule"
    );
    assert_eq!(default.len() + 1, enabled.len());
    let object = &enabled[&rule];
    assert_eq!(object["metadata"]["labels"]["release"], json!("prometheus"));
    // Its spec is the rules file (the one promtool evaluates on the lab's series), as parsed.
    let file = std::fs::read_to_string(repo_path("manifests/chart/alerts/ferrolb.rules.yaml"))?;
    let parsed: Value = serde_saphyr::from_str(&file)?;
    assert_eq!(object["spec"], parsed);
    assert_eq!(
        object["spec"]["groups"][0]["rules"]
            .as_array()
            .map(Vec::len),
        Some(8)
    );
    Ok(())
}
