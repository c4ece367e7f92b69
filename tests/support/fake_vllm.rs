//! A fake vLLM engine on loopback with the sleep-mode semantics the warm pool relies on
//! (as in vLLM's `entrypoints/serve/sleep/api_router.py`):
//!
//! - `POST /sleep?level=N` → empty 200 once asleep; already asleep → 200, nothing changes;
//! - `POST /wake_up` → empty 200 once the weights are back (after `wake_delay`); the wake
//!   runs in the engine, not in the request: a client that gives up does not stop it;
//! - `GET /is_sleeping` → `{"is_sleeping": bool}`;
//! - without sleep mode (no `VLLM_SERVER_DEV_MODE=1`) the router is not mounted: 404;
//! - `GET /metrics` → the vLLM series the scaler reads (prefix-cache hits, KV use,
//!   running, waiting), settable by the test.
//!
//! Faults: `fail_wake` (wake answers 500 half-way through and the engine stays asleep),
//! `wake_lies` (200 but still asleep), `fail_sleep` (500, stays awake).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// The engine's settable state.
#[derive(Debug, Clone)]
pub struct EngineState {
    /// Asleep now.
    pub asleep: bool,
    /// Sleep endpoints mounted (VLLM_SERVER_DEV_MODE=1 and --enable-sleep-mode).
    pub sleep_mode: bool,
    /// How long a wake takes.
    pub wake_delay: Duration,
    /// The wake fails half-way (500), the engine stays asleep.
    pub fail_wake: bool,
    /// The wake answers 200 but the engine stays asleep.
    pub wake_lies: bool,
    /// The sleep answers 500, the engine stays awake.
    pub fail_sleep: bool,
    /// `vllm:prefix_cache_hits_total` (tokens).
    pub prefix_hits_total: f64,
    /// `vllm:kv_cache_usage_perc`.
    pub kv_usage: f64,
    /// `vllm:num_requests_running`.
    pub running: f64,
    /// `vllm:num_requests_waiting`.
    pub waiting: f64,
    /// `vllm:request_success_total`.
    pub successes: f64,
    /// Requests seen: (method, path with query).
    pub calls: Vec<(Method, String)>,
    /// Sleep levels received.
    pub levels: Vec<String>,
}

impl Default for EngineState {
    fn default() -> Self {
        Self {
            asleep: false,
            sleep_mode: true,
            wake_delay: Duration::ZERO,
            fail_wake: false,
            wake_lies: false,
            fail_sleep: false,
            prefix_hits_total: 0.0,
            kv_usage: 0.0,
            running: 0.0,
            waiting: 0.0,
            successes: 0.0,
            calls: Vec::new(),
            levels: Vec::new(),
        }
    }
}

/// A running fake engine.
#[derive(Clone)]
pub struct FakeVllm {
    /// Its state.
    pub state: Arc<Mutex<EngineState>>,
    /// `http://ip:port`.
    pub base: String,
}

impl FakeVllm {
    /// Starts on `addr` (`127.0.0.1:0` for any port).
    pub async fn start(addr: &str) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let fake = Self {
            state: Arc::new(Mutex::new(EngineState::default())),
            base,
        };
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(fake.state.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        fake
    }

    /// `n` engines on consecutive loopback addresses from `127.0.0.{first_octet}`, all on
    /// one port (pods of a Deployment share the container port, so the scaler addresses
    /// each by pod IP and that port). Retries until a port is free on every address.
    pub async fn start_on_shared_port(first_octet: u8, n: usize) -> (u16, Vec<Self>) {
        for _ in 0..20 {
            let first = Self::start(&format!("127.0.0.{first_octet}:0")).await;
            let port: u16 = first
                .base
                .rsplit(':')
                .next()
                .expect("port")
                .parse()
                .expect("u16");
            let mut all = vec![first];
            for i in 1..n {
                let addr = format!("127.0.0.{}:{port}", usize::from(first_octet) + i);
                if tokio::net::TcpListener::bind(&addr).await.is_err() {
                    break;
                }
                all.push(Self::start(&addr).await);
            }
            if all.len() == n {
                return (port, all);
            }
        }
        panic!("no common free port on 127.0.0.{first_octet}..");
    }

    /// Changes the state.
    pub fn set(&self, f: impl FnOnce(&mut EngineState)) {
        f(&mut self.state.lock().expect("state"));
    }

    /// A copy of the state.
    pub fn get(&self) -> EngineState {
        self.state.lock().expect("state").clone()
    }

    /// Calls to `path` (without query) with `method`.
    pub fn count(&self, method: &Method, path: &str) -> usize {
        self.get()
            .calls
            .iter()
            .filter(|(m, p)| m == method && p.split('?').next() == Some(path))
            .count()
    }
}

async fn handle(
    State(state): State<Arc<Mutex<EngineState>>>,
    method: Method,
    uri: Uri,
    Query(query): Query<std::collections::BTreeMap<String, String>>,
) -> Response {
    let path = uri.path().to_owned();
    let sleep_mode = {
        let mut st = state.lock().expect("state");
        st.calls.push((
            method.clone(),
            uri.path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
        ));
        st.sleep_mode
    };
    match (method, path.as_str()) {
        (Method::GET, "/metrics") => {
            let st = state.lock().expect("state").clone();
            let m = "model_name=\"llama\"";
            format!(
                "# TYPE vllm:prefix_cache_hits_total counter\nvllm:prefix_cache_hits_total{{{m}}} {}\n\
                 # TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{{{m}}} {}\n\
                 # TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{{{m}}} {}\n\
                 # TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{{{m}}} {}\n\
                 # TYPE vllm:request_success_total counter\nvllm:request_success_total{{{m},finished_reason=\"stop\"}} {}\n\
                 # TYPE vllm:prompt_tokens_total counter\nvllm:prompt_tokens_total{{{m}}} 0\n\
                 # TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total{{{m}}} 0\n",
                st.prefix_hits_total, st.kv_usage, st.running, st.waiting, st.successes
            )
            .into_response()
        }
        (_, "/sleep" | "/wake_up" | "/is_sleeping") if !sleep_mode => {
            (StatusCode::NOT_FOUND, "{\"detail\":\"Not Found\"}").into_response()
        }
        (Method::GET, "/is_sleeping") => {
            let asleep = state.lock().expect("state").asleep;
            (
                [("content-type", "application/json")],
                format!("{{\"is_sleeping\":{asleep}}}"),
            )
                .into_response()
        }
        (Method::POST, "/sleep") => {
            let mut st = state.lock().expect("state");
            st.levels
                .push(query.get("level").cloned().unwrap_or_else(|| "1".into()));
            if st.fail_sleep {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "CUDA error: out of memory",
                )
                    .into_response();
            }
            st.asleep = true;
            StatusCode::OK.into_response()
        }
        (Method::POST, "/wake_up") => {
            let (delay, fail, lies) = {
                let st = state.lock().expect("state");
                (st.wake_delay, st.fail_wake, st.wake_lies)
            };
            // The wake runs in the engine: a client that hangs up does not stop it.
            let work = {
                let state = state.clone();
                tokio::spawn(async move {
                    if fail {
                        tokio::time::sleep(delay / 2).await;
                        return false;
                    }
                    tokio::time::sleep(delay).await;
                    if !lies {
                        state.lock().expect("state").asleep = false;
                    }
                    true
                })
            };
            match work.await {
                Ok(true) => StatusCode::OK.into_response(),
                _ => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "RuntimeError: CUDA error during wake_up",
                )
                    .into_response(),
            }
        }
        _ => (StatusCode::NOT_FOUND, "{\"detail\":\"Not Found\"}").into_response(),
    }
}
