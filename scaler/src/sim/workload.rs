//! Workloads: the requests a simulation replays, from any of the three trace formats.
//!
//! Where to start: [`from_records`] (Azure and Mooncake request traces: arrivals, lengths
//! and prefix hash ids as recorded), [`from_servegen`] (ServeGen per-client windows: arrivals
//! generated from each window's own inter-arrival distribution, lengths drawn from a
//! [`TokenLengths`]), [`poisson`] (steady synthetic load, used by the cross-check).
//!
//! Options shared by all ([`WorkloadOptions`]):
//! - `start_s`, `duration_s`: the slice of the trace to replay, in trace time;
//! - `speed`: time compression; arrival gaps are divided by it (2 = the slice plays in half
//!   the time at twice the rate);
//! - `scale`: rate multiplier at unchanged time. For request traces each request is kept
//!   `⌊scale⌋` times plus once more with probability `scale − ⌊scale⌋`; extra copies arrive
//!   uniformly between the original and the next arrival (so bursts keep their shape).
//!   For ServeGen the window rates are multiplied.
//!
//! ServeGen arrivals: per client and 600 s window, a renewal process with the recorded
//! shape (`param1`) of the recorded distribution (Weibull or Gamma), its scale set so the
//! mean gap is `1 / rate`. The recorded scale (`param2`) is not used as is: for Weibull
//! windows its implied mean often disagrees with the recorded rate (the fit weights the
//! tail), and the rate is the quantity the windows are summed by. Windows with a rate but
//! no pattern use Gamma with shape `1/cv²` (exponential when `cv` is 0 or absent).
//!
//! Token lengths for ServeGen (the windows carry none): [`TokenLengths::default_for`] is a
//! log-normal with the configured mean prompt and output lengths and a coefficient of
//! variation of 1. Why: the ServeGen paper reports heavy-tailed input and output lengths
//! for these workloads, and matching the means the SLO pipeline is configured with keeps a
//! mix mismatch from confounding the comparison between policies.

use crate::trace::{ArrivalPattern, RequestRecord, ServeGenClient};

use super::random::{SimRng, ln_gamma};

/// One request to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct SimRequest {
    /// Index in the workload (0..n, arrival order).
    pub id: usize,
    /// Arrival, seconds from the start of the simulation.
    pub arrival_s: f64,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Output tokens.
    pub output_tokens: u32,
    /// Prefix block ids (512 tokens each), empty when the trace has none.
    pub hash_ids: Vec<u64>,
}

/// Slice, speed and rate of a replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkloadOptions {
    /// Start of the slice, seconds of trace time from the trace's first record.
    pub start_s: f64,
    /// Length of the slice in trace time (`None`: to the end).
    pub duration_s: Option<f64>,
    /// Time compression (> 0; 1 = real time).
    pub speed: f64,
    /// Rate multiplier (> 0; 1 = as recorded).
    pub scale: f64,
}

impl Default for WorkloadOptions {
    fn default() -> Self {
        Self {
            start_s: 0.0,
            duration_s: None,
            speed: 1.0,
            scale: 1.0,
        }
    }
}

/// Distribution of prompt and output lengths for traces that record none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TokenLengths {
    /// Every request the same.
    Fixed {
        /// Prompt tokens.
        prompt_tokens: u32,
        /// Output tokens.
        output_tokens: u32,
    },
    /// Independent log-normals with these means and coefficient of variation.
    LogNormal {
        /// Mean prompt tokens.
        prompt_mean: f64,
        /// Mean output tokens.
        output_mean: f64,
        /// Coefficient of variation of both.
        cv: f64,
    },
}

impl TokenLengths {
    /// The default: log-normal, CV 1, with the given means (see the module header for why).
    #[must_use]
    pub fn default_for(prompt_mean: f64, output_mean: f64) -> Self {
        Self::LogNormal {
            prompt_mean,
            output_mean,
            cv: 1.0,
        }
    }

    /// One (prompt, output) pair.
    pub fn draw(&self, rng: &mut SimRng) -> (u32, u32) {
        match *self {
            Self::Fixed {
                prompt_tokens,
                output_tokens,
            } => (prompt_tokens, output_tokens),
            Self::LogNormal {
                prompt_mean,
                output_mean,
                cv,
            } => {
                let p = rng.lognormal_mean_cv(prompt_mean, cv).round().max(1.0);
                let o = rng.lognormal_mean_cv(output_mean, cv).round().max(1.0);
                (
                    p.min(f64::from(u32::MAX)) as u32,
                    o.min(f64::from(u32::MAX)) as u32,
                )
            }
        }
    }
}

