//! What a replica's KV cache is worth, and the `pod-deletion-cost` ranking built from it.
//!
//! The ReplicaSet controller removes pods with the lowest
//! `controller.kubernetes.io/pod-deletion-cost` first. A replica that is asleep holds no
//! KV cache (level-1 sleep drops it), so it is the cheapest to remove; an awake one is
//! worth what losing its cache would cost: the prefix-cache hits it serves (tokens/s
//! whose prefill would be recomputed elsewhere), how full its cache is, and the requests
//! in flight that a removal would cut. The weights are configuration.

use super::actuation::{EngineState, PodFacts};

/// Weights of the value of an awake replica.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvWeights {
    /// Per prefix-cache hit token per second.
    pub prefix_hit_tokens_per_s: f64,
    /// Per unit of KV-cache use (0..1).
    pub kv_usage: f64,
    /// Per request in flight.
    pub running_request: f64,
}

impl Default for KvWeights {
    fn default() -> Self {
        // 1,000 hit tokens/s (a few shared system prompts a second) weigh as much as a
        // full cache; one request in flight weighs as much as a tenth of a full cache.
        Self {
            prefix_hit_tokens_per_s: 0.001,
            kv_usage: 1.0,
            running_request: 0.1,
        }
    }
}

/// The value of keeping a replica: higher is kept longer.
///
/// Order of tiers, whatever the weights: a replica whose wake failed (useless) < a pod
/// not ready (starting, holds no cache) < asleep, Ready or not (cache dropped) < awake
/// without facts < awake with facts by its weighted value. Engine state unknown counts as awake
/// without facts: never removed first on a guess.
pub fn value(pod: &PodFacts, w: &KvWeights) -> f64 {
    if pod.wake_failed.is_some() {
        return -3.0;
    }
    if !pod.ready && pod.engine != EngineState::Asleep {
        return -2.0;
    }
    match pod.engine {
        EngineState::Asleep => -1.0,
        EngineState::Awake | EngineState::NoSleepMode | EngineState::Unknown(_) => {
            let Some(kv) = &pod.kv else {
                return 0.0;
            };
            let v = kv.prefix_hit_tokens_per_s.max(0.0) * w.prefix_hit_tokens_per_s
                + kv.kv_usage.clamp(0.0, 1.0) * w.kv_usage
                + kv.running.max(0.0) * w.running_request;
            if v.is_finite() { v } else { 0.0 }
        }
    }
}

/// Pods in removal order (least valuable first), ties broken by name so that every
/// replica of the scaler computes the same order.
pub fn removal_order<'a>(pods: &'a [PodFacts], w: &KvWeights) -> Vec<&'a PodFacts> {
    let mut v: Vec<(&PodFacts, f64)> = pods.iter().map(|p| (p, value(p, w))).collect();
    v.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.name.cmp(&b.0.name)));
    v.into_iter().map(|(p, _)| p).collect()
}

/// The deletion cost of each pod: its position in [`removal_order`] (0 = removed first).
/// Ranks rather than scaled values so that costs only change when the order does.
pub fn deletion_costs(pods: &[PodFacts], w: &KvWeights) -> Vec<(String, i32)> {
    removal_order(pods, w)
        .into_iter()
        .enumerate()
        .map(|(i, p)| (p.name.clone(), i32::try_from(i).unwrap_or(i32::MAX)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::warm::actuation::KvFacts;

    fn pod(name: &str, engine: EngineState, kv: Option<(f64, f64, f64)>) -> PodFacts {
        PodFacts {
            kv: kv.map(|(h, u, r)| KvFacts {
                prefix_hit_tokens_per_s: h,
                kv_usage: u,
                running: r,
            }),
            ..PodFacts::new(name, engine)
        }
    }

    #[test]
    fn sleeping_and_failed_pods_go_first_then_the_least_valuable_cache() {
        let mut failed = pod("f", EngineState::Asleep, None);
        failed.wake_failed = Some("timeout".into());
        let mut starting = pod("s", EngineState::Unknown("connection refused".into()), None);
        starting.ready = false;
        let pods = vec![
            pod("hot-hits", EngineState::Awake, Some((5_000.0, 0.3, 2.0))),
            pod("hot-idle", EngineState::Awake, Some((0.0, 0.05, 0.0))),
            pod("asleep", EngineState::Asleep, None),
            failed,
            starting,
            pod("hot-full", EngineState::Awake, Some((100.0, 0.9, 1.0))),
        ];
        let order: Vec<&str> = removal_order(&pods, &KvWeights::default())
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(
            order,
            ["f", "s", "asleep", "hot-idle", "hot-full", "hot-hits"]
        );
        let costs = deletion_costs(&pods, &KvWeights::default());
        assert_eq!(costs[0], ("f".to_string(), 0));
        assert_eq!(costs[5], ("hot-hits".to_string(), 5));
    }

    #[test]
    fn weights_change_the_order_and_ties_break_by_name() {
        let pods = vec![
            pod("b", EngineState::Awake, Some((0.0, 0.9, 0.0))),
            pod("a", EngineState::Awake, Some((2_000.0, 0.1, 0.0))),
        ];
        let default: Vec<_> = removal_order(&pods, &KvWeights::default())
            .iter()
            .map(|p| p.name.clone())
            .collect();
        assert_eq!(
            default,
            ["b", "a"],
            "2,000 hit tokens/s outweigh a 90 % cache"
        );
        let kv_only = KvWeights {
            prefix_hit_tokens_per_s: 0.0,
            kv_usage: 1.0,
            running_request: 0.0,
        };
        let by_kv: Vec<_> = removal_order(&pods, &kv_only)
            .iter()
            .map(|p| p.name.clone())
            .collect();
        assert_eq!(by_kv, ["a", "b"]);
        let tie = vec![
            pod("z", EngineState::Awake, None),
            pod("m", EngineState::Awake, None),
        ];
        let t: Vec<_> = removal_order(&tie, &KvWeights::default())
            .iter()
            .map(|p| p.name.clone())
            .collect();
        assert_eq!(t, ["m", "z"]);
    }

    #[test]
    fn nan_facts_do_not_poison_the_order() {
        let pods = vec![
            pod("nan", EngineState::Awake, Some((f64::NAN, f64::NAN, 0.0))),
            pod("asleep", EngineState::Asleep, None),
        ];
        let order: Vec<_> = removal_order(&pods, &KvWeights::default())
            .iter()
            .map(|p| p.name.clone())
            .collect();
        assert_eq!(order, ["asleep", "nan"]);
    }
}
