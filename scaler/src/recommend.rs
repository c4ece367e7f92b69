//! Recommendations: what the scaler would do with an operator's own demand history,
//! before it is handed the fleet.
//!
//! Where to start: [`recommend`] takes a [`Scenario`] (the config, with any `--what-if`
//! changes applied by [`what_if`]), each model's demand history and the replicas running
//! now, and returns a [`Report`]: per model the forecast band for the next hours, the
//! replicas the `serve` pipeline would ask for now (the same [`crate::pipeline::Fleet`],
//! warmed with the same history, ticked once), an hourly schedule sized by the same
//! least-cost planner, predicted latency, and savings against the cheapest single-GPU-type
//! plan and against the replicas running now. [`render`] turns a report into a table,
//! JSON or KEDA `ScaledObject` manifests; [`observe_only`] is `serve --observe-only`.
//!
//! Pure: histories and current replicas come in as numbers (the `recommend` command reads
//! them from Prometheus or a trace file). Numbers are rounded to 3 decimals so the output
//! is stable (snapshot-tested).

pub mod observe_only;
pub mod render;
pub mod what_if;

use std::collections::BTreeMap;
use std::path::Path;

use forecasting::capacity::{Capacity, CapacityError, Slo, capacity_per_replica};
use forecasting::forecast::{Basis, QUANTILE_LEVELS};
use forecasting::latency::{LatencyModel, Percentile, RequestMix};
use serde::Serialize;

use crate::config::{Config, ModelConfig};
use crate::decision::ModelOutcome;
use crate::pipeline::{Fleet, ModelInput, ModelPipeline, SloTarget, VariantInput};
use crate::planner::load_profile;
use crate::sizing::{ModelSpec, Problem, VariantSpec, plan_fleet};

pub use what_if::{Scenario, WhatIf};

/// Demand history of one model: `(seconds, requests/s)`, oldest first, one point per
/// forecast interval (gaps allowed).
pub type History = Vec<(f64, f64)>;

/// Replicas running per variant of one model.
pub type Replicas = BTreeMap<String, u32>;

/// What [`recommend`] needs besides the scenario.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Demand history per model; a model without an entry has no data.
    pub histories: BTreeMap<String, Result<History, String>>,
    /// Replicas running now per model, or why they are unknown (absent: not asked).
    pub current: BTreeMap<String, Result<Replicas, String>>,
    /// The moment the recommendation is for (same clock as the histories).
    pub at_s: f64,
    /// Hours of schedule.
    pub hours: u32,
    /// Where the data came from (printed).
    pub source: String,
    /// `unix` (Prometheus) or `trace` (seconds from the trace's start).
    pub clock: &'static str,
}

/// The whole recommendation.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The moment it is for, seconds on `clock`.
    pub at_s: f64,
    /// `unix` or `trace`.
    pub clock: &'static str,
    /// Hours of schedule.
    pub hours: u32,
    /// Where the data came from.
    pub source: String,
    /// One entry per SLO model of the config, in config order.
    pub models: Vec<ModelReport>,
    /// Σ over models of the recommended cost per hour now.
    pub total_cost_per_hour_now: f64,
    /// Σ over models of the schedule's cost.
    pub total_cost_over_hours: f64,
    /// The same under `--what-if`, with the differences.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub what_if: Option<Box<WhatIfReport>>,
}

/// A what-if: the changes, the recommendation under them, and the differences.
#[derive(Debug, Clone, Serialize)]
pub struct WhatIfReport {
    /// The changes as given (`slo.ttft_ms=500`, ...).
    pub changes: Vec<String>,
    /// Per model, baseline against what-if.
    pub diff: Vec<ModelDiff>,
    /// The full report under the changes.
    pub report: Report,
}

/// One model's difference under a what-if.
#[derive(Debug, Clone, Serialize)]
pub struct ModelDiff {
    /// Model.
    pub model: String,
    /// Replicas now, baseline.
    pub replicas_now_baseline: Replicas,
    /// Replicas now, what-if.
    pub replicas_now_what_if: Replicas,
    /// Cost per hour now, baseline.
    pub cost_per_hour_now_baseline: f64,
    /// Cost per hour now, what-if.
    pub cost_per_hour_now_what_if: f64,
    /// Schedule cost, baseline.
    pub cost_over_hours_baseline: f64,
    /// Schedule cost, what-if.
    pub cost_over_hours_what_if: f64,
    /// What-if minus baseline over the schedule.
    pub delta_cost_over_hours: f64,
    /// Why (or why not, when one side has no recommendation).
    pub reason: String,
}

