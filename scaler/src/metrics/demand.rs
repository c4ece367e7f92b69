//! The demand observation layer: per model, the request rate the planner sizes for, from
//! whichever source the config names (fixed, synthetic, Prometheus, direct scrape).
//!
//! Planners call [`DemandSources::read`] once per evaluation and get, per model, either a
//! [`DemandReading`] or the reason there is none; they never see metric names or HTTP.
//! Forecasters read the kept history with [`DemandSources::history`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::prometheus::{ObserverSettings, PrometheusClient, PrometheusObserver};
use super::scrape::{Endpoint, HttpFetcher, ScrapeObserver, ScrapeSettings, StaticEndpoints};
use super::{DemandObserver, MetricsError, Observation, Target};
use crate::config::{Config, DemandConfig, ObservedDemand};

/// One model's demand for one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct DemandReading {
    /// Requests per second to size for.
    pub requests_per_s: f64,
    /// Where it came from, for decision reasons (empty for fixed demand).
    pub detail: String,
    /// The full observation, for observed demand.
    pub observation: Option<Observation>,
}

enum Input {
    Fixed(DemandConfig),
    Observed {
        observer: Arc<dyn DemandObserver>,
        target: Target,
    },
}

/// Every model's demand source, built from the config.
pub struct DemandSources {
    inputs: Vec<(String, Input)>,
    observers: Vec<Arc<dyn DemandObserver>>,
    prometheus: Option<Arc<PrometheusObserver<PrometheusClient>>>,
    backfill_targets: Vec<Target>,
}

fn target(model: &str, d: &ObservedDemand) -> Target {
    Target {
        model: model.to_string(),
        engine: d.engine,
        served_name: d.served_name.clone().unwrap_or_else(|| model.to_string()),
        model_label: d
            .model_label
            .clone()
            .or_else(|| d.engine.preset().model_label.map(str::to_string)),
        matchers: d.matchers.clone(),
        variant_label: d.variant_label.clone(),
    }
}

impl DemandSources {
    /// Builds the sources the config uses; Prometheus and scrape clients are created only
    /// when some model needs them (bad CA or token files fail here, at start).
    pub fn from_config(config: &Config) -> Result<Self, MetricsError> {
        let m = &config.metrics;
        let needs = |f: fn(&DemandConfig) -> bool| config.models.iter().any(|x| f(&x.demand));
        let prometheus = match &m.prometheus {
            Some(p) if needs(|d| matches!(d, DemandConfig::Prometheus(_))) => {
                Some(Arc::new(PrometheusObserver::new(
                    PrometheusClient::new(p)?,
                    ObserverSettings {
                        rate_window_s: m.rate_window_s,
                        stale_after_s: m.stale_after_s,
                        history_s: p.history_days * 86_400.0,
                        history_step_s: p.history_step_s,
                    },
                )))
            }
            _ => None,
        };
        let scrape: Option<Arc<dyn DemandObserver>> = match &m.scrape {
            Some(s) if needs(|d| matches!(d, DemandConfig::Scrape(_))) => {
                let endpoints = s
                    .endpoints
                    .iter()
                    .map(|e| Endpoint {
                        url: e.url.clone(),
                        model: e.model.clone(),
                        variant: e.variant.clone(),
                    })
                    .collect();
                Some(Arc::new(ScrapeObserver::new(
                    StaticEndpoints(endpoints),
                    HttpFetcher::new(Duration::from_secs_f64(s.timeout_s))?,
                    ScrapeSettings {
                        rate_window_s: m.rate_window_s,
                        stale_after_s: m.stale_after_s,
                        history_len: s.history_len,
                    },
                )))
            }
            _ => None,
        };
        let mut inputs = Vec::new();
        let mut backfill_targets = Vec::new();
        for model in &config.models {
            let input = match &model.demand {
                DemandConfig::Prometheus(d) => {
                    let observer = prometheus.clone().ok_or_else(|| {
                        MetricsError::Config("kind prometheus without metrics.prometheus".into())
                    })?;
                    backfill_targets.push(target(&model.name, d));
                    Input::Observed {
                        observer,
                        target: target(&model.name, d),
                    }
                }
                DemandConfig::Scrape(d) => Input::Observed {
                    observer: scrape.clone().ok_or_else(|| {
                        MetricsError::Config("kind scrape without metrics.scrape".into())
                    })?,
                    target: target(&model.name, d),
                },
                fixed => Input::Fixed(fixed.clone()),
            };
            inputs.push((model.name.clone(), input));
        }
        let mut observers: Vec<Arc<dyn DemandObserver>> = Vec::new();
        if let Some(p) = &prometheus {
            observers.push(p.clone());
        }
        observers.extend(scrape);
        Ok(Self {
            inputs,
            observers,
            prometheus,
            backfill_targets,
        })
    }

    /// Loads the configured demand history from Prometheus (no-op without it). Errors are
    /// returned for the caller to log: the scaler serves without history rather than not
    /// at all.
    pub async fn backfill(&self, now_s: f64) -> Result<BTreeMap<String, usize>, MetricsError> {
        match &self.prometheus {
            Some(p) => p.backfill(&self.backfill_targets, now_s).await,
            None => Ok(BTreeMap::new()),
        }
    }

    /// Every model's demand at `t_s` (Unix seconds): sources refresh once, then all
    /// models are observed concurrently.
    pub async fn read(&self, t_s: f64) -> BTreeMap<String, Result<DemandReading, String>> {
        futures::future::join_all(self.observers.iter().map(|o| o.refresh())).await;
        let readings =
            futures::future::join_all(self.inputs.iter().map(|(model, input)| async move {
                let r = match input {
                    Input::Fixed(d) => Ok(DemandReading {
                        requests_per_s: crate::demo::demand_rps(d, t_s),
                        detail: String::new(),
                        observation: None,
                    }),
                    Input::Observed { observer, target } => observer
                        .observe(target)
                        .await
                        .map(|o| DemandReading {
                            requests_per_s: o.requests_per_s,
                            detail: o.summary(),
                            observation: Some(o),
                        })
                        .map_err(|e| e.to_string()),
                };
                (model.clone(), r)
            }))
            .await;
        readings.into_iter().collect()
    }

    /// The demand history kept for a model, `(unix_s, requests_per_s)`, oldest first.
    pub fn history(&self, model: &str) -> Vec<(f64, f64)> {
        self.inputs
            .iter()
            .find(|(m, _)| m == model)
            .map(|(_, i)| match i {
                Input::Observed { observer, .. } => observer.demand_history(model),
                Input::Fixed(_) => Vec::new(),
            })
            .unwrap_or_default()
    }
}
