//! The seam between deciding and actuating tiers: [`TieredPlanner`] wraps the planner
//! `serve` runs, turns each warm-pool variant's decision into a [`TierTarget`] (hot from
//! the desired replicas, warm from the tier policy), tells KEDA hot + warm (+ the cold
//! fallback the actuator reported), and publishes the targets for the actuator task
//! ([`spawn_actuator`]).
//!
//! Tier input: a decision carrying details `tier_hot` and `tier_warm` (the tier policy's
//! `TierPlan`) is taken as is; otherwise hot = ⌈desired replicas⌉ and warm = the
//! variant's configured `warm`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::actuation::TierTarget;
use super::actuator::{Actuator, VariantPods, VariantReport};
use crate::decision::{Catalog, ModelDecision, ModelOutcome, Planner, VariantDecision};

/// (model, variant).
pub type VariantKey = (String, String);
/// The targets the actuator works towards.
pub type Targets = BTreeMap<VariantKey, TierTarget>;

/// What the actuator last reported per variant (cold fallback and reason).
#[derive(Debug, Clone, Default)]
pub struct Reports {
    inner: Arc<Mutex<BTreeMap<VariantKey, VariantReport>>>,
}

impl Reports {
    /// Stores a report.
    pub fn put(&self, r: VariantReport) {
        self.inner
            .lock()
            .expect("reports lock")
            .insert((r.model.clone(), r.variant.clone()), r);
    }

    /// The last report of a variant.
    pub fn get(&self, model: &str, variant: &str) -> Option<VariantReport> {
        self.inner
            .lock()
            .expect("reports lock")
            .get(&(model.to_string(), variant.to_string()))
            .cloned()
    }
}

/// The tier target of a decision (see the module documentation).
pub fn tier_target(d: &VariantDecision, warm_floor: u32) -> TierTarget {
    let count = |x: f64| x.max(0.0).ceil().min(f64::from(u32::MAX / 4)) as u32;
    match (d.details.get("tier_hot"), d.details.get("tier_warm")) {
        (Some(h), Some(w)) => TierTarget {
            hot: count(*h),
            warm: count(*w),
        },
        _ => TierTarget {
            hot: count(d.desired_replicas),
            warm: warm_floor,
        },
    }
}

/// A planner whose warm-pool variants ask KEDA for hot + warm (+ cold fallback) replicas.
pub struct TieredPlanner<P> {
    inner: P,
    warm: BTreeMap<VariantKey, u32>,
    targets: watch::Sender<Targets>,
    reports: Reports,
}

impl<P: Planner> TieredPlanner<P> {
    /// Wraps `inner`; `warm` is the configured warm count of each warm-pool variant.
    pub fn new(
        inner: P,
        warm: BTreeMap<VariantKey, u32>,
        reports: Reports,
    ) -> (Self, watch::Receiver<Targets>) {
        let (targets, rx) = watch::channel(Targets::new());
        (
            Self {
                inner,
                warm,
                targets,
                reports,
            },
            rx,
        )
    }
}

impl<P: Planner> Planner for TieredPlanner<P> {
    fn catalog(&self) -> Catalog {
        self.inner.catalog()
    }

    fn note_running(&mut self, model: &str, running: &std::collections::BTreeMap<String, u32>) {
        self.inner.note_running(model, running);
    }

    async fn evaluate(&mut self, now: SystemTime) -> Vec<ModelDecision> {
        let mut decisions = self.inner.evaluate(now).await;
        let mut targets = self.targets.borrow().clone();
        for d in &mut decisions {
            let ModelOutcome::Planned(variants) = &mut d.outcome else {
                continue;
            };
            for v in variants {
                let key = (d.model.clone(), v.variant.clone());
                let Some(&floor) = self.warm.get(&key) else {
                    continue;
                };
                let target = tier_target(v, floor);
                targets.insert(key, target);
                let report = self.reports.get(&d.model, &v.variant);
                let fallback = report
                    .as_ref()
                    .filter(|r| r.target == target)
                    .map(|r| r.keda_replicas.saturating_sub(target.pods()))
                    .unwrap_or(0);
                v.desired_replicas = f64::from(target.pods() + fallback);
                v.details.insert("tier_hot", f64::from(target.hot));
                v.details.insert("tier_warm", f64::from(target.warm));
                v.details.insert("cold_fallback", f64::from(fallback));
                v.reason = format!(
                    "{}; warm pool: hot {} + warm {}{}",
                    v.reason,
                    target.hot,
                    target.warm,
                    match &report {
                        Some(r) => format!(" ({})", r.reason),
                        None => String::new(),
                    }
                );
            }
        }
        self.targets.send_if_modified(|cur| {
            let changed = *cur != targets;
            *cur = targets;
            changed
        });
        decisions
    }
}

/// Runs the actuator every `interval` (and at once when the targets change) until
/// `cancel`; acts only while `leader` is true.
pub fn spawn_actuator(
    mut actuator: Actuator,
    variants: Vec<VariantPods>,
    mut targets: watch::Receiver<Targets>,
    leader: watch::Receiver<bool>,
    reports: Reports,
    interval: Duration,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last_reason: BTreeMap<VariantKey, String> = BTreeMap::new();
        loop {
            let current = targets.borrow_and_update().clone();
            let act = *leader.borrow();
            for v in &variants {
                let key = (v.model.clone(), v.variant.clone());
                let Some(&target) = current.get(&key) else {
                    continue;
                };
                let report = actuator.round(v, target, act, Instant::now()).await;
                if last_reason.get(&key) != Some(&report.reason) {
                    tracing::info!(
                        model = %v.model,
                        variant = %v.variant,
                        leader = act,
                        hot_target = target.hot,
                        warm_target = target.warm,
                        keda_replicas = report.keda_replicas,
                        reason = %report.reason,
                        "warm pool"
                    );
                    last_reason.insert(key, report.reason.clone());
                }
                reports.put(report);
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = targets.changed() => {}
                _ = tokio::time::sleep(interval) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(replicas: f64, details: &[(&'static str, f64)]) -> VariantDecision {
        VariantDecision {
            variant: "h100".into(),
            desired_replicas: replicas,
            reason: "r".into(),
            action: "steady",
            details: details.iter().copied().collect(),
        }
    }

    #[test]
    fn targets_come_from_the_tier_plan_or_the_configured_floor() {
        assert_eq!(
            tier_target(&decision(2.3, &[]), 1),
            TierTarget { hot: 3, warm: 1 }
        );
        assert_eq!(
            tier_target(&decision(0.0, &[]), 0),
            TierTarget { hot: 0, warm: 0 },
            "cold"
        );
        assert_eq!(
            tier_target(&decision(2.0, &[("tier_hot", 1.0), ("tier_warm", 2.0)]), 0),
            TierTarget { hot: 1, warm: 2 }
        );
    }
}
