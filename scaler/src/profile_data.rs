//! Measured serving-performance files → observations → fitted [`Profile`]s.
//!
//! Where to start: [`read_table`] reads a CSV and recognises its format by the header
//! ([`DataFormat`]); [`fit_profile`] turns one or more tables into a profile with
//! `forecasting::profile::fit`; [`validate_guidellm`] fits a GuideLLM sweep from its low-rate
//! points and compares the latency model's predictions with the rest; [`trtllm_ratio`] reads a
//! throughput ratio between two GPU types for `profile derive`. The curve maths lives in
//! `forecasting`; this module only reads files and maps columns.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use forecasting::latency::{LatencyModel, RequestMix};
use forecasting::profile::fit::{DecodeObs, PrefillObs, fit_decode_padded, fit_prefill};
use forecasting::profile::{
    Lifecycle, Limits, Profile, Provenance, vllm_default_cuda_graph_batch_sizes,
};

/// The measured-data formats `profile fit` understands, recognised by their CSV header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    /// Splitwise `perf_model.csv`: batched prefill and decode iteration times, A100/H100.
    Splitwise,
    /// NVIDIA Dynamo profiler: TTFT vs input length.
    DynamoPrefill,
    /// NVIDIA Dynamo profiler: inter-token latency vs KV usage and context length.
    DynamoDecode,
    /// GuideLLM rate sweeps of a vLLM server (latency under load).
    GuideLlm,
    /// TensorRT-LLM offline maximum throughput tables.
    TrtLlm,
}

impl DataFormat {
    /// Recognises a format by its header columns.
    #[must_use]
    pub fn detect(header: &[String]) -> Option<Self> {
        let has = |c: &str| header.iter().any(|h| h == c);
        if has("prompt_time") && has("token_time") && has("batch_size") {
            Some(Self::Splitwise)
        } else if has("isl_tokens") && has("ttft_ms") {
            Some(Self::DynamoPrefill)
        } else if has("kv_usage_frac") && has("itl_ms") && has("max_kv_tokens") {
            Some(Self::DynamoDecode)
        } else if has("strategy") && has("req_per_s") && has("tpot_ms_mean") {
            Some(Self::GuideLlm)
        } else if has("total_output_tokens_per_s") && has("isl") && has("osl") {
            Some(Self::TrtLlm)
        } else {
            None
        }
    }

    /// Citation and licence of the public data set in this format (for provenance).
    #[must_use]
    pub fn source_and_licence(self) -> (&'static str, &'static str) {
        match self {
            Self::Splitwise => (
                "Splitwise perf_model.csv (Patel et al., Splitwise, ISCA 2024; \
                 github.com/Mutinifni/splitwise-sim)",
                "MIT",
            ),
            Self::DynamoPrefill | Self::DynamoDecode => (
                "NVIDIA Dynamo profiler, vLLM on H200, Llama-3.1-8B-Instruct-FP8 \
                 (prefill_profile.csv, decode_profile.csv)",
                "Apache-2.0",
            ),
            Self::GuideLlm => (
                "GuideLLM rate sweeps of vLLM serving Llama-3.1-8B \
                 (exp1_llama31_8b_guidellm_sweeps.csv)",
                "Apache-2.0",
            ),
            Self::TrtLlm => (
                "TensorRT-LLM performance overview (offline max throughput)",
                "Apache-2.0",
            ),
        }
    }
}

/// A CSV file: header and string cells.
#[derive(Debug, Clone)]
pub struct Table {
    /// Where it was read from.
    pub path: PathBuf,
    /// Column names.
    pub header: Vec<String>,
    /// Rows of cells, each as long as the header.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Parses CSV text (RFC 4180 quoting; no embedded newlines).
    ///
    /// # Errors
    /// If the text is empty or a row's cell count differs from the header's.
    pub fn parse(path: &Path, text: &str) -> anyhow::Result<Self> {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header = split_csv_line(lines.next().context("empty CSV file")?);
        let mut rows = Vec::new();
        for (i, line) in lines.enumerate() {
            let cells = split_csv_line(line);
            if cells.len() != header.len() {
                bail!(
                    "{}: row {}: expected {} cells as in the header, got {}",
                    path.display(),
                    i + 2,
                    header.len(),
                    cells.len()
                );
            }
            rows.push(cells);
        }
        Ok(Self {
            path: path.to_path_buf(),
            header,
            rows,
        })
    }

    fn col(&self, name: &str) -> anyhow::Result<usize> {
        self.header
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{}: no column `{name}`", self.path.display()))
    }

    /// Cell `name` of `row` as a number.
    fn num(&self, row: &[String], name: &str) -> anyhow::Result<f64> {
        let c = self.col(name)?;
        row[c].trim().parse::<f64>().with_context(|| {
            format!(
                "{}: column `{name}`: expected a number, got {:?}",
                self.path.display(),
                row[c]
            )
        })
    }

