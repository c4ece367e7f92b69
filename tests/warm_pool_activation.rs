//! `StreamIsActive` pushes `true` as soon as requests wait: the real `serve` planner
//! (`FleetPlanner`) scrapes a fake vLLM engine's `/metrics`; at zero replicas (no request
//! finishes, so the forecast is 0) `vllm:num_requests_waiting` going above 0 must turn
//! the model active in the next evaluation, seen by a real tonic client on the stream.

use std::time::{Duration, Instant};

use slo_scaler::config::Config;
use slo_scaler::planner::FleetPlanner;
use slo_scaler::proto::IsActiveResponse;
use slo_scaler_integration::fake_vllm::FakeVllm;
use slo_scaler_integration::prometheus::wait_desired;
use slo_scaler_integration::*;

async fn next_push(
    stream: &mut tonic::Streaming<IsActiveResponse>,
    limit: Duration,
) -> Option<bool> {
    tokio::time::timeout(limit, stream.message())
        .await
        .ok()
        .map(|m| m.expect("stream ok").expect("stream open").result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_requests_at_zero_push_true_on_the_stream() {
    init_crypto();
    let engine = FakeVllm::start("127.0.0.1:0").await;
    let yaml = format!(
        "evaluation: {{ interval_s: 0.2, timeout_s: 0.8, stale_after_s: 2.0 }}
metrics:
  stale_after_s: 2
  rate_window_s: 2
  scrape:
    timeout_s: 0.3
    endpoints:
      - {{ url: '{}/metrics', model: llama, variant: h100 }}
models:
  - name: llama
    variants:
      - {{ name: h100, capacity_rps: 2.0 }}
    demand: {{ kind: scrape, engine: vllm, served_name: llama }}
",
        engine.base
    );
    let cfg = Config::from_yaml(&yaml, "test config").expect("config");
    let planner = FleetPlanner::try_new(&cfg, None).expect("planner");
    let running = start_scaler(planner, cfg.evaluation, None).await;
    let mut c = client(&running).await;
    // Idle: nothing finishes, nothing waits → 0 replicas, inactive.
    wait_desired(&mut c, "llama", "h100", 0.0, 1e-9, Duration::from_secs(10)).await;
    let mut stream = c
        .stream_is_active(sor(Some("llama"), Some("h100"), &[]))
        .await
        .expect("stream")
        .into_inner();
    assert_eq!(
        next_push(&mut stream, Duration::from_secs(1)).await,
        Some(false)
    );

    for round in 0..2 {
        let appeared = Instant::now();
        engine.set(|s| s.waiting = 3.0);
        let pushed = next_push(&mut stream, Duration::from_secs(3)).await;
        assert_eq!(pushed, Some(true), "round {round}: no push within 3 s");
        eprintln!(
            "round {round}: waiting > 0 → StreamIsActive true after {:.0} ms (evaluation interval 200 ms, scrape each evaluation)",
            appeared.elapsed().as_secs_f64() * 1e3
        );
        let active = c
            .is_active(sor(Some("llama"), Some("h100"), &[]))
            .await
            .expect("IsActive")
            .into_inner();
        assert!(active.result);
        let models: serde_json::Value =
            reqwest::get(format!("http://{}/models", running.http_addr))
                .await
                .expect("GET /models")
                .json()
                .await
                .expect("json");
        let reason = models["models"][0]["decisions"]["h100"]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            reason.contains("3 request(s) waiting with no replica"),
            "{reason}"
        );
        // The queue drains: back to 0 (no push for falling edges), then demand again.
        engine.set(|s| s.waiting = 0.0);
        wait_desired(&mut c, "llama", "h100", 0.0, 1e-9, Duration::from_secs(5)).await;
    }
    running.shutdown();
}
