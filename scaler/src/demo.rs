//! The demo fleet behind `slo-scaler serve` with no config, and the plain capacity rule.
//!
//! **The demo** ([`DemoPlanner`]): the embedded config (`demo.yaml`) describes models with
//! SLOs, GPU variants with performance profiles, and a synthetic daily demand cycle with
//! bursts and idle spells. Each model's fleet is the discrete-event simulator
//! ([`crate::sim::realtime::LiveFleet`]: continuous batching, KV limits, cold starts from the
//! profiles) running in accelerated real time (a simulated day in 10 minutes by default), and
//! the real SLO pipeline ([`crate::pipeline::Fleet`], built exactly as `serve --config`
//! builds it) is in the loop: every simulated HPA sync (15 s) the simulated engines'
//! metrics — arrival rate and p90 TTFT/TPOT over the rate window, what Prometheus would
//! return — are fed to the pipeline (`observe`, `observe_latency`), it plans (`tick`), and
//! its decisions are both what the scaler publishes to KEDA and what the simulated
//! KEDA/HPA applies to the simulated Deployments. The decisions carry the simulated
//! fleet's numbers (`sim_*` details, exported to `/metrics`), so a newcomer sees demand,
//! forecast band, plan, replicas and latency move together. Deterministic: the state at a
//! simulated time depends only on the config (seeds included), never on the wall clock.
//!
//! **The capacity rule** ([`plan_model`], [`CapacityRulePlanner`]) sizes models that have
//! no SLO: `desired = demand × share ÷ capacity per replica`, clamped to the variant's
//! limits. The synthetic curve ([`synthetic_rps`]) is a pure function of time.

use std::f64::consts::PI;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use forecasting::capacity::Slo;

use crate::config::{Config, DemandConfig, ModelConfig, SyntheticDemand};
use crate::decision::{Catalog, ModelDecision, ModelInfo, ModelOutcome, Planner, VariantDecision};
use crate::metrics::MetricsError;
use crate::metrics::demand::DemandSources;
use crate::pipeline::Fleet;
use crate::planner::{FleetPlanner, PlannerError, load_profile};
use crate::sim::SimVariant;
use crate::sim::autoscaler::{ScalingSettings, Wish};
use crate::sim::realtime::{LiveFleet, LiveObservation, LiveSpec, LiveWorkload};
use crate::sim::router::Routing;
use crate::sim::workload::TokenLengths;

/// Requests per second of a synthetic model at `t_s` seconds since the Unix epoch.
pub fn synthetic_rps(d: &SyntheticDemand, t_s: f64) -> f64 {
    let day_phase = ((t_s + d.phase_s) / d.day_length_s).rem_euclid(1.0);
    // Idle spell centred on the trough (phase 0).
    let distance_from_trough = day_phase.min(1.0 - day_phase);
    if distance_from_trough < d.idle_fraction / 2.0 {
        return 0.0;
    }
    let cycle = 0.5 - 0.5 * (2.0 * PI * day_phase).cos();
    let base = d.trough_rps + (d.peak_rps - d.trough_rps) * cycle;
    let slot = (t_s / d.burst_slot_s).floor() as i64;
    if unit_hash(d.seed, slot) < d.burst_probability {
        base * d.burst_factor
    } else {
        base
    }
}

/// A uniform number in [0, 1) from (seed, slot): SplitMix64, so bursts are reproducible.
fn unit_hash(seed: u64, slot: i64) -> f64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(slot as u64)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The model's demand in requests per second at `t_s`.
pub fn demand_rps(demand: &DemandConfig, t_s: f64) -> f64 {
    match demand {
        DemandConfig::Constant { rps } => *rps,
        DemandConfig::Synthetic(s) => synthetic_rps(s, t_s),
        // Observed kinds are read by `DemandSources`, never here; no number is invented.
        DemandConfig::Prometheus(_) | DemandConfig::Scrape(_) => f64::NAN,
    }
}

/// Plans every configured model with the capacity rule.
pub struct CapacityRulePlanner {
    models: Vec<ModelConfig>,
    demand: DemandSources,
}

