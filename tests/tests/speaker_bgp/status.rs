//! What the speakers report about BGP Services (issue #14): by default one
//! `ferrolb.io/BGPAdvertised` condition on each BGP Service, naming the nodes that advertise it
//! (or saying why none does), written by one speaker and moved to another when that one dies —
//! and no ServiceBGPStatus at all. With `--service-bgp-status`, MetalLB's one ServiceBGPStatus
//! per (Service, node) as well, and a gone node's removed by a surviving speaker.

use super::*;
use ferrolb_tests::l2cluster::APP_NAMESPACE;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

const TYPE: &str = "ferrolb.io/BGPAdvertised";

/// The Service's `ferrolb.io/BGPAdvertised` conditions (there should be at most one).
async fn conditions(bed: &Bed, service: &str) -> anyhow::Result<Vec<Condition>> {
    let svc = Api::<Service>::namespaced(bed.cluster.client(), APP_NAMESPACE)
        .get(service)
        .await?;
    Ok(svc
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ == TYPE)
        .collect())
}

/// Waits until `service` carries exactly one condition with `status`, `reason` and a message
/// containing `message`; returns it.
async fn wait_condition(
    bed: &Bed,
    service: &str,
    status: &str,
    reason: &str,
    message: &str,
) -> Condition {
    let waited = wait_for(
        &format!("{service} shows {TYPE} {status}/{reason} \"{message}\""),
        Duration::from_secs(30),
        || async {
            let found = conditions(bed, service).await?;
            Ok(match found.as_slice() {
                [one]
                    if one.status == status
                        && one.reason == reason
                        && one.message.contains(message) =>
                {
                    Some(one.clone())
                }
                _ => None,
            })
        },
    )
    .await;
    match waited {
        Ok(condition) => condition,
        Err(e) => {
            let found = conditions(bed, service).await;
            panic!(
                "{e:#}
found: {found:#?}
{}",
                bed.describe()
            )
        }
    }
}

async fn bgp_statuses(bed: &Bed) -> anyhow::Result<Vec<ferrolb_api::ServiceBGPStatus>> {
    Ok(
        Api::<ferrolb_api::ServiceBGPStatus>::namespaced(bed.cluster.client(), NAMESPACE)
            .list(&Default::default())
            .await?
            .items,
    )
}

/// The condition follows who advertises: both nodes; with `externalTrafficPolicy: Local` the
/// node with the endpoint, or False with the reason when none has one; and when a speaker dies
/// the survivor rewrites it naming itself alone. No ServiceBGPStatus is written meanwhile.
#[tokio::test]
async fn the_service_condition_names_the_advertising_nodes_and_follows_a_dead_speaker() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let mut bed = Bed::start(RouterKind::Gobgp).await;
    let (n1, n2) = ("node-1", "node-2");
    let app = TestService::new("app", &["198.51.100.20"], n1);
    bed.cluster.create_service(&app).await.expect("app");
    bed.wait_paths(
        "198.51.100.20/32",
        &[bed.node_ip(n1, false), bed.node_ip(n2, false)],
    )
    .await;
    let both = wait_condition(
        &bed,
        "app",
        "True",
        "Advertised",
        "advertised by nodes \"node-1\", \"node-2\" to peer \"tor\"",
    )
    .await;

    let mut local = TestService::new("local", &["198.51.100.21"], n2);
    local.local = true;
    bed.cluster.create_service(&local).await.expect("local");
    bed.wait_paths("198.51.100.21/32", &[bed.node_ip(n2, false)])
        .await;
    wait_condition(
        &bed,
        "local",
        "True",
        "Advertised",
        "advertised by node \"node-2\" to peer \"tor\"",
    )
    .await;
    bed.cluster
        .set_endpoints("local", &[])
        .await
        .expect("no endpoints");
    bed.wait_paths("198.51.100.21/32", &[]).await;
    let nobody = wait_condition(
        &bed,
        "local",
        "False",
        "NotAdvertised",
        "externalTrafficPolicy is Local and no ready endpoint runs on nodes \"node-1\", \"node-2\"",
    )
    .await;
    assert!(nobody.message.starts_with("no node advertises it over BGP"));
    // `kubectl ferrolb explain` shows what the Service says.
    let snapshot = ferrolb_cli::cluster::Cluster::fetch(&bed.cluster.client(), NAMESPACE, None)
        .await
        .expect("the plugin reads the cluster");
    let explained =
        ferrolb_cli::explain::explain(&snapshot, APP_NAMESPACE, "local").expect("found");
    let text = ferrolb_cli::explain::render(&explained);
    assert!(
        text.contains("the speakers report: False NotAdvertised: no node advertises it over BGP"),
        "{text}"
    );

    // By default nobody writes the per-(Service, node) objects.
    assert!(
        bgp_statuses(&bed).await.expect("list").is_empty(),
        "ServiceBGPStatus written without --service-bgp-status"
    );

    // node-1's speaker dies: the survivor (whether or not it wrote the condition before)
    // rewrites it, naming itself alone; the status moved, so the transition time did not.
    bed.cluster.speaker(n1).expect("node-1's speaker").kill();
    let after = wait_condition(
        &bed,
        "app",
        "True",
        "Advertised",
        "advertised by node \"node-2\" to peer \"tor\"",
    )
    .await;
    assert_eq!(
        after.last_transition_time, both.last_transition_time,
        "True stayed True"
    );
    // Written by the speakers' shared field manager, and only by it.
    let svc = Api::<Service>::namespaced(bed.cluster.client(), APP_NAMESPACE)
        .get("app")
        .await
        .expect("app");
    let managers: Vec<String> = svc
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.to_string().contains(TYPE))
        })
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, ["ferrolb-speaker-bgp"]);
    assert!(bgp_statuses(&bed).await.expect("list").is_empty());
}

