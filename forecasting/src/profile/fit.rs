//! Fitting profile curves to measurements (pure: observations in, curves and errors out).
//!
//! Where to start: [`fit_prefill`] and [`fit_decode`]. Both are non-negative linear least
//! squares (every coefficient is a time, so a negative one is a fitting artefact and is pinned
//! at zero) with one pass of outlier rejection, and report MAPE and R² per curve in a
//! [`CurveFit`]. [`derive_by_throughput_ratio`] scales a fitted profile to another GPU type
//! when only throughput is known for it.
use serde::{Deserialize, Serialize};

use super::{DecodeCurve, PrefillCurve, Profile};

/// Errors fitting a curve.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum FitError {
    /// Fewer usable observations than coefficients.
    #[error("fitting {curve}: expected at least {needed} observations, got {got}")]
    TooFewPoints {
        /// Curve being fitted.
        curve: &'static str,
        /// Observations needed.
        needed: usize,
        /// Observations given (after dropping non-finite ones).
        got: usize,
    },
    /// The observations do not pin the coefficients down (e.g. all at one prompt length).
    #[error("fitting {curve}: observations do not vary enough to fit {coefficients}")]
    Degenerate {
        /// Curve being fitted.
        curve: &'static str,
        /// Coefficients that could not be separated.
        coefficients: &'static str,
    },
    /// A throughput ratio that is not a positive finite number.
    #[error("expected a throughput ratio > 0, got {0}")]
    BadRatio(f64),
}

/// Quality of one fitted curve, stored in the profile's provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurveFit {
    /// `prefill` or `decode`.
    pub curve: String,
    /// Observations the curve was fitted to.
    pub points: usize,
    /// Observations dropped as outliers (relative residual far above the median).
    pub excluded: usize,
    /// Mean absolute percentage error over the fitted observations.
    pub mape_pct: f64,
    /// Coefficient of determination over the fitted observations.
    pub r2: f64,
}

/// One measured prefill: `batch` prompts of `prompt_tokens` tokens took `time_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrefillObs {
    /// Prompts prefilled together.
    pub batch: f64,
    /// Tokens per prompt.
    pub prompt_tokens: f64,
    /// Measured time (TTFT for a single request).
    pub time_ms: f64,
}

/// One measured decode iteration time.
///
/// Under load, prompts of arriving requests are mixed into decode steps (chunked prefill), so
/// a measured time per output token also contains their work: `prefills_per_step` prompts of
/// `prompt_tokens` tokens per step. Isolated measurements set `prefills_per_step` to 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeObs {
    /// Sequences decoded together.
    pub batch: f64,
    /// Context tokens held in the KV cache by the batch.
    pub kv_tokens: f64,
    /// Prompts mixed into each step on average (arrival rate × step time).
    pub prefills_per_step: f64,
    /// Tokens of each mixed-in prompt.
    pub prompt_tokens: f64,
    /// Measured time per step (time per output token).
    pub step_ms: f64,
}

/// Fits `time = base + per_token·batch·P + per_token_sq·batch·P²`.
///
/// # Errors
/// [`FitError::TooFewPoints`] with fewer than 3 finite observations,
/// [`FitError::Degenerate`] if prompt lengths do not vary.
pub fn fit_prefill(obs: &[PrefillObs]) -> Result<(PrefillCurve, CurveFit), FitError> {
    let rows: Vec<Row> = obs
        .iter()
        .filter(|o| o.batch.is_finite() && o.prompt_tokens.is_finite() && o.time_ms.is_finite())
        .map(|o| {
            let tokens = o.batch * o.prompt_tokens;
            (vec![1.0, tokens, tokens * o.prompt_tokens], o.time_ms)
        })
        .collect();
    let (coef, fit) = robust_fit("prefill", "per_token_ms and base_ms", &rows)?;
    Ok((
        PrefillCurve {
            base_ms: coef[0],
            per_token_ms: coef[1],
            per_token_sq_ms: coef[2],
        },
        fit,
    ))
}