impl CapacityRulePlanner {
    /// A planner for the models of a configuration.
    ///
    /// # Panics
    /// If the metrics clients cannot be built (unreadable CA or token file); use
    /// [`CapacityRulePlanner::try_new`] to handle that.
    pub fn new(config: &Config) -> Self {
        Self::try_new(config).expect("metrics sources of the config can be built")
    }

    /// A planner for the models of a configuration, building its metrics sources.
    pub fn try_new(config: &Config) -> Result<Self, MetricsError> {
        Ok(Self {
            models: config.models.clone(),
            demand: DemandSources::from_config(config)?,
        })
    }

    /// The demand sources (for backfill at start and history for forecasters).
    pub fn demand_sources(&self) -> &DemandSources {
        &self.demand
    }

    /// Decisions for every model at `t_s` seconds since the epoch, with fixed or
    /// synthetic demand (pure; observed models are unavailable here).
    pub fn plan_at(&self, t_s: f64) -> Vec<ModelDecision> {
        self.models
            .iter()
            .map(|m| match &m.demand {
                DemandConfig::Constant { .. } | DemandConfig::Synthetic(_) => {
                    plan_model(m, demand_rps(&m.demand, t_s), "")
                }
                _ => ModelDecision {
                    model: m.name.clone(),
                    outcome: ModelOutcome::Unavailable(
                        "observed demand needs an evaluation".into(),
                    ),
                },
            })
            .collect()
    }
}

/// The capacity rule for one model given its demand (pure). `detail` says where the
/// demand came from and is appended to each reason.
pub fn plan_model(m: &ModelConfig, demand: f64, detail: &str) -> ModelDecision {
    let total_share: f64 = m.variants.iter().map(|v| v.share).sum();
    let decisions = m
        .variants
        .iter()
        .map(|v| {
            let share = v.share / total_share;
            let raw = demand * share / v.capacity_rps;
            let max = v.max_replicas.unwrap_or(f64::INFINITY);
            let desired = raw.clamp(v.min_replicas, max);
            let mut reason = format!(
                "demand {demand:.2} req/s × share {share:.2} ÷ {:.2} req/s per replica = {raw:.3} replicas",
                v.capacity_rps
            );
            if desired > raw {
                reason.push_str(&format!(", raised to min_replicas {}", v.min_replicas));
            } else if desired < raw {
                reason.push_str(&format!(", capped at max_replicas {max}"));
            }
            if !detail.is_empty() {
                reason.push_str("; ");
                reason.push_str(detail);
            }
            VariantDecision {
                variant: v.name.clone(),
                desired_replicas: desired,
                reason,
                action: "capacity_rule",
                details: std::collections::BTreeMap::from([
                    ("demand_rps", demand),
                    ("capacity_per_replica_rps", v.capacity_rps),
                    ("share", share),
                ]),
            }
        })
        .collect();
    ModelDecision {
        model: m.name.clone(),
        outcome: ModelOutcome::Planned(decisions),
    }
}

impl Planner for CapacityRulePlanner {
    fn catalog(&self) -> Catalog {
        Catalog::new(self.models.iter().map(|m| ModelInfo {
            name: m.name.clone(),
            variants: m.variants.iter().map(|v| v.name.clone()).collect(),
        }))
    }

    async fn evaluate(&mut self, now: SystemTime) -> Vec<ModelDecision> {
        let t_s = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let mut readings = self.demand.read(t_s).await;
        self.models
            .iter()
            .map(|m| match readings.remove(&m.name) {
                Some(Ok(r)) => plan_model(m, r.requests_per_s, &r.detail),
                Some(Err(why)) => ModelDecision {
                    model: m.name.clone(),
                    outcome: ModelOutcome::Unavailable(why),
                },
                None => ModelDecision {
                    model: m.name.clone(),
                    outcome: ModelOutcome::Unavailable("no demand source".into()),
                },
            })
            .collect()
    }
}

/// Simulated seconds per wall-clock second by default: a simulated day in 10 minutes.
pub const DEFAULT_DEMO_SPEED: f64 = 144.0;

/// Simulated seconds between HPA syncs, which is also how often the pipeline plans
/// (Kubernetes' default HPA sync period).
pub const DEMO_SYNC_S: f64 = 15.0;

