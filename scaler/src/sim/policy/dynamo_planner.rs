//! `dynamo-planner`: NVIDIA Dynamo's SLA planner as published — every 180 s a point forecast
//! of the next interval's load, then replicas from the pre-deployment profile, corrected by
//! observed/expected latency. No prediction interval, no cost model, one GPU type per pool
//! (the first variant), no scale-to-zero.
//!
//! Load predictors (Dynamo's `load_predictor`): `constant` (the last interval's mean rate;
//! policy `dynamo-planner`), `arima` (`dynamo-planner-arima`) and `kalman`
//! (`dynamo-planner-kalman`). Dynamo's ARIMA is `pmdarima.auto_arima` and its Kalman a
//! filter on the load series; here, our readings of them, without their Python stacks:
//! **arima** — ARIMA(p, 1, 0) on the interval loads, `p ∈ 0..=3` chosen by AIC, coefficients
//! by least squares on the last 200 intervals; **kalman** — a local linear trend (level and
//! slope) Kalman filter whose noise variances come from the differences of the series
//! (measurement noise half the variance of first differences, process noise a tenth of
//! it). Prophet is not reproduced: it is a Stan model with yearly/weekly/daily seasonality,
//! and the ServeGen slices are days long; `slo-scaler`'s own Holt-Winters covers the
//! seasonal case. Both see the same history before the slice as `slo-scaler` does
//! (aggregated to the adjustment interval).
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

/// Intervals of history the predictors keep.
const HISTORY_INTERVALS: usize = 200;

/// Which load predictor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Predictor {
    /// The last interval's load.
    Constant,
    /// ARIMA(p, 1, 0), `p` by AIC.
    Arima,
    /// Local linear trend Kalman filter.
    Kalman,
}

/// Planner state.
#[derive(Debug, Clone)]
pub struct DynamoPlanner {
    name: &'static str,
    predictor: Predictor,
    mins: Vec<u32>,
    capacity_rps: f64,
    model: Option<LatencyModel>,
    percentile: forecasting::latency::Percentile,
    /// Arrival-rate samples since the last adjustment.
    samples: Vec<f64>,
    /// Mean load per past adjustment interval, oldest first.
    history: Vec<f64>,
    last: f64,
}

impl DynamoPlanner {
    /// For the first variant of the context, with the `constant` predictor.
    #[must_use]
    pub fn new(ctx: &PolicyContext) -> Self {
        Self::with_predictor(ctx, Predictor::Constant)
    }

    /// For the first variant of the context, with `predictor`.
    #[must_use]
    pub fn with_predictor(ctx: &PolicyContext, predictor: Predictor) -> Self {
        // History before the slice, aggregated to adjustment intervals.
        let per = (ADJUSTMENT_INTERVAL_S / ctx.forecast_interval_s)
            .round()
            .max(1.0) as usize;
        let h = &ctx.history_rates_per_s;
        let skip = h.len() % per;
        let mut history: Vec<f64> = h[skip..]
            .chunks(per)
            .map(|c| c.iter().sum::<f64>() / c.len() as f64)
            .collect();
        if history.len() > HISTORY_INTERVALS {
            history.drain(..history.len() - HISTORY_INTERVALS);
        }
        Self {
            name: match predictor {
                Predictor::Constant => "dynamo-planner",
                Predictor::Arima => "dynamo-planner-arima",
                Predictor::Kalman => "dynamo-planner-kalman",
            },
            predictor,
            mins: ctx.variants.iter().map(|v| v.min).collect(),
            capacity_rps: ctx.capacity_rps(0),
            model: LatencyModel::new(&ctx.variants[0].profile, &ctx.mix).ok(),
            percentile: ctx.slo.percentile,
            samples: Vec::new(),
            history,
            last: 1.0,
        }
    }

    fn predict(&self) -> f64 {
        let last = self.history.last().copied().unwrap_or(0.0);
        let next = match self.predictor {
            Predictor::Constant => last,
            Predictor::Arima => arima_next(&self.history).unwrap_or(last),
            Predictor::Kalman => kalman_next(&self.history).unwrap_or(last),
        };
        if next.is_finite() {
            next.max(0.0)
        } else {
            last
        }
    }
}

