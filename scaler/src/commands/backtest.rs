//! `slo-scaler backtest`: replay a real trace through the fleet simulator ([`crate::sim`])
//! once per policy and compare SLO attainment, latency, GPU-hours and cost.
//!
//! Where to start: [`run`] (I/O: read the trace and config, print); [`prepare`] builds the
//! workload, the fleet and the policies' context; [`run_policies`] simulates each policy on
//! the same requests; [`render_json`] / [`render_table`] format the reports. The config is
//! a `serve` config file: the model with an `slo` and `request_mix` (the first, or
//! `--model`) and its variants' profiles and prices. Without `--config` the embedded
//! [`DEFAULT_CONFIG_YAML`] is used (two GPU types, prices named there).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use forecasting::capacity::Slo;
use forecasting::latency::{RequestMix, TokenDist};

use crate::config::Config;
use crate::planner::load_profile;
use crate::sim::autoscaler::ScalingSettings;
use crate::sim::metrics::SimReport;
use crate::sim::policy::{POLICY_NAMES, PolicyContext, build};
use crate::sim::random::SimRng;
use crate::sim::router::Routing;
use crate::sim::workload::{
    SimRequest, TokenLengths, WorkloadOptions, from_records, from_servegen, peak_rate_per_s,
    rates_per_bin,
};
use crate::sim::{FleetSpec, SimVariant, simulate_with_progress};
use crate::trace::{self, Trace, TraceFormat};

/// The fleet used without `--config`: Llama-3.1-8B on H100 (FP8) and A100, cold start
/// 300 s (the profiles'), prices the midpoints of the "specialty cloud" on-demand ranges of
/// the Mercatus GPU Index of May 2026 (H100 SXM5 $2.50–3.50, A100 80GB $1.10–1.50 per
/// GPU-hour, <https://www.mercatus-ai.com/blog/cloud-gpu-pricing>): inputs, not facts.
pub const DEFAULT_CONFIG_YAML: &str = r#"
sizing:
  forecast_interval_s: 60
models:
  - name: llama-3.1-8b
    slo: { ttft_ms: 2000, tpot_ms: 80, percentile: p90, attainment: 0.95 }
    # Mean lengths; ServeGen replays draw lengths around them (docs/simulator.md).
    request_mix: { prompt_tokens: 2048, output_tokens: 256 }
    demand: { kind: constant, rps: 1 }
    variants:
      - { name: h100, profile: builtin/llama-3.1-8b-fp8_h100-80gb_tp1_derived, cost_per_hour: 3.0, max_replicas: 64 }
      - { name: a100, profile: builtin/llama-3.1-8b_a100-80gb_tp1_derived, cost_per_hour: 1.3, max_replicas: 64 }
"#;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One row per policy.
    Table,
    /// `{"trace":..,"policies":[..]}` (README, section Backtest).
    Json,
}

/// Request routing across replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoutingArg {
    /// Fewest requests in flight.
    LeastLoaded,
    /// Longest cached prefix among the nearly least loaded (Mooncake hash ids).
    PrefixAware,
    /// Dynamo's KV router cost: least prefill + decode load in blocks, cached prefix not counted.
    KvCost,
}

