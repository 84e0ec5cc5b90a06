//! Kubernetes Events on Services, published off the decision loop.

pub(crate) use ferrolb_runtime::events::EventSink;

/// The sink for `instance` (this replica's pod name).
pub(crate) fn start(client: kube::Client, instance: Option<String>) -> EventSink {
    EventSink::start(client, "ferrolb-controller", instance, "Allocate")
}
