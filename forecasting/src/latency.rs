//! Latency under load: predicted TTFT and TPOT percentiles of a replica pool from a
//! [`Profile`], a request mix and an arrival rate. Analytic, so a sizing decision can call it
//! thousands of times (a call costs microseconds; see `docs/BENCHMARKS.md`).
//!
//! Where to start: [`predict`] for one call, [`LatencyModel`] to precompute the mix once and
//! call [`LatencyModel::predict`] many times. The model is written out with its assumptions in
//! `docs/performance-model.md`; in short, per replica with arrival rate `λ` (load balanced
//! evenly):
//! - continuous batching: a decode step takes `d0 + c_seq·B` where `B` is the running batch and
//!   `c_seq = per_seq_ms + per_kv_token_ms·kv_per_seq` (KV held per sequence, time-averaged);
//! - prefill interference: arriving prompts are mixed into the steps, adding `κ·λ·τ·work(P)`
//!   per step (`κ` = `mixed_prefill_factor`); with Little's law `B = λ·E[O]·τ` the step time is
//!   the fixed point `τ = d0 / (1 − ρ_κ)`, `ρ_κ = λ·(κ·E[work(P)] + E[O]·c_seq)`;
//! - compute bound: the GPU cannot do more than one second of work per second,
//!   `ρ = λ·(E[work(P)] + E[O]·c_seq) < 1` (full prefill work: under saturation nothing hides
//!   it);
//! - KV-cache and max-batch limit: at most `c = min(max_batch, kv_capacity / kv_per_seq)`
//!   sequences run; beyond that requests wait for a slot (an M/G/c queue, Erlang C with the
//!   Allen–Cunneen correction), so TTFT rises sharply as `B → c`; at `B = c` the replica is
//!   saturated;
//! - TTFT = prefill of the own prompt + the decode batch sharing its step + the residual of the
//!   step in progress + waiting (behind other prompts: M/G/1; for a slot: M/G/c).
use serde::Serialize;

use crate::profile::{Profile, ProfileError};

/// Errors of the latency model's inputs.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LatencyError {
    /// Arrival rate negative or not finite.
    #[error("expected an arrival rate >= 0 req/s, got {0}")]
    BadRate(f64),
    /// Zero replicas.
    #[error("expected at least 1 replica, got 0")]
    NoReplicas,
    /// A token-count distribution without points.
    #[error("expected at least one token count in the distribution, got none")]
    EmptyDistribution,
    /// A token count or weight that is negative or not finite.
    #[error("expected {what} to be a finite number >= 0, got {got}")]
    BadValue {
        /// Which value.
        what: &'static str,
        /// The value found.
        got: f64,
    },
    /// A line of a distribution file that is not `tokens` or `tokens weight`.
    #[error("distribution line {line}: expected `tokens` or `tokens,weight`, got {text:?}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// Output length of zero: a request must generate a token.
    #[error("expected a mean output length > 0 tokens, got {0}")]
    NoOutput(f64),
    /// The profile fails its own checks (built in code without [`Profile::validate`]).
    #[error(transparent)]
    Profile(#[from] ProfileError),
}

/// Largest number of points a distribution keeps; more samples are merged into equal-weight
/// quantile bins so a prediction stays cheap.
pub const MAX_DIST_POINTS: usize = 64;

/// A distribution of token counts: weighted points (weights sum to 1).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenDist {
    points: Vec<(f64, f64)>,
}

impl TokenDist {
    /// Every request has `tokens` tokens.
    ///
    /// # Errors
    /// [`LatencyError::BadValue`] if `tokens` is negative or not finite.
    pub fn constant(tokens: f64) -> Result<Self, LatencyError> {
        Self::from_weighted(&[(tokens, 1.0)])
    }

    /// Equal-weight samples (e.g. a trace's prompt lengths).
    ///
    /// # Errors
    /// As [`TokenDist::from_weighted`].
    pub fn from_samples(samples: &[f64]) -> Result<Self, LatencyError> {
        let pts: Vec<(f64, f64)> = samples.iter().map(|&s| (s, 1.0)).collect();
        Self::from_weighted(&pts)
    }

