//! Scaling policies: what each autoscaler asks for, given what it could observe. Every
//! policy's wish then goes through the same KEDA/HPA semantics
//! ([`crate::sim::autoscaler`]), so they differ only in the signal and the rule.
//!
//! Where to start: the [`Policy`] trait; [`build`] makes a policy by name from a
//! [`PolicyContext`]. One file per policy. Baselines scale the **first variant** of the
//! fleet (they manage one GPU type per pool) and keep the others at their minimum; only
//! `slo-scaler` plans across variants. Baselines also keep at least one replica (their
//! published recipes run `minReplicaCount: 1`).

pub mod aibrix_kpa;
pub mod dynamo_planner;
pub mod fixed;
pub mod keda_threshold;
pub mod llmd_slo;
pub mod oracle;
pub mod slo_scaler;
pub mod static_peak;
pub mod tiered;

use forecasting::capacity::{Slo, capacity_per_replica};
use forecasting::latency::RequestMix;

use super::SimVariant;
use super::autoscaler::Wish;

/// What one variant looks like to a policy at a sync.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantView {
    /// Replicas ready to Kubernetes (with a warm pool, sleeping ones too: sleep is
    /// invisible to it).
    pub ready: u32,
    /// Replicas taking traffic: ready and awake, neither asleep, waking, on their way to
    /// sleep nor draining. What served the window the latency percentiles come from.
    pub serving: u32,
    /// Replicas starting (cold start in progress).
    pub starting: u32,
    /// Requests waiting in the ready replicas' queues (vLLM `num_requests_waiting`).
    pub waiting: u64,
    /// Requests running on them (`num_requests_running`).
    pub running: u64,
    /// Mean KV-cache use over the ready replicas, 0..1 (`kv_cache_usage_perc`).
    pub kv_usage: f64,
}

/// What every policy may observe at a sync (the metrics an engine or gateway exports).
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Simulation time, seconds.
    pub now_s: f64,
    /// Arrival rate over the last rate window, requests/s.
    pub arrivals_per_s: f64,
    /// p90 TTFT of the requests whose first token came in the last window, ms, as the
    /// engines measure it (vLLM's `time_to_first_token_seconds`): from when the request
    /// reached a replica, so time held at the gateway for a cold start or a wake is not in
    /// it.
    pub ttft_p90_ms: Option<f64>,
    /// The same requests' p90 TTFT from their arrival at the gateway, ms: what a gateway
    /// or frontend measures, and what users wait.
    pub gateway_ttft_p90_ms: Option<f64>,
    /// p90 TPOT of the requests that finished in the last window, ms.
    pub tpot_p90_ms: Option<f64>,
    /// Requests held at the gateway because no replica is ready.
    pub gateway_waiting: u64,
    /// Per variant, in fleet order.
    pub variants: Vec<VariantView>,
}

/// An autoscaler under test.
pub trait Policy {
    /// Its name in reports.
    fn name(&self) -> &str;
    /// How often it recomputes its wish (between recomputations KEDA reads the last one).
    fn interval_s(&self) -> f64 {
        15.0
    }
    /// The wish per variant (fleet order).
    fn wishes(&mut self, obs: &Observation) -> Vec<Wish>;
    /// Replicas running (warm) at the start, given the common default.
    fn initial(&self, default: &[u32]) -> Vec<u32> {
        default.to_vec()
    }
    /// The Deployments' `minReplicaCount` per variant, given the fleet's. Baselines keep
    /// their pool at 1 or more (their recipes do); policies that scale to zero override.
    fn min_replicas(&self, fleet_min: &[u32]) -> Vec<u32> {
        let mut m = fleet_min.to_vec();
        if let Some(first) = m.first_mut() {
            *first = (*first).max(1);
        }
        m
    }
    /// Serving (hot) replicas per variant after the last wishes, for policies that run
    /// warm tiers (the rest of the pods sleep); `None`: every pod serves.
    fn hot_replicas(&self) -> Option<Vec<u32>> {
        None
    }
    /// Sleeping (warm) replicas per variant the policy wants, alongside
    /// [`Self::hot_replicas`]: pods beyond `hot + warm` that the Deployment has not removed
    /// yet keep serving, as the actuator leaves them (`docs/warm-pool.md`, rule 2).
    fn warm_replicas(&self) -> Option<Vec<u32>> {
        None
    }
    /// The KEDA/HPA settings its Deployments run with, given the simulation's (Kubernetes'
    /// defaults unless a caller changed them): a policy whose deployment sets its own HPA
    /// `behavior` returns it here, so the backtest replays what is deployed.
    fn scaling(
        &self,
        base: super::autoscaler::ScalingSettings,
    ) -> super::autoscaler::ScalingSettings {
        base
    }
    /// How the Deployment picks pods to remove (the simulator's least-loaded rule unless
    /// the policy sets pod-deletion costs or asks for the ReplicaSet's own order).
    fn victim_rule(&self) -> super::victims::VictimRule {
        super::victims::VictimRule::LeastLoaded
    }
    /// A sleeping replica's cost as a fraction of a serving one's (for the report).
    fn warm_cost_fraction(&self) -> f64 {
        1.0
    }
    /// The demand forecast behind the last wishes, for policies that forecast with
    /// intervals (timeline and plot); `None` for the rest.
    fn forecast_band(&self) -> Option<super::metrics::ForecastBand> {
        None
    }
}

