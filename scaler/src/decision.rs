//! Decisions: what the scaler wants per model and variant, held in memory.
//!
//! Where to start: a [`Planner`] (the demo fleet today, the forecasting and sizing
//! pipeline later) is asked every tick by one [`Evaluator`] task; its answers become a
//! new immutable [`Snapshot`] published on a `watch` channel. The gRPC and HTTP handlers
//! only read snapshots, so every KEDA call is answered from memory whatever a backend
//! does, and a `StreamIsActive` stream wakes the moment a snapshot changes.
//!
//! Freshness is explicit: a model keeps its last good decision while evaluations fail,
//! but once that decision is older than `stale_after` it is reported unavailable (an
//! error to KEDA, which engages its fallback) rather than served as if it were current.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

/// A model and the GPU variants it can run on, as the scaler knows them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelInfo {
    /// Model name, matched exactly against trigger metadata.
    pub name: String,
    /// Variant names, matched exactly.
    pub variants: Vec<String>,
}

/// Every model the scaler answers for. A planner may change it between evaluations
/// (policies from Kubernetes define the fleet); see [`Snapshot::with_catalog`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    models: BTreeMap<String, Vec<String>>,
}

impl Catalog {
    /// Builds a catalog; later duplicates of a model name replace earlier ones.
    pub fn new(models: impl IntoIterator<Item = ModelInfo>) -> Self {
        Self {
            models: models.into_iter().map(|m| (m.name, m.variants)).collect(),
        }
    }

    /// Models in name order.
    pub fn models(&self) -> impl Iterator<Item = ModelInfo> + '_ {
        self.models.iter().map(|(name, variants)| ModelInfo {
            name: name.clone(),
            variants: variants.clone(),
        })
    }

    /// Variants of a model, or `None` for an unknown model.
    pub fn variants(&self, model: &str) -> Option<&[String]> {
        self.models.get(model).map(Vec::as_slice)
    }
}

/// One variant's wish, with its explanation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VariantDecision {
    /// Variant name (one of the catalog's).
    pub variant: String,
    /// Desired replicas; fractional values are fine (KEDA's HPA takes the ceiling).
    pub desired_replicas: f64,
    /// One human-readable line saying why.
    pub reason: String,
    /// The kind of decision, a short fixed word (`scale_up`, `scale_down`, `hold_window`,
    /// `hold_tolerance`, `steady`, `first_plan`, `capacity_rule`, ...): the structured
    /// reason, exported as `slo_scaler_decision_reason{reason}`.
    pub action: &'static str,
    /// The numbers behind the reason (e.g. `demand_upper_rps`, `capacity_per_replica_rps`,
    /// `planned_replicas`), exported to `/metrics` and `GET /models`.
    pub details: BTreeMap<&'static str, f64>,
}

/// What a planner concluded for one model in one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelOutcome {
    /// A decision for every variant of the model.
    Planned(Vec<VariantDecision>),
    /// No decision could be made (data missing, backend down); the text says why.
    Unavailable(String),
}

/// A planner's answer for one model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDecision {
    /// The model (one of the catalog's).
    pub model: String,
    /// The outcome.
    pub outcome: ModelOutcome,
}

/// The seam between serving KEDA and deciding: later issues fill it with forecasting
/// and sizing. Implementations may do I/O in `evaluate`; the evaluator bounds it with a
/// timeout, so a hanging backend only makes decisions stale.
pub trait Planner: Send + 'static {
    /// The models and variants this planner answers for.
    fn catalog(&self) -> Catalog;
    /// Decides for every model at wall-clock time `now`.
    fn evaluate(&mut self, now: SystemTime) -> impl Future<Output = Vec<ModelDecision>> + Send;
    /// The replicas running now per variant of `model`, when something other than this
    /// planner's own decisions runs the fleet (`serve --observe-only`): latency observed on
    /// the fleet must be compared with a prediction for these replicas. Default: ignored.
    fn note_running(&mut self, _model: &str, _running: &BTreeMap<String, u32>) {}
}

