//! `slo-scaler profile fit | derive | validate`: performance profiles from measured data.
//!
//! `fit` reads measured files (format recognised by header, see
//! [`crate::profile_data::DataFormat`]) and writes a profile; `derive` scales a fitted profile
//! to another GPU type by TensorRT-LLM throughput ratios; `validate` fits a GuideLLM sweep
//! from its low-rate points and reports prediction errors on the rest.
use std::path::PathBuf;

use anyhow::Context;
use forecasting::profile::fit::{CurveFit, derive_by_throughput_ratio};

use super::latency::load_profile;
use crate::profile_data::{
    DataFormat, FitOptions, GUIDELLM_CONSTANT_ARRIVAL_CV2, GuideLlmValidation, fit_profile,
    read_table, trtllm_ratio, validate_guidellm,
};

/// `profile` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ProfileCommand {
    /// Fit a profile to measured data (Splitwise, Dynamo prefill+decode, GuideLLM sweeps).
    Fit(FitArgs),
    /// Scale a fitted profile to another GPU type by measured TensorRT-LLM throughput ratios.
    Derive(DeriveArgs),
    /// Fit a GuideLLM sweep from its low-rate points and compare predictions with the rest.
    Validate(ValidateArgs),
}

/// `profile` arguments.
#[derive(clap::Args, Debug)]
pub struct ProfileArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ProfileCommand,
}

/// Inputs the measured data usually lacks.
#[derive(clap::Args, Debug)]
pub struct ReplicaInputs {
    /// KV-cache capacity in tokens (required unless the data records it, as Dynamo's does).
    #[arg(long)]
    pub kv_capacity_tokens: Option<u64>,
    /// Maximum batch, the engine's `max_num_seqs`.
    #[arg(long)]
    pub max_batch: Option<u32>,
    /// Cold-start time of a replica, seconds.
    #[arg(long)]
    pub cold_start_s: f64,
    /// Wake-from-sleep time of a replica, seconds.
    #[arg(long)]
    pub wake_from_sleep_s: f64,
    /// Price of a replica-hour (all its GPUs), e.g. a cloud's on-demand price on a stated date.
    #[arg(long)]
    pub cost_per_hour: f64,
}

/// `profile fit` arguments.
#[derive(clap::Args, Debug)]
pub struct FitArgs {
    /// Measured data file (CSV; repeat for Dynamo's prefill and decode files).
    #[arg(long, required = true)]
    pub input: Vec<PathBuf>,
    /// Model to select (case-insensitive substring of the data's model column).
    #[arg(long)]
    pub model: Option<String>,
    /// GPU type to select (exact name in the data, case-insensitive); for GuideLLM data,
    /// which does not record it, the name written into the profile.
    #[arg(long)]
    pub gpu: Option<String>,
    /// Tensor-parallel degree to select.
    #[arg(long)]
    pub tp: Option<u32>,
    /// GuideLLM: constant-rate points per sweep used besides the synchronous one.
    #[arg(long, default_value_t = 2)]
    pub low_rate_points: usize,
    /// Replica inputs.
    #[command(flatten)]
    pub replica: ReplicaInputs,
    /// A sentence recorded in the profile's assumptions (where an input comes from); repeat.
    #[arg(long)]
    pub assume: Vec<String>,
    /// Where to write the profile (YAML); stdout if absent.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
}

