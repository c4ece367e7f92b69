//! The configuration file: one typed schema, validated, unknown fields rejected.
//!
//! Defaults, in one place (each also applies when the section is absent):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `server.grpc_addr` | `0.0.0.0:9090` | KEDA external scaler (gRPC) |
//! | `server.http_addr` | `0.0.0.0:8080` | `/models`, `/metrics`, `/healthz`, `/readyz` |
//! | `server.tls` | absent = plaintext | `cert_file`, `key_file` (PEM); `client_ca_file` turns on mTLS |
//! | `evaluation.interval_s` | `5` | time between evaluations of every model |
//! | `evaluation.timeout_s` | `2` | bound on one evaluation (backend calls included) |
//! | `evaluation.stale_after_s` | `120` | a decision older than this is reported `UNAVAILABLE` |
//! | `models[].slo` | absent = capacity rule | `{ttft_ms, tpot_ms, percentile: p50\|p90\|p99, attainment}`: size by the SLO pipeline |
//! | `models[].slo.attainment` | `0.95` | share of time demand must be covered; picks the forecast quantile |
//! | `models[].priority` | `0` | higher goes first when GPUs are short |
//! | `models[].variants[].gpus_per_replica` | `1` | GPUs one replica holds |
//! | `models[].variants[].cost_per_hour` | the profile's `cost_per_hour` | price of one replica per hour (an input: say where it comes from) |
//! | `models[].variants[].gpu_type` | the profile's `gpu` | key of `sizing.inventory` |
//! | `sizing.inventory` | unlimited | free GPUs per GPU type, shared by all models |
//! | `sizing.forecast_interval_s` | `60` | interval of the demand series the forecasters see |
//! | `sizing.stabilization.scale_down_window_s` | `300` | plans within this window bound a scale-down |
//! | `sizing.stabilization.hpa_tolerance` | `0.1` | changes the HPA would ignore are never proposed |
//! | `sizing.tiers.warm_pool` | `true` | keep sleeping replicas (warm tier); false = plain scale-to-zero |
//! | `sizing.tiers.warm_cost_fraction` | `1.0` | a warm replica's cost as a fraction of a hot one's (a sleeping pod still holds its GPU) |
//! | `sizing.tiers.cold_wait_cost_per_request` | `2.5` (a person's 270 s at ≈ $35/h; `docs/scale-to-zero.md`) | cost of one request waiting on a cold start (currency of `cost_per_hour`) |
//! | `sizing.tiers.max_warm` | `0` | most warm replicas beyond the plan, per model |
//! | `sizing.tiers.min_ttl_s`, `max_ttl_s` | `0`, `86400` | bounds on the idle TTL before warm goes cold |
//! | `sizing.tiers.return_prior_days` | `0` | weight (days) of the base-rate prior on the learnt return probability; 0 = bounded support |
//! | `models[].variants[].share` | `1` | weight in splitting the model's demand across its variants |
//! | `models[].variants[].min_replicas` | `0` | floor on the desired replicas |
//! | `models[].variants[].max_replicas` | none | ceiling on the desired replicas |
//! | `models[].demand.served_name` | the model's `name` | value of the engine's model label (`prometheus`, `scrape` kinds) |
//! | `models[].demand.model_label` | the engine preset's (`model_name` for vLLM/SGLang, none for TGI) | label naming the model |
//! | `models[].demand.matchers` | none | extra PromQL label matchers, e.g. `job="vllm"` |
//! | `models[].demand.variant_label` | none | Prometheus label telling variants apart (reported per variant) |
//! | `metrics.stale_after_s` | `30` | metrics data older than this is stale: the model is unavailable |
//! | `metrics.rate_window_s` | `60` | window of rates and latency quantiles |
//! | `metrics.prometheus.url` | required with `kind: prometheus` | base URL, e.g. `http://prometheus:9090` |
//! | `metrics.prometheus.timeout_s` | `1` | per request (connect included) |
//! | `metrics.prometheus.retries` | `2` | retries of connection errors, timeouts, 429 and 5xx (keep `timeout_s × (retries + 1)` plus back-off under `evaluation.timeout_s`, or a hung Prometheus times the whole evaluation out) |
//! | `metrics.prometheus.backoff_s` | `0.1` | first retry delay; doubles, with ±50 % jitter |
//! | `metrics.prometheus.bearer_token_file` | none | `Authorization: Bearer <file content>` |
//! | `metrics.prometheus.basic_auth` | none | `{username, password_file}` |
//! | `metrics.prometheus.ca_file` | system roots | PEM CA bundle trusted for `https` (only these roots) |
//! | `metrics.prometheus.history_days` | `0` | demand history backfilled at start (range queries) |
//! | `metrics.prometheus.history_step_s` | `60` | step of the backfilled history |
//! | `metrics.scrape.endpoints` | required with `kind: scrape` | `[{url, model, variant}]`, one per engine replica |
//! | `metrics.scrape.timeout_s` | `1` | per scrape |
//! | `metrics.scrape.history_len` | `600` | scrapes kept per endpoint (memory bound) |
//!
//! Command-line flags (and their `SLO_SCALER_*` environment variables) override the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listening addresses and TLS.
    #[serde(default)]
    pub server: ServerConfig,
    /// The evaluation loop.
    #[serde(default)]
    pub evaluation: EvaluationConfig,
    /// Where observed demand comes from (Prometheus, direct scrapes).
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The SLO pipeline's fleet-wide settings (inventory, forecasting, stabilisation).
    #[serde(default)]
    pub sizing: SizingConfig,
    /// The models to scale.
    pub models: Vec<ModelConfig>,
    /// Warm pools: sleep/wake engines and KV-aware scale-down (issue 9); absent = off.
    #[serde(default)]
    pub warm_pool: Option<crate::warm::settings::WarmPoolConfig>,
}