    fn text<'a>(&self, row: &'a [String], name: &str) -> anyhow::Result<&'a str> {
        Ok(row[self.col(name)?].as_str())
    }
}

fn split_csv_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Reads a CSV file and recognises its format.
///
/// # Errors
/// If the file cannot be read or parsed, or its header matches no known format.
pub fn read_table(path: &Path) -> anyhow::Result<(DataFormat, Table)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let table = Table::parse(path, &text)?;
    let format = DataFormat::detect(&table.header).with_context(|| {
        format!(
            "{}: unrecognised header {:?}; expected Splitwise perf_model.csv, Dynamo \
             prefill/decode profile, GuideLLM sweep or TensorRT-LLM throughput columns",
            path.display(),
            table.header
        )
    })?;
    Ok((format, table))
}

/// What `profile fit` needs besides the data: selection and the inputs the data lacks.
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// Keep rows of this model (case-insensitive substring).
    pub model: Option<String>,
    /// Keep rows of this GPU type (case-insensitive exact match of the data's name).
    pub gpu: Option<String>,
    /// Keep rows of this tensor-parallel degree.
    pub tp: Option<u32>,
    /// GuideLLM: constant-rate points (lowest rates first) used besides the synchronous one.
    pub low_rate_points: usize,
    /// KV-cache capacity; required when the data does not record it.
    pub kv_capacity_tokens: Option<u64>,
    /// Largest batch (engine `max_num_seqs`); required when the data does not record it.
    pub max_batch: Option<u32>,
    /// Cold-start time of a replica.
    pub cold_start_s: f64,
    /// Wake-from-sleep time of a replica.
    pub wake_from_sleep_s: f64,
    /// Price of a replica-hour.
    pub cost_per_hour: f64,
}

/// Observations extracted from the tables, with the identity of what was measured.
#[derive(Debug, Default)]
pub struct Observations {
    /// Prefill measurements.
    pub prefill: Vec<PrefillObs>,
    /// Decode-step measurements.
    pub decode: Vec<DecodeObs>,
    /// Model name found in the data.
    pub model: Option<String>,
    /// GPU type found in the data.
    pub gpu: Option<String>,
    /// Tensor parallelism found in the data.
    pub tp: Option<u32>,
    /// Engine found in the data.
    pub engine: Option<String>,
    /// KV capacity found in the data.
    pub kv_capacity_tokens: Option<u64>,
    /// Formats used.
    pub formats: Vec<DataFormat>,
}

fn matches(value: &str, wanted: Option<&String>, substring: bool) -> bool {
    match wanted {
        None => true,
        Some(w) if substring => value.to_lowercase().contains(&w.to_lowercase()),
        Some(w) => value.eq_ignore_ascii_case(w),
    }
}

/// Checks the selection leaves exactly one (model, gpu, tp) and returns it.
fn single_identity(table: &Table, keys: &BTreeMap<Identity, usize>) -> anyhow::Result<Identity> {
    match keys.len() {
        0 => bail!(
            "{}: no rows match the selection (--model/--gpu/--tp)",
            table.path.display()
        ),
        1 => Ok(keys.keys().next().cloned().unwrap_or_default()),
        _ => {
            let list: Vec<String> = keys
                .iter()
                .map(|((m, g, t), n)| format!("--model {m} --gpu {g} --tp {t} ({n} rows)"))
                .collect();
            bail!(
                "{}: the selection matches several model/GPU/parallelism combinations; \
                 choose one of:\n  {}",
                table.path.display(),
                list.join("\n  ")
            )
        }
    }
}

/// Extracts observations from one table, appending to `obs`.
///
/// # Errors
/// On missing columns, non-numeric cells, or a selection that is empty or ambiguous.
pub fn extract(
    format: DataFormat,
    table: &Table,
    opts: &FitOptions,
    obs: &mut Observations,
) -> anyhow::Result<()> {
    obs.formats.push(format);
    match format {
        DataFormat::Splitwise => extract_splitwise(table, opts, obs),
        DataFormat::DynamoPrefill | DataFormat::DynamoDecode => {
            extract_dynamo(format, table, opts, obs)
        }
        DataFormat::GuideLlm => {
            let points = guidellm_points(table)?;
            let mut by_model: BTreeMap<(String, String, u32), usize> = BTreeMap::new();
            for p in &points {
                if matches(&p.model, opts.model.as_ref(), true) {
                    *by_model
                        .entry((p.model.clone(), p.gpu.clone(), 1))
                        .or_default() += 1;
                }
            }
            let (model, gpu, _) = single_identity(table, &by_model)?;
            let selected: Vec<SweepPoint> =
                points.into_iter().filter(|p| p.model == model).collect();
            let (pf, dec) = guidellm_low_rate_obs(&selected, opts.low_rate_points);
            obs.prefill.extend(pf);
            obs.decode.extend(dec);
            obs.model = Some(model);
            obs.gpu = Some(opts.gpu.clone().unwrap_or(gpu));
            obs.tp = Some(opts.tp.unwrap_or(1));
            obs.engine = selected.first().map(|p| p.engine.clone());
            Ok(())
        }
        DataFormat::TrtLlm => bail!(
            "{}: TensorRT-LLM tables hold throughput only; use `profile derive` to scale a \
             fitted profile by them",
            table.path.display()
        ),
    }
}

