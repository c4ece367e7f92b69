//! Additive Holt-Winters (ETS(A,Ad,A)) with daily seasonality, written by hand: ~10 ns per
//! update, and a small coordinate-descent grid search for its parameters.
//!
//! Type-state: [`HoltWintersConfig`] is the unfitted model (grid and season), and
//! [`HoltWintersConfig::fit`] is the only constructor of a [`HoltWinters`], so "predict before
//! fit" does not compile:
//!
//! ```compile_fail
//! use forecasting::forecast::{HoltWinters, PointModel};
//! // No constructor but `HoltWintersConfig::fit`: the fields are private.
//! let model = HoltWinters { level: 0.0 };
//! model.predict(1);
//! ```
//!
//! Why hand-written rather than `augurs`: see `docs/forecasting.md`.

use super::{ForecastError, PointModel};

/// Smoothing parameters of additive Holt-Winters with a damped trend.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct HoltWintersParams {
    /// Level smoothing, in (0, 1].
    pub alpha: f64,
    /// Trend smoothing, in [0, 1]; 0 keeps the initial (zero) trend.
    pub beta: f64,
    /// Seasonal smoothing, in [0, 1].
    pub gamma: f64,
    /// Trend damping per step, in (0, 1].
    pub phi: f64,
    /// False when the fit found the daily season to add more noise than signal: the seasonal
    /// indices stay 0 and the model is damped-trend exponential smoothing.
    pub seasonal: bool,
    /// Innovations are clipped to `clip_k` robust standard deviations before they update the
    /// state (robust Holt-Winters, Gelper et al. 2010), so a single-interval spike does not
    /// drag the level; infinite = no clipping.
    pub clip_k: f64,
}

/// An unfitted Holt-Winters model: the season and the parameter grid to search.
#[derive(Debug, Clone, PartialEq)]
pub struct HoltWintersConfig {
    /// Season length in intervals (a day: 144 at 600 s, 1440 at 60 s).
    pub season_steps: usize,
    /// Candidate `alpha` values.
    pub alphas: Vec<f64>,
    /// Candidate `beta` values.
    pub betas: Vec<f64>,
    /// Candidate `gamma` values.
    pub gammas: Vec<f64>,
    /// Trend damping used for every candidate.
    pub phi: f64,
    /// Candidate clipping thresholds (see [`HoltWintersParams::clip_k`]).
    pub clip_ks: Vec<f64>,
    /// Also try the model without season and keep it when it scores better.
    pub try_nonseasonal: bool,
    /// The fit minimises the mean absolute error of forecasts this many steps ahead, so the
    /// parameters suit the horizon provisioning needs, not only the next interval.
    pub fit_horizon_steps: usize,
    /// Candidates are scored on the last `fit_window_seasons` seasons (after two seasons that
    /// initialise the state); older history is ignored.
    pub fit_window_seasons: usize,
    /// Rounds of coordinate descent over (alpha, gamma, beta).
    pub rounds: usize,
}

impl HoltWintersConfig {
    /// Default grid for a season of `season_steps` intervals.
    pub fn new(season_steps: usize) -> Self {
        Self {
            season_steps,
            alphas: vec![0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0],
            betas: vec![0.0, 0.05],
            gammas: vec![0.02, 0.05, 0.1, 0.2, 0.35, 0.5],
            phi: 0.9,
            clip_ks: vec![f64::INFINITY, 3.0],
            try_nonseasonal: true,
            fit_horizon_steps: 1,
            fit_window_seasons: 3,
            rounds: 2,
        }
    }

    /// Finite points a fit needs: two full seasons (one to initialise, one to score).
    pub fn min_history(&self) -> usize {
        2 * self.season_steps
    }

    fn validate(&self) -> Result<(), ForecastError> {
        if self.season_steps < 2 {
            return Err(ForecastError::config(
                "season_steps",
                ">= 2",
                self.season_steps,
            ));
        }
        let in_unit = |v: &[f64]| !v.is_empty() && v.iter().all(|x| (0.0..=1.0).contains(x));
        if !in_unit(&self.alphas) || self.alphas.contains(&0.0) {
            return Err(ForecastError::config(
                "alphas",
                "non-empty, each in (0, 1]",
                format!("{:?}", self.alphas),
            ));
        }
        if !in_unit(&self.betas) {
            return Err(ForecastError::config(
                "betas",
                "non-empty, each in [0, 1]",
                format!("{:?}", self.betas),
            ));
        }
        if !in_unit(&self.gammas) {
            return Err(ForecastError::config(
                "gammas",
                "non-empty, each in [0, 1]",
                format!("{:?}", self.gammas),
            ));
        }
        if !(self.phi > 0.0 && self.phi <= 1.0) {
            return Err(ForecastError::config("phi", "in (0, 1]", self.phi));
        }
        Ok(())
    }

