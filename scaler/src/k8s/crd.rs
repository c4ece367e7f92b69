//! The `SloScalingPolicy` custom resource (`slo-scaler.io/v1alpha1`): one model's scaling
//! policy (the `models[]` entry of the config file) as `spec`, and what the scaler decided
//! as `status`.
//!
//! [`crd_yaml`] is what `slo-scaler crd` prints and what the Helm chart ships in
//! `charts/slo-scaler/crds/` (a test keeps the two equal).

use kube::CustomResource;
use kube::CustomResourceExt;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::{
    DemandConfig, ModelConfig, ObservedDemand, RequestMixConfig, SloConfig, VariantConfig,
};

/// API group of the custom resource.
pub const GROUP: &str = "slo-scaler.io";
/// API version of the custom resource.
pub const VERSION: &str = "v1alpha1";

/// One model's SLO scaling policy.
// Several printer columns share a `type_`: not a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, KubeSchema)]
#[x_kube(
    validation = Rule::new("!has(self.slo) || has(self.requestMix)").message("slo needs requestMix"),
    validation = Rule::new("self.variants.all(v, self.variants.exists_one(w, w.name == v.name))").message("variant names must be unique"),
    validation = Rule::new("!has(self.slo) || self.variants.all(v, has(v.profile))").message("with slo every variant needs a profile"),
    validation = Rule::new("has(self.slo) || self.variants.all(v, has(v.capacityRps))").message("without slo every variant needs capacityRps")
)]
#[kube(
    group = "slo-scaler.io",
    version = "v1alpha1",
    kind = "SloScalingPolicy",
    plural = "sloscalingpolicies",
    singular = "sloscalingpolicy",
    shortname = "ssp",
    category = "slo-scaler",
    namespaced,
    status = "SloScalingPolicyStatus",
    doc = "SLO-driven scaling policy of one LLM model: its latency objective, GPU variants and demand source; status holds the scaler's latest decision.",
    printcolumn(name = "Model", type_ = "string", json_path = ".spec.model"),
    printcolumn(
        name = "Demand",
        type_ = "number",
        json_path = ".status.demandRps",
        description = "observed requests per second"
    ),
    printcolumn(
        name = "Upper",
        type_ = "number",
        json_path = ".status.forecast.upperRps",
        description = "upper edge of the demand forecast band, requests per second"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".status.totalReplicas",
        description = "replicas planned over all variants"
    ),
    printcolumn(
        name = "Cost/h",
        type_ = "number",
        json_path = ".status.costPerHour",
        description = "cost per hour of the plan"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SloScalingPolicySpec {
    /// Model name, exactly as KEDA trigger metadata (`model`) names it.
    #[schemars(length(min = 1, max = 253))]
    pub model: String,
    /// GPU variants serving the model, one KEDA ScaledObject each.
    #[schemars(length(min = 1, max = 16))]
    pub variants: Vec<VariantSpec>,
    /// The latency objective; absent means the capacity rule (`capacityRps` per variant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<SloSpec>,
    /// Mean prompt and output tokens of the model's requests (required with `slo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_mix: Option<RequestMixSpec>,
    /// Higher goes first when GPUs are short.
    #[serde(default)]
    pub priority: i32,
    /// Where the model's demand comes from.
    pub demand: DemandSpec,
    /// Demand forecasting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastSpec>,
    /// Scale to zero when there is no demand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_to_zero: Option<ScaleToZeroSpec>,
}

/// One GPU variant of the model (one Deployment, one ScaledObject).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("!has(self.maxReplicas) || !has(self.minReplicas) || self.minReplicas <= self.maxReplicas").message("minReplicas must not exceed maxReplicas"))]
#[serde(rename_all = "camelCase")]
pub struct VariantSpec {
    /// Variant name, exactly as KEDA trigger metadata (`variant`) names it.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// GPU type (key of the scaler's GPU inventory); default: the profile's GPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_type: Option<String>,
    /// GPUs one replica holds.
    #[serde(default = "one_u32")]
    #[schemars(range(min = 1))]
    pub gpus_per_replica: u32,
    /// Performance profile: `builtin/<name>` or a path in the scaler's profile directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Price of one replica per hour; default: the profile's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub cost_per_hour: Option<f64>,
    /// Requests per second one replica serves (capacity rule only, without `slo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub capacity_rps: Option<f64>,
    /// Weight of this variant in splitting the model's demand.
    #[serde(default = "one_f64")]
    #[schemars(range(min = 0.0))]
    pub share: f64,
    /// Floor on desired replicas.
    #[serde(default)]
    pub min_replicas: u32,
    /// Ceiling on desired replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<u32>,
}

/// The latency objective.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SloSpec {
    /// Bound on time to first token, milliseconds.
    #[schemars(range(min = 1.0))]
    pub ttft_ms: f64,
    /// Bound on time per output token, milliseconds.
    #[schemars(range(min = 0.1))]
    pub tpot_ms: f64,
    /// Percentile at which both bounds apply.
    pub percentile: SloPercentile,
    /// Share of time demand must be covered (picks the forecast quantile).
    #[serde(default = "default_attainment")]
    #[schemars(range(min = 0.5, max = 0.99))]
    pub attainment: f64,
}

