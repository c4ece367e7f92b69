//! `keda-threshold`: the vLLM production-stack recipe — KEDA's Prometheus scaler on
//! `vllm:num_requests_waiting`, `AverageValue` target 5 per replica, polling 30 s,
//! cooldown 300 s, HPA defaults (`../shared/docs/engines-and-baselines.md`). It reacts only
//! once requests queue, and with nothing waiting it wants `ceil(0/5) = 0`, i.e. its floor.

use super::{Observation, Policy, PolicyContext, Wish, first_variant_only};

/// Published default: waiting requests per replica.
pub const WAITING_TARGET_PER_REPLICA: f64 = 5.0;

/// Threshold on waiting requests.
#[derive(Debug, Clone)]
pub struct KedaThreshold {
    mins: Vec<u32>,
}

impl KedaThreshold {
    /// The recipe's defaults.
    #[must_use]
    pub fn new(ctx: &PolicyContext) -> Self {
        Self {
            mins: ctx.variants.iter().map(|v| v.min).collect(),
        }
    }
}

impl Policy for KedaThreshold {
    fn name(&self) -> &str {
        "keda-threshold"
    }

    fn wishes(&mut self, obs: &Observation) -> Vec<Wish> {
        let waiting = obs.variants[0].waiting + obs.gateway_waiting;
        first_variant_only(
            &self.mins,
            Wish {
                value: waiting as f64,
                target: WAITING_TARGET_PER_REPLICA,
            },
        )
    }
}