/// A model's state inside a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelState {
    /// The last good decision and when it was made.
    pub last_good: Option<(Instant, Vec<VariantDecision>)>,
    /// Why the latest evaluation failed, if it did.
    pub last_error: Option<String>,
}

/// The desired replica count for one lookup, with its reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// The kind of decision (a single variant's; `model_total` for a whole model).
    pub action: &'static str,
    /// The numbers behind the reason (a single variant's; empty for a whole model).
    pub details: BTreeMap<&'static str, f64>,
    /// Desired replicas (not yet quantised).
    pub replicas: f64,
    /// Why.
    pub reason: String,
    /// How old the underlying decision is.
    pub age: Duration,
}

/// Why a lookup has no answer. Maps onto gRPC codes in [`crate::keda`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LookupError {
    /// The model is not in the catalog.
    #[error("unknown model {model:?}; known models: {known}")]
    UnknownModel {
        /// As requested.
        model: String,
        /// Comma-separated catalog.
        known: String,
    },
    /// The model exists but has no such variant.
    #[error("model {model:?} has no variant {variant:?}; its variants: {known}")]
    UnknownVariant {
        /// As requested.
        model: String,
        /// As requested.
        variant: String,
        /// Comma-separated variants of the model.
        known: String,
    },
    /// The model has no decision yet, or only one older than the staleness limit.
    #[error("no current decision for model {model:?}: {why}")]
    Unavailable {
        /// The model.
        model: String,
        /// Human-readable cause (last error, age of last decision).
        why: String,
    },
}

/// An immutable view of every decision, published after each evaluation.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// What the scaler answers for.
    pub catalog: Arc<Catalog>,
    /// Per model state.
    pub models: BTreeMap<String, ModelState>,
    /// Decisions older than this are reported unavailable.
    pub stale_after: Duration,
    /// Counts evaluations, so watchers can tell snapshots apart.
    pub generation: u64,
}

impl Snapshot {
    /// A snapshot before any evaluation: every model is unavailable.
    pub fn empty(catalog: Catalog, stale_after: Duration) -> Self {
        Self {
            catalog: Arc::new(catalog),
            models: BTreeMap::new(),
            stale_after,
            generation: 0,
        }
    }

