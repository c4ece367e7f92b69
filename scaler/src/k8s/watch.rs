//! Watching `SloScalingPolicy` objects: a kube-runtime reflector (list, then watch from
//! the list's `resourceVersion` with bookmarks, re-watch from the last seen version, re-list
//! on `410 Gone`), and the fleet it describes published on a `tokio::sync::watch` channel.
//!
//! The reflector's store always mirrors the API server; [`PolicySnapshot`] is recomputed
//! after the initial list is complete and after every change, and sent only when it
//! differs, so consumers (the planner) never see a half-listed fleet.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::crd::{SloScalingPolicy, SpecError};
use crate::config::ModelConfig;

/// Which policies to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace (needs the chart's ClusterRole).
    AllNamespaces,
    /// One namespace (the chart's per-namespace Role).
    Namespace(String),
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
pub fn snapshot(policies: &[std::sync::Arc<SloScalingPolicy>]) -> PolicySnapshot {
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

/// Runs the reflector until `cancel`, sending a new [`PolicySnapshot`] whenever the fleet
/// changes. Returns the store (readable while running). API errors are retried with
/// kube-runtime's default backoff and logged; they never end the loop.
pub fn spawn(
    client: kube::Client,
    scope: Scope,
    tx: tokio::sync::watch::Sender<PolicySnapshot>,
    cancel: CancellationToken,
) -> (Store<SloScalingPolicy>, tokio::task::JoinHandle<()>) {
    let api: Api<SloScalingPolicy> = match &scope {
        Scope::AllNamespaces => Api::all(client),
        Scope::Namespace(ns) => Api::namespaced(client, ns),
    };
    let (store, writer) = reflector::store();
    let reader = store.clone();
    let task = tokio::spawn(async move {
        let stream = watcher(api, watcher_config())
            .default_backoff()
            .reflect(writer);
        futures::pin_mut!(stream);
        let mut listed = false;
        loop {
            let event = tokio::select! {
                _ = cancel.cancelled() => break,
                e = stream.next() => e,
            };
            let Some(event) = event else { break };
            match event {
                Ok(watcher::Event::Init) => listed = false,
                Ok(watcher::Event::InitApply(_)) => {}
                Ok(watcher::Event::InitDone) => {
                    listed = true;
                    publish(&reader, &tx);
                }
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {
                    if listed {
                        publish(&reader, &tx);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "watching SloScalingPolicy objects; retrying");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    });
    (store, task)
}

fn publish(store: &Store<SloScalingPolicy>, tx: &tokio::sync::watch::Sender<PolicySnapshot>) {
    let next = snapshot(&store.state());
    for (r, e) in &next.rejected {
        tracing::warn!(namespace = %r.namespace, name = %r.name, error = %e, "SloScalingPolicy rejected");
    }
    tx.send_if_modified(|cur| {
        if *cur == next {
            false
        } else {
            *cur = next;
            true
        }
    });
}