    /// Fits on `history` (one point per interval, NaN = missing, oldest first) and returns the
    /// model with its state at the end of `history`, ready to forecast the next point.
    pub fn fit(&self, history: &[f64]) -> Result<HoltWinters, ForecastError> {
        self.validate()?;
        let m = self.season_steps;
        let finite = history.iter().filter(|v| v.is_finite()).count();
        if history.len() < self.min_history() || finite < self.min_history() * 3 / 4 {
            return Err(ForecastError::NotEnoughHistory {
                model: "holt_winters",
                expected: self.min_history(),
                got: finite,
            });
        }
        // Only the recent past is fitted: the state forgets older points anyway, and this
        // bounds the cost of a fit on 14 days at 1-minute resolution.
        let keep = (self.fit_window_seasons.max(1) + 2) * m;
        let tail = &history[history.len().saturating_sub(keep)..];
        let seasonal_init = initial_state(&tail[..m], &tail[m..2 * m], m, true);
        let flat_init = initial_state(&tail[..m], &tail[m..2 * m], m, false);
        // Score after the two initialising seasons when there is anything after them.
        let score_from = if tail.len() > 3 * m { m } else { 0 };
        let h = self.fit_horizon_steps.max(1);
        let variants: &[bool] = if self.try_nonseasonal {
            &[true, false]
        } else {
            &[true]
        };
        let mut overall: Option<(f64, HoltWintersParams)> = None;
        for &seasonal in variants {
            let init = if seasonal { &seasonal_init } else { &flat_init };
            let mut best = HoltWintersParams {
                alpha: self.alphas[self.alphas.len() / 2],
                beta: self.betas[0],
                gamma: if seasonal {
                    self.gammas[self.gammas.len() / 2]
                } else {
                    0.0
                },
                phi: self.phi,
                seasonal,
                clip_k: self.clip_ks.first().copied().unwrap_or(f64::INFINITY),
            };
            let mut best_score = score(init, best, &tail[m..], score_from, h, f64::INFINITY);
            // A later round revisits each axis; a candidate scored before is skipped (its
            // score cannot have changed), which saves about a third of a default fit.
            let mut scored = vec![best];
            for _ in 0..self.rounds.max(1) {
                for axis in 0..4 {
                    let grid: &[f64] = match axis {
                        0 => &self.alphas,
                        1 if seasonal => &self.gammas,
                        1 => &[],
                        2 => &self.betas,
                        _ => &self.clip_ks,
                    };
                    for &v in grid {
                        let mut cand = best;
                        match axis {
                            0 => cand.alpha = v,
                            1 => cand.gamma = v,
                            2 => cand.beta = v,
                            _ => cand.clip_k = v,
                        }
                        if scored.contains(&cand) {
                            continue;
                        }
                        scored.push(cand);
                        let s = score(init, cand, &tail[m..], score_from, h, best_score);
                        if s < best_score {
                            best_score = s;
                            best = cand;
                        }
                    }
                }
            }
            if overall.is_none_or(|(s, _)| best_score < s) {
                overall = Some((best_score, best));
            }
        }
        let best = overall.expect("at least one variant").1;
        let init = if best.seasonal {
            seasonal_init
        } else {
            flat_init
        };
        let mut model = HoltWinters {
            params: best,
            ..init
        };
        for &y in &tail[m..] {
            model.step(y);
        }
        Ok(model)
    }
}

/// Level = mean of the first season; seasonal indices = average deviation from each season's
/// mean over the first two seasons (missing points ignored).
fn initial_state(first: &[f64], second: &[f64], m: usize, seasonal: bool) -> HoltWinters {
    let mean = |s: &[f64]| {
        let (sum, n) = s
            .iter()
            .filter(|v| v.is_finite())
            .fold((0.0, 0usize), |(a, n), v| (a + v, n + 1));
        if n == 0 { 0.0 } else { sum / n as f64 }
    };
    let (m1, m2) = (mean(first), mean(second));
    let season = (0..m)
        .map(|i| {
            if !seasonal {
                return 0.0;
            }
            let d: Vec<f64> = [first[i] - m1, second[i] - m2]
                .into_iter()
                .filter(|d| d.is_finite())
                .collect();
            if d.is_empty() {
                0.0
            } else {
                d.iter().sum::<f64>() / d.len() as f64
            }
        })
        .collect();
    HoltWinters {
        params: HoltWintersParams {
            alpha: 0.5,
            beta: 0.0,
            gamma: 0.1,
            phi: 1.0,
            seasonal,
            clip_k: f64::INFINITY,
        },
        level: m1,
        sigma: f64::NAN,
        trend: 0.0,
        season,
        phase: 0,
    }
}

