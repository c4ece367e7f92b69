//! The embedded demo as a newcomer runs it (`slo-scaler serve`, no config): the simulated
//! fleet in accelerated real time with the SLO pipeline in the loop, seen through KEDA's
//! gRPC calls, `/models` and `/metrics`.

use std::time::{Duration, Instant};

use slo_scaler::proto::external_scaler_client::ExternalScalerClient;
use slo_scaler::proto::{GetMetricsRequest, ScaledObjectRef};
use slo_scaler_integration::*;
use tonic::transport::Channel;

/// A simulated hour in 10 s. The debug binary may fall behind on a loaded machine; the
/// demo is deterministic in simulated time, so the test waits for simulated times, not
/// wall-clock ones.
const SPEED: &str = "360";

async fn desired(c: &mut ExternalScalerClient<Channel>, model: &str, variant: &str) -> f64 {
    let so: ScaledObjectRef = sor(Some(model), Some(variant), &[]);
    let spec = c
        .get_metric_spec(so.clone())
        .await
        .expect("GetMetricSpec")
        .into_inner();
    let m = c
        .get_metrics(GetMetricsRequest {
            scaled_object_ref: Some(so),
            metric_name: spec.metric_specs[0].metric_name.clone(),
        })
        .await
        .expect("GetMetrics")
        .into_inner();
    m.metric_values[0].metric_value_float
}

async fn get_json(url: String) -> serde_json::Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

fn decision<'a>(
    models: &'a serde_json::Value,
    model: &str,
    variant: &str,
) -> &'a serde_json::Value {
    let m = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == model)
        .unwrap_or_else(|| panic!("{model} in {models}"));
    &m["decisions"][variant]
}

/// The value of `slo_scaler_decision_detail{model, variant, field}` in a scrape.
fn detail_series(metrics: &str, model: &str, variant: &str, field: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix("slo_scaler_decision_detail{")?;
        let (labels, value) = rest.split_once("} ")?;
        let want = [
            format!("model=\"{model}\""),
            format!("variant=\"{variant}\""),
            format!("field=\"{field}\""),
        ];
        want.iter()
            .all(|w| labels.contains(w.as_str()))
            .then(|| value.trim().parse().ok())?
    })
}

/// The simulated time of the latest decision, seconds.
async fn sim_time(base: &str) -> f64 {
    let models = get_json(format!("{base}/models")).await;
    decision(&models, "llama-3.1-8b-instruct", "h100")["details"]["sim_time_s"]
        .as_f64()
        .expect("sim_time_s")
}

#[tokio::test]
async fn get_metrics_follows_the_simulated_fleet_and_metrics_show_it() {
    init_crypto();
    let scaler = ScalerProcess::spawn(&["--demo-speed", SPEED]);
    let started = Instant::now();
    let mut c = ExternalScalerClient::connect(format!("http://{}", scaler.grpc_addr))
        .await
        .unwrap();
    let chat = ("llama-3.1-8b-instruct", ["h100", "a100"]);
    let batch = ("llama-3.1-8b-batch", "a100");
    let first_batch = desired(&mut c, batch.0, batch.1).await;
    let t0 = sim_time(&scaler.http_base).await;
    assert!(
        (6.0 * 3600.0..6.5 * 3600.0).contains(&t0),
        "starts at 06:00: {t0}"
    );

    // GetMetrics answers exactly what the pipeline decided (the snapshot /models shows):
    // read /models on both sides of one GetMetrics; when the two agree (no new snapshot in
    // between), GetMetrics must too.
    let mut agreed = 0;
    for _ in 0..100 {
        let before = get_json(format!("{}/models", scaler.http_base)).await;
        let value = desired(&mut c, batch.0, batch.1).await;
        let after = get_json(format!("{}/models", scaler.http_base)).await;
        let (b, a) = (
            decision(&before, batch.0, batch.1),
            decision(&after, batch.0, batch.1),
        );
        if b["details"]["sim_time_s"] == a["details"]["sim_time_s"] {
            assert_eq!(b["desired_replicas"].as_f64(), Some(value), "{b}");
            let reason = b["reason"].as_str().unwrap();
            assert!(reason.contains("simulated fleet at day 1"), "{reason}");
            agreed += 1;
            if agreed == 2 {
                break;
            }
        }
    }
    assert!(
        agreed >= 1,
        "/models and GetMetrics never caught one snapshot"
    );

    // What KEDA reads, until the simulated clock passes 08:30.
    let mut chat_totals = Vec::new();
    let mut batch_values = vec![first_batch];
    loop {
        let mut total = 0.0;
        for v in chat.1 {
            total += desired(&mut c, chat.0, v).await;
        }
        chat_totals.push(total);
        batch_values.push(desired(&mut c, batch.0, batch.1).await);
        let t = sim_time(&scaler.http_base).await;
        if t >= 8.5 * 3600.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the demo reached only {t} s of simulated time in 180 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // 06:00–08:30 is the 8B model's morning ramp and the batch model's wind-down into its
    // idle spell: KEDA saw the chat fleet grow and the batch fleet shrink.
    let max = |v: &[f64]| v.iter().cloned().fold(f64::MIN, f64::max);
    assert!(
        max(&chat_totals) > chat_totals[0],
        "8B chat model never scaled up: {chat_totals:?}"
    );
    assert!(
        batch_values.last().unwrap() < &max(&batch_values),
        "batch model never scaled down: {batch_values:?}"
    );

    // /metrics: demand, forecast band, plan, and the simulated fleet's latency, in the
    // series the Grafana dashboard reads.
    let metrics = reqwest::get(format!("{}/metrics", scaler.http_base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "slo_scaler_demand_rps{model=\"llama-3.1-8b-instruct\"}",
        "slo_scaler_forecast_rps{model=\"llama-3.1-8b-instruct\",bound=\"lower\"}",
        "slo_scaler_forecast_rps{model=\"llama-3.1-8b-instruct\",bound=\"point\"}",
        "slo_scaler_forecast_rps{model=\"llama-3.1-8b-instruct\",bound=\"upper\"}",
        "slo_scaler_desired_replicas{model=\"llama-3.1-8b-instruct\",variant=\"h100\"}",
        "slo_scaler_predicted_latency_seconds{model=\"llama-3.1-8b-instruct\",variant=\"h100\",kind=\"ttft\"}",
        "slo_scaler_slo_target_seconds{model=\"llama-3.1-8b-instruct\",kind=\"tpot\"}",
    ] {
        assert!(metrics.contains(series), "{series} missing from\n{metrics}");
    }
    let (m, v) = (chat.0, "h100");
    let ttft = detail_series(&metrics, m, v, "sim_ttft_p90_ms").expect("sim TTFT");
    let tpot = detail_series(&metrics, m, v, "sim_tpot_p90_ms").expect("sim TPOT");
    assert!(ttft > 10.0 && ttft < 1000.0, "simulated TTFT p90 {ttft} ms");
    assert!(tpot > 1.0 && tpot < 50.0, "simulated TPOT p90 {tpot} ms");
    let ready = detail_series(&metrics, m, v, "sim_ready_replicas").unwrap();
    assert!(ready >= 1.0, "{ready}");
    let attainment = detail_series(&metrics, m, v, "sim_attainment").unwrap();
    // The fleet is sized for p90 bounds (no longer 1.3-2x above them, as the old latency
    // correction made it): at a given moment about a tenth of the requests may miss one of
    // the two bounds, so "both" sits near, not above, 90 %.
    assert!(attainment > 0.8, "{attainment}");
}