    /// `(tokens, weight)` points; weights need not sum to 1. More than [`MAX_DIST_POINTS`]
    /// points are merged into quantile bins (each bin keeps its mean, so the mean is exact).
    ///
    /// # Errors
    /// [`LatencyError::EmptyDistribution`] without points or with zero total weight,
    /// [`LatencyError::BadValue`] for a negative or non-finite token count or weight.
    pub fn from_weighted(points: &[(f64, f64)]) -> Result<Self, LatencyError> {
        for &(t, w) in points {
            if !(t.is_finite() && t >= 0.0) {
                return Err(LatencyError::BadValue {
                    what: "a token count",
                    got: t,
                });
            }
            if !(w.is_finite() && w >= 0.0) {
                return Err(LatencyError::BadValue {
                    what: "a weight",
                    got: w,
                });
            }
        }
        let total: f64 = points.iter().map(|p| p.1).sum();
        if points.is_empty() || total <= 0.0 {
            return Err(LatencyError::EmptyDistribution);
        }
        let mut pts: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.1 > 0.0)
            .map(|&(t, w)| (t, w / total))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if pts.len() > MAX_DIST_POINTS {
            pts = merge_bins(&pts, MAX_DIST_POINTS);
        }
        Ok(Self { points: pts })
    }

    /// Parses the distribution file format: one point per line, `tokens` (an equal-weight
    /// sample) or `tokens,weight` / `tokens weight`; blank lines and `#` comments ignored.
    ///
    /// # Errors
    /// [`LatencyError::BadLine`] for a line that is not one or two numbers, and the errors of
    /// [`TokenDist::from_weighted`].
    pub fn parse(text: &str) -> Result<Self, LatencyError> {
        let mut pts = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|f| !f.is_empty())
                .collect();
            let bad = || LatencyError::BadLine {
                line: i + 1,
                text: raw.to_string(),
            };
            let num = |s: &str| s.parse::<f64>().map_err(|_| bad());
            match fields.as_slice() {
                [t] => pts.push((num(t)?, 1.0)),
                [t, w] => pts.push((num(t)?, num(w)?)),
                _ => return Err(bad()),
            }
        }
        Self::from_weighted(&pts)
    }

    /// The `(tokens, probability)` points, sorted by tokens.
    #[must_use]
    pub fn points(&self) -> &[(f64, f64)] {
        &self.points
    }

    /// Mean token count.
    #[must_use]
    pub fn mean(&self) -> f64 {
        self.expect(|t| t)
    }

    /// Expectation of `f(tokens)`.
    pub fn expect(&self, f: impl Fn(f64) -> f64) -> f64 {
        self.points.iter().map(|&(t, w)| w * f(t)).sum()
    }
}

/// Merges sorted, normalised points into `bins` bins of about equal probability.
fn merge_bins(pts: &[(f64, f64)], bins: usize) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(bins);
    let (mut acc_w, mut acc_tw, mut cum) = (0.0, 0.0, 0.0);
    let mut next_edge = 1.0 / bins as f64;
    for &(t, w) in pts {
        acc_w += w;
        acc_tw += t * w;
        cum += w;
        if cum >= next_edge - 1e-12 {
            out.push((acc_tw / acc_w, acc_w));
            acc_w = 0.0;
            acc_tw = 0.0;
            while next_edge <= cum + 1e-12 {
                next_edge += 1.0 / bins as f64;
            }
        }
    }
    if acc_w > 0.0 {
        out.push((acc_tw / acc_w, acc_w));
    }
    out
}

/// Prompt and output lengths of the requests (assumed independent).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestMix {
    /// Prompt tokens per request.
    pub prompt_tokens: TokenDist,
    /// Output tokens per request.
    pub output_tokens: TokenDist,
}

impl RequestMix {
    /// Every request has the same prompt and output length.
    ///
    /// # Errors
    /// [`LatencyError::BadValue`] for a negative or non-finite length.
    pub fn fixed(prompt_tokens: f64, output_tokens: f64) -> Result<Self, LatencyError> {
        Ok(Self {
            prompt_tokens: TokenDist::constant(prompt_tokens)?,
            output_tokens: TokenDist::constant(output_tokens)?,
        })
    }
}

/// A percentile the model reports and an SLO can be stated at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Percentile {
    /// Median.
    P50,
    /// 90th percentile.
    P90,
    /// 99th percentile.
    P99,
}

impl Percentile {
    /// The probability, e.g. 0.99.
    #[must_use]
    pub fn quantile(self) -> f64 {
        match self {
            Self::P50 => 0.5,
            Self::P90 => 0.9,
            Self::P99 => 0.99,
        }
    }
}

