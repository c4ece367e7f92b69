//! `slo-scaler serve --observe-only` as a process, asked by a real gRPC client: KEDA gets
//! the replicas running now (here: the engines scraped per variant), while `/models` and
//! `/metrics` carry what the scaler would do. When the running count cannot be read (a
//! kube-state-metrics query against a real Prometheus that has no such series), KEDA gets
//! UNAVAILABLE naming the query and the recommendation — never a 0.

use std::time::Duration;

use slo_scaler::keda::metric_name;
use slo_scaler::proto::GetMetricsRequest;
use slo_scaler::proto::external_scaler_client::ExternalScalerClient;
use slo_scaler_integration::prometheus::*;
use slo_scaler_integration::*;

async fn engines() -> Vec<(TestExporter, &'static str)> {
    let load = EngineLoad {
        requests_per_s: 12.0,
        prompt_tokens_per_request: 1000.0,
        output_tokens_per_request: 200.0,
        ..EngineLoad::default()
    };
    let mut out = Vec::new();
    for variant in ["h200", "h200", "a100"] {
        out.push((TestExporter::start("meta/llama", load).await, variant));
    }
    out
}

fn config(dir: &std::path::Path, engines: &[(TestExporter, &str)], extra: &str) -> String {
    let endpoints: String = engines
        .iter()
        .map(|(e, v)| {
            format!(
                "      - {{ url: '{}', model: llama, variant: {v} }}\n",
                e.url()
            )
        })
        .collect();
    let yaml = format!(
        "evaluation: {{ interval_s: 0.25, timeout_s: 1.5, stale_after_s: 5 }}
metrics:
  stale_after_s: 2
  rate_window_s: 2
{extra}  scrape:
    timeout_s: 0.5
    endpoints:
{endpoints}models:
  - name: llama
    slo: {{ ttft_ms: 1000, tpot_ms: 50, percentile: p90 }}
    request_mix: {{ prompt_tokens: 1000, output_tokens: 200 }}
    variants:
      - {{ name: h200, profile: builtin/llama-3.1-8b-fp8_h200_tp1, gpu_type: H200, max_replicas: 16 }}
      - {{ name: a100, profile: builtin/llama-3.1-8b_a100-80gb_tp1_derived, gpu_type: A100-80GB, max_replicas: 16 }}
    demand: {{ kind: scrape, engine: vllm, served_name: meta/llama }}
"
    );
    let path = dir.join("fleet.yaml");
    std::fs::write(&path, yaml).unwrap();
    path.to_str().unwrap().to_string()
}

async fn ask(
    c: &mut ExternalScalerClient<tonic::transport::Channel>,
    variant: &str,
) -> Result<f64, tonic::Status> {
    c.get_metrics(GetMetricsRequest {
        scaled_object_ref: Some(sor(Some("llama"), Some(variant), &[])),
        metric_name: metric_name("llama", Some(variant)),
    })
    .await
    .map(|r| r.into_inner().metric_values[0].metric_value_float)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keda_gets_running_replicas_while_decisions_are_exported() {
    init_crypto();
    let engines = engines().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &engines, "");
    let scaler = ScalerProcess::spawn(&["--config", &cfg, "--observe-only"]);
    let mut c = ExternalScalerClient::connect(format!("http://{}", scaler.grpc_addr))
        .await
        .unwrap();
    // Once the scrapes have a rate (two in the window), every answer is the running count.
    let mut answers = None;
    for _ in 0..100 {
        let got = (ask(&mut c, "h200").await, ask(&mut c, "a100").await);
        let done = got.0.is_ok() && got.1.is_ok();
        answers = Some(got);
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answers = answers.unwrap();
    assert_eq!(answers.0.as_ref().ok(), Some(&2.0), "{answers:?}");
    assert_eq!(answers.1.as_ref().ok(), Some(&1.0), "{answers:?}");

    // The decision itself is in /models and /metrics.
    let models: serde_json::Value = reqwest::get(format!("{}/models", scaler.http_base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let d = &models["models"][0]["decisions"]["h200"];
    let details = &d["details"];
    assert_eq!(details["current_replicas"], 2.0, "{d}");
    assert_eq!(details["observe_only"], 1.0, "{d}");
    let recommended = details["recommended_replicas"].as_f64().unwrap();
    assert_eq!(
        details["planned_replicas"].as_f64().unwrap(),
        recommended,
        "{d}"
    );
    // 36 req/s observed: the pipeline wants capacity for it (the SLO pipeline's own numbers).
    let a100 = &models["models"][0]["decisions"]["a100"]["details"];
    let capacity = recommended * details["capacity_per_replica_rps"].as_f64().unwrap()
        + a100["recommended_replicas"].as_f64().unwrap()
            * a100["capacity_per_replica_rps"].as_f64().unwrap();
    assert!(
        capacity >= details["demand_upper_rps"].as_f64().unwrap(),
        "the recommendation covers the demand: {models}"
    );
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.contains("observe-only: answering the 2 running replica(s); would ask for"),
        "{reason}"
    );
    let metrics = reqwest::get(format!("{}/metrics", scaler.http_base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for field in [
        "recommended_replicas",
        "current_replicas",
        "demand_upper_rps",
    ] {
        let series = format!(
            r#"slo_scaler_decision_detail{{model="llama",variant="h200",field="{field}"}}"#
        );
        assert!(metrics.contains(&series), "{series} missing:\n{metrics}");
    }
    assert!(
        metrics.contains(r#"slo_scaler_desired_replicas{model="llama",variant="h200"} 2"#),
        "what KEDA is answered is what /metrics says it is answered:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_running_replicas_are_unavailable_not_zero() {
    init_crypto();
    let engines = engines().await;
    // A real Prometheus, without kube-state-metrics: the count query finds nothing.
    let prom = PrometheusProcess::start(&[], 60.0);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &engines,
        &format!(
            "  prometheus: {{ url: '{}', timeout_s: 0.5, retries: 0 }}\n",
            prom.url
        ),
    );
    let scaler = ScalerProcess::spawn(&[
        "--config",
        &cfg,
        "--observe-only",
        "--current-replicas-query",
        r#"kube_deployment_status_replicas_ready{deployment="{model}-{variant}"}"#,
    ]);
    let mut c = ExternalScalerClient::connect(format!("http://{}", scaler.grpc_addr))
        .await
        .unwrap();
    let mut last = None;
    for _ in 0..100 {
        match ask(&mut c, "h200").await {
            Ok(v) => panic!("answered {v} without knowing the running replicas"),
            Err(s) if s.message().contains("would ask for") => {
                last = Some(s);
                break;
            }
            Err(s) => last = Some(s),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = last.unwrap();
    assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}");
    assert!(
        s.message()
            .contains(r#"kube_deployment_status_replicas_ready{deployment="llama-h200"}"#)
            && s.message().contains("returned no series")
            && s.message().contains("would ask for"),
        "{s:?}"
    );
}