/// With `--service-bgp-status`, MetalLB's shape as before: one ServiceBGPStatus per (Service,
/// advertising node) naming its peers, next to the condition; a deleted node's objects are
/// removed by the surviving speaker.
#[tokio::test]
async fn with_the_flag_every_advertising_node_writes_its_service_bgp_status() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let mut bed = Bed::start_with(
        RouterKind::Gobgp,
        Options {
            service_bgp_status: true,
            ..Options::default()
        },
    )
    .await;
    let (n1, n2) = ("node-1", "node-2");
    let app = TestService::new("app", &["198.51.100.22"], n1);
    bed.cluster.create_service(&app).await.expect("app");
    wait_for(
        "both nodes write ServiceBGPStatus for app",
        Duration::from_secs(30),
        || async {
            let nodes: BTreeSet<String> = bgp_statuses(&bed)
                .await?
                .into_iter()
                .filter_map(|s| s.status)
                .filter(|st| st.service_name.as_deref() == Some("app") && st.peers == ["tor"])
                .filter_map(|st| st.node)
                .collect();
            Ok((nodes == set(&[n1, n2])).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", bed.describe()));
    wait_condition(
        &bed,
        "app",
        "True",
        "Advertised",
        "advertised by nodes \"node-1\", \"node-2\"",
    )
    .await;

    // node-1 dies and leaves the cluster: node-2 removes the object node-1 cannot.
    bed.cluster.speaker(n1).expect("node-1's speaker").kill();
    Api::<k8s_openapi::api::core::v1::Node>::all(bed.cluster.client())
        .delete(n1, &Default::default())
        .await
        .expect("node-1 deleted");
    wait_for(
        "node-1's ServiceBGPStatus goes, node-2's stays",
        Duration::from_secs(30),
        || async {
            let nodes: BTreeSet<String> = bgp_statuses(&bed)
                .await?
                .into_iter()
                .filter_map(|s| s.status?.node)
                .collect();
            Ok((nodes == set(&[n2])).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", bed.describe()));
}
