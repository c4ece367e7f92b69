//! The HTTP side (`/models`, `/metrics`, `/healthz`, `/readyz`) over real HTTP.

use std::time::Duration;

use slo_scaler::keda::metric_name;
use slo_scaler::proto::GetMetricsRequest;
use slo_scaler_integration::*;

#[tokio::test]
async fn models_lists_every_model_and_variant_with_decisions() {
    let p = ScriptedPlanner::new(&[("m1", &["h100", "a100"]), ("m2", &["l40s"])]);
    p.set("m1", "h100", 2.0);
    p.set("m1", "a100", 0.5);
    p.set_unavailable("m2", "no series for m2");
    let running = start_scaler(p, fast_evaluation(5.0), None).await;
    let body: serde_json::Value = reqwest::get(format!("http://{}/models", running.http_addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let models = body["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    assert_eq!(models[0]["name"], "m1");
    assert_eq!(models[0]["variants"], serde_json::json!(["h100", "a100"]));
    assert_eq!(models[0]["decisions"]["h100"]["desired_replicas"], 2.0);
    assert_eq!(models[0]["decisions"]["a100"]["desired_replicas"], 0.5);
    assert!(models[0]["error"].is_null());
    assert_eq!(models[1]["name"], "m2");
    assert!(
        models[1]["error"]
            .as_str()
            .unwrap()
            .contains("no series for m2")
    );
}

#[tokio::test]
async fn metrics_count_rpcs_by_method_and_code_and_export_decisions() {
    let p = ScriptedPlanner::new(&[("m1", &["h100"])]);
    p.set("m1", "h100", 3.25);
    let running = start_scaler(p, fast_evaluation(5.0), None).await;
    let mut c = client(&running).await;
    for _ in 0..3 {
        c.get_metrics(GetMetricsRequest {
            scaled_object_ref: Some(sor(Some("m1"), Some("h100"), &[])),
            metric_name: metric_name("m1", Some("h100")),
        })
        .await
        .unwrap();
    }
    let _ = c.is_active(sor(Some("zz"), None, &[])).await.unwrap_err();
    let resp = reqwest::get(format!("http://{}/metrics", running.http_addr))
        .await
        .unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("openmetrics")
    );
    let text = resp.text().await.unwrap();
    assert!(
        text.contains(r#"slo_scaler_grpc_requests_total{method="GetMetrics",code="OK"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"slo_scaler_grpc_requests_total{method="IsActive",code="NOT_FOUND"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"slo_scaler_grpc_request_duration_seconds_count{method="GetMetrics",code="OK"} 3"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"slo_scaler_desired_replicas{model="m1",variant="h100"} 3.25"#),
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"));
}

#[tokio::test]
async fn health_and_readiness() {
    let p = ScriptedPlanner::new(&[("m1", &["h100"])]);
    let running = start_scaler(p, fast_evaluation(5.0), None).await;
    let base = format!("http://{}", running.http_addr);
    assert_eq!(
        reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        reqwest::get(format!("{base}/readyz"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        reqwest::get(format!("{base}/nope")).await.unwrap().status(),
        404
    );
    running.shutdown();
    tokio::time::timeout(Duration::from_secs(5), running.wait())
        .await
        .unwrap()
        .unwrap();
}
