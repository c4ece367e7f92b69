//! The planner `serve` runs: every configured model, sized by the SLO pipeline when it
//! has an `slo`, by the capacity rule otherwise, from the demand its source reports.
//!
//! Where to start: [`FleetPlanner::try_new`] builds the demand sources
//! ([`crate::metrics::demand::DemandSources`]), loads each SLO variant's profile and
//! computes its capacity under the SLO ([`crate::pipeline`]); [`Planner::evaluate`] reads
//! every model's demand once per tick and plans.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use forecasting::capacity::Slo;
use forecasting::latency::RequestMix;
use forecasting::profile::Profile;

use crate::config::{Config, ModelConfig};
use crate::decision::{Catalog, ModelDecision, ModelInfo, ModelOutcome, Planner};
use crate::demo::plan_model;
use crate::metrics::MetricsError;
use crate::metrics::demand::DemandSources;
use crate::pipeline::{Fleet, ModelInput, ModelPipeline, PipelineError, SloTarget, VariantInput};

/// Profiles shipped with slo-scaler (`docs/profiles/`), usable as `builtin/<name>`.
pub const BUILTIN_PROFILES: &[(&str, &str)] = &[
    (
        "llama-3.1-8b-fp8_h200_tp1",
        include_str!("../../docs/profiles/llama-3.1-8b-fp8_h200_tp1.yaml"),
    ),
    (
        "llama-3.1-8b-fp8_h100-80gb_tp1_derived",
        include_str!("../../docs/profiles/llama-3.1-8b-fp8_h100-80gb_tp1_derived.yaml"),
    ),
    (
        "llama-3.1-8b_a100-80gb_tp1_derived",
        include_str!("../../docs/profiles/llama-3.1-8b_a100-80gb_tp1_derived.yaml"),
    ),
    (
        "llama-3.1-8b_guidellm-vllm_tp1",
        include_str!("../../docs/profiles/llama-3.1-8b_guidellm-vllm_tp1.yaml"),
    ),
    (
        "llama2-70b_a100-80gb_tp4",
        include_str!("../../docs/profiles/llama2-70b_a100-80gb_tp4.yaml"),
    ),
    (
        "llama2-70b_h100-80gb_tp4",
        include_str!("../../docs/profiles/llama2-70b_h100-80gb_tp4.yaml"),
    ),
];

