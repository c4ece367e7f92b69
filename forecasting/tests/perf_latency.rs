//! Latency under load: behaviour the model must show (not its exact numbers).
use std::time::Instant;

use forecasting::latency::{LatencyError, LatencyModel, RequestMix, TokenDist, predict};
use forecasting::profile::Profile;

mod common;

use common::profile;

fn mix(p: f64, o: f64) -> RequestMix {
    RequestMix::fixed(p, o).expect("valid")
}

#[test]
fn idle_replica_gives_single_request_latency() {
    let prof = profile(400_000, 512);
    let idle = predict(&prof, &mix(1000.0, 200.0), 0.0, 1).expect("predicts");
    let single = prof.prefill.time_ms(1.0, 1000.0);
    for v in [idle.ttft_ms.p50, idle.ttft_ms.p90, idle.ttft_ms.p99] {
        assert!((v - single).abs() < 1e-3 * single, "{v} vs {single}");
    }
    assert!((idle.tpot_ms.p99 - prof.decode.base_ms).abs() < 1e-9);
    assert!(!idle.saturated && idle.utilization == 0.0);
}

#[test]
fn latency_grows_with_rate_and_percentiles_are_ordered() {
    let m = LatencyModel::new(&profile(400_000, 512), &mix(512.0, 256.0)).expect("model");
    let sat = m.saturation_rate_per_s();
    let mut prev = m.predict(0.0, 1).expect("predicts");
    for i in 1..100 {
        let p = m.predict(sat * f64::from(i) / 100.0, 1).expect("predicts");
        for (a, b) in [
            (prev.ttft_ms.p50, p.ttft_ms.p50),
            (prev.ttft_ms.p99, p.ttft_ms.p99),
            (prev.tpot_ms.p50, p.tpot_ms.p50),
            (prev.tpot_ms.p99, p.tpot_ms.p99),
            (prev.batch, p.batch),
        ] {
            assert!(b >= a - 1e-9, "not monotone at {i}%: {a} -> {b}");
        }
        assert!(p.ttft_ms.p50 <= p.ttft_ms.p90 && p.ttft_ms.p90 <= p.ttft_ms.p99);
        assert!(p.tpot_ms.p50 <= p.tpot_ms.p90 && p.tpot_ms.p90 <= p.tpot_ms.p99);
        prev = p;
    }
}

#[test]
fn continuous_batching_obeys_littles_law() {
    let m = LatencyModel::new(&profile(400_000, 512), &mix(512.0, 256.0)).expect("model");
    let rate = 0.6 * m.saturation_rate_per_s();
    let p = m.predict(rate, 1).expect("predicts");
    // Running batch = arrival rate × decode residence time (output tokens × step).
    let little = rate * 256.0 * p.step_ms / 1000.0;
    assert!(
        (p.batch / little - 1.0).abs() < 1e-9,
        "{} vs {little}",
        p.batch
    );
    // A bigger batch makes every step slower than a lone request's.
    assert!(p.tpot_ms.p50 > 1.5 * profile(400_000, 512).decode.base_ms);
}

#[test]
fn ttft_rises_sharply_near_saturation_and_is_unbounded_beyond() {
    let m = LatencyModel::new(&profile(400_000, 256), &mix(256.0, 256.0)).expect("model");
    let sat = m.saturation_rate_per_s();
    let half = m.predict(0.5 * sat, 1).expect("predicts");
    let near = m.predict(0.995 * sat, 1).expect("predicts");
    assert!(!near.saturated);
    assert!(
        near.ttft_ms.p99 > 3.0 * half.ttft_ms.p99,
        "{near:?} vs {half:?}"
    );
    let over = m.predict(1.01 * sat, 1).expect("predicts");
    assert!(over.saturated && over.utilization > 1.0);
    assert!(over.ttft_ms.p50.is_infinite());
    // TPOT stays finite: the running batch is capped at the limit.
    assert!(over.tpot_ms.p99.is_finite());
}

#[test]
fn smaller_kv_cache_saturates_earlier_and_queues_sooner() {
    let work = mix(2000.0, 1000.0);
    let big = LatencyModel::new(&profile(2_000_000, 1024), &work).expect("model");
    let small = LatencyModel::new(&profile(100_000, 1024), &work).expect("model");
    assert!(small.saturation_rate_per_s() < 0.8 * big.saturation_rate_per_s());
    let rate = 0.95 * small.saturation_rate_per_s();
    let (s, b) = (
        small.predict(rate, 1).expect("p"),
        big.predict(rate, 1).expect("p"),
    );
    assert!(s.ttft_ms.p99 > b.ttft_ms.p99, "{s:?} vs {b:?}");
}

