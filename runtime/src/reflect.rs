//! A read-only cache of one kind, kept current by a background watch that retries with backoff
//! (and keeps the last known objects) while the apiserver is away.

use std::fmt::Debug;

use futures::{StreamExt, TryStreamExt};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// Starts a reflector on `api` with `config`; `on_event` sees every watch event after the cache
/// has applied it (return `false` to stop the watch). managedFields are dropped: nothing reads
/// them and they are a large part of every object.
pub fn spawn<K, F>(api: Api<K>, config: watcher::Config, on_event: F) -> Store<K>
where
    K: Resource + kube::ResourceExt + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    <K as Resource>::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
    F: FnMut(&Event<K>) -> bool + Send + 'static,
{
    spawn_trimmed(api, config, |_| {}, on_event)
}

/// [`spawn`], with `trim` also applied to every object before the cache keeps it: a reader
/// that needs a few fields of a large kind keeps only those.
pub fn spawn_trimmed<K, F>(
    api: Api<K>,
    config: watcher::Config,
    trim: fn(&mut K),
    on_event: F,
) -> Store<K>
where
    K: Resource + kube::ResourceExt + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    <K as Resource>::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
    F: FnMut(&Event<K>) -> bool + Send + 'static,
{
    let (reader, writer) = reflector::store();
    let kind = K::kind(&Default::default()).into_owned();
    let stream = watcher::watcher(api, config)
        .default_backoff()
        .modify(move |o: &mut K| {
            o.managed_fields_mut().clear();
            trim(o);
        })
        .reflect(writer);
    run(kind, stream, on_event);
    reader
}

/// A cache of `project`ions of `api`'s objects: a reader that needs a few facts of each
/// object of a large kind keeps only those (`P` names the object as the apiserver does).
/// `on_event` sees every watch event, projected, after the cache has applied it.
pub fn spawn_projected<K, P, F>(
    api: Api<K>,
    config: watcher::Config,
    project: impl Fn(&K) -> P + Send + 'static,
    on_event: F,
) -> Store<P>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    <K as Resource>::DynamicType: Default,
    P: reflector::Lookup<DynamicType = ()> + Clone + Send + Sync + 'static,
    F: FnMut(&Event<P>) -> bool + Send + 'static,
{
    let (reader, writer) = reflector::store();
    let kind = K::kind(&Default::default()).into_owned();
    let projected = projected(api, config, project);
    let stream = reflector::reflector(writer, projected);
    run(kind, stream, on_event);
    reader
}

/// A watch of `api` without a cache: `on_event` sees every event, projected, and keeps what
/// it needs in a shape of its own (the watch retries with backoff like the caches').
pub fn watch_projected<K, P, F>(
    api: Api<K>,
    config: watcher::Config,
    project: impl Fn(&K) -> P + Send + 'static,
    on_event: F,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    <K as Resource>::DynamicType: Default,
    P: Send + 'static,
    F: FnMut(&Event<P>) -> bool + Send + 'static,
{
    let kind = K::kind(&Default::default()).into_owned();
    let projected = projected(api, config, project);
    run(kind, projected, on_event);
}

/// `api`'s watch events, each object replaced by its `project`ion as it arrives.
fn projected<K, P>(
    api: Api<K>,
    config: watcher::Config,
    project: impl Fn(&K) -> P + Send + 'static,
) -> impl futures::Stream<Item = Result<Event<P>, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    <K as Resource>::DynamicType: Default,
    P: Send + 'static,
{
    watcher::watcher(api, config)
        .default_backoff()
        .map_ok(move |event| match event {
            Event::Apply(o) => Event::Apply(project(&o)),
            Event::Delete(o) => Event::Delete(project(&o)),
            Event::Init => Event::Init,
            Event::InitApply(o) => Event::InitApply(project(&o)),
            Event::InitDone => Event::InitDone,
        })
}

/// Drives a reflector's stream in the background, handing each event to `on_event`.
fn run<P, F>(
    kind: String,
    stream: impl futures::Stream<Item = Result<Event<P>, watcher::Error>> + Send + 'static,
    mut on_event: F,
) where
    P: Send + 'static,
    F: FnMut(&Event<P>) -> bool + Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(ev) => {
                    if !on_event(&ev) {
                        return;
                    }
                }
                Err(e) => tracing::warn!(kind = %kind, error = %e, "watch failed; retrying"),
            }
        }
    });
}