/// Why the planner could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PlannerError {
    /// A metrics client could not be built.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// A profile could not be read or parsed.
    #[error("model {model:?} variant {variant:?}: profile {reference:?}: {message}")]
    Profile {
        /// Model.
        model: String,
        /// Variant.
        variant: String,
        /// As written in the config.
        reference: String,
        /// What went wrong.
        message: String,
    },
    /// A pipeline could not be built (e.g. an SLO no variant can meet).
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// Loads `builtin/<name>` or a file relative to `base_dir`.
pub fn load_profile(reference: &str, base_dir: Option<&Path>) -> Result<Profile, String> {
    let text = if let Some(name) = reference.strip_prefix("builtin/") {
        BUILTIN_PROFILES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.to_string())
            .ok_or_else(|| {
                format!(
                    "no builtin profile {name:?}; builtin: {}",
                    BUILTIN_PROFILES
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?
    } else {
        let path = match base_dir {
            Some(d) => d.join(reference),
            None => PathBuf::from(reference),
        };
        std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
    };
    Profile::from_yaml(&text).map_err(|e| e.to_string())
}

/// Plans every model of a config.
pub struct FleetPlanner {
    catalog: Catalog,
    rule_models: Vec<ModelConfig>,
    fleet: Fleet,
    demand: DemandSources,
    order: Vec<String>,
    /// Replicas running per variant, per model, when the fleet is not run by our decisions
    /// (`--observe-only`); `None` per model: what the pipeline reported last runs.
    running: BTreeMap<String, BTreeMap<String, u32>>,
}

impl FleetPlanner {
    /// Builds demand sources and pipelines; `base_dir` resolves relative profile paths
    /// (the config file's directory).
    pub fn try_new(config: &Config, base_dir: Option<&Path>) -> Result<Self, PlannerError> {
        let mut pipelines = Vec::new();
        let mut rule_models = Vec::new();
        for m in &config.models {
            let (Some(slo), Some(mix)) = (&m.slo, &m.request_mix) else {
                rule_models.push(m.clone());
                continue;
            };
            let mut variants = Vec::new();
            for v in &m.variants {
                let reference = v.profile.clone().unwrap_or_default();
                let mut profile = load_profile(&reference, base_dir).map_err(|message| {
                    PlannerError::Profile {
                        model: m.name.clone(),
                        variant: v.name.clone(),
                        reference: reference.clone(),
                        message,
                    }
                })?;
                if let Some(cost) = v.cost_per_hour {
                    profile.cost_per_hour = cost;
                }
                variants.push(VariantInput {
                    name: v.name.clone(),
                    gpu_type: v.gpu_type.clone().unwrap_or_else(|| profile.gpu.clone()),
                    gpus_per_replica: v.gpus_per_replica,
                    min: v.min_replicas.ceil() as u32,
                    max: v
                        .max_replicas
                        .map(|x| x.floor() as u32)
                        .unwrap_or(u32::MAX / 4),
                    profile,
                });
            }
            let mix = RequestMix::fixed(mix.prompt_tokens, mix.output_tokens).map_err(|e| {
                PlannerError::Profile {
                    model: m.name.clone(),
                    variant: String::new(),
                    reference: "request_mix".into(),
                    message: e.to_string(),
                }
            })?;
            let pipeline = ModelPipeline::new(
                ModelInput {
                    name: m.name.clone(),
                    priority: m.priority,
                    target: SloTarget {
                        slo: Slo {
                            ttft_ms: slo.ttft_ms,
                            tpot_ms: slo.tpot_ms,
                            percentile: slo.percentile,
                        },
                        attainment: slo.attainment,
                    },
                    mix,
                    variants,
                    forecast_interval_s: config.sizing.forecast_interval_s,
                },
                config.sizing.stabilization,
            )?
            .with_burst_sizing(config.metrics.rate_window_s);
            // The tier rule (hot/warm/cold) only where something puts pods to sleep: the
            // warm-pool actuator, configured by `warm_pool` (docs/warm-pool.md). Without
            // it a "warm" replica would just be an extra hot one.
            let pipeline = match &config.warm_pool {
                Some(_) => pipeline.with_tiers(config.sizing.tiers),
                None => pipeline,
            };
            pipelines.push(pipeline);
        }
        Ok(Self {
            catalog: Catalog::new(config.models.iter().map(|m| ModelInfo {
                name: m.name.clone(),
                variants: m.variants.iter().map(|v| v.name.clone()).collect(),
            })),
            rule_models,
            fleet: Fleet::new(pipelines, config.sizing.inventory.clone()),
            demand: DemandSources::from_config(config)?,
            order: config.models.iter().map(|m| m.name.clone()).collect(),
            running: BTreeMap::new(),
        })
    }

    /// The demand sources (for backfill at start).
    pub fn demand_sources(&self) -> &DemandSources {
        &self.demand
    }

    /// Feeds every SLO model's demand history (backfilled by the demand sources) to its
    /// forecaster; call after [`DemandSources::backfill`]. Returns points per model.
    pub fn warm_start(&mut self) -> Vec<(String, usize)> {
        let names: Vec<String> = self
            .fleet
            .models()
            .iter()
            .map(|m| m.name().to_string())
            .collect();
        names
            .into_iter()
            .map(|name| {
                let history = self.demand.history(&name);
                let n = self.fleet.warm_start(&name, &history);
                (name, n)
            })
            .collect()
    }

    /// The SLO pipelines.
    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// The SLO pipelines, taken out (the demo drives them from its simulated fleet).
    pub fn into_fleet(self) -> Fleet {
        self.fleet
    }
}

impl Planner for FleetPlanner {
    fn catalog(&self) -> Catalog {
        self.catalog.clone()
    }

    fn note_running(&mut self, model: &str, running: &BTreeMap<String, u32>) {
        self.running.insert(model.to_string(), running.clone());
    }

    async fn evaluate(&mut self, now: SystemTime) -> Vec<ModelDecision> {
        let t_s = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let readings = self.demand.read(t_s).await;
        let mut out = Vec::with_capacity(self.order.len());
        for m in &self.rule_models {
            out.push(match readings.get(&m.name) {
                Some(Ok(r)) => plan_model(m, r.requests_per_s, &r.detail),
                Some(Err(why)) => ModelDecision {
                    model: m.name.clone(),
                    outcome: ModelOutcome::Unavailable(why.clone()),
                },
                None => ModelDecision {
                    model: m.name.clone(),
                    outcome: ModelOutcome::Unavailable("no demand source".into()),
                },
            });
        }
        let slo_models: Vec<String> = self
            .fleet
            .models()
            .iter()
            .map(|p| p.name().to_string())
            .collect();
        for name in &slo_models {
            match readings.get(name) {
                Some(Ok(r)) => {
                    self.fleet.observe(name, t_s, r.requests_per_s);
                    if let Some(o) = &r.observation {
                        self.fleet.observe_waiting(name, o.waiting);
                        self.fleet.observe_latency(
                            name,
                            o.ttft_p90_s,
                            o.tpot_p90_s,
                            self.running.get(name),
                        );
                    }
                }
                Some(Err(why)) => self.fleet.mark_unavailable(name, why.clone()),
                None => self.fleet.mark_unavailable(name, "no demand source".into()),
            }
        }
        out.extend(self.fleet.tick(t_s));
        // Requests waiting at zero replicas activate the model now (issue 9).
        for d in &mut out {
            let waiting = readings
                .get(&d.model)
                .and_then(|r| r.as_ref().ok())
                .and_then(|r| r.observation.as_ref())
                .and_then(|o| o.waiting);
            crate::warm::activation::activate_on_waiting(d, waiting);
        }
        // Config order, so logs and /models read the same way as the file.
        out.sort_by_key(|d| {
            self.order
                .iter()
                .position(|n| *n == d.model)
                .unwrap_or(usize::MAX)
        });
        out
    }
}
