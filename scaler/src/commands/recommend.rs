//! `slo-scaler recommend`: what the scaler would do, from Prometheus history or a trace.
//!
//! Reads each SLO model's demand history (Prometheus range queries, or a trace file),
//! the replicas running now where it can, and prints [`crate::recommend::recommend`]'s
//! report as a table, JSON (`docs/recommend.md`) or KEDA `ScaledObject`s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::config::{Config, DemandConfig, PrometheusConfig};
use crate::metrics::preset;
use crate::metrics::prometheus::{PromApi, PrometheusClient};
use crate::recommend::observe_only::{ReplicaQuery, engine_count_query};
use crate::recommend::render::{ManifestOptions, json, scaled_objects, table};
use crate::recommend::{History, Inputs, Replicas, Scenario, WhatIf, recommend, with_what_if};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people, 100 columns.
    Table,
    /// For tools (schema in docs/recommend.md).
    Json,
    /// KEDA ScaledObjects, one per (model, variant), ready to apply.
    Yaml,
}

/// `recommend` arguments.
#[derive(Debug, clap::Args)]
pub struct RecommendArgs {
    /// Configuration file (YAML): the models, their SLOs, variants and profiles.
    #[arg(long, env = "SLO_SCALER_CONFIG")]
    pub config: PathBuf,
    /// Read demand history from this Prometheus (overrides metrics.prometheus.url).
    #[arg(
        long,
        env = "SLO_SCALER_PROMETHEUS_URL",
        conflicts_with = "trace",
        required_unless_present = "trace"
    )]
    pub prometheus: Option<String>,
    /// Read demand history from a trace (Azure CSV, Mooncake JSONL, ServeGen directory):
    /// `PATH` for every SLO model, or `MODEL=PATH`; repeatable.
    #[arg(long)]
    pub trace: Vec<String>,
    /// The moment to recommend for. Prometheus: `now` (default), Unix seconds, RFC 3339
    /// (`2026-11-28T14:00:00Z`) or `now-2h`/`now-30m`/`now-1d`. Trace: seconds from its
    /// start (or `12h`, `3d`); default its end.
    #[arg(long)]
    pub at: Option<String>,
    /// Hours of schedule (1..=168).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=168))]
    pub hours: u32,
    /// Days of Prometheus history to read [default: metrics.prometheus.history_days, or 7].
    #[arg(long)]
    pub history_days: Option<f64>,
    /// A change to compare with (`slo.ttft_ms=500`, `price.H200=3.2`, `inventory.H100=8`,
    /// `cold_start_s=30`, `demand_scale=1.5`, `MODEL/KEY=VALUE`); repeatable.
    #[arg(long = "what-if", value_name = "KEY=VALUE")]
    pub what_if: Vec<String>,
    /// Replicas running now, `VARIANT=N` or `MODEL/VARIANT=N` (repeatable) [default with
    /// --prometheus: the engines reporting metrics].
    #[arg(long, value_name = "VARIANT=N")]
    pub current: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// `--format yaml`: namespace of the ScaledObjects.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// `--format yaml`: the scaler's gRPC address as KEDA reaches it.
    #[arg(long, default_value = "slo-scaler-headless.slo-scaler.svc:9090")]
    pub scaler_address: String,
    /// `--format yaml`: name of the TriggerAuthentication (mTLS) to reference.
    #[arg(long)]
    pub trigger_auth: Option<String>,
    /// Also draw a PNG: per model, demand history and forecast band, replicas per variant
    /// per hour, cost per hour. The chart has no text; `FILE.json` beside it says what each
    /// colour is and the axis ranges (docs/recommend.md).
    #[arg(long, value_name = "FILE.png")]
    pub plot: Option<PathBuf>,
}

/// Draws the report to `path` and its legend to `path` with a `.json` extension; prints
/// the axis ranges to stderr.
fn write_plot(
    path: &Path,
    report: &crate::recommend::Report,
    inputs: &Inputs,
) -> anyhow::Result<()> {
    let histories: BTreeMap<String, History> = inputs
        .histories
        .iter()
        .filter_map(|(m, h)| h.as_ref().ok().map(|h| (m.clone(), h.clone())))
        .collect();
    let chart = crate::plot::recommend_chart(report, &histories)?;
    let l = &chart.legend;
    let bytes = crate::plot::encode_png(&chart.rgb, l.width_px, l.height_px)?;
    std::fs::write(path, bytes).with_context(|| format!("writing --plot {}", path.display()))?;
    let legend_path = path.with_extension("json");
    std::fs::write(
        &legend_path,
        serde_json::to_string_pretty(l).expect("the legend serializes"),
    )
    .with_context(|| format!("writing {}", legend_path.display()))?;
    for p in &l.panels {
        eprintln!(
            "plot {}: {}: hours {}..{} from --at; demand 0..{:.1} req/s, replicas 0..{:.1}, \
             cost 0..{:.2} $/h (colours in {})",
            path.display(),
            p.model,
            p.x_hours[0],
            p.x_hours[1],
            p.demand.y_range[1],
            p.replicas.y_range[1],
            p.cost_per_hour.y_range[1],
            legend_path.display()
        );
    }
    Ok(())
}

