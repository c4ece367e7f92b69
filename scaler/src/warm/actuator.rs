//! The warm-pool actuator: one round per variant reads the pods and their engines, plans
//! ([`super::actuation::plan`]) and, on the Lease holder only, carries the plan out:
//! serving labels, sleeps, wakes, and deletion costs before a scale-down.
//!
//! Where to start: [`Actuator::round`]. Followers run the same reads and plan (so their
//! KEDA answers include the same cold fallback, read from the pods' wake-failed
//! annotations) but send no sleep, wake or patch.
//!
//! A sleep is two rounds: the label goes to `serving=false` first (the Service stops
//! routing to the pod), and the engine is put to sleep at a later round once no request is
//! running on it. A wake is verified before the label goes back to `serving=true`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;

use super::actuation::{
    Action, DELETION_COST, EngineState, KvFacts, PodFacts, StepOutcome, TierTarget, VariantPlan,
    WAKE_FAILED, plan, reason_after,
};
use super::engine::{EngineControl, EngineError, sleep_verified, wake_verified};
use super::kv_value::{KvWeights, deletion_costs};
use crate::k8s::deletion_cost::{CostWrites, DeletionCostWriter};
use crate::k8s::serving_label::{PodInfo, Pods};
use crate::metrics::exposition;
use crate::metrics::scrape::Fetcher;

/// vLLM's series behind [`KvFacts`] (older names after the newer).
const PREFIX_HITS: &[&str] = &[
    "vllm:prefix_cache_hits_total",
    "vllm:gpu_prefix_cache_hits_total",
];
const KV_USAGE: &[&str] = &["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"];
const RUNNING: &[&str] = &["vllm:num_requests_running"];

/// One variant's engine pods.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantPods {
    /// Model.
    pub model: String,
    /// Variant.
    pub variant: String,
    /// Namespace of the pods.
    pub namespace: String,
    /// Their label selector.
    pub selector: String,
}

/// What one round did for one variant.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantReport {
    /// Model.
    pub model: String,
    /// Variant.
    pub variant: String,
    /// The target it worked towards.
    pub target: TierTarget,
    /// The plan (`None` when the pods could not be listed).
    pub plan: Option<VariantPlan>,
    /// What each step did (empty on followers).
    pub outcomes: Vec<StepOutcome>,
    /// Deletion-cost writes, when a scale-down was pending on the leader.
    pub costs: Option<CostWrites>,
    /// Replicas KEDA should be told.
    pub keda_replicas: u32,
    /// The reason line, failures included.
    pub reason: String,
}

/// Addresses engines on their pod IP.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineAddress {
    /// `http` or `https`.
    pub scheme: String,
    /// Port.
    pub port: u16,
}

impl EngineAddress {
    /// `scheme://ip:port`.
    pub fn base(&self, ip: &str) -> String {
        if ip.contains(':') {
            format!("{}://[{ip}]:{}", self.scheme, self.port)
        } else {
            format!("{}://{ip}:{}", self.scheme, self.port)
        }
    }
}

/// The actuator's I/O and memory (prefix-hit counters for rates).
pub struct Actuator {
    client: kube::Client,
    engine: Arc<dyn EngineControl>,
    fetcher: Arc<dyn Fetcher>,
    address: EngineAddress,
    weights: KvWeights,
    costs: DeletionCostWriter,
    /// `namespace/pod` → (when, prefix-hit tokens counter).
    hits: BTreeMap<String, (Instant, f64)>,
}

fn sum_of(samples: &[exposition::Sample], names: &[&str]) -> Option<f64> {
    names.iter().find_map(|n| {
        let v: Vec<f64> = samples
            .iter()
            .filter(|s| s.name == *n && s.value.is_finite())
            .map(|s| s.value)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum())
    })
}

impl Actuator {
    /// An actuator over these clients.
    pub fn new(
        client: kube::Client,
        engine: Arc<dyn EngineControl>,
        fetcher: Arc<dyn Fetcher>,
        address: EngineAddress,
        weights: KvWeights,
        costs: DeletionCostWriter,
    ) -> Self {
        Self {
            client,
            engine,
            fetcher,
            address,
            weights,
            costs,
            hits: BTreeMap::new(),
        }
    }

    async fn engine_facts(&self, base: &str) -> (EngineState, Option<(f64, f64, f64)>) {
        let state = match self.engine.is_sleeping(base).await {
            Ok(true) => EngineState::Asleep,
            Ok(false) => EngineState::Awake,
            Err(EngineError::SleepModeOff { .. }) => EngineState::NoSleepMode,
            Err(e) => EngineState::Unknown(e.to_string()),
        };
        if state == EngineState::Asleep {
            return (state, None);
        }
        let url = format!("{}/metrics", base.trim_end_matches('/'));
        let raw = match self.fetcher.fetch(&url).await {
            Ok(text) => exposition::parse(&text).ok().map(|samples| {
                (
                    sum_of(&samples, PREFIX_HITS).unwrap_or(0.0),
                    sum_of(&samples, KV_USAGE).unwrap_or(0.0),
                    sum_of(&samples, RUNNING).unwrap_or(0.0),
                )
            }),
            Err(e) => {
                tracing::debug!(%url, error = %e, "engine metrics unreadable; KV value unknown");
                None
            }
        };
        (state, raw)
    }

