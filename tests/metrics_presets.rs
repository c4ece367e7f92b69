//! One test per engine preset: a recorded-shape exposition (`tests/fixtures/metrics/`,
//! two snapshots 10 s apart) served by a real loopback HTTP server, scraped by the direct
//! scrape source, and every derived signal checked against the numbers the fixtures were
//! built to give.

use std::time::Duration;

use slo_scaler::metrics::scrape::{
    Endpoint, HttpFetcher, ScrapeObserver, ScrapeSettings, StaticEndpoints,
};
use slo_scaler::metrics::{Engine, Observation, Target};
use slo_scaler_integration::prometheus::{EngineLoad, TestExporter};
use slo_scaler_integration::*;

const SERVED: &str = "meta-llama/Llama-3.1-8B-Instruct";

async fn observe_fixture(stem: &str, engine: Engine) -> Observation {
    init_crypto();
    let dir = repo_root().join("tests/fixtures/metrics");
    let read = |t: u32| std::fs::read_to_string(dir.join(format!("{stem}.t{t}.prom"))).unwrap();
    let exporter = TestExporter::start(SERVED, EngineLoad::default()).await;
    let observer = ScrapeObserver::new(
        StaticEndpoints(vec![Endpoint {
            url: exporter.url(),
            model: "llama".into(),
            variant: "h100".into(),
        }]),
        HttpFetcher::new(Duration::from_secs(2)).unwrap(),
        ScrapeSettings {
            rate_window_s: 60.0,
            stale_after_s: 30.0,
            history_len: 10,
        },
    );
    exporter.set_body(&read(0));
    observer.refresh_at(0.0).await;
    exporter.set_body(&read(10));
    observer.refresh_at(10.0).await;
    let target = Target {
        model: "llama".into(),
        engine,
        served_name: SERVED.into(),
        model_label: engine.preset().model_label.map(str::to_string),
        matchers: None,
        variant_label: None,
    };
    observer
        .observe_at(&target, 10.0)
        .expect("fixture observes")
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

/// What the fixtures encode: 50 requests, 25,000 prompt and 5,000 output tokens in 10 s;
/// TTFT p90 0.40625 s; inter-token p90 0.05 s; 5 running, 2 waiting, KV 25 %.
fn assert_common(o: &Observation) {
    assert!((o.requests_per_s - 5.0).abs() < 1e-9, "{o:?}");
    assert!(close(o.prompt_tokens_per_s, 2500.0), "{o:?}");
    assert!(close(o.generation_tokens_per_s, 500.0), "{o:?}");
    assert!(close(o.running, 5.0), "{o:?}");
    assert!(close(o.waiting, 2.0), "{o:?}");
    assert!(close(o.tpot_p90_s, 0.05), "{o:?}");
    assert_eq!(o.requests_per_s_by_variant["h100"], o.requests_per_s);
}

#[tokio::test]
async fn vllm_current_names() {
    let o = observe_fixture("vllm", Engine::Vllm).await;
    assert_common(&o);
    assert!(close(o.kv_cache_usage, 0.25), "{o:?}");
    assert!(close(o.ttft_p90_s, 0.40625), "{o:?}");
}

#[tokio::test]
async fn vllm_older_names() {
    let o = observe_fixture("vllm-v0", Engine::Vllm).await;
    assert_common(&o);
    assert!(close(o.kv_cache_usage, 0.25), "gpu_cache_usage_perc: {o:?}");
    assert!(close(o.ttft_p90_s, 0.40625), "{o:?}");
}

#[tokio::test]
async fn sglang() {
    let o = observe_fixture("sglang", Engine::Sglang).await;
    assert_common(&o);
    assert!(close(o.kv_cache_usage, 0.25), "{o:?}");
    assert!(close(o.ttft_p90_s, 0.40625), "{o:?}");
}

#[tokio::test]
async fn tgi() {
    let o = observe_fixture("tgi", Engine::Tgi).await;
    assert_common(&o);
    assert_eq!(o.kv_cache_usage, None, "TGI has no KV-cache gauge");
    assert_eq!(o.ttft_p90_s, None, "TGI has no TTFT histogram");
}