/// Simulated time the demo starts at: 06:00 of day 1, as demand starts to rise (the
/// synthetic curves have their trough at midnight plus their `phase_s`).
pub const DEMO_START_S: f64 = 6.0 * 3600.0;

/// Days of demand history fed to the forecasters before the demo starts, as `serve`
/// backfills them from Prometheus (the curve's expected rate per forecast interval).
const HISTORY_DAYS: f64 = 2.0;

/// Most simulated time one evaluation catches up (an hour); beyond it (the process was
/// suspended, the machine is overloaded) the demo clock slips instead of racing.
const MAX_CATCH_UP_S: f64 = 3600.0;

/// Wall-clock time one evaluation may spend simulating: well inside the demo's
/// `evaluation.timeout_s` (0.5 s), which cannot interrupt synchronous work. A machine too
/// slow for the speed makes the demo clock slip; decisions stay fresh.
const EVALUATION_BUDGET: Duration = Duration::from_millis(250);

/// Held at the gateway longer than this (no replica ready), a request is dropped.
const GATEWAY_TIMEOUT_S: f64 = 600.0;

/// Why the demo cannot run a config.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The pipelines (profiles, capacities under each SLO) could not be built.
    #[error(transparent)]
    Planner(#[from] PlannerError),
    /// A model lacks what the simulator needs.
    #[error("model {model:?}: the demo simulator needs {what}")]
    NotSimulable {
        /// Model.
        model: String,
        /// What is missing.
        what: &'static str,
    },
    /// The speed is not a positive number.
    #[error("demo speed must be a finite number > 0, got {0}")]
    Speed(f64),
}

/// One simulated model.
struct DemoModel {
    name: String,
    variants: Vec<String>,
    sim: LiveFleet,
    /// The last wish per variant (kept while the pipeline has no decision).
    wishes: Vec<Wish>,
}

/// Replicas of one simulated variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimReplicas {
    /// Serving.
    pub ready: u32,
    /// In their cold start.
    pub starting: u32,
}

/// The embedded demo: simulated fleets in accelerated real time, the SLO pipeline in the
/// loop (module header).
pub struct DemoPlanner {
    catalog: Catalog,
    fleet: Fleet,
    models: Vec<DemoModel>,
    speed: f64,
    /// Wall-clock time of [`DEMO_START_S`] (set by the first evaluation).
    origin: Option<SystemTime>,
    next_sync_s: f64,
    last: Vec<ModelDecision>,
}

impl std::fmt::Debug for DemoPlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoPlanner")
            .field("speed", &self.speed)
            .field("sim_time_s", &self.sim_time_s())
            .finish_non_exhaustive()
    }
}

