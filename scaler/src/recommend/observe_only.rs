//! `serve --observe-only`: every decision is computed and exported, but KEDA is answered
//! with the replicas running now, so operators can compare before handing over the fleet.
//!
//! Where to start: [`ObserveOnly`] wraps any [`Planner`]. Each tick it asks the inner
//! planner, reads the running replicas from a [`CurrentReplicas`] source, and answers each
//! variant with the running count; the decision itself stays in the details
//! (`recommended_replicas`, `current_replicas`, and every number of the inner decision,
//! exported as `slo_scaler_decision_detail` and in `GET /models`), in the reason, and in
//! the `action` label. A recommendation that changes is logged at `info`.
//!
//! Where running replicas come from:
//! - Prometheus ([`PrometheusReplicas`]): the number of engines reporting the preset's
//!   running-requests gauge (`count by (<variant_label>) (vllm:num_requests_running{…})`),
//!   or a query of the operator's (e.g. kube-state-metrics'
//!   `kube_deployment_status_replicas_ready{deployment="{model}-{variant}"}`).
//! - Direct scrapes ([`ScrapeReplicas`]): the endpoints configured for the variant (the
//!   model is unavailable anyway when one of them does not answer).
//!
//! Unknown counts are never a 0: the model is reported unavailable (an error to KEDA,
//! whose fallback engages), with the recommendation in the message.

use std::collections::BTreeMap;
use std::time::SystemTime;

use futures::future::BoxFuture;

use crate::config::{Config, DemandConfig};
use crate::decision::{Catalog, ModelDecision, ModelOutcome, Planner};
use crate::metrics::prometheus::{PromApi, PrometheusClient};
use crate::metrics::{MetricsError, preset};

/// Running replicas per variant of a model.
pub trait CurrentReplicas: Send + Sync + 'static {
    /// The running replicas of every variant of `model`, or why they are unknown.
    fn read<'a>(
        &'a self,
        model: &'a str,
        variants: &'a [String],
    ) -> BoxFuture<'a, Result<BTreeMap<String, u32>, String>>;
}

/// A planner whose answers to KEDA are the running replicas.
pub struct ObserveOnly<P> {
    inner: P,
    /// `None`: pass-through (`serve` without `--observe-only`).
    current: Option<Box<dyn CurrentReplicas>>,
    /// The last recommendation per (model, variant), to log changes once.
    last: BTreeMap<(String, String), u32>,
}

impl<P: Planner> ObserveOnly<P> {
    /// Wraps `inner`.
    pub fn new(inner: P, current: Box<dyn CurrentReplicas>) -> Self {
        Self::maybe(inner, Some(current))
    }

    /// Wraps `inner` when `current` is given; otherwise answers exactly as `inner`.
    pub fn maybe(inner: P, current: Option<Box<dyn CurrentReplicas>>) -> Self {
        Self {
            inner,
            current,
            last: BTreeMap::new(),
        }
    }
}

impl<P: Planner + Sync> Planner for ObserveOnly<P> {
    fn catalog(&self) -> Catalog {
        self.inner.catalog()
    }

