//! Conformal calibration: prediction quantiles are empirical quantiles of recent forecast
//! residuals at the same horizon, so coverage tracks what the model actually achieved lately
//! instead of what a Gaussian assumption promises.
//!
//! Residuals can be scaled by the forecast level ([`ResidualScale`]); the default is
//! absolute residuals, which gave the better pinball loss on the ServeGen traces.
//! [`Calibrator`] keeps, per calibrated horizon, the forecasts still waiting for their actual
//! (a ring as long as the horizon) and a sliding window of residuals whose order statistics
//! at [`QUANTILE_LEVELS`] are cached, so an update is O(buckets) plus an amortised selection
//! and a quantile lookup is O(1).

use super::QUANTILE_LEVELS;

/// A sliding window of the last `capacity` residuals, with its split-conformal quantiles at
/// [`QUANTILE_LEVELS`] cached. Keeping the window sorted would cost a memmove of the window
/// per calibrated horizon per update — for 10,000 series that is memory traffic, not
/// arithmetic — so the cache is instead recomputed (nine selections on a scratch copy) once
/// 1/8 of the window, at most 32 residuals, is new: quantiles lag by a few points.
#[derive(Debug, Clone)]
pub struct ResidualWindow {
    ring: Vec<f32>,
    next: usize,
    capacity: usize,
    /// Quantiles at `QUANTILE_LEVELS` over `cached_n` residuals; NaN where `cached_n` is too
    /// small for the level.
    cached: [f32; 9],
    cached_n: usize,
    /// Residuals pushed since the cache was computed.
    dirty: usize,
}

impl ResidualWindow {
    /// An empty window holding at most `capacity >= 1` residuals.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            ring: Vec::new(),
            next: 0,
            capacity,
            cached: [f32::NAN; 9],
            cached_n: 0,
            dirty: 0,
        }
    }

    /// Residuals the cached quantiles rest on.
    pub fn len(&self) -> usize {
        self.cached_n
    }

    /// True when the cached quantiles rest on no residual.
    pub fn is_empty(&self) -> bool {
        self.cached_n == 0
    }

    /// Adds a residual, evicting the oldest when full, and refreshes the cached quantiles when
    /// enough is new (`scratch` is reused working memory). Non-finite residuals are ignored.
    pub fn push(&mut self, residual: f64, scratch: &mut Vec<f32>) {
        if !residual.is_finite() {
            return;
        }
        let r = residual as f32;
        if self.ring.len() < self.capacity {
            self.ring.push(r);
        } else {
            self.ring[self.next] = r;
            self.next += 1;
            if self.next == self.capacity {
                self.next = 0;
            }
        }
        self.dirty += 1;
        if self.dirty >= (self.ring.len() >> 3).clamp(1, 32) {
            self.refresh(scratch);
        }
    }

    /// Recomputes the cached quantiles from every residual held.
    pub fn refresh(&mut self, scratch: &mut Vec<f32>) {
        scratch.clear();
        scratch.extend_from_slice(&self.ring);
        let n = scratch.len();
        self.cached_n = n;
        self.dirty = 0;
        // The median first, then outwards: each tail level is selected inside the part left
        // (or right) of the previous one, so the slices shrink and a refresh costs ~2.5 n
        // comparisons instead of 9 n.
        const MEDIAN: usize = 4;
        let ranks = QUANTILE_LEVELS.map(|level| conformal_rank(n, level));
        self.cached = [f32::NAN; 9];
        let Some(median_rank) = ranks[MEDIAN] else {
            return;
        };
        let median = median_rank - 1;
        self.cached[MEDIAN] = *scratch.select_nth_unstable_by(median, f32::total_cmp).1;
        let mut lo = median;
        for (i, rank) in ranks.iter().enumerate().skip(MEDIAN + 1) {
            let Some(rank) = *rank else { break };
            let at = rank - 1;
            if at > lo {
                scratch[lo + 1..].select_nth_unstable_by(at - lo - 1, f32::total_cmp);
            }
            self.cached[i] = scratch[at];
            lo = at;
        }
        let mut hi = median;
        for (i, rank) in ranks.iter().enumerate().take(MEDIAN).rev() {
            let Some(rank) = *rank else { break };
            let at = rank - 1;
            if at < hi {
                scratch[..hi].select_nth_unstable_by(at, f32::total_cmp);
            }
            self.cached[i] = scratch[at];
            hi = at;
        }
    }

    /// Forgets every residual.
    pub fn clear(&mut self) {
        self.ring.clear();
        self.next = 0;
        self.cached = [f32::NAN; 9];
        self.cached_n = 0;
        self.dirty = 0;
    }

    /// The split-conformal quantile at `level`, one of [`QUANTILE_LEVELS`]: for an upper level
    /// the `ceil((n+1) level)`-th smallest residual, for a lower level the
    /// `floor((n+1) level)`-th; `None` for another level or when the window is too small for
    /// that level to be honest (e.g. fewer than 39 residuals for 0.975).
    pub fn quantile(&self, level: f64) -> Option<f64> {
        let i = QUANTILE_LEVELS
            .iter()
            .position(|l| (l - level).abs() < 1e-9)?;
        let v = self.cached[i];
        (!v.is_nan()).then_some(f64::from(v))
    }

    /// Root mean square of every residual held (`None` below 2 residuals).
    pub fn rms(&self) -> Option<f64> {
        (self.ring.len() >= 2).then(|| {
            let ss: f64 = self.ring.iter().map(|&r| f64::from(r).powi(2)).sum();
            (ss / self.ring.len() as f64).sqrt()
        })
    }

    /// Residuals held, cached or not.
    pub fn held(&self) -> usize {
        self.ring.len()
    }
}

