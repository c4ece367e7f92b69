//! Which replica goes when a Deployment shrinks.
//!
//! Where to start: [`VictimRule`]. `LeastLoaded` is the simulator's historical rule (starting
//! replicas first, then the one with the fewest requests in flight). `ReplicaSetDefault`
//! is what Kubernetes' ReplicaSet controller does when no pod carries a
//! `controller.kubernetes.io/pod-deletion-cost`: unscheduled/pending before running, not
//! ready before ready, then the pod ready for the shortest time (bucketed on an integer log
//! scale), then the most recently created, then effectively random (by UID) — the order of
//! `ActivePodsWithRanks` in `pkg/controller/controller_utils.go`, documented in the
//! ReplicaSet concept page ("Scaling a ReplicaSet"). A sleeping engine is a ready pod to the
//! ReplicaSet (sleep is invisible to Kubernetes). `KvAware` is ours: the scaler sets the
//! deletion cost from [`crate::tiers::removal_order`] — starting first, then sleeping, then
//! by the value of the KV cache.

use crate::tiers::ReplicaValue;

/// How victims are chosen on a scale-down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VictimRule {
    /// Starting first, then fewest requests in flight (the simulator's original rule).
    #[default]
    LeastLoaded,
    /// Kubernetes' ReplicaSet without deletion costs.
    ReplicaSetDefault,
    /// Pod-deletion-cost from the KV-cache value ranking.
    KvAware,
}

impl VictimRule {
    /// Its name in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::LeastLoaded => "least-loaded",
            Self::ReplicaSetDefault => "replicaset-default",
            Self::KvAware => "kv-aware",
        }
    }
}

/// One candidate pod as a victim rule sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Slot index (stable, creation order).
    pub slot: usize,
    /// KV-cache value inputs (asleep, starting, hits, KV, in flight).
    pub value: ReplicaValue,
    /// Pod creation time, seconds.
    pub created_s: f64,
    /// When it became ready (`None` while starting), seconds.
    pub ready_since_s: Option<f64>,
}

/// Integer log-2 bucket of a duration, as the ReplicaSet's logarithmic scale-down compares
/// ready times and creation times.
fn log_bucket(d_s: f64) -> i64 {
    if d_s < 1.0 {
        0
    } else {
        d_s.log2().floor() as i64 + 1
    }
}