/// Percentile of an SLO.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SloPercentile {
    /// Median.
    P50,
    /// 90th percentile.
    P90,
    /// 99th percentile.
    P99,
}

/// Mean request shape.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestMixSpec {
    /// Mean prompt tokens.
    #[schemars(range(min = 1.0))]
    pub prompt_tokens: f64,
    /// Mean output tokens.
    #[schemars(range(min = 1.0))]
    pub output_tokens: f64,
}

/// How demand is known.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, KubeSchema)]
#[x_kube(
    validation = Rule::new("self.kind != 'constant' || has(self.rps)").message("demand.kind constant needs demand.rps"),
    validation = Rule::new("self.kind == 'constant' || has(self.engine)").message("demand.kind prometheus and scrape need demand.engine")
)]
#[serde(rename_all = "camelCase")]
pub struct DemandSpec {
    /// Source kind.
    pub kind: DemandKind,
    /// Requests per second (`constant` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub rps: Option<f64>,
    /// Inference engine (`prometheus` and `scrape`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineKind>,
    /// Value of the engine's model label; default: `spec.model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_name: Option<String>,
    /// Label naming the model; default: the engine's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_label: Option<String>,
    /// Extra PromQL label matchers, e.g. `namespace="llm"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matchers: Option<String>,
    /// Prometheus label telling variants apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant_label: Option<String>,
}

/// Demand source kinds.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DemandKind {
    /// A fixed rate (`rps`).
    Constant,
    /// Queried from the scaler's Prometheus.
    Prometheus,
    /// Scraped from the engines directly.
    Scrape,
}

/// Inference engines with a metrics preset.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// vLLM.
    Vllm,
    /// SGLang.
    Sglang,
    /// Text Generation Inference.
    Tgi,
}

/// Forecast settings.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForecastSpec {
    /// Interval of the demand series the forecasters see, seconds (fleet default if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub interval_seconds: Option<u32>,
}

/// Scale-to-zero settings.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleToZeroSpec {
    /// When false, the model keeps at least one replica (on its first variant, unless a
    /// variant already has `minReplicas` ≥ 1).
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// What the scaler last decided for the model.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SloScalingPolicyStatus {
    /// `metadata.generation` of the spec this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Observed requests per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demand_rps: Option<f64>,
    /// The demand forecast band.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastStatus>,
    /// Plan per variant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<VariantPlanStatus>,
    /// Replicas over all variants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_replicas: Option<u32>,
    /// Cost per hour of the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_hour: Option<f64>,
    /// When the decision was made (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision_time: Option<String>,
    /// `Ready` (a fresh decision exists), `SloFeasible` (the plan meets the SLO).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<PolicyCondition>,
}

/// Demand forecast band.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForecastStatus {
    /// Lower edge, requests per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower_rps: Option<f64>,
    /// Point forecast, requests per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_rps: Option<f64>,
    /// Upper edge (the quantile sized for), requests per second.
    pub upper_rps: f64,
    /// How far ahead, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizon_seconds: Option<f64>,
}

/// The plan for one variant.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VariantPlanStatus {
    /// Variant name.
    pub name: String,
    /// Desired replicas (what `GetMetrics` reports).
    pub desired_replicas: f64,
    /// Predicted TTFT at the SLO percentile, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_ttft_ms: Option<f64>,
    /// Predicted TPOT at the SLO percentile, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_tpot_ms: Option<f64>,
    /// Cost per hour of this variant's replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_hour: Option<f64>,
}

/// A condition, Kubernetes style.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyCondition {
    /// `Ready` or `SloFeasible`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable detail.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
    /// Generation the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

fn one_u32() -> u32 {
    1
}
fn one_f64() -> f64 {
    1.0
}
fn yes() -> bool {
    true
}
fn default_attainment() -> f64 {
    0.95
}