/// Metrics sources shared by the models whose demand is observed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Data older than this is stale, seconds.
    pub stale_after_s: f64,
    /// Window of rates and quantiles, seconds.
    pub rate_window_s: f64,
    /// The Prometheus to query.
    pub prometheus: Option<PrometheusConfig>,
    /// Engine endpoints to scrape directly.
    pub scrape: Option<ScrapeConfig>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            stale_after_s: 30.0,
            rate_window_s: 60.0,
            prometheus: None,
            scrape: None,
        }
    }
}

/// Connection to a Prometheus HTTP API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Base URL.
    pub url: String,
    /// Per-request timeout, seconds.
    #[serde(default = "default_one")]
    pub timeout_s: f64,
    /// Retries after the first attempt.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// First retry delay, seconds.
    #[serde(default = "default_backoff_s")]
    pub backoff_s: f64,
    /// File holding a bearer token.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// Basic auth.
    #[serde(default)]
    pub basic_auth: Option<BasicAuthConfig>,
    /// PEM CA bundle for https.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Days of demand history loaded at start.
    #[serde(default)]
    pub history_days: f64,
    /// Step of that history, seconds.
    #[serde(default = "default_history_step_s")]
    pub history_step_s: f64,
}

/// HTTP basic auth; the password is read from a file (a mounted Secret).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    /// User name.
    pub username: String,
    /// File holding the password.
    pub password_file: PathBuf,
}

/// Direct scraping of engine `/metrics` endpoints.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// One entry per engine replica.
    pub endpoints: Vec<ScrapeEndpointConfig>,
    /// Per-scrape timeout, seconds.
    #[serde(default = "default_one")]
    pub timeout_s: f64,
    /// Scrapes kept per endpoint.
    #[serde(default = "default_history_len")]
    pub history_len: usize,
}

/// One engine replica.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeEndpointConfig {
    /// URL of its metrics (`http://host:port/metrics`).
    pub url: String,
    /// The scaler model it serves (one of `models[].name`).
    pub model: String,
    /// The variant it runs on (one of the model's variants).
    pub variant: String,
}

