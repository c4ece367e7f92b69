//! `slo-scaler`: our pipeline exactly as `serve` runs it — a [`crate::pipeline::Fleet`]
//! with one [`crate::pipeline::ModelPipeline`] (forecast → capacity per replica under the
//! SLO → least-cost plan across variants → stabilisation), fed at every sync with the
//! demand a metrics source would report (the arrival rate over the rate window) and the
//! engines' p90 TTFT/TPOT over the same window with the replicas that served it (closing
//! the loop, as `serve` does with Prometheus), its per-variant desired replicas reported to
//! KEDA with target 1.

use forecasting::profile::Profile;

use super::{Observation, Policy, PolicyContext, PolicyError, Wish};
use crate::decision::ModelOutcome;
use crate::decision::VariantDecision;
use crate::pipeline::{Fleet, ModelInput, ModelPipeline, SloTarget, VariantInput};
use crate::sim::metrics::ForecastBand;
use crate::tiers::TierSettings;

const MODEL: &str = "model";

/// The pipeline in the loop: what `slo-scaler` and the tiered policies share — the fleet,
/// the last wish per variant (KEDA reads it between decisions) and the forecast band the
/// last decision was sized from.
#[derive(Debug)]
pub struct PipelineLoop {
    fleet: Fleet,
    names: Vec<String>,
    last: Vec<Wish>,
    band: Option<ForecastBand>,
}

impl PipelineLoop {
    /// The pipeline for `ctx` (optionally with tiers), wishing each variant's minimum.
    ///
    /// # Errors
    /// [`PolicyError::Pipeline`] when a variant cannot meet the SLO or the settings are
    /// invalid.
    pub fn new(ctx: &PolicyContext, tiers: Option<TierSettings>) -> Result<Self, PolicyError> {
        Ok(Self {
            fleet: pipeline_fleet(ctx, tiers)?,
            names: ctx.variants.iter().map(|v| v.name.clone()).collect(),
            last: ctx
                .variants
                .iter()
                .map(|v| Wish::replicas(f64::from(v.min)))
                .collect(),
            band: None,
        })
    }

    /// Variant names in fleet order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Feeds this sync's demand, lets `before_tick` feed anything else the pipeline reads
    /// (latency), plans, and records the wishes and the band; calls
    /// `per_variant(index, decision)` for every fleet variant the plan decided. Returns the
    /// wishes (the last ones where nothing was planned).
    pub fn plan(
        &mut self,
        obs: &Observation,
        before_tick: impl FnOnce(&mut Fleet),
        mut per_variant: impl FnMut(usize, &VariantDecision),
    ) -> Vec<Wish> {
        // A scaler that ran before the slice (its forecaster was fed the history) had been
        // asking for the pool that runs at the start: its scale-down window holds that pool,
        // as the HPA's does (`VariantScaler::running_before`). Without this the first plan
        // would be taken as is and only the HPA's window — 60 s with our ScaledObjects —
        // would stand between it and the running pool.
        let running: std::collections::BTreeMap<String, u32> = self
            .names
            .iter()
            .zip(&obs.variants)
            .map(|(n, v)| (n.clone(), v.ready + v.starting))
            .collect();
        self.fleet.know_running(MODEL, obs.now_s, running);
        self.fleet.observe(MODEL, obs.now_s, obs.arrivals_per_s);
        before_tick(&mut self.fleet);
        let decisions = self.fleet.tick(obs.now_s);
        if let Some(ModelOutcome::Planned(vs)) = decisions.first().map(|d| &d.outcome) {
            self.band = vs.first().and_then(band_of);
            for (i, name) in self.names.iter().enumerate() {
                if let Some(v) = vs.iter().find(|v| &v.variant == name) {
                    self.last[i] = Wish::replicas(v.desired_replicas);
                    per_variant(i, v);
                }
            }
        }
        self.last.clone()
    }

    /// The band the last decision was sized from.
    pub(super) fn band(&self) -> Option<ForecastBand> {
        self.band
    }
}

/// The pipeline in the loop.
#[derive(Debug)]
pub struct SloScaler {
    core: PipelineLoop,
}