/// Model, GPU and tensor-parallel degree of a measured setup.
type Identity = (String, String, u32);

/// The rows matching `--model`/`--gpu`/`--tp`, which must name exactly one (model, GPU,
/// tensor parallel) identity; the column names differ between data sets.
fn select_rows<'a>(
    table: &'a Table,
    opts: &FitOptions,
    gpu_col: &str,
    tp_col: &str,
) -> anyhow::Result<(Identity, Vec<&'a Vec<String>>)> {
    let mut keys: BTreeMap<Identity, usize> = BTreeMap::new();
    let mut rows = Vec::new();
    for row in &table.rows {
        let model = table.text(row, "model")?.to_string();
        let gpu = table.text(row, gpu_col)?.to_string();
        let tp = table.num(row, tp_col)? as u32;
        if matches(&model, opts.model.as_ref(), true)
            && matches(&gpu, opts.gpu.as_ref(), false)
            && opts.tp.is_none_or(|t| t == tp)
        {
            *keys.entry((model, gpu, tp)).or_default() += 1;
            rows.push(row);
        }
    }
    Ok((single_identity(table, &keys)?, rows))
}

fn extract_splitwise(
    table: &Table,
    opts: &FitOptions,
    obs: &mut Observations,
) -> anyhow::Result<()> {
    let ((model, gpu, tp), rows) = select_rows(table, opts, "hardware", "tensor_parallel")?;
    for row in rows {
        let batch = table.num(row, "batch_size")?;
        let prompt = table.num(row, "prompt_size")?;
        let output = table.num(row, "token_size")?;
        obs.prefill.push(PrefillObs {
            batch,
            prompt_tokens: prompt,
            time_ms: table.num(row, "prompt_time")?,
        });
        // `token_time` is the mean decode iteration over the whole generation: the batch
        // holds on average the prompt plus half the output per sequence.
        obs.decode.push(DecodeObs {
            batch,
            kv_tokens: batch * (prompt + output / 2.0),
            prefills_per_step: 0.0,
            prompt_tokens: 0.0,
            step_ms: table.num(row, "token_time")?,
        });
    }
    obs.model = Some(model);
    obs.gpu = Some(gpu);
    obs.tp = Some(tp);
    Ok(())
}

fn extract_dynamo(
    format: DataFormat,
    table: &Table,
    opts: &FitOptions,
    obs: &mut Observations,
) -> anyhow::Result<()> {
    let ((model, gpu, tp), rows) = select_rows(table, opts, "gpu", "tp")?;
    for row in rows {
        if format == DataFormat::DynamoPrefill {
            obs.prefill.push(PrefillObs {
                batch: 1.0,
                prompt_tokens: table.num(row, "isl_tokens")?,
                time_ms: table.num(row, "ttft_ms")?,
            });
        } else {
            let max_kv = table.num(row, "max_kv_tokens")?;
            let kv = table.num(row, "kv_usage_frac")? * max_kv;
            let ctx = table.num(row, "context_length")?;
            obs.decode.push(DecodeObs {
                batch: (kv / ctx).max(1.0),
                kv_tokens: kv,
                prefills_per_step: 0.0,
                prompt_tokens: 0.0,
                step_ms: table.num(row, "itl_ms")?,
            });
            obs.kv_capacity_tokens = Some(max_kv as u64);
        }
        obs.engine = Some(table.text(row, "engine")?.to_string());
    }
    obs.model = Some(model);
    obs.gpu = Some(gpu);
    obs.tp = Some(tp);
    Ok(())
}

/// GuideLLM strategy of a sweep row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    /// One request at a time.
    Synchronous,
    /// As many as possible (closed loop at the client's concurrency limit).
    Throughput,
    /// Poisson-free constant rate (req/s).
    Constant(f64),
}

/// One row of a GuideLLM sweep.
#[derive(Debug, Clone)]
pub struct SweepPoint {
    /// Model served.
    pub model: String,
    /// GPU as recorded.
    pub gpu: String,
    /// Engine as recorded.
    pub engine: String,
    /// Target prompt length.
    pub target_in: u32,
    /// Target output length.
    pub target_out: u32,
    /// Strategy.
    pub strategy: Strategy,
    /// Achieved request rate.
    pub req_per_s: f64,
    /// Mean requests in flight.
    pub concurrency: f64,
    /// Mean prompt length.
    pub prompt_tokens: f64,
    /// Mean output length.
    pub output_tokens: f64,
    /// TTFT median.
    pub ttft_ms_median: f64,
    /// TTFT p99.
    pub ttft_ms_p99: f64,
    /// TPOT mean.
    pub tpot_ms_mean: f64,
}