/// How one model's demand is read from engine metrics.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedDemand {
    /// The engine (picks the metric-name preset).
    pub engine: crate::metrics::Engine,
    /// The model label's value on the engine's series; defaults to the model's name.
    #[serde(default)]
    pub served_name: Option<String>,
    /// The label naming the model; defaults to the engine preset's.
    #[serde(default)]
    pub model_label: Option<String>,
    /// Extra PromQL label matchers (Prometheus only).
    #[serde(default)]
    pub matchers: Option<String>,
    /// The Prometheus label telling variants apart.
    #[serde(default)]
    pub variant_label: Option<String>,
}

/// Listening addresses and TLS.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// gRPC (KEDA external scaler) address.
    pub grpc_addr: SocketAddr,
    /// HTTP address.
    pub http_addr: SocketAddr,
    /// TLS for the gRPC server; absent means plaintext.
    pub tls: Option<TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            grpc_addr: SocketAddr::from(([0, 0, 0, 0], 9090)),
            http_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            tls: None,
        }
    }
}

/// PEM files for TLS; with `client_ca_file`, clients must present a certificate it signed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Server certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Server private key (PEM).
    pub key_file: PathBuf,
    /// CA bundle that signs client certificates (PEM); turns on mTLS.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

/// The evaluation loop's timing.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluationConfig {
    /// Seconds between evaluations.
    pub interval_s: f64,
    /// Seconds one evaluation may take.
    pub timeout_s: f64,
    /// Seconds after which a decision is stale.
    pub stale_after_s: f64,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        Self {
            interval_s: 5.0,
            timeout_s: 2.0,
            stale_after_s: 120.0,
        }
    }
}

/// One model and how its demand is known.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Model name, as trigger metadata names it.
    pub name: String,
    /// GPU variants serving the model.
    pub variants: Vec<VariantConfig>,
    /// The latency objective. With it, the model is sized by the SLO pipeline (demand
    /// forecast → capacity per replica from each variant's profile → least-cost plan);
    /// without it, by the capacity rule (`capacity_rps`).
    #[serde(default)]
    pub slo: Option<SloConfig>,
    /// Prompt and output lengths of the model's requests (required with `slo`).
    #[serde(default)]
    pub request_mix: Option<RequestMixConfig>,
    /// Higher goes first when GPUs are short (SLO pipeline).
    #[serde(default)]
    pub priority: i32,
    /// Where the model's demand comes from.
    pub demand: DemandConfig,
}

/// One GPU variant of a model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantConfig {
    /// Variant name, as trigger metadata names it.
    pub name: String,
    /// Requests per second one replica serves within the SLO (capacity rule only: with
    /// `slo`, capacity comes from the profile and this must be absent).
    #[serde(default)]
    pub capacity_rps: f64,
    /// Performance profile (SLO pipeline): a YAML file (relative to the config file) or
    /// `builtin/<name>` for a profile shipped in `docs/profiles/`.
    #[serde(default)]
    pub profile: Option<String>,
    /// GPU type, the key of `inventory` (SLO pipeline; default: the profile's `gpu`).
    #[serde(default)]
    pub gpu_type: Option<String>,
    /// GPUs one replica holds (SLO pipeline).
    #[serde(default = "default_gpus_per_replica")]
    pub gpus_per_replica: u32,
    /// Price of one replica per hour (SLO pipeline; default: the profile's
    /// `cost_per_hour`). Say where the number comes from: it is an input, not a fact.
    #[serde(default)]
    pub cost_per_hour: Option<f64>,
    /// Weight of this variant in splitting the model's demand (normalised over the
    /// model's variants).
    #[serde(default = "default_share")]
    pub share: f64,
    /// Floor on desired replicas.
    #[serde(default)]
    pub min_replicas: f64,
    /// Ceiling on desired replicas.
    #[serde(default)]
    pub max_replicas: Option<f64>,
}