/// Deterministic stand-in for "random by UID".
fn uid(slot: usize) -> u64 {
    (slot as u64 ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

/// Candidates ordered first-to-go under `rule` at `now_s`.
#[must_use]
pub fn order(rule: VictimRule, now_s: f64, cands: &[Candidate]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..cands.len()).collect();
    match rule {
        VictimRule::LeastLoaded => idx.sort_by(|&a, &b| {
            let (x, y) = (&cands[a], &cands[b]);
            y.value
                .starting
                .cmp(&x.value.starting)
                .then(if x.value.starting {
                    y.slot.cmp(&x.slot)
                } else {
                    std::cmp::Ordering::Equal
                })
                .then(x.value.in_flight.cmp(&y.value.in_flight))
                .then(y.slot.cmp(&x.slot))
        }),
        VictimRule::ReplicaSetDefault => idx.sort_by(|&a, &b| {
            let (x, y) = (&cands[a], &cands[b]);
            let ready = |c: &Candidate| c.ready_since_s.map(|t| log_bucket(now_s - t));
            let created = |c: &Candidate| log_bucket(now_s - c.created_s);
            // Not ready first; then shorter ready time; then newer; then UID.
            x.ready_since_s
                .is_some()
                .cmp(&y.ready_since_s.is_some())
                .then(ready(x).cmp(&ready(y)))
                .then(created(x).cmp(&created(y)))
                .then(uid(x.slot).cmp(&uid(y.slot)))
        }),
        VictimRule::KvAware => {
            let values: Vec<ReplicaValue> = cands.iter().map(|c| c.value).collect();
            return crate::tiers::removal_order(&values);
        }
    }
    idx
}

/// One victim rule's run in [`compare_on_schedule`].
#[derive(Debug, Clone)]
pub struct VictimRun {
    /// The whole run.
    pub report: crate::sim::metrics::SimReport,
    /// p90 TTFT, seconds, of the requests arriving within the after-scale-down window of
    /// either run (the union, so both rules are measured on the same requests); NaN when
    /// there are none.
    pub ttft_p90_after_s: f64,
}

/// KV-aware against the ReplicaSet's default order on one fixed schedule.
#[derive(Debug, Clone)]
pub struct VictimComparison {
    /// Pod-deletion cost from the KV-cache ranking.
    pub kv_aware: VictimRun,
    /// Kubernetes' order without deletion costs.
    pub replicaset: VictimRun,
}

/// Runs `requests` on `spec` twice under the same schedule of replica counts on the first
/// variant (`(from_s, replicas)`, see [`crate::sim::policy::fixed::Scheduled`]), once
/// removing pods KV-aware and once in the ReplicaSet's default order: the controlled
/// comparison of issue 9 (same scale-downs at the same times, only the victims differ).
#[must_use]
pub fn compare_on_schedule(
    requests: &[crate::sim::workload::SimRequest],
    spec: &crate::sim::FleetSpec,
    schedule: &[(f64, u32)],
) -> VictimComparison {
    use crate::sim::policy::fixed::Scheduled;
    let run =
        |rule| crate::sim::simulate(requests, spec, &mut Scheduled::new(schedule.to_vec(), rule));
    let (kv, rs) = (run(VictimRule::KvAware), run(VictimRule::ReplicaSetDefault));
    let union: Vec<bool> = kv
        .scale_to_zero
        .request_after_scale_down
        .iter()
        .zip(&rs.scale_to_zero.request_after_scale_down)
        .map(|(a, b)| *a || *b)
        .collect();
    let p90 = |r: &crate::sim::metrics::SimReport| {
        let mut v: Vec<f64> = r
            .scale_to_zero
            .request_ttft_s
            .iter()
            .zip(&union)
            .filter_map(|(t, &u)| if u { *t } else { None })
            .collect();
        v.sort_by(f64::total_cmp);
        v.get((v.len() * 9) / 10).copied().unwrap_or(f64::NAN)
    };
    VictimComparison {
        kv_aware: VictimRun {
            ttft_p90_after_s: p90(&kv),
            report: kv,
        },
        replicaset: VictimRun {
            ttft_p90_after_s: p90(&rs),
            report: rs,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(slot: usize, created_s: f64, ready: Option<f64>, hits: f64, asleep: bool) -> Candidate {
        Candidate {
            slot,
            value: ReplicaValue {
                asleep,
                starting: ready.is_none(),
                prefix_hit_tokens_per_s: hits,
                kv_tokens: 0.0,
                in_flight: 0,
            },
            created_s,
            ready_since_s: ready,
        }
    }

    #[test]
    fn replicaset_default_removes_unready_then_youngest_ready_ignoring_caches() {
        let c = [
            cand(0, 0.0, Some(300.0), 0.0, true),       // old, asleep
            cand(1, 1000.0, Some(1300.0), 50.0, false), // young, valuable cache
            cand(2, 3000.0, None, 0.0, false),          // starting
        ];
        assert_eq!(
            order(VictimRule::ReplicaSetDefault, 4000.0, &c),
            vec![2, 1, 0]
        );
        // Ours removes the sleeping one before the valuable one.
        assert_eq!(order(VictimRule::KvAware, 4000.0, &c), vec![2, 0, 1]);
        // Within one log bucket the ReplicaSet does not tell ready times apart.
        let same = [
            cand(0, 0.0, Some(3000.0), 0.0, false),
            cand(1, 0.0, Some(3100.0), 0.0, false),
        ];
        let o = order(VictimRule::ReplicaSetDefault, 4000.0, &same);
        assert_eq!(o.len(), 2);
        assert_eq!(log_bucket(1000.0), log_bucket(900.0));
    }
}