/// Fits `step = base + per_seq·batch + per_kv_token·kv + κ·prefills_per_step·prefill.work(P)`,
/// with `prefill` fitted first. `κ` (the mixed-prefill factor) is fitted when some
/// observations have prompts mixed in (measurements under load), else it is 1.
///
/// # Errors
/// [`FitError::TooFewPoints`] with fewer observations than coefficients,
/// [`FitError::Degenerate`] if batch size and KV tokens do not vary independently.
pub fn fit_decode(
    obs: &[DecodeObs],
    prefill: &PrefillCurve,
) -> Result<(DecodeCurve, CurveFit), FitError> {
    fit_decode_padded(obs, prefill, &[])
}

/// [`fit_decode`] for an engine that pads decode batches to CUDA-graph sizes
/// (`DecodeCurve::cuda_graph_batch_sizes`): the `per_seq` regressor is the padded batch, the
/// KV term stays with the real batch (attention reads only real sequences' context), and
/// the result carries the sizes so the latency model pads the same way.
///
/// An observation's batch is taken as steady (alternating between its floor and ceiling, the
/// latency model's batch at arrival `c_a²` = 0): isolated measurements run whole batches, and
/// a mean batch from Little's law at evenly spaced arrivals (GuideLLM's `constant` strategy)
/// varies only that much.
///
/// # Errors
/// As [`fit_decode`].
pub fn fit_decode_padded(
    obs: &[DecodeObs],
    prefill: &PrefillCurve,
    cuda_graph_batch_sizes: &[u32],
) -> Result<(DecodeCurve, CurveFit), FitError> {
    let padding = DecodeCurve {
        base_ms: 0.0,
        per_seq_ms: 0.0,
        per_kv_token_ms: 0.0,
        mixed_prefill_factor: 1.0,
        cuda_graph_batch_sizes: cuda_graph_batch_sizes.to_vec(),
    };
    let finite: Vec<&DecodeObs> = obs
        .iter()
        .filter(|o| {
            o.batch.is_finite()
                && o.kv_tokens.is_finite()
                && o.step_ms.is_finite()
                && o.prefills_per_step.is_finite()
        })
        .collect();
    let mixed = |o: &DecodeObs| o.prefills_per_step * prefill.work_ms(o.prompt_tokens);
    let under_load = finite.iter().any(|o| mixed(o) > 0.0);
    let rows: Vec<Row> = finite
        .iter()
        .map(|o| {
            let batch = padding.expected_padded_batch(o.batch, 0.0);
            if under_load {
                (vec![1.0, batch, o.kv_tokens, mixed(o)], o.step_ms)
            } else {
                (vec![1.0, batch, o.kv_tokens], o.step_ms)
            }
        })
        .collect();
    let (coef, fit) = robust_fit("decode", "per_seq_ms and per_kv_token_ms", &rows)?;
    Ok((
        DecodeCurve {
            base_ms: coef[0],
            per_seq_ms: coef[1],
            per_kv_token_ms: coef[2],
            mixed_prefill_factor: coef.get(3).map_or(1.0, |k| k.min(1.0)),
            cuda_graph_batch_sizes: cuda_graph_batch_sizes.to_vec(),
        },
        fit,
    ))
}

/// Scales `base` to a GPU type for which only throughput relative to `base`'s GPU is known.
///
/// Assumption (stated in the result's provenance): every time coefficient scales by
/// `1 / throughput_ratio`, i.e. the new GPU is uniformly faster or slower in prefill and
/// decode alike. KV capacity and max batch are kept unless `kv_capacity_tokens` is given.
///
/// # Errors
/// [`FitError::BadRatio`] if `throughput_ratio` is not a positive finite number.
pub fn derive_by_throughput_ratio(
    base: &Profile,
    gpu: &str,
    throughput_ratio: f64,
    kv_capacity_tokens: Option<u64>,
    evidence: &str,
) -> Result<Profile, FitError> {
    if !(throughput_ratio.is_finite() && throughput_ratio > 0.0) {
        return Err(FitError::BadRatio(throughput_ratio));
    }
    let s = 1.0 / throughput_ratio;
    let mut p = base.clone();
    p.gpu = gpu.to_string();
    p.prefill.base_ms *= s;
    p.prefill.per_token_ms *= s;
    p.prefill.per_token_sq_ms *= s;
    p.decode.base_ms *= s;
    p.decode.per_seq_ms *= s;
    p.decode.per_kv_token_ms *= s;
    if let Some(kv) = kv_capacity_tokens {
        p.limits.kv_capacity_tokens = kv;
    }
    p.provenance.method = "derive".into();
    p.provenance.fit.clear();
    p.provenance.assumptions.push(format!(
        "derived from the {} profile ({}) by a measured throughput ratio {throughput_ratio:.4} \
         ({evidence}); all prefill and decode time coefficients scaled by 1/{throughput_ratio:.4}; \
         {} kept from the base profile",
        base.gpu,
        base.provenance.source,
        if kv_capacity_tokens.is_some() {
            "max_batch"
        } else {
            "kv_capacity_tokens and max_batch"
        }
    ));
    Ok(p)
}