/// One-step forecast of ARIMA(p, 1, 0), `p ∈ 0..=3` by AIC, least squares on the
/// differences. `None` with under 8 points.
#[must_use]
pub fn arima_next(series: &[f64]) -> Option<f64> {
    if series.len() < 8 {
        return None;
    }
    let d: Vec<f64> = series.windows(2).map(|w| w[1] - w[0]).collect();
    let mut best: Option<(f64, f64)> = None; // (aic, next difference)
    for p in 0..=3usize {
        if d.len() < p + 4 {
            break;
        }
        let n = d.len() - p;
        // Regress d[t] on 1, d[t-1..t-p] by normal equations (Gaussian elimination).
        let k = p + 1;
        let mut a = vec![vec![0.0; k + 1]; k];
        for t in p..d.len() {
            let x: Vec<f64> = std::iter::once(1.0)
                .chain((1..=p).map(|j| d[t - j]))
                .collect();
            for (row, xi) in a.iter_mut().zip(&x) {
                for (cell, xj) in row.iter_mut().zip(&x) {
                    *cell += xi * xj;
                }
                row[k] += xi * d[t];
            }
        }
        let Some(beta) = solve(a) else { continue };
        let rss: f64 = (p..d.len())
            .map(|t| {
                let fit = beta[0] + (1..=p).map(|j| beta[j] * d[t - j]).sum::<f64>();
                (d[t] - fit).powi(2)
            })
            .sum();
        let sigma2 = (rss / n as f64).max(1e-12);
        let aic = n as f64 * sigma2.ln() + 2.0 * (k as f64 + 1.0);
        let next = beta[0] + (1..=p).map(|j| beta[j] * d[d.len() - j]).sum::<f64>();
        if best.is_none_or(|(b, _)| aic < b) {
            best = Some((aic, next));
        }
    }
    best.map(|(_, dn)| series[series.len() - 1] + dn)
}

/// Solves the augmented system `a` (k × (k+1)) by Gaussian elimination with pivoting.
fn solve(mut a: Vec<Vec<f64>>) -> Option<Vec<f64>> {
    let k = a.len();
    for c in 0..k {
        let piv = (c..k).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
        if a[piv][c].abs() < 1e-12 {
            return None;
        }
        a.swap(c, piv);
        let pivot_row = a[c].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != c {
                let f = row[c] / pivot_row[c];
                for (cell, p) in row.iter_mut().zip(&pivot_row).skip(c) {
                    *cell -= f * p;
                }
            }
        }
    }
    Some((0..k).map(|i| a[i][k] / a[i][i]).collect())
}

/// One-step forecast of a local linear trend Kalman filter run over `series`. `None` with
/// under 4 points.
#[must_use]
pub fn kalman_next(series: &[f64]) -> Option<f64> {
    if series.len() < 4 {
        return None;
    }
    let d: Vec<f64> = series.windows(2).map(|w| w[1] - w[0]).collect();
    let mean = d.iter().sum::<f64>() / d.len() as f64;
    let var = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / d.len() as f64).max(1e-9);
    let (r, q) = (var / 2.0, var / 10.0);
    // State (level, slope), covariance p.
    let (mut l, mut s) = (series[0], 0.0);
    let mut p = [[var * 10.0, 0.0], [0.0, var]];
    for &y in &series[1..] {
        // Predict: level += slope.
        l += s;
        p = [
            [p[0][0] + p[0][1] + p[1][0] + p[1][1] + q, p[0][1] + p[1][1]],
            [p[1][0] + p[1][1], p[1][1] + q / 10.0],
        ];
        // Update with y.
        let sk = p[0][0] + r;
        let (k0, k1) = (p[0][0] / sk, p[1][0] / sk);
        let e = y - l;
        l += k0 * e;
        s += k1 * e;
        p = [
            [(1.0 - k0) * p[0][0], (1.0 - k0) * p[0][1]],
            [p[1][0] - k1 * p[0][0], p[1][1] - k1 * p[0][1]],
        ];
    }
    Some(l + s)
}

impl Policy for DynamoPlanner {
    fn name(&self) -> &str {
        self.name
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
            let observed = self.samples.iter().sum::<f64>() / self.samples.len() as f64;
            self.samples.clear();
            self.history.push(observed);
            if self.history.len() > HISTORY_INTERVALS {
                self.history.remove(0);
            }
            let load = self.predict();
            let replicas = obs.variants[0].ready.max(1);
            let expected = self
                .model
                .as_ref()
                .and_then(|m| m.predict(observed, replicas).ok())
                .filter(|p| !p.saturated);
            // Dynamo's planner reads its HTTP frontend's metrics (Prometheus scrapes the
            // frontend, not the workers), so its TTFT runs from the frontend's receipt:
            // the gateway-side one, hold included.
            let correction = match (expected, obs.gateway_ttft_p90_ms, obs.tpot_p90_ms) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predictors_follow_a_trend_the_constant_one_lags() {
        let ramp: Vec<f64> = (0..40).map(|i| 10.0 + 2.0 * f64::from(i)).collect();
        let next = 10.0 + 2.0 * 40.0;
        let a = arima_next(&ramp).unwrap();
        let k = kalman_next(&ramp).unwrap();
        assert!((a - next).abs() < 0.5, "arima {a}");
        assert!((k - next).abs() < 2.0, "kalman {k}");
        assert!(arima_next(&ramp[..5]).is_none() && kalman_next(&ramp[..3]).is_none());
        // An AR(1) in differences: alternating steps are predicted to alternate.
        let zigzag: Vec<f64> = (0..60)
            .map(|i| 50.0 + if i % 2 == 0 { 0.0 } else { 5.0 })
            .collect();
        let z = arima_next(&zigzag).unwrap();
        assert!(
            (z - 50.0).abs() < 1.0,
            "after a high point comes a low one: {z}"
        );
    }
}
