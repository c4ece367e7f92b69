//! `slo-scaler latency`: predicted TTFT/TPOT percentiles of a replica pool under a given
//! load, from a performance profile (see `docs/performance-model.md`).
use std::path::{Path, PathBuf};

use anyhow::Context;
use forecasting::capacity::{Slo, capacity_per_replica_with_arrivals};
use forecasting::latency::{
    LatencyModel, POISSON_ARRIVAL_CV2, Percentile, PercentilesMs, Prediction, RequestMix, TokenDist,
};
use forecasting::profile::Profile;
use serde::Serialize;

/// Output format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object.
    Json,
}

/// `latency` flags.
#[derive(clap::Args, Debug)]
pub struct LatencyArgs {
    /// Performance profile (YAML).
    #[arg(long)]
    pub profile: PathBuf,
    /// Total arrival rate (requests/s), spread evenly over the replicas.
    #[arg(long)]
    pub rate: f64,
    /// Number of replicas.
    #[arg(long, default_value_t = 1)]
    pub replicas: u32,
    /// Prompt tokens per request: a number (every request) or a distribution file (one
    /// `tokens` or `tokens,weight` per line, `#` comments).
    #[arg(long)]
    pub prompt_tokens: String,
    /// Output tokens per request: a number or a distribution file, as --prompt-tokens.
    #[arg(long)]
    pub output_tokens: String,
    /// With --slo-tpot-ms: also print the highest rate per replica meeting this TTFT bound.
    #[arg(long, requires = "slo_tpot_ms")]
    pub slo_ttft_ms: Option<f64>,
    /// With --slo-ttft-ms: the TPOT bound of the SLO.
    #[arg(long, requires = "slo_ttft_ms")]
    pub slo_tpot_ms: Option<f64>,
    /// Percentile of the SLO.
    #[arg(long, value_enum, default_value = "p99")]
    pub slo_percentile: SloPercentile,
    /// Squared coefficient of variation of the inter-arrival times: 1 Poisson (default), 0
    /// evenly spaced (e.g. GuideLLM `constant`), above 1 bursty. Scales the queueing waits
    /// in TTFT (Kingman / Allen–Cunneen); applies to the capacity too.
    #[arg(long, default_value_t = POISSON_ARRIVAL_CV2)]
    pub arrival_cv2: f64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Percentile choice for the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SloPercentile {
    /// Median.
    P50,
    /// 90th percentile.
    P90,
    /// 99th percentile.
    P99,
}

impl From<SloPercentile> for Percentile {
    fn from(p: SloPercentile) -> Self {
        match p {
            SloPercentile::P50 => Self::P50,
            SloPercentile::P90 => Self::P90,
            SloPercentile::P99 => Self::P99,
        }
    }
}

/// Reads a profile file.
///
/// # Errors
/// If the file cannot be read or is not a valid profile.
pub fn load_profile(path: &Path) -> anyhow::Result<Profile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Profile::from_yaml(&text).with_context(|| format!("profile {}", path.display()))
}

/// A token count or a distribution file.
///
/// # Errors
/// If `spec` is neither a number nor a readable distribution file.
pub fn token_dist(spec: &str) -> anyhow::Result<TokenDist> {
    if let Ok(v) = spec.trim().parse::<f64>() {
        return Ok(TokenDist::constant(v)?);
    }
    let text = std::fs::read_to_string(spec)
        .with_context(|| format!("{spec:?} is not a number; reading it as a distribution file"))?;
    TokenDist::parse(&text).with_context(|| format!("distribution file {spec}"))
}

