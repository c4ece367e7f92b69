//! Metrics: what the engines say about demand, load and latency, from a real Prometheus
//! or straight from the engines' `/metrics` endpoints.
//!
//! Where to start: a [`DemandObserver`] turns one model's metrics into an
//! [`Observation`] (requests/s, tokens/s, running, waiting, KV-cache use, TTFT/TPOT
//! p90). Two implement it: [`prometheus::PrometheusObserver`] (PromQL over the HTTP API,
//! with history backfill) and [`scrape::ScrapeObserver`] (scrapes the engines itself and
//! keeps a bounded history). Which metric names carry which signal is data, per engine,
//! in [`preset`]; the arithmetic (counter rates with resets, histogram quantiles) is pure,
//! in [`derive`]. The I/O sits behind narrow traits ([`prometheus::PromApi`],
//! [`scrape::Fetcher`], [`scrape::EndpointLister`]) so the policy is tested without network.
//!
//! Fault rules (see `docs/metrics.md`): missing, NaN or stale demand is an error, never a
//! zero — the planner turns it into `ModelOutcome::Unavailable` and KEDA's fallback
//! engages; an absent *optional* signal (TGI has no TTFT) is `None`.

pub mod demand;
pub mod derive;
pub mod exposition;
pub mod preset;
pub mod prometheus;
pub mod scrape;

use std::collections::BTreeMap;

use futures::future::BoxFuture;

pub use preset::Engine;

/// One model as a metrics source must select it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The model's name in the scaler (config, trigger metadata).
    pub model: String,
    /// Which engine serves it (picks the preset).
    pub engine: Engine,
    /// The value of the model label on the engine's series (vLLM's `model_name` is the
    /// served model name, which may differ from the scaler's name).
    pub served_name: String,
    /// The label naming the model; `None` means no model filter (TGI).
    pub model_label: Option<String>,
    /// Extra PromQL label matchers, e.g. `namespace="llm",job="vllm"` (Prometheus only).
    pub matchers: Option<String>,
    /// The label that tells variants apart in Prometheus (set by relabelling, e.g.
    /// `gpu`); `None` reports only the model total.
    pub variant_label: Option<String>,
}

/// What the engines serving one model report now, summed across replicas.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Observation {
    /// Finished requests per second, all replicas (the demand the planner uses).
    pub requests_per_s: f64,
    /// The same per variant, where the source can tell variants apart.
    pub requests_per_s_by_variant: BTreeMap<String, f64>,
    /// Prompt tokens per second.
    pub prompt_tokens_per_s: Option<f64>,
    /// Generated tokens per second.
    pub generation_tokens_per_s: Option<f64>,
    /// Requests running, all replicas.
    pub running: Option<f64>,
    /// Requests waiting, all replicas.
    pub waiting: Option<f64>,
    /// Mean KV-cache use across replicas, 0..1.
    pub kv_cache_usage: Option<f64>,
    /// p90 time to first token over the rate window, seconds.
    pub ttft_p90_s: Option<f64>,
    /// p90 time per output token over the rate window, seconds.
    pub tpot_p90_s: Option<f64>,
    /// Age of the newest data behind this observation, seconds (on the source's clock).
    pub data_age_s: f64,
}

impl Observation {
    /// One line for decision reasons and logs.
    pub fn summary(&self) -> String {
        let opt = |v: Option<f64>, unit: &str| match v {
            Some(v) => format!("{v:.3}{unit}"),
            None => "n/a".to_string(),
        };
        format!(
            "observed {:.3} req/s (prompt {} tok/s, gen {} tok/s, running {}, waiting {}, kv {}, ttft p90 {}, tpot p90 {}, data age {:.1} s)",
            self.requests_per_s,
            opt(self.prompt_tokens_per_s, ""),
            opt(self.generation_tokens_per_s, ""),
            opt(self.running, ""),
            opt(self.waiting, ""),
            opt(self.kv_cache_usage, ""),
            opt(self.ttft_p90_s, " s"),
            opt(self.tpot_p90_s, " s"),
            self.data_age_s
        )
    }
}