fn in_slice(t: f64, opts: &WorkloadOptions) -> bool {
    t >= opts.start_s && opts.duration_s.is_none_or(|d| t < opts.start_s + d)
}

fn finish(mut reqs: Vec<SimRequest>) -> Vec<SimRequest> {
    reqs.sort_by(|a, b| a.arrival_s.total_cmp(&b.arrival_s));
    for (i, r) in reqs.iter_mut().enumerate() {
        r.id = i;
    }
    reqs
}

/// Replays a request-level trace (Azure, Mooncake) with the slice, speed and scale given.
#[must_use]
pub fn from_records(
    records: &[RequestRecord],
    opts: &WorkloadOptions,
    rng: &mut SimRng,
) -> Vec<SimRequest> {
    let speed = opts.speed;
    let kept: Vec<&RequestRecord> = records
        .iter()
        .filter(|r| in_slice(r.arrival_s, opts))
        .collect();
    let mut out = Vec::with_capacity((kept.len() as f64 * opts.scale.max(1.0)) as usize);
    for (i, r) in kept.iter().enumerate() {
        let next = kept.get(i + 1).map_or(r.arrival_s, |n| n.arrival_s);
        let whole = opts.scale.floor() as u32;
        let copies = whole + u32::from(rng.uniform() < opts.scale - f64::from(whole));
        for c in 0..copies {
            let t = if c == 0 {
                r.arrival_s
            } else {
                r.arrival_s + rng.uniform() * (next - r.arrival_s)
            };
            out.push(SimRequest {
                id: 0,
                arrival_s: (t - opts.start_s) / speed,
                prompt_tokens: r.prompt_tokens,
                output_tokens: r.output_tokens,
                hash_ids: r.hash_ids.clone(),
            });
        }
    }
    finish(out)
}

/// Generates arrivals from ServeGen client windows (see the module header), lengths from
/// `tokens`. Window starts are taken relative to the earliest window of any client.
#[must_use]
pub fn from_servegen(
    clients: &[ServeGenClient],
    window_s: f64,
    opts: &WorkloadOptions,
    tokens: &TokenLengths,
    rng: &mut SimRng,
) -> Vec<SimRequest> {
    let t0 = clients
        .iter()
        .flat_map(|c| c.windows.iter().map(|w| w.start_s))
        .fold(f64::INFINITY, f64::min);
    let mut out = Vec::new();
    for c in clients {
        for w in &c.windows {
            let rate = w.rate_per_s * opts.scale;
            if rate <= 0.0 {
                continue;
            }
            let start = w.start_s - t0;
            let end = start + window_s;
            let slice_end = opts.duration_s.map_or(f64::INFINITY, |d| opts.start_s + d);
            if end <= opts.start_s || start >= slice_end {
                continue;
            }
            let mean_gap = 1.0 / rate;
            let mut draw: Box<dyn FnMut(&mut SimRng) -> f64> = match w.pattern {
                ArrivalPattern::Weibull { shape, .. } => {
                    let scale = mean_gap / ln_gamma(1.0 + 1.0 / shape).exp();
                    Box::new(move |r: &mut SimRng| r.weibull(shape, scale))
                }
                ArrivalPattern::Gamma { shape, .. } => {
                    Box::new(move |r: &mut SimRng| r.gamma(shape, mean_gap / shape))
                }
                ArrivalPattern::None => {
                    let shape = if w.cv > 0.0 { 1.0 / (w.cv * w.cv) } else { 1.0 };
                    Box::new(move |r: &mut SimRng| r.gamma(shape, mean_gap / shape))
                }
            };
            // Start part-way into a gap, so windows do not all fire at their first instant.
            let mut t = start + rng.uniform() * draw(rng);
            while t < end {
                if in_slice(t, opts) {
                    let (p, o) = tokens.draw(rng);
                    out.push(SimRequest {
                        id: 0,
                        arrival_s: (t - opts.start_s) / opts.speed,
                        prompt_tokens: p,
                        output_tokens: o,
                        hash_ids: Vec::new(),
                    });
                }
                t += draw(rng);
            }
        }
    }
    finish(out)
}

/// Poisson arrivals at `rate_per_s` for `duration_s`, lengths from `tokens`.
#[must_use]
pub fn poisson(
    rate_per_s: f64,
    duration_s: f64,
    tokens: &TokenLengths,
    rng: &mut SimRng,
) -> Vec<SimRequest> {
    let mean_s = 1.0 / rate_per_s;
    let first = rng.exponential(mean_s);
    arrivals_from_gaps(first, duration_s, tokens, rng, |rng| {
        rng.exponential(mean_s)
    })
}

