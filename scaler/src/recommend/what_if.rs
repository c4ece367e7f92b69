//! `--what-if KEY=VALUE`: a changed scenario to compare with the baseline.
//!
//! Keys (each may be scoped to one model as `MODEL/KEY=VALUE`):
//!
//! | key | value | changes |
//! |---|---|---|
//! | `slo.ttft_ms`, `slo.tpot_ms` | ms > 0 | the SLO bound |
//! | `slo.percentile` | `p50`, `p90`, `p99` | the SLO percentile |
//! | `slo.attainment` | 0.5..=0.99 | the forecast quantile sized for |
//! | `price.NAME` | $/h ≥ 0 | price of one replica of the variants named `NAME` or on GPU type `NAME` |
//! | `inventory.GPU_TYPE` | GPUs ≥ 0 | free GPUs of that type (fleet-wide; no model scope) |
//! | `cold_start_s`, `cold_start_s.VARIANT` | s ≥ 0 | cold-start time (all variants, or one) |
//! | `demand_scale` | > 0 | multiplies the demand history |

use crate::config::Config;
use forecasting::latency::Percentile;

/// One parsed change.
#[derive(Debug, Clone, PartialEq)]
enum Change {
    SloTtft(f64),
    SloTpot(f64),
    SloPercentile(Percentile),
    SloAttainment(f64),
    Price(String, f64),
    Inventory(String, u32),
    ColdStart(Option<String>, f64),
    DemandScale(f64),
}

/// The parsed `--what-if` list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WhatIf {
    changes: Vec<(Option<String>, Change)>,
    /// The arguments as given.
    pub given: Vec<String>,
}

/// A config plus the changes that are not config fields (prices and cold starts that
/// apply by GPU type, demand scale), applied where the model is built.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The config, SLOs and inventory changed.
    pub config: Config,
    prices: Vec<(Option<String>, String, f64)>,
    cold_starts: Vec<(Option<String>, Option<String>, f64)>,
    demand_scales: Vec<(Option<String>, f64)>,
}

const KEYS: &str = "slo.ttft_ms, slo.tpot_ms, slo.percentile, slo.attainment, price.NAME, \
                    inventory.GPU_TYPE, cold_start_s, cold_start_s.VARIANT, demand_scale \
                    (optionally MODEL/KEY)";

fn number(key: &str, value: &str, what: &str, ok: impl Fn(f64) -> bool) -> Result<f64, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && ok(*v))
        .ok_or_else(|| format!("--what-if {key}={value}: expected {what}, got {value:?}"))
}

