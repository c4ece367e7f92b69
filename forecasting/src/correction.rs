//! Closing the loop: correct a replica's capacity by how observed latency compares with what
//! the performance model predicted at the observed load.
//!
//! The correction is a *corrected SLO*, one bound per signal (TTFT, TPOT): the bound the
//! model's prediction must meet for the observed latency to meet the real one, held as a
//! divisor of the bound ([`Bias`]). [`BiasModel`] says how an excess measured at the
//! observed load is carried to the capacity's load: the SLO minus the excess (additive,
//! the default) or divided by `k = observed / predicted` (multiplicative). The capacity is
//! then recomputed through the latency model under the corrected SLO. Mapping the excess
//! linearly to capacity (as Dynamo's planner does, and as this module did before) is wrong
//! because a percentile latency is not linear in load: TTFT explodes near saturation, so
//! observed TTFT twice the prediction far inside the SLO means only a few per cent less
//! capacity, while the same excess on a GPU that is truly slower near its bound means much
//! less. Going through the model gets both right.
//!
//! The bias is bounded (one noisy window or a latency spike cannot halve or double the
//! fleet), smoothed in log space with an EWMA (a sustained miss moves it within a few
//! windows), and quantised to steps of `quantum` so the handful of capacities it needs can
//! be cached. The corrected capacity is also bounded relative to the profile's.
//!
//! Observed p90s are model-wide, over replicas of several variants: [`mixture_quantile`]
//! predicts the percentile of the mixture (not the average of the variants' percentiles,
//! which a slow minority of replicas can exceed by far).

use crate::capacity::{Capacity, Slo, capacity_per_replica};
use crate::latency::{PercentilesMs, RequestMix};
use crate::profile::Profile;

/// How a latency excess measured at the observed load is carried to the load at capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BiasModel {
    /// Observed = `k` × predicted at every load: the SLO the model must meet is divided by
    /// `k`. Right for a GPU uniformly slower than its profile; costly for an excess that does
    /// not grow with load (TPOT 2× the model's at 20 % of its bound still divides the bound
    /// by 2).
    Multiplicative,
    /// Observed = predicted + `δ` at every load: the model must meet the SLO minus `δ`. A
    /// small excess far inside the SLO costs little; an excess that grows with load is
    /// caught as the fleet runs nearer its capacity (the closed loop's fixed point, observed
    /// latency = SLO at capacity, is the same).
    Additive,
}

/// Settings of the correction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CorrectionSettings {
    /// How the excess is extrapolated to the capacity's load.
    pub model: BiasModel,
    /// Smallest latency bias (the GPU is at best this much faster than its profile says).
    pub min_bias: f64,
    /// Largest latency bias.
    pub max_bias: f64,
    /// EWMA weight of a new window (in log space), in (0, 1].
    pub alpha: f64,
    /// A window's observed/predicted ratio is clamped to within `×max_window_ratio` of the
    /// current bias before smoothing, so one spike moves the bias by at most
    /// `max_window_ratio^alpha` while a sustained ratio is still reached.
    pub max_window_ratio: f64,
    /// Biases within `1 ± deadband` count as 1 (profile noise).
    pub deadband: f64,
    /// Relative step of the quantised bias (0.05: the bias is a power of 1.05).
    pub quantum: f64,
    /// Corrected capacity is at least this fraction of the profile's.
    pub min_capacity_factor: f64,
    /// Corrected capacity is at most this multiple of the profile's.
    pub max_capacity_factor: f64,
}