    async fn evaluate(&mut self, now: SystemTime) -> Vec<ModelDecision> {
        let Some(current) = &self.current else {
            return self.inner.evaluate(now).await;
        };
        // Running counts first: the planner's latency correction compares what the engines
        // report with a prediction for the replicas that run, not for its own unapplied
        // decisions.
        let catalog = self.inner.catalog();
        let mut running = BTreeMap::new();
        for m in catalog.models() {
            let counts = current.read(&m.name, &m.variants).await;
            if let Ok(c) = &counts {
                self.inner.note_running(&m.name, c);
            }
            running.insert(m.name, counts);
        }
        let decisions = self.inner.evaluate(now).await;
        let mut out = Vec::with_capacity(decisions.len());
        for d in decisions {
            let counts = running
                .remove(&d.model)
                .unwrap_or_else(|| Err("not in the catalog".to_string()));
            let outcome = match (d.outcome, counts) {
                (ModelOutcome::Unavailable(why), _) => ModelOutcome::Unavailable(why),
                (ModelOutcome::Planned(vs), Err(why)) => {
                    let would = vs
                        .iter()
                        .map(|v| format!("{}={}", v.variant, v.desired_replicas))
                        .collect::<Vec<_>>()
                        .join(" ");
                    ModelOutcome::Unavailable(format!(
                        "observe-only: running replicas unknown ({why}); the scaler would ask for {would}"
                    ))
                }
                (ModelOutcome::Planned(vs), Ok(counts)) => {
                    let mut answered = Vec::with_capacity(vs.len());
                    let mut missing = None;
                    for mut v in vs {
                        let Some(&running) = counts.get(&v.variant) else {
                            missing = Some(v.variant.clone());
                            break;
                        };
                        let recommended = v.desired_replicas;
                        let key = (d.model.clone(), v.variant.clone());
                        if self.last.get(&key) != Some(&(recommended.ceil() as u32)) {
                            tracing::info!(
                                model = %d.model,
                                variant = %v.variant,
                                running,
                                recommended,
                                reason = %v.reason,
                                "observe-only: recommendation changed"
                            );
                            self.last.insert(key, recommended.ceil() as u32);
                        }
                        v.details.insert("recommended_replicas", recommended);
                        v.details.insert("current_replicas", f64::from(running));
                        v.details.insert("observe_only", 1.0);
                        v.reason = format!(
                            "observe-only: answering the {running} running replica(s); would ask for {recommended}: {}",
                            v.reason
                        );
                        v.desired_replicas = f64::from(running);
                        answered.push(v);
                    }
                    match missing {
                        Some(variant) => ModelOutcome::Unavailable(format!(
                            "observe-only: running replicas of variant {variant:?} unknown"
                        )),
                        None => ModelOutcome::Planned(answered),
                    }
                }
            };
            out.push(ModelDecision {
                model: d.model,
                outcome,
            });
        }
        out
    }
}

/// Running replicas counted by PromQL.
pub struct PrometheusReplicas<A> {
    api: A,
    /// Per model: the query and the label telling variants apart (`None`: one variant, or
    /// a per-variant template).
    queries: BTreeMap<String, ReplicaQuery>,
}

/// How one model's replicas are counted.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplicaQuery {
    /// One query grouped by the variant label (or ungrouped for a one-variant model).
    Grouped {
        /// The PromQL.
        query: String,
        /// The label naming the variant; `None` when the model has one variant.
        variant_label: Option<String>,
    },
    /// A template with `{model}` and `{variant}`, evaluated once per variant.
    PerVariant(String),
    /// No way to tell variants apart: why.
    Unknown(String),
}

/// The engine-count query of a Prometheus-observed model: how many engines report the
/// running-requests gauge.
pub fn engine_count_query(
    model: &str,
    demand: &crate::config::ObservedDemand,
    variants: usize,
) -> ReplicaQuery {
    let p = demand.engine.preset();
    let label = demand
        .model_label
        .clone()
        .or_else(|| p.model_label.map(str::to_string));
    let served = demand
        .served_name
        .clone()
        .unwrap_or_else(|| model.to_string());
    let sel = preset::selector(label.as_deref(), &served, demand.matchers.as_deref());
    let names: &[&str] = match p.running {
        preset::SignalSource::GaugeSum(n) | preset::SignalSource::GaugeMean(n) => n,
        _ => &[],
    };
    if names.is_empty() {
        return ReplicaQuery::Unknown("the engine preset has no per-engine gauge to count".into());
    }
    if variants > 1 && demand.variant_label.is_none() {
        return ReplicaQuery::Unknown(format!(
            "model {model:?} has {variants} variants but no demand.variant_label to tell their \
             engines apart; set it, or pass --current-replicas-query"
        ));
    }
    let by = demand
        .variant_label
        .as_ref()
        .map(|l| format!(" by ({l})"))
        .unwrap_or_default();
    ReplicaQuery::Grouped {
        query: names
            .iter()
            .map(|n| format!("(count{by} ({n}{sel}))"))
            .collect::<Vec<_>>()
            .join(" or "),
        variant_label: demand.variant_label.clone(),
    }
}