impl DemoPlanner {
    /// Builds the pipelines from `config` as `serve --config` does, one simulated fleet per
    /// model, warms the forecasters with [`HISTORY_DAYS`] of the demand curve, and starts
    /// each fleet with the replicas the pipeline plans for time 0 (warm). Every model needs
    /// an `slo`, a `request_mix`, profiles and `synthetic` demand (the embedded demo has).
    pub fn try_new(config: &Config, speed: f64) -> Result<Self, DemoError> {
        if !(speed.is_finite() && speed > 0.0) {
            return Err(DemoError::Speed(speed));
        }
        let mut fleet = FleetPlanner::try_new(config, None)?.into_fleet();
        let interval_s = config.sizing.forecast_interval_s;
        let mut specs = Vec::new();
        for m in &config.models {
            let not = |what| DemoError::NotSimulable {
                model: m.name.clone(),
                what,
            };
            let slo = m.slo.as_ref().ok_or_else(|| not("an `slo`"))?;
            let mix = m.request_mix.ok_or_else(|| not("a `request_mix`"))?;
            let DemandConfig::Synthetic(curve) = &m.demand else {
                return Err(not("`demand: {kind: synthetic, ...}`"));
            };
            let mut variants = Vec::new();
            for v in &m.variants {
                let reference = v.profile.clone().unwrap_or_default();
                let mut profile =
                    load_profile(&reference, None).map_err(|message| PlannerError::Profile {
                        model: m.name.clone(),
                        variant: v.name.clone(),
                        reference: reference.clone(),
                        message,
                    })?;
                if let Some(c) = v.cost_per_hour {
                    profile.cost_per_hour = c;
                }
                variants.push(SimVariant {
                    name: v.name.clone(),
                    profile: Arc::new(profile),
                    min: v.min_replicas.ceil() as u32,
                    max: v.max_replicas.map_or(u32::MAX / 4, |x| x.floor() as u32),
                });
            }
            let history: Vec<(f64, f64)> = (1..=(HISTORY_DAYS * 86_400.0 / interval_s) as usize)
                .rev()
                .map(|k| {
                    let t = DEMO_START_S - (k as f64) * interval_s;
                    (t, synthetic_rps(curve, t))
                })
                .collect();
            fleet.warm_start(&m.name, &history);
            fleet.observe(&m.name, DEMO_START_S, synthetic_rps(curve, DEMO_START_S));
            let c = curve.clone();
            let workload = LiveWorkload::new(
                Box::new(move |t| synthetic_rps(&c, t)),
                curve.peak_rps * curve.burst_factor.max(1.0),
                // Exactly the `request_mix` the pipeline sizes for: the config holds means
                // only, and the pipeline's latency model takes them as fixed lengths. With
                // log-normal lengths (CV 1) around the same means the latency correction
                // sat at its ×0.5 bound for every model (docs/simulator.md, "The demo").
                TokenLengths::Fixed {
                    prompt_tokens: mix.prompt_tokens.round().max(1.0) as u32,
                    output_tokens: mix.output_tokens.round().max(1.0) as u32,
                },
                curve.seed,
                DEMO_START_S,
            );
            let spec = LiveSpec {
                variants,
                slo: Slo {
                    ttft_ms: slo.ttft_ms,
                    tpot_ms: slo.tpot_ms,
                    percentile: slo.percentile,
                },
                routing: Routing::LeastLoaded,
                // The HPA `behavior` our ScaledObjects ship (`slo-scaler recommend`), as
                // the backtest runs our policies: the scaler holds scale-downs itself.
                scaling: ScalingSettings {
                    sync_interval_s: DEMO_SYNC_S,
                    ..ScalingSettings::default()
                }
                .rendered(),
                rate_window_s: config.metrics.rate_window_s,
                initial: Vec::new(),
                start_s: DEMO_START_S,
                gateway_timeout_s: GATEWAY_TIMEOUT_S,
            };
            specs.push((m, spec, workload));
        }
        // The fleets start with what the pipeline plans for them, already warm.
        let first = fleet.tick(DEMO_START_S);
        let models = specs
            .into_iter()
            .map(|(m, mut spec, workload)| {
                let planned = planned_replicas(&first, &m.name);
                spec.initial = spec
                    .variants
                    .iter()
                    .map(|v| planned.get(&v.name).map_or(v.min, |r| r.ceil() as u32))
                    .collect();
                let wishes = spec
                    .initial
                    .iter()
                    .map(|n| Wish::replicas(f64::from(*n)))
                    .collect();
                DemoModel {
                    name: m.name.clone(),
                    variants: m.variants.iter().map(|v| v.name.clone()).collect(),
                    sim: LiveFleet::new(spec, workload),
                    wishes,
                }
            })
            .collect();
        let mut demo = Self {
            catalog: Catalog::new(config.models.iter().map(|m| ModelInfo {
                name: m.name.clone(),
                variants: m.variants.iter().map(|v| v.name.clone()).collect(),
            })),
            fleet,
            models,
            speed,
            origin: None,
            next_sync_s: DEMO_START_S + DEMO_SYNC_S,
            last: first,
        };
        let observations: Vec<LiveObservation> =
            demo.models.iter_mut().map(|m| m.sim.observe()).collect();
        let first = std::mem::take(&mut demo.last);
        demo.last = demo.annotate(first, &observations, DEMO_START_S);
        Ok(demo)
    }

    /// Simulated time of the latest sync, seconds.
    pub fn sim_time_s(&self) -> f64 {
        self.next_sync_s - DEMO_SYNC_S
    }

    /// Simulated seconds per wall-clock second.
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Runs every sync up to simulated time `t_s` and returns the latest decisions.
    pub fn run_until(&mut self, t_s: f64) -> &[ModelDecision] {
        while self.next_sync_s <= t_s {
            let t = self.next_sync_s;
            self.sync(t);
            self.next_sync_s += DEMO_SYNC_S;
        }
        &self.last
    }