/// One model's recommendation, or why there is none.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    /// Model name.
    pub model: String,
    /// Why there is no recommendation (then the other fields are empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The SLO sized for.
    pub slo: SloView,
    /// Forecast quantile sized for (from the SLO's attainment).
    pub quantile: f64,
    /// Points of history used.
    pub history_points: usize,
    /// Demand observed last (req/s).
    pub demand_now_rps: Option<f64>,
    /// Forecast band per hour.
    pub forecast: Vec<ForecastHour>,
    /// What `serve` would ask for now.
    pub now: Option<PlanView>,
    /// Replicas per hour.
    pub schedule: Vec<HourPlan>,
    /// Σ of the schedule's hourly cost.
    pub cost_over_hours: f64,
    /// Variants left out because their profile cannot meet the SLO at any load.
    pub excluded_variants: Vec<ExcludedVariant>,
    /// Savings against alternatives.
    pub savings: Savings,
}

/// The SLO as sized for.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SloView {
    /// TTFT bound, ms.
    pub ttft_ms: f64,
    /// TPOT bound, ms.
    pub tpot_ms: f64,
    /// Percentile of both bounds.
    pub percentile: Percentile,
    /// Share of time demand must be covered.
    pub attainment: f64,
}

/// The demand forecast for one hour.
#[derive(Debug, Clone, Serialize)]
pub struct ForecastHour {
    /// Hours after `at` (0 = the hour starting now).
    pub hour: u32,
    /// Start of the hour (seconds on the report's clock).
    pub start_s: f64,
    /// Lowest lower-band value within the hour (the quantile mirroring the sizing one).
    pub lower_rps: f64,
    /// Mean point forecast over the hour.
    pub point_rps: f64,
    /// Highest upper-band value (the sizing quantile) within the hour.
    pub upper_rps: f64,
    /// What the band rests on: `calibrated` residuals, `cold_start` (too few: wide), `no_data`.
    pub basis: &'static str,
}

/// A plan: replicas per variant with cost and predicted latency.
#[derive(Debug, Clone, Serialize)]
pub struct PlanView {
    /// Demand sized for (req/s).
    pub demand_rps: f64,
    /// Replicas per variant.
    pub replicas: Replicas,
    /// Σ replicas × price.
    pub cost_per_hour: f64,
    /// Whether the replicas cover the demand (false: limits or inventory fall short).
    pub feasible: bool,
    /// Worst variant's predicted TTFT at the SLO percentile at `demand_rps`, ms.
    pub predicted_ttft_ms: Option<f64>,
    /// Worst variant's predicted TPOT at the SLO percentile at `demand_rps`, ms.
    pub predicted_tpot_ms: Option<f64>,
    /// Per variant.
    pub variants: Vec<VariantView>,
    /// Why.
    pub reason: String,
}

/// One variant within a plan.
#[derive(Debug, Clone, Serialize)]
pub struct VariantView {
    /// Variant name.
    pub variant: String,
    /// GPU type.
    pub gpu_type: String,
    /// Replicas.
    pub replicas: u32,
    /// Requests/s one replica serves within the SLO.
    pub capacity_per_replica_rps: f64,
    /// Price of one replica per hour.
    pub price_per_hour: f64,
    /// Predicted TTFT at its share of the demand, ms (none without replicas or when saturated).
    pub predicted_ttft_ms: Option<f64>,
    /// Predicted TPOT at its share of the demand, ms.
    pub predicted_tpot_ms: Option<f64>,
    /// The decision's kind (`first_plan`, ...), as `serve` labels it.
    pub action: &'static str,
    /// Why.
    pub reason: String,
}

/// One hour of the schedule.
#[derive(Debug, Clone, Serialize)]
pub struct HourPlan {
    /// Hours after `at`.
    pub hour: u32,
    /// Start of the hour.
    pub start_s: f64,
    /// Demand sized for: the sizing quantile's highest value over the hour and the
    /// following cold-start time (req/s).
    pub demand_rps: f64,
    /// Replicas per variant.
    pub replicas: Replicas,
    /// Cost per hour.
    pub cost_per_hour: f64,
    /// Whether capacity covers the demand.
    pub feasible: bool,
    /// Worst variant's predicted TTFT at the SLO percentile, ms.
    pub predicted_ttft_ms: Option<f64>,
    /// Worst variant's predicted TPOT at the SLO percentile, ms.
    pub predicted_tpot_ms: Option<f64>,
    /// Why (the sizing's reason).
    pub reason: String,
}

/// A variant that cannot meet the SLO even idle.
#[derive(Debug, Clone, Serialize)]
pub struct ExcludedVariant {
    /// Variant.
    pub variant: String,
    /// Best achievable (idle) TTFT at the SLO percentile, ms (none if not computable).
    pub best_ttft_ms: Option<f64>,
    /// Best achievable (idle) TPOT at the SLO percentile, ms.
    pub best_tpot_ms: Option<f64>,
    /// Why.
    pub reason: String,
}

