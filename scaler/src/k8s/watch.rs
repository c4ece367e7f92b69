//! Watching `SloScalingPolicy` objects: a kube-runtime reflector (list, then watch from
//! the list's `resourceVersion` with bookmarks, re-watch from the last seen version, re-list
//! on `410 Gone`), and the fleet it describes published on a `tokio::sync::watch` channel.
//!
//! One watcher per watched namespace (or one for the whole cluster), merged by the pure
//! [`super::index::PolicyIndex`]; each watcher's reflector store keeps the objects (their
//! `resourceVersion`s) for the status writer. [`PolicySnapshot`] is recomputed once every
//! watcher has completed its initial list and after every change, and sent only when it
//! differs, so consumers (the planner) never see a half-listed fleet.

use std::collections::BTreeMap;
use std::time::Duration;

use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::crd::{SloScalingPolicy, SpecError};
use super::index::PolicyIndex;
use crate::config::ModelConfig;

/// Which policies to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace (needs the chart's ClusterRole).
    AllNamespaces,
    /// One namespace (the chart's per-namespace Role).
    Namespace(String),
    /// Several namespaces: one watcher each, merged (a Role in each).
    Namespaces(Vec<String>),
}

impl Scope {
    /// The scope for a list of namespaces: none means the whole cluster; duplicates and
    /// empty names are dropped.
    pub fn from_namespaces<I: IntoIterator<Item = String>>(namespaces: I) -> Self {
        let mut v: Vec<String> = namespaces
            .into_iter()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        v.sort();
        v.dedup();
        match v.len() {
            0 => Scope::AllNamespaces,
            1 => Scope::Namespace(v.remove(0)),
            _ => Scope::Namespaces(v),
        }
    }

    /// The namespaces watched, `None` for the whole cluster.
    pub fn namespaces(&self) -> Option<Vec<String>> {
        match self {
            Scope::AllNamespaces => None,
            Scope::Namespace(ns) => Some(vec![ns.clone()]),
            Scope::Namespaces(v) => Some(v.clone()),
        }
    }
}

/// The reflector stores of every watcher of a scope: where the status writer finds an
/// object's current `resourceVersion` and status.
#[derive(Clone)]
pub struct PolicyStores(Vec<Store<SloScalingPolicy>>);

impl PolicyStores {
    /// The object, from whichever watcher holds it.
    pub fn get(&self, key: &ObjectRef<SloScalingPolicy>) -> Option<Arc<SloScalingPolicy>> {
        self.0.iter().find_map(|s| s.get(key))
    }

    /// Every object of every watcher.
    pub fn state(&self) -> Vec<Arc<SloScalingPolicy>> {
        self.0.iter().flat_map(|s| s.state()).collect()
    }
}

/// Where a policy lives and which version of it was seen.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PolicyRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.generation` (spec version).
    pub generation: Option<i64>,
}

/// The fleet described by the policies currently in the cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicySnapshot {
    /// Valid policies as config-file models, ordered by namespace/name.
    pub models: Vec<(PolicyRef, ModelConfig)>,
    /// Policies that cannot be used, and why.
    pub rejected: Vec<(PolicyRef, PolicyError)>,
}

/// Why a policy is not part of the fleet.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// The spec is inconsistent.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Another policy (named here, `namespace/name`) already declares this model; the first
    /// in namespace/name order wins.
    #[error("model {model:?} is already declared by {owner}")]
    DuplicateModel {
        /// The model name.
        model: String,
        /// The policy that declares it first.
        owner: String,
    },
}

/// Computes the fleet from the policies in a store (sorted, duplicates rejected).
pub fn snapshot(policies: &[Arc<SloScalingPolicy>]) -> PolicySnapshot {
    let mut sorted: Vec<_> = policies.iter().collect();
    sorted.sort_by_key(|p| (p.namespace().unwrap_or_default(), p.name_any()));
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    let mut out = PolicySnapshot::default();
    for p in sorted {
        let r = PolicyRef {
            namespace: p.namespace().unwrap_or_default(),
            name: p.name_any(),
            generation: p.metadata.generation,
        };
        match p.spec.to_model_config() {
            Err(e) => out.rejected.push((r, e.into())),
            Ok(model) => {
                let here = format!("{}/{}", r.namespace, r.name);
                if let Some(owner) = owners.get(&model.name) {
                    out.rejected.push((
                        r,
                        PolicyError::DuplicateModel {
                            model: model.name.clone(),
                            owner: owner.clone(),
                        },
                    ));
                } else {
                    owners.insert(model.name.clone(), here);
                    out.models.push((r, model));
                }
            }
        }
    }
    out
}

/// The watcher configuration used: bookmarks on, list-then-watch, a bounded watch timeout.
pub fn watcher_config() -> watcher::Config {
    watcher::Config::default().timeout(290)
}

/// Runs the watchers of `scope` until `cancel`, sending a new [`PolicySnapshot`] whenever
/// the fleet changes. Returns their stores (readable while running). API errors are
/// retried with kube-runtime's default backoff and logged; they never end the loop.
pub fn spawn(
    client: kube::Client,
    scope: Scope,
    tx: tokio::sync::watch::Sender<PolicySnapshot>,
    cancel: CancellationToken,
) -> (PolicyStores, tokio::task::JoinHandle<()>) {
    let apis: Vec<(String, Api<SloScalingPolicy>)> = match scope.namespaces() {
        None => vec![("*".to_owned(), Api::all(client))],
        Some(namespaces) => namespaces
            .into_iter()
            .map(|ns| {
                let api = Api::namespaced(client.clone(), &ns);
                (ns, api)
            })
            .collect(),
    };
    let mut stores = Vec::with_capacity(apis.len());
    let mut streams = Vec::with_capacity(apis.len());
    let labels: Vec<String> = apis.iter().map(|(l, _)| l.clone()).collect();
    for (i, (_, api)) in apis.into_iter().enumerate() {
        let (store, writer) = reflector::store();
        stores.push(store);
        streams.push(
            watcher(api, watcher_config())
                .default_backoff()
                .reflect(writer)
                .map(move |e| (i, e))
                .boxed(),
        );
    }
    let mut index = PolicyIndex::new(streams.len());
    let task = tokio::spawn(async move {
        // The first complete list is always announced, even an empty one (consumers
        // wait for it before serving).
        let mut announced = false;
        let mut merged = futures::stream::select_all(streams);
        loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => break,
                e = merged.next() => e,
            };
            let Some((source, event)) = next else { break };
            match event {
                Ok(event) => {
                    if index.apply(source, event) && index.is_listed() {
                        publish(&index, &tx, !announced);
                        announced = true;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, namespace = %labels[source], "watching SloScalingPolicy objects; retrying");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    });
    (PolicyStores(stores), task)
}

fn publish(index: &PolicyIndex, tx: &tokio::sync::watch::Sender<PolicySnapshot>, always: bool) {
    let next = index.snapshot();
    for (r, e) in &next.rejected {
        tracing::warn!(namespace = %r.namespace, name = %r.name, error = %e, "SloScalingPolicy rejected");
    }
    tx.send_if_modified(|cur| {
        if *cur == next && !always {
            false
        } else {
            *cur = next;
            true
        }
    });
}
