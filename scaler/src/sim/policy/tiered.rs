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
//!
//! Each sync the pipeline is fed what `serve` feeds every model, tiers or not: the engines'
//! queue and p90 TTFT/TPOT with the replicas that took traffic
//! ([`super::slo_scaler::feed_engine_metrics`], the same code as `slo-scaler`).

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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use forecasting::capacity::Slo;
    use forecasting::latency::{Percentile, RequestMix};
    use forecasting::profile::Profile;

    use super::*;
    use crate::sim::SimVariant;
    use crate::sim::policy::VariantView;

    fn ctx() -> PolicyContext {
        let profile = Profile::from_yaml(include_str!(
            "../../../../docs/profiles/llama-3.1-8b-fp8_h100-80gb_tp1_derived.yaml"
        ))
        .unwrap();
        PolicyContext {
            variants: vec![SimVariant {
                name: "h100".into(),
                profile: Arc::new(profile),
                min: 0,
                max: 20,
            }],
            slo: Slo {
                ttft_ms: 1000.0,
                tpot_ms: 50.0,
                percentile: Percentile::P90,
            },
            attainment: 0.95,
            mix: RequestMix::fixed(1000.0, 200.0).unwrap(),
            peak_rate_per_s: 10.0,
            forecast_interval_s: 60.0,
            stabilization: Default::default(),
            arrival_rates_per_s: vec![],
            arrival_bin_s: 60.0,
            history_rates_per_s: vec![],
            tiers: TierSettings::default(),
            rate_window_s: 60.0,
        }
    }

    /// Ten minutes at 90 % of one replica's profile capacity with the pool the policy asked for up;
    /// the engines report `waiting` queued requests and p90 latencies `(TTFT, TPOT)` in ms,
    /// and with `asleep` the pods serve nothing. Returns the last wish.
    fn run(name: &str, waiting: u64, (ttft_ms, tpot_ms): (f64, f64), asleep: bool) -> f64 {
        let ctx = ctx();
        let rps = 0.9 * ctx.capacity_rps(0);
        let mut p = Tiered::new(name, &ctx).unwrap();
        let mut replicas = 1;
        let mut wish = 0.0;
        for k in 0..40 {
            let obs = Observation {
                now_s: f64::from(k) * 15.0,
                arrivals_per_s: rps,
                ttft_p90_ms: Some(ttft_ms),
                gateway_ttft_p90_ms: Some(ttft_ms),
                tpot_p90_ms: Some(tpot_ms),
                gateway_waiting: 0,
                variants: vec![VariantView {
                    ready: replicas,
                    serving: if asleep { 0 } else { replicas },
                    starting: 0,
                    waiting,
                    running: 50,
                    kv_usage: 0.5,
                }],
            };
            wish = p.wishes(&obs)[0].value;
            replicas = (wish as u32).max(1);
        }
        wish
    }

    #[test]
    fn the_tiered_policies_read_the_engines_queue_and_latency_as_serve_does() {
        for name in NAMES {
            let (nominal, slow) = ((200.0, 20.0), (5_000.0, 100.0));
            let quiet = run(name, 0, nominal, false);
            let queued = run(name, 30_000, nominal, false);
            assert!(
                queued > quiet,
                "{name}: a queue of 30,000 is a backlog to clear ({queued} vs {quiet} replicas)"
            );
            let slower = run(name, 0, slow, false);
            assert!(
                slower > quiet,
                "{name}: TTFT 5× and TPOT 2× the SLO on the pods that served is a slower GPU than profiled ({slower} vs {quiet} replicas)"
            );
            // Sleeping pods are ready to Kubernetes but served nothing: their window's
            // latency is no evidence about the profile.
            let asleep = run(name, 0, slow, true);
            assert_eq!(asleep, quiet, "{name}");
        }
    }
}
