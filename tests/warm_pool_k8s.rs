//! The warm-pool actuator end to end on loopback: a fake Kubernetes API server that
//! records and verifies every request (`tests/support/fake_apiserver.rs`) and fake vLLM
//! engines with sleep-mode semantics on the pods' IPs (`127.0.0.x`, one port).
//!
//! Verified: deletion-cost patches (method, path, merge-patch content type, body; least
//! valuable cache first; rate limit), serving-label flips around sleep and wake, a failed
//! or timed-out wake turning into a cold scale-up with its reason, a failed sleep leaving
//! the replica hot, and that only the Lease holder writes — before and after a hand-over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::Method;
use serde_json::{Value, json};
use slo_scaler::k8s::deletion_cost::{DeletionCostWriter, PatchBudget};
use slo_scaler::k8s::k8s_openapi::jiff::Timestamp;
use slo_scaler::k8s::lease::{LeaseConfig, LeaseElector};
use slo_scaler::metrics::scrape::HttpFetcher;
use slo_scaler::warm::actuation::{StepOutcome, TierTarget};
use slo_scaler::warm::actuator::{Actuator, EngineAddress, VariantPods, VariantReport};
use slo_scaler::warm::engine::{EngineTimeouts, HttpEngine};
use slo_scaler::warm::kv_value::KvWeights;
use slo_scaler_integration::fake_apiserver::{FakeApi, Seen};
use slo_scaler_integration::fake_vllm::FakeVllm;

const NS: &str = "llm";
const COST: &str = "controller.kubernetes.io/pod-deletion-cost";
const SERVING: &str = "slo-scaler.io/serving";

struct Rig {
    api: FakeApi,
    engines: Vec<FakeVllm>,
    port: u16,
    names: Vec<String>,
}

impl Rig {
    async fn new(n: usize) -> Self {
        let api = FakeApi::start().await;
        let (port, engines) = FakeVllm::start_on_shared_port(2, n).await;
        let names: Vec<String> = (0..n)
            .map(|i| format!("llama-{}", (b'a' + i as u8) as char))
            .collect();
        for (i, name) in names.iter().enumerate() {
            api.add_pod(
                NS,
                name,
                &format!("127.0.0.{}", i + 2),
                json!({"app": "vllm-llama", "gpu": "h100", SERVING: "true"}),
            );
        }
        // A pod of another Deployment the selector must not pick.
        api.add_pod(NS, "other", "127.0.0.99", json!({"app": "other"}));
        Self {
            api,
            engines,
            port,
            names,
        }
    }

    fn actuator(&self, wake_timeout: Duration, budget: PatchBudget) -> Actuator {
        let timeouts = EngineTimeouts {
            call: Duration::from_secs(2),
            wake: wake_timeout,
        };
        Actuator::new(
            self.api.client(),
            Arc::new(HttpEngine::new(timeouts).expect("engine client")),
            Arc::new(HttpFetcher::new(Duration::from_secs(2)).expect("fetcher")),
            EngineAddress {
                scheme: "http".into(),
                port: self.port,
            },
            KvWeights::default(),
            DeletionCostWriter::new(budget),
        )
    }

    fn engine(&self, name: &str) -> &FakeVllm {
        &self.engines[self.names.iter().position(|n| n == name).expect("pod")]
    }

    fn label(&self, name: &str) -> Value {
        self.api.pod(NS, name)["metadata"]["labels"][SERVING].clone()
    }

    fn annotation(&self, name: &str, key: &str) -> Value {
        self.api.pod(NS, name)["metadata"]["annotations"][key].clone()
    }
}

fn variant() -> VariantPods {
    VariantPods {
        model: "llama".into(),
        variant: "h100".into(),
        namespace: NS.into(),
        selector: "app=vllm-llama,gpu=h100".into(),
    }
}

fn t(hot: u32, warm: u32) -> TierTarget {
    TierTarget { hot, warm }
}

fn generous() -> PatchBudget {
    PatchBudget::new(100.0, 100)
}