/// `backtest` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct BacktestArgs {
    /// Trace: Azure CSV, Mooncake JSONL, or a ServeGen model directory / chunk file.
    #[arg(long)]
    pub trace: PathBuf,
    /// A `serve` config file (the model with an `slo`); default: the embedded fleet.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Which model of the config (default: the first with `slo` and `request_mix`).
    #[arg(long)]
    pub model: Option<String>,
    /// `all` or a comma-separated list of policies.
    #[arg(long, default_value = "all")]
    pub policy: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Seed of every random draw (ServeGen arrivals, token lengths, `--scale` copies).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Time compression: arrival gaps divided by this.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Rate multiplier at unchanged time.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Start of the replayed slice, seconds of trace time.
    #[arg(long, default_value_t = 0.0)]
    pub start_s: f64,
    /// Length of the replayed slice, seconds of trace time (default: to the end).
    #[arg(long)]
    pub duration_s: Option<f64>,
    /// Routing rule.
    #[arg(long, value_enum, default_value_t = RoutingArg::LeastLoaded)]
    pub routing: RoutingArg,
    /// Override every variant's cold start, seconds.
    #[arg(long)]
    pub cold_start_s: Option<f64>,
    /// ServeGen token lengths: `lognormal` (default, CV 1 around the config's request_mix),
    /// `lognormal:CV`, or `fixed:PROMPT,OUTPUT`.
    #[arg(long)]
    pub tokens: Option<String>,
    /// Override the config's TTFT bound, milliseconds.
    #[arg(long)]
    pub slo_ttft_ms: Option<f64>,
    /// Override the config's TPOT bound, milliseconds.
    #[arg(long)]
    pub slo_tpot_ms: Option<f64>,
    /// Include the per-sync timeline (time, arrival rate, replicas per variant) in JSON.
    #[arg(long)]
    pub timeline: bool,
    /// Draw a progress bar on stderr even when it is not a terminal (it is drawn on a
    /// terminal anyway).
    #[arg(long)]
    pub progress: bool,
    /// Also draw a PNG per policy: arrival rate and replicas per variant over time (records
    /// the timeline). No text in the image: `FILE.json` beside it is the legend
    /// (docs/simulator.md).
    #[arg(long, value_name = "FILE.png")]
    pub plot: Option<PathBuf>,
}

/// A workload, a fleet and a policy context, ready to simulate.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The requests replayed.
    pub requests: Vec<SimRequest>,
    /// The fleet.
    pub spec: FleetSpec,
    /// What policies are built from.
    pub ctx: PolicyContext,
    /// The trace's format.
    pub format: TraceFormat,
}

fn parse_tokens(arg: Option<&str>, prompt: f64, output: f64) -> anyhow::Result<TokenLengths> {
    let Some(a) = arg else {
        return Ok(TokenLengths::default_for(prompt, output));
    };
    if a == "lognormal" {
        return Ok(TokenLengths::default_for(prompt, output));
    }
    if let Some(cv) = a.strip_prefix("lognormal:") {
        let cv: f64 = cv
            .parse()
            .ok()
            .filter(|c: &f64| c.is_finite() && *c > 0.0)
            .with_context(|| format!("--tokens {a:?}: expected lognormal:CV with CV > 0"))?;
        return Ok(TokenLengths::LogNormal {
            prompt_mean: prompt,
            output_mean: output,
            cv,
        });
    }
    if let Some(rest) = a.strip_prefix("fixed:")
        && let Some((p, o)) = rest.split_once(',')
        && let (Ok(p), Ok(o)) = (p.trim().parse::<u32>(), o.trim().parse::<u32>())
        && p > 0
        && o > 0
    {
        return Ok(TokenLengths::Fixed {
            prompt_tokens: p,
            output_tokens: o,
        });
    }
    bail!("--tokens {a:?}: expected `lognormal`, `lognormal:CV` or `fixed:PROMPT,OUTPUT`")
}

/// The request mix the pipeline and profile-based baselines size for: the replayed
/// requests' own length distributions (as an operator would configure from the same
/// service's logs), at most 64 bins each.
fn mix_of(requests: &[SimRequest]) -> anyhow::Result<RequestMix> {
    let p: Vec<f64> = requests
        .iter()
        .map(|r| f64::from(r.prompt_tokens))
        .collect();
    let o: Vec<f64> = requests
        .iter()
        .map(|r| f64::from(r.output_tokens))
        .collect();
    Ok(RequestMix {
        prompt_tokens: TokenDist::from_samples(&p).context("prompt lengths")?,
        output_tokens: TokenDist::from_samples(&o).context("output lengths")?,
    })
}

