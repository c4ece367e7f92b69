//! Writing `SloScalingPolicy` status: rate-limited per object and conflict-safe.
//!
//! - **Rate limit.** At most one write per object per `min_interval`; a status that arrives
//!   sooner is kept as *pending* (the newest wins) and written by [`StatusWriter::flush_due`]
//!   once the interval has passed. A status equal to the last one written is never
//!   re-sent. A model's status changes every evaluation (seconds); the API server should
//!   see it at most every `min_interval`.
//! - **Conflict safety.** Each write is a JSON merge patch
//!   (`application/merge-patch+json`) on the `status` subresource that carries
//!   `metadata.resourceVersion` of the object as last seen, so the API server refuses it
//!   (409) if someone changed the object since. On 409 the writer reads the object again
//!   (`GET .../status`), takes its new `resourceVersion` and `generation` (as
//!   `observedGeneration`), and retries, up to `max_conflict_retries` times.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{Patch, PatchParams};

use k8s_openapi::jiff::Timestamp;

use super::crd::{
    ForecastStatus, PolicyCondition, SloScalingPolicy, SloScalingPolicyStatus, VariantPlanStatus,
};
use crate::decision::ModelOutcome;

/// Why a status write failed.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Every attempt met a newer object (409 Conflict) until the retry budget ran out.
    #[error("status of {namespace}/{name}: still conflicting after {attempts} attempts")]
    Conflict {
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
        /// Attempts made.
        attempts: u32,
    },
    /// Any other API error (not found, forbidden, transport).
    #[error("status of {namespace}/{name}: {source}")]
    Api {
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

/// What [`StatusWriter::submit`] did with a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Patched on the API server.
    Written,
    /// Equal to the last status written: nothing sent.
    Unchanged,
    /// Within `min_interval` of the last write: kept as pending.
    Deferred,
}

#[derive(Debug, Default)]
struct Slot {
    last_write: Option<Instant>,
    last_written: Option<SloScalingPolicyStatus>,
    resource_version: Option<String>,
    generation: Option<i64>,
    pending: Option<SloScalingPolicyStatus>,
}

/// Writes statuses of `SloScalingPolicy` objects; see the module documentation.
pub struct StatusWriter {
    client: kube::Client,
    min_interval: Duration,
    max_conflict_retries: u32,
    slots: BTreeMap<(String, String), Slot>,
}

impl StatusWriter {
    /// A writer allowing one write per object per `min_interval`.
    pub fn new(client: kube::Client, min_interval: Duration) -> Self {
        Self {
            client,
            min_interval,
            max_conflict_retries: 3,
            slots: BTreeMap::new(),
        }
    }

    /// Sets how many times a conflicting write is retried (default 3).
    pub fn with_max_conflict_retries(mut self, n: u32) -> Self {
        self.max_conflict_retries = n;
        self
    }

    /// Records what the watcher saw of an object (its `resourceVersion` and `generation`),
    /// the precondition of the next write. It is taken at first sight and whenever the
    /// spec's generation differs from the one known; otherwise the version returned by the
    /// writer's own last write is kept (the watcher's copy may lag behind it). A stale
    /// version costs one 409 and a re-read, never a lost update.
    pub fn observe(&mut self, policy: &SloScalingPolicy) {
        let (Some(ns), Some(name)) = (&policy.metadata.namespace, &policy.metadata.name) else {
            return;
        };
        let slot = self.slots.entry((ns.clone(), name.clone())).or_default();
        if slot.resource_version.is_none() || slot.generation != policy.metadata.generation {
            slot.resource_version = policy.metadata.resource_version.clone();
            slot.generation = policy.metadata.generation;
        }
    }

    /// Offers a new status for `namespace/name` at time `now`. Without an
    /// `observedGeneration`, the generation last seen of the object is filled in (and, after
    /// a conflict, the generation of the object as re-read).
    pub async fn submit(
        &mut self,
        namespace: &str,
        name: &str,
        mut status: SloScalingPolicyStatus,
        now: Instant,
    ) -> Result<WriteOutcome, StatusError> {
        let key = (namespace.to_owned(), name.to_owned());
        let slot = self.slots.entry(key.clone()).or_default();
        if status.observed_generation.is_none() {
            status.observed_generation = slot.generation;
        }
        if slot.last_written.as_ref() == Some(&status) {
            slot.pending = None;
            return Ok(WriteOutcome::Unchanged);
        }
        if slot
            .last_write
            .is_some_and(|t| now.duration_since(t) < self.min_interval)
        {
            slot.pending = Some(status);
            return Ok(WriteOutcome::Deferred);
        }
        self.write(&key, status, now).await?;
        Ok(WriteOutcome::Written)
    }

