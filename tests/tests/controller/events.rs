//! The Events both components publish (`ferrolb_runtime::events`), against the real apiserver.

use ferrolb_runtime::events::EventSink;
use kube::runtime::events::EventType;

use crate::support::*;

/// Each Event's note, and how many times it happened (its series' count, or 1).
fn notes(events: &[Event]) -> BTreeMap<String, i32> {
    let mut notes = BTreeMap::new();
    for e in events {
        *notes.entry(e.note.clone().unwrap_or_default()).or_default() +=
            e.series.as_ref().map_or(1, |s| s.count);
    }
    notes
}

/// A repeated Event is counted on the first one (a series), and one with another note is an
/// Event of its own: `kubectl describe` must show the IP given last, not the first one counted
/// twice.
#[tokio::test]
async fn a_repeat_is_counted_on_the_first_event_and_a_new_note_is_a_new_event() -> anyhow::Result<()>
{
    let c = Cluster::start().await?;
    let svc = c.create(lb("web", &[80])).await?;
    let sink = EventSink::start(
        c.client.clone(),
        "ferrolb-controller",
        Some("test".into()),
        "Allocate",
    );
    for note in ["192.0.2.200", "192.0.2.200", "192.0.2.201", "192.0.2.200"] {
        sink.emit(&svc, EventType::Normal, "IPAllocated", note.to_owned());
    }
    let want = BTreeMap::from([("192.0.2.200".to_owned(), 3), ("192.0.2.201".to_owned(), 1)]);
    let seen = eventually("the four Events", WAIT, || async {
        let events = c.events("web").await?;
        let seen = notes(&events);
        ensure!(seen.values().sum::<i32>() >= 4, "so far: {seen:?}");
        Ok((seen, events.len()))
    })
    .await?;
    assert_eq!(seen, (want, 2), "one Event per note, repeats counted on it");
    Ok(())
}