impl SloScaler {
    /// Builds the pipeline (computes capacities under the SLO).
    ///
    /// # Errors
    /// [`PolicyError::Pipeline`] when a variant cannot meet the SLO or the settings are
    /// invalid.
    pub fn new(ctx: &PolicyContext) -> Result<Self, PolicyError> {
        Ok(Self {
            core: PipelineLoop::new(ctx, None)?,
        })
    }
}

impl Policy for SloScaler {
    fn name(&self) -> &str {
        "slo-scaler"
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
        let names = self.core.names().to_vec();
        self.core.plan(
            obs,
            |fleet| feed_engine_metrics(fleet, &names, obs, true),
            |_, _| {},
        )
    }

    fn forecast_band(&self) -> Option<ForecastBand> {
        self.core.band()
    }
}

/// Feeds the pipeline what `serve` reads from the engines for this sync: the requests
/// waiting in their queues, then (when `latency`) the p90 TTFT/TPOT with the replicas that
/// served the window.
pub fn feed_engine_metrics(fleet: &mut Fleet, names: &[String], obs: &Observation, latency: bool) {
    // What the engines report as `num_requests_waiting` (the gateway's queue is not
    // theirs): a long queue draining is a backlog, not a slow GPU.
    let waiting: u64 = obs.variants.iter().map(|v| v.waiting).sum();
    fleet.observe_waiting(MODEL, Some(waiting as f64));
    if !latency {
        return;
    }
    // The replicas that took traffic in the window: with a warm pool, sleeping pods are
    // ready to Kubernetes but served nothing, and counting them would read the window's
    // latency as that of a larger fleet (a slower GPU than the profile).
    let serving: std::collections::BTreeMap<String, u32> = names
        .iter()
        .zip(&obs.variants)
        .map(|(n, v)| (n.clone(), v.serving))
        .collect();
    // The engines' TTFT starts when a request reaches one, so a hold at the gateway for a
    // cold start or a wake is not in it (as in vLLM's histogram, which `serve` reads):
    // it is fed as is, also in the windows after a wake.
    let ttft_s = obs.ttft_p90_ms.map(|x| x / 1e3);
    let tpot_s = obs.tpot_p90_ms.map(|x| x / 1e3);
    fleet.observe_latency(MODEL, ttft_s, tpot_s, Some(&serving));
}

/// The forecast band a decision was sized from (its details carry it for `/metrics`).
fn band_of(d: &VariantDecision) -> Option<ForecastBand> {
    let get = |k: &str| d.details.get(k).copied().filter(|v| v.is_finite());
    Some(ForecastBand {
        lower_rps: get("demand_lower_rps")?,
        point_rps: get("demand_point_rps")?,
        upper_rps: get("demand_upper_rps")?,
    })
}

/// The pipeline fleet `serve` would run for this context, with history fed, optionally with
/// hot/warm/cold tiers (the `tiered` policies).
///
/// # Errors
/// [`PolicyError::Pipeline`] when a variant cannot meet the SLO or the settings are invalid.
pub(crate) fn pipeline_fleet(
    ctx: &PolicyContext,
    tiers: Option<crate::tiers::TierSettings>,
) -> Result<Fleet, PolicyError> {
    let variants = ctx
        .variants
        .iter()
        .map(|v| VariantInput {
            name: v.name.clone(),
            gpu_type: v.profile.gpu.clone(),
            gpus_per_replica: v.profile.tensor_parallel,
            profile: Profile::clone(&v.profile),
            min: v.min,
            max: v.max,
        })
        .collect();
    let pipeline = ModelPipeline::new(
        ModelInput {
            name: MODEL.into(),
            priority: 0,
            target: SloTarget {
                slo: ctx.slo,
                attainment: ctx.attainment,
            },
            mix: ctx.mix.clone(),
            variants,
            forecast_interval_s: ctx.forecast_interval_s,
        },
        ctx.stabilization,
    )?
    .with_burst_sizing(ctx.rate_window_s);
    let pipeline = match tiers {
        Some(t) => pipeline.with_tiers(t),
        None => pipeline,
    };
    let mut fleet = Fleet::new(vec![pipeline], None);
    // History before the slice, as `serve` backfills it: one sample per interval.
    let n = ctx.history_rates_per_s.len();
    for (k, rate) in ctx.history_rates_per_s.iter().enumerate() {
        let t_s = -((n - k) as f64) * ctx.forecast_interval_s;
        fleet.observe(MODEL, t_s, *rate);
    }
    Ok(fleet)
}
