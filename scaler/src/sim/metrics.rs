//! What a simulation run reports: SLO attainment, latency percentiles, GPU-hours and cost,
//! replicas per variant, cold starts, decisions.
//!
//! Where to start: [`SimReport`] (serialised as the `backtest --format json` policy entry)
//! and [`summarise`], which turns per-request outcomes into attainment and percentiles.
//! A request that never got its first token (rejected, or unfinished when the run ends)
//! misses both bounds. A request with one output token has no TPOT and meets that bound.

use serde::Serialize;

/// What happened to one request.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RequestOutcome {
    /// Time to first token, seconds (`None`: never).
    pub ttft_s: Option<f64>,
    /// When the first token left (seconds, simulation clock).
    pub first_token_at_s: Option<f64>,
    /// Time per output token after the first, seconds (`None`: not finished).
    pub tpot_s: Option<f64>,
    /// It could never fit a replica's KV cache.
    pub rejected: bool,
    /// It was held at the gateway because no replica was ready (a cold start or zero).
    pub waited_on_cold_start: bool,
}

/// Share of requests within each bound.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Attainment {
    /// TTFT within its bound.
    pub ttft: f64,
    /// TPOT within its bound.
    pub tpot: f64,
    /// Both.
    pub both: f64,
}

/// p50/p90/p99 in milliseconds (`null` in JSON when no request has the value).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Percentiles {
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// Usage of one variant over the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantUsage {
    /// Variant name.
    pub name: String,
    /// Time-averaged replicas held (starting, serving or draining).
    pub mean_replicas: f64,
    /// Most replicas held at once.
    pub max_replicas: u32,
    /// GPU-hours (replica-hours × GPUs per replica).
    pub gpu_hours: f64,
    /// Replica-hours × price per replica-hour.
    pub cost: f64,
    /// Replicas started after the beginning (each paid a cold start).
    pub cold_starts: u32,
}

/// One sample of the fleet at a sync (for plots and rolling figures).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelinePoint {
    /// Simulation time, seconds.
    pub t_s: f64,
    /// Arrival rate over the rate window, req/s.
    pub arrivals_per_s: f64,
    /// Replicas held per variant after this sync's decision.
    pub replicas: Vec<u32>,
    /// Requests that finished (or were rejected) since the previous sync.
    pub finished: u32,
    /// Of those, the ones within both the TTFT and the TPOT bound: `met_slo / finished` over
    /// a few syncs is the rolling attainment the plot draws.
    pub met_slo: u32,
    /// The policy's demand forecast at its last decision, for policies that forecast with
    /// intervals (ours); omitted otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastBand>,
}

/// A demand forecast band as a policy sized from it, req/s.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ForecastBand {
    /// Lower quantile at the next interval (mirrors the upper level: q95 → q05).
    pub lower_rps: f64,
    /// Point forecast at the next interval.
    pub point_rps: f64,
    /// Upper quantile over the cold-start horizon: the demand the plan covers before any
    /// burst margin.
    pub upper_rps: f64,
}

/// Everything one run of one policy reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    /// Policy name.
    pub name: String,
    /// Requests replayed.
    pub requests: usize,
    /// Requests that finished.
    pub completed: usize,
    /// Requests that could never fit a replica.
    pub rejected: usize,
    /// Requests not finished when the run ended.
    pub unfinished: usize,
    /// SLO attainment.
    pub attainment: Attainment,
    /// TTFT percentiles, ms.
    pub ttft_ms: Percentiles,
    /// TPOT percentiles, ms.
    pub tpot_ms: Percentiles,
    /// GPU-hours over all variants.
    pub gpu_hours: f64,
    /// Cost over all variants (the profiles' or config's price per replica-hour).
    pub cost: f64,
    /// Per variant.
    pub variants: Vec<VariantUsage>,
    /// Replicas started after the beginning.
    pub cold_starts: u32,
    /// Requests held at the gateway waiting for a replica to become ready.
    pub requests_waited_on_cold_start: usize,
    /// Syncs at which the replica count of some variant changed.
    pub decisions: u32,
    /// Sequences preempted for lack of KV cache.
    pub preemptions: u64,
    /// Share of admitted prompt tokens served from prefix caches.
    pub prefix_hit_rate: f64,
    /// Simulated time, seconds (first arrival to last completion).
    pub simulated_s: f64,
    /// Fleet samples at every sync (omitted from JSON unless asked for).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<TimelinePoint>,
    /// Scale-to-zero, warm-pool and scale-down figures (issue 9).
    pub scale_to_zero: super::tier_metrics::ScaleToZeroReport,
    /// How the oracle's schedule was found (the `oracle` row only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oracle: Option<super::policy::oracle::OracleSearch>,
}

/// True when the request met both bounds (the `both` attainment's rule).
#[must_use]
pub fn meets_both(o: &RequestOutcome, ttft_bound_ms: f64, tpot_bound_ms: f64) -> bool {
    o.ttft_s.is_some_and(|t| t * 1000.0 <= ttft_bound_ms)
        && o.tpot_s.is_some_and(|t| t * 1000.0 <= tpot_bound_ms)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Percentiles of `values` (any order), in the values' unit × `scale`.
#[must_use]
pub fn percentiles(values: &mut [f64], scale: f64) -> Percentiles {
    values.sort_by(f64::total_cmp);
    let at = |q| percentile(values, q).map(|v| v * scale);
    Percentiles {
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
    }
}

/// Attainment and percentiles from per-request outcomes against TTFT/TPOT bounds (ms).
#[must_use]
pub fn summarise(
    outcomes: &[RequestOutcome],
    ttft_bound_ms: f64,
    tpot_bound_ms: f64,
) -> (Attainment, Percentiles, Percentiles) {
    let n = outcomes.len().max(1) as f64;
    let (mut ok_ttft, mut ok_tpot, mut ok_both) = (0usize, 0usize, 0usize);
    let mut ttfts = Vec::with_capacity(outcomes.len());
    let mut tpots = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        let t1 = o.ttft_s.is_some_and(|t| t * 1000.0 <= ttft_bound_ms);
        let t2 = o.tpot_s.is_some_and(|t| t * 1000.0 <= tpot_bound_ms);
        ok_ttft += usize::from(t1);
        ok_tpot += usize::from(t2);
        ok_both += usize::from(t1 && t2);
        if let Some(t) = o.ttft_s {
            ttfts.push(t);
        }
        if let Some(t) = o.tpot_s {
            tpots.push(t);
        }
    }
    (
        Attainment {
            ttft: ok_ttft as f64 / n,
            tpot: ok_tpot as f64 / n,
            both: ok_both as f64 / n,
        },
        percentiles(&mut ttfts, 1000.0),
        percentiles(&mut tpots, 1000.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attainment_counts_missing_latencies_as_misses() {
        let o = |ttft: Option<f64>, tpot: Option<f64>| RequestOutcome {
            ttft_s: ttft,
            tpot_s: tpot,
            ..RequestOutcome::default()
        };
        let outcomes = [
            o(Some(0.1), Some(0.01)),
            o(Some(0.9), Some(0.01)),
            o(Some(0.1), Some(0.2)),
            o(None, None),
        ];
        let (a, ttft, _) = summarise(&outcomes, 500.0, 50.0);
        assert_eq!((a.ttft, a.tpot, a.both), (0.5, 0.5, 0.25));
        assert_eq!(ttft.p50, Some(100.0));
        assert_eq!(ttft.p99, Some(900.0));
        assert_eq!(percentiles(&mut [], 1.0).p90, None);
    }
}