impl Default for CorrectionSettings {
    fn default() -> Self {
        Self {
            // Measured on the backtest traces (`docs/BENCHMARKS.md`, issue 7): attainment
            // within 0.2 points of multiplicative at 1.5-28 % less cost.
            model: BiasModel::Additive,
            min_bias: 0.8,
            max_bias: 4.0,
            alpha: 0.2,
            max_window_ratio: 2.0,
            deadband: 0.05,
            quantum: 0.05,
            min_capacity_factor: 0.5,
            max_capacity_factor: 1.2,
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
    /// The SLO's bound on this latency, seconds.
    pub bound_s: f64,
}

impl LatencySample {
    /// The log of the SLO divisor this window calls for, if the sample is usable (missing,
    /// NaN, zero or negative latencies say nothing).
    fn log_divisor(&self, model: BiasModel) -> Option<f64> {
        let usable = [self.observed_s, self.predicted_s, self.bound_s]
            .iter()
            .all(|x| x.is_finite() && *x > 0.0);
        if !usable {
            return None;
        }
        Some(match model {
            BiasModel::Multiplicative => (self.observed_s / self.predicted_s).ln(),
            // bound / (bound - δ); an excess of the whole bound or more is capped at 95 %
            // (the clamp on the bias bounds it further).
            BiasModel::Additive => {
                let excess = ((self.observed_s - self.predicted_s) / self.bound_s).min(0.95);
                -(1.0 - excess).ln()
            }
        })
    }
}

/// What load and the engines' queues say about a latency window: whether its latency is
/// explained by a **backlog** — requests queued while the fleet was short of replicas —
/// rather than by how fast the GPUs are. Such a window must not move the bias: the
/// prediction it is compared with is a steady state at the window's arrival rate, while
/// the observed p90 carries seconds to minutes of queueing from earlier, under-provisioned
/// minutes (measured on the backtest: `docs/sizing.md`, *Closing the loop*).
///
/// Two signs, each of which a GPU that is merely slower than its profile does not give
/// while the fleet is sized for its demand:
/// - **over capacity**: the arrival rate exceeds what the replicas that served the window
///   carry under the SLO *by their profiles* — latency past the SLO is what the profile
///   itself predicts there, not evidence against it (a plan covers the demand at the
///   corrected capacity, at most the profile's, so a sized fleet is never here);
/// - **a draining queue**: more requests wait than arrive within one TTFT bound (by
///   Little's law a fleet meeting the bound at the SLO's percentile holds about
///   `rate × mean wait` < `rate × bound` of them) *and* the queue is not growing. A queue
///   that keeps growing at a rate the profile says the fleet carries is a GPU slower than
///   profiled, saturated: that must still move the bias, or the fleet never grows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadEvidence {
    /// Arrival rate over the window, req/s.
    pub arrival_rps: f64,
    /// What the replicas that served the window carry under the SLO by their profiles
    /// (uncorrected), req/s.
    pub profile_capacity_rps: f64,
    /// Requests waiting in the engines' queues now; `None` when not reported.
    pub waiting: Option<f64>,
    /// The same at the previous observation; `None` when not reported.
    pub previous_waiting: Option<f64>,
    /// The TTFT bound, seconds.
    pub ttft_bound_s: f64,
}

impl LoadEvidence {
    /// True when the window's latency is a backlog's (see the type), so it says nothing
    /// about the profile.
    #[must_use]
    pub fn is_backlog(&self) -> bool {
        if self.arrival_rps > self.profile_capacity_rps {
            return true;
        }
        match (self.waiting, self.previous_waiting) {
            (Some(q), Some(prev)) if q.is_finite() && prev.is_finite() => {
                q > self.arrival_rps * self.ttft_bound_s && q <= prev
            }
            _ => false,
        }
    }
}

/// Quantised latency biases per signal, as the divisor of the SLO bound the model's
/// prediction must meet (observed / predicted for [`BiasModel::Multiplicative`], bound /
/// (bound − excess) for [`BiasModel::Additive`]); 1 = the profile holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bias {
    /// TTFT bound divisor.
    pub ttft: f64,
    /// TPOT bound divisor.
    pub tpot: f64,
    /// The quantum exponents `(n_ttft, n_tpot)`, `bias = (1 + quantum)^n`: a cache key.
    pub key: (i32, i32),
}

impl Bias {
    /// No bias.
    pub const NONE: Self = Self {
        ttft: 1.0,
        tpot: 1.0,
        key: (0, 0),
    };

    /// True when neither signal is biased.
    #[must_use]
    pub fn is_none(&self) -> bool {
        self.key == (0, 0)
    }

    /// The SLO the *model's* prediction must meet for `bias × prediction` to meet `slo`.
    #[must_use]
    pub fn scale_slo(&self, slo: &Slo) -> Slo {
        Slo {
            ttft_ms: slo.ttft_ms / self.ttft,
            tpot_ms: slo.tpot_ms / self.tpot,
            percentile: slo.percentile,
        }
    }
}

/// Smoothed, bounded latency biases. Starts at 1 (trust the profile).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyBias {
    settings: CorrectionSettings,
    /// Smoothed `ln k` per signal.
    log_ttft: f64,
    log_tpot: f64,
}