/// p50/p90/p99 of a latency, in milliseconds (infinite when the replica is saturated).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PercentilesMs {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl PercentilesMs {
    /// The value at `p`.
    #[must_use]
    pub fn at(&self, p: Percentile) -> f64 {
        match p {
            Percentile::P50 => self.p50,
            Percentile::P90 => self.p90,
            Percentile::P99 => self.p99,
        }
    }
}

/// What the model predicts for one replica at the given load.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prediction {
    /// Time to first token.
    pub ttft_ms: PercentilesMs,
    /// Time per output token after the first.
    pub tpot_ms: PercentilesMs,
    /// Offered rate per replica as a fraction of the saturation rate.
    pub utilization: f64,
    /// The offered rate is at or above the saturation rate: queues grow without bound.
    pub saturated: bool,
    /// Mean running batch (sequences decoding) per replica.
    pub batch: f64,
    /// Mean decode step time per replica (= mean TPOT).
    pub step_ms: f64,
    /// Highest arrival rate per replica the replica sustains (req/s).
    pub saturation_rate_per_s: f64,
}

/// The mix reduced to the moments the model needs, for one profile. Build once, predict many.
#[derive(Debug, Clone)]
pub struct LatencyModel {
    profile: Profile,
    /// `(prefill time of own prompt without queueing, probability)` per prompt point.
    own_prefill_ms: Vec<(f64, f64)>,
    mean_output_tokens: f64,
    /// Decode cost per running sequence per step, KV reads included.
    c_seq_ms: f64,
    /// Mean GPU work of one prompt mixed into steps.
    prefill_work_ms: f64,
    /// Fraction of that work a decode step grows by.
    kappa: f64,
    /// Second moment of that work (for M/G/1 waiting).
    prefill_work_sq_ms2: f64,
    /// Decode slots: the most sequences that run together.
    slots: f64,
    /// Squared coefficient of variation of the output length (slot holding time).
    output_cv2: f64,
}

impl LatencyModel {
    /// Precomputes the mix's moments for `profile`.
    ///
    /// # Errors
    /// [`LatencyError::NoOutput`] if the mean output length is 0,
    /// [`LatencyError::Profile`] if the profile is invalid.
    pub fn new(profile: &Profile, mix: &RequestMix) -> Result<Self, LatencyError> {
        profile.validate()?;
        let o = &mix.output_tokens;
        let mean_o = o.mean();
        if mean_o <= 0.0 {
            return Err(LatencyError::NoOutput(mean_o));
        }
        let mean_o2 = o.expect(|t| t * t);
        let mean_p = mix.prompt_tokens.mean();
        // A sequence holds its prompt plus the tokens generated so far; averaged over its
        // decode lifetime and length-biased (long outputs stay longer): P + E[O²]/(2E[O]).
        let kv_per_seq = mean_p + mean_o2 / (2.0 * mean_o);
        let pf = &profile.prefill;
        let c_seq_ms = profile.decode.per_seq_ms + profile.decode.per_kv_token_ms * kv_per_seq;
        let kv_slots = profile.limits.kv_capacity_tokens as f64 / kv_per_seq.max(1.0);
        let slots = f64::from(profile.limits.max_batch)
            .min(kv_slots)
            .floor()
            .max(1.0);
        Ok(Self {
            profile: profile.clone(),
            own_prefill_ms: mix
                .prompt_tokens
                .points()
                .iter()
                .map(|&(t, w)| (pf.time_ms(1.0, t), w))
                .collect(),
            mean_output_tokens: mean_o,
            c_seq_ms,
            prefill_work_ms: mix.prompt_tokens.expect(|t| pf.work_ms(t)),
            kappa: profile.decode.mixed_prefill_factor,
            prefill_work_sq_ms2: mix.prompt_tokens.expect(|t| pf.work_ms(t).powi(2)),
            slots,
            output_cv2: (mean_o2 / (mean_o * mean_o) - 1.0).max(0.0),
        })
    }

    /// GPU work per request (ms): its prompt plus its share of the decode steps.
    fn work_per_request_ms(&self) -> f64 {
        self.prefill_work_ms + self.mean_output_tokens * self.c_seq_ms
    }

