//! Baseline: the mean of the last `window` finite points, flat over the horizon.

use super::PointModel;

/// Moving-average forecaster with an O(1) running sum over a ring of the last points.
#[derive(Debug, Clone)]
pub struct MovingAverage {
    ring: Vec<f64>,
    next: usize,
    sum: f64,
    finite: usize,
    /// Updates since the running sum was recomputed from scratch (guards float drift).
    since_resum: usize,
}

impl MovingAverage {
    /// A moving average over the last `window_steps >= 1` intervals (missing points excluded).
    pub fn new(window_steps: usize) -> Self {
        Self {
            ring: vec![f64::NAN; window_steps.max(1)],
            next: 0,
            sum: 0.0,
            finite: 0,
            since_resum: 0,
        }
    }

    /// The window in intervals.
    pub fn window_steps(&self) -> usize {
        self.ring.len()
    }

    fn push(&mut self, value: f64) {
        let old = self.ring[self.next];
        if old.is_finite() {
            self.sum -= old;
            self.finite -= 1;
        }
        if value.is_finite() {
            self.sum += value;
            self.finite += 1;
        }
        self.ring[self.next] = value;
        self.next = (self.next + 1) % self.ring.len();
        self.since_resum += 1;
        if self.since_resum >= 4096 {
            self.sum = self.ring.iter().filter(|v| v.is_finite()).sum();
            self.since_resum = 0;
        }
    }
}

impl PointModel for MovingAverage {
    fn observe(&mut self, value: f64) {
        self.push(value);
    }

    fn skip(&mut self) {
        self.push(f64::NAN);
    }

    fn predict(&self, _steps: usize) -> f64 {
        if self.finite == 0 {
            0.0
        } else {
            self.sum / self.finite as f64
        }
    }
}
