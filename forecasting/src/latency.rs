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
//!   with CUDA-graph sizes in the profile, `per_seq_ms` is charged on the mean padded batch
//!   `E[pad(B)]` instead (the fixed point below is then iterated, not closed form);
//! - prefill interference: arriving prompts are mixed into the steps, adding `κ·λ·τ·work(P)`
//!   per step (`κ` = `mixed_prefill_factor`); with Little's law `B = λ·E[O]·τ` the step time is
//!   the fixed point `τ = d0 / (1 − ρ_κ)`, `ρ_κ = λ·(κ·E[work(P)] + E[O]·c_seq)`;
//! - compute bound: the GPU cannot do more than one second of work per second,
//!   `ρ = λ·(E[work(P)] + E[O]·(c_seq + per_token)) < 1` (full prefill work, and every output
//!   token's pass through the weights at the prompt-token cost `prefill.per_token_ms`: at
//!   saturation the batch is large, the step compute-bound, and nothing hides either);
//! - KV-cache and max-batch limit: at most `c = min(max_batch, kv_capacity / kv_per_seq)`
//!   sequences run; beyond that requests wait for a slot (an M/G/c queue, Erlang C with the
//!   Allen–Cunneen correction), so TTFT rises sharply as `B → c`; at `B = c` the replica is
//!   saturated;
//! - TTFT = prefill of the own prompt + the decode batch sharing its step + the residual of the
//!   step in progress + waiting (behind other prompts: M/G/1; for a slot: M/G/c);
//! - arrivals are Poisson unless [`LatencyModel::with_arrival_cv2`] says otherwise: the
//!   waits then scale by Kingman / Allen–Cunneen's `(c_a² + c_s²)/2`, the TPOT tail's
//!   arrival counts by their index of dispersion `c_a²`.
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
    /// Mean decode step time per replica, prompts mixed in included (close to, but not
    /// exactly, the mean TPOT: see [`Prediction::tpot_mean_ms`]).
    pub step_ms: f64,
    /// Highest arrival rate per replica the replica sustains (req/s).
    pub saturation_rate_per_s: f64,
    /// Mean TPOT over requests (what GuideLLM reports as `tpot_ms_mean`). Above
    /// [`Prediction::step_ms`] for short outputs: prompts that arrive during a request's own
    /// (long) prefill step are mixed into its first decode step.
    pub tpot_mean_ms: f64,
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
    /// The KV-read part of it (never padded: attention reads only real sequences' context).
    kv_per_seq_ms: f64,
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
    /// `(decode steps after the first token, probability)` per output point with a TPOT
    /// (at least 2 output tokens), probabilities renormalised.
    tpot_steps: Vec<(f64, f64)>,
    /// Size of one prefill "jump" in the steps of a request (ms): `κ·E[W²]/E[W]`, so that a
    /// Poisson stream of equal jumps has the mean and variance of the real prompt mix.
    jump_ms: f64,
    /// Squared coefficient of variation of the inter-arrival times (`c_a²`): scales the
    /// queueing waits (Kingman / Allen–Cunneen). See [`LatencyModel::with_arrival_cv2`].
    arrival_cv2: f64,
}