/// Why a policy cannot become a model of the scaler.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum SpecError {
    /// `demand.kind: constant` without `demand.rps`.
    #[error("demand.kind constant needs demand.rps")]
    MissingRps,
    /// `demand.kind: prometheus|scrape` without `demand.engine`.
    #[error("demand.kind {0} needs demand.engine")]
    MissingEngine(&'static str),
    /// Two variants share a name.
    #[error("variant {0:?} is listed twice")]
    DuplicateVariant(String),
    /// `minReplicas` above `maxReplicas`.
    #[error("variant {0:?}: minReplicas is above maxReplicas")]
    MinAboveMax(String),
    /// `slo` without `requestMix`.
    #[error("slo needs requestMix")]
    MissingRequestMix,
    /// Without `slo`, a variant needs a positive `capacityRps`.
    #[error("variant {0:?}: capacityRps > 0 is required without slo (the capacity rule)")]
    MissingCapacity(String),
    /// With `slo`, a variant needs a `profile` (its capacity comes from it).
    #[error("variant {0:?}: profile is required with slo")]
    MissingProfile(String),
}

impl SloScalingPolicySpec {
    /// The equivalent `models[]` entry of the config file.
    pub fn to_model_config(&self) -> Result<ModelConfig, SpecError> {
        let mut seen = std::collections::BTreeSet::new();
        for v in &self.variants {
            if !seen.insert(v.name.as_str()) {
                return Err(SpecError::DuplicateVariant(v.name.clone()));
            }
            if v.max_replicas.is_some_and(|max| v.min_replicas > max) {
                return Err(SpecError::MinAboveMax(v.name.clone()));
            }
            if self.slo.is_some() && v.profile.is_none() {
                return Err(SpecError::MissingProfile(v.name.clone()));
            }
            if self.slo.is_none() && v.capacity_rps.is_none_or(|c| c <= 0.0) {
                return Err(SpecError::MissingCapacity(v.name.clone()));
            }
        }
        if self.slo.is_some() && self.request_mix.is_none() {
            return Err(SpecError::MissingRequestMix);
        }
        let observed = |kind: &'static str| -> Result<ObservedDemand, SpecError> {
            let engine = match self.demand.engine.ok_or(SpecError::MissingEngine(kind))? {
                EngineKind::Vllm => crate::metrics::Engine::Vllm,
                EngineKind::Sglang => crate::metrics::Engine::Sglang,
                EngineKind::Tgi => crate::metrics::Engine::Tgi,
            };
            Ok(ObservedDemand {
                engine,
                served_name: self.demand.served_name.clone(),
                model_label: self.demand.model_label.clone(),
                matchers: self.demand.matchers.clone(),
                variant_label: self.demand.variant_label.clone(),
            })
        };
        let demand = match self.demand.kind {
            DemandKind::Constant => DemandConfig::Constant {
                rps: self.demand.rps.ok_or(SpecError::MissingRps)?,
            },
            DemandKind::Prometheus => DemandConfig::Prometheus(observed("prometheus")?),
            DemandKind::Scrape => DemandConfig::Scrape(observed("scrape")?),
        };
        let keep_one = self
            .scale_to_zero
            .as_ref()
            .is_some_and(|s| !s.enabled && self.variants.iter().all(|v| v.min_replicas == 0));
        let variants = self
            .variants
            .iter()
            .enumerate()
            .map(|(i, v)| VariantConfig {
                name: v.name.clone(),
                capacity_rps: v.capacity_rps.unwrap_or(0.0),
                profile: v.profile.clone(),
                gpu_type: v.gpu_type.clone(),
                gpus_per_replica: v.gpus_per_replica,
                cost_per_hour: v.cost_per_hour,
                share: v.share,
                min_replicas: if keep_one && i == 0 {
                    1.0
                } else {
                    f64::from(v.min_replicas)
                },
                max_replicas: v.max_replicas.map(f64::from),
            })
            .collect();
        Ok(ModelConfig {
            name: self.model.clone(),
            variants,
            slo: self.slo.as_ref().map(|s| SloConfig {
                ttft_ms: s.ttft_ms,
                tpot_ms: s.tpot_ms,
                percentile: match s.percentile {
                    SloPercentile::P50 => forecasting::latency::Percentile::P50,
                    SloPercentile::P90 => forecasting::latency::Percentile::P90,
                    SloPercentile::P99 => forecasting::latency::Percentile::P99,
                },
                attainment: s.attainment,
            }),
            request_mix: self.request_mix.map(|m| RequestMixConfig {
                prompt_tokens: m.prompt_tokens,
                output_tokens: m.output_tokens,
            }),
            priority: self.priority,
            demand,
        })
    }
}

