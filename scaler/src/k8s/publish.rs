//! The leader's status loop: after each evaluation, the decision for every watched
//! `SloScalingPolicy`'s model becomes that policy's status (through the rate-limited,
//! conflict-safe [`StatusWriter`]). Followers write nothing.
//!
//! Inputs are the three channels the rest of the process already has: the evaluator's
//! decision snapshots, the watcher's [`PolicySnapshot`] (which policy owns which model)
//! with its reflector stores (the `resourceVersion` preconditions), and the Lease's
//! leadership flag.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::crd::SloScalingPolicyStatus;
use super::status::{StatusWriter, status_from_outcome};
use super::watch::{PolicySnapshot, PolicyStores};
use crate::decision::{ModelOutcome, Snapshot};

/// The outcome a snapshot holds for a model: its latest error, or its last good decision;
/// `None` before the first evaluation.
pub fn outcome_of(snapshot: &Snapshot, model: &str) -> Option<ModelOutcome> {
    let state = snapshot.models.get(model)?;
    if let Some(e) = &state.last_error {
        return Some(ModelOutcome::Unavailable(e.clone()));
    }
    let (at, decisions) = state.last_good.as_ref()?;
    if at.elapsed() > snapshot.stale_after {
        return Some(ModelOutcome::Unavailable(format!(
            "the last decision is older than {:.0} s",
            snapshot.stale_after.as_secs_f64()
        )));
    }
    Some(ModelOutcome::Planned(decisions.clone()))
}

/// Channels and settings of the loop.
pub struct StatusLoop {
    /// The writer (its `min_interval` is the per-object rate limit).
    pub writer: StatusWriter,
    /// The evaluator's snapshots.
    pub decisions: watch::Receiver<Arc<Snapshot>>,
    /// The watcher's fleet.
    pub policies: watch::Receiver<PolicySnapshot>,
    /// The watchers' stores.
    pub store: PolicyStores,
    /// Leadership.
    pub leader: watch::Receiver<bool>,
    /// How often deferred statuses are flushed when no new snapshot comes.
    pub flush_every: Duration,
}

impl StatusLoop {
    /// Runs until `cancel`. Write errors are logged and retried at the next snapshot.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut previous: BTreeMap<(String, String), SloScalingPolicyStatus> = BTreeMap::new();
        let mut tick = tokio::time::interval(self.flush_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let fresh = tokio::select! {
                _ = cancel.cancelled() => return,
                r = self.decisions.changed() => {
                    if r.is_err() {
                        return;
                    }
                    true
                }
                _ = tick.tick() => false,
            };
            if !*self.leader.borrow() {
                continue;
            }
            if fresh {
                let snapshot = self.decisions.borrow_and_update().clone();
                let policies = self.policies.borrow().clone();
                // Deleted (or rejected) policies: drop their state.
                let live = |ns: &str, name: &str| {
                    policies
                        .models
                        .iter()
                        .any(|(r, _)| r.namespace == ns && r.name == name)
                };
                self.writer.retain(live);
                previous.retain(|(ns, name), _| live(ns, name));
                for (r, model) in &policies.models {
                    let Some(outcome) = outcome_of(&snapshot, &model.name) else {
                        continue;
                    };
                    let key = (r.namespace.clone(), r.name.clone());
                    if let Some(obj) = self
                        .store
                        .get(&ObjectRef::new(&r.name).within(&r.namespace))
                    {
                        self.writer.observe(&obj);
                        if !previous.contains_key(&key)
                            && let Some(s) = &obj.status
                        {
                            previous.insert(key.clone(), s.clone());
                        }
                    }
                    let status =
                        status_from_outcome(&outcome, previous.get(&key), Timestamp::now());
                    previous.insert(key, status.clone());
                    if let Err(e) = self
                        .writer
                        .submit(&r.namespace, &r.name, status, Instant::now())
                        .await
                    {
                        tracing::warn!(error = %e, "status write failed");
                    }
                }
            }
            if let Err(errors) = self.writer.flush_due(Instant::now()).await {
                for e in errors {
                    tracing::warn!(error = %e, "status write failed");
                }
            }
        }
    }
}
