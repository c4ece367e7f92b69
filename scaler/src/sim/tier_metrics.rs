//! What the scale-to-zero and warm-pool machinery reports (issue 9): waits on cold starts
//! and on wakes, the first token after an idle spell, warm-replica cost, and what
//! scale-downs did to prefix caches and latency.
//!
//! Where to start: [`ScaleToZeroReport`] (the `scale_to_zero` object of each policy in
//! `backtest --format json`) and [`render_table`]. Definitions:
//! - an **idle spell** is a gap of at least [`IDLE_GAP_S`] between two arrivals; the request
//!   ending it is a *first request after an idle spell* and its TTFT is the time from first
//!   request to first token;
//! - a **scale-down** is a serving replica leaving (removed, draining) or going to sleep;
//!   requests arriving within [`AFTER_SCALE_DOWN_S`] of one are *after a scale-down*, and
//!   the prefix-cache hit rate after scale-downs is over the prompt tokens admitted in
//!   those windows (sampled at HPA syncs); runs compared side by side also get the TTFT
//!   over the union of their windows ([`compare_after_scale_downs`]), the same requests in
//!   each.

use serde::Serialize;

use super::metrics::{Percentiles, RequestOutcome, SimReport, percentiles};

/// Shortest arrival gap that counts as an idle spell, seconds (KEDA's default cooldown:
/// a plain scale-to-zero fleet is gone after such a gap).
pub const IDLE_GAP_S: f64 = 300.0;

/// Window after a scale-down whose requests and prefix hits are attributed to it, seconds.
pub const AFTER_SCALE_DOWN_S: f64 = 300.0;

/// Scale-to-zero and warm-pool figures of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct ScaleToZeroReport {
    /// How victims were chosen on scale-down.
    pub victim_rule: String,
    /// Whether the policy ran hot/warm tiers.
    pub tiers: bool,
    /// Requests held at the gateway until a woken replica served them.
    pub requests_waited_on_wake: usize,
    /// Replicas put to sleep.
    pub sleeps: u32,
    /// Replicas woken.
    pub wakes: u32,
    /// Replica-hours spent asleep.
    pub warm_replica_hours: f64,
    /// GPU-hours spent asleep (a sleeping pod holds its GPUs).
    pub warm_gpu_hours: f64,
    /// Cost of the sleeping hours at the policy's warm cost fraction.
    pub warm_cost: f64,
    /// Total cost with sleeping hours at the warm cost fraction (`cost` counts them in full).
    pub cost_with_warm_fraction: f64,
    /// First requests after an idle spell.
    pub idle_spells: usize,
    /// Of those, how many waited on a cold start.
    pub idle_spells_cold: usize,
    /// Requests that waited on a cold start before the run's first idle spell ended (its
    /// opening busy period, plus the arrivals before it). Part of
    /// `requests_waited_on_cold_start`. Where the history holds no demand (a model's
    /// first day) these are its launch, which no forecast can see coming; the issue-9
    /// comparison counts them apart from the waits on a return after an idle spell.
    pub opening_cold_start_waits: usize,
    /// Their TTFT (first request to first token), ms.
    pub first_ttft_after_idle_ms: Percentiles,
    /// Serving replicas removed or put to sleep.
    pub scale_downs: u32,
    /// Requests arriving within the window after a scale-down.
    pub requests_after_scale_down: usize,
    /// Their TTFT, ms.
    pub ttft_after_scale_down_ms: Percentiles,
    /// Prefix-cache hit rate over prompt tokens admitted within the windows.
    pub prefix_hit_rate_after_scale_down: f64,
    /// Requests after a scale-down in *any* of the runs compared side by side (the union
    /// of their windows: the same requests in every run; `None` for a lone run).
    pub requests_after_any_scale_down: Option<usize>,
    /// This run's TTFT over those requests, ms. Each run's own windows differ (a victim
    /// that was asleep is no scale-down, one that served is), so their percentiles are over
    /// different requests; over the union the runs are compared on the same ones.
    pub ttft_after_any_scale_down_ms: Option<Percentiles>,
    /// Per request: TTFT (s), for the side-by-side figures (not serialised).
    #[serde(skip)]
    pub request_ttft_s: Vec<Option<f64>>,
    /// Per request: arrived within this run's after-scale-down windows (not serialised).
    #[serde(skip)]
    pub request_after_scale_down: Vec<bool>,
}