/// The CustomResourceDefinition as YAML: what `slo-scaler crd` prints and the chart ships.
pub fn crd_yaml() -> String {
    let crd = SloScalingPolicy::crd();
    let yaml = serde_saphyr::to_string(&crd).expect("a CRD always serializes");
    format!(
        "# Generated by `slo-scaler crd` from scaler/src/k8s/crd.rs: do not edit by hand.\n---\n{yaml}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SloScalingPolicySpec {
        serde_json::from_value(serde_json::json!({
            "model": "llama-3.1-8b-instruct",
            "variants": [
                {"name": "h100", "profile": "builtin/llama-3.1-8b-h100", "costPerHour": 4.0},
                {"name": "a10g", "gpuType": "a10g", "profile": "builtin/llama-3.1-8b_a100-80gb_tp1_derived", "maxReplicas": 8}
            ],
            "slo": {"ttftMs": 500, "tpotMs": 50, "percentile": "p90"},
            "requestMix": {"promptTokens": 512, "outputTokens": 256},
            "demand": {"kind": "prometheus", "engine": "vllm", "matchers": "namespace=\"llm\""},
            "scaleToZero": {"enabled": false}
        }))
        .expect("valid spec")
    }

    #[test]
    fn spec_defaults_and_conversion_match_the_config_file() {
        let s = spec();
        assert_eq!(s.variants[1].gpus_per_replica, 1);
        assert_eq!(s.variants[1].share, 1.0);
        assert_eq!(s.slo.as_ref().map(|s| s.attainment), Some(0.95));
        let m = s.to_model_config().expect("converts");
        assert_eq!(m.name, "llama-3.1-8b-instruct");
        assert_eq!(m.variants[0].cost_per_hour, Some(4.0));
        // scale-to-zero disabled: the first variant keeps one replica, the others none.
        assert_eq!(m.variants[0].min_replicas, 1.0);
        assert_eq!(m.variants[1].min_replicas, 0.0);
        assert_eq!(m.variants[1].max_replicas, Some(8.0));
        assert!(
            matches!(m.demand, DemandConfig::Prometheus(ref o) if o.matchers.as_deref() == Some("namespace=\"llm\""))
        );
        assert_eq!(
            m.slo.map(|s| s.percentile),
            Some(forecasting::latency::Percentile::P90)
        );
    }

    #[test]
    fn invalid_specs_are_named() {
        let mut s = spec();
        s.demand.engine = None;
        assert_eq!(
            s.to_model_config(),
            Err(SpecError::MissingEngine("prometheus"))
        );
        let mut s = spec();
        s.variants[1].name = "h100".into();
        assert_eq!(
            s.to_model_config(),
            Err(SpecError::DuplicateVariant("h100".into()))
        );
        let mut s = spec();
        s.variants[1].min_replicas = 9;
        assert_eq!(
            s.to_model_config(),
            Err(SpecError::MinAboveMax("a10g".into()))
        );
        let mut s = spec();
        s.request_mix = None;
        assert_eq!(s.to_model_config(), Err(SpecError::MissingRequestMix));
        let mut s = spec();
        s.demand = DemandSpec {
            kind: DemandKind::Constant,
            rps: None,
            engine: None,
            served_name: None,
            model_label: None,
            matchers: None,
            variant_label: None,
        };
        assert_eq!(s.to_model_config(), Err(SpecError::MissingRps));
    }

    #[test]
    fn crd_has_status_subresource_printer_columns_and_structural_schema() {
        let crd = SloScalingPolicy::crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("sloscalingpolicies.slo-scaler.io")
        );
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, VERSION);
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
        let cols: Vec<&str> = v
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            cols,
            [
                "Model", "Demand", "Upper", "Replicas", "Cost/h", "Ready", "Age"
            ]
        );
        let schema = serde_json::to_value(&v.schema).expect("schema json");
        let text = schema.to_string();
        // Structural schemas forbid these; kube's derive must have hoisted them away.
        for forbidden in [
            "\"$ref\"",
            "\"anyOf\"",
            "\"oneOf\"",
            "\"definitions\"",
            "\"$defs\"",
        ] {
            assert!(!text.contains(forbidden), "{forbidden} in the CRD schema");
        }
        let spec = &schema["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(
            spec["required"],
            serde_json::json!(["demand", "model", "variants"])
        );
        assert_eq!(
            spec["properties"]["slo"]["properties"]["percentile"]["enum"],
            serde_json::json!(["p50", "p90", "p99"])
        );
    }

    #[test]
    fn crd_yaml_round_trips() {
        let text = crd_yaml();
        let back: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            serde_saphyr::from_str(&text).expect("parses back");
        assert_eq!(back, SloScalingPolicy::crd());
    }
}
