//! The demo fleet: synthetic demand turned into replicas by a plain capacity rule.
//!
//! This is what `slo-scaler serve` answers with no config, so a newcomer's KEDA or gRPC
//! client sees sensible, changing numbers. The rule is deliberately simple and honest —
//! `desired = demand × share ÷ capacity per replica`, clamped to the variant's limits —
//! and is replaced by forecasting and cost-based sizing in later work.
//!
//! The synthetic curve is a pure function of wall-clock time, so every replica of the
//! scaler (and every restart) agrees on it. Demand itself comes from
//! [`crate::metrics::demand::DemandSources`] (fixed, synthetic, Prometheus or direct
//! scrape); the rule here only turns requests/s into replicas, and a model whose demand is
//! unknown gets `ModelOutcome::Unavailable`, never a zero.

use std::f64::consts::PI;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{Config, DemandConfig, ModelConfig, SyntheticDemand};
use crate::decision::{Catalog, ModelDecision, ModelInfo, ModelOutcome, Planner, VariantDecision};
use crate::metrics::MetricsError;
use crate::metrics::demand::DemandSources;

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

    #[test]
    fn synthetic_cycle_has_peak_trough_idle_and_bursts() {
        let m = demo_model("mistral-7b-instruct");
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
        let m = ModelConfig {
            demand: DemandConfig::Constant { rps: 30.0 },
            ..demo_model("llama-3.1-8b-instruct")
        };
        let d = plan_model(&m, 30.0, "");
        let ModelOutcome::Planned(v) = d.outcome else {
            panic!()
        };
        // 30 × 0.6 / 6 = 3; 30 × 0.4 / 3 = 4
        assert!((v[0].desired_replicas - 3.0).abs() < 1e-9, "{v:?}");
        assert!((v[1].desired_replicas - 4.0).abs() < 1e-9, "{v:?}");
        let m = ModelConfig {
            demand: DemandConfig::Constant { rps: 0.0 },
            ..demo_model("qwen3-32b")
        };
        let ModelOutcome::Planned(v) = plan_model(&m, 0.0, "").outcome else {
            panic!()
        };
        assert_eq!(v[0].desired_replicas, 1.0);
        assert!(v[0].reason.contains("min_replicas"), "{}", v[0].reason);
    }
}
