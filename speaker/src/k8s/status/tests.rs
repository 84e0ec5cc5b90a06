//! The status writer's plan, names, order and pauses.

use super::*;

#[test]
fn a_writer_rests_until_the_resync_after_a_clean_pass_and_backs_off_while_refused() {
    let mut pause = PassPause::default();
    let waits: Vec<Duration> = [false, false, false, false, false, false, false, true, false]
        .into_iter()
        .map(|ok| pause.after(ok))
        .collect();
    let s = Duration::from_secs;
    let ms = Duration::from_millis;
    assert_eq!(
        waits,
        [
            ms(1000),
            s(2),
            s(4),
            s(8),
            s(16),
            s(30),
            s(30),
            RESYNC,
            ms(1000)
        ]
    );
}

#[test]
fn object_names_are_stable_valid_and_distinct_per_node() {
    let a = object_name("web/http", "node-1");
    assert_eq!(a, object_name("web/http", "node-1"));
    assert_ne!(a, object_name("web/http", "node-2"));
    assert_ne!(a, object_name("web/https", "node-1"));
    assert!(a.len() <= 63 && a.starts_with("l2-"));
    // The name existing objects carry: it must not change between versions.
    assert_eq!(a, "l2-7706871d994327c77e1e");
    assert!(a[3..].chars().all(|c| c.is_ascii_hexdigit()));
    let b = object_name_of(ServiceBGPStatus::PREFIX, "web/http", "node-1");
    assert!(b.starts_with("bgp-") && b[4..] == a[3..]);
}

/// A ServiceL2Status of `service` (`namespace/name`) on `node`, as the store holds it.
fn stored(service: &str, node: &str, interfaces: &[&str]) -> Arc<Stored<ServiceL2Status>> {
    let mut labels: BTreeMap<String, String> = <ServiceL2Status as StatusKind>::labels(service)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    labels.insert(NODE_LABEL.to_owned(), node.to_owned());
    let mut object = ServiceL2Status::new(&object_name(service, node), Default::default());
    object.metadata.labels = Some(labels);
    object.status = Some(ServiceL2Status::status_of(
        service,
        node,
        &items(interfaces),
    ));
    Arc::new(Stored::of(&object))
}

fn items(interfaces: &[&str]) -> BTreeSet<String> {
    interfaces.iter().map(|s| (*s).to_owned()).collect()
}

fn keys<S>(writes: &[Write<S>]) -> Vec<&str> {
    writes.iter().map(|w| w.key.as_str()).collect()
}

#[test]
fn a_pass_writes_only_what_differs_newest_first_and_removes_what_is_stale() {
    let node = "node-1";
    let known: BTreeSet<String> = ["node-1", "node-2"].map(String::from).into();
    let existing = vec![
        stored("web/same", node, &["eth0"]),
        stored("web/changed", node, &["eth0"]),
        stored("web/gone", node, &["eth0"]),
        // Another node's object for a Service this node now announces (layer 2: stale).
        stored("web/moved", "node-2", &["eth0"]),
        // A node that left the cluster.
        stored("web/other", "node-9", &["eth0"]),
    ];
    let mut want: Reported<ServiceL2Status> = BTreeMap::new();
    let mut order = Order::default();
    for key in ["web/same", "web/changed", "web/moved"] {
        want.insert(key.to_owned(), items(&["eth0"]));
    }
    want.insert("web/changed".into(), items(&["eth1"]));
    order.observe(&want);
    want.insert("web/new".into(), items(&["eth0"]));
    order.observe(&want);

    // node-1 is the only live speaker: it removes what node-9 left.
    let live: BTreeSet<String> = [node.to_owned()].into();
    let gone = Gone {
        known: &known,
        speakers: &live,
    };
    let work = plan::<ServiceL2Status>(node, &gone, &existing, &want, &HashMap::new(), &order);
    let mut deleted: Vec<&str> = work.deletes.iter().map(|d| d.key.as_str()).collect();
    deleted.sort_unstable();
    assert_eq!(deleted, ["web/gone", "web/moved", "web/other"]);
    // The newest key first; "same" is not written at all.
    assert_eq!(keys(&work.writes)[0], "web/new");
    let mut rest = keys(&work.writes)[1..].to_vec();
    rest.sort_unstable();
    assert_eq!(rest, ["web/changed", "web/moved"]);
    let exists: BTreeMap<&str, bool> = work
        .writes
        .iter()
        .map(|w| (w.key.as_str(), w.exists))
        .collect();
    assert!(exists["web/changed"]);
    assert!(!exists["web/new"]);
    assert!(!exists["web/moved"], "node-2's object is not this node's");
}

#[test]
fn a_gone_nodes_objects_are_removed_by_exactly_one_live_speaker_each() {
    let speakers: BTreeSet<String> = (1..=4).map(|i| format!("node-{i}")).collect();
    let existing: Vec<Arc<Stored<ServiceL2Status>>> = (0..40)
        .map(|i| stored(&format!("web/svc-{i}"), "node-9", &["eth0"]))
        .collect();
    let gone = Gone {
        known: &speakers,
        speakers: &speakers,
    };
    let order = Order::default();
    let mut removers: BTreeMap<String, usize> = BTreeMap::new();
    let mut removed: BTreeMap<String, usize> = BTreeMap::new();
    for node in &speakers {
        let work = plan::<ServiceL2Status>(
            node,
            &gone,
            &existing,
            &BTreeMap::new(),
            &HashMap::new(),
            &order,
        );
        removers.insert(node.clone(), work.deletes.len());
        for d in work.deletes {
            *removed.entry(d.name).or_default() += 1;
        }
    }
    assert_eq!(removed.len(), 40, "every object is removed");
    assert!(removed.values().all(|n| *n == 1), "by one speaker each");
    assert!(
        removers.values().all(|n| *n > 0),
        "the work spreads: {removers:?}"
    );
}

#[test]
fn what_this_pass_wrote_is_not_written_again_before_the_store_shows_it() {
    let node = "node-1";
    let known = BTreeSet::new();
    let mut want: Reported<ServiceL2Status> = BTreeMap::new();
    want.insert("web/a".into(), items(&["eth0"]));
    want.insert("web/b".into(), items(&["eth0"]));
    let mut order = Order::default();
    order.observe(&want);
    let mut written = HashMap::new();
    written.insert(
        object_name("web/a", node),
        ServiceL2Status::status_of("web/a", node, &items(&["eth0"])),
    );
    let gone = Gone {
        known: &known,
        speakers: &known,
    };
    let work = plan::<ServiceL2Status>(node, &gone, &[], &want, &written, &order);
    assert_eq!(keys(&work.writes), ["web/b"]);
    assert!(work.deletes.is_empty());
}

#[test]
fn keys_keep_their_age_and_forget_it_when_no_longer_reported() {
    let mut order = Order::default();
    let mut want: BTreeMap<String, ()> = BTreeMap::new();
    want.insert("a".into(), ());
    order.observe(&want);
    want.insert("b".into(), ());
    order.observe(&want);
    assert!(order.of("b") > order.of("a"));
    want.remove("a");
    order.observe(&want);
    assert_eq!(order.of("a"), 0);
    want.insert("a".into(), ());
    order.observe(&want);
    assert!(
        order.of("a") > order.of("b"),
        "a key reported again is new again"
    );
}
