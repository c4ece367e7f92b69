//! Curve fitting: recovers known coefficients, survives a glitch, reports honest errors.
use forecasting::profile::fit::{
    DecodeObs, FitError, PrefillObs, derive_by_throughput_ratio, fit_decode, fit_decode_padded,
    fit_prefill,
};
use forecasting::profile::{DecodeCurve, PrefillCurve, Profile};

const TRUE_PREFILL: PrefillCurve = PrefillCurve {
    base_ms: 20.0,
    per_token_ms: 0.3,
    per_token_sq_ms: 2.0e-6,
};

fn prefill_obs() -> Vec<PrefillObs> {
    let mut obs = Vec::new();
    for &batch in &[1.0, 2.0, 4.0, 8.0] {
        for &p in &[128.0, 512.0, 2048.0, 8192.0] {
            obs.push(PrefillObs {
                batch,
                prompt_tokens: p,
                time_ms: TRUE_PREFILL.time_ms(batch, p),
            });
        }
    }
    obs
}

/// Exact decode steps of `truth` at `batches` × contexts of 300/1500/5000 tokens, alone and
/// with `mixed` 1000-token prefills per step (charged at the curve's mixed-prefill factor).
fn decode_obs(truth: &DecodeCurve, batches: &[f64], mixed: f64) -> Vec<DecodeObs> {
    let prompt = 1000.0;
    let mut obs = Vec::new();
    for &b in batches {
        for &ctx in &[300.0, 1500.0, 5000.0] {
            for m in [0.0, mixed] {
                obs.push(DecodeObs {
                    batch: b,
                    kv_tokens: b * ctx,
                    prefills_per_step: m,
                    prompt_tokens: prompt,
                    step_ms: truth.step_ms(b, b * ctx)
                        + truth.mixed_prefill_factor * m * TRUE_PREFILL.work_ms(prompt),
                });
            }
        }
    }
    obs
}

#[test]
fn prefill_fit_recovers_exact_coefficients() {
    let (c, fit) = fit_prefill(&prefill_obs()).expect("fits");
    assert!((c.base_ms - 20.0).abs() < 1e-6, "{c:?}");
    assert!((c.per_token_ms - 0.3).abs() < 1e-9, "{c:?}");
    assert!((c.per_token_sq_ms - 2.0e-6).abs() < 1e-12, "{c:?}");
    assert!(fit.mape_pct < 1e-6 && fit.r2 > 0.999_999, "{fit:?}");
    assert_eq!(fit.excluded, 0);
}

#[test]
fn a_truncated_run_is_excluded_not_fitted() {
    let mut obs = prefill_obs();
    // A run that stopped early: a big batch reported a tenth of its real time (as the
    // Splitwise batch-64 rows do).
    obs.push(PrefillObs {
        batch: 64.0,
        prompt_tokens: 512.0,
        time_ms: TRUE_PREFILL.time_ms(64.0, 512.0) / 10.0,
    });
    let (c, fit) = fit_prefill(&obs).expect("fits");
    assert_eq!(fit.excluded, 1, "{fit:?}");
    assert!((c.per_token_ms / 0.3 - 1.0).abs() < 1e-6, "{c:?}");
}

#[test]
fn decode_fit_separates_batch_kv_and_mixed_prefill() {
    let truth = DecodeCurve {
        base_ms: 6.0,
        per_seq_ms: 0.03,
        per_kv_token_ms: 5.0e-5,
        mixed_prefill_factor: 0.7,
        cuda_graph_batch_sizes: Vec::new(),
    };
    let obs = decode_obs(&truth, &[1.0, 8.0, 32.0, 128.0], 0.2);
    let (c, fit) = fit_decode(&obs, &TRUE_PREFILL).expect("fits");
    assert!((c.base_ms - 6.0).abs() < 1e-6, "{c:?}");
    assert!((c.per_seq_ms - 0.03).abs() < 1e-8, "{c:?}");
    assert!((c.per_kv_token_ms - 5.0e-5).abs() < 1e-10, "{c:?}");
    assert!((c.mixed_prefill_factor - 0.7).abs() < 1e-6, "{c:?}");
    assert!(fit.mape_pct < 1e-6, "{fit:?}");
    // Isolated measurements (nothing mixed in) cannot see the factor: it stays 1.
    let isolated: Vec<DecodeObs> = obs
        .into_iter()
        .filter(|o| o.prefills_per_step == 0.0)
        .collect();
    let (c, _) = fit_decode(&isolated, &TRUE_PREFILL).expect("fits");
    assert_eq!(c.mixed_prefill_factor, 1.0);
}

