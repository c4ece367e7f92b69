//! Online per-horizon model selection: the point forecast behind [`super::Method::Adaptive`].
//!
//! A bank of candidates runs side by side on every series — the Holt-Winters model of the
//! [`super::Forecaster`] (its warm-up smoother until Holt-Winters is fitted) and simple
//! exponential smoothing (SES) at a few fixed `alpha`s, `alpha = 1` being persistence. Each
//! candidate's forecasts are scored when their actual arrives, per calibrated horizon, by an
//! exponentially discounted sum of absolute errors; a forecast `h` steps ahead comes from the
//! candidate with the lowest discounted error at the calibrated horizon at or below `h`.
//!
//! Why: on the bursty ServeGen aggregates the 10-minute series is close to a random walk and
//! no single fitted model beats persistence reliably (a daily Holt-Winters fit overfits the
//! last days), while on a clean daily cycle Holt-Winters wins by far. Selecting by recent
//! out-of-sample error per horizon follows whichever regime the series is in. Measurements
//! and the held-out check of the two tuning choices are in `docs/forecasting.md`.
//!
//! Cost per update: one SES step per candidate plus, per calibrated horizon, one scored error
//! and one stored forecast per candidate — O(1), no allocation.

use super::PointModel;

/// SES smoothing constants of the bank; 1.0 is persistence. Chosen on the first half of the
/// ServeGen series only (see `docs/forecasting.md`).
pub const SES_ALPHAS: [f64; 4] = [1.0, 0.85, 0.7, 0.5];
/// Candidates: the forecaster's own model, then one SES per alpha.
const CANDIDATES: usize = 1 + SES_ALPHAS.len();
/// Index of the forecaster's own model (Holt-Winters) in the bank.
const MODEL: usize = 0;

/// Tuning of the selection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelectionConfig {
    /// Half-life of the discounted error sums, in intervals (default 8 hours' worth).
    pub half_life_steps: f64,
}

impl SelectionConfig {
    /// Half-life of 8 hours for a series sampled every `interval_s` seconds.
    pub fn new(interval_s: f64) -> Self {
        Self {
            half_life_steps: (8.0 * 3600.0 / interval_s).max(1.0),
        }
    }
}

/// The candidate bank and its per-horizon error bookkeeping.
#[derive(Debug, Clone)]
pub struct Selector {
    /// Calibrated horizons, ascending, deduplicated; `horizons[0] == 1`.
    horizons: Vec<usize>,
    /// Start of each horizon's ring in `pending`.
    offsets: Vec<usize>,
    /// Every candidate's forecast waiting for its actual, one entry per origin: horizon `h`'s
    /// ring holds `h` entries. One entry per candidate set keeps an update to one cache line
    /// per horizon (memory traffic, not arithmetic, bounds the 10,000-series benchmark);
    /// `f32` is ample for error bookkeeping.
    pending: Vec<[f32; CANDIDATES]>,
    /// Discounted absolute error per horizon and candidate.
    errors: Vec<[f32; CANDIDATES]>,
    /// The candidate with the lowest error per horizon (cached after each update).
    choice: Vec<u8>,
    levels: [f64; SES_ALPHAS.len()],
    started: bool,
    /// Missing points since the last observation: a forecast `h` steps after the last point
    /// is `h + stale` steps after the last information, and is selected as such.
    stale: usize,
    /// Points seen (observed or missing): the ring clock.
    t: usize,
    discount: f32,
}

impl Selector {
    /// A selector scoring at `horizons` (any order; 1 is added) with `config`.
    pub fn new(horizons: &[usize], config: SelectionConfig) -> Self {
        let mut hs: Vec<usize> = horizons.iter().copied().filter(|&h| h >= 1).collect();
        hs.push(1);
        hs.sort_unstable();
        hs.dedup();
        let mut offsets = Vec::with_capacity(hs.len());
        let mut total = 0;
        for &h in &hs {
            offsets.push(total);
            total += h;
        }
        Self {
            choice: vec![MODEL as u8; hs.len()],
            errors: vec![[0.0; CANDIDATES]; hs.len()],
            horizons: hs,
            offsets,
            pending: vec![[f32::NAN; CANDIDATES]; total],
            levels: [0.0; SES_ALPHAS.len()],
            started: false,
            stale: 0,
            t: 0,
            discount: 0.5f64.powf(1.0 / config.half_life_steps.max(1.0)) as f32,
        }
    }

