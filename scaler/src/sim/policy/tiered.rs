//! Our pipeline with hot/warm/cold tiers (`crate::tiers`), in three variants for the
//! issue-9 comparisons:
//!
//! | name | tiers | victims on scale-down |
//! |---|---|---|
//! | `slo-scaler-warm` | warm pool on (`sizing.tiers`) | KV-aware pod-deletion cost |
//! | `slo-scaler-warm-rs` | warm pool on | the ReplicaSet's default order |
//! | `scale-to-zero` | warm pool off: idle models go cold at once (plain scale-to-zero) | the ReplicaSet's default order |
//!
//! KEDA is told `hot + warm` (the pods that exist, with target 1); with a warm pool the simulator puts the
//! pods beyond `hot` to sleep and wakes them ([`super::Policy::hot_replicas`]).

use super::slo_scaler::{PipelineLoop, feed_engine_metrics};
use super::{Observation, Policy, PolicyContext, PolicyError, Wish};
use crate::sim::metrics::ForecastBand;
use crate::sim::victims::VictimRule;
use crate::tiers::TierSettings;

/// The tiered policies' names.
pub const NAMES: &[&str] = &["slo-scaler-warm", "slo-scaler-warm-rs", "scale-to-zero"];

/// The pipeline with tiers in the loop.
#[derive(Debug)]
pub struct Tiered {
    name: &'static str,
    core: PipelineLoop,
    hot: Vec<u32>,
    warm: Vec<u32>,
    victims: VictimRule,
    warm_cost_fraction: f64,
    warm_pool: bool,
}

impl Tiered {
    /// Builds the named variant (one of [`NAMES`]) from the context's tier settings.
    ///
    /// # Errors
    /// [`PolicyError::Unknown`] for another name; [`PolicyError::Pipeline`] when the SLO
    /// pipeline rejects the context.
    pub fn new(name: &str, ctx: &PolicyContext) -> Result<Self, PolicyError> {
        let (name, tiers, victims) = match name {
            "slo-scaler-warm" => ("slo-scaler-warm", ctx.tiers, VictimRule::KvAware),
            "slo-scaler-warm-rs" => (
                "slo-scaler-warm-rs",
                ctx.tiers,
                VictimRule::ReplicaSetDefault,
            ),
            "scale-to-zero" => (
                "scale-to-zero",
                TierSettings {
                    warm_pool: false,
                    ..ctx.tiers
                },
                VictimRule::ReplicaSetDefault,
            ),
            _ => {
                return Err(PolicyError::Unknown {
                    got: name.to_string(),
                });
            }
        };
        Ok(Self {
            name,
            core: PipelineLoop::new(ctx, Some(tiers))?,
            hot: ctx.variants.iter().map(|v| v.min).collect(),
            warm: vec![0; ctx.variants.len()],
            victims,
            warm_cost_fraction: tiers.warm_cost_fraction,
            warm_pool: tiers.warm_pool,
        })
    }
}

impl Policy for Tiered {
    fn name(&self) -> &str {
        self.name
    }

    /// Deployed through the ScaledObjects `slo-scaler recommend` renders, whose HPA
    /// `behavior` leaves scale-down holding to the scaler's own window.
    fn scaling(
        &self,
        base: crate::sim::autoscaler::ScalingSettings,
    ) -> crate::sim::autoscaler::ScalingSettings {
        base.rendered()
    }

    fn min_replicas(&self, fleet_min: &[u32]) -> Vec<u32> {
        fleet_min.to_vec()
    }

    fn wishes(&mut self, obs: &Observation) -> Vec<Wish> {
        let (hot, warm) = (&mut self.hot, &mut self.warm);
        let names = self.core.names().to_vec();
        // What `serve` feeds every model, tiers or not: the engines' queue and latency.
        self.core.plan(
            obs,
            |fleet| feed_engine_metrics(fleet, &names, obs, true),
            |i, v| {
                hot[i] = v
                    .details
                    .get("tier_hot")
                    .map_or(v.desired_replicas, |h| *h)
                    .max(0.0) as u32;
                warm[i] = v.details.get("tier_warm").map_or(0.0, |w| *w).max(0.0) as u32;
            },
        )
    }

    fn hot_replicas(&self) -> Option<Vec<u32>> {
        // Plain scale-to-zero never puts a pod to sleep: every pod KEDA keeps serves.
        self.warm_pool.then(|| self.hot.clone())
    }

    fn warm_replicas(&self) -> Option<Vec<u32>> {
        self.warm_pool.then(|| self.warm.clone())
    }

    fn victim_rule(&self) -> VictimRule {
        self.victims
    }

    fn forecast_band(&self) -> Option<ForecastBand> {
        self.core.band()
    }

    fn warm_cost_fraction(&self) -> f64 {
        self.warm_cost_fraction
    }
}
