//! The per-series online forecaster: a point model ([`Method`]), conformal quantiles
//! ([`Calibrator`]), a burst lift ([`BurstDetector`]), and the handling of messy series —
//! missing points, negative glitches, long gaps, restarts and brand-new series.
//!
//! Life of a Holt-Winters series: it starts in a warm-up stage (a non-seasonal damped-trend
//! smoother refitted on the points buffered so far), and once two seasons are buffered it fits
//! [`HoltWinters`] on them, drops the buffer and runs online in O(1) per point.

use statrs::distribution::{ContinuousCDF, StudentsT};

use super::burst::{BurstConfig, BurstDetector};
use super::conformal::{Calibrator, ResidualScale};
use super::idle::{IdleBand, IdleBandConfig};
use super::selection::{SelectionConfig, Selector};
use super::{
    Basis, Forecast, ForecastError, HoltWinters, HoltWintersConfig, MovingAverage, PointModel,
    QUANTILE_LEVELS, SeasonalNaive,
};

/// The point-forecasting method of a [`Forecaster`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The default the scaler uses: per horizon, whichever of Holt-Winters and simple
    /// exponential smoothing at a few `alpha`s (persistence included) has the lowest recent
    /// out-of-sample error ([`super::selection`]). O(1) per update like the others.
    Adaptive,
    /// Additive Holt-Winters with daily seasonality.
    HoltWinters,
    /// Baseline: the value at the same phase one season earlier.
    SeasonalNaive,
    /// Baseline: mean of the last `window_steps` points.
    MovingAverage {
        /// Window in intervals, >= 1.
        window_steps: usize,
    },
}

impl Method {
    /// The name used in evaluation reports: `adaptive`, `holt_winters`, `seasonal_naive`,
    /// `moving_average`.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Adaptive => "adaptive",
            Method::HoltWinters => "holt_winters",
            Method::SeasonalNaive => "seasonal_naive",
            Method::MovingAverage { .. } => "moving_average",
        }
    }

    /// True for the methods that run (and refit) Holt-Winters.
    fn uses_holt_winters(&self) -> bool {
        matches!(self, Method::Adaptive | Method::HoltWinters)
    }
}

/// Configuration of one [`Forecaster`]. Build with [`ForecasterConfig::new`], which derives
/// every step count from the interval, then adjust fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecasterConfig {
    /// Sampling interval of the series, in seconds.
    pub interval_s: f64,
    /// The point model.
    pub method: Method,
    /// Longest horizon [`Forecaster::forecast`] accepts, in seconds (default a day).
    pub max_horizon_s: f64,
    /// Holt-Winters season and parameter grid (season = a day by default).
    pub holt_winters: HoltWintersConfig,
    /// Horizons, in steps, with their own residual window; others are interpolated.
    pub calibration_steps: Vec<usize>,
    /// Residuals kept per calibrated horizon.
    pub residual_window: usize,
    /// How residuals are scaled.
    pub residual_scale: ResidualScale,
    /// Burst detector tuning ([`BurstConfig::OFF`] to disable).
    pub burst: BurstConfig,
    /// Fading of the band in idle spells ([`IdleBandConfig::OFF`] to disable).
    pub idle_band: IdleBandConfig,
    /// Candidate selection of [`Method::Adaptive`] (ignored by the other methods).
    pub selection: SelectionConfig,
    /// After this many missing points in a row, the next observation re-anchors the level.
    pub max_gap_steps: usize,
    /// Refit Holt-Winters every this many points on the history the forecaster keeps (the
    /// last `fit_window_seasons + 2` seasons: ~58 KB at 1 minute); `None` keeps no history
    /// and leaves refits to the caller ([`Forecaster::refit`]). Clients come and go, so
    /// parameters fitted once go stale: see `docs/forecasting.md`.
    pub refit_every_steps: Option<usize>,
}

/// Seconds in the daily season.
const DAY_S: f64 = 86_400.0;
/// Calibrated horizons are capped so a series' memory stays bounded (~30 KB of residuals);
/// longer horizons extrapolate from the longest one.
const MAX_CALIBRATED_STEPS: usize = 256;