    /// The latest decisions (with the simulated fleet's numbers in their details).
    pub fn decisions(&self) -> &[ModelDecision] {
        &self.last
    }

    /// Replicas per variant of a simulated model, in config order.
    pub fn replicas(&self, model: &str) -> Option<Vec<(String, SimReplicas)>> {
        let m = self.models.iter().find(|m| m.name == model)?;
        Some(
            m.variants
                .iter()
                .cloned()
                .zip(
                    m.sim
                        .replicas()
                        .into_iter()
                        .map(|(ready, starting)| SimReplicas { ready, starting }),
                )
                .collect(),
        )
    }

    /// The rate a model's workload follows at `t_s` (requests/s).
    pub fn demand_curve_rps(&self, model: &str, t_s: f64) -> Option<f64> {
        let m = self.models.iter().find(|m| m.name == model)?;
        Some(m.sim.demand_curve_rps(t_s))
    }

    /// Simulates up to the time wall-clock `now` maps to (the first call sets the origin),
    /// spending at most `budget` of wall-clock time; when the budget runs out the demo clock
    /// slips to where the simulation got. Returns the latest decisions.
    pub fn advance_wall_clock(
        &mut self,
        now: SystemTime,
        budget: Option<Duration>,
    ) -> &[ModelDecision] {
        let target = self.target_sim_s(now);
        let deadline = budget.map(|b| std::time::Instant::now() + b);
        while self.next_sync_s <= target {
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                let slip = (target - self.sim_time_s()) / self.speed;
                if let Some(o) = &mut self.origin {
                    *o += Duration::from_secs_f64(slip);
                }
                tracing::debug!(slip_s = slip, "demo simulation behind the wall clock");
                break;
            }
            let t = self.next_sync_s;
            self.sync(t);
            self.next_sync_s += DEMO_SYNC_S;
        }
        &self.last
    }

    /// The simulated time wall-clock `now` maps to, advancing the origin when the demo has
    /// fallen more than [`MAX_CATCH_UP_S`] behind (the demo clock slips, it does not race).
    fn target_sim_s(&mut self, now: SystemTime) -> f64 {
        let origin = *self.origin.get_or_insert(now);
        let elapsed = now.duration_since(origin).unwrap_or_default().as_secs_f64();
        let target = DEMO_START_S + elapsed * self.speed;
        let behind = target - self.sim_time_s();
        if behind > MAX_CATCH_UP_S {
            let slip = (behind - MAX_CATCH_UP_S) / self.speed;
            tracing::warn!(
                slip_s = slip,
                "demo fell behind the wall clock; its clock slips"
            );
            self.origin = Some(origin + Duration::from_secs_f64(slip));
            return self.sim_time_s() + MAX_CATCH_UP_S;
        }
        target
    }

    /// One HPA sync at simulated time `t`: observe every simulated fleet, feed the
    /// pipeline, plan, and let the simulated KEDA/HPA apply the decisions.
    fn sync(&mut self, t: f64) {
        let mut observations = Vec::with_capacity(self.models.len());
        for m in &mut self.models {
            m.sim.advance_to(t);
            let o = m.sim.observe();
            self.fleet.observe(&m.name, t, o.engine.arrivals_per_s);
            // The replicas that served the window, not those still starting.
            let serving: std::collections::BTreeMap<String, u32> = m
                .variants
                .iter()
                .zip(&o.engine.variants)
                .map(|(n, v)| (n.clone(), v.ready))
                .collect();
            let waiting: u64 = o.engine.variants.iter().map(|v| v.waiting).sum();
            self.fleet.observe_waiting(&m.name, Some(waiting as f64));
            self.fleet.observe_latency(
                &m.name,
                o.engine.ttft_p90_ms.map(|x| x / 1e3),
                o.engine.tpot_p90_ms.map(|x| x / 1e3),
                Some(&serving),
            );
            observations.push(o);
        }
        let decisions = self.fleet.tick(t);
        for m in &mut self.models {
            let planned = planned_replicas(&decisions, &m.name);
            for (w, v) in m.wishes.iter_mut().zip(&m.variants) {
                if let Some(r) = planned.get(v) {
                    *w = Wish::replicas(*r);
                }
            }
            m.sim.scale(&m.wishes);
        }
        self.last = self.annotate(decisions, &observations, t);
    }

    /// Adds the simulated fleet's numbers to each decision's details and reason.
    fn annotate(
        &self,
        mut decisions: Vec<ModelDecision>,
        observations: &[LiveObservation],
        t: f64,
    ) -> Vec<ModelDecision> {
        for d in &mut decisions {
            let Some((k, m)) = self
                .models
                .iter()
                .enumerate()
                .find(|(_, m)| m.name == d.model)
            else {
                continue;
            };
            let ModelOutcome::Planned(vs) = &mut d.outcome else {
                continue;
            };
            let o = &observations[k];
            let replicas = m.sim.replicas();
            let nan = f64::NAN;
            for vd in vs.iter_mut() {
                let Some(i) = m.variants.iter().position(|n| *n == vd.variant) else {
                    continue;
                };
                let (ready, starting) = replicas[i];
                let ttft = o.variant_ttft_p90_ms[i];
                let tpot = o.variant_tpot_p90_ms[i];
                vd.details.extend([
                    ("sim_time_s", t),
                    ("sim_demand_curve_rps", m.sim.demand_curve_rps(t)),
                    ("sim_ready_replicas", f64::from(ready)),
                    ("sim_starting_replicas", f64::from(starting)),
                    ("sim_ttft_p90_ms", ttft.unwrap_or(nan)),
                    ("sim_tpot_p90_ms", tpot.unwrap_or(nan)),
                    ("sim_model_ttft_p90_ms", o.engine.ttft_p90_ms.unwrap_or(nan)),
                    ("sim_model_tpot_p90_ms", o.engine.tpot_p90_ms.unwrap_or(nan)),
                    ("sim_attainment", o.attainment.unwrap_or(nan)),
                    (
                        "sim_waiting_requests",
                        (o.engine.variants[i].waiting + o.engine.gateway_waiting) as f64,
                    ),
                ]);
                let ms = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.0} ms"));
                vd.reason.push_str(&format!(
                    "; simulated fleet at {}: {ready} ready, {starting} starting, p90 TTFT {}, TPOT {}",
                    day_clock(t),
                    ms(ttft),
                    ms(tpot)
                ));
            }
        }
        decisions
    }
}

