//! The embedded demo as a newcomer runs it (`slo-scaler serve`, no config): the simulated
//! fleet in accelerated real time with the SLO pipeline in the loop, seen through KEDA's
//! gRPC calls, `/models` and `/metrics`.

use std::time::{Duration, Instant};

use slo_scaler::proto::external_scaler_client::ExternalScalerClient;
use slo_scaler::proto::{GetMetricsRequest, ScaledObjectRef};
use slo_scaler_integration::*;
use tonic::transport::Channel;

/// A simulated hour in 2.5 s: the batch model's idle spell (07:48–16:12) starts ~4.5 s after
/// the 06:00 start, the 8B model's noon peak ~15 s after.
const SPEED: &str = "1440";

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

fn decision<'a>(models: &'a serde_json::Value, model: &str, variant: &str) -> &'a serde_json::Value {
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

#[tokio::test]
async fn get_metrics_follows_the_simulated_fleet_up_and_down_and_metrics_show_it() {
    init_crypto();
    let scaler = ScalerProcess::spawn(&["--demo-speed", SPEED]);
    let started = Instant::now();
    let mut c = ExternalScalerClient::connect(format!("http://{}", scaler.grpc_addr))
        .await
        .unwrap();
    let batch = ("llama-3.1-8b-batch", "a100");
    let chat = ("llama-3.1-8b-instruct", "h100");

    // 06:00: the batch model's night shift is ending, it still runs.
    let first_batch = desired(&mut c, batch.0, batch.1).await;
    let first_chat = desired(&mut c, chat.0, chat.1).await;
    assert!(first_batch >= 1.0, "batch model busy at the start: {first_batch}");

    // GetMetrics answers exactly what the pipeline decided (the snapshot /models shows):
    // read /models on both sides of a GetMetrics; when the two agree, GetMetrics must too.
    let mut agreed = 0;
    for _ in 0..50 {
        let before = get_json(format!("{}/models", scaler.http_base)).await;
        let value = desired(&mut c, chat.0, chat.1).await;
        let after = get_json(format!("{}/models", scaler.http_base)).await;
        let (b, a) = (decision(&before, chat.0, chat.1), decision(&after, chat.0, chat.1));
        if b["details"]["sim_time_s"] == a["details"]["sim_time_s"] {
            assert_eq!(b["desired_replicas"].as_f64(), Some(value), "{b}");
            let reason = b["reason"].as_str().unwrap();
            assert!(reason.contains("simulated fleet at day 1"), "{reason}");
            agreed += 1;
        }
        if agreed >= 3 {
            break;
        }
    }
    assert!(agreed >= 3, "/models and GetMetrics never caught one snapshot");

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
    let ttft = detail_series(&metrics, chat.0, chat.1, "sim_ttft_p90_ms").expect("sim TTFT");
    let tpot = detail_series(&metrics, chat.0, chat.1, "sim_tpot_p90_ms").expect("sim TPOT");
    assert!(ttft > 10.0 && ttft < 1000.0, "simulated TTFT p90 {ttft} ms");
    assert!(tpot > 1.0 && tpot < 50.0, "simulated TPOT p90 {tpot} ms");
    let ready = detail_series(&metrics, chat.0, chat.1, "sim_ready_replicas").unwrap();
    assert!(ready >= 1.0, "{ready}");

    // Down: the batch model's idle spell scales it to zero (KEDA's cooldown included),
    // and IsActive agrees.
    let deadline = started + Duration::from_secs(60);
    while desired(&mut c, batch.0, batch.1).await > 0.0 {
        assert!(Instant::now() < deadline, "batch model never scaled to zero");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let active = c
        .is_active(sor(Some(batch.0), Some(batch.1), &[]))
        .await
        .unwrap()
        .into_inner()
        .result;
    assert!(!active, "IsActive false at zero");

    // Up: towards noon the 8B model needs more replicas than at 06:00.
    let deadline = started + Duration::from_secs(90);
    loop {
        let models = get_json(format!("{}/models", scaler.http_base)).await;
        let total: f64 = ["h100", "a100"]
            .iter()
            .map(|v| decision(&models, chat.0, v)["desired_replicas"].as_f64().unwrap())
            .sum();
        let start_total = first_chat; // a100 starts at 0 while the H100s suffice
        if total > start_total + 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "8B model never scaled up: {start_total} -> {total}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