impl ForecasterConfig {
    /// Defaults for a series sampled every `interval_s` seconds: daily season, horizons up to a
    /// day, 256 absolute residuals per horizon, a burst detector
    /// reacting within 3 minutes with a 15-minute half-life.
    pub fn new(interval_s: f64, method: Method) -> Result<Self, ForecastError> {
        if !(interval_s.is_finite() && interval_s > 0.0) {
            return Err(ForecastError::config(
                "interval_s",
                "finite and > 0",
                interval_s,
            ));
        }
        let season_steps = (DAY_S / interval_s).round() as usize;
        if season_steps < 2 {
            return Err(ForecastError::config(
                "interval_s",
                "at most half a day (43200)",
                interval_s,
            ));
        }
        let max_steps = season_steps.min(MAX_CALIBRATED_STEPS);
        // Every step up to 3 (the horizons a cold start needs), then doubling: quantiles of
        // neighbouring horizons differ little, and every bucket costs per-update work.
        let mut calibration_steps: Vec<usize> = [1, 2, 3, 6, 12, 24, 48, 96, 192, 256]
            .into_iter()
            .filter(|&s| s <= max_steps)
            .collect();
        calibration_steps.push(max_steps);
        Ok(Self {
            interval_s,
            method,
            max_horizon_s: DAY_S,
            holt_winters: HoltWintersConfig::new(season_steps),
            calibration_steps,
            residual_window: 256,
            residual_scale: ResidualScale::Absolute,
            burst: BurstConfig {
                window_steps: (180.0 / interval_s).ceil().max(1.0) as usize,
                gain: 0.5,
                half_life_steps: (900.0 / interval_s).max(1.0),
            },
            idle_band: IdleBandConfig::new(interval_s),
            selection: SelectionConfig::new(interval_s),
            max_gap_steps: season_steps / 4,
            refit_every_steps: Some(season_steps),
        })
    }

    /// Steps for a horizon in seconds (rounded up: a forecast must cover the whole horizon).
    pub fn horizon_steps(&self, horizon_s: f64) -> Result<usize, ForecastError> {
        if !(horizon_s.is_finite() && horizon_s > 0.0 && horizon_s <= self.max_horizon_s) {
            return Err(ForecastError::InvalidHorizon {
                max_s: self.max_horizon_s,
                got_s: horizon_s,
            });
        }
        Ok(((horizon_s / self.interval_s) - 1e-9).ceil().max(1.0) as usize)
    }

    fn validate(&self) -> Result<(), ForecastError> {
        if let Method::MovingAverage { window_steps: 0 } = self.method {
            return Err(ForecastError::config("method.window_steps", ">= 1", 0));
        }
        if self.residual_window < 2 {
            return Err(ForecastError::config(
                "residual_window",
                ">= 2",
                self.residual_window,
            ));
        }
        if let ResidualScale::Relative { floor_fraction } = self.residual_scale
            && !(floor_fraction > 0.0 && floor_fraction <= 1.0)
        {
            return Err(ForecastError::config(
                "residual_scale.floor_fraction",
                "in (0, 1]",
                floor_fraction,
            ));
        }
        if self.refit_every_steps == Some(0) {
            return Err(ForecastError::config(
                "refit_every_steps",
                ">= 1 or None",
                0,
            ));
        }
        if !(0.0..=1.0).contains(&self.burst.gain) {
            return Err(ForecastError::config(
                "burst.gain",
                "in [0, 1]",
                self.burst.gain,
            ));
        }
        Ok(())
    }
}

/// Non-seasonal damped-trend exponential smoothing used while a Holt-Winters series warms up.
#[derive(Debug, Clone, Copy)]
struct Smoother {
    alpha: f64,
    beta: f64,
    level: f64,
    trend: f64,
    started: bool,
}

/// Residual count at which the cold-start prior weighs half (see `Forecaster::cold_spread`).
const PRIOR_WEIGHT_RESIDUALS: f64 = 10.0;

/// Amplitude, relative to the mean, of the daily cycle a young series is assumed to have
/// and not to have shown yet ("demand may well be half or double"): the cold-start prior is
/// the change such a cycle makes over the horizon (`Forecaster::prior_spread`).
const PRIOR_CYCLE_AMPLITUDE: f64 = 0.5;

/// Trend damping of the warm-up smoother: strong, a young series' trend is mostly noise.
const WARM_PHI: f64 = 0.8;

impl Smoother {
    fn new(alpha: f64, beta: f64) -> Self {
        Self {
            alpha,
            beta,
            level: 0.0,
            trend: 0.0,
            started: false,
        }
    }

