//! Glue for running the Kubernetes side next to `serve`: a [`SnapshotTap`] around the
//! planner (publishes every evaluation's decisions without touching the server), and
//! [`spawn_cluster_side`], which starts the policy watcher, the Lease election and the
//! leader's status loop.
//!
//! Today the fleet still comes from the config file; policies whose `spec.model` names a
//! model of that fleet get its decisions as status ("status mirror"). Making the policies
//! *define* the fleet needs a catalog that can change while serving (see
//! docs/kubernetes.md, "Not wired yet").

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::lease::{self, LeaseConfig};
use super::publish::StatusLoop;
use super::status::StatusWriter;
use super::watch::{PolicySnapshot, Scope};
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

    async fn evaluate(&mut self, now: SystemTime) -> Vec<ModelDecision> {
        let decisions = self.inner.evaluate(now).await;
        let next = self.tx.borrow().apply(decisions.clone(), Instant::now());
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
    let (tasks, policies, _leader) =
        spawn_cluster_side_with_leader(client, opts, decisions, cancel);
    (tasks, policies)
}

/// [`spawn_cluster_side`], also returning the leadership flag (for other leader-only
/// work: the warm-pool actuator, issue 9).
pub fn spawn_cluster_side_with_leader(
    client: kube::Client,
    opts: ClusterOptions,
    decisions: watch::Receiver<Arc<Snapshot>>,
    cancel: CancellationToken,
) -> (
    Vec<tokio::task::JoinHandle<()>>,
    watch::Receiver<PolicySnapshot>,
    watch::Receiver<bool>,
) {
    let (ptx, prx) = watch::channel(PolicySnapshot::default());
    let (store, watch_task) = super::watch::spawn(client.clone(), opts.scope, ptx, cancel.clone());
    let (ltx, lrx) = watch::channel(false);
    let lease_task = lease::spawn(client.clone(), opts.lease, ltx, cancel.clone());
    let status = StatusLoop {
        writer: StatusWriter::new(client, opts.status_interval),
        decisions,
        policies: prx.clone(),
        store,
        leader: lrx.clone(),
        flush_every: (opts.status_interval / 4).max(Duration::from_millis(50)),
    };
    let status_task = tokio::spawn(status.run(cancel));
    (vec![watch_task, lease_task, status_task], prx, lrx)
}