/// Longest history fed to forecasting policies before the slice (simulation time).
const HISTORY_LIMIT_S: f64 = 7.0 * 86_400.0;

/// The trace's demand before `--start-s`, in simulation time (÷ speed) and rate (× speed ×
/// scale), one value per `step_s`, oldest first, ending at the slice's start.
/// `rate_in(from_s, to_s)` is the trace's rate over a span of trace time.
fn history_rates(args: &BacktestArgs, step_s: f64, rate_in: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let trace_step_s = step_s * args.speed;
    let available = (args.start_s / trace_step_s).floor();
    let n = available.min(HISTORY_LIMIT_S / step_s).max(0.0) as usize;
    (0..n)
        .map(|k| {
            let to_s = args.start_s - (n - k - 1) as f64 * trace_step_s;
            rate_in(to_s - trace_step_s, to_s) * args.speed * args.scale
        })
        .collect()
}

/// Builds the workload, fleet and policy context from a loaded trace and config.
///
/// # Errors
/// When the config has no usable model, a profile cannot be loaded, the options are out of
/// range or the slice holds no request.
pub fn prepare(
    trace_path: &Path,
    config: &Config,
    base_dir: Option<&Path>,
    args: &BacktestArgs,
) -> anyhow::Result<Prepared> {
    if !(args.speed.is_finite() && args.speed > 0.0) {
        bail!("--speed: expected a number > 0, got {}", args.speed);
    }
    if !(args.scale.is_finite() && args.scale > 0.0) {
        bail!("--scale: expected a number > 0, got {}", args.scale);
    }
    let model = config
        .models
        .iter()
        .find(|m| match &args.model {
            Some(name) => &m.name == name,
            None => m.slo.is_some() && m.request_mix.is_some(),
        })
        .with_context(|| match &args.model {
            Some(name) => format!("no model {name:?} in the config"),
            None => "the config has no model with `slo` and `request_mix`".into(),
        })?;
    let (Some(slo), Some(mix_cfg)) = (&model.slo, &model.request_mix) else {
        bail!(
            "model {:?} needs `slo` and `request_mix` to be backtested",
            model.name
        );
    };
    let mut variants = Vec::new();
    for v in &model.variants {
        let reference = v.profile.clone().unwrap_or_default();
        let mut profile = load_profile(&reference, base_dir).map_err(|e| {
            anyhow::anyhow!(
                "model {:?} variant {:?}: profile {reference:?}: {e}",
                model.name,
                v.name
            )
        })?;
        if let Some(c) = v.cost_per_hour {
            profile.cost_per_hour = c;
        }
        if let Some(c) = args.cold_start_s {
            profile.lifecycle.cold_start_s = c;
        }
        variants.push(SimVariant {
            name: v.name.clone(),
            profile: Arc::new(profile),
            min: v.min_replicas.ceil() as u32,
            max: v.max_replicas.map_or(256, |m| m.floor() as u32),
        });
    }
    let opts = WorkloadOptions {
        start_s: args.start_s,
        duration_s: args.duration_s,
        speed: args.speed,
        scale: args.scale,
    };
    let mut rng = SimRng::new(args.seed);
    let format = trace::detect_format(trace_path)?;
    let step_s = config.sizing.forecast_interval_s;
    let (requests, history) = match format {
        TraceFormat::ServeGen => {
            let history = match trace::load(trace_path)? {
                Trace::Windows {
                    window_s,
                    rates_per_s,
                    ..
                } => history_rates(args, step_s, |from_s, to_s| {
                    // Windows are relative to the first one, as `from_servegen` places them.
                    let mid = (from_s + to_s) / 2.0;
                    rates_per_s
                        .get((mid / window_s).floor().max(0.0) as usize)
                        .copied()
                        .unwrap_or(0.0)
                }),
                Trace::Requests { .. } => Vec::new(),
            };
            let clients = trace::load_servegen_clients(trace_path)?;
            let tokens = parse_tokens(
                args.tokens.as_deref(),
                mix_cfg.prompt_tokens,
                mix_cfg.output_tokens,
            )?;
            let requests =
                from_servegen(&clients, trace::SERVEGEN_WINDOW_S, &opts, &tokens, &mut rng);
            (requests, history)
        }
        _ => {
            let Trace::Requests { records, .. } = trace::load(trace_path)? else {
                bail!("{} is not a request-level trace", trace_path.display());
            };
            let history = history_rates(args, step_s, |from_s, to_s| {
                let a = records.partition_point(|r| r.arrival_s < from_s);
                let b = records.partition_point(|r| r.arrival_s < to_s);
                (b - a) as f64 / (to_s - from_s)
            });
            (from_records(&records, &opts, &mut rng), history)
        }
    };
    if requests.is_empty() {
        bail!(
            "the slice of {} from {} s ({:?} s long) holds no request",
            trace_path.display(),
            args.start_s,
            args.duration_s
        );
    }
    let slo = Slo {
        ttft_ms: args.slo_ttft_ms.unwrap_or(slo.ttft_ms),
        tpot_ms: args.slo_tpot_ms.unwrap_or(slo.tpot_ms),
        percentile: slo.percentile,
    };
    for (flag, v) in [
        ("--slo-ttft-ms", slo.ttft_ms),
        ("--slo-tpot-ms", slo.tpot_ms),
    ] {
        if !(v.is_finite() && v > 0.0) {
            bail!("{flag}: expected a number > 0, got {v}");
        }
    }
    let ctx = PolicyContext {
        variants: variants.clone(),
        slo,
        attainment: model.slo.as_ref().map_or(0.95, |s| s.attainment),
        mix: mix_of(&requests)?,
        peak_rate_per_s: peak_rate_per_s(&requests, 60.0),
        forecast_interval_s: config.sizing.forecast_interval_s,
        stabilization: config.sizing.stabilization,
        arrival_rates_per_s: rates_per_bin(&requests, 60.0),
        arrival_bin_s: 60.0,
        history_rates_per_s: history,
        tiers: config.sizing.tiers,
        rate_window_s: config.metrics.rate_window_s,
    };
    // The fleet had been running before the slice began, at the rate the last history
    // window shows where there is history (what the forecasters were fed), else at the
    // first minute's: every policy starts from the same warm pool, the first variant sized
    // for that rate, with its HPA holding it through the scale-down window, and the first
    // rate windows include that rate for their part before time 0.
    let prior_arrivals_per_s = ctx
        .history_rates_per_s
        .last()
        .copied()
        .filter(|r| r.is_finite() && *r >= 0.0)
        .unwrap_or_else(|| {
            requests.iter().take_while(|r| r.arrival_s < 60.0).count() as f64 / 60.0
        });
    let cap0 = ctx.capacity_rps(0);
    let mut initial: Vec<u32> = variants.iter().map(|v| v.min).collect();
    initial[0] = initial[0].max(if cap0 > 0.0 {
        ((prior_arrivals_per_s / cap0).ceil() as u32).clamp(1, variants[0].max.max(1))
    } else {
        1
    });
    let spec = FleetSpec {
        variants,
        slo,
        routing: match args.routing {
            RoutingArg::LeastLoaded => Routing::LeastLoaded,
            RoutingArg::PrefixAware => Routing::PrefixAware,
            RoutingArg::KvCost => Routing::KvCost,
        },
        block_tokens: 512,
        scaling: ScalingSettings::default(),
        rate_window_s: config.metrics.rate_window_s,
        prior_arrivals_per_s,
        initial,
        timeline: args.timeline || args.plot.is_some(),
        drain_limit_s: 3600.0,
    };
    Ok(Prepared {
        requests,
        spec,
        ctx,
        format,
    })
}