    /// Takes the next point (NaN = missing) after `model` has been updated with it: scores the
    /// forecasts made for this point, steps the SES candidates, stores the new forecasts.
    pub fn observe(&mut self, y: f64, model: &dyn PointModel) {
        // SES first: the forecasts stored below are made at this origin, after this point.
        if y.is_finite() {
            self.stale = 0;
            if self.started {
                for (level, alpha) in self.levels.iter_mut().zip(SES_ALPHAS) {
                    *level += alpha * (y - *level);
                }
            } else {
                self.levels = [y; SES_ALPHAS.len()];
                self.started = true;
            }
        } else {
            self.stale += 1;
        }
        let yf = y as f32;
        for (i, &h) in self.horizons.iter().enumerate() {
            let entry = &mut self.pending[self.offsets[i] + self.t % h];
            // NaN entries (no forecast yet, or before a re-anchor) are never scored, and all
            // candidates are scored together, so the sums stay comparable.
            if y.is_finite() && entry[0].is_finite() {
                let e = &mut self.errors[i];
                let mut best = MODEL;
                for k in 0..CANDIDATES {
                    e[k] = self.discount * e[k] + (yf - entry[k]).abs();
                    if e[k] < e[best] {
                        best = k;
                    }
                }
                self.choice[i] = best as u8;
            }
            *entry = if self.started {
                let mut next = [model.predict(h).max(0.0) as f32; CANDIDATES];
                for (slot, level) in next[1..].iter_mut().zip(self.levels) {
                    *slot = level as f32;
                }
                next
            } else {
                [f32::NAN; CANDIDATES]
            };
        }
        self.t += 1;
    }

    /// The series restarted or came back from a long gap: SES re-anchors on the next point and
    /// forecasts made before are never scored; the error sums (which candidate suits this
    /// series) are kept.
    pub fn reanchor(&mut self) {
        self.started = false;
        self.pending.fill([f32::NAN; CANDIDATES]);
    }

    /// The selected point forecast `steps >= 1` ahead; `model` is the forecaster's own model.
    pub fn predict(&self, steps: usize, model: &dyn PointModel) -> f64 {
        match self.selected(steps) {
            Some(k) if self.started => self.levels[k - 1],
            _ => model.predict(steps),
        }
    }

    /// The SES alpha selected for `steps` ahead, or `None` when the forecaster's own model is.
    pub fn selected_alpha(&self, steps: usize) -> Option<f64> {
        self.selected(steps).map(|k| SES_ALPHAS[k - 1])
    }

    /// Index of the selected SES candidate (1-based in the bank), `None` for the model.
    fn selected(&self, steps: usize) -> Option<usize> {
        let steps = steps + self.stale;
        let i = self.horizons.partition_point(|&h| h <= steps).max(1) - 1;
        match self.choice[i] as usize {
            MODEL => None,
            k => Some(k),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model forecasting a constant, to pit against SES.
    struct Constant(f64);
    impl PointModel for Constant {
        fn observe(&mut self, _: f64) {}
        fn skip(&mut self) {}
        fn predict(&self, _: usize) -> f64 {
            self.0
        }
    }

    #[test]
    fn picks_persistence_on_a_random_walk_and_the_model_when_it_is_right() {
        let mut s = Selector::new(&[1, 3], SelectionConfig::new(600.0));
        let wrong = Constant(50.0);
        let mut y = 100.0f64;
        for _ in 0..200 {
            y += 3.0;
            s.observe(y, &wrong);
        }
        // A steady climb: persistence (the fastest SES, lagging least) wins at every horizon.
        assert_eq!(s.selected_alpha(1), Some(1.0));
        assert_eq!(s.selected_alpha(5), Some(1.0));
        assert_eq!(s.predict(1, &wrong), y);

        let mut s = Selector::new(&[1, 3], SelectionConfig::new(600.0));
        let right = Constant(100.0);
        for i in 0..200 {
            // Noise around 100 that the constant model forecasts exactly in the mean.
            let y = 100.0 + if i % 2 == 0 { 10.0 } else { -10.0 };
            s.observe(y, &right);
        }
        assert_eq!(s.selected_alpha(1), None);
        assert_eq!(s.predict(3, &right), 100.0);
    }

    #[test]
    fn missing_points_and_reanchor_keep_the_clock_and_skip_scoring() {
        let mut s = Selector::new(&[1, 2], SelectionConfig::new(600.0));
        let m = Constant(0.0);
        for _ in 0..10 {
            s.observe(10.0, &m);
        }
        assert_eq!(s.selected_alpha(1), Some(1.0));
        s.observe(f64::NAN, &m);
        assert_eq!(s.predict(1, &m), 10.0);
        s.reanchor();
        // Nothing to select on until SES restarts: the model answers.
        assert_eq!(s.predict(1, &m), 0.0);
        s.observe(40.0, &m);
        assert_eq!(s.predict(1, &m), 40.0);
    }
}
