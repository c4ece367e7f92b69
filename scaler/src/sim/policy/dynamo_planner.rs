//! `dynamo-planner`: NVIDIA Dynamo's SLA planner as published — every 180 s a point forecast
//! of the next interval's load (the `constant` predictor: the last interval's mean rate),
//! then replicas from the pre-deployment profile, corrected by observed/expected latency.
//! No prediction interval, no cost model, one GPU type per pool (the first variant), no
//! scale-to-zero.
//!
//! Here the "interpolated pre-deployment profile" is the variant's profile through the
//! analytic model: capacity per replica under the SLO for the mix. The correction factor is
//! `max(observed p90 TTFT / expected, observed p90 TPOT / expected)` with the expectation
//! from the analytic model at the observed load and current replicas, clamped to
//! `[0.5, 4]`; replicas = `ceil(load · correction / capacity)`.

use forecasting::latency::LatencyModel;

use super::{Observation, Policy, PolicyContext, Wish, first_variant_only};

/// Published default adjustment interval, seconds.
pub const ADJUSTMENT_INTERVAL_S: f64 = 180.0;

/// Planner state.
#[derive(Debug, Clone)]
pub struct DynamoPlanner {
    mins: Vec<u32>,
    capacity_rps: f64,
    model: Option<LatencyModel>,
    percentile: forecasting::latency::Percentile,
    /// Arrival-rate samples since the last adjustment.
    samples: Vec<f64>,
    last: f64,
}

impl DynamoPlanner {
    /// For the first variant of the context.
    #[must_use]
    pub fn new(ctx: &PolicyContext) -> Self {
        Self {
            mins: ctx.variants.iter().map(|v| v.min).collect(),
            capacity_rps: ctx.capacity_rps(0),
            model: LatencyModel::new(&ctx.variants[0].profile, &ctx.mix).ok(),
            percentile: ctx.slo.percentile,
            samples: Vec::new(),
            last: 1.0,
        }
    }
}

impl Policy for DynamoPlanner {
    fn name(&self) -> &str {
        "dynamo-planner"
    }

    /// Sampled every sync; the wish changes only every adjustment interval (see `wishes`).
    fn interval_s(&self) -> f64 {
        15.0
    }

    fn wishes(&mut self, obs: &Observation) -> Vec<Wish> {
        self.samples.push(obs.arrivals_per_s);
        let due = (obs.now_s / ADJUSTMENT_INTERVAL_S).fract() < 1e-9
            || self.samples.len() as f64 * 15.0 >= ADJUSTMENT_INTERVAL_S;
        if due && !self.samples.is_empty() {
            let load = self.samples.iter().sum::<f64>() / self.samples.len() as f64;
            self.samples.clear();
            let replicas = obs.variants[0].ready.max(1);
            let expected = self
                .model
                .as_ref()
                .and_then(|m| m.predict(load, replicas).ok())
                .filter(|p| !p.saturated);
            let correction = match (expected, obs.ttft_p90_ms, obs.tpot_p90_ms) {
                (Some(e), Some(ttft), Some(tpot)) => (ttft / e.ttft_ms.at(self.percentile))
                    .max(tpot / e.tpot_ms.at(self.percentile))
                    .clamp(0.5, 4.0),
                _ => 1.0,
            };
            self.last = if self.capacity_rps > 0.0 {
                (load * correction / self.capacity_rps).ceil().max(1.0)
            } else {
                f64::from(replicas)
            };
        }
        first_variant_only(&self.mins, Wish::replicas(self.last))
    }
}