/// Savings against alternatives.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Savings {
    /// Against the cheapest plan using one GPU type only.
    pub single_type: Option<SingleTypeSaving>,
    /// Against the replicas running now, held for the whole schedule.
    pub current: Option<CurrentSaving>,
    /// Why a comparison is missing.
    pub notes: Vec<String>,
}

/// Against the cheapest single-GPU-type schedule.
#[derive(Debug, Clone, Serialize)]
pub struct SingleTypeSaving {
    /// The GPU type of the cheapest single-type schedule.
    pub gpu_type: String,
    /// Its cost per hour now.
    pub cost_per_hour_now: f64,
    /// Its cost over the schedule.
    pub cost_over_hours: f64,
    /// Its cost minus the recommendation's, now.
    pub saving_per_hour_now: f64,
    /// Its cost minus the recommendation's, over the schedule.
    pub saving_over_hours: f64,
    /// Why.
    pub reason: String,
}

/// Against the replicas running now.
#[derive(Debug, Clone, Serialize)]
pub struct CurrentSaving {
    /// Replicas running.
    pub replicas: Replicas,
    /// Their cost per hour.
    pub cost_per_hour: f64,
    /// Their capacity under the SLO (req/s).
    pub capacity_rps: f64,
    /// Whether they cover the demand sized for now.
    pub covers_demand_now: bool,
    /// Their cost minus the recommendation's, now.
    pub saving_per_hour_now: f64,
    /// Held for the schedule, minus the schedule's cost.
    pub saving_over_hours: f64,
    /// Why.
    pub reason: String,
}

/// Rounds to 3 decimals (stable output); non-finite values are kept.
pub(crate) fn r3(x: f64) -> f64 {
    if x.is_finite() {
        let r = (x * 1000.0).round() / 1000.0;
        if r == 0.0 { 0.0 } else { r }
    } else {
        x
    }
}

fn percentile_name(p: Percentile) -> &'static str {
    match p {
        Percentile::P50 => "p50",
        Percentile::P90 => "p90",
        Percentile::P99 => "p99",
    }
}

/// One variant ready for sizing.
#[derive(Debug, Clone)]
struct Variant {
    input: VariantInput,
    capacity: Capacity,
    latency: LatencyModel,
}

/// One SLO model with its feasible variants.
struct Model {
    name: String,
    priority: i32,
    target: SloTarget,
    mix: RequestMix,
    variants: Vec<Variant>,
    excluded: Vec<ExcludedVariant>,
    demand_scale: f64,
}

fn slo_view(m: &ModelConfig) -> Option<SloView> {
    m.slo.as_ref().map(|s| SloView {
        ttft_ms: s.ttft_ms,
        tpot_ms: s.tpot_ms,
        percentile: s.percentile,
        attainment: s.attainment,
    })
}

fn error_report(m: &ModelConfig, error: String) -> ModelReport {
    ModelReport {
        model: m.name.clone(),
        error: Some(error),
        slo: slo_view(m).unwrap_or(SloView {
            ttft_ms: f64::NAN,
            tpot_ms: f64::NAN,
            percentile: Percentile::P90,
            attainment: f64::NAN,
        }),
        quantile: f64::NAN,
        history_points: 0,
        demand_now_rps: None,
        forecast: Vec::new(),
        now: None,
        schedule: Vec::new(),
        cost_over_hours: 0.0,
        excluded_variants: Vec::new(),
        savings: Savings::default(),
    }
}

