//! A loopback fake Kubernetes API server for the warm-pool tests: the exact REST subset
//! the actuator and the Lease election use, recording every request for verifiers.
//!
//! - `GET /api/v1/namespaces/{ns}/pods?labelSelector=k=v,...` (equality selectors);
//! - `PATCH /api/v1/namespaces/{ns}/pods/{name}`: only
//!   `application/merge-patch+json` (anything else is 415, as a server that does not
//!   accept the type), applied per RFC 7386, `resourceVersion` bumped;
//! - `GET/POST/PUT .../coordination.k8s.io/v1/namespaces/{ns}/leases[/{name}]` with the
//!   `resourceVersion` precondition on PUT (as `tests/k8s_api.rs`' fake);
//! - `GET /apis/slo-scaler.io/...`: no policies (an empty list; a watch that stays open).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use slo_scaler::k8s::kube;

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Verb.
    pub method: Method,
    /// Path.
    pub path: String,
    /// Raw query.
    pub query: String,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// Body as JSON (`Null` when empty).
    pub body: Value,
}

#[derive(Default)]
struct State {
    pods: BTreeMap<(String, String), Value>,
    leases: BTreeMap<(String, String), Value>,
    rv: u64,
    seen: Vec<Seen>,
    fail_patches: u32,
}

/// A running fake API server.
#[derive(Clone)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

/// A Kubernetes `Status` failure response.
pub fn status_error(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code
    });
    (
        StatusCode::from_u16(code).expect("code"),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A JSON 200 response.
pub fn json_response(v: &Value) -> Response {
    ([("content-type", "application/json")], v.to_string()).into_response()
}

/// RFC 7386 merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(x) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8(out).expect("utf-8")
}

fn selects(selector: &str, labels: &Value) -> bool {
    selector
        .split(',')
        .filter(|t| !t.is_empty())
        .all(|term| match term.split_once('=') {
            Some((k, v)) => labels[k.trim_end_matches('=')].as_str() == Some(v),
            None => false,
        })
}

async fn handle(
    axum::extract::State(fake): axum::extract::State<FakeApi>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut st = fake.state.lock().expect("state");
    st.seen.push(Seen {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        content_type: content_type.clone(),
        body: body_json.clone(),
    });
    if let Some(rest) = path.strip_prefix("/apis/coordination.k8s.io/v1/namespaces/") {
        let st = &mut *st;
        return lease_call(&mut st.leases, &mut st.rv, &method, rest, &body_json);
    }
    if method == Method::GET && path.starts_with("/apis/slo-scaler.io/") {
        // No policies (`serve --kubernetes` watches them): an empty list, a silent watch.
        if query.contains("watch=true") {
            drop(st);
            let stream = futures::stream::pending::<Result<Bytes, std::convert::Infallible>>();
            return Response::builder()
                .header("content-type", "application/json")
                .body(axum::body::Body::from_stream(stream))
                .expect("response");
        }
        return json_response(&json!({
            "apiVersion": "slo-scaler.io/v1alpha1", "kind": "SloScalingPolicyList",
            "metadata": {"resourceVersion": st.rv.to_string()}, "items": []
        }));
    }
    let Some(rest) = path.strip_prefix("/api/v1/namespaces/") else {
        return status_error(404, "NotFound", "no such path");
    };
    let parts: Vec<&str> = rest.split('/').collect();
    match (&method, parts.as_slice()) {
        (&Method::GET, [ns, "pods"]) => {
            let selector = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("labelSelector="))
                .map(percent_decode)
                .unwrap_or_default();
            let items: Vec<Value> = st
                .pods
                .iter()
                .filter(|((n, _), p)| n == ns && selects(&selector, &p["metadata"]["labels"]))
                .map(|(_, p)| p.clone())
                .collect();
            json_response(&json!({
                "apiVersion": "v1", "kind": "PodList",
                "metadata": {"resourceVersion": st.rv.to_string()},
                "items": items
            }))
        }
        (&Method::PATCH, [ns, "pods", name]) => {
            if content_type.as_deref() != Some("application/merge-patch+json") {
                return status_error(415, "UnsupportedMediaType", "expected a merge patch");
            }
            if st.fail_patches > 0 {
                st.fail_patches -= 1;
                return status_error(500, "InternalError", "etcd timeout");
            }
            let key = (ns.to_string(), name.to_string());
            st.rv += 1;
            let rv = st.rv.to_string();
            let Some(pod) = st.pods.get_mut(&key) else {
                return status_error(404, "NotFound", "pods not found");
            };
            merge_patch(pod, &body_json);
            pod["metadata"]["resourceVersion"] = json!(rv);
            json_response(pod)
        }
        _ => status_error(405, "MethodNotAllowed", "not served by the fake"),
    }
}