/// A model's demand source: fixed, synthetic, or observed from engine metrics.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum DemandConfig {
    /// A fixed request rate.
    Constant {
        /// Requests per second.
        rps: f64,
    },
    /// A synthetic daily cycle with bursts and idle spells (the demo fleet).
    Synthetic(SyntheticDemand),
    /// Observed through `metrics.prometheus`.
    Prometheus(ObservedDemand),
    /// Observed by scraping `metrics.scrape.endpoints` directly.
    Scrape(ObservedDemand),
}

/// Parameters of the synthetic demand curve; see [`crate::demo`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticDemand {
    /// Requests per second at the top of the cycle.
    pub peak_rps: f64,
    /// Requests per second at the bottom of the cycle.
    pub trough_rps: f64,
    /// Length of one "day" in seconds (compressed in the demo so cycles are visible).
    pub day_length_s: f64,
    /// Shift of this model's cycle, in seconds.
    #[serde(default)]
    pub phase_s: f64,
    /// Fraction of the day, centred on the trough, with no demand at all.
    #[serde(default)]
    pub idle_fraction: f64,
    /// Length of a burst slot in seconds.
    #[serde(default = "default_burst_slot_s")]
    pub burst_slot_s: f64,
    /// Probability that a slot is a burst.
    #[serde(default)]
    pub burst_probability: f64,
    /// Demand multiplier during a burst.
    #[serde(default = "default_burst_factor")]
    pub burst_factor: f64,
    /// Seed for which slots burst.
    #[serde(default)]
    pub seed: u64,
}

fn default_one() -> f64 {
    1.0
}
fn default_retries() -> u32 {
    2
}
fn default_backoff_s() -> f64 {
    0.1
}
fn default_history_step_s() -> f64 {
    60.0
}
fn default_history_len() -> usize {
    600
}
fn default_gpus_per_replica() -> u32 {
    1
}
fn default_attainment() -> f64 {
    0.95
}
fn default_forecast_interval_s() -> f64 {
    60.0
}

/// A model's latency objective.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloConfig {
    /// Bound on time to first token, milliseconds.
    pub ttft_ms: f64,
    /// Bound on time per output token, milliseconds.
    pub tpot_ms: f64,
    /// Percentile at which both bounds apply: `p50`, `p90` or `p99`.
    pub percentile: forecasting::latency::Percentile,
    /// Share of time demand must be covered (0.5..=0.99): picks the forecast quantile.
    #[serde(default = "default_attainment")]
    pub attainment: f64,
}

/// Mean prompt and output lengths of a model's requests.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestMixConfig {
    /// Mean prompt tokens.
    pub prompt_tokens: f64,
    /// Mean output tokens.
    pub output_tokens: f64,
}

/// The SLO pipeline's fleet-wide settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SizingConfig {
    /// Free GPUs per GPU type shared by all models; absent = unlimited.
    pub inventory: Option<std::collections::BTreeMap<String, u32>>,
    /// Interval of the demand series fed to the forecasters, seconds.
    pub forecast_interval_s: f64,
    /// Scale-down stabilisation and HPA tolerance.
    pub stabilization: crate::stabilization::StabilizerSettings,
    /// Hot / warm / cold tiers and the warm pool's costs (`docs/scale-to-zero.md`).
    pub tiers: crate::tiers::TierSettings,
}

impl Default for SizingConfig {
    fn default() -> Self {
        Self {
            inventory: None,
            forecast_interval_s: default_forecast_interval_s(),
            stabilization: crate::stabilization::StabilizerSettings::default(),
            tiers: crate::tiers::TierSettings::default(),
        }
    }
}

