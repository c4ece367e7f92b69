//! The common shape of the point forecasters: one O(1) update per interval, a forecast for any
//! number of steps ahead. Intervals come from [`super::conformal`], not from the model.

/// A fitted, online point forecaster of a regularly sampled series.
pub trait PointModel {
    /// Takes the next point (finite, `>= 0`).
    fn observe(&mut self, value: f64);
    /// Advances one interval without an observation (missing point).
    fn skip(&mut self);
    /// Point forecast `steps >= 1` intervals after the last observed or skipped point. May be
    /// negative for additive models; the [`super::Forecaster`] clamps.
    fn predict(&self, steps: usize) -> f64;
}
