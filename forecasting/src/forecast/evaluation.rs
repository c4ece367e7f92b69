//! Rolling-origin evaluation: every forecast is made by an online forecaster that has seen
//! only the points up to its origin; the first `warmup_steps` points are fed but not scored.
//! This is what `slo-scaler forecast-eval` prints.
//!
//! Methods compared: `adaptive` (the default: per-horizon selection between Holt-Winters and
//! simple exponential smoothing, exactly as it runs in the scaler), `holt_winters` alone
//! (refitting itself once per season on the points it has seen), and the baselines
//! `seasonal_naive` and `moving_average` (its window picked on the warm-up only).
//! All three get the same conformal calibration, so interval quality compares like with like.

use serde::Serialize;

use super::{ForecastError, Forecaster, ForecasterConfig, Method, MovingAverage, PointModel};

/// What to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalConfig {
    /// Interval of the series, in seconds.
    pub interval_s: f64,
    /// Forecast horizon, in seconds (rounded up to whole intervals).
    pub horizon_s: f64,
    /// Points fed before scoring starts; `None` = two seasons when the series holds at least
    /// four, else a quarter of the series (at least horizon + 2 points).
    pub warmup_steps: Option<usize>,
    /// Holt-Winters refits itself every this many steps ([`ForecasterConfig::refit_every_steps`]);
    /// `None` = the forecaster's default, once per season.
    pub refit_every_steps: Option<usize>,
}

impl EvalConfig {
    /// Defaults for `interval_s` and `horizon_s`.
    pub fn new(interval_s: f64, horizon_s: f64) -> Self {
        Self {
            interval_s,
            horizon_s,
            warmup_steps: None,
            refit_every_steps: None,
        }
    }
}

/// Scores of one method over the evaluated origins.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodScore {
    /// `adaptive`, `holt_winters`, `seasonal_naive` or `moving_average`.
    pub name: String,
    /// Mean absolute error of the mean forecast, in series units.
    pub mae: f64,
    /// Symmetric mean absolute percentage error of the mean forecast, in percent (0-200);
    /// a point where forecast and actual are both 0 counts as 0.
    pub smape: f64,
    /// Mean pinball loss of the p95 forecast, in series units.
    pub pinball_p95: f64,
    /// Fraction of actuals within the central 90 % interval (p5-p95).
    pub coverage_90: f64,
    /// Fraction of actuals within the central 95 % interval (p2.5-p97.5).
    pub coverage_95: f64,
    /// Mean width of the central 95 % interval, in series units.
    pub mean_width_95: f64,
}

/// Result of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// Interval of the series, in seconds.
    pub interval_s: f64,
    /// Horizon evaluated, in seconds (whole intervals).
    pub horizon_s: f64,
    /// Forecasts scored per method.
    pub points: usize,
    /// Points fed before scoring.
    pub warmup_points: usize,
    /// Window of the `moving_average` baseline, picked on the warm-up (1 = persistence).
    pub moving_average_window_steps: usize,
    /// The method the scaler uses by default.
    pub selected: String,
    /// One score per method; the selected one first.
    pub methods: Vec<MethodScore>,
}

#[derive(Default)]
struct Accumulator {
    n: usize,
    abs: f64,
    smape: f64,
    pinball: f64,
    in90: usize,
    in95: usize,
    width95: f64,
}

impl Accumulator {
    fn add(&mut self, actual: f64, f: &super::Forecast) {
        let (lo90, hi90) = (f.quantiles[2], f.quantiles[6]);
        let (lo95, hi95) = (f.quantiles[1], f.quantiles[7]);
        let err = actual - f.mean;
        self.n += 1;
        self.abs += err.abs();
        let denom = actual.abs() + f.mean.abs();
        if denom > 0.0 {
            self.smape += 200.0 * err.abs() / denom;
        }
        let d95 = actual - f.p95();
        self.pinball += if d95 >= 0.0 { 0.95 * d95 } else { -0.05 * d95 };
        self.in90 += usize::from(lo90 <= actual && actual <= hi90);
        self.in95 += usize::from(lo95 <= actual && actual <= hi95);
        self.width95 += hi95 - lo95;
    }

