//! A speaker that restarts (an upgrade, a new pod) keeps the status objects it wrote, when it
//! announces the same again: it removes none of them only to write them again.

use std::collections::BTreeMap;

use super::*;

#[tokio::test]
async fn a_restarted_speaker_keeps_its_status_objects() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    // One node: nobody else takes the IPs while its speaker is away.
    let mut cluster = L2Cluster::start(1, &[]).await.expect("cluster starts");
    cluster
        .wait_speakers_ready(SETTLE)
        .await
        .expect("speaker ready");
    let services: Vec<TestService> = (0..20)
        .map(|i| {
            let ip = format!("192.0.2.{}", 210 + i);
            TestService::new(&format!("kept-{i}"), &[&ip], "node-1")
        })
        .collect();
    for svc in &services {
        cluster.create_service(svc).await.expect("service created");
    }
    let api = Api::<ServiceL2Status>::namespaced(cluster.client(), NAMESPACE);
    let all_reported = || async {
        let objects: BTreeMap<String, String> = api
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|s| s.status.is_some())
            .map(|s| (s.name_any(), s.uid().unwrap_or_default()))
            .collect();
        Ok((objects.len() == services.len()).then_some(objects))
    };
    let before = wait_for("every Service reported", SETTLE, all_reported)
        .await
        .expect("statuses written");

    let speaker = cluster.speaker("node-1").expect("the speaker");
    speaker
        .terminate(Duration::from_secs(20))
        .expect("the speaker stops");
    cluster.start_speaker("node-1").expect("speaker restarted");
    cluster
        .wait_speakers_ready(SETTLE)
        .await
        .expect("speaker ready again");
    // Once the new speaker answers for every IP (its own gauge, not the client's neighbour
    // cache, which still holds the old answer), every object is the one from before.
    let ns = cluster.host("node-1").ns.clone();
    let want = services.len();
    let announcing = || {
        let ns = ns.clone();
        async move {
            let text = ns.run(|| http_get("127.0.0.1:7472", "/metrics"))??;
            let ips: Option<usize> = text
                .lines()
                .find_map(|l| l.strip_prefix("ferrolb_speaker_layer2_announced_ips "))
                .and_then(|v| v.trim().parse().ok());
            Ok((ips == Some(want)).then_some(()))
        }
    };
    wait_for("every IP answered again", SETTLE, announcing)
        .await
        .expect("answered");
    let after = wait_for("every Service reported again", SETTLE, all_reported)
        .await
        .expect("statuses there");
    assert_eq!(
        after,
        before,
        "objects were removed and written again\n{}",
        cluster.describe()
    );
}