impl PrometheusReplicas<PrometheusClient> {
    /// For every Prometheus-observed model of `config`: `template` (with `{model}` and
    /// `{variant}`) when given, else the engine count.
    pub fn from_config(config: &Config, template: Option<&str>) -> Result<Self, MetricsError> {
        let p = config.metrics.prometheus.as_ref().ok_or_else(|| {
            MetricsError::Config(
                "observe-only counts running replicas through Prometheus: set metrics.prometheus"
                    .into(),
            )
        })?;
        let mut queries = BTreeMap::new();
        for m in &config.models {
            let q = match (&m.demand, template) {
                (_, Some(t)) => ReplicaQuery::PerVariant(t.to_string()),
                (DemandConfig::Prometheus(d), None) => {
                    engine_count_query(&m.name, d, m.variants.len())
                }
                _ => ReplicaQuery::Unknown(format!(
                    "model {:?} is not observed through Prometheus; pass --current-replicas-query",
                    m.name
                )),
            };
            queries.insert(m.name.clone(), q);
        }
        Ok(Self {
            api: PrometheusClient::new(p)?,
            queries,
        })
    }
}

impl<A: PromApi> PrometheusReplicas<A> {
    /// Over any [`PromApi`] (tests).
    pub fn new(api: A, queries: BTreeMap<String, ReplicaQuery>) -> Self {
        Self { api, queries }
    }

    async fn count(&self, query: &str) -> Result<Vec<(BTreeMap<String, String>, u32)>, String> {
        let r = self.api.instant(query).await.map_err(|e| e.to_string())?;
        if r.series.is_empty() {
            return Err(format!(
                "{query} returned no series (are the engines up and scraped?)"
            ));
        }
        r.series
            .into_iter()
            .map(|(labels, v)| {
                if v.is_finite() && v >= 0.0 {
                    Ok((labels, v.round() as u32))
                } else {
                    Err(format!("{query} returned {v}, expected a count >= 0"))
                }
            })
            .collect()
    }
}

impl<A: PromApi> CurrentReplicas for PrometheusReplicas<A> {
    fn read<'a>(
        &'a self,
        model: &'a str,
        variants: &'a [String],
    ) -> BoxFuture<'a, Result<BTreeMap<String, u32>, String>> {
        Box::pin(async move {
            let q = self
                .queries
                .get(model)
                .ok_or_else(|| format!("no replica query for model {model:?}"))?;
            let mut out = BTreeMap::new();
            match q {
                ReplicaQuery::Unknown(why) => return Err(why.clone()),
                ReplicaQuery::PerVariant(t) => {
                    for v in variants {
                        let query = t.replace("{model}", model).replace("{variant}", v);
                        let n = self.count(&query).await?.iter().map(|(_, n)| n).sum();
                        out.insert(v.clone(), n);
                    }
                }
                ReplicaQuery::Grouped {
                    query,
                    variant_label,
                } => {
                    let series = self.count(query).await?;
                    match variant_label {
                        None => {
                            let v = variants.first().ok_or("the model has no variant")?;
                            out.insert(v.clone(), series.iter().map(|(_, n)| n).sum());
                        }
                        Some(l) => {
                            // Prometheus answered for some variant: one with no engine
                            // reporting has none running.
                            for v in variants {
                                out.insert(v.clone(), 0);
                            }
                            for (labels, n) in series {
                                if let Some(v) = labels.get(l)
                                    && let Some(slot) = out.get_mut(v)
                                {
                                    *slot += n;
                                }
                            }
                        }
                    }
                }
            }
            Ok(out)
        })
    }
}

/// Running replicas of scrape-observed models: the endpoints configured per variant.
pub struct ScrapeReplicas(BTreeMap<(String, String), u32>);