/// Builds a model's variants under the scenario; variants that cannot meet the SLO at any
/// load are excluded with their best achievable latency.
fn build_model(
    m: &ModelConfig,
    scenario: &Scenario,
    base_dir: Option<&Path>,
) -> Result<Model, String> {
    let (Some(slo), Some(mix)) = (&m.slo, &m.request_mix) else {
        return Err(
            "no `slo` and `request_mix` in the config: recommend sizes SLO models only \
             (this model uses the capacity rule)"
                .into(),
        );
    };
    let mix = RequestMix::fixed(mix.prompt_tokens, mix.output_tokens)
        .map_err(|e| format!("request_mix: {e}"))?;
    let target = SloTarget {
        slo: Slo {
            ttft_ms: slo.ttft_ms,
            tpot_ms: slo.tpot_ms,
            percentile: slo.percentile,
        },
        attainment: slo.attainment,
    };
    let mut variants = Vec::new();
    let mut excluded = Vec::new();
    for v in &m.variants {
        let reference = v.profile.clone().unwrap_or_default();
        let mut profile = load_profile(&reference, base_dir)
            .map_err(|e| format!("variant {:?}: profile {reference:?}: {e}", v.name))?;
        if let Some(cost) = v.cost_per_hour {
            profile.cost_per_hour = cost;
        }
        let gpu_type = v.gpu_type.clone().unwrap_or_else(|| profile.gpu.clone());
        if let Some(price) = scenario.price_for(&m.name, &v.name, &gpu_type) {
            profile.cost_per_hour = price;
        }
        if let Some(cold) = scenario.cold_start_for(&m.name, &v.name) {
            profile.lifecycle.cold_start_s = cold;
        }
        let latency =
            LatencyModel::new(&profile, &mix).map_err(|e| format!("variant {:?}: {e}", v.name))?;
        match capacity_per_replica(&profile, &mix, &target.slo) {
            Ok(capacity) => variants.push(Variant {
                input: VariantInput {
                    name: v.name.clone(),
                    gpu_type,
                    gpus_per_replica: v.gpus_per_replica,
                    min: v.min_replicas.ceil() as u32,
                    max: v
                        .max_replicas
                        .map(|x| x.floor() as u32)
                        .unwrap_or(u32::MAX / 4),
                    profile,
                },
                capacity,
                latency,
            }),
            Err(CapacityError::Infeasible {
                percentile,
                idle_ttft_ms,
                idle_tpot_ms,
                slo_ttft_ms,
                slo_tpot_ms,
            }) => {
                let p = percentile_name(percentile);
                excluded.push(ExcludedVariant {
                    variant: v.name.clone(),
                    best_ttft_ms: Some(r3(idle_ttft_ms)),
                    best_tpot_ms: Some(r3(idle_tpot_ms)),
                    reason: format!(
                        "cannot meet the SLO at any load: even idle, {p} TTFT is {idle_ttft_ms:.1} ms \
                         (SLO {slo_ttft_ms} ms) and {p} TPOT {idle_tpot_ms:.2} ms (SLO {slo_tpot_ms} ms)"
                    ),
                });
            }
            Err(e) => return Err(format!("variant {:?}: {e}", v.name)),
        }
    }
    if variants.is_empty() {
        let best = |f: fn(&ExcludedVariant) -> Option<f64>| {
            excluded
                .iter()
                .filter_map(|x| f(x).map(|v| (v, x.variant.clone())))
                .min_by(|a, b| a.0.total_cmp(&b.0))
        };
        let p = percentile_name(target.slo.percentile);
        let (ttft, tv) = best(|x| x.best_ttft_ms).unwrap_or((f64::NAN, String::new()));
        let (tpot, pv) = best(|x| x.best_tpot_ms).unwrap_or((f64::NAN, String::new()));
        return Err(format!(
            "no variant can meet the SLO at any load: the best achievable {p} TTFT is {ttft:.1} ms \
             ({tv}, SLO {} ms) and {p} TPOT {tpot:.2} ms ({pv}, SLO {} ms); relax the SLO to at \
             least these or add a faster GPU variant",
            target.slo.ttft_ms, target.slo.tpot_ms
        ));
    }
    Ok(Model {
        name: m.name.clone(),
        priority: m.priority,
        target,
        mix,
        variants,
        excluded,
        demand_scale: scenario.demand_scale_for(&m.name),
    })
}

/// Predicted (TTFT, TPOT) in ms at the SLO percentile; `None` without replicas or saturated.
type Latency = (Option<f64>, Option<f64>);

/// Predicted latency of a plan at `demand_rps`, spread over variants in proportion to
/// capacity (as least-loaded routing does): per variant, and the worst of them.
fn predict(
    variants: &[Variant],
    replicas: &Replicas,
    demand_rps: f64,
    p: Percentile,
) -> (Vec<Latency>, Option<f64>, Option<f64>) {
    let total_cap: f64 = variants
        .iter()
        .map(|v| {
            f64::from(replicas.get(&v.input.name).copied().unwrap_or(0)) * v.capacity.rate_per_s
        })
        .sum();
    let mut per = Vec::with_capacity(variants.len());
    let (mut worst_ttft, mut worst_tpot) = (None::<f64>, None::<f64>);
    for v in variants {
        let n = replicas.get(&v.input.name).copied().unwrap_or(0);
        if n == 0 || total_cap <= 0.0 {
            per.push((None, None));
            continue;
        }
        let share = f64::from(n) * v.capacity.rate_per_s / total_cap;
        match v.latency.predict(demand_rps * share, n) {
            Ok(pr) if !pr.saturated => {
                let (t, o) = (r3(pr.ttft_ms.at(p)), r3(pr.tpot_ms.at(p)));
                worst_ttft = Some(worst_ttft.map_or(t, |w| w.max(t)));
                worst_tpot = Some(worst_tpot.map_or(o, |w| w.max(o)));
                per.push((Some(t), Some(o)));
            }
            _ => per.push((None, None)),
        }
    }
    (per, worst_ttft, worst_tpot)
}