    fn score(&self, name: &str) -> MethodScore {
        let n = self.n.max(1) as f64;
        MethodScore {
            name: name.to_string(),
            mae: self.abs / n,
            smape: self.smape / n,
            pinball_p95: self.pinball / n,
            coverage_90: self.in90 as f64 / n,
            coverage_95: self.in95 as f64 / n,
            mean_width_95: self.width95 / n,
        }
    }
}

/// Moving-average windows tried on the warm-up, in intervals.
const MA_WINDOWS: [usize; 8] = [1, 2, 3, 4, 6, 12, 24, 48];

/// The moving-average window with the lowest `h`-step MAE on `warmup` (ties: the shorter).
pub fn pick_moving_average_window(warmup: &[f64], h: usize) -> usize {
    let mut best = (f64::INFINITY, 1);
    for w in MA_WINDOWS.into_iter().filter(|&w| w < warmup.len().max(2)) {
        let mut ma = MovingAverage::new(w);
        let mut pending = vec![f64::NAN; h];
        let (mut sum, mut n) = (0.0, 0usize);
        for (i, &y) in warmup.iter().enumerate() {
            let f = pending[i % h];
            if y.is_finite() && f.is_finite() {
                sum += (y - f).abs();
                n += 1;
            }
            if y.is_finite() {
                ma.observe(y);
            } else {
                ma.skip();
            }
            pending[i % h] = if i + 1 >= w { ma.predict(h) } else { f64::NAN };
        }
        let mae = if n == 0 {
            f64::INFINITY
        } else {
            sum / n as f64
        };
        if mae < best.0 {
            best = (mae, w);
        }
    }
    best.1
}

/// Runs the rolling-origin evaluation of every method on `series` (one point per
/// `interval_s`, NaN = missing, oldest first).
pub fn evaluate(series: &[f64], config: &EvalConfig) -> Result<EvalReport, ForecastError> {
    let base = ForecasterConfig::new(config.interval_s, Method::HoltWinters)?;
    let h = base.horizon_steps(config.horizon_s)?;
    let season = base.holt_winters.season_steps;
    let warmup = config
        .warmup_steps
        .unwrap_or(if series.len() >= 4 * season {
            2 * season
        } else {
            (series.len() / 4).max(h + 2)
        });
    if series.len() < warmup + h + 1 {
        return Err(ForecastError::NotEnoughHistory {
            model: "rolling-origin evaluation",
            expected: warmup + h + 1,
            got: series.len(),
        });
    }
    let ma_window = pick_moving_average_window(&series[..warmup], h);

    let methods = [
        Method::Adaptive,
        Method::HoltWinters,
        Method::SeasonalNaive,
        Method::MovingAverage {
            window_steps: ma_window,
        },
    ];
    let mut scores = Vec::new();
    let mut points = 0;
    for method in methods {
        let mut cfg = base.clone();
        cfg.method = method;
        cfg.holt_winters.fit_horizon_steps = h;
        if let Some(every) = config.refit_every_steps {
            cfg.refit_every_steps = Some(every.max(1));
        }
        let mut forecaster = Forecaster::new(cfg)?;
        let mut acc = Accumulator::default();
        for (t, &y) in series.iter().enumerate() {
            forecaster.observe(y);
            if t + 1 >= warmup && t + h < series.len() && series[t + h].is_finite() {
                acc.add(series[t + h], &forecaster.forecast_steps(h));
            }
        }
        points = acc.n;
        scores.push(acc.score(method.name()));
    }
    Ok(EvalReport {
        interval_s: config.interval_s,
        horizon_s: h as f64 * config.interval_s,
        points,
        warmup_points: warmup,
        moving_average_window_steps: ma_window,
        selected: Method::Adaptive.name().to_string(),
        methods: scores,
    })
}
