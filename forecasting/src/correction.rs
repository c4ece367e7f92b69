//! Closing the loop: correct a replica's capacity estimate by how observed latency
//! compares with what the performance model predicted at the observed load.
//!
//! A mis-profiled GPU (slower than its profile says) shows up as observed TTFT/TPOT above
//! the prediction; the planner then divides demand by a *smaller* capacity and adds
//! replicas. Unlike Dynamo's planner, which applies the raw observed/expected ratio, the
//! factor here is bounded (one noisy window or a latency spike cannot halve or double the
//! fleet) and smoothed with an EWMA (a sustained miss moves it within a few windows).
//!
//! Input is the predicted latency as a number, so this module does not depend on how the
//! performance model computes it.

/// Settings of the correction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CorrectionSettings {
    /// Smallest capacity multiplier (the GPU serves at worst this fraction of its profile).
    pub min_factor: f64,
    /// Largest capacity multiplier (the GPU serves at best this much more than its profile).
    pub max_factor: f64,
    /// EWMA weight of a new observation, in (0, 1].
    pub alpha: f64,
    /// Observed/predicted ratios within `1 ± deadband` count as 1 (profile noise).
    pub deadband: f64,
}

impl Default for CorrectionSettings {
    fn default() -> Self {
        Self {
            min_factor: 0.5,
            max_factor: 1.2,
            alpha: 0.3,
            deadband: 0.05,
        }
    }
}

/// One window's latency evidence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySample {
    /// Observed latency (e.g. p90 TTFT), seconds.
    pub observed_s: f64,
    /// What the performance model predicted at the observed load, seconds.
    pub predicted_s: f64,
}

/// A bounded, smoothed capacity multiplier. Starts at 1 (trust the profile).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapacityCorrection {
    settings: CorrectionSettings,
    factor: f64,
}

impl CapacityCorrection {
    /// A correction at 1.0.
    ///
    /// # Panics
    /// If the settings are inconsistent (`0 < min ≤ 1 ≤ max`, `0 < alpha ≤ 1`,
    /// `deadband ≥ 0` are required): a programming error, not runtime input.
    pub fn new(settings: CorrectionSettings) -> Self {
        assert!(
            settings.min_factor > 0.0
                && settings.min_factor <= 1.0
                && settings.max_factor >= 1.0
                && settings.alpha > 0.0
                && settings.alpha <= 1.0
                && settings.deadband >= 0.0,
            "invalid correction settings {settings:?}"
        );
        Self {
            settings,
            factor: 1.0,
        }
    }

    /// The current multiplier to apply to a replica's capacity.
    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// The target multiplier one window suggests, before smoothing: for each signal,
    /// predicted/observed (observed twice the prediction → half the capacity); the worst
    /// (smallest) signal wins, because an SLO is missed if any latency is missed. `None`
    /// if no sample is usable (missing, NaN, zero or negative latencies say nothing).
    pub fn target(&self, samples: &[LatencySample]) -> Option<f64> {
        let s = self.settings;
        samples
            .iter()
            .filter(|x| {
                x.observed_s.is_finite()
                    && x.predicted_s.is_finite()
                    && x.observed_s > 0.0
                    && x.predicted_s > 0.0
            })
            .map(|x| {
                let ratio = x.predicted_s / x.observed_s;
                if (ratio - 1.0).abs() <= s.deadband {
                    1.0
                } else {
                    ratio
                }
            })
            .min_by(f64::total_cmp)
            .map(|r| r.clamp(s.min_factor, s.max_factor))
    }

    /// Folds one window into the factor and returns it. Without usable evidence the
    /// factor stays where it is (missing data is not evidence that the profile is right).
    pub fn update(&mut self, samples: &[LatencySample]) -> f64 {
        if let Some(t) = self.target(samples) {
            let a = self.settings.alpha;
            self.factor = (a * t + (1.0 - a) * self.factor)
                .clamp(self.settings.min_factor, self.settings.max_factor);
        }
        self.factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(observed_s: f64, predicted_s: f64) -> LatencySample {
        LatencySample {
            observed_s,
            predicted_s,
        }
    }

    #[test]
    fn slower_than_predicted_lowers_capacity_within_bounds() {
        let mut c = CapacityCorrection::new(CorrectionSettings::default());
        // Observed twice the prediction: target 0.5; one window moves 30 % of the way.
        assert!((c.update(&[s(2.0, 1.0)]) - 0.85).abs() < 1e-12);
        for _ in 0..50 {
            c.update(&[s(2.0, 1.0)]);
        }
        assert!((c.factor() - 0.5).abs() < 1e-6, "converges to the bound");
        // Ten times slower is still bounded at 0.5.
        c.update(&[s(10.0, 1.0)]);
        assert!(c.factor() >= 0.5);
    }

    #[test]
    fn faster_than_predicted_raises_capacity_only_a_little() {
        let mut c = CapacityCorrection::new(CorrectionSettings::default());
        for _ in 0..100 {
            c.update(&[s(0.1, 1.0)]);
        }
        assert!((c.factor() - 1.2).abs() < 1e-9, "{}", c.factor());
    }

    #[test]
    fn worst_signal_wins_and_noise_is_ignored() {
        let c = CapacityCorrection::new(CorrectionSettings::default());
        // TTFT fine (within the deadband), TPOT 25 % slow: TPOT decides.
        assert_eq!(c.target(&[s(1.03, 1.0), s(0.125, 0.1)]), Some(0.8));
        assert_eq!(c.target(&[s(1.04, 1.0)]), Some(1.0));
    }

    #[test]
    fn missing_or_nonsense_latency_leaves_the_factor_alone() {
        let mut c = CapacityCorrection::new(CorrectionSettings::default());
        c.update(&[s(2.0, 1.0)]);
        let before = c.factor();
        for bad in [
            vec![],
            vec![s(f64::NAN, 1.0)],
            vec![s(0.0, 1.0)],
            vec![s(1.0, -1.0)],
            vec![s(f64::INFINITY, 1.0)],
        ] {
            assert_eq!(c.update(&bad), before, "{bad:?}");
        }
    }

    #[test]
    fn a_single_spike_cannot_swing_the_factor() {
        let mut c = CapacityCorrection::new(CorrectionSettings::default());
        for _ in 0..20 {
            c.update(&[s(1.0, 1.0)]);
        }
        c.update(&[s(100.0, 1.0)]);
        assert!(c.factor() >= 0.85 - 1e-12, "{}", c.factor());
    }

    #[test]
    #[should_panic(expected = "invalid correction settings")]
    fn inconsistent_settings_are_rejected() {
        CapacityCorrection::new(CorrectionSettings {
            min_factor: 1.5,
            ..CorrectionSettings::default()
        });
    }
}
