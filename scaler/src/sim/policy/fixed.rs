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