#[test]
fn long_prompts_interfere_with_decode() {
    let prof = profile(2_000_000, 1024);
    let short = predict(&prof, &mix(100.0, 200.0), 5.0, 1).expect("p");
    let long = predict(&prof, &mix(4000.0, 200.0), 5.0, 1).expect("p");
    assert!(
        long.tpot_ms.p50 > short.tpot_ms.p50 * 1.1,
        "{long:?} vs {short:?}"
    );
}

#[test]
fn overlapping_prefill_slows_decode_less_but_compute_still_bounds() {
    let work = mix(4000.0, 64.0);
    let mut hidden = profile(2_000_000, 1024);
    hidden.decode.mixed_prefill_factor = 0.3;
    let full = profile(2_000_000, 1024);
    let (h, f) = (
        predict(&hidden, &work, 5.0, 1).expect("p"),
        predict(&full, &work, 5.0, 1).expect("p"),
    );
    assert!(h.tpot_ms.p50 < f.tpot_ms.p50, "{h:?} vs {f:?}");
    // Prefill-bound mix: saturation is the GPU's compute, whatever the overlap.
    let sat = |p: &Profile| {
        LatencyModel::new(p, &work)
            .expect("m")
            .saturation_rate_per_s()
    };
    // Each output token also pays its pass through the weights at the prompt-token cost.
    let work_ms = full.prefill.work_ms(4000.0) + 64.0 * (0.026 + 6.0e-5 * 4032.0 + 0.022);
    assert!((sat(&hidden) - 1000.0 / work_ms).abs() < 1e-9 * sat(&hidden));
    assert!(sat(&full) <= sat(&hidden));
}

/// Short prompts and outputs with room for a huge batch: the step's fixed floor is shared by
/// hundreds of sequences, so what bounds throughput is every token's compute. A profile whose
/// prompt tokens cost more saturates earlier even when decoding looks the same at low load.
#[test]
fn decode_heavy_mix_saturates_at_the_compute_bound_of_its_tokens() {
    let work = mix(64.0, 256.0);
    let cheap = profile(10_000_000, 100_000);
    let mut costly = cheap.clone();
    costly.prefill.per_token_ms *= 2.0;
    costly.prefill.per_token_sq_ms *= 2.0;
    let m = |p: &Profile| LatencyModel::new(p, &work).expect("model");
    for p in [&cheap, &costly] {
        let per_token = p.decode.per_seq_ms
            + p.decode.per_kv_token_ms * (64.0 + 128.0)
            + p.prefill.per_token_ms;
        let bound_per_s = 1000.0 / (p.prefill.work_ms(64.0) + 256.0 * per_token);
        let sat = m(p).saturation_rate_per_s();
        assert!(
            (sat / bound_per_s - 1.0).abs() < 1e-9,
            "{sat} vs {bound_per_s}"
        );
    }
    // Below the bound decode steps do not see the per-token compute (it hides under the
    // memory-bound floor): at low load TPOT differs only by the costlier mixed-in prompts.
    let low = 0.1 * m(&costly).saturation_rate_per_s();
    let (a, b) = (
        m(&cheap).predict(low, 1).expect("p"),
        m(&costly).predict(low, 1).expect("p"),
    );
    assert!(m(&costly).saturation_rate_per_s() < 0.9 * m(&cheap).saturation_rate_per_s());
    assert!(b.tpot_ms.p50 < 1.05 * a.tpot_ms.p50, "{b:?} vs {a:?}");
}

#[test]
fn replicas_split_the_load() {
    let prof = profile(400_000, 512);
    let work = mix(512.0, 256.0);
    let one = predict(&prof, &work, 10.0, 1).expect("p");
    let four = predict(&prof, &work, 40.0, 4).expect("p");
    assert_eq!(one, four);
    let more = predict(&prof, &work, 40.0, 8).expect("p");
    assert!(more.ttft_ms.p99 < four.ttft_ms.p99 && more.tpot_ms.p50 < four.tpot_ms.p50);
    assert_eq!(predict(&prof, &work, 1.0, 0), Err(LatencyError::NoReplicas));
    assert_eq!(
        predict(&prof, &work, -1.0, 1),
        Err(LatencyError::BadRate(-1.0))
    );
}

