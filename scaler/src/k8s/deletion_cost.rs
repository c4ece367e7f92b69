//! Writes `controller.kubernetes.io/pod-deletion-cost` so that the ReplicaSet removes the
//! least valuable replica first on scale-down (issue 9; the ranking is
//! [`crate::warm::kv_value::deletion_costs`]).
//!
//! Rate-limited two ways: a token bucket over all pods (`patches_per_s`, `burst`), and no
//! patch when the annotation already holds the value. Costs are written only when a
//! scale-down is pending (fewer replicas wanted than pods exist) and only by the Lease
//! holder; the caller ([`crate::warm::actuator`]) checks both.

use std::time::Instant;

use serde_json::json;

use super::serving_label::{DELETION_COST, PodError, Pods};

/// A token bucket.
#[derive(Debug, Clone)]
pub struct PatchBudget {
    per_s: f64,
    burst: f64,
    tokens: f64,
    at: Option<Instant>,
}

impl PatchBudget {
    /// `per_s` patches per second on average, at most `burst` at once.
    pub fn new(per_s: f64, burst: u32) -> Self {
        Self {
            per_s: per_s.max(0.0),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            at: None,
        }
    }

    /// Takes a token at `now`, if one is left.
    pub fn take(&mut self, now: Instant) -> bool {
        if let Some(at) = self.at {
            let dt = now.saturating_duration_since(at).as_secs_f64();
            self.tokens = (self.tokens + dt * self.per_s).min(self.burst);
        }
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What one round of cost writes did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CostWrites {
    /// Pods patched, with the cost written.
    pub written: Vec<(String, i32)>,
    /// Pods whose annotation already held the cost.
    pub unchanged: usize,
    /// Pods left for a later round by the rate limit.
    pub deferred: usize,
}

/// Writes deletion costs within a budget.
pub struct DeletionCostWriter {
    budget: PatchBudget,
}

impl DeletionCostWriter {
    /// A writer with this budget.
    pub fn new(budget: PatchBudget) -> Self {
        Self { budget }
    }

    /// Writes `wanted` (pod, cost) where `current(pod)` differs, least valuable pods first
    /// (so a partial round still protects the most valuable cache). Stops at the first
    /// API error and returns it after what was written.
    pub async fn write(
        &mut self,
        pods: &Pods,
        wanted: &[(String, i32)],
        current: impl Fn(&str) -> Option<i32>,
        now: Instant,
    ) -> Result<CostWrites, (CostWrites, PodError)> {
        let mut out = CostWrites::default();
        for (name, cost) in wanted {
            if current(name) == Some(*cost) {
                out.unchanged += 1;
                continue;
            }
            if !self.budget.take(now) {
                out.deferred += 1;
                continue;
            }
            let patch = json!({ "annotations": { DELETION_COST: cost.to_string() } });
            if let Err(e) = pods.patch_metadata(name, patch).await {
                return Err((out, e));
            }
            out.written.push((name.clone(), *cost));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_bucket_refills_at_its_rate_up_to_the_burst() {
        let mut b = PatchBudget::new(2.0, 3);
        let t0 = Instant::now();
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0), "burst spent");
        assert!(!b.take(t0 + Duration::from_millis(400)), "0.8 token");
        assert!(b.take(t0 + Duration::from_millis(600)));
        assert!(b.take(t0 + Duration::from_secs(100)));
        assert!(b.take(t0 + Duration::from_secs(100)));
        assert!(b.take(t0 + Duration::from_secs(100)));
        assert!(
            !b.take(t0 + Duration::from_secs(100)),
            "capped at the burst"
        );
    }
}