    /// Checks that a model (and variant) exist.
    pub fn check_known(&self, model: &str, variant: Option<&str>) -> Result<(), LookupError> {
        let Some(variants) = self.catalog.variants(model) else {
            return Err(LookupError::UnknownModel {
                model: model.to_string(),
                known: self
                    .catalog
                    .models()
                    .map(|m| m.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        if let Some(v) = variant
            && !variants.iter().any(|x| x == v)
        {
            return Err(LookupError::UnknownVariant {
                model: model.to_string(),
                variant: v.to_string(),
                known: variants.join(", "),
            });
        }
        Ok(())
    }

    /// The desired replicas of a variant, or of the whole model (sum of its variants)
    /// when `variant` is `None`, with the reason. The hot path ([`Snapshot::replicas`])
    /// skips building the reason.
    pub fn desired(
        &self,
        model: &str,
        variant: Option<&str>,
        now: Instant,
    ) -> Result<Desired, LookupError> {
        let (decisions, age) = self.fresh(model, variant, now)?;
        let picked = || {
            decisions
                .iter()
                .filter(move |d| variant.is_none_or(|v| d.variant == v))
        };
        Ok(Desired {
            action: match variant {
                Some(_) => picked().next().map(|d| d.action).unwrap_or("unknown"),
                None => "model_total",
            },
            details: match variant {
                Some(_) => picked()
                    .next()
                    .map(|d| d.details.clone())
                    .unwrap_or_default(),
                None => BTreeMap::new(),
            },
            replicas: picked().map(|d| d.desired_replicas).sum(),
            reason: picked()
                .map(|d| format!("{}: {}", d.variant, d.reason))
                .collect::<Vec<_>>()
                .join("; "),
            age,
        })
    }

    /// The desired replicas alone (what every KEDA call needs).
    pub fn replicas(
        &self,
        model: &str,
        variant: Option<&str>,
        now: Instant,
    ) -> Result<f64, LookupError> {
        let (decisions, _) = self.fresh(model, variant, now)?;
        Ok(decisions
            .iter()
            .filter(|d| variant.is_none_or(|v| d.variant == v))
            .map(|d| d.desired_replicas)
            .sum())
    }

    /// The model's fresh decisions (checked to cover `variant`) and their age.
    fn fresh(
        &self,
        model: &str,
        variant: Option<&str>,
        now: Instant,
    ) -> Result<(&[VariantDecision], Duration), LookupError> {
        self.check_known(model, variant)?;
        let unavailable = |why: String| LookupError::Unavailable {
            model: model.to_string(),
            why,
        };
        let state = self
            .models
            .get(model)
            .ok_or_else(|| unavailable("not evaluated yet".to_string()))?;
        let Some((at, decisions)) = &state.last_good else {
            return Err(unavailable(
                state
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "not evaluated yet".to_string()),
            ));
        };
        let age = now.saturating_duration_since(*at);
        if age > self.stale_after {
            return Err(unavailable(format!(
                "last decision is {:.0} s old (limit {:.0} s); last error: {}",
                age.as_secs_f64(),
                self.stale_after.as_secs_f64(),
                state.last_error.as_deref().unwrap_or("none")
            )));
        }
        if let Some(v) = variant
            && !decisions.iter().any(|d| d.variant == v)
        {
            return Err(unavailable(format!(
                "the planner returned no decision for variant {v:?}"
            )));
        }
        Ok((decisions, age))
    }

    /// Folds one evaluation into the next snapshot. Models missing from `decisions`
    /// keep their state; a failed model keeps its last good decision (until stale).
    pub fn apply(&self, decisions: Vec<ModelDecision>, at: Instant) -> Snapshot {
        let mut next = self.clone();
        next.generation += 1;
        for d in decisions {
            if self.catalog.variants(&d.model).is_none() {
                tracing::warn!(model = %d.model, "planner returned a model outside its catalog; ignored");
                continue;
            }
            let entry = next.models.entry(d.model).or_insert(ModelState {
                last_good: None,
                last_error: None,
            });
            match d.outcome {
                ModelOutcome::Planned(v) => {
                    // A NaN or negative wish is a planner bug; KEDA would turn it into 0
                    // and scale a busy model down, so it counts as no decision at all.
                    if let Some(bad) = v
                        .iter()
                        .find(|d| !d.desired_replicas.is_finite() || d.desired_replicas < 0.0)
                    {
                        entry.last_error = Some(format!(
                            "planner produced an invalid replica count {} for variant {:?}",
                            bad.desired_replicas, bad.variant
                        ));
                    } else {
                        entry.last_good = Some((at, v));
                        entry.last_error = None;
                    }
                }
                ModelOutcome::Unavailable(why) => entry.last_error = Some(why),
            }
        }
        next
    }

    /// The same snapshot over a changed catalog: a model that left it, or whose variants
    /// changed, loses its state (no decision of a different fleet is ever served); a new
    /// model starts unevaluated (unavailable, never a fake 0).
    pub fn with_catalog(&self, catalog: Catalog) -> Snapshot {
        let mut next = self.clone();
        next.models.retain(|m, _| {
            catalog.variants(m).is_some() && catalog.variants(m) == self.catalog.variants(m)
        });
        next.catalog = Arc::new(catalog);
        next
    }

    /// Marks every model's latest evaluation as failed (e.g. the planner timed out).
    pub fn fail_all(&self, why: &str) -> Snapshot {
        let decisions = self
            .catalog
            .models()
            .map(|m| ModelDecision {
                model: m.name,
                outcome: ModelOutcome::Unavailable(why.to_string()),
            })
            .collect();
        self.apply(decisions, Instant::now())
    }
}

/// Logs, at `info`, every variant whose desired replica count (as the HPA rounds it)
/// changed between two snapshots,
/// and every model whose decision became unavailable: what an operator wants in the log,
/// once rather than every tick.
fn log_changes(before: &Snapshot, after: &Snapshot) {
    for (model, state) in &after.models {
        let old = before.models.get(model);
        let old_good = old.and_then(|s| s.last_good.as_ref());
        if let Some((_, decisions)) = &state.last_good {
            for d in decisions {
                let prev = old_good.and_then(|(_, ds)| ds.iter().find(|x| x.variant == d.variant));
                let from = prev.map(|p| p.desired_replicas);
                // The HPA acts on ceil(value): fractional drift is not a change.
                if from.map(f64::ceil) != Some(d.desired_replicas.ceil()) {
                    tracing::info!(
                        model = %model,
                        variant = %d.variant,
                        from = from.map(|f| f.to_string()).unwrap_or_else(|| "none".into()),
                        to = d.desired_replicas,
                        reason = %d.reason,
                        "decision changed"
                    );
                }
            }
        }
        if state.last_error.is_some() && old.is_none_or(|o| o.last_error != state.last_error) {
            tracing::warn!(
                model = %model,
                reason = state.last_error.as_deref().unwrap_or(""),
                "no fresh decision"
            );
        }
    }
}

/// Settings of the evaluation loop.
#[derive(Debug, Clone, Copy)]
pub struct EvaluatorSettings {
    /// Time between evaluations.
    pub interval: Duration,
    /// Upper bound on one evaluation (backend calls included).
    pub timeout: Duration,
}

/// Runs a planner every interval and publishes snapshots. The only writer of the
/// snapshot channel.
pub struct Evaluator<P> {
    planner: P,
    settings: EvaluatorSettings,
    tx: watch::Sender<Arc<Snapshot>>,
}

impl<P: Planner> Evaluator<P> {
    /// Creates the evaluator and the receiver that readers clone.
    pub fn new(
        planner: P,
        settings: EvaluatorSettings,
        stale_after: Duration,
    ) -> (Self, watch::Receiver<Arc<Snapshot>>) {
        let (tx, rx) = watch::channel(Arc::new(Snapshot::empty(planner.catalog(), stale_after)));
        (
            Self {
                planner,
                settings,
                tx,
            },
            rx,
        )
    }

    /// Runs one evaluation and publishes its snapshot.
    pub async fn step(&mut self) {
        let started = Instant::now();
        let result = tokio::time::timeout(
            self.settings.timeout,
            self.planner.evaluate(SystemTime::now()),
        )
        .await;
        let mut current = self.tx.borrow().clone();
        // The planner's fleet may have changed during the evaluation.
        let catalog = self.planner.catalog();
        if *current.catalog != catalog {
            current = Arc::new(current.with_catalog(catalog));
        }
        let next = match result {
            Ok(decisions) => {
                for d in &decisions {
                    match &d.outcome {
                        ModelOutcome::Planned(vs) => {
                            for v in vs {
                                tracing::debug!(model = %d.model, variant = %v.variant, desired = v.desired_replicas, reason = %v.reason, "decision");
                            }
                        }
                        ModelOutcome::Unavailable(why) => {
                            tracing::debug!(model = %d.model, reason = %why, "no decision this tick")
                        }
                    }
                }
                current.apply(decisions, Instant::now())
            }
            Err(_) => {
                let why = format!(
                    "evaluation did not finish within {:.1} s",
                    self.settings.timeout.as_secs_f64()
                );
                tracing::warn!(reason = %why, "evaluation timed out");
                current.fail_all(&why)
            }
        };
        tracing::trace!(
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "evaluated"
        );
        log_changes(&current, &next);
        self.tx.send_replace(Arc::new(next));
    }

    /// Evaluates at once, then every interval, until `shutdown` resolves.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let mut ticker = tokio::time::interval(self.settings.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = ticker.tick() => self.step().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::new([ModelInfo {
            name: "m".into(),
            variants: vec!["a".into(), "b".into()],
        }])
    }

    fn planned(a: f64, b: f64) -> Vec<ModelDecision> {
        vec![ModelDecision {
            model: "m".into(),
            outcome: ModelOutcome::Planned(vec![
                VariantDecision {
                    variant: "a".into(),
                    desired_replicas: a,
                    reason: "ra".into(),
                    action: "steady",
                    details: BTreeMap::new(),
                },
                VariantDecision {
                    variant: "b".into(),
                    desired_replicas: b,
                    reason: "rb".into(),
                    action: "steady",
                    details: BTreeMap::new(),
                },
            ]),
        }]
    }

    #[test]
    fn unknown_names_and_missing_data_are_distinct_errors() {
        let s = Snapshot::empty(catalog(), Duration::from_secs(60));
        let now = Instant::now();
        assert!(matches!(
            s.desired("x", None, now),
            Err(LookupError::UnknownModel { .. })
        ));
        assert!(matches!(
            s.desired("m", Some("c"), now),
            Err(LookupError::UnknownVariant { .. })
        ));
        assert!(matches!(
            s.desired("m", None, now),
            Err(LookupError::Unavailable { .. })
        ));
    }

    #[test]
    fn model_total_is_sum_of_variants() {
        let t0 = Instant::now();
        let s = Snapshot::empty(catalog(), Duration::from_secs(60)).apply(planned(1.5, 2.25), t0);
        assert_eq!(s.desired("m", Some("a"), t0).unwrap().replicas, 1.5);
        assert_eq!(s.desired("m", None, t0).unwrap().replicas, 3.75);
    }

    #[test]
    fn failures_keep_last_good_until_stale() {
        let t0 = Instant::now();
        let s = Snapshot::empty(catalog(), Duration::from_secs(60)).apply(planned(2.0, 0.0), t0);
        let s = s.fail_all("prometheus down");
        assert_eq!(
            s.desired("m", Some("a"), t0 + Duration::from_secs(30))
                .unwrap()
                .replicas,
            2.0
        );
        let err = s
            .desired("m", Some("a"), t0 + Duration::from_secs(61))
            .unwrap_err();
        assert!(err.to_string().contains("prometheus down"), "{err}");
        // Never a fake zero: an evaluation that never succeeded is unavailable.
        let s = Snapshot::empty(catalog(), Duration::from_secs(60)).fail_all("no data");
        assert!(matches!(
            s.desired("m", None, t0),
            Err(LookupError::Unavailable { .. })
        ));
    }

    #[test]
    fn nan_or_negative_decisions_are_never_served() {
        let t0 = Instant::now();
        let s = Snapshot::empty(catalog(), Duration::from_secs(60)).apply(planned(2.0, 1.0), t0);
        let s = s.apply(planned(f64::NAN, 1.0), t0);
        // The last good decision stands; the error is recorded.
        assert_eq!(s.desired("m", Some("a"), t0).unwrap().replicas, 2.0);
        assert!(s.models["m"].last_error.as_deref().unwrap().contains("NaN"));
        let s = Snapshot::empty(catalog(), Duration::from_secs(60)).apply(planned(-1.0, 1.0), t0);
        assert!(matches!(
            s.desired("m", Some("b"), t0),
            Err(LookupError::Unavailable { .. })
        ));
    }

    struct Hanging;
    impl Planner for Hanging {
        fn catalog(&self) -> Catalog {
            catalog()
        }
        async fn evaluate(&mut self, _now: SystemTime) -> Vec<ModelDecision> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn a_hanging_planner_is_cut_off_by_the_timeout() {
        let (mut ev, rx) = Evaluator::new(
            Hanging,
            EvaluatorSettings {
                interval: Duration::from_secs(1),
                timeout: Duration::from_millis(50),
            },
            Duration::from_secs(60),
        );
        let started = Instant::now();
        ev.step().await;
        assert!(started.elapsed() < Duration::from_secs(1));
        let snap = rx.borrow().clone();
        assert_eq!(snap.generation, 1);
        let err = snap.desired("m", None, Instant::now()).unwrap_err();
        assert!(err.to_string().contains("did not finish"), "{err}");
    }
}
