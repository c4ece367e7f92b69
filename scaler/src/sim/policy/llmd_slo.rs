//! `llmd-slo`: llm-d's SLO-aware KEDA formula — the ratio
//! `max(p90 TTFT / SLO_ttft, p90 TPOT / SLO_tpot)` of the last rate window, clamped to
//! `[0.5, 2]` and smoothed (exponential, weight 0.5 on the new reading), reported as the
//! desired replica count `ceil(ready · ratio)` with target 1. With no completions in the
//! window (no latency to read) the previous ratio stands; idle pools fall to the floor
//! through the ratio of the last requests.

use super::{Observation, Policy, PolicyContext, Wish, first_variant_only};

const SMOOTHING: f64 = 0.5;
const MIN_RATIO: f64 = 0.5;
const MAX_RATIO: f64 = 2.0;

/// SLO-ratio state.
#[derive(Debug, Clone)]
pub struct LlmdSlo {
    mins: Vec<u32>,
    ttft_ms: f64,
    tpot_ms: f64,
    ratio: f64,
}

impl LlmdSlo {
    /// For the context's SLO bounds.
    #[must_use]
    pub fn new(ctx: &PolicyContext) -> Self {
        Self {
            mins: ctx.variants.iter().map(|v| v.min).collect(),
            ttft_ms: ctx.slo.ttft_ms,
            tpot_ms: ctx.slo.tpot_ms,
            ratio: 1.0,
        }
    }
}

impl Policy for LlmdSlo {
    fn name(&self) -> &str {
        "llmd-slo"
    }

    fn wishes(&mut self, obs: &Observation) -> Vec<Wish> {
        let v = &obs.variants[0];
        // llm-d's recipe scrapes the vLLM pods' histograms, so the engine-side TTFT (no
        // gateway hold); requests held with nothing serving drive the ratio up below.
        let reading = match (obs.ttft_p90_ms, obs.tpot_p90_ms) {
            (None, None) if obs.gateway_waiting > 0 => Some(MAX_RATIO),
            (None, None) => None,
            (a, b) => Some(
                (a.unwrap_or(0.0) / self.ttft_ms)
                    .max(b.unwrap_or(0.0) / self.tpot_ms)
                    .clamp(MIN_RATIO, MAX_RATIO),
            ),
        };
        if let Some(r) = reading {
            self.ratio = SMOOTHING * r + (1.0 - SMOOTHING) * self.ratio;
        }
        let base = f64::from((v.ready + v.starting).max(1));
        first_variant_only(&self.mins, Wish::replicas((base * self.ratio).ceil()))
    }
}