    /// Grid-fits (alpha, beta) on `history` for `h`-step mean absolute error and returns the
    /// smoother run to the end of `history`.
    fn fit(history: &[f64], h: usize) -> Self {
        let mut best = (f64::INFINITY, Self::new(0.5, 0.0));
        for alpha in [0.1, 0.2, 0.35, 0.5, 0.7, 1.0] {
            for beta in [0.0, 0.1] {
                let mut s = Self::new(alpha, beta);
                let mut pending = vec![f64::NAN; h];
                let (mut sum, mut n) = (0.0, 0usize);
                for (i, &y) in history.iter().enumerate() {
                    let f = pending[i % h];
                    if y.is_finite() && f.is_finite() {
                        sum += (y - f.max(0.0)).abs();
                        n += 1;
                    }
                    s.step(y);
                    pending[i % h] = if s.started { s.predict(h) } else { f64::NAN };
                }
                let mae = if n == 0 {
                    f64::INFINITY
                } else {
                    sum / n as f64
                };
                // Ties (e.g. no scored point yet) keep the earlier, smoother candidate.
                if mae < best.0 || !best.1.started {
                    best = (mae, s);
                }
            }
        }
        best.1
    }

    fn step(&mut self, y: f64) {
        if y.is_finite() {
            self.observe(y);
        } else {
            self.skip();
        }
    }
}

impl PointModel for Smoother {
    fn observe(&mut self, y: f64) {
        if !self.started {
            self.level = y;
            self.started = true;
            return;
        }
        let prev = self.level;
        let damped = WARM_PHI * self.trend;
        self.level = self.alpha * y + (1.0 - self.alpha) * (prev + damped);
        self.trend = self.beta * (self.level - prev) + (1.0 - self.beta) * damped;
    }

    fn skip(&mut self) {
        self.level += WARM_PHI * self.trend;
        self.trend *= WARM_PHI;
    }

    fn predict(&self, steps: usize) -> f64 {
        let damp = WARM_PHI * (1.0 - WARM_PHI.powi(steps as i32)) / (1.0 - WARM_PHI);
        self.level + damp * self.trend
    }
}

#[derive(Debug, Clone)]
enum Stage {
    /// Holt-Winters not fitted yet: smoother plus the buffer it will be fitted on.
    Warming {
        smoother: Smoother,
        history: Vec<f64>,
        /// Buffer length at the last smoother refit.
        refit_at: usize,
    },
    HoltWinters(HoltWinters),
    SeasonalNaive(SeasonalNaive),
    MovingAverage(MovingAverage),
}

impl Stage {
    fn model(&self) -> &dyn PointModel {
        match self {
            Stage::Warming { smoother, .. } => smoother,
            Stage::HoltWinters(m) => m,
            Stage::SeasonalNaive(m) => m,
            Stage::MovingAverage(m) => m,
        }
    }
}

/// The last `capacity` points (NaN = missing), for self-refits. Allocated in full up front so
/// an update never reallocates (a cloned `Vec` would lose its spare capacity).
#[derive(Debug, Clone)]
struct History {
    ring: Vec<f64>,
    next: usize,
    filled: usize,
    /// Points since the last (re)fit.
    since_fit: usize,
}

impl History {
    fn new(capacity: usize) -> Self {
        Self {
            ring: vec![f64::NAN; capacity.max(1)],
            next: 0,
            filled: 0,
            since_fit: 0,
        }
    }

    fn push(&mut self, y: f64) {
        self.ring[self.next] = y;
        self.next += 1;
        if self.next == self.ring.len() {
            self.next = 0;
        }
        self.filled = (self.filled + 1).min(self.ring.len());
        self.since_fit += 1;
    }

    /// Oldest first.
    fn to_vec(&self) -> Vec<f64> {
        if self.filled < self.ring.len() {
            return self.ring[..self.filled].to_vec();
        }
        let (newer, older) = self.ring.split_at(self.next);
        older.iter().chain(newer).copied().collect()
    }
}

/// Running count, mean and variance of the finite observations (Welford).
#[derive(Debug, Clone, Copy, Default)]
struct Moments {
    n: usize,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn push(&mut self, y: f64) {
        self.n += 1;
        let d = y - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (y - self.mean);
    }

    fn variance(&self) -> f64 {
        if self.n < 2 {
            f64::NAN
        } else {
            self.m2 / (self.n - 1) as f64
        }
    }
}