    /// Reads a variant's pods and their engines (no writes).
    pub async fn observe(
        &mut self,
        v: &VariantPods,
        now: Instant,
    ) -> Result<(Pods, Vec<PodInfo>, Vec<PodFacts>), crate::k8s::serving_label::PodError> {
        let pods = Pods::new(self.client.clone(), &v.namespace);
        let infos = pods.list(&v.selector).await?;
        let reads = infos.iter().map(|p| async {
            // Unready pods are read too: an engine whose health check fails while asleep
            // is still a warm replica to wake.
            match (&p.ip, p.terminating) {
                (Some(ip), false) => self.engine_facts(&self.address.base(ip)).await,
                _ => (
                    EngineState::Unknown("pod has no IP or is terminating".into()),
                    None,
                ),
            }
        });
        let read = join_all(reads).await;
        let mut facts = Vec::with_capacity(infos.len());
        for (info, (engine, raw)) in infos.iter().zip(read) {
            let key = format!("{}/{}", v.namespace, info.name);
            let kv = raw.map(|(hits, usage, running)| {
                let rate = match self.hits.insert(key.clone(), (now, hits)) {
                    Some((at, prev)) if hits >= prev => {
                        let dt = now.saturating_duration_since(at).as_secs_f64();
                        if dt > 0.0 { (hits - prev) / dt } else { 0.0 }
                    }
                    // First sight, or a counter reset (a restart: the cache is empty).
                    _ => 0.0,
                };
                KvFacts {
                    prefix_hit_tokens_per_s: rate,
                    kv_usage: usage,
                    running,
                }
            });
            facts.push(PodFacts {
                name: info.name.clone(),
                ready: info.ready,
                engine,
                serving: info.serving(),
                wake_failed: info.annotations.get(WAKE_FAILED).cloned(),
                kv,
                deletion_cost: info
                    .annotations
                    .get(DELETION_COST)
                    .and_then(|c| c.parse().ok()),
            });
        }
        let live: Vec<String> = infos
            .iter()
            .map(|p| format!("{}/{}", v.namespace, p.name))
            .collect();
        let prefix = format!("{}/", v.namespace);
        self.hits
            .retain(|k, _| !k.starts_with(&prefix) || live.contains(k));
        Ok((pods, infos, facts))
    }

    /// One round for one variant; `act` is leadership.
    pub async fn round(
        &mut self,
        v: &VariantPods,
        target: TierTarget,
        act: bool,
        now: Instant,
    ) -> VariantReport {
        let (pods, infos, facts) = match self.observe(v, now).await {
            Ok(x) => x,
            Err(e) => {
                return VariantReport {
                    model: v.model.clone(),
                    variant: v.variant.clone(),
                    target,
                    plan: None,
                    outcomes: Vec::new(),
                    costs: None,
                    keda_replicas: target.pods(),
                    reason: format!("warm pool: pods unreadable, tiers not actuated: {e}"),
                };
            }
        };
        let p = plan(target, &facts, &self.weights);
        let mut outcomes = Vec::new();
        let mut costs = None;
        if act {
            let ip_of = |name: &str| {
                infos
                    .iter()
                    .find(|i| i.name == name)
                    .and_then(|i| i.ip.clone())
            };
            for a in &p.actions {
                let outcome = self.execute(&pods, a, ip_of(name_of(a)).as_deref()).await;
                log_outcome(v, &outcome);
                outcomes.push(outcome);
            }
            if (facts.len() as u32) > p.keda_replicas {
                let wanted = deletion_costs(&facts, &self.weights);
                let current: BTreeMap<&str, Option<i32>> = facts
                    .iter()
                    .map(|f| (f.name.as_str(), f.deletion_cost))
                    .collect();
                let r = self
                    .costs
                    .write(&pods, &wanted, |n| current.get(n).copied().flatten(), now)
                    .await;
                costs = Some(match r {
                    Ok(w) => w,
                    Err((w, e)) => {
                        tracing::warn!(model = %v.model, variant = %v.variant, error = %e, "deletion-cost patch failed");
                        w
                    }
                });
                if let Some(c) = &costs {
                    tracing::info!(
                        model = %v.model,
                        variant = %v.variant,
                        pods = facts.len(),
                        wanted = p.keda_replicas,
                        written = c.written.len(),
                        deferred = c.deferred,
                        first_removed = wanted.first().map(|(n, _)| n.as_str()).unwrap_or(""),
                        "deletion costs set before scale-down"
                    );
                }
            }
        }
        let reason = reason_after(&p, &outcomes);
        // A wake that failed in this round already needs its cold replacement.
        let new_failures = outcomes
            .iter()
            .filter(|o| matches!(o, StepOutcome::WakeFailed(..)))
            .count() as u32;
        let keda_replicas = p.keda_replicas + new_failures;
        VariantReport {
            model: v.model.clone(),
            variant: v.variant.clone(),
            target,
            plan: Some(p),
            outcomes,
            costs,
            keda_replicas,
            reason,
        }
    }