fn default_share() -> f64 {
    1.0
}
fn default_burst_slot_s() -> f64 {
    30.0
}
fn default_burst_factor() -> f64 {
    2.5
}

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// YAML syntax or schema mismatch (unknown field, wrong type); the message carries
    /// the line and column.
    #[error("{origin}: {message}")]
    Parse {
        /// File name or "embedded demo config".
        origin: String,
        /// The parser's message, with location.
        message: String,
    },
    /// The values parse but make no sense together.
    #[error("{origin}: {message}")]
    Invalid {
        /// File name or "embedded demo config".
        origin: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

/// The embedded demo fleet served when no config file is given.
pub const DEMO_CONFIG_YAML: &str = include_str!("demo.yaml");

impl Config {
    /// Reads and validates a config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// The embedded demo configuration.
    pub fn demo() -> Self {
        Self::from_yaml(DEMO_CONFIG_YAML, "embedded demo config")
            .expect("the embedded demo config is valid (tested)")
    }

    /// Parses and validates YAML text; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Config = serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            origin: origin.to_string(),
            message,
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let e = &self.evaluation;
        positive("evaluation.interval_s", e.interval_s)?;
        positive("evaluation.timeout_s", e.timeout_s)?;
        positive("evaluation.stale_after_s", e.stale_after_s)?;
        if e.stale_after_s < e.interval_s {
            return Err(format!(
                "evaluation.stale_after_s ({}) must be at least evaluation.interval_s ({}), or every decision would be stale before the next one",
                e.stale_after_s, e.interval_s
            ));
        }
        if self.models.is_empty() {
            return Err("models: expected at least one model".into());
        }
        if let Some(w) = &self.warm_pool {
            let catalog: Vec<(String, Vec<String>)> = self
                .models
                .iter()
                .map(|m| {
                    (
                        m.name.clone(),
                        m.variants.iter().map(|v| v.name.clone()).collect(),
                    )
                })
                .collect();
            w.validate(&catalog)?;
        }
        self.sizing.tiers.validate()?;
        let mut names = std::collections::BTreeSet::new();
        for (i, m) in self.models.iter().enumerate() {
            let at = format!("models[{i}]");
            if m.name.trim().is_empty() {
                return Err(format!("{at}.name: expected a non-empty model name"));
            }
            if !names.insert(m.name.as_str()) {
                return Err(format!("{at}.name: model {:?} is listed twice", m.name));
            }
            if m.variants.is_empty() {
                return Err(format!(
                    "{at}.variants: model {:?} needs at least one variant",
                    m.name
                ));
            }
            let mut vnames = std::collections::BTreeSet::new();
            for (j, v) in m.variants.iter().enumerate() {
                let at = format!("{at}.variants[{j}]");
                if v.name.trim().is_empty() {
                    return Err(format!("{at}.name: expected a non-empty variant name"));
                }
                if !vnames.insert(v.name.as_str()) {
                    return Err(format!("{at}.name: variant {:?} is listed twice", v.name));
                }
                if m.slo.is_some() {
                    if v.capacity_rps != 0.0 {
                        return Err(format!(
                            "{at}.capacity_rps: with `slo` the capacity comes from the variant's profile; remove capacity_rps"
                        ));
                    }
                    if let Some(c) = v.cost_per_hour {
                        non_negative(&format!("{at}.cost_per_hour"), c)?;
                    }
                    if v.profile.is_none() {
                        return Err(format!(
                            "{at}.profile: required with `slo` (a profile YAML file or builtin/<name>)"
                        ));
                    }
                } else {
                    positive(&format!("{at}.capacity_rps"), v.capacity_rps).map_err(|e| {
                        format!("{e} (required for a model sized by the capacity rule, i.e. without `slo`)")
                    })?;
                }
                non_negative(&format!("{at}.share"), v.share)?;
                non_negative(&format!("{at}.min_replicas"), v.min_replicas)?;
                if let Some(max) = v.max_replicas {
                    non_negative(&format!("{at}.max_replicas"), max)?;
                    if max < v.min_replicas {
                        return Err(format!(
                            "{at}.max_replicas ({max}) is below min_replicas ({})",
                            v.min_replicas
                        ));
                    }
                }
            }
            if m.variants.iter().map(|v| v.share).sum::<f64>() <= 0.0 {
                return Err(format!(
                    "{at}.variants: shares sum to 0; at least one must be > 0"
                ));
            }
            if let Some(slo) = &m.slo {
                positive(&format!("{at}.slo.ttft_ms"), slo.ttft_ms)?;
                positive(&format!("{at}.slo.tpot_ms"), slo.tpot_ms)?;
                if !(0.5..=0.99).contains(&slo.attainment) {
                    return Err(format!(
                        "{at}.slo.attainment: expected a number in [0.5, 0.99], got {}",
                        slo.attainment
                    ));
                }
                let Some(mix) = &m.request_mix else {
                    return Err(format!(
                        "{at}.request_mix: required with `slo` ({{prompt_tokens, output_tokens}})"
                    ));
                };
                positive(
                    &format!("{at}.request_mix.prompt_tokens"),
                    mix.prompt_tokens,
                )?;
                positive(
                    &format!("{at}.request_mix.output_tokens"),
                    mix.output_tokens,
                )?;
            }
            match &m.demand {
                DemandConfig::Constant { rps } => non_negative(&format!("{at}.demand.rps"), *rps)?,
                DemandConfig::Synthetic(s) => {
                    non_negative(&format!("{at}.demand.trough_rps"), s.trough_rps)?;
                    non_negative(&format!("{at}.demand.peak_rps"), s.peak_rps)?;
                    if s.peak_rps < s.trough_rps {
                        return Err(format!("{at}.demand.peak_rps must be >= trough_rps"));
                    }
                    positive(&format!("{at}.demand.day_length_s"), s.day_length_s)?;
                    positive(&format!("{at}.demand.burst_slot_s"), s.burst_slot_s)?;
                    unit(&format!("{at}.demand.idle_fraction"), s.idle_fraction)?;
                    unit(
                        &format!("{at}.demand.burst_probability"),
                        s.burst_probability,
                    )?;
                    non_negative(&format!("{at}.demand.burst_factor"), s.burst_factor)?;
                }
                DemandConfig::Prometheus(_) if self.metrics.prometheus.is_none() => {
                    return Err(format!(
                        "{at}.demand: kind prometheus needs a metrics.prometheus section (url at least)"
                    ));
                }
                DemandConfig::Scrape(_) => {
                    let has = self
                        .metrics
                        .scrape
                        .as_ref()
                        .is_some_and(|s| s.endpoints.iter().any(|e| e.model == m.name));
                    if !has {
                        return Err(format!(
                            "{at}.demand: kind scrape needs metrics.scrape.endpoints entries with model {:?}",
                            m.name
                        ));
                    }
                }
                DemandConfig::Prometheus(_) => {}
            }
        }
        self.validate_metrics()
    }

    fn validate_metrics(&self) -> Result<(), String> {
        let m = &self.metrics;
        positive("metrics.stale_after_s", m.stale_after_s)?;
        positive("metrics.rate_window_s", m.rate_window_s)?;
        if let Some(p) = &m.prometheus {
            positive("metrics.prometheus.timeout_s", p.timeout_s)?;
            non_negative("metrics.prometheus.backoff_s", p.backoff_s)?;
            non_negative("metrics.prometheus.history_days", p.history_days)?;
            positive("metrics.prometheus.history_step_s", p.history_step_s)?;
            if !(p.url.starts_with("http://") || p.url.starts_with("https://")) {
                return Err(format!(
                    "metrics.prometheus.url: expected an http:// or https:// URL, got {:?}",
                    p.url
                ));
            }
        }
        if let Some(s) = &m.scrape {
            positive("metrics.scrape.timeout_s", s.timeout_s)?;
            if s.history_len < 2 {
                return Err(format!(
                    "metrics.scrape.history_len: expected at least 2 (a rate needs two scrapes), got {}",
                    s.history_len
                ));
            }
            for (i, e) in s.endpoints.iter().enumerate() {
                let at = format!("metrics.scrape.endpoints[{i}]");
                if !(e.url.starts_with("http://") || e.url.starts_with("https://")) {
                    return Err(format!(
                        "{at}.url: expected an http(s) URL, got {:?}",
                        e.url
                    ));
                }
                let Some(model) = self.models.iter().find(|x| x.name == e.model) else {
                    return Err(format!(
                        "{at}.model: {:?} is not one of models[].name",
                        e.model
                    ));
                };
                if !model.variants.iter().any(|v| v.name == e.variant) {
                    return Err(format!(
                        "{at}.variant: model {:?} has no variant {:?}",
                        e.model, e.variant
                    ));
                }
            }
        }
        Ok(())
    }
}