/// Parses a GuideLLM sweep table.
///
/// # Errors
/// On missing columns or non-numeric cells.
pub fn guidellm_points(table: &Table) -> anyhow::Result<Vec<SweepPoint>> {
    let mut out = Vec::new();
    for row in &table.rows {
        let s = table.text(row, "strategy")?;
        let strategy = match s {
            "synchronous" => Strategy::Synchronous,
            "throughput" => Strategy::Throughput,
            _ => match s.strip_prefix("constant@") {
                Some(r) => Strategy::Constant(r.parse().with_context(|| {
                    format!("{}: strategy {s:?}: bad rate", table.path.display())
                })?),
                None => continue,
            },
        };
        out.push(SweepPoint {
            model: table.text(row, "model")?.to_string(),
            gpu: table.text(row, "gpu")?.to_string(),
            engine: table.text(row, "engine")?.to_string(),
            target_in: table.num(row, "target_in")? as u32,
            target_out: table.num(row, "target_out")? as u32,
            strategy,
            req_per_s: table.num(row, "req_per_s")?,
            concurrency: table.num(row, "concurrency_mean")?,
            prompt_tokens: table.num(row, "prompt_tokens_mean")?,
            output_tokens: table.num(row, "output_tokens_mean")?,
            ttft_ms_median: table.num(row, "ttft_ms_median")?,
            ttft_ms_p99: table.num(row, "ttft_ms_p99")?,
            tpot_ms_mean: table.num(row, "tpot_ms_mean")?,
        });
    }
    Ok(out)
}

/// Sweep points grouped by (target_in, target_out), constant rates sorted ascending.
fn sweeps(points: &[SweepPoint]) -> BTreeMap<(u32, u32), Vec<&SweepPoint>> {
    let mut map: BTreeMap<(u32, u32), Vec<&SweepPoint>> = BTreeMap::new();
    for p in points {
        map.entry((p.target_in, p.target_out)).or_default().push(p);
    }
    for v in map.values_mut() {
        v.sort_by(|a, b| rate_key(a).total_cmp(&rate_key(b)));
    }
    map
}

fn rate_key(p: &SweepPoint) -> f64 {
    match p.strategy {
        Strategy::Synchronous => -1.0,
        Strategy::Constant(r) => r,
        Strategy::Throughput => f64::INFINITY,
    }
}

/// Whether `p` is one of the low-rate points of its sweep (synchronous, or among the `n`
/// lowest constant rates).
fn is_low_rate(sweep: &[&SweepPoint], p: &SweepPoint, n: usize) -> bool {
    match p.strategy {
        Strategy::Synchronous => true,
        Strategy::Throughput => false,
        Strategy::Constant(r) => {
            sweep
                .iter()
                .filter(|q| matches!(q.strategy, Strategy::Constant(x) if x < r))
                .count()
                < n
        }
    }
}

/// Observations from the low-rate points of every sweep: TTFT of synchronous requests is the
/// prefill curve; TPOT of every low-rate point is a decode step with the batch from Little's
/// law (`B = λ·O·TPOT`) and the arriving prompts mixed in (`λ·TPOT` per step).
#[must_use]
pub fn guidellm_low_rate_obs(
    points: &[SweepPoint],
    low_rate_points: usize,
) -> (Vec<PrefillObs>, Vec<DecodeObs>) {
    let mut prefill = Vec::new();
    let mut decode = Vec::new();
    for sweep in sweeps(points).values() {
        for p in sweep {
            if !is_low_rate(sweep, p, low_rate_points) {
                continue;
            }
            let p_tok = p.prompt_tokens;
            let o_tok = p.output_tokens;
            let tau = p.tpot_ms_mean;
            if p.strategy == Strategy::Synchronous {
                prefill.push(PrefillObs {
                    batch: 1.0,
                    prompt_tokens: p_tok,
                    time_ms: p.ttft_ms_median,
                });
                decode.push(DecodeObs {
                    batch: 1.0,
                    kv_tokens: p_tok + o_tok / 2.0,
                    prefills_per_step: 0.0,
                    prompt_tokens: p_tok,
                    step_ms: tau,
                });
            } else {
                let lam_per_ms = p.req_per_s / 1000.0;
                let batch = (lam_per_ms * o_tok * tau).max(1.0);
                decode.push(DecodeObs {
                    batch,
                    kv_tokens: batch * (p_tok + o_tok / 2.0),
                    prefills_per_step: lam_per_ms * tau,
                    prompt_tokens: p_tok,
                    step_ms: tau,
                });
            }
        }
    }
    (prefill, decode)
}