    /// What a request adds to the decode steps (ms): its prompt as far as it does not overlap
    /// with decoding, plus its share of the steps.
    fn step_work_per_request_ms(&self) -> f64 {
        self.kappa * self.prefill_work_ms + self.mean_output_tokens * self.c_seq_ms
    }

    /// Highest arrival rate per replica (req/s): where the mean batch reaches the slot count
    /// (from `B = λ·E[O]·d0/(1 − λ·r_κ) = c`) or the GPU's work reaches one second per second,
    /// whichever comes first.
    #[must_use]
    pub fn saturation_rate_per_s(&self) -> f64 {
        let d0 = self.profile.decode.base_ms;
        let slots_per_ms = self.slots
            / (self.mean_output_tokens * d0 + self.slots * self.step_work_per_request_ms());
        let compute_per_ms = 1.0 / self.work_per_request_ms();
        slots_per_ms.min(compute_per_ms) * 1000.0
    }

    /// Predicts latency percentiles for `rate_per_s` spread evenly over `replicas`.
    ///
    /// # Errors
    /// [`LatencyError::BadRate`], [`LatencyError::NoReplicas`].
    pub fn predict(&self, rate_per_s: f64, replicas: u32) -> Result<Prediction, LatencyError> {
        if !(rate_per_s.is_finite() && rate_per_s >= 0.0) {
            return Err(LatencyError::BadRate(rate_per_s));
        }
        if replicas == 0 {
            return Err(LatencyError::NoReplicas);
        }
        let lambda_s = rate_per_s / f64::from(replicas);
        let sat_s = self.saturation_rate_per_s();
        let saturated = lambda_s >= sat_s;
        // Requests admitted: beyond saturation the excess waits in the queue, the running
        // batch stays at the slot count.
        let lam = lambda_s.min(sat_s) / 1000.0; // per ms
        let d0 = self.profile.decode.base_ms;
        let rho_steps = lam * self.step_work_per_request_ms();
        let step_ms = d0 / (1.0 - rho_steps);
        let batch = (lam * self.mean_output_tokens * step_ms).min(self.slots);
        // Time per token at a batch `b`: the decode step plus the prompts mixed into it.
        let pf_share = 1.0 - lam * self.kappa * self.prefill_work_ms;
        // GPU busy fraction with the full prefill work: what prompts queue behind.
        let rho = lam * self.work_per_request_ms();
        let tpot_at = |b: f64| (d0 + self.c_seq_ms * b.min(self.slots)) / pf_share;
        // The running batch fluctuates about its mean like a Poisson count (M/G/∞ below the
        // slot limit): a request's TPOT percentile follows the batch percentile.
        let sd = batch.sqrt();
        let tpot_ms = PercentilesMs {
            p50: tpot_at(batch),
            p90: tpot_at(batch + Z90 * sd),
            p99: tpot_at(batch + Z99 * sd),
        };
        let ttft_ms = if saturated {
            PercentilesMs {
                p50: f64::INFINITY,
                p90: f64::INFINITY,
                p99: f64::INFINITY,
            }
        } else {
            let wait = self.wait(lam, rho, step_ms, batch);
            let shared = self.c_seq_ms * batch;
            // The step in progress when the request arrives: busy with probability
            // P(batch > 0) for a Poisson batch; the residual is uniform over a step.
            let residual = step_ms * (1.0 - (-batch).exp());
            let q = |p: f64| quantile_ttft(&self.own_prefill_ms, shared, residual, wait, p);
            PercentilesMs {
                p50: q(0.5),
                p90: q(0.9),
                p99: q(0.99),
            }
        };
        Ok(Prediction {
            ttft_ms,
            tpot_ms,
            utilization: lambda_s / sat_s,
            saturated,
            batch,
            step_ms: tpot_ms.p50,
            saturation_rate_per_s: sat_s,
        })
    }

