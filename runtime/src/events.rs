//! Kubernetes Events, published by a background task so a slow or absent apiserver never holds
//! up a decision.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;

/// Whether an Event queued under it may still be published (see [`EventSink::gated`]).
pub type Gate = Arc<dyn Fn() -> bool + Send + Sync>;

/// Queues Events for publication.
#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::UnboundedSender<(ObjectReference, Event, Option<Gate>)>,
    action: &'static str,
    gate: Option<Gate>,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("action", &self.action)
            .field("gated", &self.gate.is_some())
            .finish()
    }
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
        let (tx, mut rx) = mpsc::unbounded_channel::<(ObjectReference, Event, Option<Gate>)>();
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: component.into(),
                instance,
            },
        );
        tokio::spawn(async move {
            // The first failure says so where operators look; the rest would repeat it.
            let mut warned = false;
            while let Some((reference, event, gate)) = rx.recv().await {
                if gate.is_some_and(|open| !open()) {
                    tracing::debug!(reason = %event.reason, "event dropped: its gate closed");
                    continue;
                }
                if let Err(e) = recorder.publish(&event, &reference).await {
                    if warned {
                        tracing::debug!(error = %e, reason = %event.reason, "cannot publish event");
                    } else {
                        tracing::warn!(
                            error = %e, reason = %event.reason,
                            object = reference.name.as_deref().unwrap_or_default(),
                            "cannot publish Kubernetes Events (check the RBAC for events.k8s.io create and patch); further failures are logged at debug"
                        );
                        warned = true;
                    }
                }
            }
        });
        Self {
            tx,
            action,
            gate: None,
        }
    }

    /// The same sink, whose Events are published only if `gate` still says yes when their turn
    /// comes (a controller's term of leadership: a deposed leader's queued Events are dropped).
    pub fn gated(&self, gate: Gate) -> Self {
        Self {
            gate: Some(gate),
            ..self.clone()
        }
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
        let _ = self
            .tx
            .send((object.object_ref(&()), event, self.gate.clone()));
    }
}