impl ScrapeReplicas {
    /// From `metrics.scrape.endpoints`.
    pub fn from_config(config: &Config) -> Self {
        let mut counts = BTreeMap::new();
        if let Some(s) = &config.metrics.scrape {
            for e in &s.endpoints {
                *counts
                    .entry((e.model.clone(), e.variant.clone()))
                    .or_insert(0) += 1;
            }
        }
        Self(counts)
    }
}

impl CurrentReplicas for ScrapeReplicas {
    fn read<'a>(
        &'a self,
        model: &'a str,
        variants: &'a [String],
    ) -> BoxFuture<'a, Result<BTreeMap<String, u32>, String>> {
        Box::pin(async move {
            if !self.0.keys().any(|(m, _)| m == model) {
                return Err(format!(
                    "no scrape endpoint is configured for model {model:?}"
                ));
            }
            Ok(variants
                .iter()
                .map(|v| {
                    (
                        v.clone(),
                        self.0
                            .get(&(model.to_string(), v.clone()))
                            .copied()
                            .unwrap_or(0),
                    )
                })
                .collect())
        })
    }
}

/// Prometheus for Prometheus-observed models, endpoint counts for scraped ones; the
/// per-variant query, when given, for every model.
pub struct ConfigReplicas {
    prometheus: Option<PrometheusReplicas<PrometheusClient>>,
    scrape: ScrapeReplicas,
    scraped: Vec<String>,
}

impl ConfigReplicas {
    /// The source `serve --observe-only` uses for `config`.
    pub fn from_config(config: &Config, template: Option<&str>) -> Result<Self, MetricsError> {
        let needs_prometheus = template.is_some()
            || config
                .models
                .iter()
                .any(|m| matches!(m.demand, DemandConfig::Prometheus(_)));
        Ok(Self {
            prometheus: if needs_prometheus {
                Some(PrometheusReplicas::from_config(config, template)?)
            } else {
                None
            },
            scrape: ScrapeReplicas::from_config(config),
            scraped: config
                .models
                .iter()
                .filter(|m| template.is_none() && matches!(m.demand, DemandConfig::Scrape(_)))
                .map(|m| m.name.clone())
                .collect(),
        })
    }
}