/// Everything a policy may be built from.
#[derive(Debug, Clone)]
pub struct PolicyContext {
    /// The fleet's variants (the first is the baselines' pool).
    pub variants: Vec<SimVariant>,
    /// The model's SLO.
    pub slo: Slo,
    /// Share of time the demand must be covered (slo-scaler's forecast quantile).
    pub attainment: f64,
    /// The request mix the SLO pipeline and profile-based baselines size for.
    pub mix: RequestMix,
    /// Peak arrival rate of the replayed workload over 60 s bins (static-peak).
    pub peak_rate_per_s: f64,
    /// Interval of the forecaster's demand series (slo-scaler), seconds.
    pub forecast_interval_s: f64,
    /// slo-scaler's own stabilisation settings.
    pub stabilization: crate::stabilization::StabilizerSettings,
    /// The workload's arrival rate per `arrival_bin_s` bin from time 0, req/s — the future,
    /// known only to `oracle`.
    pub arrival_rates_per_s: Vec<f64>,
    /// Bin of `arrival_rates_per_s`, seconds.
    pub arrival_bin_s: f64,
    /// Demand before the replayed slice (simulation time, speed and scale applied), one rate
    /// per `forecast_interval_s`, oldest first, the last ending at time 0 — what `serve`
    /// backfills from Prometheus at start. Empty when the slice starts the trace.
    pub history_rates_per_s: Vec<f64>,
    /// Hot/warm/cold tier settings (`sizing.tiers`) for the tiered policies.
    pub tiers: crate::tiers::TierSettings,
    /// Window of the arrival rate policies observe, seconds (the fleet's `rate_window_s`).
    pub rate_window_s: f64,
}

impl PolicyContext {
    /// Capacity per replica of variant `i` under the SLO for the mix (req/s), from the
    /// analytic model; 0 when the SLO is infeasible on it.
    #[must_use]
    pub fn capacity_rps(&self, i: usize) -> f64 {
        capacity_per_replica(&self.variants[i].profile, &self.mix, &self.slo)
            .map_or(0.0, |c| c.rate_per_s)
    }
}

/// Why a policy cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The name is not a known policy.
    #[error("unknown policy {got:?}: expected one of {}", POLICY_NAMES.join(", "))]
    Unknown {
        /// As given.
        got: String,
    },
    /// The SLO pipeline could not be built (e.g. no variant can meet the SLO).
    #[error("slo-scaler: {0}")]
    Pipeline(#[from] crate::pipeline::PipelineError),
}

/// Every policy `build` knows, in report order.
pub const POLICY_NAMES: &[&str] = &[
    "static-peak",
    "keda-threshold",
    "aibrix-kpa",
    "llmd-slo",
    "dynamo-planner",
    "dynamo-planner-arima",
    "dynamo-planner-kalman",
    "slo-scaler",
    "oracle",
];

/// Builds the named policy.
///
/// # Errors
/// [`PolicyError::Unknown`] for a name not in [`POLICY_NAMES`]; [`PolicyError::Pipeline`]
/// when the SLO pipeline rejects the context.
pub fn build(name: &str, ctx: &PolicyContext) -> Result<Box<dyn Policy>, PolicyError> {
    Ok(match name {
        "static-peak" => Box::new(static_peak::StaticPeak::new(ctx)),
        "keda-threshold" => Box::new(keda_threshold::KedaThreshold::new(ctx)),
        "aibrix-kpa" => Box::new(aibrix_kpa::AibrixKpa::new(ctx)),
        "llmd-slo" => Box::new(llmd_slo::LlmdSlo::new(ctx)),
        "dynamo-planner" => Box::new(dynamo_planner::DynamoPlanner::new(ctx)),
        "dynamo-planner-arima" => Box::new(dynamo_planner::DynamoPlanner::with_predictor(
            ctx,
            dynamo_planner::Predictor::Arima,
        )),
        "dynamo-planner-kalman" => Box::new(dynamo_planner::DynamoPlanner::with_predictor(
            ctx,
            dynamo_planner::Predictor::Kalman,
        )),
        "slo-scaler" => Box::new(slo_scaler::SloScaler::new(ctx)?),
        "oracle" => Box::new(oracle::Oracle::new(ctx)),
        n if tiered::NAMES.contains(&n) => Box::new(tiered::Tiered::new(n, ctx)?),
        _ => {
            return Err(PolicyError::Unknown {
                got: name.to_string(),
            });
        }
    })
}

/// Wishes for a baseline: `first` for the first variant, the others' minimum for the rest.
pub(crate) fn first_variant_only(ctx_mins: &[u32], first: Wish) -> Vec<Wish> {
    let mut out = vec![first];
    out.extend(
        ctx_mins
            .iter()
            .skip(1)
            .map(|m| Wish::replicas(f64::from(*m))),
    );
    out
}