/// `c_a²` of Poisson arrivals, the default: what capacity under an SLO means unless a caller
/// states another arrival process.
pub const POISSON_ARRIVAL_CV2: f64 = 1.0;

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
            kv_per_seq_ms: profile.decode.per_kv_token_ms * kv_per_seq,
            prefill_work_ms: mix.prompt_tokens.expect(|t| pf.work_ms(t)),
            kappa: profile.decode.mixed_prefill_factor,
            prefill_work_sq_ms2: mix.prompt_tokens.expect(|t| pf.work_ms(t).powi(2)),
            slots,
            output_cv2: (mean_o2 / (mean_o * mean_o) - 1.0).max(0.0),
            tpot_steps: tpot_steps(o),
            jump_ms: {
                let w = mix.prompt_tokens.expect(|t| pf.work_ms(t));
                let w2 = mix.prompt_tokens.expect(|t| pf.work_ms(t).powi(2));
                if w > 0.0 {
                    profile.decode.mixed_prefill_factor * w2 / w
                } else {
                    0.0
                }
            },
            arrival_cv2: POISSON_ARRIVAL_CV2,
        })
    }

    /// The same model for arrivals whose inter-arrival times have squared coefficient of
    /// variation `cv2` (variance over squared mean): 0 for evenly spaced arrivals (GuideLLM's
    /// `constant` strategy), 1 for Poisson (the default of [`LatencyModel::new`]), above 1
    /// for bursty traffic. It scales the waiting terms of TTFT by the Kingman / Allen–Cunneen
    /// factor (`docs/performance-model.md`, step 5); the saturation rate does not depend on
    /// it, and the step time and mean TPOT only through the CUDA-graph padding of a
    /// fluctuating batch when the profile has graph sizes.
    ///
    /// # Errors
    /// [`LatencyError::BadValue`] if `cv2` is negative or not finite.
    pub fn with_arrival_cv2(mut self, cv2: f64) -> Result<Self, LatencyError> {
        if !(cv2.is_finite() && cv2 >= 0.0) {
            return Err(LatencyError::BadValue {
                what: "the arrival squared coefficient of variation",
                got: cv2,
            });
        }
        self.arrival_cv2 = cv2;
        Ok(self)
    }

    /// Squared coefficient of variation of the inter-arrival times the model assumes.
    #[must_use]
    pub fn arrival_cv2(&self) -> f64 {
        self.arrival_cv2
    }

    /// GPU work per request (ms) once the GPU is compute-bound: its prompt, plus per output
    /// token its share of the decode step (`c_seq`) and the token's own pass through the
    /// weights, which costs what a prompt token costs (`prefill.per_token_ms`). At small
    /// batches that pass hides under the step's memory-bound floor `d0` (the weights are
    /// read once per step whatever the batch), which is why `c_seq` fitted there lacks it;
    /// with hundreds of sequences per step the floor is covered and every token pays for its
    /// FLOPs (the roofline: step = max(floor + c_seq·B, (c_seq + per_token)·B + prompts)).
    fn work_per_request_ms(&self) -> f64 {
        self.prefill_work_ms
            + self.mean_output_tokens * (self.c_seq_ms + self.profile.prefill.per_token_ms)
    }

    /// What a request adds to the decode steps (ms): its prompt as far as it does not overlap
    /// with decoding, plus its share of the steps.
    fn step_work_per_request_ms(&self) -> f64 {
        self.kappa * self.prefill_work_ms + self.mean_output_tokens * self.c_seq_ms
    }

    /// Batch-dependent part of a decode step at mean batch `batch` (ms): `c_seq·B`, or with
    /// CUDA-graph sizes in the profile, `per_seq_ms` on the mean padded batch (its fluctuation
    /// that of the model's batch, variance `c_a²·B`) plus the KV reads of the real batch.
    fn batch_cost_ms(&self, batch: f64) -> f64 {
        let d = &self.profile.decode;
        if d.cuda_graph_batch_sizes.is_empty() {
            self.c_seq_ms * batch
        } else {
            d.per_seq_ms * d.expected_padded_batch(batch, self.arrival_cv2)
                + self.kv_per_seq_ms * batch
        }
    }

    /// Mean step time at arrival rate `lam` (per ms), the fixed point of
    /// `τ = (d0 + cost(B))/(1 − η)` with `B = λ·E[O]·τ` (at most the slot count) and
    /// `η = λκE[W]`: `d0/(1 − λ·r_κ)` in closed form without padding. With padding, `cost` is
    /// linear plus a bounded padding term `per_seq·(E[pad(B)] − B)`, iterated from the
    /// unpadded fixed point (a few rounds: the term changes slowly with `B`); where that does
    /// not settle (a steady batch crossing a gap between graph sizes), bisection between the
    /// unpadded time and the time at a full slot count.
    fn step_time_ms(&self, lam: f64) -> f64 {
        let d0 = self.profile.decode.base_ms;
        let linear = d0 / (1.0 - lam * self.step_work_per_request_ms());
        if self.profile.decode.cuda_graph_batch_sizes.is_empty() {
            return linear;
        }
        let free = 1.0 - lam * self.kappa * self.prefill_work_ms;
        let batch_at = |tau: f64| (lam * self.mean_output_tokens * tau).min(self.slots);
        let map = |tau: f64| (d0 + self.batch_cost_ms(batch_at(tau))) / free;
        let mut tau = linear;
        for _ in 0..50 {
            let b = batch_at(tau);
            let pad_ms = self.batch_cost_ms(b) - self.c_seq_ms * b;
            let next = (d0 + pad_ms) / (1.0 - lam * self.step_work_per_request_ms());
            if (next - tau).abs() <= 1e-12 * tau {
                return next;
            }
            tau = next;
        }
        let (mut lo, mut hi) = (linear, map(f64::INFINITY).max(linear));
        for _ in 0..100 {
            let mid = 0.5 * (lo + hi);
            if map(mid) > mid {
                lo = mid;
            } else {
                hi = mid;
            }
            if hi - lo <= 1e-12 * hi {
                break;
            }
        }
        hi
    }

    /// Highest arrival rate per replica (req/s): where the mean batch reaches the slot count
    /// (from `B = λ·E[O]·τ = c`, `τ = (d0 + cost(c))/(1 − η)`, i.e.
    /// `λ = c/(E[O]·(d0 + pad_c) + c·r_κ)` with `pad_c` what padding adds to a step of `c`)
    /// or the GPU's compute-bound work ([`Self::work_per_request_ms`]) reaches one second
    /// per second, whichever comes first.
    #[must_use]
    pub fn saturation_rate_per_s(&self) -> f64 {
        let d = &self.profile.decode;
        // A batch held at the slot count does not fluctuate: the padding of `c` itself.
        let pad_ms = d.per_seq_ms * (d.padded_batch(self.slots) - self.slots);
        let slots_per_ms = self.slots
            / (self.mean_output_tokens * (d.base_ms + pad_ms)
                + self.slots * self.step_work_per_request_ms());
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
        let step_ms = self.step_time_ms(lam);
        let batch = (lam * self.mean_output_tokens * step_ms).min(self.slots);
        // Share of the steps' time left to decoding once the prompts mixed in are served.
        let pf_share = 1.0 - lam * self.kappa * self.prefill_work_ms;
        // GPU busy fraction with the full prefill work: what prompts queue behind.
        let rho = lam * self.work_per_request_ms();
        // Mean step time (the batch may be capped at the slot count under saturation).
        let mean_step_ms = (d0 + self.batch_cost_ms(batch)) / pf_share;
        let tpot = self.tpot_dist(lam, batch);
        let tpot_ms = PercentilesMs {
            p50: tpot.quantile(0.5),
            p90: tpot.quantile(0.9),
            p99: tpot.quantile(0.99),
        };
        let ttft_ms = if saturated {
            PercentilesMs {
                p50: f64::INFINITY,
                p90: f64::INFINITY,
                p99: f64::INFINITY,
            }
        } else {
            let wait = self.wait(lam, rho, step_ms, batch);
            let shared = self.batch_cost_ms(batch);
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
            step_ms: mean_step_ms,
            saturation_rate_per_s: sat_s,
            tpot_mean_ms: tpot.mean(),
        })
    }

    /// Distribution of a request's TPOT at arrival rate `lam` (per ms) with mean batch
    /// `batch`.
    ///
    /// A request with `O` output tokens is timed over the `k = O − 1` decode steps after its
    /// first token. Those steps carry the decode batch (`D = d0 + c_seq·B` each) and every
    /// prompt that arrived from the start of its own prefill step to the end of its `k`-th
    /// step, each adding a prefill jump `s`. Arrivals during a jump lengthen the window
    /// and so bring more arrivals: the number of jumps `N` is the number served in a busy
    /// period of an M/D/1 queue started by the work `k·D + κE[W]` (its own mixed prefill),
    /// which is generalized-Poisson (Consul) with `θ = (η/s)·(k·D + κE[W])`, `η = λκE[W]`.
    /// So `TPOT = D + s·N/k + Y`: few prompts over few steps give a wide, skewed tail that
    /// shrinks as `O` grows, while the mean is the step time `D/(1 − η)` plus a small term
    /// for prompts that arrived during the request's own prefill. `Y` is the batch-size
    /// fluctuation (Poisson count about `B`, as in M/G/∞, scaled by `1/(1 − η)` for the extra
    /// prompts a longer step collects), capped where the batch reaches the slot count.
    fn tpot_dist(&self, lam: f64, batch: f64) -> TpotDist {
        let d0 = self.profile.decode.base_ms;
        let eta = (lam * self.kappa * self.prefill_work_ms).clamp(0.0, 0.999);
        let free = 1.0 - eta;
        let base = d0 + self.batch_cost_ms(batch);
        // Arrival counts over a window many inter-arrival times long have variance
        // `c_a²` × mean (index of dispersion of a renewal process); like a Poisson count of
        // clusters of `c_a²` arrivals, so the k-th cumulant scales by `c_a^{2(k−1)}`. Poisson
        // (c_a² = 1) keeps the exact generalized-Poisson pmf below.
        let ca2 = self.arrival_cv2;
        let poisson = ca2 == POISSON_ARRIVAL_CV2;
        let sigma = self.c_seq_ms * (batch * ca2).sqrt() / free;
        let y_cap = (self.c_seq_ms * (self.slots - batch)).max(0.0) / free;
        let s = self.jump_ms;
        // Work that opens the window besides the decode steps: the own prompt, and the
        // prompts admitted together with it, which arrived during the step in progress when
        // it arrived. That step is length-biased (an arrival more likely lands in a long,
        // prefill-laden step): mean `E[τ²]/E[τ] = τ + η·s/(1 − η²)`, with the step-time
        // variance of `τ_j = D + Σ prompts mixed in`, prompts arriving during `τ_{j−1}`.
        // The replica is busy with probability `1 − e^{−B}` (Poisson batch).
        let tau = base / free;
        let co_admitted = (1.0 - (-batch).exp()) * (tau + ca2 * eta * s / (1.0 - eta * eta));
        let own = self.kappa * self.prefill_work_ms + co_admitted;
        let mut pmf = Vec::new();
        let mut points = Vec::with_capacity(self.tpot_steps.len());
        for &(k, w) in &self.tpot_steps {
            let theta = if s > 0.0 && eta > 0.0 {
                eta / s * (k * base + own)
            } else {
                0.0
            };
            let mean_n = theta / free;
            let mean_ms = base + s * mean_n / k;
            let start = pmf.len();
            let jumps = if theta == 0.0 {
                pmf.push((1.0, 1.0));
                Jumps::Exact { start, len: 1 }
            } else if poisson
                && k <= MAX_EXACT_STEPS
                && push_generalized_poisson(&mut pmf, theta, eta)
            {
                Jumps::Exact {
                    start,
                    len: pmf.len() - start,
                }
            } else {
                // Cumulants of the generalized Poisson: θ/(1−η), θ/(1−η)³, θ(1+2η)/(1−η)⁵.
                let b = s / k;
                let var_ms2 = sigma * sigma + ca2 * b * b * theta / free.powi(3);
                let k3 = ca2 * ca2 * b.powi(3) * theta * (1.0 + 2.0 * eta) / free.powi(5);
                let sd_ms = var_ms2.sqrt();
                Jumps::Approx {
                    sd_ms,
                    skew: if sd_ms > 0.0 {
                        k3 / var_ms2 / sd_ms
                    } else {
                        0.0
                    },
                }
            };
            points.push(TpotPoint {
                weight: w,
                base_ms: base,
                jump_per_token_ms: s / k,
                mean_ms,
                jumps,
            });
        }
        TpotDist {
            points,
            pmf,
            sigma_ms: sigma,
            y_cap_ms: y_cap,
            // No request sees a step shorter than an idle one. Only the normal-power
            // approximation's skewed lower tail can dip below that (at very low load), and
            // it is used for short outputs only with non-Poisson arrivals.
            floor_ms: if poisson { 0.0 } else { d0 },
        }
    }

    /// Waiting before the own prefill starts: behind other prompts (M/G/1 on prefill work,
    /// slowed by the decode share of the GPU) and, near the slot limit, for a decode slot
    /// (M/G/c, Erlang C with the Allen–Cunneen factor). Combined as one atom-plus-exponential.
    ///
    /// Both carry the arrival variability `c_a²` the way Kingman's G/G/1 and Allen–Cunneen's
    /// G/G/c approximations do: the M/G/1 mean `λE[W²]/(2(1 − ρ))` is `λE[W]²(1 + c_s²)/2`
    /// over `1 − ρ`, and the `1` there is the Poisson `c_a²`, so the wait becomes
    /// `λ(c_a²·E[W]² + Var W)/(2(1 − ρ))`; the slot wait's factor `(1 + c_s²)/2` becomes
    /// `(c_a² + c_s²)/2`. Exact for Poisson; evenly spaced arrivals of equal prompts never
    /// queue behind each other below saturation (D/D/1).
    fn wait(&self, lam: f64, rho: f64, step_ms: f64, batch: f64) -> Wait {
        let free = (1.0 - rho).max(1e-12);
        let w = self.prefill_work_ms;
        let residual_work = self.prefill_work_sq_ms2 - (1.0 - self.arrival_cv2) * w * w;
        let pf_mean = lam * residual_work.max(0.0) / (2.0 * free);
        // The probability of waiting moves with the mean (bursts make most arrivals wait,
        // evenly spaced ones fewer), the conditional wait keeps its M/G/1 size until the
        // probability reaches 1.
        let pf_poisson_mean = lam * self.prefill_work_sq_ms2 / (2.0 * free);
        let pf_prob = if pf_poisson_mean > 0.0 {
            (lam * w * pf_mean / pf_poisson_mean).min(1.0)
        } else {
            (lam * w).min(1.0)
        };
        let holding_ms = self.mean_output_tokens * step_ms;
        let (slot_prob, slot_mean) = if batch >= self.slots {
            (1.0, f64::INFINITY)
        } else {
            let p = erlang_c(self.slots, batch);
            let factor = (self.arrival_cv2 + self.output_cv2) / 2.0;
            let mean = p * holding_ms / (self.slots - batch) * factor;
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

/// Decode steps per request up to which its TPOT sums the exact pmf of prefill jumps (few
/// steps: few, large jumps, a lumpy distribution). Longer outputs collect many small jumps and
/// use the normal-power approximation with the exact mean, variance and skewness. Chosen by
/// output length only, so a prediction stays monotone in the rate.
const MAX_EXACT_STEPS: f64 = 128.0;
/// Longest exact pmf kept per output point.
const MAX_PMF_TERMS: usize = 2048;

/// The number of prefill jumps in a request's decode window, per output point.
#[derive(Debug, Clone, Copy)]
enum Jumps {
    /// `pmf[start..start + len]` holds `(P(N = n), P(N ≤ n))` for `n = 0..len`.
    Exact { start: usize, len: usize },
    /// Many jumps: TPOT by the normal-power approximation about the point's mean.
    Approx { sd_ms: f64, skew: f64 },
}

/// One output length's TPOT distribution.
#[derive(Debug, Clone, Copy)]
struct TpotPoint {
    weight: f64,
    /// Decode part of a step at the mean batch.
    base_ms: f64,
    /// What one prefill jump adds to this request's TPOT (`s/k`).
    jump_per_token_ms: f64,
    mean_ms: f64,
    jumps: Jumps,
}

/// TPOT over requests: a mixture over output lengths.
#[derive(Debug, Clone)]
struct TpotDist {
    points: Vec<TpotPoint>,
    pmf: Vec<(f64, f64)>,
    /// Standard deviation of the batch term `Y`.
    sigma_ms: f64,
    /// `Y` never exceeds this (the batch is capped at the slot count).
    y_cap_ms: f64,
    /// Quantiles are at least this (the idle step time with non-Poisson arrivals, else 0).
    floor_ms: f64,
}

impl TpotDist {
    fn mean(&self) -> f64 {
        self.points.iter().map(|p| p.weight * p.mean_ms).sum()
    }

    /// `P(Y ≤ y)` for the batch term.
    fn batch_cdf(&self, y: f64) -> f64 {
        if y >= self.y_cap_ms {
            1.0
        } else if self.sigma_ms > 0.0 {
            normal_cdf(y / self.sigma_ms)
        } else if y >= 0.0 {
            1.0
        } else {
            0.0
        }
    }

    fn point_cdf(&self, p: &TpotPoint, t: f64) -> f64 {
        match p.jumps {
            Jumps::Approx { sd_ms, skew } => {
                if sd_ms > 0.0 {
                    normal_power_cdf((t - p.mean_ms) / sd_ms, skew)
                } else if t >= p.mean_ms {
                    1.0
                } else {
                    0.0
                }
            }
            Jumps::Exact { start, len } => {
                let pmf = &self.pmf[start..start + len];
                let x = t - p.base_ms;
                if p.jump_per_token_ms <= 0.0 || len == 1 {
                    return pmf[0].1 * self.batch_cdf(x);
                }
                // Jump counts whose batch term is certainly below / above the window where
                // the normal CDF is neither 0 nor 1 (6.5 σ: below 5e-11).
                let y_hi = (6.5 * self.sigma_ms).min(self.y_cap_ms);
                let y_lo = -6.5 * self.sigma_ms;
                let full = ((x - y_hi) / p.jump_per_token_ms).floor();
                let last = ((x - y_lo) / p.jump_per_token_ms).floor();
                if last < 0.0 {
                    return 0.0;
                }
                let last = (last as usize).min(len - 1);
                let (mut sum, first) = if full >= 0.0 {
                    let f = (full as usize).min(len - 1);
                    (pmf[f].1, f + 1)
                } else {
                    (0.0, 0)
                };
                for (n, &(pn, _)) in pmf.iter().enumerate().take(last + 1).skip(first) {
                    sum += pn * self.batch_cdf(x - p.jump_per_token_ms * n as f64);
                }
                sum
            }
        }
    }

    fn cdf(&self, t: f64) -> f64 {
        self.points
            .iter()
            .map(|p| p.weight * self.point_cdf(p, t))
            .sum()
    }

    /// Quantile `q` of the mixture: the smallest `t` (to 1e-7 relative) with CDF ≥ `q`.
    fn quantile(&self, q: f64) -> f64 {
        let spread = 9.0 * self.sigma_ms;
        let mut lo = f64::INFINITY;
        let mut hi: f64 = 0.0;
        for p in &self.points {
            lo = lo.min(p.base_ms - spread);
            let top = match p.jumps {
                Jumps::Approx { sd_ms, skew } => p.mean_ms + (9.0 + 14.0 * skew) * sd_ms,
                Jumps::Exact { len, .. } => {
                    p.base_ms + p.jump_per_token_ms * len as f64 + spread.min(self.y_cap_ms)
                }
            };
            hi = hi.max(top);
        }
        lo = lo.max(0.0);
        let mut f_lo = self.cdf(lo) - q;
        if f_lo >= 0.0 {
            return lo.max(self.floor_ms);
        }
        let mut f_hi = self.cdf(hi) - q;
        while f_hi < 0.0 {
            hi *= 2.0;
            f_hi = self.cdf(hi) - q;
        }
        // Illinois (regula falsi with halving of the stale end's value): converges in about
        // ten CDF evaluations where bisection takes thirty; the bracket always holds the root.
        let mut side = 0i8;
        for _ in 0..60 {
            if hi - lo <= 1e-7 * hi.abs().max(1e-3) {
                break;
            }
            let mut mid = hi - f_hi * (hi - lo) / (f_hi - f_lo);
            if !(mid > lo && mid < hi) {
                mid = 0.5 * (lo + hi);
            }
            let f_mid = self.cdf(mid) - q;
            if f_mid < 0.0 {
                lo = mid;
                f_lo = f_mid;
                if side == -1 {
                    f_hi *= 0.5;
                }
                side = -1;
            } else {
                hi = mid;
                f_hi = f_mid;
                if side == 1 {
                    f_lo *= 0.5;
                }
                side = 1;
            }
        }
        hi.max(self.floor_ms)
    }
}

/// Appends the generalized-Poisson pmf `P(N = n) = θ(θ + nη)^{n−1} e^{−θ−nη} / n!` with
/// its running CDF, until the CDF is within 1e-12 of 1. Returns false (and appends nothing)
/// if that takes more than [`MAX_PMF_TERMS`] terms.
fn push_generalized_poisson(pmf: &mut Vec<(f64, f64)>, theta: f64, eta: f64) -> bool {
    let start = pmf.len();
    let ln_theta = theta.ln();
    let mut ln_fact = 0.0;
    let mut cum = 0.0;
    for n in 0..MAX_PMF_TERMS {
        let nf = n as f64;
        let ln_p = if n == 0 {
            -theta
        } else {
            ln_fact += nf.ln();
            ln_theta + (nf - 1.0) * (theta + nf * eta).ln() - theta - nf * eta - ln_fact
        };
        let p = ln_p.exp();
        cum += p;
        pmf.push((p, cum.min(1.0)));
        if cum >= 1.0 - 1e-12 {
            return true;
        }
    }
    pmf.truncate(start);
    false
}

/// `(decode steps after the first token, probability)` for the output points that have a
/// TPOT (2 or more tokens); if none has, every point counts with at least one step.
fn tpot_steps(o: &TokenDist) -> Vec<(f64, f64)> {
    let with: Vec<(f64, f64)> = o
        .points()
        .iter()
        .filter(|p| p.0 >= 2.0)
        .map(|&(t, w)| (t - 1.0, w))
        .collect();
    let total: f64 = with.iter().map(|p| p.1).sum();
    if with.is_empty() || total <= 0.0 {
        return o
            .points()
            .iter()
            .map(|&(t, w)| ((t - 1.0).max(1.0), w))
            .collect();
    }
    let with: Vec<(f64, f64)> = with.into_iter().map(|(k, w)| (k, w / total)).collect();
    // TPOT varies smoothly with the output length: 16 bins keep the mixture cheap to invert.
    if with.len() > MAX_TPOT_POINTS {
        merge_bins(&with, MAX_TPOT_POINTS)
    } else {
        with
    }
}

/// Output-length points the TPOT mixture keeps (more are merged into quantile bins).
const MAX_TPOT_POINTS: usize = 16;

/// CDF of a standardised variable with skewness `skew` by the normal-power approximation
/// (quantile `z + skew/6·(z² − 1)`, inverted); monotone, and exact normal at `skew = 0`.
fn normal_power_cdf(z: f64, skew: f64) -> f64 {
    if skew <= 1e-9 {
        return normal_cdf(z);
    }
    let a = 3.0 / skew;
    let r = a * a + 2.0 * a * z + 1.0;
    if r <= 0.0 {
        return 0.0;
    }
    normal_cdf(r.sqrt() - a)
}

/// Standard normal CDF via the complementary error function (Numerical Recipes `erfcc`,
/// relative error below 1.2e-7).
fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

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