/// `day 2 07:30` for a simulated time in seconds (day 1 starts at 0).
pub fn day_clock(t_s: f64) -> String {
    let day = (t_s / 86_400.0).floor();
    let in_day = t_s - day * 86_400.0;
    format!(
        "day {} {:02}:{:02}",
        day as i64 + 1,
        (in_day / 3600.0).floor() as u32,
        ((in_day % 3600.0) / 60.0).floor() as u32
    )
}

/// Desired replicas per variant of a model's planned decision.
fn planned_replicas(
    decisions: &[ModelDecision],
    model: &str,
) -> std::collections::BTreeMap<String, f64> {
    decisions
        .iter()
        .find(|d| d.model == model)
        .and_then(|d| match &d.outcome {
            ModelOutcome::Planned(vs) => Some(
                vs.iter()
                    .map(|v| (v.variant.clone(), v.desired_replicas))
                    .collect(),
            ),
            ModelOutcome::Unavailable(_) => None,
        })
        .unwrap_or_default()
}

impl Planner for DemoPlanner {
    fn catalog(&self) -> Catalog {
        self.catalog.clone()
    }

    async fn evaluate(&mut self, now: SystemTime) -> Vec<ModelDecision> {
        self.advance_wall_clock(now, Some(EVALUATION_BUDGET))
            .to_vec()
    }
}

/// What `serve` runs: the configured fleet, or the embedded demo.
pub enum ServedPlanner {
    /// `serve --config FILE`.
    Configured(Box<FleetPlanner>),
    /// `serve` with no config.
    Demo(Box<DemoPlanner>),
}

impl Planner for ServedPlanner {
    fn catalog(&self) -> Catalog {
        match self {
            Self::Configured(p) => p.catalog(),
            Self::Demo(p) => p.catalog(),
        }
    }