/// The policy names `--policy` selects.
///
/// # Errors
/// An unknown name (the message lists the known ones).
pub fn policy_names(arg: &str) -> anyhow::Result<Vec<String>> {
    if arg.trim() == "all" {
        return Ok(POLICY_NAMES.iter().map(|s| (*s).to_string()).collect());
    }
    let names: Vec<String> = arg.split(',').map(|s| s.trim().to_string()).collect();
    for n in &names {
        if !POLICY_NAMES.contains(&n.as_str())
            && !crate::sim::policy::tiered::NAMES.contains(&n.as_str())
        {
            bail!(
                "--policy {n:?}: expected `all` or a comma-separated list of {}, {}",
                POLICY_NAMES.join(", "),
                crate::sim::policy::tiered::NAMES.join(", ")
            );
        }
    }
    Ok(names)
}

/// What [`run_policies`] reports while it runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Progress {
    /// The policy's simulation starts.
    Start,
    /// So many of the requests have arrived in simulation.
    Advance {
        /// Requests arrived so far.
        arrived: usize,
        /// Requests in the workload.
        total: usize,
    },
    /// The policy's simulation ended after this many wall seconds.
    Done {
        /// Wall-clock seconds.
        wall_s: f64,
    },
}

/// Simulates each named policy on the same requests; `progress` is told (policy name,
/// [`Progress`]) when each starts, as it advances, and when it ends.
///
/// # Errors
/// A policy that cannot be built (e.g. the SLO pipeline finds the SLO infeasible).
pub fn run_policies(
    prepared: &Prepared,
    names: &[String],
    mut progress: impl FnMut(&str, Progress),
) -> anyhow::Result<Vec<SimReport>> {
    let mut out = Vec::new();
    for name in names {
        progress(name, Progress::Start);
        let started = Instant::now();
        let mut advance = |arrived, total| progress(name, Progress::Advance { arrived, total });
        let report = if name == "oracle" {
            // The cost reference meets the SLO in the simulator (docs/simulator.md, Oracle).
            crate::sim::policy::oracle::search(
                &prepared.ctx,
                &prepared.requests,
                &prepared.spec,
                &mut advance,
            )
        } else {
            let mut policy = build(name, &prepared.ctx)?;
            simulate_with_progress(
                &prepared.requests,
                &prepared.spec,
                policy.as_mut(),
                &mut advance,
            )
        };
        progress(
            name,
            Progress::Done {
                wall_s: started.elapsed().as_secs_f64(),
            },
        );
        out.push(report);
    }
    crate::sim::tier_metrics::compare_after_scale_downs(&mut out);
    Ok(out)
}