/// An online forecaster for one regularly sampled, non-negative series.
///
/// ```
/// use forecasting::forecast::{Forecaster, ForecasterConfig, Method, Basis};
/// let mut f = Forecaster::new(ForecasterConfig::new(600.0, Method::HoltWinters).unwrap()).unwrap();
/// assert_eq!(f.forecast(600.0).unwrap().basis, Basis::NoData);
/// for i in 0..400 {
///     let hour = (i % 144) as f64 / 6.0;
///     f.observe(10.0 + 5.0 * (hour / 24.0 * std::f64::consts::TAU).sin());
/// }
/// let next = f.forecast(1800.0).unwrap();
/// assert!(next.p95() >= next.p50() && next.p50() >= 0.0);
/// ```
#[derive(Debug, Clone)]
pub struct Forecaster {
    config: ForecasterConfig,
    stage: Stage,
    calibrator: Calibrator,
    burst: BurstDetector,
    idle: IdleBand,
    moments: Moments,
    missing_run: usize,
    /// One-step point and upper band made at the last origin, for the burst detector.
    last_one_step: (f64, f64),
    /// Kept only for Holt-Winters with `refit_every_steps`.
    history: Option<History>,
    /// Only for [`Method::Adaptive`].
    selector: Option<Selector>,
}

impl Forecaster {
    /// A fresh forecaster: it answers at once, with [`Basis::NoData`] and then
    /// [`Basis::ColdStart`] intervals until residuals accumulate.
    pub fn new(config: ForecasterConfig) -> Result<Self, ForecastError> {
        config.validate()?;
        let stage = Self::initial_stage(&config);
        let history = match config.refit_every_steps {
            Some(_) if config.method.uses_holt_winters() => {
                let hw = &config.holt_winters;
                let seasons = hw.fit_window_seasons.max(1) + 2;
                Some(History::new(seasons * hw.season_steps))
            }
            _ => None,
        };
        let selector = (config.method == Method::Adaptive)
            .then(|| Selector::new(&config.calibration_steps, config.selection));
        Ok(Self {
            history,
            selector,
            calibrator: Calibrator::new(config.calibration_steps.clone(), config.residual_window),
            burst: BurstDetector::new(config.burst),
            idle: IdleBand::new(config.idle_band),
            stage,
            config,
            moments: Moments::default(),
            missing_run: 0,
            last_one_step: (f64::NAN, f64::NAN),
        })
    }

