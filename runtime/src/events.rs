//! Kubernetes Events, published by a background task so a slow or absent apiserver never holds
//! up a decision.
//!
//! An Event repeated within [`series::WINDOW`] (same object, reason, type, action and note) is
//! counted on the first one as a series instead of being created again, as client-go does. The
//! publisher remembers only a hash and the first Event's name per series, and at most
//! [`series::CAPACITY`] of them. kube's own recorder kept a whole Event per key for six minutes
//! (5.9 MB of a speaker's 29.5 MB peak heap at 3,000 Services, under heaptrack) and counted an
//! Event with a new note as a repeat of the old one, which kept the old note.

mod series;

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Client, Resource};
use tokio::sync::mpsc;

use series::Series;

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
        let mut publisher = Publisher {
            client,
            controller: component.to_owned(),
            instance: instance.unwrap_or_else(|| component.to_owned()),
            series: Series::default(),
        };
        tokio::spawn(async move {
            // The first failure says so where operators look; the rest would repeat it.
            let mut warned = false;
            while let Some((reference, event, gate)) = rx.recv().await {
                if gate.is_some_and(|open| !open()) {
                    tracing::debug!(reason = %event.reason, "event dropped: its gate closed");
                    continue;
                }
                if let Err(e) = publisher.publish(&event, &reference).await {
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

/// Writes `events.k8s.io/v1` Events as one component instance.
struct Publisher {
    client: Client,
    controller: String,
    instance: String,
    series: Series,
}

impl Publisher {
    /// Creates the Event, or counts it on the first of its series.
    async fn publish(
        &mut self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let key = series::key(event, regarding);
        let now = Instant::now();
        let at = MicroTime(Timestamp::now());
        if let Some(repeat) = self.series.repeat(key, now) {
            let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &repeat.namespace);
            let patch = serde_json::json!({
                "series": EventSeries { count: repeat.count, last_observed_time: at.clone() },
            });
            match api
                .patch(&repeat.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                // Removed meanwhile (Events expire): the repeat starts a new one.
                Err(kube::Error::Api(e)) if e.code == 404 => self.series.forget(key),
                Err(e) => {
                    self.series.forget(key);
                    return Err(e);
                }
            }
        }
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let created = self.event(event, regarding, &namespace, at);
        let name = created.metadata.name.clone().unwrap_or_default();
        Api::<K8sEvent>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &created)
            .await?;
        self.series.first(key, name, namespace, now);
        Ok(())
    }

    /// A new Event, named like client-go's (`<object>.<time in hex>`).
    fn event(
        &self,
        event: &Event,
        regarding: &ObjectReference,
        namespace: &str,
        at: MicroTime,
    ) -> K8sEvent {
        let object = regarding.name.as_deref().unwrap_or(&self.controller);
        K8sEvent {
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            metadata: ObjectMeta {
                name: Some(format!("{object}.{:x}", at.0.as_nanosecond())),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            event_time: Some(at),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..K8sEvent::default()
        }
    }
}
