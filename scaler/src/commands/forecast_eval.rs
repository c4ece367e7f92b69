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
    /// Seconds of the series fed but not scored [default: two days when the series holds at
    /// least four, else a quarter of it]. A week on the 14-day ServeGen traces scores only the
    /// second week: the held-out half of `docs/forecasting.md`.
    #[arg(long)]
    pub warmup: Option<f64>,
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
    print!("{}", render(&args)?);
    Ok(())
}

/// The text `run` prints: the table, or the JSON document followed by a newline.
pub fn render(args: &ForecastEvalArgs) -> anyhow::Result<String> {
    let loaded = trace::load(&args.trace)?;
    let interval_s = args.interval.unwrap_or_else(|| loaded.default_interval_s());
    let series = loaded.rate_series(interval_s)?;
    let mut config = EvalConfig::new(interval_s, args.horizon);
    if let Some(warmup_s) = args.warmup {
        anyhow::ensure!(
            warmup_s.is_finite() && warmup_s >= interval_s,
            "--warmup: expected seconds >= the interval ({interval_s}), got {warmup_s}"
        );
        config.warmup_steps = Some((warmup_s / interval_s).round() as usize);
    }
    let report = evaluate(&series.rates_per_s, &config).with_context(|| {
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
    Ok(match args.format {
        Format::Json => format!("{}\n", serde_json::to_string(&out)?),
        Format::Table => table(
            &out,
            loaded.format(),
            report.warmup_points,
            report.moving_average_window_steps,
        ),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-client ServeGen directory of `windows` 600 s windows with a repeating pattern.
    fn servegen_dir(windows: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let text: String = (0..windows)
            .map(|i| format!("{},{},1,Gamma,1,1\n", i * 600, 5.0 + (i % 7) as f64))
            .collect();
        std::fs::write(dir.path().join("chunk-0-trace.csv"), text).unwrap();
        dir
    }

    #[test]
    fn json_has_the_documented_fields_in_order() {
        let dir = servegen_dir(100);
        let args = ForecastEvalArgs {
            trace: dir.path().to_path_buf(),
            interval: None,
            horizon: 1200.0,
            format: Format::Json,
            warmup: None,
        };
        let text = render(&args).unwrap();
        let keys = [
            "\"trace\"",
            "\"interval_s\"",
            "\"horizon_s\"",
            "\"points\"",
            "\"selected\"",
            "\"methods\"",
        ];
        let at: Vec<usize> = keys.iter().map(|k| text.find(k).unwrap()).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["interval_s"], 600.0);
        assert_eq!(v["horizon_s"], 1200.0);
        // 100 points, warm-up a quarter (25), horizon 2 steps: origins 24..=97.
        assert_eq!(v["points"], 100 - 25 - 2 + 1);
        assert_eq!(v["selected"], "adaptive");
        let names: Vec<&str> = v["methods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "adaptive",
                "holt_winters",
                "seasonal_naive",
                "moving_average"
            ]
        );
        for m in v["methods"].as_array().unwrap() {
            let fields: Vec<&String> = m.as_object().unwrap().keys().collect();
            assert_eq!(fields.len(), 7, "{m}");
            for f in ["mae", "smape", "pinball_p95", "coverage_90", "coverage_95"] {
                assert!(m[f].as_f64().unwrap() >= 0.0, "{f} in {m}");
            }
        }
    }

    #[test]
    fn warmup_flag_moves_the_first_scored_origin() {
        let dir = servegen_dir(100);
        let args = ForecastEvalArgs {
            trace: dir.path().to_path_buf(),
            interval: None,
            horizon: 1200.0,
            format: Format::Json,
            warmup: Some(6000.0),
        };
        let v: serde_json::Value = serde_json::from_str(&render(&args).unwrap()).unwrap();
        // 10 warm-up points, horizon 2 steps: origins 9..=97.
        assert_eq!(v["points"], 100 - 10 - 2 + 1);
        let bad = ForecastEvalArgs {
            warmup: Some(10.0),
            ..args
        };
        let err = render(&bad).unwrap_err().to_string();
        assert!(err.contains("--warmup"), "{err}");
    }

    #[test]
    fn table_names_the_format_and_every_method() {
        let dir = servegen_dir(100);
        let args = ForecastEvalArgs {
            trace: dir.path().to_path_buf(),
            interval: Some(1200.0),
            horizon: 1200.0,
            format: Format::Table,
            warmup: None,
        };
        let text = render(&args).unwrap();
        assert!(text.contains("(servegen), interval 1200 s"), "{text}");
        assert_eq!(text.lines().count(), 6, "{text}");
        let bad = ForecastEvalArgs {
            interval: Some(900.0),
            ..args
        };
        let err = render(&bad).unwrap_err().to_string();
        assert!(err.contains("whole multiple of the 600 s window"), "{err}");
    }
}