impl CurrentReplicas for ConfigReplicas {
    fn read<'a>(
        &'a self,
        model: &'a str,
        variants: &'a [String],
    ) -> BoxFuture<'a, Result<BTreeMap<String, u32>, String>> {
        if self.scraped.iter().any(|m| m == model) {
            return self.scrape.read(model, variants);
        }
        match &self.prometheus {
            Some(p) => p.read(model, variants),
            None => Box::pin(async move {
                Err(format!(
                    "model {model:?} has fixed or synthetic demand: no running replicas to \
                     read; pass --current-replicas-query with metrics.prometheus set"
                ))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{ModelInfo, VariantDecision};

    struct Fixed(Vec<ModelDecision>);
    impl Planner for Fixed {
        fn catalog(&self) -> Catalog {
            Catalog::new([ModelInfo {
                name: "m".into(),
                variants: vec!["a".into(), "b".into()],
            }])
        }
        async fn evaluate(&mut self, _now: SystemTime) -> Vec<ModelDecision> {
            self.0.clone()
        }
    }

    struct Counts(Result<BTreeMap<String, u32>, String>);
    impl CurrentReplicas for Counts {
        fn read<'a>(
            &'a self,
            _m: &'a str,
            _v: &'a [String],
        ) -> BoxFuture<'a, Result<BTreeMap<String, u32>, String>> {
            let r = self.0.clone();
            Box::pin(async move { r })
        }
    }

    fn planned() -> Vec<ModelDecision> {
        let v = |name: &str, n: f64| VariantDecision {
            variant: name.into(),
            desired_replicas: n,
            reason: "because".into(),
            action: "scale_up",
            details: BTreeMap::from([("planned_replicas", n)]),
        };
        vec![ModelDecision {
            model: "m".into(),
            outcome: ModelOutcome::Planned(vec![v("a", 5.0), v("b", 0.0)]),
        }]
    }

    #[tokio::test]
    async fn answers_running_counts_and_keeps_the_decision_in_the_details() {
        let counts = BTreeMap::from([("a".to_string(), 2), ("b".to_string(), 1)]);
        let mut p = ObserveOnly::new(Fixed(planned()), Box::new(Counts(Ok(counts))));
        let d = p.evaluate(SystemTime::now()).await;
        let ModelOutcome::Planned(vs) = &d[0].outcome else {
            panic!("{d:?}")
        };
        assert_eq!(vs[0].desired_replicas, 2.0);
        assert_eq!(vs[0].details["recommended_replicas"], 5.0);
        assert_eq!(vs[0].details["current_replicas"], 2.0);
        assert_eq!(vs[0].action, "scale_up");
        assert!(vs[0].reason.contains("would ask for 5"), "{}", vs[0].reason);
        assert_eq!(vs[1].desired_replicas, 1.0);
    }

    /// The planner learns the running counts before it decides, so its latency correction
    /// compares against the replicas that run, not its own unapplied decisions.
    #[tokio::test]
    async fn the_planner_is_told_the_running_replicas_before_it_decides() {
        struct Recording {
            noted: Option<BTreeMap<String, u32>>,
            known_at_evaluate: bool,
        }
        impl Planner for Recording {
            fn catalog(&self) -> Catalog {
                Fixed(vec![]).catalog()
            }
            async fn evaluate(&mut self, _now: SystemTime) -> Vec<ModelDecision> {
                self.known_at_evaluate = self.noted.is_some();
                planned()
            }
            fn note_running(&mut self, model: &str, running: &BTreeMap<String, u32>) {
                assert_eq!(model, "m");
                self.noted = Some(running.clone());
            }
        }
        let counts = BTreeMap::from([("a".to_string(), 2), ("b".to_string(), 1)]);
        let inner = Recording {
            noted: None,
            known_at_evaluate: false,
        };
        let mut p = ObserveOnly::new(inner, Box::new(Counts(Ok(counts.clone()))));
        let d = p.evaluate(SystemTime::now()).await;
        assert!(p.inner.known_at_evaluate);
        assert_eq!(p.inner.noted, Some(counts));
        assert!(matches!(d[0].outcome, ModelOutcome::Planned(_)), "{d:?}");
        // Unknown counts are not passed on (and the model is unavailable, as before).
        let inner = Recording {
            noted: None,
            known_at_evaluate: false,
        };
        let mut p = ObserveOnly::new(inner, Box::new(Counts(Err("down".into()))));
        p.evaluate(SystemTime::now()).await;
        assert_eq!(p.inner.noted, None);
    }

    #[tokio::test]
    async fn unknown_counts_are_unavailable_never_zero() {
        let mut p = ObserveOnly::new(
            Fixed(planned()),
            Box::new(Counts(Err("prometheus down".into()))),
        );
        let d = p.evaluate(SystemTime::now()).await;
        let ModelOutcome::Unavailable(why) = &d[0].outcome else {
            panic!("{d:?}")
        };
        assert!(
            why.contains("prometheus down") && why.contains("a=5"),
            "{why}"
        );
        // A count missing for one variant is unknown too.
        let mut p = ObserveOnly::new(
            Fixed(planned()),
            Box::new(Counts(Ok(BTreeMap::from([("a".to_string(), 2)])))),
        );
        let d = p.evaluate(SystemTime::now()).await;
        assert!(
            matches!(d[0].outcome, ModelOutcome::Unavailable(_)),
            "{d:?}"
        );
    }

    #[test]
    fn engine_count_needs_a_variant_label_for_several_variants() {
        let d: crate::config::ObservedDemand = serde_json::from_value(serde_json::json!({
            "engine": "vllm", "served_name": "meta/llama"
        }))
        .unwrap();
        let ReplicaQuery::Grouped { query, .. } = engine_count_query("llama", &d, 1) else {
            panic!()
        };
        assert_eq!(
            query,
            "(count (vllm:num_requests_running{model_name=\"meta/llama\"}))"
        );
        assert!(matches!(
            engine_count_query("llama", &d, 2),
            ReplicaQuery::Unknown(_)
        ));
    }
}
