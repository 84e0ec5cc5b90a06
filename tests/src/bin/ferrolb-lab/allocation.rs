//! `ferrolb-lab allocation`: a real etcd + kube-apiserver with the CRDs and samples, the
//! controller, and LoadBalancer Services that show what it assigns: which IP each Service got,
//! from which pool, and why not when it got none (no network needed).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use ferrolb_api::IPAddressPool;
use ferrolb_controller::k8s::CONDITION_TYPE;
use ferrolb_tests::controller::{RunningController, eventually, test_settings};
use ferrolb_tests::fixtures;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;

/// (namespace, name, what it shows, extra annotations, spec overrides)
type Demo = (
    &'static str,
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
    serde_json::Value,
);

fn demo_services() -> Vec<Demo> {
    vec![
        (
            "default",
            "web",
            "asks for the layer-2 pool by name",
            vec![("ferrolb.io/address-pool", "lan")],
            json!({}),
        ),
        (
            "default",
            "api",
            "asks for the BGP pool by name",
            vec![("ferrolb.io/address-pool", "bgp")],
            json!({}),
        ),
        (
            "default",
            "fixed",
            "asks for one IP",
            vec![("ferrolb.io/loadBalancerIPs", "192.0.2.210")],
            json!({}),
        ),
        (
            "default",
            "dns-tcp",
            "shares an IP (key dns), TCP/53",
            vec![
                ("ferrolb.io/allow-shared-ip", "dns"),
                ("ferrolb.io/address-pool", "lan"),
            ],
            json!({"ports": [{"name": "dns", "port": 53, "protocol": "TCP"}]}),
        ),
        (
            "default",
            "dns-udp",
            "shares that IP (key dns), UDP/53",
            vec![
                ("ferrolb.io/allow-shared-ip", "dns"),
                ("ferrolb.io/address-pool", "lan"),
            ],
            json!({"ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}),
        ),
        (
            "default",
            "thief",
            "asks for the IP 'fixed' holds",
            vec![("ferrolb.io/loadBalancerIPs", "192.0.2.210")],
            json!({}),
        ),
        (
            "web",
            "dual",
            "dual stack, in a namespace the dual-stack pool prefers",
            vec![],
            json!({"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"]}),
        ),
        (
            "default",
            "other-class",
            "belongs to another load balancer",
            vec![],
            json!({"loadBalancerClass": "example.com/other"}),
        ),
    ]
}

fn service(
    ns: &str,
    name: &str,
    annotations: &[(&str, &str)],
    extra: &serde_json::Value,
) -> anyhow::Result<Service> {
    let mut spec = json!({
        "type": "LoadBalancer",
        "selector": {"app": name},
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    let annotations: BTreeMap<&str, &str> = annotations.iter().copied().collect();
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": spec,
    }))?)
}

