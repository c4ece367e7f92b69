//! History backfill against a real Prometheus whose past was written by
//! `promtool tsdb create-blocks-from openmetrics`: two days of a vLLM request counter
//! (3 req/s on the first day, 6 req/s on the second), read back with range queries at a
//! 15 s step — 11,521 points, more than one query may return, so chunking is exercised.

use std::time::{SystemTime, UNIX_EPOCH};

use slo_scaler::config::PrometheusConfig;
use slo_scaler::metrics::prometheus::{ObserverSettings, PrometheusClient, PrometheusObserver};
use slo_scaler::metrics::{DemandObserver, Engine, Target};
use slo_scaler_integration::prometheus::PrometheusProcess;
use slo_scaler_integration::*;

#[tokio::test]
async fn backfill_loads_days_of_history_from_a_promtool_built_tsdb() {
    init_crypto();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let start = now - 2 * 86_400;
    let mut om = String::from("# TYPE vllm:request_success counter\n");
    let mut v = 0.0;
    let mut t = start;
    while t < now - 120 {
        v += if t < start + 86_400 { 3.0 } else { 6.0 } * 60.0;
        om += &format!(
            "vllm:request_success_total{{model_name=\"meta/llama\",finished_reason=\"stop\"}} {v} {t}\n"
        );
        t += 60;
    }
    om += "# EOF\n";
    let prom = PrometheusProcess::start_with_history(&om);

    let client = PrometheusClient::new(&PrometheusConfig {
        url: prom.url.clone(),
        timeout_s: 10.0,
        retries: 1,
        backoff_s: 0.1,
        bearer_token_file: None,
        basic_auth: None,
        ca_file: None,
        history_days: 2.0,
        history_step_s: 15.0,
    })
    .unwrap();
    let observer = PrometheusObserver::new(
        client,
        ObserverSettings {
            rate_window_s: 300.0,
            stale_after_s: 600.0,
            history_s: 2.0 * 86_400.0,
            history_step_s: 15.0,
        },
    );
    let target = Target {
        model: "llama".into(),
        engine: Engine::Vllm,
        served_name: "meta/llama".into(),
        model_label: Some("model_name".into()),
        matchers: None,
        variant_label: None,
    };
    let started = std::time::Instant::now();
    let loaded = observer
        .backfill(std::slice::from_ref(&target), now as f64)
        .await
        .unwrap_or_else(|e| panic!("backfill failed: {e}; prometheus log:\n{}", prom.log()));
    let elapsed = started.elapsed();
    let h = observer.demand_history("llama");
    assert_eq!(loaded["llama"], h.len());
    // 2 days at 15 s is 11,521 steps; the first rate window (300 s) and the last two
    // minutes have no data. A single unchunked query would have been refused.
    assert!(h.len() > 11_000, "{} points", h.len());
    // Where the series starts, PromQL's rate() extrapolates less than a full window (it
    // ramps up over the first 300 s, and down after the last sample); between, exact.
    assert!(
        h.windows(2).all(|w| w[0].0 < w[1].0),
        "time-ordered, no duplicates"
    );
    let first_day: Vec<f64> = h
        .iter()
        .filter(|(t, _)| *t > (start + 600) as f64 && *t < (start + 86_000) as f64)
        .map(|p| p.1)
        .collect();
    let second_day: Vec<f64> = h
        .iter()
        .filter(|(t, _)| *t > (start + 87_000) as f64 && *t < (now - 600) as f64)
        .map(|p| p.1)
        .collect();
    let off = |vals: &[f64], want: f64| {
        vals.iter()
            .copied()
            .filter(|v| (v - want).abs() >= 0.05)
            .collect::<Vec<_>>()
    };
    assert!(
        off(&first_day, 3.0).is_empty(),
        "first day ≈ 3 req/s: {:?} (head {:?})",
        off(&first_day, 3.0),
        &h[..5]
    );
    assert!(
        off(&second_day, 6.0).is_empty(),
        "second day ≈ 6 req/s: {:?}",
        off(&second_day, 6.0)
    );
    eprintln!(
        "backfilled {} points of 2 days in {:.0} ms",
        h.len(),
        elapsed.as_secs_f64() * 1e3
    );

    // A restarted scaler rebuilds its forecast from this history alone: the SLO
    // pipeline's forecaster, warmed with it, forecasts the second day's 6 req/s with a
    // calibrated band instead of a brand-new series' wide guess.
    use forecasting::capacity::Slo;
    use forecasting::latency::{Percentile, RequestMix};
    use slo_scaler::pipeline::{Fleet, ModelInput, ModelPipeline, SloTarget, VariantInput};
    let profile =
        slo_scaler::planner::load_profile("builtin/llama-3.1-8b-fp8_h200_tp1", None).unwrap();
    let pipeline = ModelPipeline::new(
        ModelInput {
            name: "llama".into(),
            priority: 0,
            target: SloTarget {
                slo: Slo {
                    ttft_ms: 1000.0,
                    tpot_ms: 50.0,
                    percentile: Percentile::P90,
                },
                attainment: 0.95,
            },
            mix: RequestMix::fixed(1000.0, 200.0).unwrap(),
            variants: vec![VariantInput {
                name: "h200".into(),
                gpu_type: "H200".into(),
                gpus_per_replica: 1,
                profile,
                min: 0,
                max: 16,
            }],
            forecast_interval_s: 60.0,
        },
        Default::default(),
    )
    .unwrap();
    let mut fleet = Fleet::new(vec![pipeline], None);
    // Up to 10 minutes before the data ends: after the last sample, rate() ramps down,
    // an artefact of this synthetic history stopping, not demand.
    let usable: Vec<(f64, f64)> = h
        .iter()
        .copied()
        .filter(|(t, _)| *t < (now - 600) as f64)
        .collect();
    fleet.warm_start("llama", &usable);
    assert!(
        fleet.forecaster_observations("llama") > 2_500,
        "{}",
        fleet.forecaster_observations("llama")
    );
    let upper = fleet.models()[0].demand_upper().unwrap();
    assert!(
        (6.0..7.0).contains(&upper),
        "q95 over the cold start ≈ 6 req/s: {upper}"
    );
}
