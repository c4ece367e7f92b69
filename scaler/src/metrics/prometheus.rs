//! The Prometheus source: PromQL over the HTTP API (`/api/v1/query`,
//! `/api/v1/query_range`), turned into [`Observation`]s by the engine presets.
//!
//! Where to start: [`PrometheusClient`] is the I/O (auth, custom CA, timeouts, retries
//! with back-off and jitter, range chunking); it implements the narrow [`PromApi`] trait.
//! [`PrometheusObserver`] is the policy (which queries, freshness, NaN and absent series,
//! history) and is tested with an in-memory `PromApi`.
//!
//! Freshness is judged on Prometheus's clock: the observer asks for the timestamp of the
//! newest request-counter sample and compares it with the evaluation time Prometheus
//! reports, so a skewed scaler clock changes nothing.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

use super::preset::{self, Preset, SignalSource};
use super::{DemandObserver, MetricsError, Observation, Target, optional, required};
use crate::config::PrometheusConfig;

/// Prometheus refuses range queries with more points per series than this.
pub const MAX_POINTS_PER_SERIES: f64 = 11_000.0;
/// Points per chunk we ask for, under the limit with room for the inclusive end.
const CHUNK_POINTS: f64 = 10_000.0;

/// Labels of one series.
pub type Labels = BTreeMap<String, String>;

/// An instant query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantResult {
    /// When Prometheus evaluated the query (its clock), Unix seconds.
    pub eval_time_s: Option<f64>,
    /// One value per series.
    pub series: Vec<(Labels, f64)>,
}

/// A range query's answer: per series, `(unix_s, value)` in time order.
pub type RangeResult = Vec<(Labels, Vec<(f64, f64)>)>;

/// The I/O edge: instant and range queries.
pub trait PromApi: Send + Sync + 'static {
    /// Evaluates `query` now.
    fn instant<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<InstantResult, MetricsError>>;
    /// Evaluates `query` over `[start_s, end_s]` every `step_s` (chunked by the implementation).
    fn range<'a>(
        &'a self,
        query: &'a str,
        start_s: f64,
        end_s: f64,
        step_s: f64,
    ) -> BoxFuture<'a, Result<RangeResult, MetricsError>>;
}

/// Splits `[start, end]` into inclusive chunks of at most `CHUNK_POINTS` points at
/// `step`, consecutive chunks not sharing a point.
pub fn range_chunks(start_s: f64, end_s: f64, step_s: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    if step_s <= 0.0 || end_s < start_s {
        return out;
    }
    let span = step_s * (CHUNK_POINTS - 1.0);
    let mut s = start_s;
    while s <= end_s {
        let e = (s + span).min(end_s);
        out.push((s, e));
        s = e + step_s;
    }
    out
}

/// The HTTP client for one Prometheus.
pub struct PrometheusClient {
    http: reqwest::Client,
    base: reqwest::Url,
    auth: Auth,
    retries: u32,
    backoff: Duration,
}

enum Auth {
    None,
    Bearer(String),
    Basic(String, String),
}

