//! The scaler's own metrics (`/metrics`), with `prometheus-client`.
//!
//! RPC counts and latency by method and gRPC status, open `StreamIsActive` streams, and
//! the desired replicas per model/variant (refreshed from the current snapshot at scrape
//! time, so the gauge and `GetMetrics` can never disagree).

use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::decision::Snapshot;

/// Labels of RPC metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// gRPC method, e.g. `GetMetrics`.
    pub method: &'static str,
    /// gRPC status code name, e.g. `OK`, `NOT_FOUND`.
    pub code: &'static str,
}

/// Labels of per-variant metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VariantLabels {
    /// Model name.
    pub model: String,
    /// Variant name.
    pub variant: String,
}

/// Labels of decision details.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DetailLabels {
    /// Model name.
    pub model: String,
    /// Variant name.
    pub variant: String,
    /// Which number (e.g. `demand_upper_rps`).
    pub field: &'static str,
}

/// Labels of per-model metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    /// Model name.
    pub model: String,
}

/// Labels of the forecast band.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BandLabels {
    /// Model name.
    pub model: String,
    /// `lower`, `point` or `upper`.
    pub bound: &'static str,
}

/// Labels of latency metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    /// Model name.
    pub model: String,
    /// Variant name (empty for the SLO target, which is per model).
    pub variant: String,
    /// `ttft` or `tpot`.
    pub kind: &'static str,
}

/// Labels of the structured reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Model name.
    pub model: String,
    /// Variant name.
    pub variant: String,
    /// The decision's kind (`scale_up`, `hold_window`, ...): a short fixed word, so the
    /// series count stays bounded.
    pub reason: &'static str,
}

/// Labels of the SLO target.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    /// Model name.
    pub model: String,
    /// `ttft` or `tpot`.
    pub kind: &'static str,
}

