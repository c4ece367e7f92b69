//! The direct-scrape source: no Prometheus, the scaler scrapes the engines' `/metrics`
//! itself and keeps a bounded in-memory history per endpoint.
//!
//! Where to start: [`ScrapeObserver::refresh`] scrapes every endpoint the
//! [`EndpointLister`] lists (concurrently, each under a timeout) once per evaluation;
//! [`ScrapeObserver::observe`] derives one model's [`Observation`] from the scrapes in the
//! rate window with the same preset names and the same arithmetic as PromQL
//! ([`super::derive`]). The endpoint list is a trait so Kubernetes pod discovery can
//! replace the static list later; the HTTP fetch is a trait so the policy is tested
//! without network.
//!
//! Deliberate choices: scrapes are stamped with the scaler's monotonic clock (an engine's
//! skewed clock or its exposition timestamps cannot fake freshness); a model is
//! unavailable as soon as any of its endpoints is stale or failing (a partial sum would
//! under-count demand and scale a busy model down); a scrape with a duplicate series is
//! rejected whole, as Prometheus does.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use super::derive::{counter_rate_per_s, histogram_increase, histogram_quantile};
use super::exposition::{LabelPairs, Sample, parse};
use super::preset::{LATENCY_QUANTILE, SignalSource};
use super::{DemandObserver, MetricsError, Observation, Target, optional, required};

/// One engine replica to scrape.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    /// Full URL of its metrics, e.g. `http://10.0.0.7:8000/metrics`.
    pub url: String,
    /// The scaler model it serves.
    pub model: String,
    /// The GPU variant it runs on.
    pub variant: String,
}

/// Lists the endpoints to scrape (static config today; pod discovery later).
pub trait EndpointLister: Send + Sync + 'static {
    /// The current endpoints.
    fn endpoints(&self) -> Vec<Endpoint>;
}

/// A fixed list from config.
#[derive(Debug, Clone)]
pub struct StaticEndpoints(pub Vec<Endpoint>);

impl EndpointLister for StaticEndpoints {
    fn endpoints(&self) -> Vec<Endpoint> {
        self.0.clone()
    }
}

/// The I/O edge: fetch one exposition.
pub trait Fetcher: Send + Sync + 'static {
    /// The body of `GET url`.
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<String, MetricsError>>;
}

/// Fetches over HTTP with reqwest.
pub struct HttpFetcher {
    client: reqwest::Client,
}

impl HttpFetcher {
    /// A fetcher whose every request is bounded by `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, MetricsError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .tls_backend_rustls()
            .build()
            .map_err(|e| MetricsError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { client })
    }
}

impl Fetcher for HttpFetcher {
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<String, MetricsError>> {
        Box::pin(async move {
            let resp = self
                .client
                .get(url)
                .send()
                .await
                .map_err(|source| MetricsError::Http {
                    url: url.to_string(),
                    attempts: 1,
                    source,
                })?;
            let status = resp.status();
            let body = resp.text().await.map_err(|source| MetricsError::Http {
                url: url.to_string(),
                attempts: 1,
                source,
            })?;
            if !status.is_success() {
                return Err(MetricsError::Status {
                    url: url.to_string(),
                    status: status.as_u16(),
                    body: body.chars().take(300).collect(),
                });
            }
            Ok(body)
        })
    }
}

/// Settings of the scrape source.
#[derive(Debug, Clone, Copy)]
pub struct ScrapeSettings {
    /// Window for rates and latency quantiles, seconds.
    pub rate_window_s: f64,
    /// A model whose newest scrape is older than this is stale, seconds.
    pub stale_after_s: f64,
    /// Scrapes kept per endpoint (the bound on memory).
    pub history_len: usize,
}

#[derive(Default)]
struct EndpointState {
    /// `(seconds on the scaler's monotonic clock, samples)`, oldest first.
    scrapes: VecDeque<(f64, Arc<Vec<Sample>>)>,
    last_error: Option<String>,
}