/// A design row: regressors and the measured value.
type Row = (Vec<f64>, f64);

/// Least squares on relative errors (what MAPE measures: a 10 ms prefill matters as much as
/// a 10 s one) with coefficients pinned at >= 0, started robustly so that glitches (such as a
/// truncated run) are excluded instead of bending the curve. Returns the coefficients and the
/// fit report over the inliers.
fn robust_fit(
    curve: &'static str,
    coefficients: &'static str,
    rows: &[Row],
) -> Result<(Vec<f64>, CurveFit), FitError> {
    let k = rows.first().map_or(3, |r| r.0.len());
    let usable: Vec<(Vec<f64>, f64)> = rows
        .iter()
        .filter(|r| r.1 > 0.0)
        .map(|r| (r.0.clone(), r.1))
        .collect();
    if usable.len() < k {
        return Err(FitError::TooFewPoints {
            curve,
            needed: k,
            got: usable.len(),
        });
    }
    // Least median of squares on elemental subsets gives a start no outlier can drag (plain
    // least squares lets one bad run bend the curve so far that it hides itself); rows within
    // a few median errors of it are the inliers, refitted by least squares.
    let start = lmeds_start(&usable)
        .or_else(|| nnls(&relative(&usable)))
        .ok_or(FitError::Degenerate {
            curve,
            coefficients,
        })?;
    let rel_err = |coef: &[f64], x: &[f64], y: f64| ((dot(x, coef) - y) / y).abs();
    let mut errs: Vec<f64> = usable.iter().map(|(x, y)| rel_err(&start, x, *y)).collect();
    errs.sort_by(f64::total_cmp);
    let threshold = (3.0 * errs[errs.len() / 2]).max(0.25);
    let mut inlier: Vec<bool> = rows
        .iter()
        .map(|(x, y)| *y > 0.0 && rel_err(&start, x, *y) <= threshold)
        .collect();
    if inlier.iter().filter(|b| **b).count() <= k {
        inlier = rows.iter().map(|r| r.1 > 0.0).collect();
    }
    let used: Vec<(Vec<f64>, f64)> = rows
        .iter()
        .zip(&inlier)
        .filter(|(_, keep)| **keep)
        .map(|(r, _)| (r.0.clone(), r.1))
        .collect();
    let coef = nnls(&relative(&used)).ok_or(FitError::Degenerate {
        curve,
        coefficients,
    })?;
    let pairs: Vec<(f64, f64)> = rows
        .iter()
        .zip(&inlier)
        .filter(|(_, keep)| **keep)
        .map(|((x, y), _)| (dot(x, &coef), *y))
        .collect();
    let (mape_pct, r2) = errors(&pairs);
    Ok((
        coef,
        CurveFit {
            curve: curve.to_string(),
            points: pairs.len(),
            excluded: rows.len() - pairs.len(),
            mape_pct,
            r2,
        },
    ))
}

/// Least-median-of-squares start: exact fits through triples of distinct configurations
/// (deterministically thinned to at most ~4000), keeping the one with the smallest median
/// relative residual over all rows. `None` unless rows have 3 columns.
fn lmeds_start(rows: &[(Vec<f64>, f64)]) -> Option<Vec<f64>> {
    if rows.first()?.0.len() != 3 {
        return None;
    }
    let mut distinct: Vec<&(Vec<f64>, f64)> = Vec::new();
    for r in rows {
        if !distinct.iter().any(|d| d.0 == r.0) {
            distinct.push(r);
        }
    }
    let n = distinct.len();
    if n < 3 {
        return None;
    }
    let total = n * (n - 1) * (n - 2) / 6;
    let stride = total.div_ceil(4000).max(1);
    let mut best: Option<(f64, Vec<f64>)> = None;
    let mut idx = 0usize;
    let mut errs = vec![0.0; rows.len()];
    for i in 0..n {
        for j in i + 1..n {
            for l in j + 1..n {
                idx += 1;
                if !idx.is_multiple_of(stride) {
                    continue;
                }
                let subset: Vec<(Vec<f64>, f64)> = [distinct[i], distinct[j], distinct[l]]
                    .iter()
                    .map(|r| (*r).clone())
                    .collect();
                let Some(c) = solve_normal(&relative(&subset), &[0, 1, 2]) else {
                    continue;
                };
                for (e, (x, y)) in errs.iter_mut().zip(rows) {
                    *e = ((dot(x, &c) - y) / y).abs();
                }
                errs.sort_by(f64::total_cmp);
                let med = errs[errs.len() / 2];
                if best.as_ref().is_none_or(|b| med < b.0) {
                    best = Some((med, c));
                }
            }
        }
    }
    best.map(|b| b.1)
}