#[test]
fn prompt_spread_widens_the_ttft_tail() {
    let prof = profile(2_000_000, 1024);
    let constant = mix(1000.0, 200.0);
    let spread = RequestMix {
        prompt_tokens: TokenDist::from_weighted(&[(100.0, 0.5), (1900.0, 0.5)]).expect("d"),
        output_tokens: TokenDist::constant(200.0).expect("d"),
    };
    let c = predict(&prof, &constant, 2.0, 1).expect("p");
    let s = predict(&prof, &spread, 2.0, 1).expect("p");
    assert!(s.ttft_ms.p99 > c.ttft_ms.p99 && s.ttft_ms.p50 < c.ttft_ms.p99);
}

#[test]
fn distribution_file_format() {
    let d = TokenDist::parse("# prompt lengths\n100\n300 # a comment\n\n200\n").expect("samples");
    assert!((d.mean() - 200.0).abs() < 1e-12);
    let w = TokenDist::parse("100,3\n500 1\n").expect("weighted");
    assert!((w.mean() - 200.0).abs() < 1e-12);
    assert!(matches!(
        TokenDist::parse("100,1,2\n"),
        Err(LatencyError::BadLine { line: 1, .. })
    ));
    assert!(matches!(
        TokenDist::parse("abc\n"),
        Err(LatencyError::BadLine { .. })
    ));
    assert_eq!(
        TokenDist::parse("# nothing\n"),
        Err(LatencyError::EmptyDistribution)
    );
    assert!(matches!(
        TokenDist::parse("-5\n"),
        Err(LatencyError::BadValue { .. })
    ));
    // Many samples are binned, keeping the mean exactly.
    let samples: Vec<f64> = (0..10_000).map(|i| f64::from((i * 7919) % 4096)).collect();
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    let binned = TokenDist::from_samples(&samples).expect("d");
    assert!(binned.points().len() <= forecasting::latency::MAX_DIST_POINTS);
    assert!((binned.mean() / mean - 1.0).abs() < 1e-9);
}

#[test]
fn a_prediction_costs_microseconds() {
    let samples: Vec<f64> = (0..5000)
        .map(|i| 50.0 + f64::from((i * 37) % 3000))
        .collect();
    let work = RequestMix {
        prompt_tokens: TokenDist::from_samples(&samples).expect("d"),
        output_tokens: TokenDist::from_samples(&samples).expect("d"),
    };
    let m = LatencyModel::new(&profile(400_000, 512), &work).expect("model");
    let sat = m.saturation_rate_per_s();
    let n = 2000;
    let start = Instant::now();
    let mut acc = 0.0;
    for i in 0..n {
        acc += m
            .predict(sat * f64::from(i) / f64::from(n), 1)
            .expect("p")
            .ttft_ms
            .p99;
    }
    let per_call = start.elapsed() / n;
    assert!(acc.is_finite());
    // Debug build, shared 2-core machine: generous bound; release figures in BENCHMARKS.md.
    assert!(per_call.as_micros() < 5000, "{per_call:?} per prediction");
}

#[test]
fn an_invalid_profile_built_in_code_is_rejected() {
    let mut bad = profile(400_000, 512);
    bad.decode.base_ms = 0.0;
    assert!(matches!(
        LatencyModel::new(&bad, &mix(100.0, 100.0)),
        Err(LatencyError::Profile(_))
    ));
}

#[test]
fn huge_slot_counts_stay_cheap_and_consistent() {
    // Millions of slots: the KV limit never binds, the GPU's compute does.
    let big = profile(u64::MAX / 4, u32::MAX);
    let m = LatencyModel::new(&big, &mix(64.0, 64.0)).expect("model");
    let sat = m.saturation_rate_per_s();
    let work_ms = big.prefill.work_ms(64.0) + 64.0 * (0.026 + 6.0e-5 * 96.0 + 0.022);
    assert!((sat - 1000.0 / work_ms).abs() < 1e-9 * sat);
    let start = Instant::now();
    let p = m.predict(0.9 * sat, 1).expect("p");
    assert!(start.elapsed().as_millis() < 100, "{:?}", start.elapsed());
    assert!(p.ttft_ms.p99.is_finite() && !p.saturated);
}