fn assert_pod_patch(s: &Seen, pod: &str, metadata: Value) {
    assert_eq!(s.method, Method::PATCH);
    assert_eq!(s.path, format!("/api/v1/namespaces/{NS}/pods/{pod}"));
    assert_eq!(
        s.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(s.body, json!({ "metadata": metadata }));
}

fn failures(r: &VariantReport) -> Vec<&StepOutcome> {
    r.outcomes
        .iter()
        .filter(|o| !matches!(o, StepOutcome::Done(_)))
        .collect()
}

#[tokio::test]
async fn scale_down_sets_deletion_costs_least_valuable_cache_first() {
    let rig = Rig::new(3).await;
    let mut act = rig.actuator(Duration::from_secs(5), generous());
    let t0 = Instant::now();
    // llama-a serves many prefix-cache hits, llama-b has a full cache and no hits,
    // llama-c is idle.
    rig.engine("llama-b").set(|s| s.kv_usage = 0.9);
    let r = act.round(&variant(), t(3, 0), true, t0).await;
    assert!(r.costs.is_none(), "no scale-down pending: no cost patches");
    assert!(rig.api.patches().is_empty(), "{:?}", rig.api.patches());
    let list = rig
        .api
        .seen()
        .into_iter()
        .find(|s| s.method == Method::GET)
        .expect("a list");
    assert_eq!(list.path, format!("/api/v1/namespaces/{NS}/pods"));
    assert!(
        list.query
            .contains("labelSelector=app%3Dvllm-llama%2Cgpu%3Dh100"),
        "{}",
        list.query
    );

    rig.engine("llama-a")
        .set(|s| s.prefix_hits_total = 40_000.0); // 4,000 tokens/s
    let r = act
        .round(&variant(), t(1, 0), true, t0 + Duration::from_secs(10))
        .await;
    assert_eq!(r.keda_replicas, 1);
    let costs = r.costs.expect("costs written before the count drops");
    assert_eq!(
        costs.written,
        [
            ("llama-c".to_string(), 0),
            ("llama-b".to_string(), 1),
            ("llama-a".to_string(), 2)
        ]
    );
    let patches = rig.api.patches();
    assert_eq!(patches.len(), 3, "{patches:?}");
    for (s, (pod, cost)) in patches
        .iter()
        .zip(["llama-c", "llama-b", "llama-a"].iter().zip(0..))
    {
        assert_pod_patch(s, pod, json!({"annotations": {COST: cost.to_string()}}));
    }
    assert_eq!(rig.annotation("llama-c", COST), "0");
    assert_eq!(
        rig.label("llama-a"),
        "true",
        "labels untouched: all stay hot"
    );

    // Same order next round (llama-a still serving 4,000 hit tokens/s): nothing re-sent.
    rig.engine("llama-a")
        .set(|s| s.prefix_hits_total = 80_000.0);
    let r = act
        .round(&variant(), t(1, 0), true, t0 + Duration::from_secs(20))
        .await;
    assert_eq!(r.costs.expect("pending").unchanged, 3);
    assert_eq!(rig.api.patches().len(), 3);
}

#[tokio::test]
async fn deletion_cost_patches_are_rate_limited() {
    let rig = Rig::new(3).await;
    let mut act = rig.actuator(Duration::from_secs(5), PatchBudget::new(1.0, 2));
    let t0 = Instant::now();
    let r = act.round(&variant(), t(0, 0), true, t0).await;
    let c = r.costs.expect("scale-down pending");
    assert_eq!((c.written.len(), c.deferred), (2, 1));
    let r = act
        .round(&variant(), t(0, 0), true, t0 + Duration::from_millis(500))
        .await;
    let c = r.costs.expect("pending");
    assert_eq!((c.written.len(), c.unchanged, c.deferred), (0, 2, 1));
    let r = act
        .round(&variant(), t(0, 0), true, t0 + Duration::from_millis(1_100))
        .await;
    let c = r.costs.expect("pending");
    assert_eq!(c.written, [("llama-c".to_string(), 2)]);
    assert_eq!(rig.api.patches().len(), 3);
}

#[tokio::test]
async fn sleep_drains_first_then_sleeps_and_a_verified_wake_serves_again() {
    let rig = Rig::new(2).await;
    let mut act = rig.actuator(Duration::from_secs(5), generous());
    let t0 = Instant::now();
    rig.engine("llama-a").set(|s| s.kv_usage = 0.5);
    // Demand fades: one hot, one warm.
    let r = act.round(&variant(), t(1, 1), true, t0).await;
    assert!(failures(&r).is_empty(), "{:?}", r.outcomes);
    let patches = rig.api.patches();
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_pod_patch(
        &patches[0],
        "llama-b",
        json!({"labels": {SERVING: "false"}}),
    );
    assert!(
        !rig.engine("llama-b").get().asleep,
        "not asleep before it is drained"
    );
    assert_eq!(r.keda_replicas, 2, "KEDA keeps hot + warm pods");

    let r = act
        .round(&variant(), t(1, 1), true, t0 + Duration::from_secs(5))
        .await;
    assert!(failures(&r).is_empty(), "{:?}", r.outcomes);
    assert!(rig.engine("llama-b").get().asleep);
    assert_eq!(rig.engine("llama-b").get().levels, ["1"]);
    assert_eq!(rig.label("llama-b"), "false");
    assert_eq!(rig.label("llama-a"), "true");
    assert!(r.reason.contains("hot 1/1 and warm 1/1"), "{}", r.reason);

    // Demand is back: the warm replica wakes, verified, then serves.
    let r = act
        .round(&variant(), t(2, 1), true, t0 + Duration::from_secs(10))
        .await;
    assert!(failures(&r).is_empty(), "{:?}", r.outcomes);
    assert!(!rig.engine("llama-b").get().asleep);
    assert_eq!(rig.label("llama-b"), "true");
    let last = rig.api.patches().pop().expect("a patch");
    assert_pod_patch(
        &last,
        "llama-b",
        json!({"labels": {SERVING: "true"}, "annotations": {"slo-scaler.io/wake-failed": null}}),
    );
    assert_eq!(
        r.keda_replicas, 3,
        "the warm pool refills with a cold start"
    );
}

#[tokio::test]
async fn a_wake_that_times_out_falls_back_to_a_cold_scale_up_and_says_why() {
    let rig = Rig::new(2).await;
    let mut act = rig.actuator(Duration::from_millis(300), generous());
    rig.engine("llama-b").set(|s| {
        s.asleep = true;
        s.wake_delay = Duration::from_secs(60);
    });
    rig.api.add_pod(
        NS,
        "llama-b",
        "127.0.0.3",
        json!({"app": "vllm-llama", "gpu": "h100", SERVING: "false"}),
    );
    let t0 = Instant::now();
    let r = act.round(&variant(), t(2, 0), true, t0).await;
    assert!(
        matches!(failures(&r)[..], [StepOutcome::WakeFailed(p, why)] if p == "llama-b" && why.contains("no answer within 300ms")),
        "{:?}",
        r.outcomes
    );
    assert_eq!(
        r.keda_replicas, 3,
        "2 hot wanted, 1 usable: one cold replica instead"
    );
    assert!(
        r.reason
            .contains("wake of llama-b failed, cold scale-up next"),
        "{}",
        r.reason
    );
    let last = rig.api.patches().pop().expect("a patch");
    assert_eq!(last.path, format!("/api/v1/namespaces/{NS}/pods/llama-b"));
    assert_eq!(last.body["metadata"]["labels"][SERVING], "false");
    assert!(
        last.body["metadata"]["annotations"]["slo-scaler.io/wake-failed"]
            .as_str()
            .is_some_and(|w| w.contains("no answer within 300ms")),
        "{last:?}"
    );

    // Next round (another replica could be leader: the fact is on the pod) the failed
    // pod is not woken again and the cold replica is still asked for.
    let wakes = rig.engine("llama-b").count(&Method::POST, "/wake_up");
    let r = act
        .round(&variant(), t(2, 0), true, t0 + Duration::from_secs(5))
        .await;
    assert_eq!(
        rig.engine("llama-b").count(&Method::POST, "/wake_up"),
        wakes
    );
    assert_eq!(r.keda_replicas, 3);
    assert!(
        r.reason
            .contains("1 cold scale-up instead of a failed wake (llama-b: wake_up"),
        "{}",
        r.reason
    );
}

#[tokio::test]
async fn a_failure_mid_wake_is_a_cold_scale_up_too() {
    let rig = Rig::new(2).await;
    let mut act = rig.actuator(Duration::from_secs(5), generous());
    rig.engine("llama-b").set(|s| {
        s.asleep = true;
        s.fail_wake = true;
    });
    rig.api.add_pod(
        NS,
        "llama-b",
        "127.0.0.3",
        json!({"app": "vllm-llama", "gpu": "h100", SERVING: "false"}),
    );
    let r = act.round(&variant(), t(2, 0), true, Instant::now()).await;
    assert!(
        matches!(failures(&r)[..], [StepOutcome::WakeFailed(_, why)] if why.contains("HTTP 500")),
        "{:?}",
        r.outcomes
    );
    assert_eq!(r.keda_replicas, 3);
    assert_eq!(rig.label("llama-b"), "false", "a failed wake never serves");
}

#[tokio::test]
async fn a_failed_sleep_leaves_the_replica_hot_and_serving() {
    let rig = Rig::new(2).await;
    let mut act = rig.actuator(Duration::from_secs(5), generous());
    rig.engine("llama-a").set(|s| s.kv_usage = 0.5);
    rig.engine("llama-b").set(|s| s.fail_sleep = true);
    let t0 = Instant::now();
    act.round(&variant(), t(1, 1), true, t0).await; // drain
    assert_eq!(rig.label("llama-b"), "false");
    let r = act
        .round(&variant(), t(1, 1), true, t0 + Duration::from_secs(5))
        .await;
    assert!(
        matches!(failures(&r)[..], [StepOutcome::SleepFailed(p, why)] if p == "llama-b" && why.contains("HTTP 500")),
        "{:?}",
        r.outcomes
    );
    assert!(!rig.engine("llama-b").get().asleep);
    assert_eq!(
        rig.label("llama-b"),
        "true",
        "capacity is never silently lost"
    );
    assert!(
        r.reason
            .contains("sleep of llama-b failed, it stays hot and serving"),
        "{}",
        r.reason
    );
}

#[tokio::test]
async fn a_sleeping_pod_labelled_serving_is_taken_out_of_the_service() {
    let rig = Rig::new(2).await;
    let mut act = rig.actuator(Duration::from_secs(5), generous());
    rig.engine("llama-b").set(|s| s.asleep = true); // asleep, label still "true"
    let r = act.round(&variant(), t(1, 1), true, Instant::now()).await;
    assert!(failures(&r).is_empty(), "{:?}", r.outcomes);
    let patches = rig.api.patches();
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_pod_patch(
        &patches[0],
        "llama-b",
        json!({"labels": {SERVING: "false"}}),
    );
}

#[tokio::test]
async fn an_asleep_pod_whose_health_fails_is_still_woken() {
    let rig = Rig::new(2).await;
    let mut act = rig.actuator(Duration::from_secs(5), generous());
    rig.engine("llama-b").set(|s| s.asleep = true);
    rig.api.add_pod(
        NS,
        "llama-b",
        "127.0.0.3",
        json!({"app": "vllm-llama", "gpu": "h100", SERVING: "false"}),
    );
    rig.api.set_ready(NS, "llama-b", false);
    let r = act.round(&variant(), t(2, 0), true, Instant::now()).await;
    assert!(failures(&r).is_empty(), "{:?}", r.outcomes);
    assert!(!rig.engine("llama-b").get().asleep, "woken");
    assert_eq!(rig.label("llama-b"), "true");
}

fn elector(api: &FakeApi, identity: &str) -> LeaseElector {
    LeaseElector::new(
        api.client(),
        LeaseConfig::new(
            "slo-scaler",
            "slo-scaler",
            identity,
            Duration::from_secs(15),
        ),
    )
}

#[tokio::test]
async fn only_the_lease_holder_acts_and_after_hand_over_the_new_holder_does() {
    let rig = Rig::new(2).await;
    let mut a0 = rig.actuator(Duration::from_secs(5), generous());
    let mut a1 = rig.actuator(Duration::from_secs(5), generous());
    let mut e0 = elector(&rig.api, "scaler-0");
    let mut e1 = elector(&rig.api, "scaler-1");
    let now = Instant::now();
    assert!(
        e0.step(now, Timestamp::now()).await.expect("step"),
        "first one holds"
    );
    assert!(
        !e1.step(now, Timestamp::now()).await.expect("step"),
        "second follows"
    );

    rig.api.clear_seen();
    let r1 = a1.round(&variant(), t(0, 0), e1.is_leader(), now).await;
    assert!(r1.outcomes.is_empty() && r1.costs.is_none());
    assert!(rig.api.patches().is_empty(), "the follower writes nothing");
    assert_eq!(r1.keda_replicas, 0, "but answers KEDA the same");
    let r0 = a0.round(&variant(), t(0, 0), e0.is_leader(), now).await;
    assert_eq!(r0.costs.expect("leader").written.len(), 2);
    assert_eq!(rig.api.patches().len(), 2);

    // Hand-over: scaler-0 releases the Lease (shutdown), scaler-1 takes it.
    e0.release().await.expect("release");
    assert!(
        e1.step(now, Timestamp::now()).await.expect("step"),
        "takes over"
    );
    assert!(!e0.step(now, Timestamp::now()).await.expect("step"));
    rig.api.clear_seen();
    // Demand fades: the new holder drains a replica; the old one does nothing.
    let r0 = a0
        .round(
            &variant(),
            t(1, 1),
            e0.is_leader(),
            now + Duration::from_secs(5),
        )
        .await;
    assert!(r0.outcomes.is_empty());
    assert!(
        rig.api.patches().is_empty(),
        "the old holder writes nothing"
    );
    let r1 = a1
        .round(
            &variant(),
            t(1, 1),
            e1.is_leader(),
            now + Duration::from_secs(5),
        )
        .await;
    assert_eq!(r1.outcomes.len(), 1, "{:?}", r1.outcomes);
    assert_eq!(rig.api.patches().len(), 1, "the new holder acts");
}