/// Days from 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `30m`, `2h`, `1d`, `90s` or plain seconds.
fn duration_s(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        's' => (&s[..s.len() - 1], 1.0),
        'm' => (&s[..s.len() - 1], 60.0),
        'h' => (&s[..s.len() - 1], 3600.0),
        'd' => (&s[..s.len() - 1], 86_400.0),
        _ => (s, 1.0),
    };
    num.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v * mult)
}

/// `--at` for Prometheus: Unix seconds.
pub fn parse_unix_time(s: &str, now_s: f64) -> anyhow::Result<f64> {
    let s = s.trim();
    if s == "now" {
        return Ok(now_s);
    }
    if let Some(rel) = s.strip_prefix("now-") {
        return duration_s(rel)
            .map(|d| now_s - d)
            .with_context(|| format!("--at {s:?}: expected now-<N>[smhd]"));
    }
    if let Ok(v) = s.parse::<f64>() {
        return Ok(v);
    }
    // RFC 3339 in UTC: YYYY-MM-DDTHH:MM[:SS]Z.
    let bad = || format!("--at {s:?}: expected now, now-2h, Unix seconds or YYYY-MM-DDTHH:MM:SSZ");
    let t = s.strip_suffix('Z').with_context(bad)?;
    let (date, time) = t.split_once(['T', ' ']).with_context(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()
        .with_context(bad)?;
    let hms: Vec<f64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()
        .with_context(bad)?;
    if d.len() != 3 || !(2..=3).contains(&hms.len()) {
        bail!(bad());
    }
    let days = days_from_civil(d[0], d[1], d[2]);
    Ok(days as f64 * 86_400.0
        + hms[0] * 3600.0
        + hms[1] * 60.0
        + hms.get(2).copied().unwrap_or(0.0))
}

fn slo_models(config: &Config) -> Vec<String> {
    config
        .models
        .iter()
        .filter(|m| m.slo.is_some())
        .map(|m| m.name.clone())
        .collect()
}

/// `--current` into per-model replicas.
fn parse_current(args: &[String], config: &Config) -> anyhow::Result<Running> {
    let mut out = Running::new();
    for a in args {
        let (lhs, n) = a
            .split_once('=')
            .with_context(|| format!("--current {a:?}: expected VARIANT=N or MODEL/VARIANT=N"))?;
        let n: u32 = n
            .trim()
            .parse()
            .with_context(|| format!("--current {a:?}: expected a whole number of replicas"))?;
        let (model, variant) = match lhs.split_once('/') {
            Some((m, v)) => (Some(m.trim()), v.trim()),
            None => (None, lhs.trim()),
        };
        let owners: Vec<&str> = config
            .models
            .iter()
            .filter(|m| model.is_none_or(|x| x == m.name))
            .filter(|m| m.variants.iter().any(|v| v.name == variant))
            .map(|m| m.name.as_str())
            .collect();
        if owners.is_empty() {
            bail!("--current {a:?}: no model of the config has a variant {variant:?}");
        }
        if owners.len() > 1 {
            bail!(
                "--current {a:?}: variant {variant:?} belongs to several models ({}); write MODEL/{variant}=N",
                owners.join(", ")
            );
        }
        let entry = out
            .entry(owners[0].to_string())
            .or_insert_with(|| Ok(Replicas::new()));
        if let Ok(r) = entry {
            r.insert(variant.to_string(), n);
        }
    }
    Ok(out)
}

/// Demand histories from traces: `(seconds from the trace start, req/s)` per interval.
fn trace_histories(args: &[String], config: &Config) -> anyhow::Result<(Histories, f64, String)> {
    let interval = config.sizing.forecast_interval_s;
    let models = slo_models(config);
    let mut out = BTreeMap::new();
    let mut end_s: f64 = 0.0;
    let mut names = Vec::new();
    for a in args {
        let (model, path) = match a.split_once('=') {
            Some((m, p)) if config.models.iter().any(|x| x.name == m) => {
                (Some(m.to_string()), PathBuf::from(p))
            }
            _ => (None, PathBuf::from(a)),
        };
        let trace = crate::trace::load(&path)
            .with_context(|| format!("reading trace {}", path.display()))?;
        let series = trace.rate_series(interval).with_context(|| {
            format!(
                "trace {} at sizing.forecast_interval_s = {interval} s",
                path.display()
            )
        })?;
        // Each bin is stamped at its end, as a Prometheus rate is: the demand of the
        // interval that ended then.
        let history: History = series
            .rates_per_s
            .iter()
            .enumerate()
            .map(|(i, r)| ((i + 1) as f64 * interval, *r))
            .collect();
        end_s = end_s.max(history.len() as f64 * interval);
        names.push(format!(
            "{} ({}, {} points at {interval} s)",
            path.file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string()),
            trace.format().name(),
            history.len()
        ));
        match model {
            Some(m) => {
                out.insert(m, Ok(history));
            }
            None => {
                for m in &models {
                    out.entry(m.clone()).or_insert_with(|| Ok(history.clone()));
                }
            }
        }
    }
    for m in &models {
        out.entry(m.clone()).or_insert_with(|| {
            Err("no --trace for this model: pass --trace PATH or --trace MODEL=PATH".into())
        });
    }
    Ok((out, end_s, format!("trace {}", names.join(", "))))
}