/// Fits a profile from one or more tables (e.g. Dynamo's prefill and decode files together).
///
/// # Errors
/// If a table cannot be used, the data lacks a curve, a limit is neither in the data nor in
/// `opts`, or a fit fails.
pub fn fit_profile(tables: &[(DataFormat, Table)], opts: &FitOptions) -> anyhow::Result<Profile> {
    let mut obs = Observations::default();
    for (format, table) in tables {
        extract(*format, table, opts, &mut obs)?;
    }
    if obs.prefill.is_empty() {
        bail!("no prefill measurements in the inputs (for Dynamo, also pass prefill_profile.csv)");
    }
    if obs.decode.is_empty() {
        bail!("no decode measurements in the inputs (for Dynamo, also pass decode_profile.csv)");
    }
    let max_batch = opts.max_batch.context(
        "the data does not record the engine's maximum batch: pass --max-batch \
         (vLLM `max_num_seqs`)",
    )?;
    // GuideLLM sweeps ran vLLM behind its HTTP server, which captures CUDA graphs at its
    // default sizes unless told otherwise; the other formats do not say how the engine ran.
    let vllm_graphs = obs.formats.contains(&DataFormat::GuideLlm)
        && obs
            .engine
            .as_deref()
            .is_some_and(|e| e.to_ascii_lowercase().contains("vllm"));
    let graph_sizes = if vllm_graphs {
        vllm_default_cuda_graph_batch_sizes(max_batch)
    } else {
        Vec::new()
    };
    let (prefill, prefill_fit) = fit_prefill(&obs.prefill)?;
    let (decode, decode_fit) = fit_decode_padded(&obs.decode, &prefill, &graph_sizes)?;
    let mut assumptions = Vec::new();
    let kv_capacity_tokens = match (opts.kv_capacity_tokens, obs.kv_capacity_tokens) {
        (Some(kv), _) => {
            assumptions.push(format!("kv_capacity_tokens {kv} given on the command line"));
            kv
        }
        (None, Some(kv)) => kv,
        (None, None) => bail!(
            "the data does not record the KV-cache capacity: pass --kv-capacity-tokens \
             (e.g. from the engine's start-up log, `# GPU blocks` × block size)"
        ),
    };
    assumptions.push(format!("max_batch {max_batch} given on the command line"));
    if vllm_graphs {
        assumptions.push(format!(
            "decode batches padded to vLLM's default CUDA-graph sizes for max_num_seqs \
             {max_batch} (1, 2, 4, multiples of 8 below 256, multiples of 16 up to {})",
            graph_sizes.last().copied().unwrap_or(0)
        ));
    }
    if obs.formats.contains(&DataFormat::GuideLlm) {
        assumptions.push(format!(
            "fitted from the synchronous and {} lowest constant-rate points of each sweep; \
             TTFT is client-side, so prefill.base_ms includes the HTTP round trip",
            opts.low_rate_points
        ));
    }
    if obs.formats.contains(&DataFormat::Splitwise) {
        assumptions.push(
            "decode KV tokens taken as batch × (prompt + output/2), the mean over a generation"
                .into(),
        );
    }
    assumptions
        .push("cold_start_s, wake_from_sleep_s and cost_per_hour given on the command line".into());
    let mut sources: Vec<String> = Vec::new();
    let mut licences: Vec<String> = Vec::new();
    for f in &obs.formats {
        let (s, l) = f.source_and_licence();
        if !sources.iter().any(|x| x == s) {
            sources.push(s.to_string());
        }
        if !licences.iter().any(|x| x == l) {
            licences.push(l.to_string());
        }
    }
    let profile = Profile {
        model: obs.model.unwrap_or_default(),
        gpu: opts.gpu.clone().or(obs.gpu).unwrap_or_default(),
        tensor_parallel: obs.tp.unwrap_or(1),
        engine: obs.engine,
        prefill,
        decode,
        limits: Limits {
            kv_capacity_tokens,
            max_batch,
        },
        lifecycle: Lifecycle {
            cold_start_s: opts.cold_start_s,
            wake_from_sleep_s: opts.wake_from_sleep_s,
        },
        cost_per_hour: opts.cost_per_hour,
        provenance: Provenance {
            source: sources.join("; "),
            licence: licences.join(", "),
            method: "fit".into(),
            assumptions,
            fit: vec![prefill_fit, decode_fit],
        },
    };
    profile.validate()?;
    Ok(profile)
}

/// `c_a²` of GuideLLM's `constant` strategy: it sends requests at uniform intervals
/// (`AsyncConstantStrategy` in GuideLLM's scheduler), so the inter-arrival times do not vary.
/// The sweeps in `../shared/data` hold only `synchronous`, `throughput` and `constant@R` rows.
pub const GUIDELLM_CONSTANT_ARRIVAL_CV2: f64 = 0.0;

