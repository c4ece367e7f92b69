//! The actuation rule (pure): from the desired hot and warm counts of one variant and the
//! pods that exist, which engines to put to sleep, which to wake, which serving labels to
//! flip, and how many replicas KEDA must be told.
//!
//! Invariants the plan keeps:
//! - a sleeping replica never carries `serving=true` (the Service selects on it);
//! - a replica is put to sleep only to fill the warm pool (`warm` target), never below
//!   the `hot` target, and the least valuable cache is the one dropped;
//! - a replica whose wake failed (annotation [`WAKE_FAILED`] on the pod, so the fact
//!   survives a leader hand-over) counts as neither hot nor warm: KEDA is told one more
//!   replica per such pod (a cold scale-up replaces it) until the usable pods reach
//!   hot + warm; it then has the lowest deletion cost and is the first removed;
//! - the executor ([`super::actuator`]) flips the label off *before* a sleep and back on
//!   if the sleep fails, and on only *after* a verified wake.

use std::collections::BTreeMap;

use super::kv_value::{KvWeights, removal_order};

/// The label the engine Service selects on (`"true"` = receives traffic).
pub const SERVING_LABEL: &str = "slo-scaler.io/serving";
/// Annotation set on a pod whose wake failed; its value says why.
pub const WAKE_FAILED: &str = "slo-scaler.io/wake-failed";
/// The ReplicaSet's annotation: lower is removed first.
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// What the tier policy wants for one variant: replicas serving, replicas asleep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TierTarget {
    /// Awake, serving replicas.
    pub hot: u32,
    /// Sleeping replicas kept for a fast wake.
    pub warm: u32,
}

impl TierTarget {
    /// Pods that should exist: hot + warm.
    pub fn pods(&self) -> u32 {
        self.hot.saturating_add(self.warm)
    }
}

/// The engine's sleep state as last read.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineState {
    /// `is_sleeping: false`.
    Awake,
    /// `is_sleeping: true`.
    Asleep,
    /// The sleep endpoints answer 404: always awake, never put to sleep.
    NoSleepMode,
    /// The state could not be read (the error): left alone.
    Unknown(String),
}

/// KV-cache facts of an awake replica, from its `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KvFacts {
    /// Prefix-cache hit tokens per second.
    pub prefix_hit_tokens_per_s: f64,
    /// KV-cache use, 0..1.
    pub kv_usage: f64,
    /// Requests running.
    pub running: f64,
}

/// One pod of a variant as the actuator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodFacts {
    /// Pod name.
    pub name: String,
    /// Ready condition true and not being deleted.
    pub ready: bool,
    /// The engine's sleep state.
    pub engine: EngineState,
    /// The serving label, if set.
    pub serving: Option<bool>,
    /// The wake-failed annotation, if set.
    pub wake_failed: Option<String>,
    /// KV facts (awake engines whose metrics could be read).
    pub kv: Option<KvFacts>,
    /// The deletion-cost annotation, if set.
    pub deletion_cost: Option<i32>,
}

impl PodFacts {
    /// A ready pod in state `engine`, no labels or facts.
    pub fn new(name: &str, engine: EngineState) -> Self {
        Self {
            name: name.into(),
            ready: true,
            engine,
            serving: None,
            wake_failed: None,
            kv: None,
            deletion_cost: None,
        }
    }
}

/// One step for the executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Label `serving=false` so the Service stops routing to the pod; it is put to sleep
    /// at a later round, once nothing runs on it.
    Drain(String),
    /// Sleep (verified) a drained pod; on failure label `serving=true` again.
    Sleep(String),
    /// Wake (verified), then label `serving=true`; on failure annotate [`WAKE_FAILED`].
    Wake(String),
    /// Label `serving=true` and clear [`WAKE_FAILED`] (an awake pod not yet serving).
    MarkServing(String),
    /// Label `serving=false` (a sleeping pod still labelled serving).
    MarkNotServing(String),
}

/// The plan for one variant.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantPlan {
    /// Steps, in order.
    pub actions: Vec<Action>,
    /// Replicas serving (or about to) after the actions succeed.
    pub hot: u32,
    /// Replicas asleep after the actions succeed.
    pub warm: u32,
    /// Extra replicas KEDA must start because wakes failed.
    pub cold_fallback: u32,
    /// What KEDA is told: hot + warm targets + cold fallback.
    pub keda_replicas: u32,
    /// One line saying why.
    pub reason: String,
}