/// Renewal arrivals at `rate_per_s` whose inter-arrival times have squared coefficient of
/// variation `cv2`: evenly spaced for 0 (GuideLLM's `constant` strategy; first arrival at a
/// random phase), [`poisson`] for 1 (the same draws), gamma-distributed otherwise (shape
/// `1/cv2`). For checking the latency model's arrival-variability input against the simulator.
#[must_use]
pub fn renewal(
    rate_per_s: f64,
    cv2: f64,
    duration_s: f64,
    tokens: &TokenLengths,
    rng: &mut SimRng,
) -> Vec<SimRequest> {
    if cv2 == 1.0 {
        return poisson(rate_per_s, duration_s, tokens, rng);
    }
    let mean_s = 1.0 / rate_per_s;
    let gap = |rng: &mut SimRng| {
        if cv2 <= 0.0 {
            mean_s
        } else {
            rng.gamma(1.0 / cv2, cv2 * mean_s)
        }
    };
    let first = if cv2 <= 0.0 {
        rng.uniform() * mean_s
    } else {
        gap(rng)
    };
    arrivals_from_gaps(first, duration_s, tokens, rng, gap)
}

/// Requests arriving at `first` and then after each `gap` until `duration_s`, token lengths
/// drawn from `tokens` (one draw per request, after its arrival time).
fn arrivals_from_gaps(
    first_s: f64,
    duration_s: f64,
    tokens: &TokenLengths,
    rng: &mut SimRng,
    mut gap: impl FnMut(&mut SimRng) -> f64,
) -> Vec<SimRequest> {
    let mut out = Vec::new();
    let mut t = first_s;
    while t < duration_s {
        let (p, o) = tokens.draw(rng);
        out.push(SimRequest {
            id: out.len(),
            arrival_s: t,
            prompt_tokens: p,
            output_tokens: o,
            hash_ids: Vec::new(),
        });
        t += gap(rng);
    }
    out
}

/// Highest request rate over any `bin_s`-long bin from 0 (req/s), for sizing to the peak.
#[must_use]
pub fn peak_rate_per_s(requests: &[SimRequest], bin_s: f64) -> f64 {
    let mut counts: Vec<u32> = Vec::new();
    for r in requests {
        let b = (r.arrival_s / bin_s) as usize;
        if b >= counts.len() {
            counts.resize(b + 1, 0);
        }
        counts[b] += 1;
    }
    counts
        .iter()
        .copied()
        .max()
        .map_or(0.0, |c| f64::from(c) / bin_s)
}

/// Arrival rate per `bin_s` bin from time 0 (req/s), the last bin partial.
#[must_use]
pub fn rates_per_bin(requests: &[SimRequest], bin_s: f64) -> Vec<f64> {
    let mut counts: Vec<f64> = Vec::new();
    for r in requests {
        let b = (r.arrival_s / bin_s) as usize;
        if b >= counts.len() {
            counts.resize(b + 1, 0.0);
        }
        counts[b] += 1.0;
    }
    counts.iter().map(|c| c / bin_s).collect()
}