/// `profile derive` arguments.
#[derive(clap::Args, Debug)]
pub struct DeriveArgs {
    /// Fitted profile to scale.
    #[arg(long)]
    pub base: PathBuf,
    /// TensorRT-LLM throughput table (CSV).
    #[arg(long)]
    pub trtllm: PathBuf,
    /// Model name as in the table, e.g. "LLaMA v3.1 8B".
    #[arg(long)]
    pub model: String,
    /// GPU name in the table matching the base profile's GPU.
    #[arg(long)]
    pub from_gpu: String,
    /// GPU name in the table to derive for.
    #[arg(long)]
    pub to_gpu: String,
    /// KV-cache capacity on the new GPU (kept from the base if absent).
    #[arg(long)]
    pub kv_capacity_tokens: Option<u64>,
    /// Price of a replica-hour on the new GPU.
    #[arg(long)]
    pub cost_per_hour: f64,
    /// Model name for the derived profile (e.g. when the new GPU serves another precision).
    #[arg(long)]
    pub served_model: Option<String>,
    /// A sentence recorded in the profile's assumptions (where an input comes from); repeat.
    #[arg(long)]
    pub assume: Vec<String>,
    /// Where to write the profile (YAML); stdout if absent.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
}

/// `profile validate` arguments.
#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// GuideLLM sweep file (CSV).
    #[arg(long)]
    pub guidellm: PathBuf,
    /// Constant-rate points per sweep used for fitting besides the synchronous one.
    #[arg(long, default_value_t = 2)]
    pub low_rate_points: usize,
    /// KV-cache capacity in tokens of the measured server (GuideLLM does not record it).
    #[arg(long)]
    pub kv_capacity_tokens: u64,
    /// Maximum batch of the measured server.
    #[arg(long)]
    pub max_batch: u32,
    /// Squared coefficient of variation of the inter-arrival times the predictions assume:
    /// 0 is what GuideLLM's `constant` strategy sends (uniform intervals); 1 is Poisson.
    #[arg(long, default_value_t = GUIDELLM_CONSTANT_ARRIVAL_CV2)]
    pub arrival_cv2: f64,
    /// Print every point, not only the summary.
    #[arg(long)]
    pub verbose: bool,
}

/// Runs `profile`.
///
/// # Errors
/// On unreadable inputs, failed fits, or an unwritable output.
pub fn run(args: ProfileArgs) -> anyhow::Result<()> {
    match args.command {
        ProfileCommand::Fit(a) => fit(a),
        ProfileCommand::Derive(a) => derive(a),
        ProfileCommand::Validate(a) => validate(&a),
    }
}

