//! The `warm_pool` section of the configuration file (absent = off).
//!
//! ```yaml
//! warm_pool:
//!   interval_s: 5            # actuation round
//!   engine_port: 8000        # the engines' HTTP port on the pod IP
//!   call_timeout_s: 10       # /sleep, /is_sleeping, /metrics
//!   wake_timeout_s: 60       # /wake_up
//!   cost_patches_per_s: 2    # deletion-cost patches, token bucket
//!   cost_patch_burst: 10
//!   kv_weights: { prefix_hit_tokens_per_s: 0.001, kv_usage: 1.0, running_request: 0.1 }
//!   variants:
//!     - { model: llama, variant: h100, namespace: llm, selector: "app=vllm-llama", warm: 1 }
//! ```

use std::time::Duration;

use serde::Deserialize;

use super::engine::EngineTimeouts;
use super::kv_value::KvWeights;

/// Warm-pool actuation settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmPoolConfig {
    /// Seconds between actuation rounds.
    #[serde(default = "default_interval_s")]
    pub interval_s: f64,
    /// `http` or `https`.
    #[serde(default = "default_scheme")]
    pub engine_scheme: String,
    /// The engines' HTTP port (vLLM's `--port`).
    #[serde(default = "default_port")]
    pub engine_port: u16,
    /// Timeout of `/sleep`, `/is_sleeping` and `/metrics`, seconds.
    #[serde(default = "default_call_timeout_s")]
    pub call_timeout_s: f64,
    /// Timeout of `/wake_up`, seconds; a wake that takes longer falls back to a cold start.
    #[serde(default = "default_wake_timeout_s")]
    pub wake_timeout_s: f64,
    /// Deletion-cost patches per second (all pods).
    #[serde(default = "default_cost_rate")]
    pub cost_patches_per_s: f64,
    /// Deletion-cost patches at once.
    #[serde(default = "default_cost_burst")]
    pub cost_patch_burst: u32,
    /// What a replica's KV cache is worth.
    #[serde(default)]
    pub kv_weights: KvWeights,
    /// The engine pods of each variant.
    pub variants: Vec<WarmVariantConfig>,
}

/// One variant's engine pods.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmVariantConfig {
    /// Model (one of `models[].name`).
    pub model: String,
    /// Variant (one of that model's `variants[].name`).
    pub variant: String,
    /// Namespace of the engine pods.
    pub namespace: String,
    /// Label selector of the engine pods (the Deployment's selector, without the serving
    /// label).
    pub selector: String,
    /// Warm replicas to keep when the tier policy gives none (the floor; see
    /// `docs/warm-pool.md`).
    #[serde(default)]
    pub warm: u32,
}

fn default_interval_s() -> f64 {
    5.0
}
fn default_scheme() -> String {
    "http".into()
}
fn default_port() -> u16 {
    8000
}
fn default_call_timeout_s() -> f64 {
    10.0
}
fn default_wake_timeout_s() -> f64 {
    60.0
}
fn default_cost_rate() -> f64 {
    2.0
}
fn default_cost_burst() -> u32 {
    10
}

impl WarmPoolConfig {
    /// Checks values and that every variant names a configured model and variant.
    pub fn validate(&self, catalog: &[(String, Vec<String>)]) -> Result<(), String> {
        for (name, v) in [
            ("warm_pool.interval_s", self.interval_s),
            ("warm_pool.call_timeout_s", self.call_timeout_s),
            ("warm_pool.wake_timeout_s", self.wake_timeout_s),
            ("warm_pool.cost_patches_per_s", self.cost_patches_per_s),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{name} must be a positive number, got {v}"));
            }
        }
        if self.engine_scheme != "http" && self.engine_scheme != "https" {
            return Err(format!(
                "warm_pool.engine_scheme must be http or https, got {:?}",
                self.engine_scheme
            ));
        }
        for (i, v) in self.variants.iter().enumerate() {
            let Some((_, variants)) = catalog.iter().find(|(m, _)| *m == v.model) else {
                return Err(format!(
                    "warm_pool.variants[{i}].model {:?} is not one of models[].name ({})",
                    v.model,
                    catalog
                        .iter()
                        .map(|(m, _)| m.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            };
            if !variants.contains(&v.variant) {
                return Err(format!(
                    "warm_pool.variants[{i}].variant {:?} is not a variant of model {:?} ({})",
                    v.variant,
                    v.model,
                    variants.join(", ")
                ));
            }
            if v.selector.trim().is_empty() || v.namespace.trim().is_empty() {
                return Err(format!(
                    "warm_pool.variants[{i}]: namespace and selector must not be empty"
                ));
            }
        }
        Ok(())
    }

    /// The engine client's timeouts.
    pub fn timeouts(&self) -> EngineTimeouts {
        EngineTimeouts {
            call: Duration::from_secs_f64(self.call_timeout_s),
            wake: Duration::from_secs_f64(self.wake_timeout_s),
        }
    }
}