    async fn execute(&self, pods: &Pods, action: &Action, ip: Option<&str>) -> StepOutcome {
        let patch_failed = |e: crate::k8s::serving_label::PodError| {
            StepOutcome::PatchFailed(action.clone(), e.to_string())
        };
        match action {
            Action::MarkServing(name) => match pods.set_serving(name, true).await {
                Ok(()) => StepOutcome::Done(action.clone()),
                Err(e) => patch_failed(e),
            },
            Action::MarkNotServing(name) | Action::Drain(name) => {
                match pods.set_serving(name, false).await {
                    Ok(()) => StepOutcome::Done(action.clone()),
                    Err(e) => patch_failed(e),
                }
            }
            Action::Sleep(name) => {
                let Some(ip) = ip else {
                    return StepOutcome::SleepFailed(name.clone(), "pod has no IP".into());
                };
                // The label is already false (drained in an earlier round); make sure.
                if let Err(e) = pods.set_serving(name, false).await {
                    return patch_failed(e);
                }
                match sleep_verified(self.engine.as_ref(), &self.address.base(ip)).await {
                    Ok(_) => StepOutcome::Done(action.clone()),
                    Err(e) => {
                        // Capacity is never silently lost: back to serving.
                        if let Err(pe) = pods.set_serving(name, true).await {
                            return StepOutcome::SleepFailed(
                                name.clone(),
                                format!("{e}; restoring the serving label also failed: {pe}"),
                            );
                        }
                        StepOutcome::SleepFailed(name.clone(), e.to_string())
                    }
                }
            }
            Action::Wake(name) => {
                let Some(ip) = ip else {
                    return StepOutcome::WakeFailed(name.clone(), "pod has no IP".into());
                };
                match wake_verified(self.engine.as_ref(), &self.address.base(ip)).await {
                    Ok(_) => match pods.set_serving(name, true).await {
                        Ok(()) => StepOutcome::Done(action.clone()),
                        Err(e) => patch_failed(e),
                    },
                    Err(e) => {
                        let why = e.to_string();
                        if let Err(pe) = pods.mark_wake_failed(name, &why).await {
                            tracing::warn!(pod = %name, error = %pe, "could not annotate the failed wake");
                        }
                        StepOutcome::WakeFailed(name.clone(), why)
                    }
                }
            }
        }
    }
}

fn name_of(a: &Action) -> &str {
    match a {
        Action::Sleep(n)
        | Action::Wake(n)
        | Action::Drain(n)
        | Action::MarkServing(n)
        | Action::MarkNotServing(n) => n,
    }
}

fn log_outcome(v: &VariantPods, o: &StepOutcome) {
    match o {
        StepOutcome::Done(a) => {
            tracing::info!(model = %v.model, variant = %v.variant, action = ?a, "warm pool step done")
        }
        StepOutcome::SleepFailed(pod, why) => {
            tracing::warn!(model = %v.model, variant = %v.variant, %pod, error = %why, "sleep failed; the replica stays hot")
        }
        StepOutcome::WakeFailed(pod, why) => {
            tracing::warn!(model = %v.model, variant = %v.variant, %pod, error = %why, "wake failed; falling back to a cold scale-up")
        }
        StepOutcome::PatchFailed(a, why) => {
            tracing::warn!(model = %v.model, variant = %v.variant, action = ?a, error = %why, "pod patch failed")
        }
    }
}

/// Builds the actuator from the `warm_pool` config and starts it
/// ([`super::tiered::spawn_actuator`]).
pub fn spawn_from_config(
    client: kube::Client,
    config: &super::settings::WarmPoolConfig,
    targets: tokio::sync::watch::Receiver<super::tiered::Targets>,
    leader: tokio::sync::watch::Receiver<bool>,
    reports: super::tiered::Reports,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let engine = super::engine::HttpEngine::new(config.timeouts()).map_err(anyhow::Error::msg)?;
    let fetcher = crate::metrics::scrape::HttpFetcher::new(config.timeouts().call)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let actuator = Actuator::new(
        client,
        Arc::new(engine),
        Arc::new(fetcher),
        EngineAddress {
            scheme: config.engine_scheme.clone(),
            port: config.engine_port,
        },
        config.kv_weights,
        DeletionCostWriter::new(crate::k8s::deletion_cost::PatchBudget::new(
            config.cost_patches_per_s,
            config.cost_patch_burst,
        )),
    );
    let variants = config
        .variants
        .iter()
        .map(|v| VariantPods {
            model: v.model.clone(),
            variant: v.variant.clone(),
            namespace: v.namespace.clone(),
            selector: v.selector.clone(),
        })
        .collect();
    Ok(super::tiered::spawn_actuator(
        actuator,
        variants,
        targets,
        leader,
        reports,
        std::time::Duration::from_secs_f64(config.interval_s),
        cancel,
    ))
}