impl PrometheusClient {
    /// Builds the client (reads the token, password and CA files now, so a bad path fails
    /// at start, not at the first evaluation).
    pub fn new(cfg: &PrometheusConfig) -> Result<Self, MetricsError> {
        let base = reqwest::Url::parse(&cfg.url).map_err(|e| {
            MetricsError::Config(format!(
                "metrics.prometheus.url {:?}: expected an http(s) URL: {e}",
                cfg.url
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(MetricsError::Config(format!(
                "metrics.prometheus.url {:?}: expected http or https, got {}",
                cfg.url,
                base.scheme()
            )));
        }
        let read = |what: &str, p: &std::path::Path| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .map_err(|e| MetricsError::Config(format!("{what} {}: {e}", p.display())))
        };
        let auth = match (&cfg.bearer_token_file, &cfg.basic_auth) {
            (Some(_), Some(_)) => {
                return Err(MetricsError::Config(
                    "metrics.prometheus: set bearer_token_file or basic_auth, not both".into(),
                ));
            }
            (Some(t), None) => Auth::Bearer(read("metrics.prometheus.bearer_token_file", t)?),
            (None, Some(b)) => Auth::Basic(
                b.username.clone(),
                read(
                    "metrics.prometheus.basic_auth.password_file",
                    &b.password_file,
                )?,
            ),
            (None, None) => Auth::None,
        };
        let timeout = Duration::from_secs_f64(cfg.timeout_s);
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .tls_backend_rustls();
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                MetricsError::Config(format!("metrics.prometheus.ca_file {}: {e}", ca.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                MetricsError::Config(format!(
                    "metrics.prometheus.ca_file {}: expected PEM certificates: {e}",
                    ca.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(MetricsError::Config(format!(
                    "metrics.prometheus.ca_file {}: expected at least one PEM certificate, found none",
                    ca.display()
                )));
            }
            builder = builder.tls_certs_only(certs);
        }
        let http = builder
            .build()
            .map_err(|e| MetricsError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            auth,
            retries: cfg.retries,
            backoff: Duration::from_secs_f64(cfg.backoff_s),
        })
    }

    fn url(&self, path: &str, params: &[(&str, String)]) -> reqwest::Url {
        let mut url = self.base.clone();
        let joined = format!("{}/{}", url.path().trim_end_matches('/'), path);
        url.set_path(&joined);
        url.query_pairs_mut()
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
        url
    }

    /// GET with retries: connection errors, timeouts, 429 and 5xx are retried after
    /// `backoff × 2^attempt × jitter(0.5..1.5)`; a 4xx (bad query) is not.
    async fn get(
        &self,
        path: &str,
        params: &[(&str, String)],
        what: &str,
    ) -> Result<Value, MetricsError> {
        let url = self.url(path, params);
        // For messages: the endpoint without the query (PromQL can be long) or credentials.
        let mut base = self.base.clone();
        let _ = base.set_username("");
        let _ = base.set_password(None);
        let shown = format!("{}/{path}", base.as_str().trim_end_matches('/'));
        let mut attempt = 0u32;
        loop {
            let mut req = self.http.get(url.clone());
            req = match &self.auth {
                Auth::None => req,
                Auth::Bearer(t) => req.bearer_auth(t),
                Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
            };
            let result = req.send().await;
            let retryable = match &result {
                Err(e) => e.is_connect() || e.is_timeout() || e.is_request(),
                Ok(r) => r.status().is_server_error() || r.status().as_u16() == 429,
            };
            if retryable && attempt < self.retries {
                let jitter = 0.5 + fastrand::f64();
                let delay = self.backoff.mul_f64(2f64.powi(attempt as i32) * jitter);
                tracing::debug!(url = %shown, attempt, delay_ms = delay.as_millis() as u64, "retrying Prometheus request");
                tokio::time::sleep(delay).await;
                attempt += 1;
                continue;
            }
            let resp = result.map_err(|source| MetricsError::Http {
                url: shown.clone(),
                attempts: attempt + 1,
                source,
            })?;
            let status = resp.status();
            let body = resp.text().await.map_err(|source| MetricsError::Http {
                url: shown.clone(),
                attempts: attempt + 1,
                source,
            })?;
            let json: Result<Value, _> = serde_json::from_str(&body);
            // Prometheus answers 400/422 with a JSON error body; report that, not the status.
            if let Ok(v) = &json
                && v.get("status").and_then(Value::as_str) == Some("error")
            {
                return Err(MetricsError::Api {
                    query: what.to_string(),
                    error_type: v
                        .get("errorType")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                    error: v
                        .get("error")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                });
            }
            if !status.is_success() {
                return Err(MetricsError::Status {
                    url: shown,
                    status: status.as_u16(),
                    body: body.chars().take(300).collect(),
                });
            }
            return json.map_err(|e| MetricsError::Decode {
                what: what.to_string(),
                expected: "JSON".into(),
                got: format!("{e}: {}", body.chars().take(200).collect::<String>()),
            });
        }
    }
}

fn decode_err(what: &str, expected: &str, got: &Value) -> MetricsError {
    MetricsError::Decode {
        what: what.to_string(),
        expected: expected.to_string(),
        got: got.to_string().chars().take(200).collect(),
    }
}

/// A sample value as Prometheus encodes it: a string ("1.5", "NaN", "+Inf").
fn sample_value(v: &Value) -> Option<f64> {
    match v.as_str()? {
        "NaN" => Some(f64::NAN),
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        s => s.parse().ok(),
    }
}

fn sample_pair(v: &Value) -> Option<(f64, f64)> {
    let a = v.as_array()?;
    Some((a.first()?.as_f64()?, sample_value(a.get(1)?)?))
}

fn labels_of(v: &Value) -> Labels {
    v.get("metric")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Decodes the `data` of an instant query (vector or scalar).
pub fn decode_instant(query: &str, body: &Value) -> Result<InstantResult, MetricsError> {
    let data = body
        .get("data")
        .ok_or_else(|| decode_err(query, "a `data` object", body))?;
    match data.get("resultType").and_then(Value::as_str) {
        Some("vector") => {
            let items = data
                .get("result")
                .and_then(Value::as_array)
                .ok_or_else(|| decode_err(query, "`result` array", data))?;
            let mut eval_time_s = None;
            let mut series = Vec::with_capacity(items.len());
            for item in items {
                let (t, v) = item
                    .get("value")
                    .and_then(sample_pair)
                    .ok_or_else(|| decode_err(query, "`value: [time, \"number\"]`", item))?;
                eval_time_s = Some(t);
                series.push((labels_of(item), v));
            }
            Ok(InstantResult {
                eval_time_s,
                series,
            })
        }
        Some("scalar") => {
            let (t, v) = data
                .get("result")
                .and_then(sample_pair)
                .ok_or_else(|| decode_err(query, "`result: [time, \"number\"]`", data))?;
            Ok(InstantResult {
                eval_time_s: Some(t),
                series: vec![(Labels::new(), v)],
            })
        }
        _ => Err(decode_err(query, "resultType vector or scalar", data)),
    }
}

/// Decodes the `data` of a range query (matrix).
pub fn decode_range(query: &str, body: &Value) -> Result<RangeResult, MetricsError> {
    let data = body
        .get("data")
        .ok_or_else(|| decode_err(query, "a `data` object", body))?;
    if data.get("resultType").and_then(Value::as_str) != Some("matrix") {
        return Err(decode_err(query, "resultType matrix", data));
    }
    let items = data
        .get("result")
        .and_then(Value::as_array)
        .ok_or_else(|| decode_err(query, "`result` array", data))?;
    items
        .iter()
        .map(|item| {
            let values = item
                .get("values")
                .and_then(Value::as_array)
                .ok_or_else(|| decode_err(query, "`values` array", item))?
                .iter()
                .map(|p| sample_pair(p).ok_or_else(|| decode_err(query, "[time, \"number\"]", p)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((labels_of(item), values))
        })
        .collect()
}

/// Appends chunk results to `acc`, joining series with equal labels.
pub fn merge_range(acc: &mut RangeResult, chunk: RangeResult) {
    for (labels, values) in chunk {
        match acc.iter_mut().find(|(l, _)| *l == labels) {
            Some((_, v)) => v.extend(values),
            None => acc.push((labels, values)),
        }
    }
}

impl PromApi for PrometheusClient {
    fn instant<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<InstantResult, MetricsError>> {
        Box::pin(async move {
            let body = self
                .get("api/v1/query", &[("query", query.to_string())], query)
                .await?;
            decode_instant(query, &body)
        })
    }

    fn range<'a>(
        &'a self,
        query: &'a str,
        start_s: f64,
        end_s: f64,
        step_s: f64,
    ) -> BoxFuture<'a, Result<RangeResult, MetricsError>> {
        Box::pin(async move {
            let mut acc = RangeResult::new();
            for (s, e) in range_chunks(start_s, end_s, step_s) {
                let body = self
                    .get(
                        "api/v1/query_range",
                        &[
                            ("query", query.to_string()),
                            ("start", format!("{s:.3}")),
                            ("end", format!("{e:.3}")),
                            ("step", format!("{step_s}")),
                        ],
                        query,
                    )
                    .await?;
                merge_range(&mut acc, decode_range(query, &body)?);
            }
            Ok(acc)
        })
    }
}

/// Settings of the observer's policy.
#[derive(Debug, Clone, Copy)]
pub struct ObserverSettings {
    /// Window of `rate()` and of the latency quantiles, seconds.
    pub rate_window_s: f64,
    /// Data older than this is stale, seconds.
    pub stale_after_s: f64,
    /// How much demand history to keep (and backfill), seconds; 0 keeps none.
    pub history_s: f64,
    /// Step of the backfilled history, seconds.
    pub history_step_s: f64,
}

/// Observations from Prometheus, plus the per-model demand history for forecasters.
pub struct PrometheusObserver<A> {
    api: A,
    settings: ObserverSettings,
    history: Mutex<BTreeMap<String, Vec<(f64, f64)>>>,
}

impl<A: PromApi> PrometheusObserver<A> {
    /// An observer over `api`.
    pub fn new(api: A, settings: ObserverSettings) -> Self {
        Self {
            api,
            settings,
            history: Mutex::new(BTreeMap::new()),
        }
    }

    /// Loads `history_s` of demand history for each target with range queries (chunked),
    /// ending at `now_s`. The scaler keeps no state of its own: a restarted scaler rebuilds
    /// its history from Prometheus with this call. Returns the points loaded per model.
    pub async fn backfill(
        &self,
        targets: &[Target],
        now_s: f64,
    ) -> Result<BTreeMap<String, usize>, MetricsError> {
        let mut loaded = BTreeMap::new();
        if self.settings.history_s <= 0.0 {
            return Ok(loaded);
        }
        for t in targets {
            let p = t.engine.preset();
            let sel = preset::selector(
                t.model_label.as_deref(),
                &t.served_name,
                t.matchers.as_deref(),
            );
            // The rate window must cover at least two samples per step, or the history has holes.
            let window = self
                .settings
                .rate_window_s
                .max(self.settings.history_step_s);
            let Some(q) = preset::promql(p.requests, &sel, window, None) else {
                continue;
            };
            let series = self
                .api
                .range(
                    &q,
                    now_s - self.settings.history_s,
                    now_s,
                    self.settings.history_step_s,
                )
                .await?;
            let mut points: Vec<(f64, f64)> = series
                .into_iter()
                .flat_map(|(_, v)| v)
                .filter(|(_, v)| v.is_finite() && *v >= 0.0)
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            points.dedup_by(|a, b| a.0 == b.0);
            tracing::info!(model = %t.model, points = points.len(), "demand history backfilled from Prometheus");
            loaded.insert(t.model.clone(), points.len());
            self.history
                .lock()
                .expect("history lock")
                .insert(t.model.clone(), points);
        }
        Ok(loaded)
    }

    async fn scalar(&self, q: &str) -> Result<(Option<f64>, Option<f64>), MetricsError> {
        let r = self.api.instant(q).await?;
        // Alternatives are joined with `or`, so one series at most without grouping.
        let v = if r.series.is_empty() {
            None
        } else {
            Some(r.series.iter().map(|(_, v)| *v).sum())
        };
        Ok((v, r.eval_time_s))
    }

    async fn optional_signal(
        &self,
        t: &Target,
        sel: &str,
        src: SignalSource,
        name: &'static str,
    ) -> Result<Option<f64>, MetricsError> {
        match preset::promql(src, sel, self.settings.rate_window_s, None) {
            None => Ok(None),
            Some(q) => Ok(optional(&t.model, name, self.scalar(&q).await?.0)),
        }
    }

    async fn observe_inner(&self, t: &Target) -> Result<Observation, MetricsError> {
        let p: &Preset = t.engine.preset();
        let sel = preset::selector(
            t.model_label.as_deref(),
            &t.served_name,
            t.matchers.as_deref(),
        );
        let w = self.settings.rate_window_s;

        let fresh_q = preset::freshness_promql(p, &sel);
        let req_q = preset::promql(p.requests, &sel, w, t.variant_label.as_deref())
            .expect("every preset has a request counter (tested)");
        let (fresh, requests) = futures::join!(self.scalar(&fresh_q), self.api.instant(&req_q));
        let (newest_s, eval_s) = fresh?;
        let newest_s = required(&t.model, "request counter timestamp", &fresh_q, newest_s)?;
        let age_s = (eval_s.unwrap_or(newest_s) - newest_s).max(0.0);
        if age_s > self.settings.stale_after_s {
            return Err(MetricsError::Stale {
                model: t.model.clone(),
                source_name: "Prometheus".into(),
                age_s,
                limit_s: self.settings.stale_after_s,
            });
        }
        let requests = requests?;
        let mut by_variant = BTreeMap::new();
        let mut total = None::<f64>;
        for (labels, v) in &requests.series {
            total = Some(total.unwrap_or(0.0) + v);
            if let Some(vl) = &t.variant_label {
                let name = labels
                    .get(vl)
                    .cloned()
                    .unwrap_or_else(|| "(unlabelled)".into());
                *by_variant.entry(name).or_insert(0.0) += v;
            }
        }
        let requests_per_s = required(&t.model, "request rate", &req_q, total)?;

        let (prompt, generation, running, waiting, kv, ttft, tpot) = futures::join!(
            self.optional_signal(t, &sel, p.prompt_tokens, "prompt tokens/s"),
            self.optional_signal(t, &sel, p.generation_tokens, "generation tokens/s"),
            self.optional_signal(t, &sel, p.running, "running"),
            self.optional_signal(t, &sel, p.waiting, "waiting"),
            self.optional_signal(t, &sel, p.kv_cache_usage, "kv cache usage"),
            self.optional_signal(t, &sel, p.ttft, "ttft p90"),
            self.optional_signal(t, &sel, p.tpot, "tpot p90"),
        );
        let obs = Observation {
            requests_per_s,
            requests_per_s_by_variant: by_variant,
            prompt_tokens_per_s: prompt?,
            generation_tokens_per_s: generation?,
            running: running?,
            waiting: waiting?,
            kv_cache_usage: kv?,
            ttft_p90_s: ttft?,
            tpot_p90_s: tpot?,
            data_age_s: age_s,
        };
        if self.settings.history_s > 0.0
            && let Some(now) = eval_s
        {
            let mut h = self.history.lock().expect("history lock");
            let points = h.entry(t.model.clone()).or_default();
            if points
                .last()
                .is_none_or(|(last, _)| now - last >= self.settings.history_step_s)
            {
                points.push((now, requests_per_s));
            }
            let cutoff = now - self.settings.history_s;
            let keep_from = points.partition_point(|(t, _)| *t < cutoff);
            points.drain(..keep_from);
        }
        Ok(obs)
    }
}

impl<A: PromApi> DemandObserver for PrometheusObserver<A> {
    fn observe<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Observation, MetricsError>> {
        Box::pin(self.observe_inner(target))
    }

    fn demand_history(&self, model: &str) -> Vec<(f64, f64)> {
        self.history
            .lock()
            .expect("history lock")
            .get(model)
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Engine;

    /// Answers queries from a table; unknown queries get an empty vector. The evaluation
    /// time is fixed so freshness can be tested against Prometheus's clock.
    struct FakeApi {
        answers: Vec<(String, Vec<(Labels, f64)>)>,
        eval_time_s: f64,
        down: bool,
    }

    /// One observation through an observer over a [`FakeApi`] with these answers.
    async fn observe_with(
        answers: Vec<(String, Vec<(Labels, f64)>)>,
        eval_time_s: f64,
        down: bool,
    ) -> Result<Observation, MetricsError> {
        let api = FakeApi {
            answers,
            eval_time_s,
            down,
        };
        PrometheusObserver::new(api, settings())
            .observe(&target())
            .await
    }

    impl FakeApi {
        fn answer(&self, q: &str) -> Vec<(Labels, f64)> {
            self.answers
                .iter()
                .find(|(k, _)| q.contains(k.as_str()))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        }
    }

    impl PromApi for FakeApi {
        fn instant<'a>(
            &'a self,
            query: &'a str,
        ) -> BoxFuture<'a, Result<InstantResult, MetricsError>> {
            Box::pin(async move {
                if self.down {
                    return Err(MetricsError::Config("down".into()));
                }
                let series = self.answer(query);
                Ok(InstantResult {
                    eval_time_s: (!series.is_empty()).then_some(self.eval_time_s),
                    series,
                })
            })
        }
        fn range<'a>(
            &'a self,
            query: &'a str,
            s: f64,
            e: f64,
            step: f64,
        ) -> BoxFuture<'a, Result<RangeResult, MetricsError>> {
            Box::pin(async move {
                let v = self.answer(query).first().map(|(_, v)| *v).unwrap_or(0.0);
                let pts = range_chunks(s, e, step)
                    .into_iter()
                    .flat_map(|(a, b)| {
                        let n = ((b - a) / step).round() as usize;
                        (0..=n).map(move |i| (a + i as f64 * step, v))
                    })
                    .collect();
                Ok(vec![(Labels::new(), pts)])
            })
        }
    }

    fn target() -> Target {
        Target {
            model: "llama".into(),
            engine: Engine::Vllm,
            served_name: "meta/llama".into(),
            model_label: Some("model_name".into()),
            matchers: None,
            variant_label: Some("gpu".into()),
        }
    }

    fn settings() -> ObserverSettings {
        ObserverSettings {
            rate_window_s: 30.0,
            stale_after_s: 10.0,
            history_s: 3600.0,
            history_step_s: 60.0,
        }
    }

    fn l(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn healthy(newest_s: f64) -> Vec<(String, Vec<(Labels, f64)>)> {
        vec![
            (
                "timestamp(vllm:request_success_total".into(),
                vec![(Labels::new(), newest_s)],
            ),
            (
                "sum by (gpu)(rate(vllm:request_success_total".into(),
                vec![(l(&[("gpu", "h100")]), 3.0), (l(&[("gpu", "a100")]), 1.5)],
            ),
            (
                "vllm:num_requests_running".into(),
                vec![(Labels::new(), 7.0)],
            ),
            (
                "vllm:time_to_first_token_seconds_bucket".into(),
                vec![(Labels::new(), f64::NAN)],
            ),
        ]
    }

    #[tokio::test]
    async fn observation_sums_variants_and_keeps_unknowns_unknown() {
        let o = observe_with(healthy(1000.0), 1002.0, false).await.unwrap();
        assert_eq!(o.requests_per_s, 4.5);
        assert_eq!(o.requests_per_s_by_variant["h100"], 3.0);
        assert_eq!(o.running, Some(7.0));
        assert_eq!(
            o.ttft_p90_s, None,
            "NaN quantile (no requests) is unknown, not 0"
        );
        assert_eq!(o.waiting, None, "absent optional series is unknown");
        assert_eq!(o.data_age_s, 2.0);
    }

    #[tokio::test]
    async fn stale_data_is_judged_on_prometheus_clock() {
        // The scaler's own clock plays no part: only eval time vs newest sample.
        let err = observe_with(healthy(1000.0), 1011.0, false)
            .await
            .unwrap_err();
        assert!(matches!(err, MetricsError::Stale { .. }), "{err}");
        // A sample "from the future" (Prometheus's clock behind the exporter's) is fresh.
        let o = observe_with(healthy(1005.0), 1000.0, false).await.unwrap();
        assert_eq!(o.data_age_s, 0.0);
    }

    #[tokio::test]
    async fn absent_nan_and_outage_are_errors_not_zero() {
        let err = observe_with(vec![], 0.0, false).await.unwrap_err();
        assert!(matches!(err, MetricsError::Absent { .. }), "{err}");
        let mut answers = healthy(1000.0);
        answers[1].1 = vec![(l(&[("gpu", "h100")]), f64::NAN)];
        let err = observe_with(answers, 1000.0, false).await.unwrap_err();
        assert!(matches!(err, MetricsError::NotANumber { .. }), "{err}");
        assert!(observe_with(healthy(1000.0), 1000.0, true).await.is_err());
    }

    #[tokio::test]
    async fn backfill_loads_history_and_observations_extend_it() {
        let mut answers = healthy(10_055.0);
        answers.push((
            "sum(rate(vllm:request_success_total".into(),
            vec![(Labels::new(), 2.0)],
        ));
        let api = FakeApi {
            answers,
            eval_time_s: 10_060.0,
            down: false,
        };
        let obs = PrometheusObserver::new(api, settings());
        let loaded = obs.backfill(&[target()], 10_000.0).await.unwrap();
        assert_eq!(loaded["llama"], 61, "one hour at 60 s, both ends");
        obs.observe(&target()).await.unwrap();
        let h = obs.demand_history("llama");
        assert_eq!(
            h.len(),
            61,
            "the oldest point ages out as the new one arrives"
        );
        assert_eq!(h.last().unwrap(), &(10_060.0, 4.5));
    }

    #[test]
    fn range_chunks_stay_under_the_point_limit_and_cover_everything() {
        let step = 15.0;
        let (start, end) = (0.0, 7.0 * 86_400.0);
        let chunks = range_chunks(start, end, step);
        assert!(chunks.len() >= 4, "{}", chunks.len());
        let mut expected = start;
        let mut points = 0.0;
        for (s, e) in &chunks {
            assert_eq!(*s, expected, "no gap or overlap");
            let n = (e - s) / step + 1.0;
            assert!(n < MAX_POINTS_PER_SERIES, "{n} points");
            points += n;
            expected = e + step;
        }
        assert_eq!(chunks.last().unwrap().1, end);
        assert_eq!(points, (end - start) / step + 1.0);
        assert!(range_chunks(10.0, 0.0, 1.0).is_empty());
    }

    #[test]
    fn decodes_vectors_scalars_matrices_and_rejects_other_shapes() {
        let v: Value = serde_json::json!({"status":"success","data":{"resultType":"vector","result":[{"metric":{"gpu":"h100"},"value":[1700000000.5,"NaN"]}]}});
        let r = decode_instant("q", &v).unwrap();
        assert_eq!(r.eval_time_s, Some(1_700_000_000.5));
        assert!(r.series[0].1.is_nan());
        assert_eq!(r.series[0].0["gpu"], "h100");
        let s: Value = serde_json::json!({"data":{"resultType":"scalar","result":[5,"+Inf"]}});
        assert_eq!(decode_instant("q", &s).unwrap().series[0].1, f64::INFINITY);
        let m: Value = serde_json::json!({"data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,"2"]]}]}});
        assert_eq!(
            decode_range("q", &m).unwrap()[0].1,
            vec![(1.0, 1.0), (2.0, 2.0)]
        );
        let bad: Value = serde_json::json!({"data":{"resultType":"string","result":[1,"x"]}});
        let err = decode_instant("q", &bad).unwrap_err().to_string();
        assert!(
            err.contains("expected resultType vector or scalar"),
            "{err}"
        );
        let mut acc = decode_range("q", &m).unwrap();
        merge_range(&mut acc, decode_range("q", &m).unwrap());
        assert_eq!(acc.len(), 1);
        assert_eq!(acc[0].1.len(), 4);
    }
}