/// Per model: its demand history, or why there is none.
type Histories = BTreeMap<String, Result<History, String>>;
/// Per model: its running replicas, or why they are unknown.
type Running = BTreeMap<String, Result<Replicas, String>>;

/// Reads demand history and running engines from Prometheus.
async fn prometheus_inputs(
    config: &Config,
    url: &str,
    at_s: f64,
    days: f64,
) -> anyhow::Result<(Histories, Running)> {
    let base = config.metrics.prometheus.clone();
    let cfg = PrometheusConfig {
        url: url.to_string(),
        // Range queries over days take longer than the per-tick budget of `serve`.
        timeout_s: base.as_ref().map(|b| b.timeout_s.max(30.0)).unwrap_or(30.0),
        retries: base.as_ref().map(|b| b.retries).unwrap_or(2),
        backoff_s: base.as_ref().map(|b| b.backoff_s).unwrap_or(0.1),
        bearer_token_file: base.as_ref().and_then(|b| b.bearer_token_file.clone()),
        basic_auth: base.as_ref().and_then(|b| b.basic_auth.clone()),
        ca_file: base.as_ref().and_then(|b| b.ca_file.clone()),
        history_days: days,
        history_step_s: config.sizing.forecast_interval_s,
    };
    let client = PrometheusClient::new(&cfg).context("building the Prometheus client")?;
    let step = config.sizing.forecast_interval_s;
    let window = config.metrics.rate_window_s.max(step);
    let start = at_s - days * 86_400.0;
    let mut histories = BTreeMap::new();
    let mut current = BTreeMap::new();
    for m in &config.models {
        if m.slo.is_none() {
            continue;
        }
        let DemandConfig::Prometheus(d) = &m.demand else {
            histories.insert(
                m.name.clone(),
                Err(
                    "demand is not `kind: prometheus`: --prometheus reads the engine's request \
                     counter, so the model needs `demand: {kind: prometheus, engine: ...}` \
                     (or use --trace)"
                        .to_string(),
                ),
            );
            continue;
        };
        let p = d.engine.preset();
        let label = d
            .model_label
            .clone()
            .or_else(|| p.model_label.map(str::to_string));
        let served = d.served_name.clone().unwrap_or_else(|| m.name.clone());
        let sel = preset::selector(label.as_deref(), &served, d.matchers.as_deref());
        let q = preset::promql(p.requests, &sel, window, None)
            .expect("every preset has a request counter (tested)");
        let h = match client.range(&q, start, at_s, step).await {
            Err(e) => Err(format!("reading the demand history failed: {e}")),
            Ok(series) => {
                let mut points: History = series
                    .into_iter()
                    .flat_map(|(_, v)| v)
                    .filter(|(_, v)| v.is_finite() && *v >= 0.0)
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                points.dedup_by(|a, b| a.0 == b.0);
                if points.is_empty() {
                    let names = match p.requests {
                        preset::SignalSource::CounterRate(n) => n.join(" or "),
                        _ => String::new(),
                    };
                    Err(format!(
                        "no data: `{q}` returned no series between {} and {}. Check that the \
                         engine exports {names} with {}=\"{served}\" (demand.served_name), that \
                         the matchers {:?} select it, that Prometheus scrapes the engines (`up`) \
                         and keeps {days} days (retention)",
                        crate::recommend::render::utc(start),
                        crate::recommend::render::utc(at_s),
                        label.as_deref().unwrap_or("(no model label)"),
                        d.matchers.as_deref().unwrap_or("")
                    ))
                } else {
                    Ok(points)
                }
            }
        };
        histories.insert(m.name.clone(), h);
        let count = match engine_count_query(&m.name, d, m.variants.len()) {
            ReplicaQuery::Grouped {
                query,
                variant_label,
            } => match client.range(&query, at_s, at_s, step).await {
                Err(e) => Err(format!("counting engines failed: {e}")),
                Ok(series) if series.is_empty() => {
                    Err(format!("`{query}` returned no series at --at"))
                }
                Ok(series) => {
                    let mut r: Replicas = m.variants.iter().map(|v| (v.name.clone(), 0)).collect();
                    for (labels, points) in series {
                        let n = points.last().map(|p| p.1.round() as u32).unwrap_or(0);
                        let v = match &variant_label {
                            Some(l) => labels.get(l).cloned(),
                            None => m.variants.first().map(|v| v.name.clone()),
                        };
                        if let Some(slot) = v.and_then(|v| r.get_mut(&v)) {
                            *slot += n;
                        }
                    }
                    Ok(r)
                }
            },
            ReplicaQuery::Unknown(why) => Err(why),
            ReplicaQuery::PerVariant(_) => unreachable!("no template here"),
        };
        current.insert(m.name.clone(), count);
    }
    Ok((histories, current))
}

