//! The warm pool wired as `serve --kubernetes` wires it, in process: a planner wrapped in
//! `TieredPlanner`, the scaler answering a real tonic client, the Lease election and the
//! actuator task against the recording fake API server and fake engines. What KEDA is told
//! follows the tiers (hot + warm, + a cold replica after a failed wake, with the reason in
//! `/models`), and the pods follow the plan.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use slo_scaler::config::Config;
use slo_scaler::k8s::deletion_cost::{DeletionCostWriter, PatchBudget};
use slo_scaler::k8s::lease::{self, LeaseConfig};
use slo_scaler::metrics::scrape::HttpFetcher;
use slo_scaler::warm::actuator::{Actuator, EngineAddress, VariantPods};
use slo_scaler::warm::engine::{EngineTimeouts, HttpEngine};
use slo_scaler::warm::kv_value::KvWeights;
use slo_scaler::warm::tiered::{Reports, TieredPlanner, spawn_actuator};
use slo_scaler_integration::fake_apiserver::FakeApi;
use slo_scaler_integration::fake_vllm::FakeVllm;
use slo_scaler_integration::prometheus::wait_desired;
use slo_scaler_integration::*;
use tokio_util::sync::CancellationToken;

const SERVING: &str = "slo-scaler.io/serving";

async fn reason(running: &slo_scaler::server::Running) -> String {
    let models: serde_json::Value = reqwest::get(format!("http://{}/models", running.http_addr))
        .await
        .expect("GET /models")
        .json()
        .await
        .expect("json");
    models["models"][0]["decisions"]["h100"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiers_drive_keda_and_the_pods_with_a_cold_fallback_after_a_failed_wake() {
    init_crypto();
    let api = FakeApi::start().await;
    let (port, engines) = FakeVllm::start_on_shared_port(20, 3).await;
    for (i, name) in ["llama-a", "llama-b", "llama-c"].iter().enumerate() {
        api.add_pod(
            "llm",
            name,
            &format!("127.0.0.{}", 20 + i),
            json!({"app": "vllm-llama", SERVING: "true"}),
        );
    }
    engines[0].set(|s| s.kv_usage = 0.8);
    engines[1].set(|s| s.kv_usage = 0.6);

    let planner = ScriptedPlanner::new(&[("llama", &["h100"])]);
    planner.set("llama", "h100", 2.0);
    let reports = Reports::default();
    let (tiered, targets) = TieredPlanner::new(
        planner.clone(),
        BTreeMap::from([(("llama".to_string(), "h100".to_string()), 1)]),
        reports.clone(),
    );
    let running = start_scaler(tiered, fast_evaluation(5.0), None).await;
    let cancel = CancellationToken::new();
    let (ltx, leader) = tokio::sync::watch::channel(false);
    let mut lease_cfg = LeaseConfig::new(
        "slo-scaler",
        "slo-scaler",
        "scaler-0",
        Duration::from_secs(15),
    );
    lease_cfg.retry_period = Duration::from_millis(100);
    let lease_task = lease::spawn(api.client(), lease_cfg, ltx, cancel.clone());
    let actuator = Actuator::new(
        api.client(),
        Arc::new(
            HttpEngine::new(EngineTimeouts {
                call: Duration::from_secs(2),
                wake: Duration::from_secs(2),
            })
            .expect("engine client"),
        ),
        Arc::new(HttpFetcher::new(Duration::from_secs(2)).expect("fetcher")),
        EngineAddress {
            scheme: "http".into(),
            port,
        },
        KvWeights::default(),
        DeletionCostWriter::new(PatchBudget::new(50.0, 50)),
    );
    let task = spawn_actuator(
        actuator,
        vec![VariantPods {
            model: "llama".into(),
            variant: "h100".into(),
            namespace: "llm".into(),
            selector: "app=vllm-llama".into(),
        }],
        targets,
        leader,
        reports,
        Duration::from_millis(100),
        cancel.clone(),
    );
    let mut c = client(&running).await;

    // 2 hot + 1 warm: KEDA keeps 3 pods, the idle one (llama-c) drains and sleeps.
    wait_desired(&mut c, "llama", "h100", 3.0, 1e-9, Duration::from_secs(5)).await;
    assert!(
        eventually(Duration::from_secs(10), || engines[2].get().asleep).await,
        "llama-c asleep"
    );
    assert_eq!(
        api.pod("llm", "llama-c")["metadata"]["labels"][SERVING],
        "false"
    );
    assert!(!engines[0].get().asleep && !engines[1].get().asleep);

    // Demand up to 3 hot, but the warm replica's wake fails: a cold replica instead.
    engines[2].set(|s| s.fail_wake = true);
    planner.set("llama", "h100", 3.0);
    wait_desired(&mut c, "llama", "h100", 5.0, 1e-9, Duration::from_secs(10)).await;
    let r = reason(&running).await;
    assert!(r.contains("warm pool: hot 3 + warm 1"), "{r}");
    assert!(
        r.contains("wake of llama-c failed, cold scale-up next")
            || r.contains("cold scale-up instead of a failed wake (llama-c"),
        "{r}"
    );
    assert!(
        api.pod("llm", "llama-c")["metadata"]["annotations"]["slo-scaler.io/wake-failed"]
            .as_str()
            .is_some_and(|w| w.contains("HTTP 500")),
    );
    assert_eq!(
        api.pod("llm", "llama-c")["metadata"]["labels"][SERVING],
        "false"
    );

    // Demand gone, no warm floor reached yet: costs make llama-c (failed) go first.
    planner.set("llama", "h100", 0.0);
    wait_desired(&mut c, "llama", "h100", 1.0, 1e-9, Duration::from_secs(10)).await;
    assert!(
        eventually(Duration::from_secs(5), || {
            api.pod("llm", "llama-c")["metadata"]["annotations"]
                ["controller.kubernetes.io/pod-deletion-cost"]
                == "0"
        })
        .await,
        "the failed pod is the first removed: {}",
        api.pod("llm", "llama-c")
    );

    cancel.cancel();
    running.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), lease_task).await;
}