    async fn evaluate(&mut self, now: SystemTime) -> Vec<ModelDecision> {
        match self {
            Self::Configured(p) => p.evaluate(now).await,
            Self::Demo(p) => p.evaluate(now).await,
        }
    }

    fn note_running(&mut self, model: &str, running: &std::collections::BTreeMap<String, u32>) {
        // The demo's simulated fleet runs its own decisions and reports its ready replicas.
        if let Self::Configured(p) = self {
            p.note_running(model, running);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_model(name: &str) -> ModelConfig {
        Config::demo()
            .models
            .into_iter()
            .find(|m| m.name == name)
            .unwrap()
    }

    fn rule_model(demand: DemandConfig) -> ModelConfig {
        let yaml = "models:\n  - name: m\n    variants:\n      - { name: h100, capacity_rps: 6.0, share: 0.6, max_replicas: 16 }\n      - { name: a100, capacity_rps: 3.0, share: 0.4, min_replicas: 1 }\n    demand: { kind: constant, rps: 1 }\n";
        ModelConfig {
            demand,
            ..Config::from_yaml(yaml, "test").unwrap().models.remove(0)
        }
    }

    #[test]
    fn synthetic_cycle_has_peak_trough_idle_and_bursts() {
        let m = demo_model("llama-3.1-8b-batch");
        let DemandConfig::Synthetic(s) = &m.demand else {
            panic!()
        };
        let day = s.day_length_s;
        let samples: Vec<f64> = (0..6000)
            .map(|i| synthetic_rps(s, i as f64 * day / 600.0))
            .collect();
        let zeros = samples.iter().filter(|v| **v == 0.0).count() as f64 / samples.len() as f64;
        assert!((zeros - s.idle_fraction).abs() < 0.02, "idle share {zeros}");
        let max = samples.iter().cloned().fold(0.0, f64::max);
        assert!(max > s.peak_rps * 1.01, "bursts lift above the peak: {max}");
        assert!(samples.iter().all(|v| v.is_finite() && *v >= 0.0));
    }

    #[test]
    fn capacity_rule_splits_and_clamps() {
        let d = plan_model(&rule_model(DemandConfig::Constant { rps: 30.0 }), 30.0, "");
        let ModelOutcome::Planned(v) = d.outcome else {
            panic!()
        };
        // 30 × 0.6 / 6 = 3; 30 × 0.4 / 3 = 4
        assert!((v[0].desired_replicas - 3.0).abs() < 1e-9, "{v:?}");
        assert!((v[1].desired_replicas - 4.0).abs() < 1e-9, "{v:?}");
        let m = rule_model(DemandConfig::Constant { rps: 0.0 });
        let ModelOutcome::Planned(v) = plan_model(&m, 0.0, "").outcome else {
            panic!()
        };
        assert_eq!(v[1].desired_replicas, 1.0);
        assert!(v[1].reason.contains("min_replicas"), "{}", v[1].reason);
    }

    fn total(demo: &DemoPlanner, model: &str) -> u32 {
        demo.replicas(model)
            .unwrap()
            .iter()
            .map(|(_, r)| r.ready + r.starting)
            .sum()
    }

    fn detail(demo: &DemoPlanner, model: &str, variant: &str, key: &str) -> f64 {
        let d = demo.decisions().iter().find(|d| d.model == model).unwrap();
        let ModelOutcome::Planned(vs) = &d.outcome else {
            panic!("{d:?}")
        };
        vs.iter().find(|v| v.variant == variant).unwrap().details[key]
    }

    #[test]
    fn the_demo_fleet_follows_simulated_demand_up_and_down_with_the_pipeline_in_the_loop() {
        let mut demo = DemoPlanner::try_new(&Config::demo(), DEFAULT_DEMO_SPEED).unwrap();
        let h = 3600.0;
        let at_start = total(&demo, "llama-3.1-8b-instruct");
        let batch_at_start = total(&demo, "llama-3.1-8b-batch");
        assert!(at_start >= 1 && batch_at_start >= 1, "warm at 06:00");
        // Noon: the 8B model's peak; more replicas than at 06:00.
        demo.run_until(12.5 * h);
        let at_peak = total(&demo, "llama-3.1-8b-instruct");
        assert!(
            at_peak > at_start,
            "up with demand: {at_start} -> {at_peak}"
        );
        let ttft = detail(&demo, "llama-3.1-8b-instruct", "h100", "sim_ttft_p90_ms");
        let tpot = detail(&demo, "llama-3.1-8b-instruct", "h100", "sim_tpot_p90_ms");
        assert!(
            ttft > 10.0 && ttft <= 1000.0,
            "simulated TTFT p90 {ttft} ms"
        );
        assert!(tpot > 1.0 && tpot <= 50.0, "simulated TPOT p90 {tpot} ms");
        // The batch model's idle spell (07:48–16:12) ends at zero replicas. Not at once:
        // the forecast's upper quantile stays above 0 until the busy morning's residuals
        // leave the conformal window (docs/simulator.md, "The demo").
        demo.run_until(15.5 * h);
        assert_eq!(total(&demo, "llama-3.1-8b-batch"), 0, "scaled to zero");
        // Evening: down again; the batch model woke up for its night shift.
        demo.run_until(19.5 * h);
        let evening = total(&demo, "llama-3.1-8b-instruct");
        assert!(
            evening < at_peak,
            "down with demand: {at_peak} -> {evening}"
        );
        assert!(total(&demo, "llama-3.1-8b-batch") >= 1, "back from zero");
        let attainment = detail(&demo, "llama-3.1-8b-instruct", "h100", "sim_attainment");
        assert!(attainment > 0.9, "rolling attainment {attainment}");
        let d = demo.decisions();
        let ModelOutcome::Planned(vs) = &d[0].outcome else {
            panic!("{d:?}")
        };
        assert!(
            vs[0].reason.contains("simulated fleet at day 1 19:30"),
            "{}",
            vs[0].reason
        );
        assert!(vs[0].details["demand_upper_rps"] >= vs[0].details["demand_point_rps"]);
    }

    #[test]
    fn the_run_is_a_function_of_the_config_not_of_the_wall_clock() {
        let config = Config::demo();
        let mut a = DemoPlanner::try_new(&config, DEFAULT_DEMO_SPEED).unwrap();
        let mut b = DemoPlanner::try_new(&config, DEFAULT_DEMO_SPEED).unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        // `a` is advanced at uneven wall-clock instants, `b` in one step to the same time.
        for ms in [0, 700, 1_300, 4_000, 10_000] {
            a.advance_wall_clock(t0 + Duration::from_millis(ms), None);
        }
        assert_eq!(a.sim_time_s(), DEMO_START_S + 1440.0, "10 s × 144");
        b.run_until(DEMO_START_S + 1440.0);
        assert_eq!(
            format!("{:?}", a.decisions()),
            format!("{:?}", b.decisions())
        );
        assert_eq!(
            a.replicas("llama-2-70b-chat"),
            b.replicas("llama-2-70b-chat")
        );
        // Far behind (a suspended process): at most an hour per evaluation, then the
        // clock slips instead of racing.
        let before = a.sim_time_s();
        a.advance_wall_clock(
            t0 + Duration::from_secs(36_000),
            Some(Duration::from_secs(600)),
        );
        assert_eq!(a.sim_time_s(), before + MAX_CATCH_UP_S);
        // Out of wall-clock budget (a machine too slow for the speed): nothing simulated,
        // the clock slips, and the next call continues from there.
        let before = a.sim_time_s();
        let later = t0 + Duration::from_secs(36_100);
        a.advance_wall_clock(later, Some(Duration::ZERO));
        assert_eq!(a.sim_time_s(), before, "no time to simulate");
        a.advance_wall_clock(later + Duration::from_millis(500), None);
        assert_eq!(a.sim_time_s(), before + 60.0, "0.5 s × 144 = 72 s: 4 syncs");
        assert!(DemoPlanner::try_new(&config, 0.0).is_err());
    }

    #[test]
    fn a_model_the_demo_cannot_simulate_is_named() {
        let mut config = Config::demo();
        config.models[1].demand = DemandConfig::Constant { rps: 1.0 };
        let e = DemoPlanner::try_new(&config, 1.0).unwrap_err().to_string();
        assert!(
            e.contains("llama-2-70b-chat") && e.contains("synthetic"),
            "{e}"
        );
    }
}