fn cost(variants: &[Variant], replicas: &Replicas) -> f64 {
    variants
        .iter()
        .map(|v| {
            f64::from(replicas.get(&v.input.name).copied().unwrap_or(0))
                * v.input.profile.cost_per_hour
        })
        .sum()
}

fn spec(m: &Model, demand: f64, only_gpu: Option<&str>, current: &Replicas) -> ModelSpec {
    ModelSpec {
        name: m.name.clone(),
        demand,
        priority: m.priority,
        variants: m
            .variants
            .iter()
            .filter(|v| only_gpu.is_none_or(|g| v.input.gpu_type == g))
            .map(|v| VariantSpec {
                name: v.input.name.clone(),
                gpu_type: v.input.gpu_type.clone(),
                gpus_per_replica: v.input.gpus_per_replica,
                capacity_per_replica: v.capacity.rate_per_s,
                cost_per_hour: v.input.profile.cost_per_hour,
                min: v.input.min,
                max: v.input.max,
                current: current.get(&v.input.name).copied().unwrap_or(0),
            })
            .collect(),
    }
}

fn basis_name(b: Basis) -> &'static str {
    match b {
        Basis::NoData => "no_data",
        Basis::ColdStart { .. } => "cold_start",
        Basis::Calibrated { .. } => "calibrated",
    }
}

/// The lower band level mirroring the sizing quantile (0.95 → 0.05).
fn lower_level(q: f64) -> f64 {
    QUANTILE_LEVELS
        .iter()
        .copied()
        .rev()
        .find(|l| *l <= 1.0 - q + 1e-9)
        .unwrap_or(QUANTILE_LEVELS[0])
}

/// Per model, what the forecaster says for each hour: the band and the demand to size for.
struct HourDemand {
    band: ForecastHour,
    sized_rps: f64,
}

fn hourly_demand(p: &ModelPipeline, at_s: f64, hours: u32) -> Vec<HourDemand> {
    let f = p.forecaster();
    let interval = f.config().interval_s;
    let per_hour = ((3600.0 / interval).round() as usize).max(1);
    let lead = ((p.horizon_s() / interval).ceil() as usize).max(1);
    let q = p.quantile_level();
    let lo = lower_level(q);
    let now_rps = p.last_observed().map(|(_, r)| r).unwrap_or(0.0);
    (0..hours)
        .map(|h| {
            // The pipeline keeps the interval ending at `at` open (not yet fed to the
            // forecaster): step 1 is that interval, step 2 the first one after `at`.
            let first = h as usize * per_hour + 2;
            let (mut lower, mut point_sum, mut upper) = (f64::INFINITY, 0.0, 0.0f64);
            let mut basis = Basis::Calibrated { residuals: 0 };
            for k in first..first + per_hour {
                let fc = f.forecast_steps(k);
                lower = lower.min(fc.quantile(lo).unwrap_or(f64::NAN));
                point_sum += fc.mean;
                upper = upper.max(fc.quantile(q).unwrap_or(f64::INFINITY));
                if !matches!(fc.basis, Basis::Calibrated { .. }) {
                    basis = fc.basis;
                }
            }
            // Replicas for this hour must also be up when the next hour starts: they are
            // asked for a cold start ahead.
            let sized = (first + per_hour..first + per_hour + lead)
                .map(|k| f.forecast_steps(k).quantile(q).unwrap_or(f64::INFINITY))
                .fold(upper, f64::max);
            let sized = if h == 0 { sized.max(now_rps) } else { sized };
            HourDemand {
                band: ForecastHour {
                    hour: h,
                    start_s: r3(at_s + f64::from(h) * 3600.0),
                    lower_rps: r3(lower),
                    point_rps: r3(point_sum / per_hour as f64),
                    upper_rps: r3(upper),
                    basis: basis_name(basis),
                },
                sized_rps: sized,
            }
        })
        .collect()
}