fn write_or_print(yaml: &str, output: Option<&PathBuf>) -> anyhow::Result<()> {
    match output {
        Some(path) => {
            std::fs::write(path, yaml).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
        None => print!("{yaml}"),
    }
    Ok(())
}

fn fit_line(f: &CurveFit) -> String {
    format!(
        "{:8} {:4} points ({} excluded as outliers)  MAPE {:5.2} %  R² {:.4}",
        f.curve, f.points, f.excluded, f.mape_pct, f.r2
    )
}

fn fit(a: FitArgs) -> anyhow::Result<()> {
    let tables = a
        .input
        .iter()
        .map(|p| read_table(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let opts = FitOptions {
        model: a.model,
        gpu: a.gpu,
        tp: a.tp,
        low_rate_points: a.low_rate_points,
        kv_capacity_tokens: a.replica.kv_capacity_tokens,
        max_batch: a.replica.max_batch,
        cold_start_s: a.replica.cold_start_s,
        wake_from_sleep_s: a.replica.wake_from_sleep_s,
        cost_per_hour: a.replica.cost_per_hour,
    };
    let mut profile = fit_profile(&tables, &opts)?;
    profile.provenance.assumptions.extend(a.assume);
    let yaml = profile.to_yaml()?;
    write_or_print(&yaml, a.output.as_ref())?;
    if a.output.is_some() {
        println!(
            "{} on {} (tp {})",
            profile.model, profile.gpu, profile.tensor_parallel
        );
        for f in &profile.provenance.fit {
            println!("{}", fit_line(f));
        }
    }
    Ok(())
}

fn derive(a: DeriveArgs) -> anyhow::Result<()> {
    let base = load_profile(&a.base)?;
    let (format, table) = read_table(&a.trtllm)?;
    anyhow::ensure!(
        format == DataFormat::TrtLlm,
        "{}: expected a TensorRT-LLM throughput table, got {format:?}",
        a.trtllm.display()
    );
    let (ratio, cases) = trtllm_ratio(&table, &a.model, &a.from_gpu, &a.to_gpu)?;
    let evidence = format!(
        "geometric mean of {cases} TensorRT-LLM offline max-throughput cases of {} in {}, \
         {} vs {}; Apache-2.0",
        a.model,
        a.trtllm
            .file_name()
            .map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
        a.to_gpu,
        a.from_gpu
    );
    let mut p =
        derive_by_throughput_ratio(&base, &a.to_gpu, ratio, a.kv_capacity_tokens, &evidence)?;
    p.cost_per_hour = a.cost_per_hour;
    if let Some(m) = a.served_model {
        p.model = m;
    }
    let (trt_source, trt_licence) = DataFormat::TrtLlm.source_and_licence();
    p.provenance.source = format!(
        "{}; scaled by {trt_source}, {}",
        p.provenance.source,
        a.trtllm
            .file_name()
            .map_or_else(String::new, |f| f.to_string_lossy().into_owned())
    );
    if !p.provenance.licence.contains(trt_licence) {
        p.provenance.licence = format!("{}, {trt_licence}", p.provenance.licence);
    }
    p.provenance.assumptions.extend(a.assume);
    p.validate()?;
    write_or_print(&p.to_yaml()?, a.output.as_ref())?;
    if a.output.is_some() {
        println!(
            "throughput ratio {} / {} = {ratio:.4} over {cases} cases",
            a.to_gpu, a.from_gpu
        );
    }
    Ok(())
}

/// Share of `pairs` (predicted, measured) within `tol` relative error.
fn within(pairs: &[(f64, f64)], tol: f64) -> (usize, usize) {
    let ok = pairs
        .iter()
        .filter(|(p, m)| p.is_finite() && (p / m - 1.0).abs() <= tol)
        .count();
    (ok, pairs.len())
}

fn median_abs_err(pairs: &[(f64, f64)]) -> f64 {
    let mut e: Vec<f64> = pairs
        .iter()
        .map(|(p, m)| {
            if p.is_finite() {
                (p / m - 1.0).abs()
            } else {
                f64::INFINITY
            }
        })
        .collect();
    if e.is_empty() {
        return f64::NAN;
    }
    e.sort_by(f64::total_cmp);
    100.0 * e[e.len() / 2]
}

fn validate(a: &ValidateArgs) -> anyhow::Result<()> {
    let (format, table) = read_table(&a.guidellm)?;
    anyhow::ensure!(
        format == DataFormat::GuideLlm,
        "{}: expected a GuideLLM sweep, got {format:?}",
        a.guidellm.display()
    );
    let opts = FitOptions {
        model: None,
        gpu: Some("unrecorded".into()),
        tp: Some(1),
        low_rate_points: a.low_rate_points,
        kv_capacity_tokens: Some(a.kv_capacity_tokens),
        max_batch: Some(a.max_batch),
        cold_start_s: 0.0,
        wake_from_sleep_s: 0.0,
        cost_per_hour: 0.0,
    };
    let v = validate_guidellm(&table, &opts, a.arrival_cv2)?;
    print_validation(&v, a);
    Ok(())
}

fn print_validation(v: &GuideLlmValidation, a: &ValidateArgs) {
    if let Some(p) = &v.profile {
        println!(
            "fitted from synchronous + {} lowest constant rates per sweep \
             (kv_capacity_tokens {}, max_batch {}; predicted with arrival c_a² {}):",
            a.low_rate_points, a.kv_capacity_tokens, a.max_batch, a.arrival_cv2
        );
        println!(
            "  prefill: base {:.3} ms + {:.6} ms/token + {:.3e} ms/token²",
            p.prefill.base_ms, p.prefill.per_token_ms, p.prefill.per_token_sq_ms
        );
        println!(
            "  decode:  base {:.3} ms + {:.5} ms/seq + {:.3e} ms/KV token; mixed-prefill factor {:.3}",
            p.decode.base_ms,
            p.decode.per_seq_ms,
            p.decode.per_kv_token_ms,
            p.decode.mixed_prefill_factor
        );
        let sizes = &p.decode.cuda_graph_batch_sizes;
        if let (Some(first), Some(last)) = (sizes.first(), sizes.last()) {
            println!(
                "  decode batches padded to {} CUDA-graph sizes ({first} … {last}, vLLM's default): \
                 ms/seq is per padded sequence",
                sizes.len()
            );
        }
        for f in &p.provenance.fit {
            println!("  {}", fit_line(f));
        }
    }
    if a.verbose {
        println!(
            "\n  in   out   rate/s  load  fit | TPOT meas  pred    err | TTFT p50 meas  pred    err"
        );
        for p in &v.points {
            println!(
                "{:5} {:5} {:8.3} {:5.2} {:>4} | {:9.2} {:6.2} {:+6.0}% | {:13.2} {:6.1} {:+6.0}%",
                p.target_in,
                p.target_out,
                p.rate_per_s,
                p.load_fraction,
                if p.low_rate { "yes" } else { "" },
                p.tpot_ms_measured,
                p.tpot_ms_predicted,
                100.0 * (p.tpot_ms_predicted / p.tpot_ms_measured - 1.0),
                p.ttft_ms_measured,
                p.ttft_ms_predicted,
                100.0 * (p.ttft_ms_predicted / p.ttft_ms_measured - 1.0),
            );
        }
    }
    println!("\nsaturation rate per sweep (measured = GuideLLM `throughput` strategy):");
    println!("   in   out  measured  predicted    err");
    for s in &v.saturation {
        println!(
            "{:5} {:5} {:9.3} {:10.3} {:+6.0}%",
            s.target_in,
            s.target_out,
            s.measured_per_s,
            s.predicted_per_s,
            100.0 * (s.predicted_per_s / s.measured_per_s - 1.0)
        );
    }
    let held = |max_load: f64| -> Vec<&crate::profile_data::PointCheck> {
        v.points
            .iter()
            .filter(|p| !p.low_rate && p.load_fraction < max_load)
            .collect()
    };
    let tpot = |pts: &[&crate::profile_data::PointCheck]| -> Vec<(f64, f64)> {
        pts.iter()
            .map(|p| (p.tpot_ms_predicted, p.tpot_ms_measured))
            .collect()
    };
    let ttft = |pts: &[&crate::profile_data::PointCheck]| -> Vec<(f64, f64)> {
        pts.iter()
            .map(|p| (p.ttft_ms_predicted, p.ttft_ms_measured))
            .collect()
    };
    let sat: Vec<(f64, f64)> = v
        .saturation
        .iter()
        .map(|s| (s.predicted_per_s, s.measured_per_s))
        .collect();
    println!("\ntargets on held-out points (not used for fitting):");
    for (label, max_load) in [
        ("all constant rates", f64::INFINITY),
        ("below 80 % of saturation", 0.8),
    ] {
        let pts = held(max_load);
        let (ok, n) = within(&tpot(&pts), 0.20);
        println!(
            "  TPOT mean within 20 %, {label}: {ok}/{n} (median |err| {:.1} %)",
            median_abs_err(&tpot(&pts))
        );
    }
    let pts = held(0.8);
    let (ok, n) = within(&ttft(&pts), 0.30);
    println!(
        "  TTFT median within 30 %, below 80 % of saturation: {ok}/{n} (median |err| {:.1} %)",
        median_abs_err(&ttft(&pts))
    );
    let (ok, n) = within(&sat, 0.15);
    println!(
        "  saturation rate within 15 %: {ok}/{n} sweeps (median |err| {:.1} %)",
        median_abs_err(&sat)
    );
}