impl LatencyBias {
    /// A bias of 1.
    ///
    /// # Panics
    /// If the settings are inconsistent (`0 < min_bias ≤ 1 ≤ max_bias`, `0 < alpha ≤ 1`,
    /// `max_window_ratio > 1`, `deadband ≥ 0`, `quantum > 0`, `0 < min_capacity_factor ≤ 1 ≤
    /// max_capacity_factor` are required): a programming error, not runtime input.
    pub fn new(settings: CorrectionSettings) -> Self {
        let s = settings;
        assert!(
            s.min_bias > 0.0
                && s.min_bias <= 1.0
                && s.max_bias >= 1.0
                && s.alpha > 0.0
                && s.alpha <= 1.0
                && s.max_window_ratio > 1.0
                && s.deadband >= 0.0
                && s.quantum > 0.0
                && s.min_capacity_factor > 0.0
                && s.min_capacity_factor <= 1.0
                && s.max_capacity_factor >= 1.0,
            "invalid correction settings {settings:?}"
        );
        Self {
            settings,
            log_ttft: 0.0,
            log_tpot: 0.0,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &CorrectionSettings {
        &self.settings
    }

    /// The smoothed biases before quantisation `(ttft, tpot)`.
    pub fn raw(&self) -> (f64, f64) {
        (self.log_ttft.exp(), self.log_tpot.exp())
    }

    /// The quantised biases the capacity is computed with.
    pub fn bias(&self) -> Bias {
        let q = |log_k: f64| -> i32 {
            if log_k.abs() <= self.settings.deadband.ln_1p() {
                0
            } else {
                (log_k / self.settings.quantum.ln_1p()).round() as i32
            }
        };
        let (nt, np) = (q(self.log_ttft), q(self.log_tpot));
        let k = |n: i32| (1.0 + self.settings.quantum).powi(n);
        Bias {
            ttft: k(nt),
            tpot: k(np),
            key: (nt, np),
        }
    }

    /// Folds one window into the biases and returns the quantised result. A signal without
    /// usable evidence keeps its bias (missing data is not evidence that the profile is
    /// right).
    pub fn update(&mut self, ttft: Option<LatencySample>, tpot: Option<LatencySample>) -> Bias {
        let s = self.settings;
        let (lo, hi) = (s.min_bias.ln(), s.max_bias.ln());
        let step = s.max_window_ratio.ln();
        for (state, sample) in [(&mut self.log_ttft, ttft), (&mut self.log_tpot, tpot)] {
            if let Some(r) = sample.and_then(|x| x.log_divisor(s.model)) {
                let r = r.clamp(*state - step, *state + step);
                *state = (s.alpha * r + (1.0 - s.alpha) * *state).clamp(lo, hi);
            }
        }
        self.bias()
    }
}

/// Capacity per replica (req/s) of `profile` under `slo` when observed latency is `bias` ×
/// the model's: the profile's capacity under the SLO scaled by `1 / bias`, bounded to
/// `[min_capacity_factor, max_capacity_factor] × base`. A bias under which even an idle
/// replica misses the SLO gives the lower bound. `base` is the uncorrected capacity.
#[must_use]
pub fn corrected_capacity_rps(
    profile: &Profile,
    mix: &RequestMix,
    slo: &Slo,
    bias: &Bias,
    base: &Capacity,
    settings: &CorrectionSettings,
) -> f64 {
    let (lo, hi) = (
        settings.min_capacity_factor * base.rate_per_s,
        settings.max_capacity_factor * base.rate_per_s,
    );
    if bias.is_none() {
        return base.rate_per_s;
    }
    match capacity_per_replica(profile, mix, &bias.scale_slo(slo)) {
        Ok(c) => c.rate_per_s.clamp(lo, hi),
        Err(_) => lo,
    }
}

/// CDF of one latency distribution known by its p50, p90 and p99: piecewise linear in
/// log-latency through the three, extended with the neighbouring slope.
fn cdf(p: &PercentilesMs, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    let l = |v: f64| v.max(1e-12).ln();
    let (a, b, c, lx) = (l(p.p50), l(p.p90), l(p.p99), x.ln());
    let seg = |x0: f64, f0: f64, x1: f64, f1: f64| -> f64 {
        if x1 > x0 {
            f0 + (f1 - f0) * (lx - x0) / (x1 - x0)
        } else if lx < x0 {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }
    };
    let f = if lx < b {
        seg(a, 0.5, b, 0.9)
    } else if lx < c {
        seg(b, 0.9, c, 0.99)
    } else if lx == c {
        0.99
    } else {
        seg(b, 0.9, c, 0.99)
    };
    f.clamp(0.0, 1.0)
}

/// The `q`-quantile of a mixture of latency distributions, each given by its p50/p90/p99
/// with a weight (its share of the requests). `None` when no component has a positive
/// weight and finite, ordered percentiles.
#[must_use]
pub fn mixture_quantile(components: &[(f64, PercentilesMs)], q: f64) -> Option<f64> {
    let usable: Vec<(f64, PercentilesMs)> = components
        .iter()
        .copied()
        .filter(|(w, p)| {
            *w > 0.0
                && w.is_finite()
                && p.p50.is_finite()
                && p.p99.is_finite()
                && p.p50 > 0.0
                && p.p50 <= p.p90
                && p.p90 <= p.p99
        })
        .collect();
    let total: f64 = usable.iter().map(|(w, _)| w).sum();
    if usable.is_empty() || !(0.0..1.0).contains(&q) {
        return None;
    }
    let mix_cdf = |x: f64| usable.iter().map(|(w, p)| w * cdf(p, x)).sum::<f64>() / total;
    let (mut lo, mut hi) = usable
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), (_, p)| {
            (lo.min(p.p50.ln() - 20.0), hi.max(p.p99.ln() + 20.0))
        });
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if mix_cdf(mid.exp()) < q {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(hi.exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::{LatencyModel, Percentile};

    fn evidence(rps: f64, cap: f64, waiting: Option<f64>, prev: Option<f64>) -> LoadEvidence {
        LoadEvidence {
            arrival_rps: rps,
            profile_capacity_rps: cap,
            waiting,
            previous_waiting: prev,
            ttft_bound_s: 2.0,
        }
    }

    /// The backlog rule: over the profile's capacity, or a queue of more than one TTFT
    /// bound's arrivals that is draining, is a backlog; a queue that keeps growing at a
    /// load the profile says the fleet carries (a slower GPU, saturated) is not, nor is a
    /// short queue, nor an unreported one.
    #[test]
    fn a_backlog_is_over_capacity_or_a_long_draining_queue() {
        assert!(evidence(50.0, 30.0, None, None).is_backlog());
        assert!(evidence(45.0, 60.0, Some(3000.0), Some(3300.0)).is_backlog());
        assert!(evidence(45.0, 60.0, Some(3000.0), Some(3000.0)).is_backlog());
        assert!(!evidence(45.0, 60.0, Some(3300.0), Some(3000.0)).is_backlog());
        assert!(!evidence(45.0, 60.0, Some(80.0), Some(200.0)).is_backlog());
        assert!(!evidence(45.0, 60.0, None, Some(3000.0)).is_backlog());
        assert!(!evidence(45.0, 60.0, Some(3000.0), None).is_backlog());
        assert!(!evidence(60.0, 60.0, Some(f64::NAN), Some(3000.0)).is_backlog());
    }

    fn s(observed_s: f64, predicted_s: f64) -> Option<LatencySample> {
        Some(LatencySample {
            observed_s,
            predicted_s,
            bound_s: 100.0,
        })
    }

    fn profile(speed: f64) -> Profile {
        let yaml = include_str!("../../docs/profiles/llama-3.1-8b-fp8_h200_tp1.yaml");
        let p = Profile::from_yaml(yaml).unwrap();
        crate::profile::fit::derive_by_throughput_ratio(&p, &p.gpu, speed, None, "test GPU")
            .unwrap()
    }

    /// The tests' request mix (prompts 1000, outputs 200 tokens) and a p90 SLO.
    fn workload(ttft_ms: f64, tpot_ms: f64) -> (RequestMix, Slo) {
        let slo = Slo {
            ttft_ms,
            tpot_ms,
            percentile: Percentile::P90,
        };
        (RequestMix::fixed(1000.0, 200.0).unwrap(), slo)
    }

    /// The multiplicative model, which most tests below exercise (its arithmetic is the
    /// simplest to state).
    fn mult() -> CorrectionSettings {
        CorrectionSettings {
            model: BiasModel::Multiplicative,
            ..CorrectionSettings::default()
        }
    }

    fn pct(p50: f64, p90: f64, p99: f64) -> PercentilesMs {
        PercentilesMs { p50, p90, p99 }
    }

    #[test]
    fn bias_converges_to_the_observed_ratio_and_is_bounded() {
        let mut b = LatencyBias::new(mult());
        for _ in 0..60 {
            b.update(s(1.5, 1.0), s(0.05, 0.05));
        }
        let k = b.bias();
        assert!((k.ttft - 1.5).abs() < 0.04, "{k:?}");
        assert_eq!(k.tpot, 1.0);
        for _ in 0..200 {
            b.update(s(100.0, 1.0), None);
        }
        assert!((b.raw().0 - 4.0).abs() < 1e-9, "bounded: {:?}", b.raw());
        for _ in 0..200 {
            b.update(s(0.01, 1.0), None);
        }
        assert!((b.raw().0 - 0.8).abs() < 1e-9, "bounded: {:?}", b.raw());
    }

    #[test]
    fn one_spike_moves_the_bias_a_little_and_noise_is_ignored() {
        let mut b = LatencyBias::new(mult());
        b.update(s(100.0, 1.0), s(100.0, 1.0));
        let (t, _) = b.raw();
        assert!(t <= 2f64.powf(0.2) + 1e-12, "{t}");
        let mut b = LatencyBias::new(mult());
        for _ in 0..50 {
            b.update(s(1.04, 1.0), s(0.97, 1.0));
        }
        assert!(b.bias().is_none(), "{:?}", b.bias());
    }

    #[test]
    fn missing_or_nonsense_latency_leaves_the_bias_alone() {
        let mut b = LatencyBias::new(mult());
        b.update(s(2.0, 1.0), s(2.0, 1.0));
        let before = b.raw();
        for bad in [
            None,
            s(f64::NAN, 1.0),
            s(0.0, 1.0),
            s(1.0, -1.0),
            s(f64::INFINITY, 1.0),
        ] {
            b.update(bad, bad);
            assert_eq!(b.raw(), before, "{bad:?}");
        }
    }

    #[test]
    fn the_bias_is_quantised_so_capacities_can_be_cached() {
        let mut b = LatencyBias::new(mult());
        let mut keys = std::collections::BTreeSet::new();
        // Noisy windows around 1.3: the smoothed bias wanders, its quantised value barely.
        for i in 0..400 {
            let noise = if i % 2 == 0 { 1.1 } else { 1.0 / 1.1 };
            let k = b.update(s(1.3 * noise, 1.0), None);
            if i > 100 {
                keys.insert(k.key);
            }
        }
        assert!(keys.len() <= 3, "{keys:?}");
        let k = b.bias();
        assert!((k.ttft / 1.05f64.powi(k.key.0) - 1.0).abs() < 1e-12);
    }

    /// A GPU truly slower than its profile: every latency is 1.5× the model's. The corrected
    /// capacity is one at which the slower GPU's predicted latency meets the SLO.
    #[test]
    fn a_truly_slower_gpu_is_corrected_until_the_slo_holds() {
        let (mix, slo) = workload(1000.0, 40.0);
        let settings = mult();
        let profiled = profile(1.0);
        let base = capacity_per_replica(&profiled, &mix, &slo).unwrap();
        let model = LatencyModel::new(&profiled, &mix).unwrap();
        let mut b = LatencyBias::new(settings);
        // Observed at a moderate load: 1.5× the prediction on both signals.
        let p = model.predict(0.5 * base.rate_per_s, 1).unwrap();
        for _ in 0..60 {
            b.update(
                s(1.5 * p.ttft_ms.p90 / 1e3, p.ttft_ms.p90 / 1e3),
                s(1.5 * p.tpot_ms.p90 / 1e3, p.tpot_ms.p90 / 1e3),
            );
        }
        let bias = b.bias();
        let cap = corrected_capacity_rps(&profiled, &mix, &slo, &bias, &base, &settings);
        assert!(cap < base.rate_per_s, "{cap} vs {}", base.rate_per_s);
        // At that capacity, 1.5× the model's latency still meets the SLO.
        let at = model.predict(cap, 1).unwrap();
        assert!(1.5 * at.ttft_ms.p90 <= slo.ttft_ms * 1.03, "{at:?}");
        assert!(1.5 * at.tpot_ms.p90 <= slo.tpot_ms * 1.03, "{at:?}");
    }

    /// Observed TTFT 1.5× the model's far inside the SLO: the capacity barely moves (the
    /// linear mapping took a third off).
    #[test]
    fn a_ttft_bias_far_inside_the_slo_barely_changes_capacity() {
        let (mix, slo) = workload(2000.0, 80.0);
        let settings = mult();
        let p = profile(1.0);
        let base = capacity_per_replica(&p, &mix, &slo).unwrap();
        let mut b = LatencyBias::new(settings);
        for _ in 0..60 {
            b.update(s(0.15, 0.1), s(0.02, 0.02));
        }
        assert!((b.bias().ttft - 1.5).abs() < 0.05, "{:?}", b.bias());
        let cap = corrected_capacity_rps(&p, &mix, &slo, &b.bias(), &base, &settings);
        assert!(
            cap >= 0.9 * base.rate_per_s && cap <= base.rate_per_s,
            "{cap} vs {}",
            base.rate_per_s
        );
    }

    /// The additive model: an excess is carried to the capacity's load as a constant, so a
    /// TPOT twice the model's but at an eighth of its bound costs far less capacity than
    /// under the multiplicative model, and an excess near the bound still costs much.
    #[test]
    fn an_additive_excess_costs_in_proportion_to_the_bound_it_uses() {
        let (mix, slo) = workload(2000.0, 25.0);
        let p = profile(1.0);
        let base = capacity_per_replica(&p, &mix, &slo).unwrap();
        assert_eq!(base.binding, crate::capacity::Binding::Tpot);
        let capacity_after = |model: BiasModel, observed_s: f64, predicted_s: f64| {
            let settings = CorrectionSettings {
                model,
                ..CorrectionSettings::default()
            };
            let mut b = LatencyBias::new(settings);
            for _ in 0..60 {
                b.update(
                    None,
                    Some(LatencySample {
                        observed_s,
                        predicted_s,
                        bound_s: 0.025,
                    }),
                );
            }
            corrected_capacity_rps(&p, &mix, &slo, &b.bias(), &base, &settings) / base.rate_per_s
        };
        let additive = capacity_after(BiasModel::Additive, 0.006, 0.003);
        let multiplicative = capacity_after(BiasModel::Multiplicative, 0.006, 0.003);
        assert!(
            additive > multiplicative + 0.1,
            "{additive} vs {multiplicative}"
        );
        // 7.5 ms over a 12.5 ms prediction: the bound left is 17.5 ms.
        let near = capacity_after(BiasModel::Additive, 0.02, 0.0125);
        assert!(near < additive - 0.05, "{near} vs {additive}");
    }

    #[test]
    fn an_unmeetable_bias_gives_the_lower_bound_and_no_bias_the_profile() {
        let (mix, slo) = workload(1000.0, 40.0);
        let settings = mult();
        let p = profile(1.0);
        let base = capacity_per_replica(&p, &mix, &slo).unwrap();
        let huge = Bias {
            ttft: 1.0,
            tpot: 1000.0,
            key: (0, 142),
        };
        let cap = corrected_capacity_rps(&p, &mix, &slo, &huge, &base, &settings);
        assert!((cap - 0.5 * base.rate_per_s).abs() < 1e-12);
        let none = corrected_capacity_rps(&p, &mix, &slo, &Bias::NONE, &base, &settings);
        assert_eq!(none, base.rate_per_s);
    }

    #[test]
    fn mixture_quantile_is_the_percentile_of_the_mixture_not_the_mean_of_percentiles() {
        let fast = pct(100.0, 200.0, 400.0);
        let slow = pct(1000.0, 2000.0, 4000.0);
        // One component: its own percentiles back.
        for (q, want) in [(0.5, 100.0), (0.9, 200.0), (0.99, 400.0)] {
            let got = mixture_quantile(&[(1.0, fast)], q).unwrap();
            assert!((got / want - 1.0).abs() < 1e-6, "{q}: {got}");
        }
        // 80 % of requests fast, 20 % slow: the mixture's p90 lies inside the slow
        // component (half of the slow requests exceed it), far above the weighted mean of
        // p90s (560 ms).
        let m = mixture_quantile(&[(0.8, fast), (0.2, slow)], 0.9).unwrap();
        assert!((m - 1000.0).abs() < 1.0, "{m}");
        assert!(m > 0.8 * 200.0 + 0.2 * 2000.0);
        assert_eq!(mixture_quantile(&[], 0.9), None);
        assert_eq!(mixture_quantile(&[(0.0, fast)], 0.9), None);
    }

    #[test]
    #[should_panic(expected = "invalid correction settings")]
    fn inconsistent_settings_are_rejected() {
        LatencyBias::new(CorrectionSettings {
            min_bias: 1.5,
            ..CorrectionSettings::default()
        });
    }
}
