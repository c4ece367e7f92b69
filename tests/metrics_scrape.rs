//! The direct scrape source end to end: two test exporters (one per GPU variant) scraped
//! by the scaler itself, no Prometheus. Load changes move the replicas; an exporter going
//! down makes `GetMetrics` UNAVAILABLE within 3 s (a partial sum would under-count),
//! `GetMetricSpec` answers, `IsActive` never says inactive; the engine coming back with
//! its counters reset recovers without restarting the scaler.

use std::time::{Duration, Instant};

use slo_scaler::config::Config;
use slo_scaler::demo::CapacityRulePlanner;
use slo_scaler_integration::prometheus::*;
use slo_scaler_integration::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_source_end_to_end_with_outage_and_recovery() {
    init_crypto();
    let load = |rps: f64| EngineLoad {
        requests_per_s: rps,
        ..EngineLoad::default()
    };
    let h100 = TestExporter::start("meta/llama", load(4.0)).await;
    let a100 = TestExporter::start("meta/llama", load(2.0)).await;
    let yaml = format!(
        "evaluation: {{ interval_s: 0.25, timeout_s: 0.8, stale_after_s: 1.0 }}
metrics:
  stale_after_s: 0.8
  rate_window_s: 3
  scrape:
    timeout_s: 0.3
    endpoints:
      - {{ url: '{}', model: llama, variant: h100 }}
      - {{ url: '{}', model: llama, variant: a100 }}
models:
  - name: llama
    variants:
      - {{ name: h100, capacity_rps: 2.0, share: 0.5 }}
      - {{ name: a100, capacity_rps: 1.0, share: 0.5 }}
    demand: {{ kind: scrape, engine: vllm, served_name: meta/llama }}
",
        h100.url(),
        a100.url()
    );
    let cfg = Config::from_yaml(&yaml, "test config").unwrap();
    let running = start_scaler(
        CapacityRulePlanner::try_new(&cfg).unwrap(),
        cfg.evaluation,
        None,
    )
    .await;
    let mut c = client(&running).await;

    // 6 req/s in total: h100 gets 3 ÷ 2 = 1.5, a100 gets 3 ÷ 1 = 3.
    wait_desired(&mut c, "llama", "h100", 1.5, 0.03, Duration::from_secs(10)).await;
    wait_desired(&mut c, "llama", "a100", 3.0, 0.03, Duration::from_secs(5)).await;
    let models: serde_json::Value = reqwest::get(format!("http://{}/models", running.http_addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reason = models["models"][0]["decisions"]["h100"]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert_observed(&reason, 6.0);

    // The h100 replica gets busier: 10 req/s in total.
    h100.set_load(load(8.0));
    wait_desired(&mut c, "llama", "h100", 2.5, 0.03, Duration::from_secs(10)).await;

    // One engine goes away.
    a100.stop();
    let took = wait_unavailable_keeping_state(
        &mut c,
        "llama",
        "h100",
        Instant::now(),
        Duration::from_secs(3),
    )
    .await;
    eprintln!(
        "endpoint down → GetMetrics UNAVAILABLE after {:.0} ms",
        took.as_secs_f64() * 1e3
    );

    // It restarts with its counters at zero: no negative rate, back to 10 req/s.
    let restarted = Instant::now();
    a100.restart().await;
    wait_desired(&mut c, "llama", "h100", 2.5, 0.03, Duration::from_secs(15)).await;
    eprintln!(
        "endpoint back → GetMetrics answers again after {:.0} ms",
        restarted.elapsed().as_secs_f64() * 1e3
    );
    running.shutdown();
}