fn positive(key: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(format!("{key}: expected a finite number > 0, got {v}"))
    }
}

fn non_negative(key: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(format!("{key}: expected a finite number >= 0, got {v}"))
    }
}

fn unit(key: &str, v: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(format!("{key}: expected a number in [0, 1], got {v}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_is_valid() {
        let c = Config::demo();
        assert!(c.models.len() >= 3);
        assert_eq!(c.server, ServerConfig::default());
    }

    #[test]
    fn unknown_field_is_named_with_its_line() {
        let yaml = "models:\n  - name: m\n    variants:\n      - name: a\n        capacity_rps: 1\n        capcity: 2\n    demand: {kind: constant, rps: 1}\n";
        let err = Config::from_yaml(yaml, "x.yaml").unwrap_err().to_string();
        assert!(err.contains("capcity"), "{err}");
        assert!(err.contains("x.yaml"), "{err}");
        assert!(
            err.contains("line 6") || err.contains("6:"),
            "no line number: {err}"
        );
    }

    #[test]
    fn invalid_values_are_explained() {
        let yaml = "models:\n  - name: m\n    variants:\n      - name: a\n        capacity_rps: 0\n    demand: {kind: constant, rps: 1}\n";
        let err = Config::from_yaml(yaml, "x.yaml").unwrap_err().to_string();
        assert!(err.contains("models[0].variants[0].capacity_rps"), "{err}");
        let yaml = "evaluation: {interval_s: 10, stale_after_s: 5}\nmodels: []\n";
        let err = Config::from_yaml(yaml, "x.yaml").unwrap_err().to_string();
        assert!(err.contains("stale_after_s"), "{err}");
        let yaml = "models:\n  - name: m\n    variants: [{name: a, capacity_rps: 1}, {name: a, capacity_rps: 1}]\n    demand: {kind: constant, rps: 1}\n";
        let err = Config::from_yaml(yaml, "x.yaml").unwrap_err().to_string();
        assert!(err.contains("listed twice"), "{err}");
    }

    #[test]
    fn observed_demand_parses_and_needs_its_source() {
        let yaml = "metrics:\n  stale_after_s: 5\n  prometheus: {url: 'http://127.0.0.1:9', history_days: 7}\n  scrape:\n    endpoints: [{url: 'http://127.0.0.1:1/metrics', model: m, variant: a}]\nmodels:\n  - name: m\n    variants: [{name: a, capacity_rps: 1}]\n    demand: {kind: prometheus, engine: vllm, served_name: meta/m, variant_label: gpu}\n";
        let c = Config::from_yaml(yaml, "x.yaml").unwrap();
        let p = c.metrics.prometheus.as_ref().unwrap();
        assert_eq!((p.timeout_s, p.retries, p.history_days), (1.0, 2, 7.0));
        assert_eq!(c.metrics.rate_window_s, 60.0);
        let DemandConfig::Prometheus(d) = &c.models[0].demand else {
            panic!()
        };
        assert_eq!(d.engine, crate::metrics::Engine::Vllm);
        let no_prom = "models:\n  - name: m\n    variants: [{name: a, capacity_rps: 1}]\n    demand: {kind: prometheus, engine: tgi}\n";
        let err = Config::from_yaml(no_prom, "x.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("metrics.prometheus"), "{err}");
        let bad_variant = yaml.replace("variant: a}", "variant: zz}");
        let err = Config::from_yaml(&bad_variant, "x.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no variant \"zz\""), "{err}");
        let bad_engine = yaml.replace("engine: vllm", "engine: llamacpp");
        let err = Config::from_yaml(&bad_engine, "x.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("llamacpp"), "{err}");
    }
}