/// Plans one variant; see the module documentation for the invariants.
pub fn plan(target: TierTarget, pods: &[PodFacts], weights: &KvWeights) -> VariantPlan {
    let mut actions = Vec::new();
    let failed: Vec<&PodFacts> = pods
        .iter()
        .filter(|p| p.wake_failed.is_some() && p.engine != EngineState::Awake)
        .collect();
    // An asleep engine is usable even when its pod is not Ready (a health check that
    // fails while asleep); awake capacity counts only when Ready.
    let usable: Vec<&PodFacts> = pods
        .iter()
        .filter(|p| {
            (p.ready || p.engine == EngineState::Asleep) && !failed.iter().any(|f| f.name == p.name)
        })
        .collect();
    let count = |f: &dyn Fn(&PodFacts) -> bool| usable.iter().filter(|p| f(p)).count() as u32;
    let asleep = count(&|p: &PodFacts| p.engine == EngineState::Asleep);
    // Unknown engines count as hot only while labelled serving: never assume capacity.
    let hot_now = count(&|p: &PodFacts| {
        p.ready
            && match &p.engine {
                EngineState::Awake | EngineState::NoSleepMode => true,
                EngineState::Unknown(_) => p.serving == Some(true),
                EngineState::Asleep => false,
            }
    });

    let mut to_sleep: Vec<String> = Vec::new();
    let mut to_wake: Vec<String> = Vec::new();
    if hot_now > target.hot {
        let n = (hot_now - target.hot).min(target.warm.saturating_sub(asleep));
        let sleepable: Vec<PodFacts> = usable
            .iter()
            .filter(|p| p.ready && p.engine == EngineState::Awake)
            .map(|p| (*p).clone())
            .collect();
        // Pods already draining first (they lost their traffic for this), then the
        // least valuable cache.
        let order = removal_order(&sleepable, weights);
        let (draining, rest): (Vec<&PodFacts>, Vec<&PodFacts>) =
            order.into_iter().partition(|p| p.serving == Some(false));
        to_sleep = draining
            .into_iter()
            .chain(rest)
            .take(n as usize)
            .map(|p| p.name.clone())
            .collect();
    } else if hot_now < target.hot {
        let n = target.hot - hot_now;
        to_wake = usable
            .iter()
            .filter(|p| p.engine == EngineState::Asleep)
            .take(n as usize)
            .map(|p| p.name.clone())
            .collect();
    }

    for p in pods {
        let failed_pod = failed.iter().any(|f| f.name == p.name);
        match &p.engine {
            EngineState::Asleep if p.serving != Some(false) => {
                actions.push(Action::MarkNotServing(p.name.clone()))
            }
            EngineState::Awake | EngineState::NoSleepMode
                if p.ready
                    && (p.serving != Some(true) || p.wake_failed.is_some())
                    && !to_sleep.contains(&p.name) =>
            {
                actions.push(Action::MarkServing(p.name.clone()))
            }
            _ if failed_pod && p.serving == Some(true) => {
                actions.push(Action::MarkNotServing(p.name.clone()))
            }
            _ => {}
        }
    }
    let mut waiting_drain = Vec::new();
    for name in &to_sleep {
        let Some(p) = pods.iter().find(|p| &p.name == name) else {
            continue;
        };
        let running = p.kv.map(|k| k.running).unwrap_or(0.0);
        if p.serving != Some(false) {
            actions.push(Action::Drain(name.clone()));
        } else if running < 0.5 {
            actions.push(Action::Sleep(name.clone()));
        } else {
            waiting_drain.push(format!("{name} ({running:.0} running)"));
        }
    }
    actions.extend(to_wake.iter().cloned().map(Action::Wake));

    let hot = hot_now - to_sleep.len() as u32 + to_wake.len() as u32;
    let warm = asleep + to_sleep.len() as u32 - to_wake.len() as u32;
    let usable_n = usable.len() as u32;
    // A failed pod is replaced by a cold start; once the usable pods cover the target,
    // the extra replica is dropped again and the failed pod (lowest cost) goes.
    let cold_fallback = if usable_n < target.pods() {
        (failed.len() as u32).min(target.pods() - usable_n)
    } else {
        0
    };
    let keda_replicas = target.pods() + cold_fallback;

    let mut reason = format!(
        "tiers: hot {hot}/{} and warm {warm}/{} of {} pods",
        target.hot,
        target.warm,
        pods.len()
    );
    if !to_sleep.is_empty() {
        reason.push_str(&format!("; sleeping {}", to_sleep.join(", ")));
    }
    if !waiting_drain.is_empty() {
        reason.push_str(&format!(
            "; draining before sleep: {}",
            waiting_drain.join(", ")
        ));
    }
    if !to_wake.is_empty() {
        reason.push_str(&format!("; waking {}", to_wake.join(", ")));
    }
    let short = target.hot.saturating_sub(hot);
    if short > 0 {
        reason.push_str(&format!(
            "; {short} hot short with no warm replica to wake: cold start"
        ));
    }
    if cold_fallback > 0 {
        let why: BTreeMap<&str, &str> = failed
            .iter()
            .map(|p| (p.name.as_str(), p.wake_failed.as_deref().unwrap_or("")))
            .collect();
        reason.push_str(&format!(
            "; {cold_fallback} cold scale-up instead of a failed wake ({})",
            why.iter()
                .map(|(n, w)| format!("{n}: {w}"))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    VariantPlan {
        actions,
        hot,
        warm,
        cold_fallback,
        keda_replicas,
        reason,
    }
}

/// What the executor did with a [`VariantPlan`]'s steps.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// The step succeeded (or found the state already there).
    Done(Action),
    /// A sleep failed: the replica stays hot (label restored); the error.
    SleepFailed(String, String),
    /// A wake failed: the pod is annotated, a cold scale-up follows; the error.
    WakeFailed(String, String),
    /// A label patch failed; the error.
    PatchFailed(Action, String),
}

/// The reason line after execution: the plan's, with every failure spelled out.
pub fn reason_after(plan: &VariantPlan, outcomes: &[StepOutcome]) -> String {
    let mut reason = plan.reason.clone();
    for o in outcomes {
        match o {
            StepOutcome::SleepFailed(pod, why) => reason.push_str(&format!(
                "; sleep of {pod} failed, it stays hot and serving: {why}"
            )),
            StepOutcome::WakeFailed(pod, why) => reason.push_str(&format!(
                "; wake of {pod} failed, cold scale-up next: {why}"
            )),
            StepOutcome::PatchFailed(a, why) => {
                reason.push_str(&format!("; patch for {a:?} failed: {why}"))
            }
            StepOutcome::Done(_) => {}
        }
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    fn awake(name: &str, hits: f64) -> PodFacts {
        PodFacts {
            serving: Some(true),
            kv: Some(KvFacts {
                prefix_hit_tokens_per_s: hits,
                kv_usage: 0.2,
                running: 0.0,
            }),
            ..PodFacts::new(name, EngineState::Awake)
        }
    }

    fn asleep(name: &str) -> PodFacts {
        PodFacts {
            serving: Some(false),
            ..PodFacts::new(name, EngineState::Asleep)
        }
    }

    fn t(hot: u32, warm: u32) -> TierTarget {
        TierTarget { hot, warm }
    }

    fn w() -> KvWeights {
        KvWeights::default()
    }

    #[test]
    fn demand_fading_sleeps_the_least_valuable_cache_into_the_warm_pool() {
        let mut pods = [awake("a", 3_000.0), awake("b", 10.0), awake("c", 500.0)];
        let p = plan(t(1, 1), &pods, &w());
        assert_eq!(
            p.actions,
            vec![Action::Drain("b".into())],
            "traffic off first"
        );
        assert_eq!((p.hot, p.warm, p.keda_replicas), (2, 1, 2));
        assert!(p.reason.contains("sleeping b"), "{}", p.reason);
        // The third pod is not slept: it goes when KEDA's count (2) removes it.
        // Next round: b is drained but still finishing a request.
        pods[1].serving = Some(false);
        pods[1].kv = Some(KvFacts {
            prefix_hit_tokens_per_s: 0.0,
            kv_usage: 0.1,
            running: 2.0,
        });
        let p = plan(t(1, 1), &pods, &w());
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        assert!(
            p.reason.contains("draining before sleep: b (2 running)"),
            "{}",
            p.reason
        );
        pods[1].kv = None;
        let p = plan(t(1, 1), &pods, &w());
        assert_eq!(p.actions, vec![Action::Sleep("b".into())]);
        // Demand back before the sleep: the drained pod serves again.
        let p = plan(t(3, 1), &pods, &w());
        assert_eq!(p.actions, vec![Action::MarkServing("b".into())]);
    }

    #[test]
    fn demand_returning_wakes_warm_replicas_before_any_cold_start() {
        let pods = [awake("a", 0.0), asleep("b"), asleep("c")];
        let p = plan(t(2, 1), &pods, &w());
        assert_eq!(p.actions, vec![Action::Wake("b".into())]);
        assert_eq!((p.hot, p.warm, p.keda_replicas), (2, 1, 3));
        let p = plan(t(4, 1), &pods, &w());
        assert_eq!(
            p.actions,
            vec![Action::Wake("b".into()), Action::Wake("c".into())]
        );
        assert_eq!((p.hot, p.warm, p.keda_replicas), (3, 0, 5));
        assert!(p.reason.contains("1 hot short"), "{}", p.reason);
    }

    #[test]
    fn from_zero_hot_the_warm_replica_wakes() {
        let pods = [asleep("w")];
        let idle = plan(t(0, 1), &pods, &w());
        assert!(idle.actions.is_empty(), "{:?}", idle.actions);
        assert_eq!(
            idle.keda_replicas, 1,
            "warm replicas keep the scaler active"
        );
        let busy = plan(t(1, 1), &pods, &w());
        assert_eq!(busy.actions, vec![Action::Wake("w".into())]);
        assert_eq!(
            busy.keda_replicas, 2,
            "the warm pool refills by a cold start"
        );
    }

    #[test]
    fn labels_follow_the_engine_state() {
        let mut stray = asleep("s");
        stray.serving = Some(true);
        let mut fresh = awake("f", 0.0);
        fresh.serving = None;
        let mut starting = awake("n", 0.0);
        starting.ready = false;
        starting.serving = None;
        let p = plan(t(1, 1), &[stray, fresh, starting], &w());
        assert_eq!(
            p.actions,
            vec![
                Action::MarkNotServing("s".into()),
                Action::MarkServing("f".into())
            ],
            "a sleeping pod never serves; an unready pod is not labelled yet"
        );
    }

    #[test]
    fn a_pod_about_to_sleep_is_not_marked_serving() {
        let mut fresh = awake("new", 0.0);
        fresh.serving = None;
        let p = plan(t(1, 1), &[awake("old", 900.0), fresh], &w());
        assert_eq!(p.actions, vec![Action::Drain("new".into())]);
    }

    #[test]
    fn a_failed_wake_is_replaced_by_a_cold_scale_up_until_the_pool_is_whole() {
        let mut failed = asleep("x");
        failed.wake_failed = Some("wake_up: no answer within 30s".into());
        let pods = [awake("a", 0.0), failed.clone()];
        let p = plan(t(2, 0), &pods, &w());
        assert_eq!(p.cold_fallback, 1);
        assert_eq!(p.keda_replicas, 3);
        assert!(
            p.reason
                .contains("1 cold scale-up instead of a failed wake (x: wake_up: no answer"),
            "{}",
            p.reason
        );
        assert!(p.actions.is_empty(), "a failed pod is not woken again");
        // The replacement is up: the extra replica goes, and the failed pod with it.
        let pods = [awake("a", 0.0), failed, awake("r", 0.0)];
        let p = plan(t(2, 0), &pods, &w());
        assert_eq!((p.cold_fallback, p.keda_replicas), (0, 2));
    }

    #[test]
    fn a_failed_pod_found_awake_is_healed() {
        let mut back = awake("x", 0.0);
        back.wake_failed = Some("timeout".into());
        back.serving = Some(false);
        let p = plan(t(1, 0), &[back], &w());
        assert_eq!(p.actions, vec![Action::MarkServing("x".into())]);
        assert_eq!((p.hot, p.cold_fallback), (1, 0));
    }

    #[test]
    fn engines_without_sleep_mode_or_unknown_state_are_never_slept() {
        let mut nosleep = PodFacts::new("n", EngineState::NoSleepMode);
        nosleep.serving = Some(true);
        let mut unknown = PodFacts::new("u", EngineState::Unknown("refused".into()));
        unknown.serving = Some(true);
        let p = plan(t(0, 2), &[nosleep, unknown], &w());
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        assert_eq!(p.hot, 2, "capacity is counted, not assumed away");
    }

    #[test]
    fn an_asleep_pod_that_turned_unready_is_still_woken() {
        let mut unready = asleep("w");
        unready.ready = false;
        let p = plan(t(1, 1), &[unready.clone()], &w());
        assert_eq!(p.actions, vec![Action::Wake("w".into())]);
        let mut awake_unready = awake("u", 0.0);
        awake_unready.ready = false;
        let p = plan(t(1, 0), &[awake_unready], &w());
        assert_eq!(p.hot, 0, "an unready awake pod is not counted as capacity");
        assert!(p.actions.is_empty(), "{:?}", p.actions);
    }

    #[test]
    fn warm_pool_already_full_sleeps_nothing_more() {
        let pods = [awake("a", 0.0), awake("b", 0.0), asleep("c")];
        let p = plan(t(1, 1), &pods, &w());
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        assert_eq!(p.keda_replicas, 2, "the extra awake pod is removed by KEDA");
    }

    #[test]
    fn failures_are_spelled_out_in_the_reason() {
        let p = plan(t(1, 1), &[awake("a", 0.0), awake("b", 0.0)], &w());
        let r = reason_after(
            &p,
            &[StepOutcome::SleepFailed(
                "a".into(),
                "sleep http://x: HTTP 500".into(),
            )],
        );
        assert!(
            r.contains("sleep of a failed, it stays hot and serving: sleep http://x: HTTP 500"),
            "{r}"
        );
    }
}
