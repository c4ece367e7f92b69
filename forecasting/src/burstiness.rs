//! Arrival burstiness: how much more than the mean rate a fleet must be sized for when
//! requests come in clumps rather than as a Poisson stream.
//!
//! Where to start: [`DispersionEstimator`] learns the **index of dispersion** of arrival
//! counts (`I = Var(N_T) / E[N_T]`; 1 for Poisson, ≈ CV² of the inter-arrival times for a
//! renewal process, ServeGen's production windows show 3–40) from nothing but the rate
//! samples a scaler already reads (a `rate()` over a window, once per tick);
//! [`burst_demand_per_s`] turns a mean rate and `I` into the rate to size for.
//!
//! Why this is needed: capacity per replica ([`crate::capacity`]) is the highest **Poisson**
//! rate at which the latency model meets the SLO. Burstier arrivals queue more at the same
//! mean (Kingman: waiting grows with `(c_a² + c_s²) / 2`), so a fleet sized for the mean
//! misses the TTFT bound during every clump.
//!
//! The rule (an arrival-envelope argument, as in network calculus): a request waits at most
//! `D` (the TTFT budget left after an idle replica's own TTFT) if, over every span `τ`, the
//! arrivals `N(τ)` fit what the fleet serves in `τ + D`: `N(τ) ≤ c · (τ + D)`. With
//! `N(τ) ≈ λτ + z·√((I − 1)·λτ)` — the mean, plus the percentile `z` of the count's
//! fluctuation *beyond Poisson*, which the Poisson capacity already absorbs — the fleet
//! rate needed is `c = max_τ (λτ + a√τ) / (τ + D)` with `a = z·√((I − 1)λ)`. The maximum is at
//! `√τ* = (λD + √(λ²D² + a²D)) / a`; spans longer than the forecaster's interval are left to
//! the forecast's own prediction interval (it is fitted on rates over that interval, so it
//! already holds their fluctuation).

use std::collections::VecDeque;

use crate::latency::Percentile;

/// Fewest rate-difference pairs before the dispersion is trusted (below: Poisson assumed).
pub const MIN_PAIRS: usize = 8;

/// Learns the index of dispersion of arrival counts from rate samples, each the mean rate
/// over the `sample_window_s` before its time (Prometheus `rate(x[W])`, a gateway's
/// counter delta). Two samples whose windows do not overlap differ, for a stationary
/// stream, with variance `2·I·λ / W`; so `I = Σ (r − r')²·W/2 ÷ Σ (r + r')/2` over the pairs
/// of the last `memory_s`. Pairs are taken at least one window and less than two apart, so
/// slow trends (a daily cycle) hardly count; a step in the rate does count, as burstiness
/// the fleet has to absorb all the same.
#[derive(Debug, Clone)]
pub struct DispersionEstimator {
    sample_window_s: f64,
    memory_s: f64,
    /// Recent samples (time, rate), oldest first, at most two windows old.
    samples: VecDeque<(f64, f64)>,
    /// Per pair: (time, (r − r')²·W/2, mean rate).
    pairs: VecDeque<(f64, f64, f64)>,
    sum_sq: f64,
    sum_rate: f64,
}

impl DispersionEstimator {
    /// An estimator for samples that are rates over `sample_window_s`, remembering pairs for
    /// `memory_s`. Non-positive or non-finite arguments are replaced by 60 s and 3600 s.
    #[must_use]
    pub fn new(sample_window_s: f64, memory_s: f64) -> Self {
        let ok = |x: f64, d: f64| if x.is_finite() && x > 0.0 { x } else { d };
        Self {
            sample_window_s: ok(sample_window_s, 60.0),
            memory_s: ok(memory_s, 3600.0),
            samples: VecDeque::new(),
            pairs: VecDeque::new(),
            sum_sq: 0.0,
            sum_rate: 0.0,
        }
    }

    /// The window the samples are rates over, seconds.
    #[must_use]
    pub fn sample_window_s(&self) -> f64 {
        self.sample_window_s
    }