/// Observations from scraping the engines directly.
pub struct ScrapeObserver<L, F> {
    lister: L,
    fetcher: F,
    settings: ScrapeSettings,
    epoch: Instant,
    state: Mutex<BTreeMap<String, EndpointState>>,
    /// Per model, `(unix_s, requests_per_s)` of each observation, at most `history_len`.
    demand: Mutex<BTreeMap<String, VecDeque<(f64, f64)>>>,
}

impl<L: EndpointLister, F: Fetcher> ScrapeObserver<L, F> {
    /// A source over `lister`'s endpoints.
    pub fn new(lister: L, fetcher: F, settings: ScrapeSettings) -> Self {
        Self {
            lister,
            fetcher,
            settings,
            epoch: Instant::now(),
            state: Mutex::new(BTreeMap::new()),
            demand: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records an observed demand for forecasters (bounded like the scrapes: without
    /// Prometheus there is no other history, and a restart starts it afresh).
    fn record_demand(&self, model: &str, unix_s: f64, requests_per_s: f64) {
        let mut d = self.demand.lock().expect("demand history lock");
        let h = d.entry(model.to_string()).or_default();
        h.push_back((unix_s, requests_per_s));
        while h.len() > self.settings.history_len.max(2) {
            h.pop_front();
        }
    }

    fn now_s(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    /// Scrapes every endpoint once, recording every result at `now_s` (tests pass their
    /// own clock).
    pub async fn refresh_at(&self, now_s: f64) {
        self.refresh_with(&|| now_s).await
    }

    /// Scrapes every endpoint once; each scrape is stamped by `clock` when its body has
    /// arrived (the moment the counters were read, give or take the transfer), so one
    /// slow endpoint does not skew the others' rates.
    async fn refresh_with(&self, clock: &(dyn Fn() -> f64 + Sync)) {
        let endpoints = self.lister.endpoints();
        let results = futures::future::join_all(endpoints.iter().map(|e| async move {
            let body = self.fetcher.fetch(&e.url).await?;
            let at = clock();
            let samples = parse(&body).map_err(|p| MetricsError::Scrape {
                endpoint: e.url.clone(),
                why: format!("unparsable exposition: {p}"),
            })?;
            Ok::<_, MetricsError>((at, samples))
        }))
        .await;
        let mut state = self.state.lock().expect("scrape state lock");
        // Forget endpoints the lister no longer lists.
        state.retain(|url, _| endpoints.iter().any(|e| &e.url == url));
        for (e, r) in endpoints.iter().zip(results) {
            let s = state.entry(e.url.clone()).or_default();
            match r {
                Ok((at, samples)) => {
                    s.scrapes.push_back((at, Arc::new(samples)));
                    while s.scrapes.len() > self.settings.history_len.max(2) {
                        s.scrapes.pop_front();
                    }
                    s.last_error = None;
                }
                Err(err) => {
                    tracing::warn!(endpoint = %e.url, error = %err, "scrape failed");
                    s.last_error = Some(err.to_string());
                }
            }
        }
    }

    /// Observes a model at `now_s` on the scrape clock.
    pub fn observe_at(&self, t: &Target, now_s: f64) -> Result<Observation, MetricsError> {
        let endpoints: Vec<Endpoint> = self
            .lister
            .endpoints()
            .into_iter()
            .filter(|e| e.model == t.model)
            .collect();
        if endpoints.is_empty() {
            return Err(MetricsError::NoEndpoints {
                model: t.model.clone(),
            });
        }
        let p = t.engine.preset();
        let state = self.state.lock().expect("scrape state lock");
        let mut per_endpoint = Vec::new();
        let mut oldest_newest_age = 0.0f64;
        for e in &endpoints {
            let s = state.get(&e.url);
            let newest = s.and_then(|s| s.scrapes.back());
            let age_s = newest.map(|(at, _)| now_s - at).unwrap_or(f64::INFINITY);
            if age_s > self.settings.stale_after_s {
                let last_error = s.and_then(|s| s.last_error.clone());
                return Err(match last_error {
                    Some(why) => MetricsError::Scrape {
                        endpoint: e.url.clone(),
                        why: format!("{why} (newest good scrape {age_s:.1} s old)"),
                    },
                    None => MetricsError::Stale {
                        model: t.model.clone(),
                        source_name: e.url.clone(),
                        age_s,
                        limit_s: self.settings.stale_after_s,
                    },
                });
            }
            oldest_newest_age = oldest_newest_age.max(age_s);
            let s = s.expect("a fresh endpoint has state");
            let newest_at = s.scrapes.back().map(|(at, _)| *at).unwrap_or(now_s);
            let window: Vec<(f64, Arc<Vec<Sample>>)> = s
                .scrapes
                .iter()
                .filter(|(at, _)| *at >= newest_at - self.settings.rate_window_s)
                .cloned()
                .collect();
            if window.len() < 2 {
                return Err(MetricsError::WarmingUp {
                    model: t.model.clone(),
                    endpoint: e.url.clone(),
                    have: window.len(),
                });
            }
            per_endpoint.push((e, window));
        }
        drop(state);

        let matches = |s: &Sample| match &t.model_label {
            Some(l) => s.label(l) == Some(t.served_name.as_str()),
            None => true,
        };
        let mut total = None::<f64>;
        let mut by_variant = BTreeMap::new();
        let mut sums: BTreeMap<&'static str, Option<f64>> = BTreeMap::new();
        let mut kv = Vec::new();
        let mut ttft_buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        let mut tpot_buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for (e, window) in &per_endpoint {
            if let Some(r) = signal_value(p.requests, window, &matches) {
                total = Some(total.unwrap_or(0.0) + r);
                *by_variant.entry(e.variant.clone()).or_insert(0.0) += r;
            }
            for (key, src) in [
                ("prompt", p.prompt_tokens),
                ("generation", p.generation_tokens),
                ("running", p.running),
                ("waiting", p.waiting),
            ] {
                if let Some(v) = signal_value(src, window, &matches) {
                    let slot = sums.entry(key).or_insert(None);
                    *slot = Some(slot.unwrap_or(0.0) + v);
                }
            }
            if let Some(v) = signal_value(p.kv_cache_usage, window, &matches) {
                kv.push(v);
            }
            add_histogram(p.ttft, window, &matches, &mut ttft_buckets);
            add_histogram(p.tpot, window, &matches, &mut tpot_buckets);
        }
        let names = match p.requests {
            SignalSource::CounterRate(n) => n.join(" or "),
            _ => String::new(),
        };
        let requests_per_s = required(&t.model, "request rate", &names, total)?;
        let get = |k: &str| sums.get(k).copied().flatten();
        let quantile = |b: &BTreeMap<u64, (f64, f64)>| {
            let v: Vec<(f64, f64)> = b.values().copied().collect();
            if v.is_empty() {
                None
            } else {
                Some(histogram_quantile(LATENCY_QUANTILE, &v).unwrap_or(f64::NAN))
            }
        };
        Ok(Observation {
            requests_per_s,
            requests_per_s_by_variant: by_variant,
            prompt_tokens_per_s: optional(&t.model, "prompt tokens/s", get("prompt")),
            generation_tokens_per_s: optional(&t.model, "generation tokens/s", get("generation")),
            running: optional(&t.model, "running", get("running")),
            waiting: optional(&t.model, "waiting", get("waiting")),
            kv_cache_usage: optional(
                &t.model,
                "kv cache usage",
                (!kv.is_empty()).then(|| kv.iter().sum::<f64>() / kv.len() as f64),
            ),
            ttft_p90_s: optional(&t.model, "ttft p90", quantile(&ttft_buckets)),
            tpot_p90_s: optional(&t.model, "tpot p90", quantile(&tpot_buckets)),
            data_age_s: oldest_newest_age,
        })
    }
}

/// The first of `names` with a matching series in the newest scrape (current name first;
/// never two names added together).
fn pick_name<'n>(
    names: &'n [&'n str],
    suffix: &str,
    newest: &[Sample],
    matches: &dyn Fn(&Sample) -> bool,
) -> Option<String> {
    names
        .iter()
        .map(|n| format!("{n}{suffix}"))
        .find(|n| newest.iter().any(|s| &s.name == n && matches(s)))
}

/// One endpoint's value of a counter-rate or gauge signal over its window.
fn signal_value(
    src: SignalSource,
    window: &[(f64, Arc<Vec<Sample>>)],
    matches: &dyn Fn(&Sample) -> bool,
) -> Option<f64> {
    let (_, newest) = window.last()?;
    match src {
        SignalSource::CounterRate(names) | SignalSource::HistogramSumRate(names) => {
            let suffix = if matches!(src, SignalSource::HistogramSumRate(_)) {
                "_sum"
            } else {
                ""
            };
            let name = pick_name(names, suffix, newest, matches)?;
            // Rate per series (a reset of one series must not hide another's growth), then sum.
            let mut series: BTreeMap<&LabelPairs, Vec<(f64, f64)>> = BTreeMap::new();
            for (at, samples) in window {
                for s in samples.iter().filter(|s| s.name == name && matches(s)) {
                    series.entry(&s.labels).or_default().push((*at, s.value));
                }
            }
            let rates: Vec<f64> = series
                .values()
                .filter_map(|v| counter_rate_per_s(v))
                .collect();
            (!rates.is_empty()).then(|| rates.iter().sum())
        }
        SignalSource::GaugeSum(names) | SignalSource::GaugeMean(names) => {
            let name = pick_name(names, "", newest, matches)?;
            let values: Vec<f64> = newest
                .iter()
                .filter(|s| s.name == name && matches(s))
                .map(|s| s.value)
                .collect();
            let sum: f64 = values.iter().sum();
            Some(if matches!(src, SignalSource::GaugeMean(_)) {
                sum / values.len() as f64
            } else {
                sum
            })
        }
        SignalSource::HistogramQuantile(_) | SignalSource::Absent => None,
    }
}

/// Adds one endpoint's bucket increases over its window to `acc` (keyed by `le` bits).
fn add_histogram(
    src: SignalSource,
    window: &[(f64, Arc<Vec<Sample>>)],
    matches: &dyn Fn(&Sample) -> bool,
    acc: &mut BTreeMap<u64, (f64, f64)>,
) {
    let SignalSource::HistogramQuantile(names) = src else {
        return;
    };
    let (Some((_, oldest)), Some((_, newest))) = (window.first(), window.last()) else {
        return;
    };
    let Some(name) = pick_name(names, "_bucket", newest, matches) else {
        return;
    };
    let buckets = |samples: &[Sample]| {
        let mut by_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for s in samples.iter().filter(|s| s.name == name && matches(s)) {
            let Some(le) = s.label("le").and_then(|l| match l {
                "+Inf" | "Inf" => Some(f64::INFINITY),
                x => x.parse::<f64>().ok(),
            }) else {
                continue;
            };
            let e = by_le.entry(le.to_bits()).or_insert((le, 0.0));
            e.1 += s.value;
        }
        by_le.into_values().collect::<Vec<_>>()
    };
    for (le, inc) in histogram_increase(&buckets(oldest), &buckets(newest)) {
        acc.entry(le.to_bits()).or_insert((le, 0.0)).1 += inc;
    }
}

impl<L: EndpointLister, F: Fetcher> DemandObserver for ScrapeObserver<L, F> {
    fn refresh(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move { self.refresh_with(&|| self.now_s()).await })
    }

    fn observe<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Observation, MetricsError>> {
        Box::pin(async move {
            let o = self.observe_at(target, self.now_s())?;
            let unix_s = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            self.record_demand(&target.model, unix_s, o.requests_per_s);
            Ok(o)
        })
    }

    fn demand_history(&self, model: &str) -> Vec<(f64, f64)> {
        self.demand
            .lock()
            .expect("demand history lock")
            .get(model)
            .map(|h| h.iter().copied().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Engine;

    /// Serves the body the test put in for each URL; a missing URL is "connection refused".
    #[derive(Default, Clone)]
    struct FakeFetcher(Arc<Mutex<BTreeMap<String, String>>>);

    impl FakeFetcher {
        fn set(&self, url: &str, body: &str) {
            self.0.lock().unwrap().insert(url.into(), body.into());
        }
        fn down(&self, url: &str) {
            self.0.lock().unwrap().remove(url);
        }
    }

    impl Fetcher for FakeFetcher {
        fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<String, MetricsError>> {
            Box::pin(async move {
                self.0
                    .lock()
                    .unwrap()
                    .get(url)
                    .cloned()
                    .ok_or_else(|| MetricsError::Scrape {
                        endpoint: url.into(),
                        why: "connection refused".into(),
                    })
            })
        }
    }

    fn ep(url: &str, variant: &str) -> Endpoint {
        Endpoint {
            url: url.into(),
            model: "llama".into(),
            variant: variant.into(),
        }
    }

    fn target() -> Target {
        Target {
            model: "llama".into(),
            engine: Engine::Vllm,
            served_name: "meta/llama".into(),
            model_label: Some("model_name".into()),
            matchers: None,
            variant_label: None,
        }
    }

    fn vllm(requests: f64, running: f64, fast: f64, total: f64) -> String {
        format!(
            "vllm:request_success_total{{model_name=\"meta/llama\",finished_reason=\"stop\"}} {requests}\n\
             vllm:request_success_total{{model_name=\"other\",finished_reason=\"stop\"}} 999999\n\
             vllm:num_requests_running{{model_name=\"meta/llama\"}} {running}\n\
             vllm:gpu_cache_usage_perc{{model_name=\"meta/llama\"}} 0.5\n\
             vllm:time_to_first_token_seconds_bucket{{model_name=\"meta/llama\",le=\"0.1\"}} {fast}\n\
             vllm:time_to_first_token_seconds_bucket{{model_name=\"meta/llama\",le=\"1\"}} {total}\n\
             vllm:time_to_first_token_seconds_bucket{{model_name=\"meta/llama\",le=\"+Inf\"}} {total}\n"
        )
    }

    fn observer(
        f: &FakeFetcher,
        eps: Vec<Endpoint>,
    ) -> ScrapeObserver<StaticEndpoints, FakeFetcher> {
        ScrapeObserver::new(
            StaticEndpoints(eps),
            f.clone(),
            ScrapeSettings {
                rate_window_s: 10.0,
                stale_after_s: 3.0,
                history_len: 100,
            },
        )
    }

    #[tokio::test]
    async fn rates_sum_across_replicas_and_filter_by_model_label() {
        let f = FakeFetcher::default();
        let o = observer(&f, vec![ep("a", "h100"), ep("b", "a100")]);
        f.set("a", &vllm(100.0, 2.0, 0.0, 0.0));
        f.set("b", &vllm(10.0, 1.0, 0.0, 0.0));
        o.refresh_at(0.0).await;
        let err = o.observe_at(&target(), 0.0).unwrap_err();
        assert!(
            matches!(err, MetricsError::WarmingUp { .. }),
            "one scrape is no rate: {err}"
        );
        f.set("a", &vllm(120.0, 3.0, 9.0, 10.0));
        f.set("b", &vllm(20.0, 1.0, 0.0, 10.0));
        o.refresh_at(2.0).await;
        let obs = o.observe_at(&target(), 2.5).unwrap();
        assert_eq!(obs.requests_per_s, 15.0, "(20 + 10) / 2 s");
        assert_eq!(obs.requests_per_s_by_variant["h100"], 10.0);
        assert_eq!(obs.running, Some(4.0));
        assert_eq!(obs.kv_cache_usage, Some(0.5), "older vLLM name accepted");
        // 20 observations: 9 under 0.1 s, 11 in (0.1, 1] → p90 (rank 18) = 0.1 + 0.9 × 9/11.
        assert!(
            (obs.ttft_p90_s.unwrap() - (0.1 + 0.9 * 9.0 / 11.0)).abs() < 1e-9,
            "{obs:?}"
        );
        assert_eq!(obs.data_age_s, 0.5);
    }

    #[tokio::test]
    async fn counter_reset_counts_from_zero_and_empty_histogram_is_unknown() {
        let f = FakeFetcher::default();
        let o = observer(&f, vec![ep("a", "h100")]);
        f.set("a", &vllm(500.0, 1.0, 5.0, 5.0));
        o.refresh_at(0.0).await;
        f.set("a", &vllm(6.0, 1.0, 5.0, 5.0)); // the engine restarted and served 6 since
        o.refresh_at(2.0).await;
        let obs = o.observe_at(&target(), 2.0).unwrap();
        assert_eq!(obs.requests_per_s, 3.0);
        assert_eq!(obs.ttft_p90_s, None, "no TTFT observations in the window");
    }

    #[tokio::test]
    async fn a_down_or_stale_endpoint_makes_the_model_unavailable() {
        let f = FakeFetcher::default();
        let o = observer(&f, vec![ep("a", "h100"), ep("b", "h100")]);
        f.set("a", &vllm(1.0, 1.0, 0.0, 0.0));
        f.set("b", &vllm(1.0, 1.0, 0.0, 0.0));
        o.refresh_at(0.0).await;
        o.refresh_at(1.0).await;
        assert!(o.observe_at(&target(), 1.0).is_ok());
        f.down("b");
        o.refresh_at(2.0).await;
        // Still within stale_after: the last good scrape of b counts.
        assert!(o.observe_at(&target(), 2.0).is_ok());
        o.refresh_at(5.0).await;
        let err = o.observe_at(&target(), 5.0).unwrap_err().to_string();
        assert!(
            err.contains("connection refused") && err.contains("endpoint b"),
            "{err}"
        );
        // Nobody scraping at all: stale, not a frozen old value.
        let err = o.observe_at(&target(), 60.0).unwrap_err();
        assert!(
            matches!(
                err,
                MetricsError::Scrape { .. } | MetricsError::Stale { .. }
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn nan_demand_duplicates_and_missing_series_are_errors() {
        let f = FakeFetcher::default();
        let o = observer(&f, vec![ep("a", "h100")]);
        f.set(
            "a",
            "vllm:request_success_total{model_name=\"meta/llama\"} NaN\n",
        );
        o.refresh_at(0.0).await;
        o.refresh_at(1.0).await;
        let err = o.observe_at(&target(), 1.0).unwrap_err();
        assert!(
            matches!(err, MetricsError::Absent { .. }),
            "NaN counter gives no rate: {err}"
        );
        f.set(
            "a",
            "vllm:num_requests_running{model_name=\"meta/llama\"} 1\n",
        );
        o.refresh_at(2.0).await;
        o.refresh_at(3.0).await;
        assert!(matches!(
            o.observe_at(&target(), 3.0),
            Err(MetricsError::Absent { .. })
        ));
        f.set("a", "x 1\nx 2\n");
        o.refresh_at(4.0).await;
        o.refresh_at(7.0).await;
        let err = o.observe_at(&target(), 7.0).unwrap_err().to_string();
        assert!(err.contains("duplicate series"), "{err}");
    }

    #[tokio::test]
    async fn history_is_bounded() {
        let f = FakeFetcher::default();
        let o = ScrapeObserver::new(
            StaticEndpoints(vec![ep("a", "h100")]),
            f.clone(),
            ScrapeSettings {
                rate_window_s: 1000.0,
                stale_after_s: 3.0,
                history_len: 5,
            },
        );
        for i in 0..20 {
            f.set("a", &vllm(i as f64, 1.0, 0.0, 0.0));
            o.refresh_at(i as f64).await;
        }
        assert_eq!(o.state.lock().unwrap()["a"].scrapes.len(), 5);
        assert_eq!(o.observe_at(&target(), 19.0).unwrap().requests_per_s, 1.0);
        for _ in 0..8 {
            o.record_demand("llama", 0.0, 1.0);
        }
        assert_eq!(
            o.demand_history("llama").len(),
            5,
            "demand history bounded too"
        );
        let none = ScrapeObserver::new(
            StaticEndpoints(vec![]),
            f,
            ScrapeSettings {
                rate_window_s: 1.0,
                stale_after_s: 1.0,
                history_len: 2,
            },
        );
        assert!(matches!(
            none.observe_at(&target(), 0.0),
            Err(MetricsError::NoEndpoints { .. })
        ));
    }
}
