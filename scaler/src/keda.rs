//! The KEDA external scaler: `externalscaler.ExternalScaler` over gRPC.
//!
//! Where to start: [`KedaService`] implements the four RPCs KEDA calls (see
//! `../shared/docs/keda-contract.md`). Every answer comes from the latest decision
//! [`Snapshot`] in memory, never from a backend, so each RPC takes microseconds whatever
//! Prometheus does; a missing or stale decision is `UNAVAILABLE` (KEDA's fallback then
//! applies), never a fake 0 that would scale a busy model down.
//!
//! `StreamMetricSpec` (KEDA main, unreleased) is answered `UNIMPLEMENTED`: our metric
//! spec never changes for a given trigger (target 1, name derived from the metadata), so
//! pushing specs would carry no information, and KEDA stops asking on that status.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status};

use crate::decision::{LookupError, Snapshot};
use crate::hpa::{self, keda_quantize};
use crate::metadata::{MetadataError, TriggerMetadata};
use crate::proto::external_scaler_server::ExternalScaler;
use crate::proto::{
    GetMetricSpecResponse, GetMetricsRequest, GetMetricsResponse, IsActiveResponse, MetricSpec,
    MetricValue, ScaledObjectRef,
};
use crate::telemetry::Telemetry;

/// The target we report: with `AverageValue`, the HPA computes `ceil(value / 1)`, so the
/// value we return *is* the desired replica count.
pub const TARGET_REPLICAS_PER_POD: f64 = 1.0;

/// The metric name for a model (and variant): lowercase `[a-z0-9-]`, deterministic, and
/// unique per exact (model, variant) pair thanks to a hash suffix (sanitising alone would
/// map `Llama/3` and `llama-3` to the same name).
pub fn metric_name(model: &str, variant: Option<&str>) -> String {
    let mut name = String::from("slo-");
    name.push_str(&sanitize(model, 40));
    if let Some(v) = variant {
        name.push('-');
        name.push_str(&sanitize(v, 16));
    }
    // FNV-1a over the exact bytes; 0xff separates model from variant.
    let mut h: u32 = 0x811c_9dc5;
    let bytes = model.bytes().chain(
        variant
            .into_iter()
            .flat_map(|v| std::iter::once(0xff).chain(v.bytes())),
    );
    for b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    name.push_str(&format!("-{h:08x}"));
    name
}

fn sanitize(s: &str, max_len: usize) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed: String = out.trim_matches('-').chars().take(max_len).collect();
    let trimmed = trimmed.trim_end_matches('-').to_string();
    if trimmed.is_empty() {
        "x".to_string()
    } else {
        trimmed
    }
}

/// The gRPC service. Cheap to clone.
#[derive(Clone)]
pub struct KedaService {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
}

impl KedaService {
    /// A service reading decisions from `snapshots`; streams end when `shutdown` fires.
    pub fn new(
        snapshots: watch::Receiver<Arc<Snapshot>>,
        telemetry: Arc<Telemetry>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            snapshots,
            telemetry,
            shutdown,
        }
    }

    fn observe<T>(&self, method: &'static str, started: Instant, r: &Result<T, Status>) {
        let code = match r {
            Ok(_) => Code::Ok,
            Err(s) => s.code(),
        };
        self.telemetry.observe_rpc(method, code, started);
    }

    /// Validated trigger plus its current desired replicas.
    fn lookup(&self, meta: &TriggerMetadata) -> Result<f64, Status> {
        let snapshot = self.snapshots.borrow().clone();
        let replicas = snapshot
            .replicas(&meta.model, meta.variant.as_deref(), Instant::now())
            .map_err(lookup_status)?;
        Ok(keda_quantize(replicas))
    }

    fn get_metrics_inner(&self, req: GetMetricsRequest) -> Result<GetMetricsResponse, Status> {
        let sor = req
            .scaled_object_ref
            .ok_or_else(|| metadata_status(MetadataError::MissingScaledObjectRef))?;
        let meta = TriggerMetadata::parse(&sor.scaler_metadata).map_err(metadata_status)?;
        let snapshot = self.snapshots.borrow().clone();
        snapshot
            .check_known(&meta.model, meta.variant.as_deref())
            .map_err(lookup_status)?;
        let expected = metric_name(&meta.model, meta.variant.as_deref());
        // KEDA passes our spec name back; some versions lowercased it.
        if !req.metric_name.eq_ignore_ascii_case(&expected) {
            return Err(Status::not_found(format!(
                "unknown metric name {:?} for model {:?}{}: GetMetricSpec names it {expected:?}",
                req.metric_name,
                meta.model,
                meta.variant
                    .as_deref()
                    .map(|v| format!(" variant {v:?}"))
                    .unwrap_or_default()
            )));
        }
        let value = self.lookup(&meta)?;
        tracing::debug!(model = %meta.model, variant = meta.variant.as_deref().unwrap_or(""), so = %sor.name, namespace = %sor.namespace, value, "GetMetrics");
        Ok(GetMetricsResponse {
            metric_values: vec![MetricValue {
                metric_name: expected,
                metric_value: hpa::metric_value_int(value),
                metric_value_float: value,
            }],
        })
    }

    fn is_active_inner(&self, sor: ScaledObjectRef) -> Result<IsActiveResponse, Status> {
        let meta = TriggerMetadata::parse(&sor.scaler_metadata).map_err(metadata_status)?;
        let value = self.lookup(&meta)?;
        Ok(IsActiveResponse {
            result: value > meta.activation_threshold,
        })
    }

    fn get_metric_spec_inner(&self, sor: ScaledObjectRef) -> Result<GetMetricSpecResponse, Status> {
        let meta = TriggerMetadata::parse(&sor.scaler_metadata).map_err(metadata_status)?;
        self.snapshots
            .borrow()
            .check_known(&meta.model, meta.variant.as_deref())
            .map_err(lookup_status)?;
        Ok(GetMetricSpecResponse {
            metric_specs: vec![MetricSpec {
                metric_name: metric_name(&meta.model, meta.variant.as_deref()),
                target_size: hpa::target_size_int(TARGET_REPLICAS_PER_POD),
                target_size_float: TARGET_REPLICAS_PER_POD.max(hpa::MIN_TARGET),
            }],
        })
    }

    fn open_stream(&self, sor: ScaledObjectRef) -> Result<ActiveStream, Status> {
        let meta = TriggerMetadata::parse(&sor.scaler_metadata).map_err(metadata_status)?;
        let mut rx = self.snapshots.clone();
        rx.mark_unchanged();
        let first = self.lookup(&meta)? > meta.activation_threshold;
        let state = StreamState {
            meta,
            rx,
            shutdown: self.shutdown.clone(),
            first: Some(first),
            last_active: first,
            _guard: self.telemetry.stream_guard(),
        };
        Ok(Box::pin(futures::stream::unfold(state, next_transition)))
    }
}