    /// Feeds the rate (req/s) observed over the window ending at `t_s`. Non-finite or
    /// negative rates, and samples not newer than the last one, are ignored.
    pub fn observe(&mut self, t_s: f64, rate_per_s: f64) {
        if !(t_s.is_finite() && rate_per_s.is_finite() && rate_per_s >= 0.0) {
            return;
        }
        if self.samples.back().is_some_and(|(t, _)| *t >= t_s) {
            return;
        }
        let w = self.sample_window_s;
        // The newest earlier sample whose window ends where this one's begins (or before).
        let partner = self
            .samples
            .iter()
            .rev()
            .find(|(t, _)| *t <= t_s - w + 1e-6 * w)
            .filter(|(t, _)| t_s - *t < 2.0 * w)
            .copied();
        if let Some((_, r0)) = partner {
            let d = rate_per_s - r0;
            let sq = d * d * w / 2.0;
            let mean = (rate_per_s + r0) / 2.0;
            self.pairs.push_back((t_s, sq, mean));
            self.sum_sq += sq;
            self.sum_rate += mean;
        }
        self.samples.push_back((t_s, rate_per_s));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| *t < t_s - 2.0 * w)
        {
            self.samples.pop_front();
        }
        while self
            .pairs
            .front()
            .is_some_and(|(t, _, _)| *t < t_s - self.memory_s)
        {
            let (_, sq, mean) = self.pairs.pop_front().unwrap_or_default();
            self.sum_sq -= sq;
            self.sum_rate -= mean;
        }
        if self.pairs.is_empty() {
            // No drift from floating-point subtraction once everything has left.
            (self.sum_sq, self.sum_rate) = (0.0, 0.0);
        }
    }

    /// Pairs currently remembered.
    #[must_use]
    pub fn pairs(&self) -> usize {
        self.pairs.len()
    }

    /// The index of dispersion, `None` until [`MIN_PAIRS`] pairs with traffic are known.
    #[must_use]
    pub fn index(&self) -> Option<f64> {
        if self.pairs.len() < MIN_PAIRS || self.sum_rate <= 0.0 {
            return None;
        }
        Some((self.sum_sq / self.sum_rate).max(0.0))
    }
}

/// The standard-normal quantile of a latency percentile: how many standard deviations of
/// the count fluctuation a burst margin covers (p50 → 0, p90 → 1.28, p99 → 2.33).
#[must_use]
pub fn z_of(percentile: Percentile) -> f64 {
    match percentile {
        Percentile::P50 => 0.0,
        Percentile::P90 => 1.281_551_6,
        Percentile::P99 => 2.326_347_9,
    }
}

