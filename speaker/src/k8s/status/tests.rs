//! The status writer's plan, queue, names and backoff.

use kube::runtime::watcher::Event;

use super::*;

#[test]
fn failed_writes_wait_longer_each_time_until_they_land() {
    let mut backoff = Backoff::default();
    let waits: Vec<Duration> = [false, false, false, false, false, false, false, true, false]
        .into_iter()
        .filter_map(|landed| {
            if landed {
                backoff.landed();
                None
            } else {
                Some(backoff.failed())
            }
        })
        .collect();
    let s = Duration::from_secs;
    let ms = Duration::from_millis;
    assert_eq!(
        waits,
        [ms(1000), s(2), s(4), s(8), s(16), s(30), s(30), ms(1000)]
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
pub(super) fn stored(
    service: &str,
    node: &str,
    interfaces: &[&str],
) -> Arc<Stored<ServiceL2Status>> {
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

fn items(interfaces: &[&str]) -> L2Report {
    L2Report {
        interfaces: interfaces.iter().map(|s| (*s).to_owned()).collect(),
        announcers: BTreeSet::new(),
    }
}

fn keys<S>(writes: &[Write<S>]) -> Vec<&str> {
    let mut keys: Vec<&str> = writes.iter().map(|w| w.key.as_str()).collect();
    keys.sort_unstable();
    keys
}

/// The store of status objects, as the writer and its tap see it.
struct Objects {
    by_name: HashMap<String, Arc<Stored<ServiceL2Status>>>,
    tap: Tap,
}

impl Objects {
    fn new(tap: Tap) -> Self {
        Self {
            by_name: HashMap::new(),
            tap,
        }
    }

    fn apply(&mut self, object: Arc<Stored<ServiceL2Status>>) {
        self.tap.seen(&Event::Apply((*object).clone()));
        self.by_name.insert(object.name.clone(), object);
    }

    fn get(&self) -> impl Fn(&str) -> Option<Arc<Stored<ServiceL2Status>>> + '_ {
        |name| self.by_name.get(name).cloned()
    }
}

/// A writer of `node`, the three sides of its reports, and an empty store.
fn writer_of(
    node: &str,
) -> (
    Outbox<L2Report>,
    Inbox<L2Report>,
    Objects,
    Writer<ServiceL2Status>,
) {
    let (outbox, inbox, tap) = outbox::<ServiceL2Status>(node);
    (outbox, inbox, Objects::new(tap), Writer::new(node.into()))
}

fn all_marked(inbox: &Inbox<L2Report>) -> Vec<String> {
    let mut keys: Vec<String> = inbox.take().expect("open").keys.into_iter().collect();
    keys.sort_unstable();
    keys
}

#[test]
fn a_round_writes_only_what_differs_and_removes_what_is_stale() {
    let node = "node-1";
    let (outbox, inbox, mut objects, mut writer) = writer_of(node);
    objects.apply(stored("web/same", node, &["eth0"]));
    objects.apply(stored("web/changed", node, &["eth0"]));
    objects.apply(stored("web/gone", node, &["eth0"]));
    // Another node's object for a Service this node now announces (layer 2: stale).
    objects.apply(stored("web/moved", "node-2", &["eth0"]));
    // Another node's for a Service both announce (one IP each): it stays.
    objects.apply(stored("web/both", "node-2", &["eth0"]));
    // A node that left the cluster.
    objects.apply(stored("web/other", "node-9", &["eth0"]));
    outbox.edit(|e| {
        e.insert("web/same".into(), items(&["eth0"]));
        e.insert("web/changed".into(), items(&["eth1"]));
        e.insert("web/moved".into(), items(&["eth0"]));
        e.insert("web/new".into(), items(&["eth0"]));
        let mut both = items(&["eth0"]);
        both.announcers = ["node-1", "node-2"].map(String::from).into();
        e.insert("web/both".into(), both);
    });
    outbox.open();
    let marked = all_marked(&inbox);

    // node-1 is the only live speaker: it removes what node-9 left.
    let known: BTreeSet<String> = ["node-1", "node-2"].map(String::from).into();
    let live: BTreeSet<String> = [node.to_owned()].into();
    let gone = Gone {
        known: &known,
        speakers: &live,
    };
    let work = writer.plan(&marked, &gone, &inbox, objects.get());
    let mut deleted: Vec<&str> = work.deletes.iter().map(|d| d.key.as_str()).collect();
    deleted.sort_unstable();
    assert_eq!(deleted, ["web/gone", "web/moved", "web/other"]);
    assert_eq!(
        keys(&work.writes),
        ["web/both", "web/changed", "web/moved", "web/new"]
    );
    let exists: BTreeMap<&str, bool> = work
        .writes
        .iter()
        .map(|w| (w.key.as_str(), w.exists))
        .collect();
    assert!(exists["web/changed"]);
    assert!(!exists["web/new"]);
    assert!(!exists["web/moved"], "node-2's object is not this node's");

    // Planned again, a key whose object matches gives no work.
    let work = writer.plan(&["web/same".into()], &gone, &inbox, objects.get());
    assert!(work.writes.is_empty() && work.deletes.is_empty());
}

#[test]
fn a_starting_writer_removes_none_of_its_nodes_objects_until_the_report_is_whole() {
    let node = "node-1";
    let (outbox, inbox, mut objects, mut writer) = writer_of(node);
    // What this node wrote before it restarted; it has decided nothing yet.
    objects.apply(stored("web/a", node, &["eth0"]));
    objects.apply(stored("web/b", node, &["eth0"]));
    let work = writer.plan(&all_marked(&inbox), &NOBODY_GONE, &inbox, objects.get());
    assert!(
        work.deletes.is_empty() && work.writes.is_empty(),
        "{work:?}"
    );
    // The first decisions report web/a; web/b is not reported any more.
    outbox.edit(|e| e.insert("web/a".into(), items(&["eth0"])));
    outbox.open();
    let mut keys: Vec<String> = all_marked(&inbox);
    keys.extend(std::mem::take(&mut writer.deferred));
    let work = writer.plan(&keys, &NOBODY_GONE, &inbox, objects.get());
    assert!(work.writes.is_empty(), "web/a is as reported: {work:?}");
    assert_eq!(
        work.deletes,
        [Delete {
            name: object_name("web/b", node),
            key: "web/b".into()
        }]
    );
}

#[test]
fn a_gone_nodes_objects_are_removed_by_exactly_one_live_speaker_each() {
    let speakers: BTreeSet<String> = (1..=4).map(|i| format!("node-{i}")).collect();
    let gone = Gone {
        known: &speakers,
        speakers: &speakers,
    };
    let mut removers: BTreeMap<String, usize> = BTreeMap::new();
    let mut removed: BTreeMap<String, usize> = BTreeMap::new();
    for node in &speakers {
        let (_outbox, inbox, mut objects, mut writer) = writer_of(node);
        for i in 0..40 {
            objects.apply(stored(&format!("web/svc-{i}"), "node-9", &["eth0"]));
        }
        let marked = all_marked(&inbox);
        let work = writer.plan(&marked, &gone, &inbox, objects.get());
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

/// Nothing is gone: no Node list, no speakers.
static NO_ONE: BTreeSet<String> = BTreeSet::new();
const NOBODY_GONE: Gone<'static> = Gone {
    known: &NO_ONE,
    speakers: &NO_ONE,
};

/// A writer of `node` whose write of `web/a` (on `eth0`) has just landed, the store not
/// showing it yet.
struct Landed {
    outbox: Outbox<L2Report>,
    inbox: Inbox<L2Report>,
    objects: Objects,
    writer: Writer<ServiceL2Status>,
    landed: Write<ServiceL2StatusStatus>,
}

fn landed_a(node: &str) -> Landed {
    let (outbox, inbox, objects, mut writer) = writer_of(node);
    outbox.edit(|e| e.insert("web/a".into(), items(&["eth0"])));
    inbox.take();
    let work = writer.plan(&["web/a".into()], &NOBODY_GONE, &inbox, objects.get());
    assert_eq!(keys(&work.writes), ["web/a"]);
    let landed = work.writes[0].clone();
    writer
        .written
        .insert(landed.name.clone(), landed.status.clone());
    Landed {
        outbox,
        inbox,
        objects,
        writer,
        landed,
    }
}

#[test]
fn what_landed_is_not_written_again_before_the_store_shows_it() {
    let node = "node-1";
    let Landed {
        outbox: _outbox,
        inbox,
        mut objects,
        mut writer,
        ..
    } = landed_a(node);
    let key = ["web/a".to_owned()];
    // The object's own echo comes first, without its status: no second write.
    let mut bare = (*stored("web/a", node, &[])).clone();
    bare.status = None;
    objects.apply(Arc::new(bare));
    let work = writer.plan(&key, &NOBODY_GONE, &inbox, objects.get());
    assert!(work.writes.is_empty(), "{work:?}");
    // Then the status's: the store is the truth again.
    objects.apply(stored("web/a", node, &["eth0"]));
    let work = writer.plan(&key, &NOBODY_GONE, &inbox, objects.get());
    assert!(work.writes.is_empty());
    assert!(writer.written.is_empty());
    // Someone else changes it: written back.
    objects.apply(stored("web/a", node, &["eth9"]));
    let work = writer.plan(&key, &NOBODY_GONE, &inbox, objects.get());
    assert_eq!(keys(&work.writes), ["web/a"]);
    assert!(work.writes[0].exists);
}

#[test]
fn an_object_removed_after_it_showed_what_was_written_is_written_again() {
    let node = "node-1";
    let Landed {
        // Kept: a dropped outbox closes the inbox.
        outbox: _outbox,
        inbox,
        mut objects,
        mut writer,
        landed,
    } = landed_a(node);
    // The store shows it, then someone removes it, both before the writer looks again.
    objects.apply(stored("web/a", node, &["eth0"]));
    let removed = objects.by_name.remove(&landed.name).expect("stored");
    objects.tap.seen(&Event::Delete((*removed).clone()));
    let marks = inbox.take().expect("open");
    assert_eq!(marks.settled, HashSet::from([landed.name.clone()]));
    writer.settled(&marks.settled);
    let marked: Vec<String> = marks.keys.into_iter().collect();
    let work = writer.plan(&marked, &NOBODY_GONE, &inbox, objects.get());
    assert_eq!(keys(&work.writes), ["web/a"]);
    assert!(!work.writes[0].exists);
}

#[test]
fn a_second_object_of_this_nodes_for_a_key_is_removed() {
    let node = "node-1";
    let (outbox, inbox, mut objects, mut writer) = writer_of(node);
    objects.apply(stored("web/a", node, &["eth0"]));
    let mut odd = (*stored("web/a", node, &["eth0"])).clone();
    odd.name = "l2-written-by-hand".into();
    objects.apply(Arc::new(odd));
    outbox.edit(|e| e.insert("web/a".into(), items(&["eth0"])));
    let work = writer.plan(&all_marked(&inbox), &NOBODY_GONE, &inbox, objects.get());
    assert!(work.writes.is_empty());
    assert_eq!(
        work.deletes,
        [Delete {
            name: "l2-written-by-hand".into(),
            key: "web/a".into()
        }]
    );
}

#[test]
fn the_queue_hands_out_the_last_marked_first_and_each_key_once() {
    let mut queue = Queue::default();
    queue.push_back(["a", "b", "c"].map(String::from));
    queue.push_front(["new", "b"].map(String::from));
    queue.push_back(["a", "d"].map(String::from));
    assert_eq!(queue.pop(2), ["new", "a"]);
    assert_eq!(queue.pop(10), ["b", "c", "d"]);
    assert!(queue.pop(10).is_empty());
    queue.push_front(["a".to_owned()]);
    assert_eq!(queue.pop(1), ["a"], "popped keys can come again");
}