/// `.../namespaces/{ns}/leases[/{name}]` (the path after `/apis/coordination.k8s.io/v1/
/// namespaces/`): GET, POST (create), PUT (replace with a resourceVersion precondition), as
/// the API server does. Shared by every fake API server of the tests.
pub fn lease_call(
    leases: &mut BTreeMap<(String, String), Value>,
    rv: &mut u64,
    method: &Method,
    rest: &str,
    body: &Value,
) -> Response {
    let parts: Vec<&str> = rest.split('/').collect();
    match (method, parts.as_slice()) {
        (&Method::GET, [ns, "leases", name]) => {
            match leases.get(&(ns.to_string(), name.to_string())) {
                Some(l) => json_response(l),
                None => status_error(404, "NotFound", "leases not found"),
            }
        }
        (&Method::POST, [ns, "leases"]) => {
            let name = body["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let key = (ns.to_string(), name);
            if leases.contains_key(&key) {
                return status_error(409, "AlreadyExists", "leases already exists");
            }
            *rv += 1;
            let mut obj = body.clone();
            obj["metadata"]["resourceVersion"] = json!(rv.to_string());
            leases.insert(key, obj.clone());
            (
                StatusCode::CREATED,
                [("content-type", "application/json")],
                obj.to_string(),
            )
                .into_response()
        }
        (&Method::PUT, [ns, "leases", name]) => {
            let key = (ns.to_string(), name.to_string());
            let Some(cur) = leases.get(&key) else {
                return status_error(404, "NotFound", "leases not found");
            };
            if body["metadata"]["resourceVersion"] != cur["metadata"]["resourceVersion"] {
                return status_error(409, "Conflict", "the object has been modified");
            }
            *rv += 1;
            let mut obj = body.clone();
            obj["metadata"]["resourceVersion"] = json!(rv.to_string());
            leases.insert(key, obj.clone());
            json_response(&obj)
        }
        _ => status_error(405, "MethodNotAllowed", "not served by the fake"),
    }
}

impl FakeApi {
    /// Starts on a loopback port.
    pub async fn start() -> Self {
        crate::init_crypto();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let fake = Self {
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

    /// A client for it.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url.parse().expect("url"));
        kube::Client::try_from(config).expect("client")
    }

    /// Adds a ready pod with labels and a pod IP.
    pub fn add_pod(&self, ns: &str, name: &str, ip: &str, labels: Value) {
        let mut st = self.state.lock().expect("state");
        st.rv += 1;
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "namespace": ns, "name": name, "uid": format!("uid-{name}"),
                "resourceVersion": st.rv.to_string(), "labels": labels
            },
            "status": {
                "podIP": ip, "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}]
            }
        });
        st.pods.insert((ns.into(), name.into()), pod);
    }

    /// Sets a pod's Ready condition (the kubelet's probe result).
    pub fn set_ready(&self, ns: &str, name: &str, ready: bool) {
        let mut st = self.state.lock().expect("state");
        let pod = st
            .pods
            .get_mut(&(ns.to_owned(), name.to_owned()))
            .expect("pod");
        pod["status"]["conditions"] =
            json!([{"type": "Ready", "status": if ready { "True" } else { "False" }}]);
    }

    /// Removes a pod (the ReplicaSet deleted it).
    pub fn remove_pod(&self, ns: &str, name: &str) {
        self.state
            .lock()
            .expect("state")
            .pods
            .remove(&(ns.into(), name.into()));
    }

    /// A pod as stored.
    pub fn pod(&self, ns: &str, name: &str) -> Value {
        self.state.lock().expect("state").pods[&(ns.to_owned(), name.to_owned())].clone()
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().expect("state").seen.clone()
    }

    /// Pod patches so far.
    pub fn patches(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == Method::PATCH)
            .collect()
    }

    /// Makes the next `n` pod patches fail with 500.
    pub fn fail_next_patches(&self, n: u32) {
        self.state.lock().expect("state").fail_patches = n;
    }

    /// Forgets the recorded requests.
    pub fn clear_seen(&self) {
        self.state.lock().expect("state").seen.clear();
    }
}