/// The fleet rate (req/s) to size for so that arrivals at mean `mean_per_s` with index of
/// dispersion `dispersion` wait at most `budget_s` in `z` standard deviations of their
/// bursts, over spans up to `max_span_s` (module docs). Never below the mean; the mean
/// itself when `dispersion ≤ 1` (Poisson or smoother, which the capacity already covers).
/// `budget_s` is floored at 50 ms (no budget would need infinite rate).
#[must_use]
pub fn burst_demand_per_s(
    mean_per_s: f64,
    dispersion: f64,
    budget_s: f64,
    z: f64,
    max_span_s: f64,
) -> f64 {
    if !(mean_per_s.is_finite()
        && mean_per_s > 0.0
        && dispersion.is_finite()
        && dispersion > 1.0
        && z.is_finite()
        && z > 0.0)
    {
        return mean_per_s;
    }
    let d = if budget_s.is_finite() {
        budget_s.max(0.05)
    } else {
        return mean_per_s;
    };
    let lambda = mean_per_s;
    let a = z * ((dispersion - 1.0) * lambda).sqrt();
    let u = (lambda * d + (lambda * lambda * d * d + a * a * d).sqrt()) / a;
    let tau = (u * u).min(max_span_s.max(1e-3));
    let need = (lambda * tau + a * tau.sqrt()) / (tau + d);
    need.max(lambda)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arrival counts per window from a renewal process with the given gap sampler.
    fn rates(gaps: impl Iterator<Item = f64>, w: f64, n: usize) -> Vec<f64> {
        let mut out = vec![0.0; n];
        let mut t = 0.0;
        for g in gaps {
            t += g;
            let k = (t / w) as usize;
            if k >= n {
                break;
            }
            out[k] += 1.0 / w;
        }
        out
    }

    /// A tiny deterministic generator (xorshift), enough for these tests.
    struct Xs(u64);
    impl Xs {
        fn u(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
        fn exp(&mut self, mean: f64) -> f64 {
            -mean * self.u().ln()
        }
    }

    fn estimate(rates: &[f64], w: f64, tick_s: f64) -> f64 {
        // Sampled every tick, each sample the rate over the window ending then (as a
        // scaler polling `rate(x[W])` every tick sees it): here windows align with ticks
        // every `w / tick_s` samples; the rest repeat the last full window.
        let mut e = DispersionEstimator::new(w, 1e9);
        let per = (w / tick_s).round() as usize;
        for (k, r) in rates.iter().enumerate() {
            for j in 0..per {
                e.observe((k as f64 + 1.0) * w + j as f64 * tick_s, *r);
            }
        }
        e.index().unwrap()
    }

    #[test]
    fn poisson_arrivals_have_dispersion_one() {
        let mut g = Xs(7);
        let r = rates(std::iter::repeat_with(|| g.exp(0.1)), 60.0, 400);
        let i = estimate(&r, 60.0, 15.0);
        assert!((i - 1.0).abs() < 0.25, "{i}");
    }

    #[test]
    fn clumped_arrivals_have_the_dispersion_of_their_clumps() {
        // Clumps of 10 requests at once, clumps Poisson: I = E[K²]/E[K] = 10.
        let mut g = Xs(11);
        let gaps = std::iter::repeat_with(move || {
            let gap = g.exp(1.0);
            std::iter::once(gap).chain(std::iter::repeat_n(0.0, 9))
        })
        .flatten();
        let r = rates(gaps, 60.0, 400);
        let i = estimate(&r, 60.0, 15.0);
        assert!((i - 10.0).abs() < 2.5, "{i}");
    }

    #[test]
    fn a_slow_trend_is_not_mistaken_for_bursts_and_memory_forgets() {
        let mut e = DispersionEstimator::new(60.0, 600.0);
        assert_eq!(e.index(), None, "no data, no claim");
        // A smooth ramp 10 → 20 req/s over an hour, no noise at all.
        for k in 0..240 {
            let t = f64::from(k) * 15.0;
            e.observe(t, 10.0 + t / 360.0);
        }
        let i = e.index().unwrap();
        assert!(i < 0.05, "{i}");
        assert!(e.pairs() <= 600 / 15 + 1, "{}", e.pairs());
        // Garbage is ignored, not averaged in.
        e.observe(4000.0, f64::NAN);
        e.observe(3000.0, 1e6);
        assert_eq!(e.index().unwrap(), i);
    }

    #[test]
    fn burst_demand_grows_with_dispersion_and_shrinks_with_budget() {
        let f = |i, d| burst_demand_per_s(50.0, i, d, z_of(Percentile::P90), 60.0);
        assert_eq!(f(1.0, 1.5), 50.0, "Poisson: the capacity already covers it");
        assert_eq!(f(0.3, 1.5), 50.0);
        assert!(f(5.0, 1.5) > 50.0);
        assert!(f(40.0, 1.5) > f(5.0, 1.5));
        assert!(f(40.0, 5.0) < f(40.0, 1.5));
        // The worked number of docs/simulator.md: λ 50, I 40, D 1.5 s, p90 → ≈ 59 req/s.
        assert!((f(40.0, 1.5) - 59.0).abs() < 1.0, "{}", f(40.0, 1.5));
        // It is the maximum over spans: no span needs more.
        let (lambda, i, d, z) = (50.0, 40.0, 1.5, z_of(Percentile::P90));
        let a = z * ((i - 1.0) * lambda as f64).sqrt();
        let best = f(i, d);
        for k in 1..6000 {
            let tau = f64::from(k) * 0.01;
            let need = (lambda * tau + a * tau.sqrt()) / (tau + d);
            assert!(need <= best + 1e-9, "span {tau}: {need} > {best}");
        }
        assert_eq!(burst_demand_per_s(0.0, 40.0, 1.5, 1.28, 60.0), 0.0);
        assert!(burst_demand_per_s(50.0, 40.0, 0.0, 1.28, 60.0).is_finite());
    }
}
