//! `oracle`: knows the future arrivals. At each sync it asks for the replicas the busiest
//! 60 s of the coming `cold_start + 60 s` will need at the analytic capacity per replica,
//! on the variant with the lowest price per unit of capacity (others at their minimum), and
//! goes through the same KEDA/HPA semantics as every policy (so it still pays cold starts,
//! HPA tolerance and the scale-down window).
//!
//! An approximation of the oracle ("the cheapest schedule meeting the SLO"): it is
//! exact only as far as the analytic capacity is (optimistic for prefill-heavy mixes, see
//! `docs/simulator.md`) and does not mix GPU types. Treat its cost as a reference, not yet a
//! proven lower bound.

use super::{Observation, Policy, PolicyContext, Wish};

/// Clairvoyant sizing.
#[derive(Debug, Clone)]
pub struct Oracle {
    mins: Vec<u32>,
    variant: usize,
    capacity_rps: f64,
    lookahead_s: f64,
    bin_s: f64,
    rates_per_s: Vec<f64>,
}

impl Oracle {
    /// From the context's future arrival rates.
    #[must_use]
    pub fn new(ctx: &PolicyContext) -> Self {
        let (variant, capacity_rps) = (0..ctx.variants.len())
            .map(|i| (i, ctx.capacity_rps(i)))
            .filter(|(_, c)| *c > 0.0)
            .min_by(|a, b| {
                let pa = ctx.variants[a.0].profile.cost_per_hour / a.1;
                let pb = ctx.variants[b.0].profile.cost_per_hour / b.1;
                pa.total_cmp(&pb)
            })
            .unwrap_or((0, 0.0));
        Self {
            mins: ctx.variants.iter().map(|v| v.min).collect(),
            variant,
            capacity_rps,
            lookahead_s: ctx.variants[variant].profile.lifecycle.cold_start_s + 60.0,
            bin_s: ctx.arrival_bin_s,
            rates_per_s: ctx.arrival_rates_per_s.clone(),
        }
    }

    fn needed(&self, from_s: f64, to_s: f64) -> f64 {
        let a = (from_s / self.bin_s).floor().max(0.0) as usize;
        let b = ((to_s / self.bin_s).ceil() as usize).min(self.rates_per_s.len());
        let peak = self
            .rates_per_s
            .get(a..b)
            .map_or(0.0, |r| r.iter().copied().fold(0.0, f64::max));
        if self.capacity_rps > 0.0 {
            (peak / self.capacity_rps).ceil()
        } else {
            0.0
        }
    }
}

impl Policy for Oracle {
    fn name(&self) -> &str {
        "oracle"
    }

    fn wishes(&mut self, obs: &Observation) -> Vec<Wish> {
        let n = self.needed(obs.now_s, obs.now_s + self.lookahead_s);
        self.mins
            .iter()
            .enumerate()
            .map(|(i, m)| {
                if i == self.variant {
                    Wish::replicas(n.max(f64::from(*m)))
                } else {
                    Wish::replicas(f64::from(*m))
                }
            })
            .collect()
    }

    fn min_replicas(&self, fleet_min: &[u32]) -> Vec<u32> {
        fleet_min.to_vec()
    }

    fn initial(&self, default: &[u32]) -> Vec<u32> {
        let mut v = self.mins.clone();
        if v.len() == default.len() {
            v[self.variant] = v[self.variant].max(self.needed(0.0, 60.0) as u32);
        }
        v
    }
}
