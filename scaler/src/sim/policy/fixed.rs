//! `fixed`: a constant replica count per variant, warm from the start. Not a baseline from
//! the list: the control for tests (the cross-check against the analytic model runs
//! one replica) and for replaying a known pool.

use super::{Observation, Policy, Wish};

/// Constant replicas per variant.
#[derive(Debug, Clone)]
pub struct Fixed {
    replicas: Vec<u32>,
}

impl Fixed {
    /// `replicas[i]` replicas of variant `i`, all warm at time 0.
    #[must_use]
    pub fn new(replicas: Vec<u32>) -> Self {
        Self { replicas }
    }
}

impl Policy for Fixed {
    fn name(&self) -> &str {
        "fixed"
    }

    fn wishes(&mut self, _obs: &Observation) -> Vec<Wish> {
        self.replicas
            .iter()
            .map(|n| Wish::replicas(f64::from(*n)))
            .collect()
    }

    fn min_replicas(&self, _fleet_min: &[u32]) -> Vec<u32> {
        self.replicas.clone()
    }

    fn initial(&self, _default: &[u32]) -> Vec<u32> {
        self.replicas.clone()
    }
}

/// A fixed schedule of replica counts on the first variant (the others at 0), pods removed
/// by `rule`: the controlled setting for comparing victim rules — the same scale-downs at
/// the same times, only the victims differing ([`crate::sim::victims::compare_on_schedule`]).
#[derive(Debug, Clone)]
pub struct Scheduled {
    /// `(from_s, replicas)`, in time order; the first entry holds from time 0.
    schedule: Vec<(f64, u32)>,
    rule: crate::sim::victims::VictimRule,
}

impl Scheduled {
    /// `schedule` as `(from_s, replicas)` in time order (not empty), victims by `rule`.
    #[must_use]
    pub fn new(schedule: Vec<(f64, u32)>, rule: crate::sim::victims::VictimRule) -> Self {
        Self { schedule, rule }
    }

    fn replicas_at(&self, now_s: f64) -> u32 {
        self.schedule
            .iter()
            .rev()
            .find(|(t, _)| *t <= now_s)
            .or(self.schedule.first())
            .map_or(0, |(_, n)| *n)
    }
}

impl Policy for Scheduled {
    fn name(&self) -> &str {
        self.rule.name()
    }

    fn wishes(&mut self, obs: &Observation) -> Vec<Wish> {
        let mut w = vec![Wish::replicas(f64::from(self.replicas_at(obs.now_s)))];
        w.resize(obs.variants.len(), Wish::replicas(0.0));
        w
    }

    fn initial(&self, default: &[u32]) -> Vec<u32> {
        let mut v = vec![0; default.len()];
        if let Some(first) = v.first_mut() {
            *first = self.replicas_at(0.0);
        }
        v
    }

    fn min_replicas(&self, fleet_min: &[u32]) -> Vec<u32> {
        vec![0; fleet_min.len()]
    }

    fn victim_rule(&self) -> crate::sim::victims::VictimRule {
        self.rule
    }
}