    /// Waiting before the own prefill starts: behind other prompts (M/G/1 on prefill work,
    /// slowed by the decode share of the GPU) and, near the slot limit, for a decode slot
    /// (M/G/c, Erlang C with the Allen–Cunneen factor). Combined as one atom-plus-exponential.
    fn wait(&self, lam: f64, rho: f64, step_ms: f64, batch: f64) -> Wait {
        let free = (1.0 - rho).max(1e-12);
        let pf_mean = lam * self.prefill_work_sq_ms2 / (2.0 * free);
        let pf_prob = (lam * self.prefill_work_ms).min(1.0);
        let holding_ms = self.mean_output_tokens * step_ms;
        let (slot_prob, slot_mean) = if batch >= self.slots {
            (1.0, f64::INFINITY)
        } else {
            let p = erlang_c(self.slots, batch);
            let mean = p * holding_ms / (self.slots - batch) * (1.0 + self.output_cv2) / 2.0;
            (p, mean)
        };
        let prob = 1.0 - (1.0 - pf_prob) * (1.0 - slot_prob);
        let mean = pf_mean + slot_mean;
        Wait {
            prob,
            cond_mean_ms: if prob > 0.0 { mean / prob } else { 0.0 },
        }
    }
}

const Z90: f64 = 1.281_551_565_545;
const Z99: f64 = 2.326_347_874_041;

/// Waiting time: 0 with probability `1 − prob`, else exponential with mean `cond_mean_ms`.
#[derive(Debug, Clone, Copy)]
struct Wait {
    prob: f64,
    cond_mean_ms: f64,
}

/// Erlang C: probability an arrival waits in an M/M/c queue with offered load `a` (erlangs).
fn erlang_c(c: f64, a: f64) -> f64 {
    if a <= 0.0 {
        return 0.0;
    }
    if a >= c {
        return 1.0;
    }
    // Halfin–Whitt: with (c − a)/√a above 8 the waiting probability is below 1e-14; skipping
    // the O(c) recursion keeps huge slot counts cheap.
    if (c - a) / a.sqrt() > 8.0 {
        return 0.0;
    }
    let n = c as u64;
    let mut b = 1.0;
    for k in 1..=n {
        b = a * b / (k as f64 + a * b);
    }
    let cf = n as f64;
    (cf * b / (cf - a * (1.0 - b))).clamp(0.0, 1.0)
}

/// Quantile `p` of TTFT = own prefill (mixture over prompt lengths) + `shared` + U·`residual`
/// + wait, by bisection on the analytic CDF.
fn quantile_ttft(own: &[(f64, f64)], shared: f64, residual: f64, wait: Wait, p: f64) -> f64 {
    let cdf = |t: f64| -> f64 {
        own.iter()
            .map(|&(a, w)| w * cdf_uniform_plus_wait(t - a - shared, residual, wait))
            .sum()
    };
    let lo0 = own.first().map_or(0.0, |x| x.0) + shared;
    let mut lo = lo0;
    let mut hi = own.last().map_or(0.0, |x| x.0) + shared + residual + 1.0;
    if wait.prob > 0.0 {
        hi += wait.cond_mean_ms * (wait.prob / (1.0 - p)).max(1.0).ln().max(1.0) * 2.0;
    }
    if !hi.is_finite() {
        return f64::INFINITY;
    }
    while cdf(hi) < p {
        hi = lo0 + 2.0 * (hi - lo0);
    }
    for _ in 0..48 {
        let mid = 0.5 * (lo + hi);
        if cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-6 * hi.abs().max(1.0) {
            break;
        }
    }
    hi
}

/// P(U·r + W ≤ x) for U uniform on [0, 1] and W the atom-plus-exponential wait.
fn cdf_uniform_plus_wait(x: f64, r: f64, w: Wait) -> f64 {
    if x < 0.0 {
        return 0.0;
    }
    let m = w.cond_mean_ms;
    let g = |y: f64| {
        if m > 0.0 {
            1.0 - w.prob * (-y / m).exp()
        } else {
            1.0
        }
    };
    if r <= 0.0 {
        return g(x);
    }
    let upper = x.min(r);
    // ∫₀^upper g(x − u) du, closed form.
    let integral = if m > 0.0 {
        upper - w.prob * m * ((-(x - upper) / m).exp() - (-x / m).exp())
    } else {
        upper
    };
    (integral / r).clamp(0.0, 1.0)
}

/// One-off prediction: `rate_per_s` spread evenly over `replicas` replicas of `profile`.
///
/// # Errors
/// As [`LatencyModel::new`] and [`LatencyModel::predict`].
pub fn predict(
    profile: &Profile,
    mix: &RequestMix,
    rate_per_s: f64,
    replicas: u32,
) -> Result<Prediction, LatencyError> {
    LatencyModel::new(profile, mix)?.predict(rate_per_s, replicas)
}
