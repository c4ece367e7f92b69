//! The Prometheus source end to end: a test exporter serving vLLM-format metrics, a real
//! Prometheus scraping it every second, the scaler reading through Prometheus and
//! answering KEDA over gRPC. Load changes move the replicas; killing Prometheus makes
//! `GetMetrics` UNAVAILABLE within 3 s while `GetMetricSpec` answers and `IsActive` never
//! says inactive; restarting it recovers without restarting the scaler.

use std::time::{Duration, Instant};

use slo_scaler::config::{Config, PrometheusConfig};
use slo_scaler::demo::CapacityRulePlanner;
use slo_scaler::metrics::prometheus::{ObserverSettings, PrometheusClient, PrometheusObserver};
use slo_scaler::metrics::{DemandObserver, Engine, MetricsError, Target};
use slo_scaler_integration::prometheus::*;
use slo_scaler_integration::*;

fn config(prom_url: &str) -> Config {
    let yaml = format!(
        "evaluation: {{ interval_s: 0.25, timeout_s: 0.8, stale_after_s: 1.0 }}
metrics:
  stale_after_s: 5
  rate_window_s: 5
  prometheus: {{ url: '{prom_url}', timeout_s: 0.3, retries: 1, backoff_s: 0.05 }}
models:
  - name: llama
    variants:
      - {{ name: h100, capacity_rps: 2.0 }}
    demand: {{ kind: prometheus, engine: vllm, served_name: meta/llama }}
"
    );
    Config::from_yaml(&yaml, "test config").expect("valid test config")
}

