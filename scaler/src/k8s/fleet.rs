//! Policies define the fleet (`serve --kubernetes --fleet-source policies`): the
//! `SloScalingPolicy` objects the watcher sees become the models, SLOs, variants, costs
//! and profiles the scaler plans and answers KEDA for, instead of the config file's
//! `models` (the file, or the embedded defaults, still gives every other setting).
//!
//! Where to start: [`PolicyPlanner`] wraps a [`FleetPlanner`] and rebuilds it whenever
//! the watcher's [`PolicySnapshot`] changes ([`build_fleet`] is the pure part: which
//! models plan, which are broken and why). Its [`Planner::catalog`] follows the policies,
//! and the evaluator re-keys its snapshot on every change
//! ([`crate::decision::Snapshot::with_catalog`]): a deleted policy's model becomes
//! unknown to KEDA (`NOT_FOUND`), a policy that cannot be planned (missing profile, an
//! SLO no variant meets) is listed but unavailable (`UNAVAILABLE` with the reason) —
//! never a made-up 0.
//!
//! Forecaster state: a rebuild starts every SLO model's forecaster afresh, warmed from
//! Prometheus history when a Prometheus is configured (as at start).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::watch::PolicySnapshot;
use crate::config::{Config, ConfigError, ModelConfig};
use crate::decision::{Catalog, ModelDecision, ModelInfo, ModelOutcome, Planner};
use crate::planner::FleetPlanner;

/// Placeholder model that makes a settings-only file pass `Config`'s validation (which
/// wants at least one model); removed again before use.
const PLACEHOLDER_MODEL: &str = "__settings_only__";

/// The config file's settings for a policy-defined fleet: as [`Config::from_yaml`], but
/// `models` may be absent or empty, and any models listed are dropped (the policies are
/// the fleet).
pub fn settings_from_yaml(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let mut value: serde_json::Value =
        serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
    if value.is_null() {
        value = serde_json::json!({});
    }
    let Some(map) = value.as_object_mut() else {
        return Err(ConfigError::Parse {
            origin: origin.to_string(),
            message: "expected a mapping at the top level".into(),
        });
    };
    let listed = map
        .get("models")
        .and_then(|m| m.as_array())
        .is_some_and(|m| !m.is_empty());
    if listed {
        tracing::warn!(%origin, "models in the config file are ignored: SloScalingPolicy objects define the fleet");
    }
    map.insert(
        "models".into(),
        serde_json::json!([{
            "name": PLACEHOLDER_MODEL,
            "variants": [{"name": "v", "capacity_rps": 1.0}],
            "demand": {"kind": "constant", "rps": 0.0}
        }]),
    );
    let text = serde_json::to_string(&value).expect("JSON always serializes");
    let mut config = Config::from_yaml(&text, origin)?;
    config.models.clear();
    Ok(config)
}

/// The planner built from one set of policies, and the models that could not be.
pub struct BuiltFleet {
    /// Plans the good models; `None` when there are none.
    pub planner: Option<FleetPlanner>,
    /// Models that cannot be planned: their variants and why.
    pub broken: BTreeMap<String, (Vec<String>, String)>,
}

impl BuiltFleet {
    /// Every model: the planner's and the broken ones.
    pub fn catalog(&self) -> Catalog {
        let planned = self
            .planner
            .as_ref()
            .map(|p| p.catalog().models().collect::<Vec<_>>())
            .unwrap_or_default();
        Catalog::new(
            planned
                .into_iter()
                .chain(self.broken.iter().map(|(name, (variants, _))| ModelInfo {
                    name: name.clone(),
                    variants: variants.clone(),
                })),
        )
    }
}

fn with_models(base: &Config, models: Vec<ModelConfig>) -> Config {
    let mut c = base.clone();
    c.models = models;
    c
}

/// Builds the planner for `models` over `base`'s settings. A model whose planner cannot
/// be built on its own (profile missing, SLO infeasible on every variant, ...) is broken,
/// with that error; the others are planned together (shared GPU inventory).
pub fn build_fleet(
    base: &Config,
    base_dir: Option<&std::path::Path>,
    models: &[ModelConfig],
) -> BuiltFleet {
    let mut broken = BTreeMap::new();
    if models.is_empty() {
        return BuiltFleet {
            planner: None,
            broken,
        };
    }
    let variants = |m: &ModelConfig| m.variants.iter().map(|v| v.name.clone()).collect();
    if let Ok(p) = FleetPlanner::try_new(&with_models(base, models.to_vec()), base_dir) {
        return BuiltFleet {
            planner: Some(p),
            broken,
        };
    }
    let mut good = Vec::new();
    for m in models {
        match FleetPlanner::try_new(&with_models(base, vec![m.clone()]), base_dir) {
            Ok(_) => good.push(m.clone()),
            Err(e) => {
                broken.insert(m.name.clone(), (variants(m), e.to_string()));
            }
        }
    }
    let planner = if good.is_empty() {
        None
    } else {
        match FleetPlanner::try_new(&with_models(base, good.clone()), base_dir) {
            Ok(p) => Some(p),
            Err(e) => {
                // Each builds alone but not together: none is planned, all say why.
                for m in &good {
                    broken.insert(m.name.clone(), (variants(m), e.to_string()));
                }
                None
            }
        }
    };
    BuiltFleet { planner, broken }
}