/// Why a source could not produce an observation. Every variant means "unknown", which
/// the planner reports as unavailable; none of them may become a zero.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The HTTP request failed (connection refused, timeout, TLS) after all retries.
    #[error("request to {url} failed after {attempts} attempt(s): {source}")]
    Http {
        /// The URL (without credentials).
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last error.
        source: reqwest::Error,
    },
    /// The server answered with a non-success HTTP status.
    #[error("{url} answered HTTP {status} (expected 200): {body}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// Start of the body.
        body: String,
    },
    /// Prometheus answered `status: error` (bad query, timeout inside Prometheus).
    #[error("Prometheus rejected {query:?}: {error_type}: {error}")]
    Api {
        /// The query.
        query: String,
        /// Prometheus's `errorType`.
        error_type: String,
        /// Prometheus's `error`.
        error: String,
    },
    /// The body was not what the API documents.
    #[error("cannot decode the answer of {what}: expected {expected}, got {got}")]
    Decode {
        /// Which request.
        what: String,
        /// What the API documents.
        expected: String,
        /// What came (truncated).
        got: String,
    },
    /// The required demand series does not exist (exporter down, wrong model label,
    /// no replica running).
    #[error(
        "model {model:?}: no {signal} series (query or metric: {query}); is the engine up and is the model label right?"
    )]
    Absent {
        /// Scaler model name.
        model: String,
        /// The signal.
        signal: &'static str,
        /// The query or metric names looked for.
        query: String,
    },
    /// The required demand value is NaN, infinite or negative.
    #[error("model {model:?}: {signal} is {value}, expected a finite number >= 0")]
    NotANumber {
        /// Scaler model name.
        model: String,
        /// The signal.
        signal: &'static str,
        /// The value.
        value: f64,
    },
    /// The newest data is older than the freshness limit.
    #[error(
        "model {model:?}: newest data from {source_name} is {age_s:.1} s old (limit {limit_s:.1} s)"
    )]
    Stale {
        /// Scaler model name.
        model: String,
        /// The endpoint or "Prometheus".
        source_name: String,
        /// Age of the newest data.
        age_s: f64,
        /// The limit.
        limit_s: f64,
    },
    /// Not enough scrapes yet to compute a rate.
    #[error(
        "model {model:?}: endpoint {endpoint} has {have} scrape(s) in the rate window, a rate needs 2"
    )]
    WarmingUp {
        /// Scaler model name.
        model: String,
        /// The endpoint.
        endpoint: String,
        /// Scrapes held.
        have: usize,
    },
    /// A scrape failed; the message says how.
    #[error("endpoint {endpoint}: {why}")]
    Scrape {
        /// The endpoint URL.
        endpoint: String,
        /// What went wrong.
        why: String,
    },
    /// The source has no endpoint for the model.
    #[error("model {model:?}: no scrape endpoint is configured for it")]
    NoEndpoints {
        /// Scaler model name.
        model: String,
    },
    /// The source's settings cannot work (bad URL, unreadable CA or token file).
    #[error("metrics configuration: {0}")]
    Config(String),
}

/// A source of observations. `refresh` runs once per evaluation before the models are
/// observed (the scrape source scrapes then; Prometheus needs nothing).
pub trait DemandObserver: Send + Sync + 'static {
    /// Brings the source up to date (bounded by the caller's evaluation timeout).
    fn refresh(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    /// Observes one model now.
    fn observe<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Observation, MetricsError>>;
    /// Demand history `(unix_s, requests_per_s)` kept for forecasters, oldest first.
    fn demand_history(&self, _model: &str) -> Vec<(f64, f64)> {
        Vec::new()
    }
}

/// The required demand value: present, finite, not negative.
pub(crate) fn required(
    model: &str,
    signal: &'static str,
    query: &str,
    value: Option<f64>,
) -> Result<f64, MetricsError> {
    match value {
        None => Err(MetricsError::Absent {
            model: model.to_string(),
            signal,
            query: query.to_string(),
        }),
        Some(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Some(v) => Err(MetricsError::NotANumber {
            model: model.to_string(),
            signal,
            value: v,
        }),
    }
}

/// An optional signal: NaN (e.g. a quantile over a window without requests), infinity or
/// a negative value is "unknown", reported as `None` and logged; never zero.
pub(crate) fn optional(model: &str, signal: &'static str, value: Option<f64>) -> Option<f64> {
    match value {
        Some(v) if v.is_finite() && v >= 0.0 => Some(v),
        Some(v) => {
            tracing::debug!(
                model,
                signal,
                value = v,
                "signal value unusable; reported as unknown"
            );
            None
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_demand_is_never_defaulted() {
        assert_eq!(required("m", "requests", "q", Some(2.5)).unwrap(), 2.5);
        assert!(matches!(
            required("m", "requests", "q", None),
            Err(MetricsError::Absent { .. })
        ));
        for bad in [f64::NAN, f64::INFINITY, -1.0] {
            assert!(matches!(
                required("m", "requests", "q", Some(bad)),
                Err(MetricsError::NotANumber { .. })
            ));
        }
        assert_eq!(optional("m", "ttft", Some(f64::NAN)), None);
        assert_eq!(optional("m", "ttft", Some(0.2)), Some(0.2));
    }
}
