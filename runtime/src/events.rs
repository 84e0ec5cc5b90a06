//! Kubernetes Events, published by a background task so a slow or absent apiserver never holds
//! up a decision.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;

/// Queues Events for publication.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: mpsc::UnboundedSender<(ObjectReference, Event)>,
    action: &'static str,
}

impl EventSink {
    /// Starts the publisher for `component` (`ferrolb-controller`), `instance` naming this
    /// replica or node; `action` is what the component does (`Allocate`, `Announce`).
    pub fn start(
        client: Client,
        component: &str,
        instance: Option<String>,
        action: &'static str,
    ) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<(ObjectReference, Event)>();
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: component.into(),
                instance,
            },
        );
        tokio::spawn(async move {
            while let Some((reference, event)) = rx.recv().await {
                if let Err(e) = recorder.publish(&event, &reference).await {
                    tracing::debug!(error = %e, reason = %event.reason, "cannot publish event");
                }
            }
        });
        Self { tx, action }
    }

    /// Records an Event about `object`.
    pub fn emit<K>(&self, object: &K, type_: EventType, reason: &str, note: String)
    where
        K: Resource<DynamicType = ()>,
    {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: self.action.into(),
            secondary: None,
        };
        let _ = self.tx.send((object.object_ref(&()), event));
    }
}