/// Every metric the scaler exports about itself.
pub struct Telemetry {
    registry: Registry,
    rpc_total: Family<RpcLabels, Counter>,
    rpc_seconds: Family<RpcLabels, Histogram>,
    open_streams: Gauge<i64, AtomicI64>,
    desired_replicas: Family<VariantLabels, Gauge<f64, AtomicU64>>,
    decision_available: Family<VariantLabels, Gauge<i64, AtomicI64>>,
    decision_detail: Family<DetailLabels, Gauge<f64, AtomicU64>>,
    demand_rps: Family<ModelLabels, Gauge<f64, AtomicU64>>,
    forecast_rps: Family<BandLabels, Gauge<f64, AtomicU64>>,
    predicted_latency: Family<LatencyLabels, Gauge<f64, AtomicU64>>,
    slo_target: Family<TargetLabels, Gauge<f64, AtomicU64>>,
    decision_reason: Family<ReasonLabels, Gauge<i64, AtomicI64>>,
    /// The reason label currently set per (model, variant), so a change removes the old
    /// series instead of leaving two at 1.
    current_reason: std::sync::Mutex<std::collections::HashMap<(String, String), &'static str>>,
    evaluations: Counter,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Telemetry")
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// Registers every metric under the `slo_scaler` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("slo_scaler");
        let rpc_total = Family::<RpcLabels, Counter>::default();
        let rpc_seconds = Family::<RpcLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.000_05, 2.0, 18))) as fn() -> Histogram,
        );
        let open_streams = Gauge::<i64, AtomicI64>::default();
        let desired_replicas = Family::<VariantLabels, Gauge<f64, AtomicU64>>::default();
        let decision_available = Family::<VariantLabels, Gauge<i64, AtomicI64>>::default();
        let evaluations = Counter::default();
        let decision_detail = Family::<DetailLabels, Gauge<f64, AtomicU64>>::default();
        let demand_rps = Family::<ModelLabels, Gauge<f64, AtomicU64>>::default();
        let forecast_rps = Family::<BandLabels, Gauge<f64, AtomicU64>>::default();
        let predicted_latency = Family::<LatencyLabels, Gauge<f64, AtomicU64>>::default();
        let slo_target = Family::<TargetLabels, Gauge<f64, AtomicU64>>::default();
        let decision_reason = Family::<ReasonLabels, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "demand_rps",
            "Observed demand (requests/s) as the scaler last read it",
            demand_rps.clone(),
        );
        registry.register(
            "forecast_rps",
            "Demand forecast band (requests/s): lower and point at the next interval, upper over the cold-start horizon at the SLO's attainment quantile",
            forecast_rps.clone(),
        );
        registry.register(
            "predicted_latency_seconds",
            "Latency the performance model predicts for the decided replicas at the SLO percentile",
            predicted_latency.clone(),
        );
        registry.register(
            "slo_target_seconds",
            "The model's SLO bounds",
            slo_target.clone(),
        );
        registry.register(
            "decision_reason",
            "1 for the current kind of each variant's decision (scale_up, scale_down, hold_window, hold_tolerance, steady, first_plan, capacity_rule)",
            decision_reason.clone(),
        );
        registry.register(
            "decision_detail",
            "The numbers behind each decision's reason (field: demand_upper_rps, capacity_per_replica_rps, planned_replicas, ...)",
            decision_detail.clone(),
        );
        registry.register(
            "grpc_requests",
            "KEDA external-scaler RPCs by method and gRPC status",
            rpc_total.clone(),
        );
        registry.register(
            "grpc_request_duration_seconds",
            "Time to answer a KEDA RPC (streams: time to open)",
            rpc_seconds.clone(),
        );
        registry.register(
            "open_streams",
            "StreamIsActive streams currently open",
            open_streams.clone(),
        );
        registry.register(
            "desired_replicas",
            "Desired replicas per model and variant, as GetMetrics reports them",
            desired_replicas.clone(),
        );
        registry.register(
            "decision_available",
            "1 when a fresh decision exists for the model/variant, 0 when GetMetrics answers UNAVAILABLE",
            decision_available.clone(),
        );
        registry.register(
            "evaluations",
            "Snapshots published by the evaluation loop",
            evaluations.clone(),
        );
        Self {
            registry,
            rpc_total,
            rpc_seconds,
            open_streams,
            desired_replicas,
            decision_available,
            decision_detail,
            demand_rps,
            forecast_rps,
            predicted_latency,
            slo_target,
            decision_reason,
            current_reason: Default::default(),
            evaluations,
        }
    }

    /// Records one finished RPC.
    pub fn observe_rpc(&self, method: &'static str, code: tonic::Code, started: Instant) {
        let labels = RpcLabels {
            method,
            code: code_name(code),
        };
        self.rpc_total.get_or_create(&labels).inc();
        self.rpc_seconds
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
    }

    /// Counts a stream as open until the guard drops.
    pub fn stream_guard(&self) -> StreamGuard {
        self.open_streams.inc();
        StreamGuard(self.open_streams.clone())
    }

    /// The dashboard series derived from one variant's decision.
    fn export_structured(&self, model: &str, variant: &str, d: &crate::decision::Desired) {
        let get = |k: &str| d.details.get(k).copied();
        let m = || model.to_string();
        if let Some(x) = get("demand_rps") {
            self.demand_rps
                .get_or_create(&ModelLabels { model: m() })
                .set(x);
        }
        for (bound, key) in [
            ("lower", "demand_lower_rps"),
            ("point", "demand_point_rps"),
            ("upper", "demand_upper_rps"),
        ] {
            if let Some(x) = get(key) {
                self.forecast_rps
                    .get_or_create(&BandLabels { model: m(), bound })
                    .set(x);
            }
        }
        for (kind, predicted, target) in [
            ("ttft", "predicted_ttft_ms", "slo_ttft_ms"),
            ("tpot", "predicted_tpot_ms", "slo_tpot_ms"),
        ] {
            if let Some(x) = get(predicted) {
                self.predicted_latency
                    .get_or_create(&LatencyLabels {
                        model: m(),
                        variant: variant.to_string(),
                        kind,
                    })
                    .set(x / 1e3);
            }
            if let Some(x) = get(target) {
                self.slo_target
                    .get_or_create(&TargetLabels { model: m(), kind })
                    .set(x / 1e3);
            }
        }
        let key = (model.to_string(), variant.to_string());
        let mut current = self.current_reason.lock().expect("reason map");
        if let Some(old) = current.insert(key, d.action)
            && old != d.action
        {
            self.decision_reason.remove(&ReasonLabels {
                model: m(),
                variant: variant.to_string(),
                reason: old,
            });
        }
        self.decision_reason
            .get_or_create(&ReasonLabels {
                model: m(),
                variant: variant.to_string(),
                reason: d.action,
            })
            .set(1);
    }

    /// Renders the text exposition, refreshing decision gauges from `snapshot`.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let now = Instant::now();
        for m in snapshot.catalog.models() {
            for v in &m.variants {
                let labels = VariantLabels {
                    model: m.name.clone(),
                    variant: v.clone(),
                };
                match snapshot.desired(&m.name, Some(v), now) {
                    Ok(d) => {
                        self.desired_replicas
                            .get_or_create(&labels)
                            .set(crate::hpa::keda_quantize(d.replicas));
                        self.export_structured(&m.name, v, &d);
                        for (field, value) in &d.details {
                            self.decision_detail
                                .get_or_create(&DetailLabels {
                                    model: m.name.clone(),
                                    variant: v.clone(),
                                    field,
                                })
                                .set(*value);
                        }
                        self.decision_available.get_or_create(&labels).set(1);
                    }
                    Err(_) => {
                        self.desired_replicas.get_or_create(&labels).set(f64::NAN);
                        self.decision_available.get_or_create(&labels).set(0);
                    }
                }
            }
        }
        self.evaluations
            .inner()
            .store(snapshot.generation, std::sync::atomic::Ordering::Relaxed);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Decrements the open-streams gauge when a stream ends (however it ends).
#[derive(Debug)]
pub struct StreamGuard(Gauge<i64, AtomicI64>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Canonical gRPC status names, as other gRPC tooling prints them.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}