/// A one-line progress bar on stderr (redrawn in place, at most ten times a second).
struct ProgressBar {
    last_draw: Option<Instant>,
    started: Instant,
}

impl ProgressBar {
    fn new() -> Self {
        Self {
            last_draw: None,
            started: Instant::now(),
        }
    }

    fn update(&mut self, name: &str, p: Progress) {
        use std::io::Write as _;
        const WIDTH: usize = 30;
        let line = match p {
            Progress::Start => {
                self.started = Instant::now();
                self.last_draw = None;
                return;
            }
            Progress::Advance { arrived, total } => {
                if self
                    .last_draw
                    .is_some_and(|t| t.elapsed().as_secs_f64() < 0.1)
                {
                    return;
                }
                let frac = if total == 0 {
                    1.0
                } else {
                    arrived as f64 / total as f64
                };
                let filled = ((frac * WIDTH as f64) as usize).min(WIDTH);
                format!(
                    "\rbacktest: {name:<15} [{}{}] {:>5.1}% {:>6.1} s",
                    "#".repeat(filled),
                    "-".repeat(WIDTH - filled),
                    frac * 100.0,
                    self.started.elapsed().as_secs_f64()
                )
            }
            Progress::Done { wall_s } => {
                format!(
                    "\rbacktest: {name:<15} done in {wall_s:.1} s{}\n",
                    " ".repeat(WIDTH)
                )
            }
        };
        self.last_draw = Some(Instant::now());
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
    }
}

