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
//! | `models[].variants[].share` | `1` | weight in splitting the model's demand across its variants |
//! | `models[].variants[].min_replicas` | `0` | floor on the desired replicas |
//! | `models[].variants[].max_replicas` | none | ceiling on the desired replicas |
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
    /// The models to scale.
    pub models: Vec<ModelConfig>,
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
    /// Where the model's demand comes from.
    pub demand: DemandConfig,
}

/// One GPU variant of a model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantConfig {
    /// Variant name, as trigger metadata names it.
    pub name: String,
    /// Requests per second one replica serves within the SLO.
    pub capacity_rps: f64,
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

/// A model's demand source. Real sources (Prometheus, engine scrapes) come with the
/// metrics issue; these two need no backend.
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
                positive(&format!("{at}.capacity_rps"), v.capacity_rps)?;
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
}
