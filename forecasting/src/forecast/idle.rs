//! Fading the forecast in an idle spell: once demand has been zero (or near it) for a
//! while, the residuals of the busy period before it no longer describe the demand, but a
//! sliding window keeps them for hours (256 intervals); and a smoothed point forecast
//! decays towards zero geometrically, never reaching it. Sized on either, a model that went
//! idle keeps replicas for hours instead of scaling to zero. [`IdleBand`] counts idle
//! intervals and, after `after_steps` of idleness, blends the whole forecast (band and
//! point) linearly into persistence — the idle value last seen — over `fade_steps`. The
//! first busy interval restores the forecast at once; a return predicted by the daily cycle
//! is then left to the demand observed now and to activation from zero.

/// Tuning of the idle fade.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdleBandConfig {
    /// An interval is idle when its demand is at most this fraction of the series' long-run
    /// mean (0: only exact zeros).
    pub near_zero_fraction: f64,
    /// Idle intervals in a row before the band starts to fade.
    pub after_steps: usize,
    /// Intervals over which it then fades (linearly) to nothing, >= 1.
    pub fade_steps: usize,
}

impl IdleBandConfig {
    /// Never fades.
    pub const OFF: Self = Self {
        near_zero_fraction: 0.0,
        after_steps: usize::MAX,
        fade_steps: 1,
    };

    /// Defaults for a series sampled every `interval_s` seconds: idle below 1 % of the
    /// long-run mean, fading after 15 minutes over the next 15 (a model idle for half an
    /// hour is sized on its point forecast; KEDA's cooldown then takes it to zero).
    pub fn new(interval_s: f64) -> Self {
        let steps = |s: f64| (s / interval_s).ceil().max(1.0) as usize;
        Self {
            near_zero_fraction: 0.01,
            after_steps: steps(900.0),
            fade_steps: steps(900.0),
        }
    }
}

/// Idle-spell state of one series.
#[derive(Debug, Clone)]
pub struct IdleBand {
    config: IdleBandConfig,
    run: usize,
    /// The last finite point.
    last: f64,
}

impl IdleBand {
    /// Not idle.
    pub fn new(config: IdleBandConfig) -> Self {
        Self {
            config,
            run: 0,
            last: 0.0,
        }
    }

    /// Takes the next point (NaN = missing: says nothing, the count stays) with the series'
    /// long-run mean before it.
    pub fn observe(&mut self, y: f64, long_run_mean: f64) {
        if !y.is_finite() {
            return;
        }
        self.last = y;
        if y <= self.config.near_zero_fraction * long_run_mean.max(0.0) {
            self.run = self.run.saturating_add(1);
        } else {
            self.run = 0;
        }
    }

    /// `x` (a quantile or the mean of the model's forecast) blended into the idle value.
    pub fn blend(&self, x: f64) -> f64 {
        let keep = self.factor();
        if keep >= 1.0 {
            x
        } else {
            keep * x + (1.0 - keep) * self.last
        }
    }

    /// Idle intervals in a row.
    pub fn idle_steps(&self) -> usize {
        self.run
    }

    /// The share of the model's forecast to keep (the rest is the idle value): 1 while busy,
    /// down to 0.
    pub fn factor(&self) -> f64 {
        let c = self.config;
        if self.run <= c.after_steps {
            return 1.0;
        }
        let faded = (self.run - c.after_steps) as f64 / c.fade_steps.max(1) as f64;
        (1.0 - faded).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fades_after_a_spell_and_comes_back_at_once() {
        let mut b = IdleBand::new(IdleBandConfig {
            near_zero_fraction: 0.01,
            after_steps: 3,
            fade_steps: 2,
        });
        let mut f = Vec::new();
        for y in [0.0, 0.05, 0.0, f64::NAN, 0.0, 0.0, 0.0, 5.0] {
            b.observe(y, 10.0);
            f.push(b.factor());
        }
        // 0.05 is below 1 % of 10; NaN is neither idle nor busy.
        assert_eq!(f, vec![1.0, 1.0, 1.0, 1.0, 0.5, 0.0, 0.0, 1.0]);
        b.observe(0.0, 10.0);
        assert_eq!(b.blend(8.0), 8.0, "busy again");
        for _ in 0..3 {
            b.observe(0.02, 10.0);
        }
        assert!((b.blend(8.0) - (0.5 * 8.0 + 0.5 * 0.02)).abs() < 1e-12);
        let mut off = IdleBand::new(IdleBandConfig::OFF);
        for _ in 0..10_000 {
            off.observe(0.0, 10.0);
        }
        assert_eq!(off.factor(), 1.0);
    }
}