/// Rows divided by their target: least squares on them minimises squared relative error.
fn relative(rows: &[(Vec<f64>, f64)]) -> Vec<(Vec<f64>, f64)> {
    rows.iter()
        .map(|(x, y)| (x.iter().map(|v| v / y).collect(), 1.0))
        .collect()
}

/// MAPE (%) and R² of `(predicted, measured)` pairs.
fn errors(pairs: &[(f64, f64)]) -> (f64, f64) {
    if pairs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = pairs.len() as f64;
    let mean = pairs.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut ape, mut ss_res, mut ss_tot) = (0.0, 0.0, 0.0);
    for &(pred, y) in pairs {
        ape += ((pred - y) / y.abs().max(1e-9)).abs();
        ss_res += (pred - y).powi(2);
        ss_tot += (y - mean).powi(2);
    }
    let r2 = if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        f64::NAN
    };
    (100.0 * ape / n, r2)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Non-negative least squares by an active set: solve on the free columns, pin the most
/// negative coefficient at zero, repeat. Exact for the 3-column problems here.
fn nnls(rows: &[(Vec<f64>, f64)]) -> Option<Vec<f64>> {
    let k = rows.first()?.0.len();
    let mut free: Vec<bool> = vec![true; k];
    loop {
        let cols: Vec<usize> = (0..k).filter(|&j| free[j]).collect();
        if cols.is_empty() {
            return Some(vec![0.0; k]);
        }
        let sol = solve_normal(rows, &cols)?;
        let mut coef = vec![0.0; k];
        for (c, v) in cols.iter().zip(&sol) {
            coef[*c] = *v;
        }
        match cols
            .iter()
            .zip(&sol)
            .filter(|(_, v)| **v < 0.0)
            .min_by(|a, b| a.1.total_cmp(b.1))
        {
            Some((c, _)) => free[*c] = false,
            None => return Some(coef),
        }
    }
}

/// Least squares on the columns `cols`, by normal equations with column scaling (the columns
/// span many orders of magnitude: 1, tokens, tokens²) and Gaussian elimination.
fn solve_normal(rows: &[(Vec<f64>, f64)], cols: &[usize]) -> Option<Vec<f64>> {
    let m = cols.len();
    let scale: Vec<f64> = cols
        .iter()
        .map(|&c| {
            rows.iter()
                .map(|(x, _)| x[c].abs())
                .fold(0.0, f64::max)
                .max(1e-300)
        })
        .collect();
    let mut a = vec![vec![0.0; m + 1]; m];
    for (x, y) in rows {
        let xs: Vec<f64> = cols.iter().zip(&scale).map(|(&c, s)| x[c] / s).collect();
        for i in 0..m {
            for j in 0..m {
                a[i][j] += xs[i] * xs[j];
            }
            a[i][m] += xs[i] * y;
        }
    }
    for i in 0..m {
        let pivot = (i..m).max_by(|&p, &q| a[p][i].abs().total_cmp(&a[q][i].abs()))?;
        a.swap(i, pivot);
        if a[i][i].abs() < 1e-10 {
            return None;
        }
        for r in 0..m {
            if r != i {
                let f = a[r][i] / a[i][i];
                let pivot_row = a[i].clone();
                for (cell, p) in a[r].iter_mut().zip(&pivot_row).skip(i) {
                    *cell -= f * p;
                }
            }
        }
    }
    Some((0..m).map(|i| a[i][m] / a[i][i] / scale[i]).collect())
}