    fn initial_stage(config: &ForecasterConfig) -> Stage {
        match config.method {
            Method::Adaptive | Method::HoltWinters => Stage::Warming {
                smoother: Smoother::new(0.5, 0.0),
                history: Vec::new(),
                refit_at: 0,
            },
            Method::SeasonalNaive => {
                Stage::SeasonalNaive(SeasonalNaive::new(config.holt_winters.season_steps))
            }
            Method::MovingAverage { window_steps } => {
                Stage::MovingAverage(MovingAverage::new(window_steps))
            }
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ForecasterConfig {
        &self.config
    }

    /// Finite observations seen since creation.
    pub fn observations(&self) -> usize {
        self.moments.n
    }

    /// The fitted Holt-Winters model, once the series has left its warm-up.
    pub fn holt_winters(&self) -> Option<&HoltWinters> {
        match &self.stage {
            Stage::HoltWinters(m) => Some(m),
            _ => None,
        }
    }

    /// True while a burst lift is raising the forecast.
    pub fn burst_active(&self) -> bool {
        self.burst.active()
    }

    /// Takes the next point of the series (one per interval). NaN, infinite or negative values
    /// count as missing: a rate cannot be negative, and a negative one is the mark of a counter
    /// reset, not of demand.
    pub fn observe(&mut self, value: f64) {
        let y = if value.is_finite() && value >= 0.0 {
            value
        } else {
            f64::NAN
        };
        let (p1, u1) = self.last_one_step;
        self.burst.observe(y, p1, u1);
        self.idle.observe(y, self.moments.mean);
        if y.is_finite() {
            if self.missing_run >= self.config.max_gap_steps.max(1) {
                self.reanchor(y);
            }
            self.missing_run = 0;
            self.moments.push(y);
        } else {
            self.missing_run += 1;
        }
        self.step_model(y);
        if let Some(selector) = &mut self.selector {
            selector.observe(y, self.stage.model());
        }

        let floor = self.scale_floor();
        let Self {
            stage,
            calibrator,
            selector,
            ..
        } = self;
        let model = stage.model();
        let selector = selector.as_ref();
        let has_data = self.moments.n > 0;
        let relative = matches!(self.config.residual_scale, ResidualScale::Relative { .. });
        // Residuals of the point forecast actually served (the selected candidate's for
        // `Adaptive`): the intervals are calibrated on what the scaler sees.
        calibrator.advance(y, |h| {
            if !has_data {
                return (f64::NAN, f64::NAN);
            }
            let point = point_forecast(model, selector, h);
            (point, if relative { point.max(floor) } else { 1.0 })
        });
        // The burst detector's band for the next point: the calibrated p97.5 only (a cold
        // start's band is too wide to call bursts against anyway), lift included so a burst
        // in progress must keep growing to extend it.
        self.last_one_step = match self.calibrator.quantile(1, 0.975) {
            Some(r) if has_data => {
                let point = self.point(1);
                let upper = point + self.residual_divisor(point) * r + self.burst.lift(1);
                (point, upper)
            }
            _ => (f64::NAN, f64::NAN),
        };
    }

    /// Turns the idle fade off ([`IdleBandConfig::OFF`]), e.g. when a tier rule decides
    /// what happens in idle spells from the model's own forecast.
    pub fn without_idle_fade(&mut self) {
        self.config.idle_band = IdleBandConfig::OFF;
        self.idle = IdleBand::new(IdleBandConfig::OFF);
    }

    /// Records `steps` missing points in a row (a scrape gap).
    pub fn observe_missing(&mut self, steps: usize) {
        for _ in 0..steps {
            self.observe(f64::NAN);
        }
    }

    /// The series restarted (e.g. the model was redeployed): the level re-anchors on the next
    /// point, forecasts made before the restart are never scored, the burst state is dropped.
    /// The daily shape and the residual history are kept: they describe the demand, not the
    /// process that stopped.
    pub fn restart(&mut self) {
        self.calibrator.forget_pending();
        self.burst.reset();
        self.missing_run = self.config.max_gap_steps.max(1);
        self.last_one_step = (f64::NAN, f64::NAN);
    }

    /// Refits Holt-Winters on `history` (oldest first, ending with the last observed point)
    /// and continues online from its end; calibration is kept. A no-op for the baselines.
    pub fn refit(&mut self, history: &[f64]) -> Result<(), ForecastError> {
        if self.config.method.uses_holt_winters() {
            let model = self.config.holt_winters.fit(history)?;
            self.stage = Stage::HoltWinters(model);
            if let Some(h) = &mut self.history {
                h.since_fit = 0;
            }
        }
        Ok(())
    }

    /// The forecast `horizon_s` seconds after the last point (rounded up to whole intervals).
    pub fn forecast(&self, horizon_s: f64) -> Result<Forecast, ForecastError> {
        Ok(self.forecast_steps(self.config.horizon_steps(horizon_s)?))
    }

    /// The forecast `steps >= 1` intervals after the last point.
    pub fn forecast_steps(&self, steps: usize) -> Forecast {
        let steps = steps.max(1);
        if self.moments.n == 0 {
            return Forecast::no_data(steps);
        }
        let point = self.point(steps);
        let scale = self.residual_divisor(point);
        let lift = self.burst.lift(steps);
        let mut quantiles = [0.0; 9];
        let mut calibrated = true;
        let mut fallback: Option<(f64, f64)> = None;
        for (q, &level) in quantiles.iter_mut().zip(QUANTILE_LEVELS.iter()) {
            // The burst lift raises the upper quantiles (what sizing provisions for) and not
            // the mean: lifting the mean cost accuracy on the ServeGen traces, see the docs.
            let lift = if level > 0.5 { lift } else { 0.0 };
            *q = lift
                + match self.calibrator.quantile(steps, level) {
                    Some(r) => point + scale * r,
                    None => {
                        calibrated = false;
                        let (spread, df) = *fallback.get_or_insert_with(|| self.cold_spread(steps));
                        if level == 0.5 {
                            point
                        } else {
                            point + spread * student_t_quantile(df, level)
                        }
                    }
                };
        }
        // Neither busy-period residuals nor a slowly decaying level describe an idle spell
        // (see `idle`).
        for q in &mut quantiles {
            *q = self.idle.blend(*q);
        }
        let point = self.idle.blend(point);
        // Non-negative and non-decreasing, whatever the residuals did.
        let mut running = 0.0f64;
        for q in &mut quantiles {
            running = running.max(if q.is_nan() { 0.0 } else { *q });
            *q = running;
        }
        let basis = if calibrated {
            Basis::Calibrated {
                residuals: self.calibrator.residuals(steps),
            }
        } else {
            Basis::ColdStart {
                observations: self.moments.n,
            }
        };
        Forecast {
            horizon_steps: steps,
            mean: point,
            quantiles,
            basis,
        }
    }

    /// Spread and degrees of freedom of the Student-t fallback. With at least 2 residuals at
    /// this horizon, their RMS (rescaled) blended with a fading prior; otherwise the spread
    /// of the observations plus a prior for the daily swing a handful of points cannot
    /// show, as large as that swing can be over `steps` ([`Self::prior_spread`]).
    ///
    /// Two parts of the variance are known rather than estimated: the prior (a stated
    /// belief) and the Poisson noise of a rate counted over one interval, `mean / interval`
    /// (any arrival stream has at least that; the observed spread or residuals hold it
    /// too, so only their excess over it is counted as estimated). The degrees of freedom
    /// are those of the sum (Welch–Satterthwaite): `n − 1` when the estimated excess
    /// dominates, towards a normal when the known parts do. Giving the whole sum `n − 1`
    /// made two steady samples a Cauchy (t₁'s 95th percentile is 6.3σ): a young series was
    /// sized for 4× its rate with the prior, and a horizon's first 2 residuals would do it
    /// again without one (Mooncake, `docs/forecasting.md`).
    fn cold_spread(&self, steps: usize) -> (f64, f64) {
        let (estimated_var, prior_var, df) = if let Some(rms) = self.calibrator.rms(steps) {
            let n_res = self.calibrator.held(steps);
            let point = self.point(steps);
            let scale = self.residual_divisor(point);
            // Few residuals also under-state the tails: inflate by sqrt(1 + 1/n), and keep
            // part of the prior until residuals outnumber PRIOR_WEIGHT_RESIDUALS.
            let resid = rms * scale * (1.0 + 1.0 / n_res as f64).sqrt();
            let w = PRIOR_WEIGHT_RESIDUALS / (PRIOR_WEIGHT_RESIDUALS + n_res as f64);
            (
                resid.powi(2),
                w * self.prior_spread(steps).powi(2),
                (n_res - 1) as f64,
            )
        } else {
            let n = self.moments.n;
            if n < 2 {
                return (f64::INFINITY, 1.0);
            }
            (
                self.moments.variance() * (1.0 + 1.0 / n as f64),
                self.prior_spread(steps).powi(2),
                (n - 1) as f64,
            )
        };
        let count_var = self.count_noise_var();
        let excess_var = (estimated_var - count_var).max(0.0);
        let total = excess_var + count_var + prior_var;
        (total.sqrt(), satterthwaite_df(total, excess_var, df))
    }

    /// The prior spread `steps` ahead of a young series: the standard deviation, over an
    /// unknown phase, of the change a daily cycle of amplitude `PRIOR_CYCLE_AMPLITUDE` ×
    /// mean makes in `steps` (√2 · A · sin(π h / day)), held at its quarter-day value, the
    /// old horizon-free 50 %, beyond that. A young series has not shown its daily swing,
    /// but within a cold start (minutes) that swing moves demand by about 1 %: the flat
    /// 50 % sized Mooncake's first 25 minutes for 1.8× its rate (`docs/forecasting.md`).
    fn prior_spread(&self, steps: usize) -> f64 {
        let day_steps = self.config.holt_winters.season_steps.max(1) as f64;
        let fraction_of_day = (steps as f64).min(day_steps / 4.0) / day_steps;
        std::f64::consts::SQRT_2
            * PRIOR_CYCLE_AMPLITUDE
            * (std::f64::consts::PI * fraction_of_day).sin()
            * self.moments.mean.abs()
    }

    /// Variance of the series' Poisson noise: a rate (events/s) counted over one interval
    /// at the observed mean varies by at least `mean / interval_s`.
    fn count_noise_var(&self) -> f64 {
        self.moments.mean.abs() / self.config.interval_s
    }

    fn scale_floor(&self) -> f64 {
        match self.config.residual_scale {
            ResidualScale::Absolute => 1.0,
            ResidualScale::Relative { floor_fraction } => {
                (floor_fraction * self.moments.mean).max(1e-9)
            }
        }
    }

    /// What a residual of a forecast `point` is divided by (see [`ResidualScale`]).
    fn residual_divisor(&self, point: f64) -> f64 {
        match self.config.residual_scale {
            ResidualScale::Absolute => 1.0,
            ResidualScale::Relative { .. } => point.max(self.scale_floor()),
        }
    }

    /// The point forecast `steps` ahead, clamped at 0.
    fn point(&self, steps: usize) -> f64 {
        point_forecast(self.stage.model(), self.selector.as_ref(), steps)
    }

    fn reanchor(&mut self, y: f64) {
        self.calibrator.forget_pending();
        self.burst.reset();
        if let Some(selector) = &mut self.selector {
            selector.reanchor();
        }
        match &mut self.stage {
            Stage::HoltWinters(m) => m.relevel(y),
            Stage::Warming { smoother, .. } => smoother.started = false,
            Stage::SeasonalNaive(_) | Stage::MovingAverage(_) => {}
        }
    }

    fn step_model(&mut self, y: f64) {
        let h = self.config.holt_winters.fit_horizon_steps.max(1);
        let mut fitted = None;
        if let Some(history) = &mut self.history {
            history.push(y);
            let due = self
                .config
                .refit_every_steps
                .is_some_and(|every| history.since_fit >= every);
            if due && matches!(self.stage, Stage::HoltWinters(_)) {
                // A refit that fails (too many gaps) keeps the running model; either way the
                // next attempt is a full period away.
                history.since_fit = 0;
                if let Ok(model) = self.config.holt_winters.fit(&history.to_vec()) {
                    self.stage = Stage::HoltWinters(model);
                    return;
                }
            }
        }
        match &mut self.stage {
            Stage::Warming {
                smoother,
                history,
                refit_at,
            } => {
                history.push(y);
                smoother.step(y);
                let hw = &self.config.holt_winters;
                if history.len() >= hw.min_history() {
                    match hw.fit(history) {
                        Ok(m) => fitted = Some(m),
                        // Too many gaps: slide the buffer by a season and try again later.
                        Err(_) => {
                            history.drain(..hw.season_steps);
                            *refit_at = 0;
                        }
                    }
                } else if history.len() >= 8 && history.len() >= *refit_at + refit_at.div_ceil(4) {
                    // Refit the smoother when the buffer has grown by a quarter: amortised O(1).
                    *smoother = Smoother::fit(history, h);
                    *refit_at = history.len();
                }
            }
            Stage::HoltWinters(m) => step(m, y),
            Stage::SeasonalNaive(m) => step(m, y),
            Stage::MovingAverage(m) => step(m, y),
        }
        if let Some(m) = fitted {
            self.stage = Stage::HoltWinters(m);
            if let Some(history) = &mut self.history {
                history.since_fit = 0;
            }
        }
    }
}

fn point_forecast(model: &dyn PointModel, selector: Option<&Selector>, steps: usize) -> f64 {
    match selector {
        Some(s) => s.predict(steps, model),
        None => model.predict(steps),
    }
    .max(0.0)
}

fn step(model: &mut impl PointModel, y: f64) {
    if y.is_finite() {
        model.observe(y);
    } else {
        model.skip();
    }
}

/// Degrees of freedom of a variance `total` = `estimated` (with `df`) + a known part, by
/// Welch–Satterthwaite: `total² · df / estimated²`, capped where the t is a normal.
fn satterthwaite_df(total: f64, estimated: f64, df: f64) -> f64 {
    const NORMAL_DF: f64 = 1e6;
    if !total.is_finite() {
        return df;
    }
    if estimated.is_nan() || estimated <= 0.0 {
        // Nothing estimated: the spread is the known prior alone.
        return NORMAL_DF;
    }
    (df * (total / estimated).powi(2)).clamp(df, NORMAL_DF)
}

/// Quantile of a standard Student-t with `df` degrees of freedom (`df >= 1`).
fn student_t_quantile(df: f64, level: f64) -> f64 {
    if level == 0.5 {
        return 0.0;
    }
    match StudentsT::new(0.0, 1.0, df.max(1.0)) {
        Ok(t) => t.inverse_cdf(level),
        Err(_) => f64::NAN,
    }
}