/// The JSON document (README, section Backtest).
#[must_use]
pub fn render_json(
    trace_path: &Path,
    prepared: &Prepared,
    args: &BacktestArgs,
    reports: &[SimReport],
) -> serde_json::Value {
    let spec = &prepared.spec;
    serde_json::json!({
        "trace": trace_path.display().to_string(),
        "format": prepared.format.name(),
        "requests": prepared.requests.len(),
        "seed": args.seed,
        "speed": args.speed,
        "scale": args.scale,
        "slo": {
            "ttft_ms": spec.slo.ttft_ms,
            "tpot_ms": spec.slo.tpot_ms,
            "percentile": spec.slo.percentile,
        },
        "variants": spec.variants.iter().map(|v| serde_json::json!({
            "name": v.name,
            "gpu": v.profile.gpu,
            "cost_per_hour": v.profile.cost_per_hour,
            "cold_start_s": v.profile.lifecycle.cold_start_s,
            "min": v.min,
            "max": v.max,
        })).collect::<Vec<_>>(),
        "policies": reports,
    })
}

/// A fixed-width table, one row per policy.
#[must_use]
pub fn render_table(prepared: &Prepared, reports: &[SimReport]) -> String {
    use std::fmt::Write as _;
    let names: Vec<&str> = prepared
        .spec
        .variants
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} requests, SLO TTFT ≤ {} ms and TPOT ≤ {} ms (attainment = share of requests within each bound); mean/max replicas of {}",
        prepared.requests.len(),
        prepared.spec.slo.ttft_ms,
        prepared.spec.slo.tpot_ms,
        names.join(", ")
    );
    let _ = writeln!(
        s,
        "{:<15} {:>7} {:>7} {:>7} {:>9} {:>9} {:>8} {:>8} {:>9} {:<20} {:>6} {:>7} {:>9}",
        "policy",
        "both",
        "ttft",
        "tpot",
        "ttft_p90",
        "tpot_p90",
        "gpu_h",
        "cost",
        "ttft_p99",
        "replicas mean/max",
        "cold",
        "waited",
        "decisions"
    );
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.0}"));
    for r in reports {
        let reps = r
            .variants
            .iter()
            .map(|v| format!("{:.1}/{}", v.mean_replicas, v.max_replicas))
            .collect::<Vec<_>>()
            .join(" ");
        let _ = writeln!(
            s,
            "{:<15} {:>6.2}% {:>6.2}% {:>6.2}% {:>9} {:>9} {:>8.2} {:>8.2} {:>9} {:<20} {:>6} {:>7} {:>9}",
            r.name,
            r.attainment.both * 100.0,
            r.attainment.ttft * 100.0,
            r.attainment.tpot * 100.0,
            ms(r.ttft_ms.p90),
            ms(r.tpot_ms.p90),
            r.gpu_hours,
            r.cost,
            ms(r.ttft_ms.p99),
            reps,
            r.cold_starts,
            r.requests_waited_on_cold_start,
            r.decisions
        );
    }
    s
}