/// One predicted-vs-measured comparison of a GuideLLM point.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PointCheck {
    /// Target prompt length of the sweep.
    pub target_in: u32,
    /// Target output length of the sweep.
    pub target_out: u32,
    /// Achieved rate (req/s).
    pub rate_per_s: f64,
    /// Rate as a fraction of the sweep's measured saturation (throughput) rate.
    pub load_fraction: f64,
    /// Used for fitting.
    pub low_rate: bool,
    /// Measured TPOT mean.
    pub tpot_ms_measured: f64,
    /// Predicted TPOT (mean over requests).
    pub tpot_ms_predicted: f64,
    /// Measured TTFT median.
    pub ttft_ms_measured: f64,
    /// Predicted TTFT median (infinite when predicted saturated).
    pub ttft_ms_predicted: f64,
}

/// Saturation comparison of one sweep.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SaturationCheck {
    /// Target prompt length.
    pub target_in: u32,
    /// Target output length.
    pub target_out: u32,
    /// Achieved rate of the `throughput` strategy (req/s).
    pub measured_per_s: f64,
    /// Predicted saturation rate (req/s).
    pub predicted_per_s: f64,
}

/// Result of [`validate_guidellm`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct GuideLlmValidation {
    /// The profile fitted from the low-rate points.
    #[serde(skip)]
    pub profile: Option<Profile>,
    /// Every constant-rate point, predicted vs measured.
    pub points: Vec<PointCheck>,
    /// Every sweep's saturation rate, predicted vs measured.
    pub saturation: Vec<SaturationCheck>,
}

/// Fits from the low-rate points of every sweep, then predicts every constant-rate point and
/// every sweep's saturation rate, with arrivals of squared coefficient of variation
/// `arrival_cv2` ([`GUIDELLM_CONSTANT_ARRIVAL_CV2`] for what the sweeps ran).
///
/// # Errors
/// If the fit fails or `arrival_cv2` is negative or not finite.
pub fn validate_guidellm(
    table: &Table,
    opts: &FitOptions,
    arrival_cv2: f64,
) -> anyhow::Result<GuideLlmValidation> {
    let profile = fit_profile(&[(DataFormat::GuideLlm, table.clone())], opts)?;
    let points = guidellm_points(table)?;
    let mut checks = Vec::new();
    let mut sats = Vec::new();
    for ((tin, tout), sweep) in sweeps(&points) {
        let Some(thr) = sweep.iter().find(|p| p.strategy == Strategy::Throughput) else {
            continue;
        };
        let n = sweep.len() as f64;
        let mean_p = sweep.iter().map(|p| p.prompt_tokens).sum::<f64>() / n;
        let mean_o = sweep.iter().map(|p| p.output_tokens).sum::<f64>() / n;
        let model = LatencyModel::new(&profile, &RequestMix::fixed(mean_p, mean_o)?)?;
        sats.push(SaturationCheck {
            target_in: tin,
            target_out: tout,
            measured_per_s: thr.req_per_s,
            predicted_per_s: model.saturation_rate_per_s(),
        });
        for p in &sweep {
            if !matches!(p.strategy, Strategy::Constant(_)) {
                continue;
            }
            let m = LatencyModel::new(
                &profile,
                &RequestMix::fixed(p.prompt_tokens, p.output_tokens)?,
            )?
            .with_arrival_cv2(arrival_cv2)?;
            let pred = m.predict(p.req_per_s, 1)?;
            checks.push(PointCheck {
                target_in: tin,
                target_out: tout,
                rate_per_s: p.req_per_s,
                load_fraction: p.req_per_s / thr.req_per_s,
                low_rate: is_low_rate(&sweep, p, opts.low_rate_points),
                tpot_ms_measured: p.tpot_ms_mean,
                tpot_ms_predicted: pred.tpot_mean_ms,
                ttft_ms_measured: p.ttft_ms_median,
                ttft_ms_predicted: pred.ttft_ms.p50,
            });
        }
    }
    Ok(GuideLlmValidation {
        profile: Some(profile),
        points: checks,
        saturation: sats,
    })
}

