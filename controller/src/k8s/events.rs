//! Kubernetes Events on Services, published off the decision loop.

use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::Client;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;

/// Queues Events for publication by a background task.
#[derive(Clone, Debug)]
pub(crate) struct EventSink {
    tx: mpsc::UnboundedSender<(ObjectReference, Event)>,
}

impl EventSink {
    /// Starts the publisher; `instance` names this replica (pod name).
    pub(crate) fn start(client: Client, instance: Option<String>) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<(ObjectReference, Event)>();
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: "ferrolb-controller".into(),
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
        Self { tx }
    }

    /// Records an Event about `svc`.
    pub(crate) fn emit(&self, svc: &Service, type_: EventType, reason: &str, note: String) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: "Allocate".into(),
            secondary: None,
        };
        let _ = self.tx.send((svc.object_ref(&()), event));
    }
}
