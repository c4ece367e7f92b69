//! The HTTP side: `GET /models`, `/metrics`, `/healthz`, `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::decision::Snapshot;
use crate::telemetry::Telemetry;

/// What the HTTP handlers read.
#[derive(Clone)]
pub struct HttpState {
    /// Latest decisions.
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    /// Metrics registry.
    pub telemetry: Arc<Telemetry>,
    /// False until the first evaluation and again once shutdown starts.
    pub ready: Arc<AtomicBool>,
}

/// The router.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/models", get(models))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// `{"models":[{"name":..,"variants":[..],"decisions":{variant:{..}},"error":..}]}`.
/// `name` and `variants` are the contract; `decisions` and `error` are details for people
/// and dashboards.
pub fn models_json(snapshot: &Snapshot, now: Instant) -> Value {
    let models: Vec<Value> = snapshot
        .catalog
        .models()
        .map(|m| {
            let mut decisions = serde_json::Map::new();
            let mut error = Value::Null;
            for v in &m.variants {
                match snapshot.desired(&m.name, Some(v), now) {
                    Ok(d) => {
                        decisions.insert(
                            v.clone(),
                            json!({
                                "desired_replicas": crate::hpa::keda_quantize(d.replicas),
                                "reason": d.reason,
                                "details": d.details,
                                "age_s": (d.age.as_secs_f64() * 1000.0).round() / 1000.0,
                            }),
                        );
                    }
                    Err(e) => error = Value::String(e.to_string()),
                }
            }
            json!({
                "name": m.name,
                "variants": m.variants,
                "decisions": decisions,
                "error": error,
            })
        })
        .collect();
    json!({ "models": models })
}

async fn models(State(s): State<HttpState>) -> Json<Value> {
    let snapshot = s.snapshots.borrow().clone();
    Json(models_json(&snapshot, Instant::now()))
}

async fn metrics(State(s): State<HttpState>) -> impl IntoResponse {
    let snapshot = s.snapshots.borrow().clone();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.telemetry.render(&snapshot),
    )
}

async fn readyz(State(s): State<HttpState>) -> (StatusCode, &'static str) {
    if s.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