/// Throughput of `to_gpu` relative to `from_gpu` for `model` in a TensorRT-LLM table: the
/// geometric mean over the (input, output length, tp) cases both GPUs were measured on.
/// Returns the ratio and the number of cases.
///
/// # Errors
/// If a GPU name matches no rows or no case is shared.
pub fn trtllm_ratio(
    table: &Table,
    model: &str,
    from_gpu: &str,
    to_gpu: &str,
) -> anyhow::Result<(f64, usize)> {
    let mut by_gpu: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut gpus: Vec<String> = Vec::new();
    for row in &table.rows {
        let m = table.text(row, "model")?;
        if !m.eq_ignore_ascii_case(model) {
            continue;
        }
        let gpu = table.text(row, "gpu")?.to_string();
        let case = format!(
            "{}/{}/tp{}",
            table.num(row, "isl")?,
            table.num(row, "osl")?,
            table.num(row, "tp")?
        );
        if !gpus.contains(&gpu) {
            gpus.push(gpu.clone());
        }
        by_gpu.insert((gpu, case), table.num(row, "total_output_tokens_per_s")?);
    }
    for g in [from_gpu, to_gpu] {
        if !gpus.iter().any(|x| x == g) {
            bail!(
                "{}: no rows for model {model:?} on GPU {g:?}; GPUs with rows: {gpus:?}",
                table.path.display()
            );
        }
    }
    let mut log_sum = 0.0;
    let mut n = 0usize;
    for ((gpu, case), from_tps) in &by_gpu {
        if gpu != from_gpu {
            continue;
        }
        if let Some(to_tps) = by_gpu.get(&(to_gpu.to_string(), case.clone())) {
            log_sum += (to_tps / from_tps).ln();
            n += 1;
        }
    }
    if n == 0 {
        bail!(
            "{}: {from_gpu} and {to_gpu} share no (isl, osl, tp) case for {model:?}",
            table.path.display()
        );
    }
    Ok(((log_sum / n as f64).exp(), n))
}