/// Fills [`ScaleToZeroReport::ttft_after_any_scale_down_ms`] of every tiered run from the
/// union of their after-scale-down windows; needs two tiered runs on the same requests.
pub fn compare_after_scale_downs(reports: &mut [SimReport]) {
    let tiered: Vec<usize> = (0..reports.len())
        .filter(|&i| reports[i].scale_to_zero.tiers)
        .collect();
    let Some(&first) = tiered.first() else {
        return;
    };
    let n = reports[first].scale_to_zero.request_after_scale_down.len();
    if tiered.len() < 2
        || tiered
            .iter()
            .any(|&i| reports[i].scale_to_zero.request_after_scale_down.len() != n)
    {
        return;
    }
    let union: Vec<bool> = (0..n)
        .map(|k| {
            tiered
                .iter()
                .any(|&i| reports[i].scale_to_zero.request_after_scale_down[k])
        })
        .collect();
    let count = union.iter().filter(|&&u| u).count();
    for &i in &tiered {
        let z = &mut reports[i].scale_to_zero;
        let mut ttft: Vec<f64> = z
            .request_ttft_s
            .iter()
            .zip(&union)
            .filter_map(|(t, &u)| if u { *t } else { None })
            .collect();
        z.requests_after_any_scale_down = Some(count);
        z.ttft_after_any_scale_down_ms = Some(percentiles(&mut ttft, 1000.0));
    }
}

/// Per-run accumulators the engine updates.
#[derive(Debug, Clone, Default)]
pub struct TierCounters {
    /// Sleeps.
    pub sleeps: u32,
    /// Wakes.
    pub wakes: u32,
    /// Scale-downs (serving replica removed or slept).
    pub scale_downs: u32,
    /// End of the current after-scale-down window.
    pub after_down_until_s: f64,
    /// Prompt and cached tokens over all replicas at the previous sync.
    pub last_tokens: (u64, u64),
    /// Prompt and cached tokens admitted inside after-scale-down windows.
    pub after_tokens: (u64, u64),
    /// Time of the last arrival.
    pub last_arrival_s: Option<f64>,
    /// Whether an arrival has ended an idle spell yet.
    pub seen_idle_spell: bool,
    /// Time of the previous sync.
    pub last_sync_s: f64,
}

/// Per-request flags the engine sets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestFlags {
    /// First request after an idle spell.
    pub after_idle: bool,
    /// Arrived within the window after a scale-down.
    pub after_scale_down: bool,
    /// Held until a woken replica served it.
    pub waited_on_wake: bool,
    /// Arrived before any idle spell of the run had ended (the opening busy period).
    pub opening: bool,
}

/// Builds the report from the per-request outcomes and flags.
#[must_use]
pub fn summarise(
    outcomes: &[RequestOutcome],
    flags: &[RequestFlags],
    counters: &TierCounters,
) -> ScaleToZeroReport {
    let mut idle_ttft = Vec::new();
    let mut down_ttft = Vec::new();
    let (mut idle, mut idle_cold, mut after, mut waited_wake) = (0, 0, 0, 0);
    let mut opening_cold = 0;
    for (o, f) in outcomes.iter().zip(flags) {
        waited_wake += usize::from(f.waited_on_wake);
        opening_cold += usize::from(f.opening && o.waited_on_cold_start);
        if f.after_idle {
            idle += 1;
            idle_cold += usize::from(o.waited_on_cold_start);
            // Never served: counted at the run's length would mislead; it shows in
            // `unfinished` instead.
            if let Some(t) = o.ttft_s {
                idle_ttft.push(t);
            }
        }
        if f.after_scale_down {
            after += 1;
            if let Some(t) = o.ttft_s {
                down_ttft.push(t);
            }
        }
    }
    let (p, c) = counters.after_tokens;
    ScaleToZeroReport {
        requests_waited_on_wake: waited_wake,
        sleeps: counters.sleeps,
        wakes: counters.wakes,
        idle_spells: idle,
        idle_spells_cold: idle_cold,
        opening_cold_start_waits: opening_cold,
        first_ttft_after_idle_ms: percentiles(&mut idle_ttft, 1000.0),
        scale_downs: counters.scale_downs,
        requests_after_scale_down: after,
        ttft_after_scale_down_ms: percentiles(&mut down_ttft, 1000.0),
        prefix_hit_rate_after_scale_down: if p == 0 { 0.0 } else { c as f64 / p as f64 },
        request_ttft_s: outcomes.iter().map(|o| o.ttft_s).collect(),
        request_after_scale_down: flags.iter().map(|f| f.after_scale_down).collect(),
        ..ScaleToZeroReport::default()
    }
}

