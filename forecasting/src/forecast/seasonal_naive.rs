//! Baseline "same time yesterday": the forecast for `t + h` is the value one season earlier.

use super::PointModel;

/// Seasonal naive forecaster. Until a full season has been seen (or where that point is
/// missing) it falls back to the last finite value, i.e. plain persistence.
#[derive(Debug, Clone)]
pub struct SeasonalNaive {
    /// Last `season_steps` values, NaN where missing; `ring[next]` is the oldest.
    ring: Vec<f64>,
    next: usize,
    seen: usize,
    last_finite: f64,
}

impl SeasonalNaive {
    /// A seasonal naive model with a season of `season_steps >= 1` intervals.
    pub fn new(season_steps: usize) -> Self {
        Self {
            ring: vec![f64::NAN; season_steps.max(1)],
            next: 0,
            seen: 0,
            last_finite: f64::NAN,
        }
    }

    fn push(&mut self, value: f64) {
        self.ring[self.next] = value;
        self.next = (self.next + 1) % self.ring.len();
        self.seen += 1;
    }
}

impl PointModel for SeasonalNaive {
    fn observe(&mut self, value: f64) {
        self.last_finite = value;
        self.push(value);
    }

    fn skip(&mut self) {
        self.push(f64::NAN);
    }

    fn predict(&self, steps: usize) -> f64 {
        let m = self.ring.len();
        let steps = steps.max(1);
        // Same phase, as many whole seasons back as needed to land in the past.
        let back = m * steps.div_ceil(m) - steps; // 0..m, counted back from the newest point
        let fallback = if self.last_finite.is_finite() {
            self.last_finite
        } else {
            0.0
        };
        if back >= self.seen.min(m) {
            return fallback;
        }
        let idx = (self.next + m - 1 - back) % m;
        let v = self.ring[idx];
        if v.is_finite() { v } else { fallback }
    }
}