type ActiveStream = Pin<Box<dyn Stream<Item = Result<IsActiveResponse, Status>> + Send>>;

struct StreamState {
    meta: TriggerMetadata,
    rx: watch::Receiver<Arc<Snapshot>>,
    shutdown: CancellationToken,
    first: Option<bool>,
    last_active: bool,
    _guard: crate::telemetry::StreamGuard,
}

/// Yields the current state once, then only inactive→active transitions (KEDA ignores
/// `false` since 2.18, and each `true` costs it a status write). Ends — with status OK —
/// on shutdown, so KEDA's reconnect back-off resets.
async fn next_transition(
    mut st: StreamState,
) -> Option<(Result<IsActiveResponse, Status>, StreamState)> {
    if let Some(result) = st.first.take() {
        return Some((Ok(IsActiveResponse { result }), st));
    }
    loop {
        tokio::select! {
            biased;
            _ = st.shutdown.cancelled() => return None,
            changed = st.rx.changed() => {
                if changed.is_err() {
                    return None;
                }
                let snapshot = st.rx.borrow_and_update().clone();
                let active = snapshot
                    .replicas(&st.meta.model, st.meta.variant.as_deref(), Instant::now())
                    .map(|r| keda_quantize(r) > st.meta.activation_threshold);
                // Unknown state counts as inactive so the next `true` is sent.
                let active = active.unwrap_or(false);
                let rising = active && !st.last_active;
                st.last_active = active;
                if rising {
                    return Some((Ok(IsActiveResponse { result: true }), st));
                }
            }
        }
    }
}

fn metadata_status(e: MetadataError) -> Status {
    Status::invalid_argument(e.to_string())
}

fn lookup_status(e: LookupError) -> Status {
    match e {
        LookupError::UnknownModel { .. } | LookupError::UnknownVariant { .. } => {
            Status::not_found(e.to_string())
        }
        LookupError::Unavailable { .. } => Status::unavailable(e.to_string()),
    }
}

#[tonic::async_trait]
impl ExternalScaler for KedaService {
    async fn is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<IsActiveResponse>, Status> {
        let started = Instant::now();
        let r = self.is_active_inner(request.into_inner());
        self.observe("IsActive", started, &r);
        r.map(Response::new)
    }

    type StreamIsActiveStream = ActiveStream;

    async fn stream_is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamIsActiveStream>, Status> {
        let started = Instant::now();
        let r = self.open_stream(request.into_inner());
        self.observe("StreamIsActive", started, &r);
        r.map(Response::new)
    }

    async fn get_metric_spec(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<GetMetricSpecResponse>, Status> {
        let started = Instant::now();
        let r = self.get_metric_spec_inner(request.into_inner());
        self.observe("GetMetricSpec", started, &r);
        r.map(Response::new)
    }

    async fn get_metrics(
        &self,
        request: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        let started = Instant::now();
        let r = self.get_metrics_inner(request.into_inner());
        self.observe("GetMetrics", started, &r);
        r.map(Response::new)
    }

    type StreamMetricSpecStream =
        Pin<Box<dyn Stream<Item = Result<GetMetricSpecResponse, Status>> + Send>>;

    async fn stream_metric_spec(
        &self,
        _request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamMetricSpecStream>, Status> {
        let started = Instant::now();
        let r = Err(Status::unimplemented(
            "StreamMetricSpec is not served: the metric spec of a trigger never changes; use GetMetricSpec",
        ));
        self.observe("StreamMetricSpec", started, &r);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_are_lowercase_deterministic_and_distinct() {
        let a = metric_name("Llama/3.1-8B", Some("H100"));
        assert_eq!(a, metric_name("Llama/3.1-8B", Some("H100")));
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{a}"
        );
        assert!(a.starts_with("slo-llama-3-1-8b-h100-"), "{a}");
        assert_ne!(a, metric_name("llama-3.1-8b", Some("h100")));
        assert_ne!(metric_name("m", None), metric_name("m", Some("")));
        assert_ne!(metric_name("ab", Some("c")), metric_name("a", Some("bc")));
        let long = metric_name(&"x".repeat(500), Some(&"y".repeat(500)));
        assert!(long.len() <= 4 + 40 + 1 + 16 + 9, "{}", long.len());
        assert!(!metric_name("///", None).contains("--"));
    }
}