/// Mean prompt and output tokens.
#[must_use]
pub fn mean_lengths(requests: &[SimRequest]) -> (f64, f64) {
    let n = requests.len().max(1) as f64;
    let p: f64 = requests.iter().map(|r| f64::from(r.prompt_tokens)).sum();
    let o: f64 = requests.iter().map(|r| f64::from(r.output_tokens)).sum();
    (p / n, o / n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::ServeGenWindow;

    fn records(n: usize, gap_s: f64) -> Vec<RequestRecord> {
        (0..n)
            .map(|i| RequestRecord {
                arrival_s: i as f64 * gap_s,
                prompt_tokens: 100,
                output_tokens: 10,
                hash_ids: vec![i as u64],
            })
            .collect()
    }

    #[test]
    fn slice_speed_and_scale_change_times_and_counts() {
        let recs = records(1000, 1.0);
        let mut rng = SimRng::new(1);
        let opts = WorkloadOptions {
            start_s: 100.0,
            duration_s: Some(200.0),
            speed: 2.0,
            scale: 1.0,
        };
        let w = from_records(&recs, &opts, &mut rng);
        assert_eq!(w.len(), 200);
        assert_eq!(w[0].arrival_s, 0.0);
        assert!(
            (w[199].arrival_s - 99.5).abs() < 1e-9,
            "{}",
            w[199].arrival_s
        );
        assert_eq!(w[5].hash_ids, vec![105]);
        let scaled = from_records(
            &recs,
            &WorkloadOptions {
                scale: 2.5,
                ..WorkloadOptions::default()
            },
            &mut rng,
        );
        let n = scaled.len() as f64;
        assert!((2350.0..2650.0).contains(&n), "{n}");
        assert!(scaled.windows(2).all(|p| p[0].arrival_s <= p[1].arrival_s));
        assert!(scaled.iter().enumerate().all(|(i, r)| r.id == i));
    }

    #[test]
    fn servegen_windows_produce_their_recorded_rate_and_burstiness() {
        let clients = vec![ServeGenClient {
            client: "0".into(),
            windows: vec![
                ServeGenWindow {
                    start_s: 0.0,
                    rate_per_s: 5.0,
                    cv: 3.0,
                    pattern: ArrivalPattern::Weibull {
                        shape: 0.4,
                        scale: 0.01,
                    },
                },
                ServeGenWindow {
                    start_s: 600.0,
                    rate_per_s: 0.0,
                    cv: 0.0,
                    pattern: ArrivalPattern::None,
                },
                ServeGenWindow {
                    start_s: 1200.0,
                    rate_per_s: 2.0,
                    cv: 1.0,
                    pattern: ArrivalPattern::Gamma {
                        shape: 1.0,
                        scale: 0.5,
                    },
                },
            ],
        }];
        let tokens = TokenLengths::default_for(1000.0, 200.0);
        let mut counts = [0.0f64; 3];
        let mut gaps_cv = Vec::new();
        for seed in 0..20 {
            let w = from_servegen(
                &clients,
                600.0,
                &WorkloadOptions::default(),
                &tokens,
                &mut SimRng::new(seed),
            );
            for r in &w {
                counts[(r.arrival_s / 600.0) as usize] += 1.0;
            }
            let gaps: Vec<f64> = w
                .windows(2)
                .filter(|p| p[1].arrival_s < 600.0)
                .map(|p| p[1].arrival_s - p[0].arrival_s)
                .collect();
            let m = gaps.iter().sum::<f64>() / gaps.len() as f64;
            let v = gaps.iter().map(|g| (g - m).powi(2)).sum::<f64>() / gaps.len() as f64;
            gaps_cv.push(v.sqrt() / m);
        }
        let rate0 = counts[0] / 20.0 / 600.0;
        let rate2 = counts[2] / 20.0 / 600.0;
        assert!((rate0 - 5.0).abs() < 0.5, "{rate0}");
        assert_eq!(counts[1], 0.0);
        assert!((rate2 - 2.0).abs() < 0.1, "{rate2}");
        // Weibull shape 0.4 has CV ≈ 2.8: much burstier than Poisson (CV 1).
        let cv = gaps_cv.iter().sum::<f64>() / gaps_cv.len() as f64;
        assert!(cv > 1.8, "{cv}");
    }

    #[test]
    fn renewal_arrivals_have_the_requested_rate_and_gap_variability() {
        let tokens = TokenLengths::Fixed {
            prompt_tokens: 100,
            output_tokens: 10,
        };
        for cv2 in [0.0, 0.5, 1.0, 4.0] {
            let w = renewal(20.0, cv2, 1000.0, &tokens, &mut SimRng::new(5));
            let gaps: Vec<f64> = w
                .windows(2)
                .map(|p| p[1].arrival_s - p[0].arrival_s)
                .collect();
            let m = gaps.iter().sum::<f64>() / gaps.len() as f64;
            let v = gaps.iter().map(|g| (g - m).powi(2)).sum::<f64>() / gaps.len() as f64;
            assert!((m - 0.05).abs() < 0.05 * 0.05, "c_a² {cv2}: mean gap {m}");
            let got = v / (m * m);
            assert!(
                (got - cv2).abs() <= 0.1 * cv2.max(0.1),
                "c_a² {cv2}: measured {got}"
            );
            assert!(w.iter().enumerate().all(|(i, r)| r.id == i));
        }
    }

    #[test]
    fn lognormal_lengths_keep_the_configured_means() {
        let w = poisson(
            50.0,
            400.0,
            &TokenLengths::default_for(1000.0, 200.0),
            &mut SimRng::new(3),
        );
        let (p, o) = mean_lengths(&w);
        assert!(
            (p - 1000.0).abs() < 40.0 && (o - 200.0).abs() < 8.0,
            "{p} {o}"
        );
        assert!((w.len() as f64 - 20_000.0).abs() < 600.0);
        assert!(peak_rate_per_s(&w, 60.0) > 50.0);
    }
}