/// Percentiles as printed: `null` where unbounded (JSON has no infinity).
#[derive(Debug, Serialize)]
pub struct PercentilesJson {
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// The JSON object `latency --format json` prints, fields in the documented order.
#[derive(Debug, Serialize)]
pub struct PredictionJson {
    /// Time to first token (ms).
    pub ttft_ms: PercentilesJson,
    /// Time per output token (ms).
    pub tpot_ms: PercentilesJson,
    /// Offered rate per replica over the saturation rate.
    pub utilization: Option<f64>,
    /// Queues grow without bound.
    pub saturated: bool,
    /// Highest rate per replica meeting the SLO, when an SLO was given (req/s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_per_replica_rps: Option<f64>,
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

impl PredictionJson {
    /// From a prediction, with the capacity if computed.
    #[must_use]
    pub fn new(p: &Prediction, capacity_per_replica_rps: Option<f64>) -> Self {
        let pct = |x: &PercentilesMs| PercentilesJson {
            p50: finite(x.p50),
            p90: finite(x.p90),
            p99: finite(x.p99),
        };
        Self {
            ttft_ms: pct(&p.ttft_ms),
            tpot_ms: pct(&p.tpot_ms),
            utilization: finite(p.utilization),
            saturated: p.saturated,
            capacity_per_replica_rps,
        }
    }
}

/// Runs `latency`.
///
/// # Errors
/// On unreadable inputs or invalid values.
pub fn run(args: LatencyArgs) -> anyhow::Result<()> {
    let profile = load_profile(&args.profile)?;
    let mix = RequestMix {
        prompt_tokens: token_dist(&args.prompt_tokens)?,
        output_tokens: token_dist(&args.output_tokens)?,
    };
    let p = LatencyModel::new(&profile, &mix)?
        .with_arrival_cv2(args.arrival_cv2)?
        .predict(args.rate, args.replicas)?;
    let capacity = match (args.slo_ttft_ms, args.slo_tpot_ms) {
        (Some(ttft_ms), Some(tpot_ms)) => Some(capacity_per_replica_with_arrivals(
            &profile,
            &mix,
            &Slo {
                ttft_ms,
                tpot_ms,
                percentile: args.slo_percentile.into(),
            },
            args.arrival_cv2,
        )?),
        _ => None,
    };
    match args.format {
        Format::Json => {
            let out = PredictionJson::new(&p, capacity.map(|c| c.rate_per_s));
            println!("{}", serde_json::to_string(&out)?);
        }
        Format::Text => {
            let ms = |v: f64| {
                if v.is_finite() {
                    format!("{v:.1}")
                } else {
                    "unbounded".into()
                }
            };
            println!(
                "{} on {} (tp {}), {} replica(s) at {} req/s, arrival c_a² {}",
                profile.model,
                profile.gpu,
                profile.tensor_parallel,
                args.replicas,
                args.rate,
                args.arrival_cv2
            );
            println!(
                "TTFT ms  p50 {}  p90 {}  p99 {}",
                ms(p.ttft_ms.p50),
                ms(p.ttft_ms.p90),
                ms(p.ttft_ms.p99)
            );
            println!(
                "TPOT ms  p50 {}  p90 {}  p99 {}",
                ms(p.tpot_ms.p50),
                ms(p.tpot_ms.p90),
                ms(p.tpot_ms.p99)
            );
            println!(
                "utilization {:.3} of saturation ({:.3} req/s per replica), batch {:.1}{}",
                p.utilization,
                p.saturation_rate_per_s,
                p.batch,
                if p.saturated { ", SATURATED" } else { "" }
            );
            if let Some(c) = capacity {
                println!(
                    "capacity under SLO: {:.3} req/s per replica (bound by {:?})",
                    c.rate_per_s, c.binding
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use forecasting::latency::predict;

    #[test]
    fn json_has_the_documented_shape_and_null_for_unbounded() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../docs/profiles/llama-3.1-8b_guidellm-vllm_tp1.yaml"),
        )
        .expect("example profile");
        let profile = Profile::from_yaml(&text).expect("valid");
        let mix = RequestMix::fixed(1024.0, 256.0).expect("mix");
        let ok = predict(&profile, &mix, 2.0, 1).expect("p");
        let json = serde_json::to_string(&PredictionJson::new(&ok, None)).expect("json");
        let keys: Vec<usize> = [
            "\"ttft_ms\"",
            "\"tpot_ms\"",
            "\"utilization\"",
            "\"saturated\"",
        ]
        .iter()
        .map(|k| json.find(k).expect(k))
        .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{json}");
        for p in ["p50", "p90", "p99"] {
            assert!(json.contains(p));
        }
        let over = predict(&profile, &mix, 1000.0, 1).expect("p");
        let v: serde_json::Value =
            serde_json::to_value(PredictionJson::new(&over, Some(1.5))).expect("json");
        assert_eq!(v["saturated"], true);
        assert!(v["ttft_ms"]["p99"].is_null());
        assert!(v["tpot_ms"]["p99"].is_f64());
        assert_eq!(v["capacity_per_replica_rps"], 1.5);
    }

    #[test]
    fn arrival_cv2_defaults_to_poisson_and_a_bad_value_is_a_clear_error() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: LatencyArgs,
        }
        let profile = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/profiles/llama-3.1-8b_guidellm-vllm_tp1.yaml");
        let parse = |extra: &[&str]| {
            let mut argv = vec![
                "latency",
                "--profile",
                profile.to_str().expect("utf8"),
                "--rate",
                "2",
                "--prompt-tokens",
                "1024",
                "--output-tokens",
                "64",
            ];
            argv.extend_from_slice(extra);
            <Cli as clap::Parser>::try_parse_from(argv)
                .expect("parses")
                .args
        };
        assert_eq!(parse(&[]).arrival_cv2, POISSON_ARRIVAL_CV2);
        assert_eq!(parse(&["--arrival-cv2", "0"]).arrival_cv2, 0.0);
        run(parse(&["--arrival-cv2", "0"])).expect("evenly spaced arrivals predict");
        let err = run(parse(&["--arrival-cv2=-1"])).expect_err("negative c_a²");
        assert!(
            format!("{err:#}").contains("arrival squared coefficient of variation"),
            "{err:#}"
        );
    }

    #[test]
    fn token_spec_is_a_number_or_a_file() {
        assert!((token_dist("512").expect("number").mean() - 512.0).abs() < 1e-12);
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("out.txt");
        std::fs::write(&path, "# lengths\n64,3\n256,5\n1024,2\n").expect("write");
        let d = token_dist(path.to_str().expect("utf8")).expect("file");
        assert!((d.mean() - (64.0 * 0.3 + 256.0 * 0.5 + 1024.0 * 0.2)).abs() < 1e-9);
        assert!(token_dist("no-such-file").is_err());
    }
}