/// Runs the command.
///
/// # Errors
/// Unreadable trace or config, bad options, or a policy that cannot be built.
pub fn run(args: BacktestArgs) -> anyhow::Result<()> {
    let (config, base_dir) = match &args.config {
        Some(p) => (
            Config::from_file(p)?,
            p.parent().map(std::path::Path::to_path_buf),
        ),
        None => (
            Config::from_yaml(DEFAULT_CONFIG_YAML, "embedded backtest config")?,
            None,
        ),
    };
    let names = policy_names(&args.policy)?;
    let prepared = prepare(&args.trace, &config, base_dir.as_deref(), &args)?;
    let bar = args.progress || std::io::stderr().is_terminal();
    let mut drawn = ProgressBar::new();
    let reports = run_policies(&prepared, &names, |name, p| {
        if bar {
            drawn.update(name, p);
            return;
        }
        match p {
            Progress::Start => eprint!("backtest: {name} ({} requests)… ", prepared.requests.len()),
            Progress::Done { wall_s } => eprintln!("{wall_s:.1} s"),
            Progress::Advance { .. } => {}
        }
    })?;
    if let Some(path) = &args.plot {
        let names: Vec<String> = prepared
            .spec
            .variants
            .iter()
            .map(|v| v.name.clone())
            .collect();
        let (rgb, legend) = crate::plot::backtest_chart(&reports, &names)?;
        let bytes = crate::plot::encode_png(&rgb, legend.width_px, legend.height_px)?;
        std::fs::write(path, bytes)
            .map_err(|e| anyhow::anyhow!("writing --plot {}: {e}", path.display()))?;
        let legend_path = path.with_extension("json");
        std::fs::write(&legend_path, serde_json::to_string_pretty(&legend)?)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", legend_path.display()))?;
        if let Some(p) = legend.panels.first() {
            eprintln!(
                "plot {}: {} policies, 0..{:.0} s; arrivals 0..{:.1} req/s, replicas 0..{:.1} \
                 (colours in {})",
                path.display(),
                legend.panels.len(),
                p.x_s[1],
                p.demand.y_range[1],
                p.replicas.y_range[1],
                legend_path.display()
            );
        }
    }
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&render_json(&args.trace, &prepared, &args, &reports))?
        ),
        Format::Table => {
            print!("{}", render_table(&prepared, &reports));
            print!("\n{}", crate::sim::tier_metrics::render_table(&reports));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_and_policy_flags_parse_or_say_what_is_expected() {
        assert_eq!(
            parse_tokens(Some("fixed:100,20"), 1.0, 1.0).unwrap(),
            TokenLengths::Fixed {
                prompt_tokens: 100,
                output_tokens: 20
            }
        );
        assert!(matches!(
            parse_tokens(Some("lognormal:2"), 1.0, 1.0).unwrap(),
            TokenLengths::LogNormal { cv, .. } if cv == 2.0
        ));
        let e = parse_tokens(Some("zipf"), 1.0, 1.0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("fixed:PROMPT,OUTPUT"), "{e}");
        assert_eq!(policy_names("all").unwrap().len(), POLICY_NAMES.len());
        let e = policy_names("static-peak,magic").unwrap_err().to_string();
        assert!(e.contains("magic") && e.contains("keda-threshold"), "{e}");
    }

    #[test]
    fn history_before_the_slice_is_in_simulation_time_and_rate() {
        let mut a = BacktestArgs {
            trace: PathBuf::new(),
            config: None,
            model: None,
            policy: "all".into(),
            format: Format::Json,
            seed: 1,
            speed: 2.0,
            scale: 3.0,
            start_s: 300.0,
            duration_s: None,
            routing: RoutingArg::LeastLoaded,
            cold_start_s: None,
            tokens: None,
            slo_ttft_ms: None,
            slo_tpot_ms: None,
            timeline: false,
            progress: false,
            plot: None,
        };
        // 60 s steps of simulation time are 120 s of trace time at speed 2: two whole
        // steps fit before 300 s, the newest ending exactly at the slice's start.
        let spans = std::cell::RefCell::new(Vec::new());
        let h = history_rates(&a, 60.0, |from, to| {
            spans.borrow_mut().push((from, to));
            from / 100.0
        });
        assert_eq!(spans.into_inner(), vec![(60.0, 180.0), (180.0, 300.0)]);
        assert_eq!(h, vec![0.6 * 6.0, 1.8 * 6.0], "rates × speed × scale");
        a.start_s = 0.0;
        assert!(history_rates(&a, 60.0, |_, _| 1.0).is_empty());
    }

    #[test]
    fn the_embedded_config_is_valid() {
        let c = Config::from_yaml(DEFAULT_CONFIG_YAML, "embedded").unwrap();
        assert_eq!(c.models[0].variants.len(), 2);
    }
}
