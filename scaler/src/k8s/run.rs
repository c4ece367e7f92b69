//! Glue for running the Kubernetes side next to `serve`: a [`SnapshotTap`] around the
//! planner (publishes every evaluation's decisions without touching the server), and
//! [`spawn_cluster_side`], which starts the policy watcher, the Lease election and the
//! leader's status loop.
//!
//! The fleet comes from the config file (policies whose `spec.model` names one of its
//! models get its decisions as status: "status mirror") or, with `--fleet-source
//! policies`, from the policies themselves ([`super::fleet::PolicyPlanner`]).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::lease::{self, LeaseConfig};
use super::publish::StatusLoop;
use super::status::StatusWriter;
use super::watch::{PolicySnapshot, PolicyStores, Scope};
use crate::decision::{Catalog, ModelDecision, Planner, Snapshot};

/// A planner that also publishes each evaluation as a [`Snapshot`].
pub struct SnapshotTap<P> {
    inner: P,
    tx: watch::Sender<Arc<Snapshot>>,
}

impl<P: Planner> SnapshotTap<P> {
    /// Wraps `inner`; decisions older than `stale_after` are reported unavailable.
    pub fn new(inner: P, stale_after: Duration) -> (Self, watch::Receiver<Arc<Snapshot>>) {
        let (tx, rx) = watch::channel(Arc::new(Snapshot::empty(inner.catalog(), stale_after)));
        (Self { inner, tx }, rx)
    }
}

impl<P: Planner> Planner for SnapshotTap<P> {
    fn catalog(&self) -> Catalog {
        self.inner.catalog()
    }

    fn note_running(&mut self, model: &str, running: &std::collections::BTreeMap<String, u32>) {
        self.inner.note_running(model, running);
    }

    async fn evaluate(&mut self, now: SystemTime) -> Vec<ModelDecision> {
        let decisions = self.inner.evaluate(now).await;
        let catalog = self.inner.catalog();
        let current = self.tx.borrow().clone();
        let current = if *current.catalog != catalog {
            Arc::new(current.with_catalog(catalog))
        } else {
            current
        };
        let next = current.apply(decisions.clone(), Instant::now());
        self.tx.send_replace(Arc::new(next));
        decisions
    }
}

/// Settings of the Kubernetes side.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Which policies to watch.
    pub scope: Scope,
    /// The Lease.
    pub lease: LeaseConfig,
    /// At most one status write per policy per this interval.
    pub status_interval: Duration,
}

/// The running policy watcher: its stores, its task and its fleet channel.
pub struct PolicyWatch {
    /// The watchers' reflector stores.
    pub stores: PolicyStores,
    /// The watch task.
    pub task: tokio::task::JoinHandle<()>,
    /// The fleet the policies describe.
    pub policies: watch::Receiver<PolicySnapshot>,
}

/// Starts watching the policies of `scope` until `cancel`.
pub fn spawn_policy_watcher(
    client: kube::Client,
    scope: Scope,
    cancel: CancellationToken,
) -> PolicyWatch {
    let (ptx, prx) = watch::channel(PolicySnapshot::default());
    let (stores, task) = super::watch::spawn(client, scope, ptx, cancel);
    PolicyWatch {
        stores,
        task,
        policies: prx,
    }
}

/// Starts the watcher, the election and the status loop; all stop on `cancel` (the Lease
/// is released). Returns their tasks and the fleet channel.
pub fn spawn_cluster_side(
    client: kube::Client,
    opts: ClusterOptions,
    decisions: watch::Receiver<Arc<Snapshot>>,
    cancel: CancellationToken,
) -> (
    Vec<tokio::task::JoinHandle<()>>,
    watch::Receiver<PolicySnapshot>,
) {
    let w = spawn_policy_watcher(client.clone(), opts.scope.clone(), cancel.clone());
    let prx = w.policies.clone();
    (
        spawn_cluster_side_with(client, opts, decisions, w, cancel),
        prx,
    )
}

/// [`spawn_cluster_side`] around an already running watcher (`opts.scope` unused): the
/// election and the status loop. Returns every task, the watcher's included.
pub fn spawn_cluster_side_with(
    client: kube::Client,
    opts: ClusterOptions,
    decisions: watch::Receiver<Arc<Snapshot>>,
    watcher: PolicyWatch,
    cancel: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    spawn_cluster_side_with_leader(client, opts, decisions, watcher, cancel).0
}

/// [`spawn_cluster_side_with`], also returning the leadership flag (for other
/// leader-only work: the warm-pool actuator, issue 9).
pub fn spawn_cluster_side_with_leader(
    client: kube::Client,
    opts: ClusterOptions,
    decisions: watch::Receiver<Arc<Snapshot>>,
    watcher: PolicyWatch,
    cancel: CancellationToken,
) -> (Vec<tokio::task::JoinHandle<()>>, watch::Receiver<bool>) {
    let (ltx, lrx) = watch::channel(false);
    let lease_task = lease::spawn(client.clone(), opts.lease, ltx, cancel.clone());
    let status = StatusLoop {
        writer: StatusWriter::new(client, opts.status_interval),
        decisions,
        policies: watcher.policies,
        store: watcher.stores,
        leader: lrx.clone(),
        flush_every: (opts.status_interval / 4).max(Duration::from_millis(50)),
    };
    let status_task = tokio::spawn(status.run(cancel));
    (vec![watcher.task, lease_task, status_task], lrx)
}