    /// Writes every pending status whose interval has passed; returns how many were written.
    /// Failures are returned after the others have been tried.
    pub async fn flush_due(&mut self, now: Instant) -> Result<usize, Vec<StatusError>> {
        let due: Vec<_> = self
            .slots
            .iter()
            .filter(|(_, s)| {
                s.pending.is_some()
                    && s.last_write
                        .is_none_or(|t| now.duration_since(t) >= self.min_interval)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut written = 0;
        let mut errors = Vec::new();
        for key in due {
            let Some(status) = self.slots.get_mut(&key).and_then(|s| s.pending.take()) else {
                continue;
            };
            match self.write(&key, status, now).await {
                Ok(()) => written += 1,
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(written)
        } else {
            Err(errors)
        }
    }

    /// Forgets every object for which `keep(namespace, name)` is false (deleted policies),
    /// pending statuses included.
    pub fn retain(&mut self, keep: impl Fn(&str, &str) -> bool) {
        self.slots.retain(|(ns, name), _| keep(ns, name));
    }

    /// Objects the writer keeps state for.
    pub fn tracked(&self) -> usize {
        self.slots.len()
    }

    /// Statuses waiting for their interval.
    pub fn pending(&self) -> usize {
        self.slots.values().filter(|s| s.pending.is_some()).count()
    }

    async fn write(
        &mut self,
        key: &(String, String),
        mut status: SloScalingPolicyStatus,
        now: Instant,
    ) -> Result<(), StatusError> {
        let (namespace, name) = key;
        let api: Api<SloScalingPolicy> = Api::namespaced(self.client.clone(), namespace);
        let api_err = |source| StatusError::Api {
            namespace: namespace.clone(),
            name: name.clone(),
            source,
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let slot = self.slots.entry(key.clone()).or_default();
            if status.observed_generation.is_none() {
                status.observed_generation = slot.generation;
            }
            let mut body = serde_json::json!({ "status": status });
            if let Some(rv) = &slot.resource_version {
                body["metadata"] = serde_json::json!({ "resourceVersion": rv });
            }
            match api
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                Ok(updated) => {
                    slot.resource_version = updated.metadata.resource_version;
                    slot.generation = updated.metadata.generation;
                    slot.last_write = Some(now);
                    slot.last_written = Some(status);
                    slot.pending = None;
                    return Ok(());
                }
                Err(kube::Error::Api(s)) if s.is_conflict() => {
                    if attempts > self.max_conflict_retries {
                        return Err(StatusError::Conflict {
                            namespace: namespace.clone(),
                            name: name.clone(),
                            attempts,
                        });
                    }
                    let fresh = api.get_status(name).await.map_err(api_err)?;
                    let slot = self.slots.entry(key.clone()).or_default();
                    slot.resource_version = fresh.metadata.resource_version;
                    slot.generation = fresh.metadata.generation;
                    // The generation may have moved: recompute observedGeneration.
                    status.observed_generation = None;
                }
                Err(e) => return Err(api_err(e)),
            }
        }
    }
}

/// The status of a policy from its model's latest outcome at wall time `now`.
///
/// `Planned`: the plan per variant, total replicas (each variant's ceiling, as the HPA
/// rounds), the plan's cost and the demand it was sized for (the forecast band's upper
/// edge) from the decision's details; conditions `Ready=True` and, with the SLO pipeline,
/// `SloFeasible`. `Unavailable`: the previous plan stays, `Ready=False` says why.
/// A condition keeps its `lastTransitionTime` while its status does not change.
pub fn status_from_outcome(
    outcome: &ModelOutcome,
    previous: Option<&SloScalingPolicyStatus>,
    now: Timestamp,
) -> SloScalingPolicyStatus {
    let now_s = now.to_string();
    let mut status = previous.cloned().unwrap_or_default();
    status.observed_generation = None;
    let mut conditions: Vec<(&str, bool, &str, String)> = Vec::new();
    match outcome {
        ModelOutcome::Planned(variants) => {
            let detail = |key: &str| variants.iter().find_map(|v| v.details.get(key).copied());
            status.plan = variants
                .iter()
                .map(|v| VariantPlanStatus {
                    name: v.variant.clone(),
                    desired_replicas: v.desired_replicas,
                    predicted_ttft_ms: v.details.get("predicted_ttft_ms").copied(),
                    predicted_tpot_ms: v.details.get("predicted_tpot_ms").copied(),
                    cost_per_hour: v.details.get("variant_cost_per_hour").copied(),
                })
                .collect();
            let total: f64 = variants
                .iter()
                .map(|v| v.desired_replicas.max(0.0).ceil())
                .sum();
            status.total_replicas = Some(total.min(f64::from(u32::MAX)) as u32);
            status.cost_per_hour = detail("plan_cost_per_hour");
            status.demand_rps = detail("demand_rps");
            status.forecast = detail("demand_upper_rps").map(|upper| ForecastStatus {
                lower_rps: detail("demand_lower_rps"),
                point_rps: detail("demand_point_rps"),
                upper_rps: upper,
                horizon_seconds: detail("horizon_s"),
            });
            status.last_decision_time = Some(now_s.clone());
            let reason = variants
                .first()
                .map(|v| v.reason.clone())
                .unwrap_or_default();
            conditions.push(("Ready", true, "Planned", reason));
            if let Some(f) = detail("plan_feasible") {
                let ok = f >= 0.5;
                conditions.push((
                    "SloFeasible",
                    ok,
                    if ok { "PlanMeetsSlo" } else { "CapacityShort" },
                    if ok {
                        "the plan meets the SLO at the forecast demand".into()
                    } else {
                        "no plan within GPU inventory and maxReplicas meets the SLO".into()
                    },
                ));
            }
        }
        ModelOutcome::Unavailable(why) => {
            conditions.push(("Ready", false, "Unavailable", why.clone()));
        }
    }
    let old = std::mem::take(&mut status.conditions);
    for (type_, ok, reason, message) in conditions {
        let value = if ok { "True" } else { "False" };
        let since = old
            .iter()
            .find(|c| c.type_ == type_ && c.status == value)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now_s.clone());
        status.conditions.push(PolicyCondition {
            type_: type_.into(),
            status: value.into(),
            reason: reason.into(),
            message,
            last_transition_time: since,
            observed_generation: None,
        });
    }
    // Conditions not re-evaluated this time (e.g. SloFeasible while unavailable) stay.
    for c in old {
        if !status.conditions.iter().any(|n| n.type_ == c.type_) {
            status.conditions.push(c);
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::decision::VariantDecision;

    fn planned(feasible: f64) -> ModelOutcome {
        let details = BTreeMap::from([
            ("demand_upper_rps", 42.0),
            ("plan_cost_per_hour", 18.5),
            ("plan_feasible", feasible),
        ]);
        ModelOutcome::Planned(vec![
            VariantDecision {
                variant: "h100".into(),
                desired_replicas: 2.4,
                reason: "q95 demand 42 req/s".into(),
                action: "scale_up",
                details: details.clone(),
            },
            VariantDecision {
                variant: "a100".into(),
                desired_replicas: 1.0,
                reason: "q95 demand 42 req/s".into(),
                action: "scale_up",
                details,
            },
        ])
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("timestamp")
    }

    fn cond<'a>(s: &'a SloScalingPolicyStatus, t: &str) -> &'a PolicyCondition {
        s.conditions
            .iter()
            .find(|c| c.type_ == t)
            .expect("condition")
    }

    #[test]
    fn planned_outcome_fills_plan_cost_forecast_and_conditions() {
        let s = status_from_outcome(&planned(1.0), None, at(0));
        assert_eq!(s.plan.len(), 2);
        assert_eq!(s.total_replicas, Some(4), "ceil(2.4) + 1");
        assert_eq!(s.cost_per_hour, Some(18.5));
        assert_eq!(s.forecast.as_ref().map(|f| f.upper_rps), Some(42.0));
        assert_eq!(cond(&s, "Ready").status, "True");
        assert_eq!(cond(&s, "SloFeasible").status, "True");
        assert_eq!(
            s.last_decision_time.as_deref(),
            Some("2027-01-15T08:00:00Z")
        );
    }

    #[test]
    fn transitions_keep_their_time_and_unavailable_keeps_the_plan() {
        let s0 = status_from_outcome(&planned(1.0), None, at(0));
        let s1 = status_from_outcome(&planned(1.0), Some(&s0), at(10));
        assert_eq!(
            cond(&s1, "Ready").last_transition_time,
            cond(&s0, "Ready").last_transition_time
        );
        let s2 = status_from_outcome(&planned(0.0), Some(&s1), at(20));
        assert_eq!(cond(&s2, "SloFeasible").status, "False");
        assert_eq!(cond(&s2, "SloFeasible").reason, "CapacityShort");
        assert_eq!(
            cond(&s2, "SloFeasible").last_transition_time,
            at(20).to_string()
        );
        let s3 = status_from_outcome(
            &ModelOutcome::Unavailable("prometheus: connection refused".into()),
            Some(&s2),
            at(30),
        );
        assert_eq!(cond(&s3, "Ready").status, "False");
        assert_eq!(cond(&s3, "Ready").message, "prometheus: connection refused");
        assert_eq!(cond(&s3, "SloFeasible").status, "False", "kept");
        assert_eq!(s3.plan, s2.plan, "the last plan stays visible");
        assert_eq!(s3.last_decision_time, s2.last_decision_time);
    }
}
