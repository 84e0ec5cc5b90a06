//! The tokio driver over real UDP on 127.0.0.1.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, timeout};

use super::sim::{KEY, name};
use crate::membership::{
    KindLabels, Membership, MembershipHandle, MembershipMetrics, MembershipSettings,
};

fn spawn(i: usize, metrics: &MembershipMetrics) -> MembershipHandle {
    let loopback: SocketAddr = "127.0.0.1:0".parse().expect("address");
    Membership::spawn(
        MembershipSettings::new(name(i)),
        KEY.to_vec(),
        loopback,
        BTreeMap::new(),
        metrics.clone(),
    )
    .expect("bind on loopback")
}

fn names(ids: &[usize]) -> BTreeSet<String> {
    ids.iter().map(|&i| name(i)).collect()
}

/// Waits until `live` shows exactly `want`; returns how long that took, or `None` after `within`.
async fn wait_for(
    live: &watch::Receiver<BTreeSet<String>>,
    want: &BTreeSet<String>,
    within: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    let mut live = live.clone();
    timeout(within, live.wait_for(|set| set == want))
        .await
        .ok()
        .and_then(Result::ok)
        .map(|_| start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_speakers_converge_drop_a_crashed_one_within_the_bound_and_a_leaving_one_at_once() {
    let metrics: Vec<MembershipMetrics> = (0..3).map(|_| MembershipMetrics::default()).collect();
    let mut handles: Vec<MembershipHandle> = (0..3).map(|i| spawn(i, &metrics[i])).collect();
    let seeds: BTreeMap<String, SocketAddr> = handles
        .iter()
        .enumerate()
        .map(|(i, h)| (name(i), h.local_addr()))
        .collect();
    for h in &handles {
        h.set_seeds(seeds.clone());
    }
    for h in &handles {
        wait_for(&h.live, &names(&[0, 1, 2]), Duration::from_secs(2))
            .await
            .expect("the three converge");
    }

    // Node 2 dies hard: its task is dropped without a word.
    let crashed = handles.pop().expect("three");
    let crashed_at = Instant::now();
    drop(crashed);
    let bound = MembershipSettings::new("x").detection_bound();
    // The bound, plus slack for a loaded test machine's scheduler.
    let limit = bound + Duration::from_millis(300);
    for h in &handles {
        wait_for(&h.live, &names(&[0, 1]), Duration::from_secs(5))
            .await
            .expect("the crashed speaker is dropped");
        let took = crashed_at.elapsed();
        eprintln!("over UDP: the crashed speaker was dropped after {took:?}");
        assert!(took <= limit, "dropped after {took:?}, bound {bound:?}");
    }

    // Node 1 leaves gracefully: node 0 drops it at once, far sooner than a failure is detected
    // (which takes at least a probe period plus the suspicion timeout, 500 ms).
    let leaver = handles.pop().expect("two");
    let start = Instant::now();
    leaver.leave().await;
    let took = wait_for(&handles[0].live, &names(&[0]), Duration::from_secs(2))
        .await
        .map(|_| start.elapsed())
        .expect("the leaver is dropped");
    eprintln!("over UDP: the leaving speaker was dropped after {took:?}");
    assert!(took <= Duration::from_millis(200), "dropped after {took:?}");

    let m = &metrics[0];
    let ping = KindLabels {
        kind: "ping".into(),
    };
    assert!(m.packets_sent.get_or_create(&ping).get() > 0);
    assert!(m.packets_received.get_or_create(&ping).get() > 0);
    assert_eq!(m.deaths.get(), 1);
    assert_eq!(m.leaves.get(), 1);
    assert_eq!(m.members_alive.get(), 1);
}