fn target(engine: Engine) -> Target {
    Target {
        model: "llama".into(),
        engine,
        served_name: "meta/llama".into(),
        model_label: engine.preset().model_label.map(str::to_string),
        matchers: None,
        variant_label: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_source_end_to_end_with_outage_and_recovery() {
    init_crypto();
    let exporter = TestExporter::start("meta/llama", EngineLoad::default()).await;
    let mut prom = PrometheusProcess::start(&[exporter.addr], 1.0);
    let cfg = config(&prom.url);

    // What the source derives, read through the real Prometheus. Generous timeouts here:
    // this part checks values, and the machine is shared with other builds.
    let observer = PrometheusObserver::new(
        PrometheusClient::new(&PrometheusConfig {
            timeout_s: 5.0,
            retries: 2,
            ..cfg.metrics.prometheus.clone().unwrap()
        })
        .unwrap(),
        ObserverSettings {
            rate_window_s: 5.0,
            stale_after_s: 5.0,
            history_s: 0.0,
            history_step_s: 60.0,
        },
    );
    let vllm = target(Engine::Vllm);
    let obs = poll_until(Duration::from_secs(20), || async {
        observer
            .observe(&vllm)
            .await
            .ok()
            .filter(|o| (o.requests_per_s - 4.0).abs() < 0.1 && o.ttft_p90_s.is_some())
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no observation of 4 req/s within 20 s; prometheus log:\n{}",
            prom.log()
        )
    });
    let near = |v: Option<f64>, want: f64, tol: f64| v.is_some_and(|v| (v - want).abs() <= tol);
    assert!(near(obs.prompt_tokens_per_s, 2000.0, 50.0), "{obs:?}");
    assert!(near(obs.generation_tokens_per_s, 400.0, 10.0), "{obs:?}");
    assert_eq!((obs.running, obs.waiting), (Some(6.0), Some(1.0)));
    assert_eq!(obs.kv_cache_usage, Some(0.4));
    // Every TTFT is 0.2 s, in the (0.1, 0.25] bucket; ITL 0.03 s in (0.025, 0.05].
    let ttft = obs.ttft_p90_s.unwrap();
    assert!(ttft > 0.1 && ttft <= 0.25, "ttft p90 {ttft}");
    let tpot = obs.tpot_p90_s.unwrap();
    assert!(tpot > 0.025 && tpot <= 0.05, "tpot p90 {tpot}");
    assert!(obs.data_age_s < 2.5, "{obs:?}");
    // The other presets' PromQL is valid for a real Prometheus: no series, not a rejected query.
    for engine in [Engine::Sglang, Engine::Tgi] {
        match observer.observe(&target(engine)).await {
            Err(MetricsError::Absent { .. }) => {}
            other => panic!("{engine:?}: expected Absent, got {other:?}"),
        }
    }

    // Through the scaler and gRPC: 4 req/s ÷ 2 req/s per replica = 2 replicas.
    let planner = CapacityRulePlanner::try_new(&cfg).unwrap();
    let running = start_scaler(planner, cfg.evaluation, None).await;
    let mut c = client(&running).await;
    wait_desired(&mut c, "llama", "h100", 2.0, 0.05, Duration::from_secs(15)).await;
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
    assert_observed(&reason, 4.0);
    assert!(reason.contains("ttft p90 0.2"), "{reason}");

    // Load doubles → replicas double.
    exporter.set_load(EngineLoad {
        requests_per_s: 8.0,
        ..EngineLoad::default()
    });
    wait_desired(&mut c, "llama", "h100", 4.0, 0.05, Duration::from_secs(15)).await;

    // Prometheus dies.
    prom.kill();
    let took = wait_unavailable_keeping_state(
        &mut c,
        "llama",
        "h100",
        Instant::now(),
        Duration::from_secs(3),
    )
    .await;
    eprintln!(
        "prometheus killed → GetMetrics UNAVAILABLE after {:.0} ms",
        took.as_secs_f64() * 1e3
    );

    // Back again: the same scaler recovers.
    let restarted = Instant::now();
    prom.restart();
    eprintln!(
        "prometheus ready again after {:.0} ms",
        restarted.elapsed().as_secs_f64() * 1e3
    );
    wait_desired(&mut c, "llama", "h100", 4.0, 0.05, Duration::from_secs(20)).await;
    eprintln!(
        "prometheus restarted → GetMetrics answers again after {:.0} ms",
        restarted.elapsed().as_secs_f64() * 1e3
    );
    running.shutdown();
}

/// The shipped binary: `slo-scaler serve --config` with `kind: prometheus` (and a history
/// backfill at start) reads demand through a real Prometheus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_binary_reads_demand_through_prometheus() {
    init_crypto();
    let exporter = TestExporter::start(
        "meta/llama",
        EngineLoad {
            requests_per_s: 3.0,
            ..EngineLoad::default()
        },
    )
    .await;
    let prom = PrometheusProcess::start(&[exporter.addr], 1.0);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scaler.yaml");
    let yaml = format!(
        "evaluation: {{ interval_s: 0.25, timeout_s: 1.5, stale_after_s: 2 }}
metrics:
  stale_after_s: 5
  rate_window_s: 5
  prometheus: {{ url: '{}', timeout_s: 0.5, retries: 1, history_days: 0.01, history_step_s: 5 }}
models:
  - name: llama
    variants:
      - {{ name: h100, capacity_rps: 2.0 }}
    demand: {{ kind: prometheus, engine: vllm, served_name: meta/llama }}
",
        prom.url
    );
    std::fs::write(&file, yaml).unwrap();
    let scaler = ScalerProcess::spawn(&["--config", file.to_str().unwrap()]);
    let mut c = slo_scaler::proto::external_scaler_client::ExternalScalerClient::connect(format!(
        "http://{}",
        scaler.grpc_addr
    ))
    .await
    .unwrap();
    // 3 req/s ÷ 2 req/s per replica.
    wait_desired(&mut c, "llama", "h100", 1.5, 0.05, Duration::from_secs(20)).await;
    let models: serde_json::Value = reqwest::get(format!("{}/models", scaler.http_base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reason = models["models"][0]["decisions"]["h100"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_observed(&reason, 3.0);
}