/// The shared data directory: `SLO_SCALER_DATA_DIR`, else `../shared/data` next to the
/// repository root.
#[must_use]
pub fn data_dir() -> PathBuf {
    std::env::var_os("SLO_SCALER_DATA_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
        PathBuf::from,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> FitOptions {
        FitOptions {
            model: None,
            gpu: None,
            tp: None,
            low_rate_points: 2,
            kv_capacity_tokens: None,
            max_batch: Some(256),
            cold_start_s: 60.0,
            wake_from_sleep_s: 5.0,
            cost_per_hour: 1.0,
        }
    }

    fn table(rel: &str) -> Option<(DataFormat, Table)> {
        let path = data_dir().join(rel);
        if !path.exists() {
            eprintln!("skipping: {} not present", path.display());
            return None;
        }
        Some(read_table(&path).expect("readable"))
    }

    #[test]
    fn csv_quotes_and_format_detection() {
        let t = Table::parse(
            Path::new("x.csv"),
            "model,gpu,tp,isl,osl,total_output_tokens_per_s,engine\n\
             a,H100,1,128,128,100,\"TRT (pytorch, offline)\"\n",
        )
        .expect("parses");
        assert_eq!(t.rows[0][6], "TRT (pytorch, offline)");
        assert_eq!(DataFormat::detect(&t.header), Some(DataFormat::TrtLlm));
        assert_eq!(DataFormat::detect(&["a".to_string()]), None);
        assert!(Table::parse(Path::new("x.csv"), "a,b\n1\n").is_err());
    }

    #[test]
    fn splitwise_selection_must_be_unique_and_fits_well() {
        let Some((format, t)) = table("profiles/splitwise/perf_model.csv") else {
            return;
        };
        assert_eq!(format, DataFormat::Splitwise);
        let mut o = opts();
        o.kv_capacity_tokens = Some(100_000);
        let err = fit_profile(&[(format, t.clone())], &o).expect_err("ambiguous");
        assert!(err.to_string().contains("--model"), "{err}");
        o.model = Some("llama2-70b".into());
        o.gpu = Some("a100-80gb".into());
        o.tp = Some(4);
        let p = fit_profile(&[(format, t)], &o).expect("fits");
        assert_eq!(p.tensor_parallel, 4);
        let (pf, dec) = (&p.provenance.fit[0], &p.provenance.fit[1]);
        assert!(pf.mape_pct < 15.0 && pf.r2 > 0.95, "{pf:?}");
        assert!(dec.mape_pct < 10.0, "{dec:?}");
        // Decode steps of a 70B model on A100 take tens of ms.
        assert!(
            p.decode.base_ms > 10.0 && p.decode.base_ms < 100.0,
            "{:?}",
            p.decode
        );
    }

    #[test]
    fn h100_is_faster_than_a100_in_splitwise() {
        let Some((format, t)) = table("profiles/splitwise/perf_model.csv") else {
            return;
        };
        let fit = |gpu: &str| {
            let mut o = opts();
            o.kv_capacity_tokens = Some(100_000);
            o.model = Some("llama2-70b".into());
            o.gpu = Some(gpu.into());
            o.tp = Some(4);
            fit_profile(&[(format, t.clone())], &o).expect("fits")
        };
        let (a, h) = (fit("a100-80gb"), fit("h100-80gb"));
        assert!(h.prefill.per_token_ms < a.prefill.per_token_ms);
        assert!(h.decode.step_ms(16.0, 16.0 * 600.0) < a.decode.step_ms(16.0, 16.0 * 600.0));
    }

    #[test]
    fn dynamo_needs_both_files_and_reads_kv_capacity() {
        let (Some(pre), Some(dec)) = (
            table("profiles/dynamo_h200_llama31_8b_fp8/prefill_profile.csv"),
            table("profiles/dynamo_h200_llama31_8b_fp8/decode_profile.csv"),
        ) else {
            return;
        };
        assert_eq!(pre.0, DataFormat::DynamoPrefill);
        assert_eq!(dec.0, DataFormat::DynamoDecode);
        assert!(fit_profile(std::slice::from_ref(&pre), &opts()).is_err());
        let p = fit_profile(&[pre, dec], &opts()).expect("fits");
        assert_eq!(p.limits.kv_capacity_tokens, 945_029);
        assert_eq!(p.gpu, "H200");
        assert!(
            p.provenance.fit.iter().all(|f| f.r2 > 0.9),
            "{:?}",
            p.provenance.fit
        );
        // What `profile fit -o` writes is what `latency --profile` reads.
        let yaml = p.to_yaml().expect("serialises");
        assert_eq!(Profile::from_yaml(&yaml).expect("reads back"), p);
    }

    #[test]
    fn guidellm_low_rate_fit_predicts_higher_rates() {
        let Some((format, t)) =
            table("profiles/guidellm_llama31_8b/exp1_llama31_8b_guidellm_sweeps.csv")
        else {
            return;
        };
        assert_eq!(format, DataFormat::GuideLlm);
        let mut o = opts();
        o.kv_capacity_tokens = Some(400_000);
        o.max_batch = Some(512);
        let v = validate_guidellm(&t, &o, GUIDELLM_CONSTANT_ARRIVAL_CV2).expect("validates");
        assert_eq!(v.saturation.len(), 16);
        // Held-out points below 80 % of the measured saturation rate.
        let held: Vec<&PointCheck> = v
            .points
            .iter()
            .filter(|p| !p.low_rate && p.load_fraction < 0.8)
            .collect();
        assert!(held.len() >= 60, "{}", held.len());
        let share = |ok: usize| ok as f64 / held.len() as f64;
        let tpot_ok = held
            .iter()
            .filter(|p| (p.tpot_ms_predicted / p.tpot_ms_measured - 1.0).abs() <= 0.2)
            .count();
        // Issue 4's target, met since the fit and the model charge vLLM's CUDA-graph padding.
        assert_eq!(
            tpot_ok,
            held.len(),
            "TPOT within 20 %: {tpot_ok}/{}",
            held.len()
        );
        let profile = v.profile.as_ref().expect("fitted profile");
        assert_eq!(
            profile.decode.cuda_graph_batch_sizes,
            vllm_default_cuda_graph_batch_sizes(512)
        );
        assert!(
            profile
                .provenance
                .assumptions
                .iter()
                .any(|a| a.contains("CUDA-graph"))
        );
        let ttft_ok = held
            .iter()
            .filter(|p| (p.ttft_ms_predicted / p.ttft_ms_measured - 1.0).abs() <= 0.3)
            .count();
        assert!(
            share(ttft_ok) >= 0.9,
            "TTFT within 30 %: {ttft_ok}/{}",
            held.len()
        );
        let sat_ok = v
            .saturation
            .iter()
            .filter(|s| (s.predicted_per_s / s.measured_per_s - 1.0).abs() <= 0.15)
            .count();
        // Every sweep: the compute bound counts each output token's pass through the weights
        // (without it the three short decode-heavy sweeps were 18–29 % over).
        assert_eq!(sat_ok, 16, "saturation within 15 %: {sat_ok}/16");
    }

    #[test]
    fn shipped_example_profiles_load_and_name_their_source() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/profiles");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("docs/profiles exists") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).expect("readable");
                let p =
                    Profile::from_yaml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(!p.provenance.source.is_empty() && !p.provenance.licence.is_empty());
                n += 1;
            }
        }
        assert!(n >= 4, "{n} profiles");
    }

    #[test]
    fn trtllm_ratio_orders_gpus() {
        let Some((_, t)) = table("profiles/trtllm_perf_overview/trtllm_v0.17_throughput_5gpus.csv")
        else {
            return;
        };
        let (r, n) =
            trtllm_ratio(&t, "LLaMA v3.1 8B", "H200-141GB-HBM3e", "A100-SXM4-80GB").expect("ratio");
        assert!(n >= 5);
        assert!(r > 0.1 && r < 0.5, "A100 vs H200 ratio {r}");
        assert!(trtllm_ratio(&t, "LLaMA v3.1 8B", "H200-141GB-HBM3e", "B300").is_err());
    }
}