/// The 1-based rank of the split-conformal quantile at `level` among `n` residuals, if any.
fn conformal_rank(n: usize, level: f64) -> Option<usize> {
    let rank = if level >= 0.5 {
        ((n + 1) as f64 * level).ceil() as usize
    } else {
        ((n + 1) as f64 * level).floor() as usize
    };
    (1..=n).contains(&rank).then_some(rank)
}

/// How a residual is scaled before it enters the window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ResidualScale {
    /// Raw residuals (actual - forecast): constant-width intervals.
    Absolute,
    /// Residuals divided by `max(point forecast, floor_fraction x long-run mean)`: intervals
    /// widen with the forecast demand; the floor keeps idle stretches from blowing them up.
    Relative {
        /// Floor of the divisor as a fraction of the series' long-run mean, in (0, 1].
        floor_fraction: f64,
    },
}

/// One calibrated horizon: forecasts waiting for their actual, and the residuals so far.
#[derive(Debug, Clone)]
struct Bucket {
    steps: usize,
    /// (forecast, scale) made `steps` updates ago at `pending[next]`; f32 halves the memory
    /// and the residuals are stored as f32 anyway.
    pending: Vec<(f32, f32)>,
    next: usize,
    window: ResidualWindow,
}

/// Per-horizon residual windows for one series.
#[derive(Debug, Clone)]
pub struct Calibrator {
    buckets: Vec<Bucket>,
    /// Working memory for quantile refreshes, shared by the buckets.
    scratch: Vec<f32>,
}

impl Calibrator {
    /// Calibrates horizons `steps` (deduplicated, sorted, each `>= 1`) with windows of
    /// `window` residuals.
    pub fn new(mut steps: Vec<usize>, window: usize) -> Self {
        steps.retain(|&s| s >= 1);
        steps.sort_unstable();
        steps.dedup();
        if steps.is_empty() {
            steps.push(1);
        }
        let buckets = steps
            .into_iter()
            .map(|s| Bucket {
                steps: s,
                pending: vec![(f32::NAN, f32::NAN); s],
                next: 0,
                window: ResidualWindow::new(window),
            })
            .collect();
        Self {
            buckets,
            scratch: Vec::new(),
        }
    }

    /// The calibrated horizons in steps, ascending.
    pub fn horizons(&self) -> impl Iterator<Item = usize> + '_ {
        self.buckets.iter().map(|b| b.steps)
    }

    /// Scores the forecasts that were waiting for this point (`actual`, NaN when missing)
    /// and then records the forecasts made now: `forecast_at(steps)` returns the point
    /// forecast and the divisor of its residual, for every bucket. Call once per interval.
    pub fn advance(&mut self, actual: f64, mut forecast_at: impl FnMut(usize) -> (f64, f64)) {
        for b in &mut self.buckets {
            let (f, s) = b.pending[b.next];
            if actual.is_finite() && f.is_finite() {
                b.window
                    .push((actual - f64::from(f)) / f64::from(s), &mut self.scratch);
            }
            let (f, s) = forecast_at(b.steps);
            b.pending[b.next] = (f as f32, s as f32);
            b.next += 1;
            if b.next == b.steps {
                b.next = 0;
            }
        }
    }

    /// Drops forecasts still waiting (after a restart they would be scored against another
    /// regime) but keeps the residual history.
    pub fn forget_pending(&mut self) {
        for b in &mut self.buckets {
            b.pending.fill((f32::NAN, f32::NAN));
        }
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.forget_pending();
        for b in &mut self.buckets {
            b.window.clear();
        }
    }

    /// Residual count at the bucket nearest `steps` from above (or the longest).
    pub fn residuals(&self, steps: usize) -> usize {
        self.bucket_at_or_above(steps).window.len()
    }

    /// Residuals held (snapshot or not) at the bucket nearest `steps` from above.
    pub fn held(&self, steps: usize) -> usize {
        self.bucket_at_or_above(steps).window.held()
    }

    fn bucket_at_or_above(&self, steps: usize) -> &Bucket {
        self.buckets
            .iter()
            .find(|b| b.steps >= steps)
            .unwrap_or_else(|| self.buckets.last().expect("at least one bucket"))
    }

    /// The scaled residual quantile at `level` for a horizon of `steps`: interpolated linearly
    /// between the calibrated horizons around it; beyond the longest one, that one's quantile
    /// widened by `sqrt(steps / longest)` (errors of a seasonal model grow slowly past a few
    /// hours). `None` when the windows involved are too small for `level`.
    pub fn quantile(&self, steps: usize, level: f64) -> Option<f64> {
        let hi = self.buckets.iter().position(|b| b.steps >= steps);
        match hi {
            Some(0) => self.buckets[0].window.quantile(level),
            Some(i) => {
                let (a, b) = (&self.buckets[i - 1], &self.buckets[i]);
                let (qa, qb) = (a.window.quantile(level)?, b.window.quantile(level)?);
                let w = (steps - a.steps) as f64 / (b.steps - a.steps) as f64;
                Some(qa + w * (qb - qa))
            }
            None => {
                let last = self.buckets.last()?;
                let q = last.window.quantile(level)?;
                Some(q * (steps as f64 / last.steps as f64).sqrt())
            }
        }
    }

    /// Root mean square of the scaled residuals near `steps`, for the cold-start fallback.
    pub fn rms(&self, steps: usize) -> Option<f64> {
        self.bucket_at_or_above(steps).window.rms()
    }
}