/// A fixed-width table of the scale-to-zero figures, one row per policy.
#[must_use]
pub fn render_table(reports: &[SimReport]) -> String {
    use std::fmt::Write as _;
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.0}"));
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<22} {:>7} {:>7} {:>6} {:>6} {:>9} {:>8} {:>9} {:>11} {:>11} {:>6} {:>7} {:>10} {:>10} {:>9}",
        "scale-to-zero",
        "cold-w",
        "wake-w",
        "sleeps",
        "wakes",
        "warm GPUh",
        "cost",
        "cost@frac",
        "idle n/cold",
        "1st TTFT p50",
        "downs",
        "hit↓",
        "TTFT↓ p90",
        "TTFT↓∪ p90",
        "victims"
    );
    for r in reports {
        let z = &r.scale_to_zero;
        let idle = format!("{}/{}", z.idle_spells, z.idle_spells_cold);
        let _ = writeln!(
            s,
            "{:<22} {:>7} {:>7} {:>6} {:>6} {:>9.2} {:>8.2} {:>9.2} {:>11} {:>11} {:>6} {:>6.1}% {:>10} {:>10} {:>9}",
            r.name,
            r.requests_waited_on_cold_start,
            z.requests_waited_on_wake,
            z.sleeps,
            z.wakes,
            z.warm_gpu_hours,
            r.cost,
            z.cost_with_warm_fraction,
            idle,
            ms(z.first_ttft_after_idle_ms.p50),
            z.scale_downs,
            z.prefix_hit_rate_after_scale_down * 100.0,
            ms(z.ttft_after_scale_down_ms.p90),
            ms(z.ttft_after_any_scale_down_ms.as_ref().and_then(|p| p.p90)),
            z.victim_rule
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::metrics::Attainment;

    fn report(tiers: bool, ttft_s: &[f64], after: &[bool]) -> SimReport {
        SimReport {
            name: String::new(),
            requests: ttft_s.len(),
            completed: ttft_s.len(),
            rejected: 0,
            unfinished: 0,
            attainment: Attainment {
                ttft: 1.0,
                tpot: 1.0,
                both: 1.0,
            },
            ttft_ms: Percentiles::default(),
            tpot_ms: Percentiles::default(),
            gpu_hours: 0.0,
            cost: 0.0,
            variants: Vec::new(),
            cold_starts: 0,
            requests_waited_on_cold_start: 0,
            decisions: 0,
            preemptions: 0,
            prefix_hit_rate: 0.0,
            simulated_s: 0.0,
            timeline: Vec::new(),
            scale_to_zero: ScaleToZeroReport {
                tiers,
                request_ttft_s: ttft_s.iter().map(|t| Some(*t)).collect(),
                request_after_scale_down: after.to_vec(),
                ..ScaleToZeroReport::default()
            },
            oracle: None,
        }
    }

    #[test]
    fn runs_side_by_side_are_compared_on_the_union_of_their_windows() {
        // Run A counted requests 0 and 1 after its scale-downs, run B only 2 (a calm one):
        // on their own windows B looks better; on the same three requests A is.
        let ttft_a = [1.0, 1.0, 1.0, 9.0];
        let ttft_b = [5.0, 5.0, 0.5, 9.0];
        let mut rs = vec![
            report(true, &ttft_a, &[true, true, false, false]),
            report(true, &ttft_b, &[false, false, true, false]),
            report(false, &ttft_b, &[true, true, true, true]),
        ];
        compare_after_scale_downs(&mut rs);
        let (a, b) = (&rs[0].scale_to_zero, &rs[1].scale_to_zero);
        assert_eq!(a.requests_after_any_scale_down, Some(3));
        assert_eq!(b.requests_after_any_scale_down, Some(3));
        let p50 = |z: &ScaleToZeroReport| z.ttft_after_any_scale_down_ms.as_ref().unwrap().p50;
        assert_eq!(p50(a), Some(1000.0));
        assert_eq!(p50(b), Some(5000.0));
        // Plain scale-to-zero (no tiers) is not part of the comparison.
        assert_eq!(rs[2].scale_to_zero.requests_after_any_scale_down, None);
        // A lone tiered run has nothing to be compared with.
        let mut lone = vec![report(true, &ttft_a, &[true, false, false, false])];
        compare_after_scale_downs(&mut lone);
        assert_eq!(lone[0].scale_to_zero.ttft_after_any_scale_down_ms, None);
    }
}
