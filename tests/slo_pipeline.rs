//! The SLO pipeline behind `serve`: profiles → capacity under the SLO → least-cost plan
//! within the GPU inventory, answered over gRPC and explained in `GET /models`.

use slo_scaler::config::Config;
use slo_scaler::keda::metric_name;
use slo_scaler::planner::FleetPlanner;
use slo_scaler::proto::GetMetricsRequest;
use slo_scaler_integration::*;

fn fixture() -> (Config, std::path::PathBuf) {
    let path = repo_root().join("tests/fixtures/slo-fleet.yaml");
    (
        Config::from_file(&path).unwrap(),
        path.parent().unwrap().to_path_buf(),
    )
}

#[tokio::test]
async fn slo_models_are_sized_by_profile_capacity_within_inventory() {
    let (config, dir) = fixture();
    let planner = FleetPlanner::try_new(&config, Some(&dir)).unwrap();
    let caps = planner.fleet().models()[0].capacities();
    let running = start_scaler(planner, config.evaluation, None).await;
    let mut c = client(&running).await;
    let mut replicas = std::collections::BTreeMap::new();
    for v in ["h200", "a100"] {
        let r = c
            .get_metrics(GetMetricsRequest {
                scaled_object_ref: Some(sor(Some("llama-3.1-8b-instruct"), Some(v), &[])),
                metric_name: metric_name("llama-3.1-8b-instruct", Some(v)),
            })
            .await
            .unwrap()
            .into_inner();
        replicas.insert(v, r.metric_values[0].metric_value_float);
    }
    // H200 serves a request for less than A100 (both profiles' prices), but only 4 H200
    // GPUs are free: 4 × H200, and A100s cover the rest of the 160 req/s (a brand-new
    // model: its forecast is the observed demand).
    assert_eq!(replicas["h200"], 4.0, "{replicas:?} {caps:?}");
    assert!(replicas["a100"] > 0.0, "{replicas:?}");
    let capacity = replicas["h200"] * caps["h200"] + replicas["a100"] * caps["a100"];
    assert!(
        capacity >= 160.0,
        "capacity {capacity} covers 160 req/s: {replicas:?} {caps:?}"
    );
    assert!(
        capacity - caps["a100"] < 160.0,
        "one A100 fewer would not cover it: {replicas:?} {caps:?}"
    );

    let models: serde_json::Value = reqwest::get(format!("http://{}/models", running.http_addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reason = models["models"][0]["decisions"]["h200"]["reason"]
        .as_str()
        .unwrap();
    assert!(reason.contains("TTFT p90 ≤ 1000 ms"), "{reason}");
    assert!(reason.contains("req/s per replica"), "{reason}");
    let details = &models["models"][0]["decisions"]["h200"]["details"];
    assert_eq!(details["demand_upper_rps"], 160.0, "{details}");
    assert!((details["capacity_per_replica_rps"].as_f64().unwrap() - caps["h200"]).abs() < 1e-9);
    assert_eq!(details["planned_replicas"], 4.0);
    let metrics = reqwest::get(format!("http://{}/metrics", running.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"slo_scaler_decision_detail{model="llama-3.1-8b-instruct",variant="a100",field="demand_upper_rps"} 160.0"#),
        "{metrics}"
    );
    for series in [
        r#"slo_scaler_demand_rps{model="llama-3.1-8b-instruct"} 160.0"#,
        r#"slo_scaler_slo_target_seconds{model="llama-3.1-8b-instruct",kind="ttft"} 1.0"#,
        r#"slo_scaler_forecast_rps{model="llama-3.1-8b-instruct",bound="upper"} 160.0"#,
        r#"slo_scaler_decision_reason{model="llama-3.1-8b-instruct",variant="h200",reason="#,
        r#"slo_scaler_predicted_latency_seconds{model="llama-3.1-8b-instruct",variant="h200",kind="tpot"}"#,
    ] {
        assert!(
            metrics.contains(series),
            "{series} missing from:\n{metrics}"
        );
    }
    // Exactly one current reason per variant.
    let reasons = metrics
        .lines()
        .filter(|l| {
            l.starts_with(
                r#"slo_scaler_decision_reason{model="llama-3.1-8b-instruct",variant="h200""#,
            )
        })
        .count();
    assert_eq!(reasons, 1, "{metrics}");
    // The predicted TPOT of the decided H200s meets the SLO (they were sized for it).
    let tpot: f64 = metrics
        .lines()
        .find(|l| l.starts_with(r#"slo_scaler_predicted_latency_seconds{model="llama-3.1-8b-instruct",variant="h200",kind="tpot"}"#))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        tpot > 0.0 && tpot <= 0.050,
        "predicted p90 TPOT {tpot} s within 50 ms"
    );
    // The rule-sized model is still served: 3 req/s ÷ 2 per replica.
    assert_eq!(
        models["models"][1]["decisions"]["l4"]["desired_replicas"],
        1.5
    );
}

#[test]
fn an_slo_no_variant_can_meet_fails_at_start_naming_it() {
    let (mut config, dir) = fixture();
    config.models[0].slo.as_mut().unwrap().tpot_ms = 0.5;
    let err = FleetPlanner::try_new(&config, Some(&dir))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("llama-3.1-8b-instruct") && err.contains("h200"),
        "{err}"
    );
    let mut config = fixture().0;
    config.models[0].variants[0].profile = Some("builtin/nope".into());
    let err = FleetPlanner::try_new(&config, Some(&dir))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("builtin/nope") && err.contains("llama-3.1-8b-fp8_h200_tp1"),
        "{err}"
    );
}

#[test]
fn config_rejects_capacity_rps_with_an_slo_and_an_slo_without_profiles() {
    let yaml = "models:\n  - name: m\n    slo: {ttft_ms: 1000, tpot_ms: 50, percentile: p90}\n    request_mix: {prompt_tokens: 100, output_tokens: 100}\n    variants: [{name: a, capacity_rps: 3, profile: builtin/x}]\n    demand: {kind: constant, rps: 1}\n";
    let err = Config::from_yaml(yaml, "x.yaml").unwrap_err().to_string();
    assert!(err.contains("capacity_rps"), "{err}");
    let yaml = "models:\n  - name: m\n    slo: {ttft_ms: 1000, tpot_ms: 50, percentile: p90}\n    request_mix: {prompt_tokens: 100, output_tokens: 100}\n    variants: [{name: a}]\n    demand: {kind: constant, rps: 1}\n";
    let err = Config::from_yaml(yaml, "x.yaml").unwrap_err().to_string();
    assert!(err.contains("profile"), "{err}");
    let yaml = "models:\n  - name: m\n    slo: {ttft_ms: 1000, tpot_ms: 50, percentile: p95}\n    request_mix: {prompt_tokens: 100, output_tokens: 100}\n    variants: [{name: a, profile: builtin/x}]\n    demand: {kind: constant, rps: 1}\n";
    let err = Config::from_yaml(yaml, "x.yaml").unwrap_err().to_string();
    assert!(err.contains("p95") || err.contains("percentile"), "{err}");
}