/// Sum of absolute `h`-step errors of `params` run from `init` over `rest`, counted from index
/// `score_from` of `rest`. Candidates are compared on the same points, so sums compare like
/// means; a candidate stops as soon as its sum passes `give_up` (the best so far).
fn score(
    init: &HoltWinters,
    params: HoltWintersParams,
    rest: &[f64],
    score_from: usize,
    h: usize,
    give_up: f64,
) -> f64 {
    let mut model = HoltWinters {
        params,
        ..init.clone()
    };
    let damp = damping(params.phi, h);
    // Forecasts made h steps ago for the current index, in a ring.
    let mut pending = vec![f64::NAN; h];
    let mut sum = 0.0;
    let mut scored = false;
    for (i, &y) in rest.iter().enumerate() {
        let slot = i % h;
        let f = pending[slot];
        if i >= score_from && y.is_finite() && f.is_finite() {
            sum += (y - f.max(0.0)).abs();
            scored = true;
            if sum > give_up {
                return f64::INFINITY;
            }
        }
        model.step(y);
        pending[slot] = model.predict_damped(h, damp);
    }
    if scored { sum } else { f64::INFINITY }
}

/// Sum of phi^1..=phi^steps: how much of the current trend a forecast `steps` ahead carries.
fn damping(phi: f64, steps: usize) -> f64 {
    if phi >= 1.0 {
        steps as f64
    } else {
        phi * (1.0 - phi.powi(steps as i32)) / (1.0 - phi)
    }
}

/// A fitted additive Holt-Winters model with damped trend. Obtain one from
/// [`HoltWintersConfig::fit`].
#[derive(Debug, Clone)]
pub struct HoltWinters {
    params: HoltWintersParams,
    level: f64,
    trend: f64,
    /// Robust scale of one-step innovations (EWMA of clipped absolute innovations).
    sigma: f64,
    season: Vec<f64>,
    /// Index into `season` of the next point's phase.
    phase: usize,
}

impl HoltWinters {
    /// The fitted parameters.
    pub fn params(&self) -> HoltWintersParams {
        self.params
    }

    /// Season length in intervals.
    pub fn season_steps(&self) -> usize {
        self.season.len()
    }

    /// Re-anchors the state on `value`, the first point after a long gap or a restart: the
    /// old level is stale but the daily shape is still the best guess. Level, trend and
    /// seasonal indices are all scaled by `value / forecast` (clamped to [0, 10]), because a
    /// restarted series usually keeps its shape at another scale, and additive indices left
    /// at the old amplitude would swing the forecast far off.
    pub fn relevel(&mut self, value: f64) {
        let expected = self.predict(1);
        if expected > 1e-9 && value.is_finite() {
            let ratio = (value / expected).clamp(0.0, 10.0);
            self.level *= ratio;
            self.season.iter_mut().for_each(|s| *s *= ratio);
        } else {
            self.level = value - self.season[self.phase];
        }
        self.trend = 0.0;
        self.sigma = f64::NAN;
    }

    fn predict_damped(&self, steps: usize, damp: f64) -> f64 {
        let m = self.season.len();
        let mut i = self.phase + steps - 1;
        if i >= m {
            // One subtraction covers every horizon up to a season; longer ones are rare.
            i = if i < 2 * m { i - m } else { i % m };
        }
        self.level + damp * self.trend + self.season[i]
    }

    fn step(&mut self, y: f64) {
        if y.is_finite() {
            self.observe(y);
        } else {
            self.skip();
        }
    }
}

/// Weight of the newest innovation in the robust scale.
const SIGMA_LAMBDA: f64 = 0.1;

impl HoltWinters {
    /// Replaces `y` by the one-step forecast plus the clipped innovation, and updates the
    /// robust scale. A run of large innovations (a level shift) grows the scale by up to
    /// `1 + lambda (k - 1)` per step, so shifts are followed within a few intervals.
    fn clip(&mut self, y: f64, forecast: f64) -> f64 {
        let e = y - forecast;
        if !self.sigma.is_finite() {
            self.sigma = e.abs();
            return y;
        }
        let k = self.params.clip_k;
        let bound = k * self.sigma.max(1e-12);
        let clipped = e.clamp(-bound, bound);
        self.sigma = (1.0 - SIGMA_LAMBDA) * self.sigma + SIGMA_LAMBDA * clipped.abs();
        if k.is_finite() { forecast + clipped } else { y }
    }
}

impl PointModel for HoltWinters {
    fn observe(&mut self, y: f64) {
        let HoltWintersParams {
            alpha,
            beta,
            gamma,
            phi,
            ..
        } = self.params;
        let s = self.season[self.phase];
        let prev_level = self.level;
        let damped = phi * self.trend;
        let y = self.clip(y, prev_level + damped + s);
        self.level = alpha * (y - s) + (1.0 - alpha) * (prev_level + damped);
        self.trend = beta * (self.level - prev_level) + (1.0 - beta) * damped;
        self.season[self.phase] = gamma * (y - prev_level - damped) + (1.0 - gamma) * s;
        self.phase += 1;
        if self.phase == self.season.len() {
            self.phase = 0;
        }
    }

    fn skip(&mut self) {
        self.level += self.params.phi * self.trend;
        self.trend *= self.params.phi;
        self.phase += 1;
        if self.phase == self.season.len() {
            self.phase = 0;
        }
    }

    fn predict(&self, steps: usize) -> f64 {
        let steps = steps.max(1);
        self.predict_damped(steps, damping(self.params.phi, steps))
    }
}