impl WhatIf {
    /// Parses `KEY=VALUE` arguments; errors name the argument and the allowed keys.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut out = WhatIf {
            changes: Vec::new(),
            given: args.to_vec(),
        };
        for arg in args {
            let (lhs, value) = arg
                .split_once('=')
                .ok_or_else(|| format!("--what-if {arg:?}: expected KEY=VALUE; keys: {KEYS}"))?;
            let (model, key) = match lhs.split_once('/') {
                Some((m, k)) => (Some(m.trim().to_string()), k.trim()),
                None => (None, lhs.trim()),
            };
            let value = value.trim();
            let change = if let Some(variant) = key.strip_prefix("cold_start_s.") {
                Change::ColdStart(
                    Some(variant.to_string()),
                    number(key, value, "seconds >= 0", |v| v >= 0.0)?,
                )
            } else if let Some(name) = key.strip_prefix("price.").filter(|n| !n.is_empty()) {
                Change::Price(
                    name.to_string(),
                    number(key, value, "a price per hour >= 0", |v| v >= 0.0)?,
                )
            } else if let Some(gpu) = key.strip_prefix("inventory.").filter(|n| !n.is_empty()) {
                if model.is_some() {
                    return Err(format!(
                        "--what-if {arg}: inventory is shared by every model; drop the `MODEL/` scope"
                    ));
                }
                let n = value.parse::<u32>().map_err(|_| {
                    format!("--what-if {arg}: expected a whole number of GPUs, got {value:?}")
                })?;
                Change::Inventory(gpu.to_string(), n)
            } else {
                match key {
                    "slo.ttft_ms" => Change::SloTtft(number(key, value, "ms > 0", |v| v > 0.0)?),
                    "slo.tpot_ms" => Change::SloTpot(number(key, value, "ms > 0", |v| v > 0.0)?),
                    "slo.percentile" => Change::SloPercentile(match value {
                        "p50" => Percentile::P50,
                        "p90" => Percentile::P90,
                        "p99" => Percentile::P99,
                        _ => {
                            return Err(format!(
                                "--what-if {arg}: expected p50, p90 or p99, got {value:?}"
                            ));
                        }
                    }),
                    "slo.attainment" => Change::SloAttainment(number(
                        key,
                        value,
                        "a share within 0.5..=0.99",
                        |v| (0.5..=0.99).contains(&v),
                    )?),
                    "demand_scale" => {
                        Change::DemandScale(number(key, value, "a factor > 0", |v| v > 0.0)?)
                    }
                    "cold_start_s" => {
                        Change::ColdStart(None, number(key, value, "seconds >= 0", |v| v >= 0.0)?)
                    }
                    _ => {
                        return Err(format!(
                            "--what-if {arg}: unknown key {key:?}; keys: {KEYS}"
                        ));
                    }
                }
            };
            out.changes.push((model, change));
        }
        Ok(out)
    }

    /// True without changes.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Applies the changes to a scenario; a scope naming no model of the config is an error.
    pub fn apply(&self, base: &Scenario) -> Result<Scenario, String> {
        let mut s = base.clone();
        for (model, change) in &self.changes {
            if let Some(m) = model
                && !s.config.models.iter().any(|x| &x.name == m)
            {
                return Err(format!(
                    "--what-if: no model {m:?} in the config; models: {}",
                    s.config
                        .models
                        .iter()
                        .map(|m| m.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            let targets = s
                .config
                .models
                .iter_mut()
                .filter(|m| model.as_ref().is_none_or(|x| *x == m.name));
            match change {
                Change::SloTtft(_)
                | Change::SloTpot(_)
                | Change::SloPercentile(_)
                | Change::SloAttainment(_) => {
                    for m in targets {
                        if let Some(slo) = &mut m.slo {
                            match change {
                                Change::SloTtft(v) => slo.ttft_ms = *v,
                                Change::SloTpot(v) => slo.tpot_ms = *v,
                                Change::SloPercentile(p) => slo.percentile = *p,
                                Change::SloAttainment(a) => slo.attainment = *a,
                                _ => {}
                            }
                        }
                    }
                }
                Change::Inventory(gpu, n) => {
                    s.config
                        .sizing
                        .inventory
                        .get_or_insert_with(Default::default)
                        .insert(gpu.clone(), *n);
                }
                Change::Price(name, v) => s.prices.push((model.clone(), name.clone(), *v)),
                Change::ColdStart(variant, v) => {
                    s.cold_starts.push((model.clone(), variant.clone(), *v))
                }
                Change::DemandScale(f) => s.demand_scales.push((model.clone(), *f)),
            }
        }
        Ok(s)
    }
}

impl Scenario {
    /// The config as it is.
    pub fn baseline(config: Config) -> Self {
        Self {
            config,
            prices: Vec::new(),
            cold_starts: Vec::new(),
            demand_scales: Vec::new(),
        }
    }

    /// The price override of a variant (by variant name or GPU type), the last that applies.
    pub fn price_for(&self, model: &str, variant: &str, gpu_type: &str) -> Option<f64> {
        self.prices
            .iter()
            .rev()
            .find(|(m, name, _)| {
                m.as_deref().is_none_or(|m| m == model) && (name == variant || name == gpu_type)
            })
            .map(|(_, _, v)| *v)
    }

    /// The cold-start override of a variant, the last that applies.
    pub fn cold_start_for(&self, model: &str, variant: &str) -> Option<f64> {
        self.cold_starts
            .iter()
            .rev()
            .find(|(m, v, _)| {
                m.as_deref().is_none_or(|m| m == model) && v.as_deref().is_none_or(|v| v == variant)
            })
            .map(|(_, _, s)| *s)
    }

    /// The product of the demand scales that apply to a model.
    pub fn demand_scale_for(&self, model: &str) -> f64 {
        self.demand_scales
            .iter()
            .filter(|(m, _)| m.as_deref().is_none_or(|m| m == model))
            .map(|(_, f)| *f)
            .product()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::from_yaml(
            r#"
models:
  - name: llama
    slo: { ttft_ms: 1000, tpot_ms: 50, percentile: p90 }
    request_mix: { prompt_tokens: 1000, output_tokens: 200 }
    variants:
      - { name: h200, profile: builtin/llama-3.1-8b-fp8_h200_tp1 }
    demand: { kind: constant, rps: 1 }
"#,
            "test",
        )
        .unwrap()
    }

    #[test]
    fn parses_and_applies_every_key() {
        let w = WhatIf::parse(
            &[
                "slo.ttft_ms=500",
                "llama/slo.percentile=p99",
                "slo.attainment=0.9",
                "price.H200=3.5",
                "inventory.H200=8",
                "cold_start_s.h200=30",
                "demand_scale=2",
                "llama/demand_scale=1.5",
            ]
            .map(String::from),
        )
        .unwrap();
        let s = w.apply(&Scenario::baseline(config())).unwrap();
        let slo = s.config.models[0].slo.as_ref().unwrap();
        assert_eq!(
            (slo.ttft_ms, slo.percentile, slo.attainment),
            (500.0, Percentile::P99, 0.9)
        );
        assert_eq!(s.config.sizing.inventory.as_ref().unwrap()["H200"], 8);
        assert_eq!(s.price_for("llama", "h200", "H200"), Some(3.5));
        assert_eq!(s.cold_start_for("llama", "h200"), Some(30.0));
        assert_eq!(s.cold_start_for("llama", "a100"), None);
        assert_eq!(s.demand_scale_for("llama"), 3.0);
    }

    #[test]
    fn bad_input_names_the_argument_and_what_is_allowed() {
        for (arg, want) in [
            ("slo.ttft=5", "unknown key \"slo.ttft\""),
            ("slo.ttft_ms=-1", "expected ms > 0"),
            ("slo.percentile=p95", "p50, p90 or p99"),
            ("noequals", "expected KEY=VALUE"),
            ("llama/inventory.H200=3", "shared by every model"),
            ("inventory.H200=2.5", "whole number"),
        ] {
            let e = WhatIf::parse(&[arg.to_string()]).unwrap_err();
            assert!(e.contains(want), "{arg}: {e}");
        }
        let e = WhatIf::parse(&["mistral/slo.ttft_ms=5".to_string()])
            .unwrap()
            .apply(&Scenario::baseline(config()))
            .unwrap_err();
        assert!(
            e.contains("no model \"mistral\"") && e.contains("llama"),
            "{e}"
        );
    }
}