/// The recommendation under one scenario.
pub fn recommend(scenario: &Scenario, base_dir: Option<&Path>, inputs: &Inputs) -> Report {
    let config: &Config = &scenario.config;
    let mut reports: Vec<ModelReport> = Vec::new();
    let mut models: Vec<Model> = Vec::new();
    for m in &config.models {
        let built = build_model(m, scenario, base_dir).and_then(|model| {
            match inputs.histories.get(&m.name) {
                None => Err("no demand history was read for this model".to_string()),
                Some(Err(e)) => Err(e.clone()),
                Some(Ok(h)) if h.is_empty() => Err("the demand history is empty".to_string()),
                Some(Ok(_)) => Ok(model),
            }
        });
        match built {
            Ok(model) => {
                let mut r = error_report(m, String::new());
                r.error = None;
                r.excluded_variants = model.excluded.clone();
                reports.push(r);
                models.push(model);
            }
            Err(e) => reports.push(error_report(m, e)),
        }
    }

    // "Now": the serve pipeline itself, warmed with the history and ticked once at `at`.
    let mut pipelines = Vec::new();
    let mut usable: Vec<usize> = Vec::new();
    for (i, m) in models.iter().enumerate() {
        let pipeline = ModelPipeline::new(
            ModelInput {
                name: m.name.clone(),
                priority: m.priority,
                target: m.target,
                mix: m.mix.clone(),
                variants: m.variants.iter().map(|v| v.input.clone()).collect(),
                forecast_interval_s: config.sizing.forecast_interval_s,
            },
            config.sizing.stabilization,
        );
        match pipeline {
            Ok(p) => {
                pipelines.push(p);
                usable.push(i);
            }
            Err(e) => {
                if let Some(r) = reports.iter_mut().find(|r| r.model == m.name) {
                    r.error = Some(e.to_string());
                }
            }
        }
    }
    let models: Vec<Model> = models
        .into_iter()
        .enumerate()
        .filter(|(i, _)| usable.contains(i))
        .map(|(_, m)| m)
        .collect();
    let mut fleet = Fleet::new(pipelines, config.sizing.inventory.clone());
    let mut points = BTreeMap::new();
    for m in &models {
        let Some(Ok(h)) = inputs.histories.get(&m.name) else {
            continue;
        };
        let scaled: Vec<(f64, f64)> = h
            .iter()
            .filter(|(t, _)| *t <= inputs.at_s)
            .map(|&(t, r)| (t, r * m.demand_scale))
            .collect();
        points.insert(m.name.clone(), fleet.warm_start(&m.name, &scaled));
    }
    let decisions = fleet.tick(inputs.at_s);

    // The schedule: every hour planned jointly (GPUs are shared), as `serve` would.
    let hourly: Vec<Vec<HourDemand>> = fleet
        .models()
        .iter()
        .map(|p| hourly_demand(p, inputs.at_s, inputs.hours))
        .collect();
    let mut schedules: Vec<Vec<HourPlan>> = vec![Vec::new(); models.len()];
    let mut now_replicas: Vec<Replicas> = vec![Replicas::new(); models.len()];
    for (i, d) in decisions.iter().enumerate() {
        if let ModelOutcome::Planned(vs) = &d.outcome {
            now_replicas[i] = vs
                .iter()
                .map(|v| (v.variant.clone(), v.desired_replicas as u32))
                .collect();
        }
    }
    // `h` indexes every model's list of hours, not one list.
    #[allow(clippy::needless_range_loop)]
    for h in 0..inputs.hours as usize {
        let problem = Problem {
            models: models
                .iter()
                .enumerate()
                .map(|(i, m)| spec(m, hourly[i][h].sized_rps, None, &now_replicas[i]))
                .collect(),
            inventory: config.sizing.inventory.clone(),
        };
        let planned = plan_fleet(&problem);
        for (i, m) in models.iter().enumerate() {
            let sized = hourly[i][h].sized_rps;
            let plan = match &planned {
                Ok(p) => p.models[i].clone(),
                Err(e) => crate::sizing::ModelPlan {
                    name: m.name.clone(),
                    feasible: false,
                    replicas: BTreeMap::new(),
                    cost_per_hour: 0.0,
                    capacity: 0.0,
                    reason: format!("sizing failed: {e}"),
                },
            };
            let (_, ttft, tpot) =
                predict(&m.variants, &plan.replicas, sized, m.target.slo.percentile);
            schedules[i].push(HourPlan {
                hour: h as u32,
                start_s: hourly[i][h].band.start_s,
                demand_rps: r3(sized),
                replicas: plan.replicas.clone(),
                cost_per_hour: r3(plan.cost_per_hour),
                feasible: plan.feasible,
                predicted_ttft_ms: ttft,
                predicted_tpot_ms: tpot,
                reason: plan.reason.clone(),
            });
        }
    }

    for (i, m) in models.iter().enumerate() {
        let report = reports
            .iter_mut()
            .find(|r| r.model == m.name)
            .expect("every built model has a report");
        let pipeline = &fleet.models()[i];
        report.quantile = pipeline.quantile_level();
        report.history_points = points.get(&m.name).copied().unwrap_or(0);
        report.demand_now_rps = pipeline.last_observed().map(|(_, r)| r3(r));
        report.forecast = hourly[i].iter().map(|h| h.band.clone()).collect();
        report.schedule = std::mem::take(&mut schedules[i]);
        report.cost_over_hours = r3(report.schedule.iter().map(|h| h.cost_per_hour).sum());
        match &decisions[i].outcome {
            ModelOutcome::Unavailable(why) => {
                report.error = Some(format!("no decision now: {why}"));
                continue;
            }
            ModelOutcome::Planned(vs) => {
                let replicas = now_replicas[i].clone();
                let demand = vs
                    .first()
                    .and_then(|v| v.details.get("demand_upper_rps").copied())
                    .unwrap_or(f64::NAN);
                let feasible = vs
                    .first()
                    .and_then(|v| v.details.get("plan_feasible").copied())
                    .is_none_or(|f| f > 0.5);
                let (per, ttft, tpot) =
                    predict(&m.variants, &replicas, demand, m.target.slo.percentile);
                let cost_now = cost(&m.variants, &replicas);
                report.now = Some(PlanView {
                    demand_rps: r3(demand),
                    cost_per_hour: r3(cost_now),
                    feasible,
                    predicted_ttft_ms: ttft,
                    predicted_tpot_ms: tpot,
                    variants: m
                        .variants
                        .iter()
                        .zip(per)
                        .map(|(v, (t, o))| {
                            let d = vs.iter().find(|d| d.variant == v.input.name);
                            VariantView {
                                variant: v.input.name.clone(),
                                gpu_type: v.input.gpu_type.clone(),
                                replicas: replicas.get(&v.input.name).copied().unwrap_or(0),
                                capacity_per_replica_rps: r3(v.capacity.rate_per_s),
                                price_per_hour: r3(v.input.profile.cost_per_hour),
                                predicted_ttft_ms: t,
                                predicted_tpot_ms: o,
                                action: d.map(|d| d.action).unwrap_or("unknown"),
                                reason: d.map(|d| d.reason.clone()).unwrap_or_default(),
                            }
                        })
                        .collect(),
                    reason: format!(
                        "q{:.0} of the demand forecast over the next {:.0} s (at least the {:.3} req/s observed last): {:.3} req/s",
                        report.quantile * 100.0,
                        pipeline.horizon_s(),
                        report.demand_now_rps.unwrap_or(f64::NAN),
                        demand
                    ),
                    replicas,
                });
                report.savings = savings(m, report, &hourly[i], inputs, config);
            }
        }
    }
    let ok = reports.iter().filter(|r| r.error.is_none());
    let total_now = ok
        .clone()
        .filter_map(|r| r.now.as_ref().map(|n| n.cost_per_hour))
        .sum();
    let total_hours = ok.map(|r| r.cost_over_hours).sum();
    Report {
        at_s: r3(inputs.at_s),
        clock: inputs.clock,
        hours: inputs.hours,
        source: inputs.source.clone(),
        models: reports,
        total_cost_per_hour_now: r3(total_now),
        total_cost_over_hours: r3(total_hours),
        what_if: None,
    }
}

