//! Burst detection ("panic mode" of Knative/AIBrix, feeding the forecast instead of replacing
//! it): when the last `window_steps` points all break out above the upper band of their own
//! one-step forecasts, the forecast is lifted by a share of the excess, and the lift decays
//! geometrically — both with every interval that passes and with the horizon — so a burst never
//! inflates the forecast for long.

/// Tuning of the burst detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurstConfig {
    /// Consecutive points above the band needed to call a burst (1 = react at once).
    pub window_steps: usize,
    /// Share of the excess (actual - one-step forecast) added to the forecast, in [0, 1].
    /// 0 disables the detector.
    pub gain: f64,
    /// Half-life of the lift, in intervals (applied per elapsed interval and per horizon step).
    pub half_life_steps: f64,
}

impl BurstConfig {
    /// A detector that never lifts.
    pub const OFF: Self = Self {
        window_steps: 1,
        gain: 0.0,
        half_life_steps: 1.0,
    };
}

/// Online burst state of one series.
#[derive(Debug, Clone)]
pub struct BurstDetector {
    config: BurstConfig,
    decay_per_step: f64,
    run: usize,
    excess_sum: f64,
    lift: f64,
}

impl BurstDetector {
    /// A quiet detector.
    pub fn new(config: BurstConfig) -> Self {
        let decay_per_step = 0.5f64.powf(1.0 / config.half_life_steps.max(1e-3));
        Self {
            config,
            decay_per_step,
            run: 0,
            excess_sum: 0.0,
            lift: 0.0,
        }
    }

    /// Takes the next `actual` with the upper band and point of the one-step forecast that
    /// was made for it (NaN band = no band yet: nothing is detected).
    pub fn observe(&mut self, actual: f64, one_step_point: f64, one_step_upper: f64) {
        self.lift *= self.decay_per_step;
        if !(actual.is_finite() && one_step_upper.is_finite() && one_step_point.is_finite()) {
            self.run = 0;
            self.excess_sum = 0.0;
            return;
        }
        if actual > one_step_upper {
            self.run += 1;
            self.excess_sum += actual - one_step_point;
            if self.run >= self.config.window_steps.max(1) {
                let excess = self.excess_sum / self.run as f64;
                self.lift = self.lift.max(self.config.gain * excess);
            }
        } else {
            self.run = 0;
            self.excess_sum = 0.0;
        }
    }

    /// The lift to add to a forecast `steps` ahead (>= 0, bounded by `gain` x the excess).
    pub fn lift(&self, steps: usize) -> f64 {
        if self.lift <= 0.0 {
            return 0.0;
        }
        self.lift * self.decay_per_step.powi(steps.saturating_sub(1) as i32)
    }

    /// True while a lift is in force (above 1e-9).
    pub fn active(&self) -> bool {
        self.lift > 1e-9
    }

    /// Forgets the burst state.
    pub fn reset(&mut self) {
        self.run = 0;
        self.excess_sum = 0.0;
        self.lift = 0.0;
    }
}
