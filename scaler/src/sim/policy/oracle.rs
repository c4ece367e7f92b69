//! `oracle`: knows the future arrivals, and is the cost reference ("lower bound") of the
//! backtest.
//!
//! At construction it computes, for every 60 s bin of the workload, the **cheapest integer
//! mix of replicas across all variants** whose analytic capacity under the SLO covers that
//! bin's arrival rate (the exact least-cost planner `crate::sizing::plan_fleet`, the one
//! `slo-scaler` uses, with nothing running beforehand so nothing biases it). At each sync it
//! asks, per variant, for the most that mix needs over the bins from now until its cold
//! start plus one bin has passed (replicas asked for now serve only then), and goes through
//! the same KEDA/HPA semantics as every policy (cold starts, HPA tolerance, scale-down
//! window). It may scale to zero.
//!
//! Why it is a lower bound, and on what (`docs/simulator.md`, section *Oracle*): let a
//! schedule *cover* the workload when, in every bin, the variants serving hold analytic
//! capacity at least that bin's rate. Any covering schedule pays in every bin at least the
//! cheapest cover of that bin ([`Oracle::lower_bound_cost`], exact by the planner's
//! optimality), and the oracle pays exactly that plus only what cold starts and the
//! common HPA rules force on every policy (replicas billed from their start, the 300 s
//! scale-down window). A cheaper policy must leave some bin under-covered at the analytic
//! capacity; since that capacity is, if anything, optimistic (`docs/simulator.md`,
//! *Cross-check*), under-covering costs attainment. The backtest tests check the
//! consequence on real traces: no policy is cheaper than the oracle at an attainment at
//! least the oracle's. It is not a bound against a policy that knows a capacity better than
//! the analytic model's; its attainment is below 100 % where that model is optimistic.

use std::collections::BTreeMap;

use super::{Observation, Policy, PolicyContext, Wish};
use crate::sizing::{ModelSpec, Problem, VariantSpec, plan_fleet};

/// Clairvoyant least-cost covering schedule.
#[derive(Debug, Clone)]
pub struct Oracle {
    mins: Vec<u32>,
    /// Per bin, replicas per variant of the cheapest cover.
    plan: Vec<Vec<u32>>,
    /// Per bin, the cheapest cover's price per hour.
    plan_cost_per_hour: Vec<f64>,
    /// Per variant, bins to look ahead (cold start + one bin).
    lookahead_bins: Vec<usize>,
    bin_s: f64,
}

impl Oracle {
    /// From the context's future arrival rates.
    #[must_use]
    pub fn new(ctx: &PolicyContext) -> Self {
        let caps: Vec<f64> = (0..ctx.variants.len())
            .map(|i| ctx.capacity_rps(i))
            .collect();
        let mut memo: BTreeMap<u64, (Vec<u32>, f64)> = BTreeMap::new();
        let mut plan = Vec::with_capacity(ctx.arrival_rates_per_s.len());
        let mut plan_cost_per_hour = Vec::with_capacity(ctx.arrival_rates_per_s.len());
        for &rate in &ctx.arrival_rates_per_s {
            let (counts, cost) = memo
                .entry(rate.to_bits())
                .or_insert_with(|| cheapest_cover(ctx, &caps, rate))
                .clone();
            plan.push(counts);
            plan_cost_per_hour.push(cost);
        }
        let bin_s = ctx.arrival_bin_s;
        Self {
            mins: ctx.variants.iter().map(|v| v.min).collect(),
            plan,
            plan_cost_per_hour,
            lookahead_bins: ctx
                .variants
                .iter()
                .map(|v| (v.profile.lifecycle.cold_start_s / bin_s).ceil() as usize + 1)
                .collect(),
            bin_s,
        }
    }

    /// Σ over bins of the cheapest cover's price × bin length: what any schedule covering
    /// every bin at the analytic capacity must pay at least, ignoring cold starts ($).
    #[must_use]
    pub fn lower_bound_cost(&self) -> f64 {
        self.plan_cost_per_hour.iter().sum::<f64>() * self.bin_s / 3600.0
    }

    fn needed(&self, variant: usize, from_bin: usize) -> u32 {
        let to = (from_bin + self.lookahead_bins[variant] + 1).min(self.plan.len());
        self.plan
            .get(from_bin.min(to)..to)
            .map_or(0, |bins| bins.iter().map(|b| b[variant]).max().unwrap_or(0))
    }
}

/// The cheapest replicas per variant (fleet order) whose capacity covers `rate`, and their
/// price per hour; with no variant able to meet the SLO, nothing.
fn cheapest_cover(ctx: &PolicyContext, caps: &[f64], rate: f64) -> (Vec<u32>, f64) {
    let n = ctx.variants.len();
    if rate <= 0.0 || caps.iter().all(|c| *c <= 0.0) {
        return (vec![0; n], 0.0);
    }
    let spec = ModelSpec {
        name: "oracle".into(),
        demand: rate,
        priority: 0,
        variants: ctx
            .variants
            .iter()
            .zip(caps)
            .filter(|(_, c)| **c > 0.0)
            .map(|(v, c)| VariantSpec {
                name: v.name.clone(),
                gpu_type: v.profile.gpu.clone(),
                gpus_per_replica: v.profile.tensor_parallel,
                capacity_per_replica: *c,
                cost_per_hour: v.profile.cost_per_hour,
                min: 0,
                max: v.max,
                current: 0,
            })
            .collect(),
    };
    let problem = Problem {
        models: vec![spec],
        inventory: None,
    };
    match plan_fleet(&problem) {
        Ok(p) => {
            let m = &p.models[0];
            let counts = ctx
                .variants
                .iter()
                .map(|v| m.replicas.get(&v.name).copied().unwrap_or(0))
                .collect();
            (counts, m.cost_per_hour)
        }
        Err(_) => (vec![0; n], 0.0),
    }
}

impl Policy for Oracle {
    fn name(&self) -> &str {
        "oracle"
    }

    fn wishes(&mut self, obs: &Observation) -> Vec<Wish> {
        let bin = (obs.now_s / self.bin_s).floor().max(0.0) as usize;
        self.mins
            .iter()
            .enumerate()
            .map(|(v, m)| Wish::replicas(f64::from(self.needed(v, bin).max(*m))))
            .collect()
    }

    fn min_replicas(&self, fleet_min: &[u32]) -> Vec<u32> {
        fleet_min.to_vec()
    }

    fn initial(&self, default: &[u32]) -> Vec<u32> {
        if self.mins.len() != default.len() {
            return default.to_vec();
        }
        // Warm at time 0 with what the first bins need (the fleet ran before the slice,
        // as every policy's initial pool assumes).
        self.mins
            .iter()
            .enumerate()
            .map(|(v, m)| {
                let first = self.plan.iter().take(2).map(|b| b[v]).max().unwrap_or(0);
                first.max(*m)
            })
            .collect()
    }
}
