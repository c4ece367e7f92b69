//! `slo-scaler forecast-eval`: rolling-origin evaluation of the demand forecasters on a real
//! trace (any format [`crate::trace`] reads), as a table or as the JSON other tools read.
//! The evaluation itself is pure: [`forecasting::forecast::evaluation`].
use std::path::PathBuf;

use anyhow::Context;
use forecasting::forecast::evaluation::{EvalConfig, MethodScore, evaluate};
use serde::Serialize;

use crate::trace;

/// Output format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns, one line per method.
    #[default]
    Table,
    /// One JSON object (documented in `docs/forecasting.md`).
    Json,
}

/// `forecast-eval` flags.
#[derive(clap::Args, Debug)]
pub struct ForecastEvalArgs {
    /// Trace: Azure CSV, Mooncake JSONL, or a ServeGen model directory (detected by content).
    #[arg(long)]
    pub trace: PathBuf,
    /// Aggregation interval in seconds [default: 60 for request traces, 600 for ServeGen].
    #[arg(long)]
    pub interval: Option<f64>,
    /// Forecast horizon in seconds (rounded up to whole intervals).
    #[arg(long, default_value_t = 600.0)]
    pub horizon: f64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// The JSON document, field order as documented.
#[derive(Serialize)]
struct Output {
    trace: String,
    interval_s: f64,
    horizon_s: f64,
    points: usize,
    selected: String,
    methods: Vec<MethodScore>,
}

/// Loads the trace, evaluates every method and prints the result.
pub fn run(args: ForecastEvalArgs) -> anyhow::Result<()> {
    let loaded = trace::load(&args.trace)?;
    let interval_s = args.interval.unwrap_or_else(|| loaded.default_interval_s());
    let series = loaded.rate_series(interval_s)?;
    let report = evaluate(
        &series.rates_per_s,
        &EvalConfig::new(interval_s, args.horizon),
    )
    .with_context(|| {
        format!(
            "evaluating {} ({} points at {interval_s} s)",
            args.trace.display(),
            series.rates_per_s.len()
        )
    })?;
    let out = Output {
        trace: args.trace.display().to_string(),
        interval_s: report.interval_s,
        horizon_s: report.horizon_s,
        points: report.points,
        selected: report.selected,
        methods: report.methods,
    };
    match args.format {
        Format::Json => println!("{}", serde_json::to_string(&out)?),
        Format::Table => print!(
            "{}",
            table(
                &out,
                loaded.format(),
                report.warmup_points,
                report.moving_average_window_steps
            )
        ),
    }
    Ok(())
}

fn table(out: &Output, format: trace::TraceFormat, warmup: usize, ma_window: usize) -> String {
    let mut s = format!(
        "trace {} ({}), interval {} s, horizon {} s, {} points scored after a warm-up of {}; \
         selected: {}; moving_average window: {} interval(s)\n",
        out.trace,
        format.name(),
        out.interval_s,
        out.horizon_s,
        out.points,
        warmup,
        out.selected,
        ma_window
    );
    s.push_str(&format!(
        "{:<16} {:>12} {:>8} {:>12} {:>8} {:>8} {:>14}\n",
        "method", "mae", "smape%", "pinball_p95", "cov_90", "cov_95", "width_95"
    ));
    for m in &out.methods {
        s.push_str(&format!(
            "{:<16} {:>12.4} {:>8.2} {:>12.4} {:>8.3} {:>8.3} {:>14.4}\n",
            m.name, m.mae, m.smape, m.pinball_p95, m.coverage_90, m.coverage_95, m.mean_width_95
        ));
    }
    s
}