#[test]
fn few_decode_steps_after_long_prompts_widen_the_tpot_tail() {
    // Same utilisation, same prompts: 28 output tokens see a handful of whole prefills in
    // their steps, 1024 see many that average out.
    let prof = profile(400_000, 512);
    let tail = |o: f64| {
        let m = LatencyModel::new(&prof, &mix(2048.0, o)).expect("model");
        let p = m.predict(0.7 * m.saturation_rate_per_s(), 1).expect("p");
        assert!(p.tpot_mean_ms >= p.step_ms - 1e-9, "{p:?}");
        p.tpot_ms.p90 / p.tpot_ms.p50
    };
    let (short, long) = (tail(28.0), tail(1024.0));
    assert!(
        short > 1.5 && long < 1.2,
        "p90/p50: short {short}, long {long}"
    );
}

fn with_arrivals(m: &LatencyModel, cv2: f64) -> LatencyModel {
    m.clone().with_arrival_cv2(cv2).expect("valid c_a²")
}

#[test]
fn poisson_arrivals_are_the_default() {
    let m = LatencyModel::new(&profile(400_000, 512), &mix(2048.0, 28.0)).expect("model");
    assert_eq!(m.arrival_cv2(), 1.0);
    let poisson = with_arrivals(&m, 1.0);
    let sat = m.saturation_rate_per_s();
    for f in [0.1, 0.5, 0.8] {
        assert_eq!(
            m.predict(f * sat, 1).expect("p"),
            poisson.predict(f * sat, 1).expect("p")
        );
    }
}

#[test]
fn ttft_and_tpot_tails_grow_with_arrival_variability_and_nothing_else_moves() {
    // Prefill-heavy mix at 60 % load: queueing behind other prompts is a large share of TTFT.
    let m = LatencyModel::new(&profile(400_000, 512), &mix(2048.0, 28.0)).expect("model");
    let rate = 0.6 * m.saturation_rate_per_s();
    let preds: Vec<_> = [0.0, 0.25, 1.0, 2.0, 4.0]
        .iter()
        .map(|&cv2| with_arrivals(&m, cv2).predict(rate, 1).expect("p"))
        .collect();
    for w in preds.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        assert!(b.ttft_ms.p50 >= a.ttft_ms.p50 && b.ttft_ms.p99 > a.ttft_ms.p99);
        assert!(b.tpot_ms.p90 > a.tpot_ms.p90 && b.tpot_ms.p99 > a.tpot_ms.p99);
        // The step time, the batch and the saturation rate are fixed points of the rate.
        assert_eq!(
            (a.step_ms, a.batch, a.saturation_rate_per_s),
            (b.step_ms, b.batch, b.saturation_rate_per_s)
        );
    }
    // Evenly spaced arrivals of equal prompts never queue behind each other (D/D/1): TTFT
    // is the own prefill, the decode batch sharing its step and a residual of one step.
    let even = &preds[0];
    assert!(
        even.ttft_ms.p99 - even.ttft_ms.p50 <= 0.5 * even.step_ms * 1.001,
        "{even:?}"
    );
    assert!(preds[2].ttft_ms.p99 - preds[2].ttft_ms.p50 > even.step_ms);
    // ... and with no variability in the counts the TPOT of equal requests is its mean.
    assert!(
        (even.tpot_ms.p99 / even.tpot_mean_ms - 1.0).abs() < 1e-6,
        "{even:?}"
    );
}

#[test]
fn predictions_stay_monotone_in_the_rate_for_any_arrival_variability() {
    let m = LatencyModel::new(&profile(400_000, 512), &mix(1024.0, 64.0)).expect("model");
    let sat = m.saturation_rate_per_s();
    for cv2 in [0.0, 0.5, 4.0] {
        let m = with_arrivals(&m, cv2);
        let mut prev = m.predict(0.0, 1).expect("p");
        for i in 1..100 {
            let p = m.predict(sat * f64::from(i) / 100.0, 1).expect("p");
            for (a, b) in [
                (prev.ttft_ms.p50, p.ttft_ms.p50),
                (prev.ttft_ms.p99, p.ttft_ms.p99),
                (prev.tpot_ms.p50, p.tpot_ms.p50),
                (prev.tpot_ms.p99, p.tpot_ms.p99),
            ] {
                assert!(
                    b >= a - 1e-9,
                    "c_a² {cv2}: not monotone at {i}%: {a} -> {b}"
                );
            }
            assert!(p.ttft_ms.p50 <= p.ttft_ms.p90 && p.ttft_ms.p90 <= p.ttft_ms.p99);
            assert!(p.tpot_ms.p50 <= p.tpot_ms.p90 && p.tpot_ms.p90 <= p.tpot_ms.p99);
            prev = p;
        }
    }
}