#[test]
fn warm_pool_config_is_checked_against_the_models() {
    let base = "models:
  - name: llama
    variants: [{ name: h100, capacity_rps: 2.0 }]
    demand: { kind: constant, rps: 1.0 }
";
    let ok = format!(
        "{base}warm_pool:\n  variants: [{{ model: llama, variant: h100, namespace: llm, selector: 'app=x', warm: 1 }}]\n"
    );
    let cfg = Config::from_yaml(&ok, "t").expect("valid");
    let w = cfg.warm_pool.expect("section");
    assert_eq!(
        (w.engine_port, w.wake_timeout_s, w.variants[0].warm),
        (8000, 60.0, 1)
    );
    let bad_variant = ok.replace("variant: h100", "variant: a100");
    let e = Config::from_yaml(&bad_variant, "t").expect_err("unknown variant");
    assert!(
        e.to_string().contains(
            "warm_pool.variants[0].variant \"a100\" is not a variant of model \"llama\" (h100)"
        ),
        "{e}"
    );
    let bad_field = ok.replace("warm: 1", "warm: 1, hot: 2");
    assert!(
        Config::from_yaml(&bad_field, "t").is_err(),
        "unknown fields are rejected"
    );
    let bad_timeout = format!("{ok}  wake_timeout_s: 0\n");
    let e = Config::from_yaml(&bad_timeout, "t").expect_err("zero timeout");
    assert!(
        e.to_string()
            .contains("warm_pool.wake_timeout_s must be a positive number"),
        "{e}"
    );
}

/// The binary: `serve --kubernetes` with a `warm_pool` section puts the warm replica to
/// sleep through the real wiring (config → actuator → HTTP engine client → pod patches),
/// and `serve` without `--kubernetes` refuses such a config, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_binary_runs_the_warm_pool_only_with_kubernetes() {
    let api = FakeApi::start().await;
    let (port, engines) = FakeVllm::start_on_shared_port(20, 2).await;
    for (i, name) in ["llama-a", "llama-b"].iter().enumerate() {
        api.add_pod(
            "llm",
            name,
            &format!("127.0.0.{}", 20 + i),
            json!({"app": "vllm-llama", SERVING: "true"}),
        );
    }
    engines[0].set(|s| s.kv_usage = 0.7);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.yaml");
    // 2 req/s at 2 req/s per replica: 1 hot, plus 1 warm.
    std::fs::write(
        &config,
        format!(
            "evaluation: {{ interval_s: 0.2, timeout_s: 0.8, stale_after_s: 2.0 }}
models:
  - name: llama
    variants: [{{ name: h100, capacity_rps: 2.0 }}]
    demand: {{ kind: constant, rps: 2.0 }}
warm_pool:
  interval_s: 0.2
  engine_port: {port}
  wake_timeout_s: 2
  variants: [{{ model: llama, variant: h100, namespace: llm, selector: 'app=vllm-llama', warm: 1 }}]
"
        ),
    )
    .expect("config");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context:\n    cluster: fake\n    user: u\ncurrent-context: c\n",
            api.url
        ),
    )
    .expect("kubeconfig");

    // Without --kubernetes: a clear refusal.
    let out = std::process::Command::new(scaler_bin())
        .args(["serve", "--config", config.to_str().expect("utf-8")])
        .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warm_pool in the config needs --kubernetes"),
        "{stderr}"
    );

    let mut scaler = ScalerProcess::spawn_with_env(
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--kubernetes",
            "--lease-name",
            "slo-scaler",
            "--pod-namespace",
            "slo-scaler",
            "--pod-name",
            "pod-under-test",
        ],
        &[("KUBECONFIG", kubeconfig.to_str().expect("utf-8"))],
    );
    let slept = eventually(Duration::from_secs(20), || engines[1].get().asleep).await;
    assert!(
        slept,
        "llama-b asleep; API calls: {:?}",
        api.seen()
            .iter()
            .map(|s| (&s.method, &s.path))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        api.pod("llm", "llama-b")["metadata"]["labels"][SERVING],
        "false"
    );
    assert!(!engines[0].get().asleep, "the valuable cache stays hot");
    let mut c = slo_scaler::proto::external_scaler_client::ExternalScalerClient::connect(format!(
        "http://{}",
        scaler.grpc_addr
    ))
    .await
    .expect("connect");
    wait_desired(&mut c, "llama", "h100", 2.0, 1e-9, Duration::from_secs(5)).await;
    scaler.sigterm();
    let exit = tokio::task::spawn_blocking(move || scaler.wait_exit(Duration::from_secs(15)))
        .await
        .expect("join")
        .expect("exits after SIGTERM");
    assert!(exit.success(), "{exit:?}");
}