fn savings(
    m: &Model,
    report: &ModelReport,
    hourly: &[HourDemand],
    inputs: &Inputs,
    config: &Config,
) -> Savings {
    let mut out = Savings::default();
    let now = report.now.as_ref().expect("called with a plan now");
    let hours = f64::from(inputs.hours);
    // Cheapest single GPU type over the whole schedule (a deployment picks one type; it
    // does not switch hour by hour).
    let mut types: Vec<&str> = m
        .variants
        .iter()
        .map(|v| v.input.gpu_type.as_str())
        .collect();
    types.sort_unstable();
    types.dedup();
    if types.len() < 2 {
        out.notes.push(format!(
            "single GPU type: every feasible variant runs on {}, nothing to compare",
            types.first().copied().unwrap_or("-")
        ));
    } else {
        let mut best: Option<SingleTypeSaving> = None;
        let empty = Replicas::new();
        for t in &types {
            let solve = |demand: f64| {
                plan_fleet(&Problem {
                    models: vec![spec(m, demand, Some(t), &empty)],
                    inventory: config.sizing.inventory.clone(),
                })
                .ok()
                .map(|p| p.models[0].clone())
                .filter(|p| p.feasible)
            };
            let Some(now_plan) = solve(now.demand_rps) else {
                continue;
            };
            let mut total = 0.0;
            let mut feasible = true;
            for h in hourly {
                match solve(h.sized_rps) {
                    Some(p) => total += p.cost_per_hour,
                    None => {
                        feasible = false;
                        break;
                    }
                }
            }
            if !feasible {
                continue;
            }
            if best.as_ref().is_none_or(|b| total < b.cost_over_hours) {
                best = Some(SingleTypeSaving {
                    gpu_type: t.to_string(),
                    cost_per_hour_now: r3(now_plan.cost_per_hour),
                    cost_over_hours: r3(total),
                    saving_per_hour_now: r3(now_plan.cost_per_hour - now.cost_per_hour),
                    saving_over_hours: r3(total - report.cost_over_hours),
                    reason: format!(
                        "the cheapest schedule on {t} alone costs {total:.2} over {hours:.0} h \
                         ({:.2}/h now) against {:.2} mixing GPU types",
                        now_plan.cost_per_hour, report.cost_over_hours
                    ),
                });
            }
        }
        match best {
            Some(b) => out.single_type = Some(b),
            None => out
                .notes
                .push("no single GPU type covers the demand on its own within its limits".into()),
        }
    }
    match inputs.current.get(&m.name) {
        Some(Ok(current)) => {
            let cost_now = cost(&m.variants, current);
            let capacity: f64 = m
                .variants
                .iter()
                .map(|v| {
                    f64::from(current.get(&v.input.name).copied().unwrap_or(0))
                        * v.capacity.rate_per_s
                })
                .sum();
            let covers = capacity + 1e-9 >= now.demand_rps;
            let unknown: Vec<&String> = current
                .keys()
                .filter(|k| !m.variants.iter().any(|v| &v.input.name == *k))
                .collect();
            let mut reason = format!(
                "{} running cost {cost_now:.2}/h and serve {capacity:.2} req/s within the SLO: \
                 they {} the {:.2} req/s sized for now",
                current
                    .iter()
                    .map(|(v, n)| format!("{v}={n}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                if covers { "cover" } else { "fall short of" },
                now.demand_rps
            );
            if !unknown.is_empty() {
                reason.push_str(&format!(
                    "; not priced (not a feasible variant of the model): {unknown:?}"
                ));
            }
            out.current = Some(CurrentSaving {
                replicas: current.clone(),
                cost_per_hour: r3(cost_now),
                capacity_rps: r3(capacity),
                covers_demand_now: covers,
                saving_per_hour_now: r3(cost_now - now.cost_per_hour),
                saving_over_hours: r3(cost_now * hours - report.cost_over_hours),
                reason,
            });
        }
        Some(Err(why)) => out.notes.push(format!(
            "current replicas unknown ({why}): pass --current VARIANT=N to compare"
        )),
        None => out.notes.push(
            "current replicas unknown: pass --current VARIANT=N, or use --prometheus (engines \
             counted from their metrics)"
                .into(),
        ),
    }
    out
}

/// Adds the what-if run and the differences to `baseline`.
pub fn with_what_if(mut baseline: Report, changes: Vec<String>, what_if: Report) -> Report {
    let diff = baseline
        .models
        .iter()
        .map(|b| {
            let w = what_if.models.iter().find(|w| w.model == b.model);
            let (bn, wn) = (b.now.as_ref(), w.and_then(|w| w.now.as_ref()));
            let reason = match (bn, wn, w) {
                (Some(_), Some(_), Some(w)) => {
                    let d = w.cost_over_hours - b.cost_over_hours;
                    format!(
                        "{} {:.2} over {} h ({:+.1} %)",
                        if d < 0.0 {
                            "saves"
                        } else if d > 0.0 {
                            "costs"
                        } else {
                            "changes nothing:"
                        },
                        d.abs(),
                        baseline.hours,
                        if b.cost_over_hours > 0.0 {
                            100.0 * d / b.cost_over_hours
                        } else {
                            0.0
                        }
                    )
                }
                (None, _, _) => format!(
                    "no baseline recommendation: {}",
                    b.error.as_deref().unwrap_or("unknown")
                ),
                (_, _, w) => format!(
                    "no recommendation under the what-if: {}",
                    w.and_then(|w| w.error.as_deref()).unwrap_or("unknown")
                ),
            };
            ModelDiff {
                model: b.model.clone(),
                replicas_now_baseline: bn.map(|n| n.replicas.clone()).unwrap_or_default(),
                replicas_now_what_if: wn.map(|n| n.replicas.clone()).unwrap_or_default(),
                cost_per_hour_now_baseline: bn.map(|n| n.cost_per_hour).unwrap_or(f64::NAN),
                cost_per_hour_now_what_if: wn.map(|n| n.cost_per_hour).unwrap_or(f64::NAN),
                cost_over_hours_baseline: b.cost_over_hours,
                cost_over_hours_what_if: w.map(|w| w.cost_over_hours).unwrap_or(f64::NAN),
                delta_cost_over_hours: r3(
                    w.map(|w| w.cost_over_hours).unwrap_or(f64::NAN) - b.cost_over_hours
                ),
                reason,
            }
        })
        .collect();
    baseline.what_if = Some(Box::new(WhatIfReport {
        changes,
        diff,
        report: what_if,
    }));
    baseline
}
