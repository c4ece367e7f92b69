//! The answer of a forecast: a mean and fixed quantile levels, never negative.

use serde::Serialize;

/// Quantile levels every [`Forecast`] carries, ascending. The central intervals 80 %, 90 %,
/// 95 % and 98 % are pairs of them (see [`Forecast::interval`]).
pub const QUANTILE_LEVELS: [f64; 9] = [0.01, 0.025, 0.05, 0.10, 0.50, 0.90, 0.95, 0.975, 0.99];

/// How much evidence a [`Forecast`] rests on, so a consumer can tell an honest guess from a
/// calibrated answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Basis {
    /// Nothing observed yet: the mean is 0 and every upper quantile is `+inf`.
    NoData,
    /// Too few residuals at this horizon for conformal quantiles: the quantiles come from a
    /// Student-t with the observed spread, wide on purpose.
    ColdStart {
        /// Finite observations seen so far.
        observations: usize,
    },
    /// Quantiles are empirical (conformal) quantiles of recent residuals at this horizon.
    Calibrated {
        /// Residuals the quantiles rest on.
        residuals: usize,
    },
}

/// A predictive distribution for one horizon. Values are in the unit of the series
/// (e.g. requests/s). Quantiles are non-decreasing and `>= 0`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Forecast {
    /// Horizon in steps of the series interval.
    pub horizon_steps: usize,
    /// Point forecast (the method's mean; the burst lift raises only the upper quantiles), `>= 0`.
    pub mean: f64,
    /// Quantiles at [`QUANTILE_LEVELS`].
    pub quantiles: [f64; 9],
    /// What the quantiles rest on.
    pub basis: Basis,
}

impl Forecast {
    /// The quantile at `level` if it is one of [`QUANTILE_LEVELS`] (compared to 1e-9).
    pub fn quantile(&self, level: f64) -> Option<f64> {
        QUANTILE_LEVELS
            .iter()
            .position(|l| (l - level).abs() < 1e-9)
            .map(|i| self.quantiles[i])
    }

    /// Median.
    pub fn p50(&self) -> f64 {
        self.quantiles[4]
    }

    /// 90th percentile.
    pub fn p90(&self) -> f64 {
        self.quantiles[5]
    }

    /// 95th percentile.
    pub fn p95(&self) -> f64 {
        self.quantiles[6]
    }

    /// 99th percentile.
    pub fn p99(&self) -> f64 {
        self.quantiles[8]
    }

    /// The central interval with the given coverage: one of 0.80, 0.90, 0.95, 0.98.
    pub fn interval(&self, coverage: f64) -> Option<(f64, f64)> {
        let tail = (1.0 - coverage) / 2.0;
        Some((self.quantile(tail)?, self.quantile(1.0 - tail)?))
    }

    /// The answer for a series nothing is known about.
    pub(crate) fn no_data(horizon_steps: usize) -> Self {
        let mut quantiles = [f64::INFINITY; 9];
        // Below the median, 0 is the only honest bound for a non-negative quantity.
        quantiles[..5].fill(0.0);
        Self {
            horizon_steps,
            mean: 0.0,
            quantiles,
            basis: Basis::NoData,
        }
    }
}