#[test]
fn a_negative_or_non_finite_arrival_variability_is_rejected() {
    let m = LatencyModel::new(&profile(400_000, 512), &mix(100.0, 100.0)).expect("model");
    for bad in [-0.5, f64::NAN, f64::INFINITY] {
        assert!(
            matches!(
                m.clone().with_arrival_cv2(bad),
                Err(LatencyError::BadValue { .. })
            ),
            "{bad}"
        );
    }
}

fn with_graph_sizes(sizes: Vec<u32>) -> Profile {
    let mut p = profile(400_000, 512);
    p.decode.cuda_graph_batch_sizes = sizes;
    p
}

#[test]
fn graph_sizes_at_every_batch_change_nothing() {
    let plain = profile(400_000, 512);
    let every = with_graph_sizes((1..=512).collect());
    for (p, o) in [(512.0, 256.0), (64.0, 1024.0), (2048.0, 28.0)] {
        let a = LatencyModel::new(&plain, &mix(p, o)).expect("model");
        let b = LatencyModel::new(&every, &mix(p, o)).expect("model");
        let sat = a.saturation_rate_per_s();
        assert!((b.saturation_rate_per_s() / sat - 1.0).abs() < 1e-12);
        for cv2 in [0.0, 1.0] {
            for frac in [0.1, 0.5, 0.9] {
                let x = with_arrivals(&a, cv2).predict(frac * sat, 1).expect("p");
                let y = with_arrivals(&b, cv2).predict(frac * sat, 1).expect("p");
                for (u, v) in [
                    (x.step_ms, y.step_ms),
                    (x.batch, y.batch),
                    (x.tpot_mean_ms, y.tpot_mean_ms),
                    (x.tpot_ms.p99, y.tpot_ms.p99),
                    (x.ttft_ms.p90, y.ttft_ms.p90),
                ] {
                    assert!((u / v - 1.0).abs() < 1e-9, "{p}/{o} at {frac}: {u} vs {v}");
                }
            }
        }
    }
}

#[test]
fn padded_steps_solve_their_fixed_point_cost_more_and_stay_monotone() {
    let plain = profile(400_000, 512);
    let vllm = with_graph_sizes(forecasting::profile::vllm_default_cuda_graph_batch_sizes(
        512,
    ));
    for (p, o) in [(256.0, 1024.0), (1024.0, 64.0)] {
        let a = LatencyModel::new(&plain, &mix(p, o)).expect("model");
        let b = LatencyModel::new(&vllm, &mix(p, o)).expect("model");
        let sat = b.saturation_rate_per_s();
        // Padding only adds work: the slot count is reached at a lower rate.
        assert!(sat <= a.saturation_rate_per_s());
        for cv2 in [0.0, 1.0] {
            let (a, b) = (with_arrivals(&a, cv2), with_arrivals(&b, cv2));
            let mut prev = b.predict(0.0, 1).expect("p");
            for i in 1..100 {
                let rate = sat * f64::from(i) / 100.0;
                let x = a.predict(rate, 1).expect("p");
                let y = b.predict(rate, 1).expect("p");
                // Little's law with the padded step: the fixed point is solved, not
                // approximated by the unpadded one.
                let little = rate * o * y.step_ms / 1000.0;
                assert!(
                    (y.batch / little - 1.0).abs() < 1e-9,
                    "{p}/{o} c_a² {cv2} at {i}%"
                );
                assert!(y.step_ms >= x.step_ms && y.tpot_mean_ms >= x.tpot_mean_ms - 1e-12);
                assert!(
                    y.tpot_mean_ms >= prev.tpot_mean_ms - 1e-9,
                    "not monotone at {i}%"
                );
                assert!(
                    y.ttft_ms.p50 >= prev.ttft_ms.p50 - 1e-9,
                    "not monotone at {i}%"
                );
                prev = y;
            }
        }
    }
}
