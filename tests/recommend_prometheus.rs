//! `slo-scaler recommend --prometheus` against a real Prometheus whose past was written by
//! `promtool tsdb create-blocks-from openmetrics`: three days of a vLLM request counter
//! following a known daily cycle, and the running-requests gauge of three engines (two
//! on H200, one on A100, told apart by a `gpu` label). A second model has no series at
//! all: its failure must name the query and what to check.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use slo_scaler_integration::prometheus::PrometheusProcess;
use slo_scaler_integration::*;

const DAY: f64 = 86_400.0;

/// The known demand: 20 ± 10 req/s over a day.
fn rate(t: f64) -> f64 {
    20.0 + 10.0 * (2.0 * std::f64::consts::PI * t / DAY).sin()
}

#[test]
fn recommends_from_backfilled_prometheus_history_and_counts_running_engines() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let end = now - now % 60 - 120;
    let start = end - 3 * 86_400;
    let mut om = String::from("# TYPE vllm:request_success counter\n");
    let mut v = 0.0;
    let mut t = start;
    while t <= end {
        v += rate(t as f64) * 60.0;
        om += &format!(
            "vllm:request_success_total{{model_name=\"meta/llama\",gpu=\"h200\",finished_reason=\"stop\"}} {v:.3} {t}\n"
        );
        t += 60;
    }
    om += "# TYPE vllm:num_requests_running gauge\n";
    for (engine, gpu) in [("e1", "h200"), ("e2", "h200"), ("e3", "a100")] {
        let mut t = end - 3600;
        while t <= end {
            om += &format!(
                "vllm:num_requests_running{{model_name=\"meta/llama\",gpu=\"{gpu}\",instance=\"{engine}\"}} 3 {t}\n"
            );
            t += 60;
        }
    }
    om += "# EOF\n";
    let prom = PrometheusProcess::start_with_history(&om);

    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("fleet.yaml");
    std::fs::write(
        &cfg,
        r#"
metrics:
  rate_window_s: 600
  prometheus: { url: "http://127.0.0.1:1" }
sizing: { forecast_interval_s: 600 }
models:
  - name: llama
    slo: { ttft_ms: 1000, tpot_ms: 50, percentile: p90 }
    request_mix: { prompt_tokens: 1000, output_tokens: 200 }
    variants:
      - { name: h200, profile: builtin/llama-3.1-8b-fp8_h200_tp1, gpu_type: H200, cost_per_hour: 3.8 }
      - { name: a100, profile: builtin/llama-3.1-8b_a100-80gb_tp1_derived, gpu_type: A100-80GB, cost_per_hour: 1.6 }
    demand: { kind: prometheus, engine: vllm, served_name: meta/llama, variant_label: gpu }
  - name: ghost
    slo: { ttft_ms: 1000, tpot_ms: 50, percentile: p90 }
    request_mix: { prompt_tokens: 1000, output_tokens: 200 }
    variants:
      - { name: h200, profile: builtin/llama-3.1-8b-fp8_h200_tp1 }
    demand: { kind: prometheus, engine: vllm, served_name: meta/ghost, matchers: 'job="vllm"' }
"#,
    )
    .unwrap();
    let at = end.to_string();
    let out = Command::new(scaler_bin())
        .args([
            "recommend",
            "--config",
            cfg.to_str().unwrap(),
            // The flag overrides the config's (unreachable) URL.
            "--prometheus",
            &prom.url,
            "--at",
            &at,
            "--history-days",
            "3",
            "--hours",
            "6",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // One model without data: the command prints the rest, then fails naming it.
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stderr.contains("1 model(s) without a recommendation") && stderr.contains("ghost"),
        "{stderr}"
    );
    let r: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}\n{}", prom.log()));
    assert_eq!(r["clock"], "unix");
    let m = &r["models"][0];
    assert!(m["error"].is_null(), "{}", m["error"]);
    // Three days at 600 s: 433 steps, less the first rate window.
    let points = m["history_points"].as_u64().unwrap();
    assert!((420..=433).contains(&points), "{points}");
    // The last observed demand is the known rate at --at (rate() over 600 s of a smooth
    // curve: within 2 %).
    let observed = m["demand_now_rps"].as_f64().unwrap();
    let want = rate(end as f64 - 300.0);
    assert!(
        (observed - want).abs() / want < 0.02,
        "observed {observed}, want {want}"
    );
    // The forecast follows the cycle: each hour's point within 15 % of the known rate.
    for h in 0..6 {
        let p = m["forecast"][h]["point_rps"].as_f64().unwrap();
        let mid = end as f64 + (h as f64 + 0.5) * 3600.0;
        let want = rate(mid);
        assert!(
            (p - want).abs() / want < 0.15,
            "hour {h}: point {p}, known {want}: {}",
            m["forecast"]
        );
    }
    // Running replicas are the engines reporting the running gauge, per gpu label.
    let c = &m["savings"]["current"];
    assert_eq!(c["replicas"]["h200"], 2, "{c}");
    assert_eq!(c["replicas"]["a100"], 1, "{c}");
    assert!(c["cost_per_hour"].as_f64().unwrap() > 0.0);

    let g = &r["models"][1];
    let e = g["error"].as_str().unwrap();
    assert!(
        e.contains("returned no series")
            && e.contains(r#"vllm:request_success_total{model_name="meta/ghost",job="vllm"}"#)
            && e.contains("demand.served_name")
            && e.contains("retention"),
        "{e}"
    );
}