/// Gathers inputs, recommends (and the what-if), prints. Fails (after printing) when a
/// model has no recommendation.
pub async fn run(args: RecommendArgs) -> anyhow::Result<()> {
    let config = Config::from_file(&args.config)?;
    let base_dir: Option<&Path> = args.config.parent();
    let what_if = WhatIf::parse(&args.what_if).map_err(anyhow::Error::msg)?;
    let baseline = Scenario::baseline(config.clone());
    let changed = if what_if.is_empty() {
        None
    } else {
        Some(what_if.apply(&baseline).map_err(anyhow::Error::msg)?)
    };
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let given_current = parse_current(&args.current, &config)?;
    let mut inputs = if let Some(url) = args.prometheus.as_deref() {
        let at_s = parse_unix_time(args.at.as_deref().unwrap_or("now"), now_s)?;
        let days = args.history_days.unwrap_or_else(|| {
            config
                .metrics
                .prometheus
                .as_ref()
                .map(|p| p.history_days)
                .filter(|d| *d > 0.0)
                .unwrap_or(7.0)
        });
        let (histories, current) = prometheus_inputs(&config, url, at_s, days).await?;
        Inputs {
            histories,
            current,
            at_s,
            hours: args.hours,
            source: format!("Prometheus {url}, {days} days of history"),
            clock: "unix",
        }
    } else {
        let (histories, end_s, source) = trace_histories(&args.trace, &config)?;
        let at_s = match args.at.as_deref() {
            None => end_s,
            Some(a) => duration_s(a).with_context(|| {
                format!("--at {a:?}: with --trace, seconds from the trace start (or 12h, 3d)")
            })?,
        };
        if at_s > end_s + 1e-9 {
            bail!(
                "--at {at_s} s is after the end of the trace ({end_s} s): nothing to forecast from"
            );
        }
        Inputs {
            histories,
            current: BTreeMap::new(),
            at_s,
            hours: args.hours,
            source,
            clock: "trace",
        }
    };
    // Given counts win over counted ones.
    for (m, r) in given_current {
        inputs.current.insert(m, r);
    }
    let mut report = recommend(&baseline, base_dir, &inputs);
    if let Some(s) = &changed {
        let w = recommend(s, base_dir, &inputs);
        report = with_what_if(report, what_if.given.clone(), w);
    }
    if let Some(path) = &args.plot {
        write_plot(path, &report, &inputs)?;
    }
    match args.format {
        Format::Table => print!("{}", table(&report)),
        Format::Json => println!("{}", json(&report)),
        Format::Yaml => print!(
            "{}",
            scaled_objects(
                &report,
                &config,
                &ManifestOptions {
                    namespace: args.namespace.clone(),
                    scaler_address: args.scaler_address.clone(),
                    trigger_auth: args.trigger_auth.clone(),
                }
            )
        ),
    }
    let failed: Vec<String> = report
        .models
        .iter()
        .filter_map(|m| m.error.as_ref().map(|e| format!("{}: {e}", m.model)))
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} model(s) without a recommendation:\n  {}",
            failed.len(),
            failed.join("\n  ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_every_documented_form() {
        assert_eq!(parse_unix_time("now", 1000.0).unwrap(), 1000.0);
        assert_eq!(parse_unix_time("now-2h", 10_000.0).unwrap(), 2800.0);
        assert_eq!(parse_unix_time("1700000000", 0.0).unwrap(), 1.7e9);
        assert_eq!(
            parse_unix_time("2023-11-14T22:13:20Z", 0.0).unwrap(),
            1_700_000_000.0
        );
        assert_eq!(
            parse_unix_time("2000-02-29T00:00Z", 0.0).unwrap(),
            951_782_400.0
        );
        let e = parse_unix_time("yesterday", 0.0).unwrap_err().to_string();
        assert!(e.contains("expected now"), "{e}");
        assert_eq!(duration_s("3d"), Some(259_200.0));
        assert_eq!(duration_s("90"), Some(90.0));
    }
}
