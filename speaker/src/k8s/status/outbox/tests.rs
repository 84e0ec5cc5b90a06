//! What marks a key, and what the tap keeps of other nodes' objects.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use ferrolb_api::ServiceL2Status;
use kube::runtime::watcher::Event;

use super::super::L2Report;
use super::super::tests::stored;
use super::*;

fn items(interfaces: &[&str]) -> L2Report {
    L2Report {
        interfaces: interfaces.iter().map(|s| (*s).to_owned()).collect(),
        announcers: BTreeSet::new(),
    }
}

fn keys(marks: &Marks) -> Vec<&str> {
    let mut keys: Vec<&str> = marks.keys.iter().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

#[test]
fn an_edit_marks_exactly_the_keys_whose_report_changed() {
    let (outbox, inbox, _tap) = outbox::<ServiceL2Status>("node-1");
    outbox.edit(|e| {
        e.insert("web/a".into(), items(&["eth0"]));
        e.insert("web/b".into(), items(&["eth0"]));
        e.insert("web/c".into(), items(&[]));
    });
    assert_eq!(
        keys(&inbox.take().expect("open")),
        ["web/a", "web/b", "web/c"]
    );

    outbox.edit(|e| {
        // The same report again: nothing to write.
        assert!(!e.insert("web/a".into(), items(&["eth0"])));
        assert!(e.insert("web/b".into(), items(&["eth1"])));
        assert!(!e.remove("web/none"));
        e.retain(|key| key != "web/c");
    });
    assert_eq!(keys(&inbox.take().expect("open")), ["web/b", "web/c"]);
    assert_eq!(inbox.wanted("web/b"), Some(items(&["eth1"])));
    assert_eq!(inbox.wanted("web/c"), None);

    // Replaced whole: the keys that went, came or changed, and not the one that stayed.
    outbox.edit(|e| {
        e.replace(BTreeMap::from([
            ("web/a".to_owned(), items(&["eth0"])),
            ("web/d".to_owned(), items(&[])),
            ("web/e".to_owned(), items(&["eth2"])),
        ]));
    });
    let marks = inbox.take().expect("open");
    assert_eq!(keys(&marks), ["web/b", "web/d", "web/e"]);
    assert!(!marks.everything);
    assert_eq!(inbox.keys(), ["web/a", "web/d", "web/e"]);
    assert_eq!(inbox.take().expect("open"), Marks::default(), "taken once");
}

#[test]
fn the_tap_marks_the_key_of_every_object_event_and_indexes_other_nodes_objects() {
    let (_outbox, inbox, tap) = outbox::<ServiceL2Status>("node-1");
    let mine = stored("web/a", "node-1", &["eth0"]);
    let theirs = stored("web/a", "node-2", &["eth0"]);
    tap.seen(&Event::Apply((*mine).clone()));
    tap.seen(&Event::Apply((*theirs).clone()));
    assert_eq!(keys(&inbox.take().expect("open")), ["web/a"]);
    assert_eq!(inbox.elsewhere("web/a"), std::slice::from_ref(&theirs.name));
    tap.seen(&Event::Delete((*theirs).clone()));
    assert!(inbox.elsewhere("web/a").is_empty());

    // A relist replaces the index and marks everything.
    let other = stored("web/b", "node-3", &[]);
    tap.seen(&Event::<Stored<ServiceL2Status>>::Init);
    tap.seen(&Event::InitApply((*mine).clone()));
    tap.seen(&Event::InitApply((*other).clone()));
    assert!(
        inbox.elsewhere("web/b").is_empty(),
        "not before the relist ends"
    );
    tap.seen(&Event::<Stored<ServiceL2Status>>::InitDone);
    let marks = inbox.take().expect("open");
    assert!(marks.everything);
    assert_eq!(inbox.elsewhere("web/b"), std::slice::from_ref(&other.name));
    assert!(inbox.elsewhere("web/a").is_empty());
    inbox.forget("web/b", &other.name);
    assert!(inbox.elsewhere("web/b").is_empty());
}

#[tokio::test]
async fn a_mark_wakes_the_writer_and_a_dropped_outbox_ends_it() {
    let (outbox, inbox, _tap) = outbox::<ServiceL2Status>("node-1");
    outbox.edit(|e| e.insert("web/a".into(), items(&[])));
    // The permit is kept for a writer not yet waiting.
    tokio::time::timeout(std::time::Duration::from_secs(5), inbox.marked())
        .await
        .expect("woken");
    assert_eq!(
        inbox.take().expect("open").keys,
        HashSet::from(["web/a".to_owned()])
    );
    drop(outbox);
    tokio::time::timeout(std::time::Duration::from_secs(5), inbox.marked())
        .await
        .expect("woken");
    assert!(inbox.take().is_none());
}