pub async fn run() -> anyhow::Result<()> {
    println!("starting etcd and kube-apiserver (built from k8s.io/kubernetes, cached)...");
    let cp = fixtures::control_plane_with_crds().await?;
    println!(
        "  apiserver {} ready in {:.1?}; CRDs installed",
        cp.server_url(),
        cp.startup_time()
    );
    cp.kubectl(&[
        "apply",
        "-f",
        &fixtures::samples_dir().display().to_string(),
    ])
    .await?
    .into_stdout()
    .context("applying manifests/samples")?;
    cp.kubectl(&["create", "namespace", "web"])
        .await?
        .into_stdout()?;
    cp.kubectl(&["label", "namespace", "web", "tier=web"])
        .await?
        .into_stdout()?;
    println!(
        "  applied manifests/samples/ (pools lan, bgp, lan-dual; advertisements; a BGP peer)\n"
    );

    let controller = RunningController::start(&cp, test_settings("ferrolb-lab"))?;
    controller.wait_leading(Duration::from_secs(30)).await?;
    println!("ferrolb-controller is running and holds the leader lease\n");

    let client = cp.client();
    for (ns, name, _, annotations, extra) in demo_services() {
        let api: Api<Service> = Api::namespaced(client.clone(), ns);
        api.create(
            &PostParams::default(),
            &service(ns, name, &annotations, &extra)?,
        )
        .await?;
    }

    // Wait until every Service of ours has a verdict (an IP or a failed condition).
    let all: Api<Service> = Api::all(client.clone());
    let services = eventually(
        "every Service to get a verdict",
        Duration::from_secs(30),
        || {
            let all = all.clone();
            async move {
                let list = all.list(&ListParams::default()).await?;
                let decided = |s: &Service| {
                    s.spec
                        .as_ref()
                        .and_then(|x| x.load_balancer_class.as_ref())
                        .is_some()
                        || s.status
                            .as_ref()
                            .and_then(|st| st.conditions.as_ref())
                            .is_some_and(|c| c.iter().any(|c| c.type_ == CONDITION_TYPE))
                };
                let ours: Vec<Service> = list
                    .items
                    .into_iter()
                    .filter(|s| {
                        s.spec.as_ref().and_then(|x| x.type_.as_deref()) == Some("LoadBalancer")
                    })
                    .collect();
                anyhow::ensure!(ours.iter().all(decided), "still deciding");
                Ok(ours)
            }
        },
    )
    .await?;

    println!("{:<20} {:<31} {:<9} WHY", "SERVICE", "EXTERNAL IP", "POOL");
    for (ns, name, what, _, _) in demo_services() {
        let Some(svc) = services.iter().find(|s| {
            s.metadata.name.as_deref() == Some(name) && s.metadata.namespace.as_deref() == Some(ns)
        }) else {
            continue;
        };
        let ips: Vec<String> = svc
            .status
            .iter()
            .flat_map(|s| s.load_balancer.iter())
            .flat_map(|lb| lb.ingress.iter().flatten())
            .filter_map(|i| i.ip.clone())
            .collect();
        let pool = ferrolb_controller::service::allocated_pool(svc).unwrap_or("-");
        let verdict = svc
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == CONDITION_TYPE))
            .map(|c| c.message.clone())
            .unwrap_or_else(|| "left alone: not our loadBalancerClass".into());
        let ips = if ips.is_empty() {
            "<pending>".to_string()
        } else {
            ips.join(",")
        };
        println!(
            "{:<20} {:<31} {:<9} {what}: {verdict}",
            format!("{ns}/{name}"),
            ips,
            pool
        );
    }

    let pools: Api<IPAddressPool> = Api::namespaced(client.clone(), ferrolb_api::DEFAULT_NAMESPACE);
    let counted = eventually("pool counters", Duration::from_secs(10), || {
        let pools = pools.clone();
        async move {
            let list = pools.list(&ListParams::default()).await?;
            let assigned: i64 = list
                .items
                .iter()
                .filter_map(|p| p.status.as_ref())
                .map(|s| s.assigned_ipv4 + s.assigned_ipv6)
                .sum();
            anyhow::ensure!(assigned > 0, "no counters yet");
            Ok(list.items)
        }
    })
    .await?;
    println!(
        "\n{:<10} {:>13} {:>13} {:>14} {:>20}",
        "POOL", "ASSIGNED IPv4", "ASSIGNED IPv6", "AVAILABLE IPv4", "AVAILABLE IPv6"
    );
    for p in counted {
        let s = p.status.unwrap_or_default();
        println!(
            "{:<10} {:>13} {:>13} {:>14} {:>20}",
            p.metadata.name.unwrap_or_default(),
            s.assigned_ipv4,
            s.assigned_ipv6,
            s.available_ipv4,
            s.available_ipv6
        );
    }
    println!("\n(`ferrolb-lab demo` shows the layer-2 IPs answering on a network of nodes)");
    controller.stop()?;
    Ok(())
}