#[test]
fn padded_fit_recovers_the_per_sequence_cost_a_linear_fit_overstates() {
    let truth = DecodeCurve {
        base_ms: 6.6,
        per_seq_ms: 0.02,
        per_kv_token_ms: 5.6e-5,
        mixed_prefill_factor: 0.8,
        cuda_graph_batch_sizes: forecasting::profile::vllm_default_cuda_graph_batch_sizes(512),
    };
    // Steady batches at the small sizes low-rate points see, between graph sizes and on them.
    let obs = decode_obs(&truth, &[1.0, 3.0, 5.5, 11.0, 17.3, 23.0, 30.0], 0.05);
    let sizes = truth.cuda_graph_batch_sizes.clone();
    let (c, fit) = fit_decode_padded(&obs, &TRUE_PREFILL, &sizes).expect("fits");
    assert!((c.per_seq_ms - 0.02).abs() < 1e-8, "{c:?}");
    assert!((c.base_ms - 6.6).abs() < 1e-6, "{c:?}");
    assert!((c.per_kv_token_ms - 5.6e-5).abs() < 1e-10, "{c:?}");
    assert!((c.mixed_prefill_factor - 0.8).abs() < 1e-6, "{c:?}");
    assert_eq!(c.cuda_graph_batch_sizes, sizes);
    assert!(fit.mape_pct < 1e-6, "{fit:?}");
    // The same data fitted without padding: the padded slots land on the per-sequence cost.
    let (lin, _) = fit_decode(&obs, &TRUE_PREFILL).expect("fits");
    assert!(lin.per_seq_ms > 0.021, "{lin:?}");
    assert!(lin.cuda_graph_batch_sizes.is_empty());
}

#[test]
fn too_few_or_degenerate_observations_are_errors() {
    let two = &prefill_obs()[..2];
    assert!(matches!(
        fit_prefill(two),
        Err(FitError::TooFewPoints {
            needed: 3,
            got: 2,
            ..
        })
    ));
    let same: Vec<PrefillObs> = (0..5)
        .map(|_| PrefillObs {
            batch: 1.0,
            prompt_tokens: 512.0,
            time_ms: 100.0,
        })
        .collect();
    assert!(matches!(
        fit_prefill(&same),
        Err(FitError::Degenerate { .. })
    ));
}

#[test]
fn derive_scales_times_and_states_the_assumption() {
    let yaml = "model: m\ngpu: H200\ntensor_parallel: 1\nprefill: {base_ms: 20.0, per_token_ms: 0.02, per_token_sq_ms: 0.0}\n\
decode: {base_ms: 5.0, per_seq_ms: 0.02, per_kv_token_ms: 3.0e-5, mixed_prefill_factor: 1.0}\nlimits: {kv_capacity_tokens: 900000, max_batch: 256}\n\
lifecycle: {cold_start_s: 100.0, wake_from_sleep_s: 10.0}\ncost_per_hour: 4.0\n\
provenance: {source: s, licence: Apache-2.0, method: fit}\n";
    let base = Profile::from_yaml(yaml).expect("valid");
    let slower =
        derive_by_throughput_ratio(&base, "A100", 0.25, Some(300_000), "test").expect("ok");
    assert_eq!(slower.gpu, "A100");
    assert!((slower.decode.base_ms - 20.0).abs() < 1e-12);
    assert!((slower.prefill.per_token_ms - 0.08).abs() < 1e-12);
    assert_eq!(slower.limits.kv_capacity_tokens, 300_000);
    assert_eq!(slower.provenance.method, "derive");
    assert!(
        slower
            .provenance
            .assumptions
            .iter()
            .any(|a| a.contains("0.2500"))
    );
    assert!(matches!(
        derive_by_throughput_ratio(&base, "x", 0.0, None, "t"),
        Err(FitError::BadRatio(_))
    ));
}