/// A planner whose fleet is the watched policies'.
pub struct PolicyPlanner {
    base: Config,
    base_dir: Option<PathBuf>,
    policies: watch::Receiver<PolicySnapshot>,
    built: BuiltFleet,
    catalog: Catalog,
    backfill_timeout: Duration,
}

impl PolicyPlanner {
    /// A planner over `base`'s settings (its `models` are ignored) following `policies`;
    /// builds from the current snapshot at once. History backfill after a rebuild is
    /// bounded by `backfill_timeout`.
    pub fn new(
        base: Config,
        base_dir: Option<PathBuf>,
        mut policies: watch::Receiver<PolicySnapshot>,
        backfill_timeout: Duration,
    ) -> Self {
        let snapshot = policies.borrow_and_update().clone();
        let built = build(&base, base_dir.as_deref(), &snapshot);
        Self {
            catalog: built.catalog(),
            base,
            base_dir,
            policies,
            built,
            backfill_timeout,
        }
    }

    /// Backfills demand history from Prometheus and warms the forecasters (bounded).
    pub async fn warm_up(&mut self) {
        let Some(p) = self.built.planner.as_mut() else {
            return;
        };
        let now_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        match tokio::time::timeout(self.backfill_timeout, p.demand_sources().backfill(now_s)).await
        {
            Ok(Ok(_)) => {
                for (model, points) in p.warm_start() {
                    if points > 0 {
                        tracing::info!(%model, points, "forecaster warmed from history");
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "demand history backfill failed"),
            Err(_) => tracing::warn!("demand history backfill timed out"),
        }
    }
}

fn build(base: &Config, base_dir: Option<&std::path::Path>, s: &PolicySnapshot) -> BuiltFleet {
    let models: Vec<ModelConfig> = s.models.iter().map(|(_, m)| m.clone()).collect();
    let built = build_fleet(base, base_dir, &models);
    for (model, (_, why)) in &built.broken {
        tracing::warn!(%model, reason = %why, "policy cannot be planned");
    }
    tracing::info!(
        models = models.len(),
        broken = built.broken.len(),
        "fleet rebuilt from SloScalingPolicy objects"
    );
    built
}

impl Planner for PolicyPlanner {
    fn catalog(&self) -> Catalog {
        self.catalog.clone()
    }

    fn note_running(&mut self, model: &str, running: &BTreeMap<String, u32>) {
        if let Some(p) = self.built.planner.as_mut() {
            p.note_running(model, running);
        }
    }

    async fn evaluate(&mut self, now: SystemTime) -> Vec<ModelDecision> {
        if self.policies.has_changed().unwrap_or(false) {
            let snapshot = self.policies.borrow_and_update().clone();
            self.built = build(&self.base, self.base_dir.as_deref(), &snapshot);
            self.catalog = self.built.catalog();
            self.warm_up().await;
        }
        let mut out = match self.built.planner.as_mut() {
            Some(p) => p.evaluate(now).await,
            None => Vec::new(),
        };
        out.extend(
            self.built
                .broken
                .iter()
                .map(|(model, (_, why))| ModelDecision {
                    model: model.clone(),
                    outcome: ModelOutcome::Unavailable(format!("policy cannot be planned: {why}")),
                }),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{LookupError, Snapshot};
    use crate::k8s::watch::PolicyRef;
    use std::time::Instant;

    fn model(yaml: &str) -> ModelConfig {
        let c = Config::from_yaml(&format!("models:\n{yaml}"), "test").expect("valid");
        c.models[0].clone()
    }

    fn rule(name: &str, rps: f64) -> ModelConfig {
        model(&format!(
            "  - name: {name}\n    variants: [{{name: v1, capacity_rps: 4.0}}]\n    demand: {{kind: constant, rps: {rps}}}\n"
        ))
    }

    fn snapshot(models: Vec<ModelConfig>) -> PolicySnapshot {
        PolicySnapshot {
            models: models
                .into_iter()
                .map(|m| {
                    (
                        PolicyRef {
                            namespace: "llm".into(),
                            name: m.name.clone(),
                            generation: Some(1),
                        },
                        m,
                    )
                })
                .collect(),
            rejected: vec![],
        }
    }

    #[test]
    fn a_settings_only_file_parses_and_keeps_its_checks() {
        let c = settings_from_yaml("evaluation: {interval_s: 2}\n", "f").expect("settings");
        assert_eq!(c.evaluation.interval_s, 2.0);
        assert!(c.models.is_empty());
        let c = settings_from_yaml(
            "models:\n  - name: m\n    variants: [{name: a, capacity_rps: 1}]\n    demand: {kind: constant, rps: 1}\n",
            "f",
        )
        .expect("models ignored");
        assert!(c.models.is_empty());
        assert!(settings_from_yaml("", "f").is_ok());
        // Unknown keys and bad values are still refused.
        let e = settings_from_yaml("evaluaton: {}\n", "f").unwrap_err();
        assert!(e.to_string().contains("evaluaton"), "{e}");
        let e = settings_from_yaml("evaluation: {interval_s: -1}\n", "f").unwrap_err();
        assert!(e.to_string().contains("interval_s"), "{e}");
    }

    #[test]
    fn a_model_with_a_missing_profile_is_broken_and_the_others_plan() {
        let base = Config::demo();
        let bad = model(
            "  - name: bad\n    variants: [{name: h100, profile: builtin/no-such-profile}]\n    slo: {ttft_ms: 500, tpot_ms: 50, percentile: p90}\n    request_mix: {prompt_tokens: 512, output_tokens: 256}\n    demand: {kind: constant, rps: 1}\n",
        );
        let built = build_fleet(&base, None, &[rule("good", 8.0), bad]);
        assert!(
            built.broken["bad"].1.contains("no-such-profile"),
            "{:?}",
            built.broken
        );
        let names: Vec<String> = built.catalog().models().map(|m| m.name).collect();
        assert_eq!(names, ["bad", "good"]);
        assert!(built.planner.is_some());
    }

    #[tokio::test]
    async fn the_catalog_follows_the_policies_and_a_deleted_model_is_not_served() {
        let (tx, rx) = watch::channel(snapshot(vec![rule("a", 8.0)]));
        let mut p = PolicyPlanner::new(Config::demo(), None, rx, Duration::from_secs(1));
        let snap = Snapshot::empty(p.catalog(), Duration::from_secs(60));
        let snap = snap.apply(p.evaluate(SystemTime::now()).await, Instant::now());
        // 8 req/s over 4 per replica.
        assert_eq!(snap.replicas("a", Some("v1"), Instant::now()), Ok(2.0));

        tx.send_replace(snapshot(vec![rule("b", 4.0)]));
        let decisions = p.evaluate(SystemTime::now()).await;
        let snap = snap
            .with_catalog(p.catalog())
            .apply(decisions, Instant::now());
        assert!(matches!(
            snap.replicas("a", Some("v1"), Instant::now()),
            Err(LookupError::UnknownModel { .. })
        ));
        assert_eq!(snap.replicas("b", Some("v1"), Instant::now()), Ok(1.0));

        // No policies at all: nothing is served, nothing is invented.
        tx.send_replace(snapshot(vec![]));
        let decisions = p.evaluate(SystemTime::now()).await;
        assert!(decisions.is_empty());
        assert_eq!(p.catalog().models().count(), 0);
    }

    #[test]
    fn a_model_whose_variants_change_loses_its_old_decision() {
        let cat = |vs: &[&str]| {
            Catalog::new([ModelInfo {
                name: "m".into(),
                variants: vs.iter().map(|v| v.to_string()).collect(),
            }])
        };
        let t0 = Instant::now();
        let snap = Snapshot::empty(cat(&["a"]), Duration::from_secs(60)).apply(
            vec![ModelDecision {
                model: "m".into(),
                outcome: ModelOutcome::Planned(vec![crate::decision::VariantDecision {
                    variant: "a".into(),
                    desired_replicas: 3.0,
                    reason: "r".into(),
                    action: "steady",
                    details: BTreeMap::new(),
                }]),
            }],
            t0,
        );
        assert_eq!(snap.replicas("m", None, t0), Ok(3.0));
        let same = snap.with_catalog(cat(&["a"]));
        assert_eq!(
            same.replicas("m", None, t0),
            Ok(3.0),
            "unchanged model kept"
        );
        let changed = snap.with_catalog(cat(&["a", "b"]));
        assert!(matches!(
            changed.replicas("m", None, t0),
            Err(LookupError::Unavailable { .. })
        ));
    }
}
