//! Real request traces from disk: files become typed records, the format detected by content
//! (see `../shared/data/README.md`), and records become a rate series for forecasting.
//!
//! Where to start: [`load`] reads any of the three formats into a [`Trace`];
//! [`Trace::rate_series`] aggregates it. Request-level traces keep every request
//! ([`RequestRecord`]: arrival, prompt and output tokens, prefix hash ids) for the simulator.
//!
//! Formats:
//! - Azure LLM inference CSV: header `TIMESTAMP,ContextTokens,GeneratedTokens`, wall-clock
//!   timestamps with up to 7 fractional digits.
//! - Mooncake JSONL: one object per line with `timestamp` (ms from start), `input_length`,
//!   `output_length`, `hash_ids`.
//! - ServeGen: a model directory of `chunk-<client>-trace.csv` files without header
//!   (`window_start_s,rate_req_per_s,cv,arrival_pattern,param1,param2`, 600 s windows); the
//!   model's demand is the sum over clients. A single chunk file is read as one client.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// What can go wrong reading a trace.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file or directory could not be read.
    #[error("cannot read trace {path}: {source}")]
    Io {
        /// The path being read.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The content matches none of the known formats.
    #[error(
        "cannot detect the trace format of {path}: expected an Azure CSV (header \
         `TIMESTAMP,ContextTokens,GeneratedTokens`), a Mooncake JSONL (lines starting with `{{`) \
         or a ServeGen directory/file (`chunk-*-trace.csv`, 6 numeric-first columns), got {got}"
    )]
    UnknownFormat {
        /// The path being read.
        path: PathBuf,
        /// What was found instead, e.g. the first line.
        got: String,
    },
    /// A line of a detected format does not parse.
    #[error("{path}:{line}: expected {expected}, got `{got}`")]
    Parse {
        /// The file being parsed.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What the line should look like.
        expected: &'static str,
        /// The offending text (truncated).
        got: String,
    },
    /// The trace holds no usable data.
    #[error("trace {path} is empty: expected at least one request or window")]
    Empty {
        /// The path being read.
        path: PathBuf,
    },
    /// The requested aggregation interval does not fit the trace.
    #[error("invalid interval {interval_s} s for this trace: expected {expected}")]
    Interval {
        /// The interval asked for.
        interval_s: f64,
        /// What would be valid.
        expected: String,
    },
}

/// The three trace formats, as detected by [`detect_format`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceFormat {
    /// Azure LLM inference trace (Splitwise), CSV.
    AzureCsv,
    /// Mooncake conversation trace, JSON lines.
    MooncakeJsonl,
    /// ServeGen per-client rate windows (a model directory or one chunk file).
    ServeGen,
}

impl TraceFormat {
    /// Short name: `azure_csv`, `mooncake_jsonl`, `servegen`.
    pub fn name(self) -> &'static str {
        match self {
            TraceFormat::AzureCsv => "azure_csv",
            TraceFormat::MooncakeJsonl => "mooncake_jsonl",
            TraceFormat::ServeGen => "servegen",
        }
    }
}

/// One request of a request-level trace.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    /// Arrival time in seconds from the first request of the trace.
    pub arrival_s: f64,
    /// Prompt (context) tokens.
    pub prompt_tokens: u32,
    /// Generated (output) tokens.
    pub output_tokens: u32,
    /// Prefix block ids (Mooncake: 512 tokens per block); empty when the trace has none.
    pub hash_ids: Vec<u64>,
}

/// A loaded trace.
#[derive(Debug, Clone, PartialEq)]
pub enum Trace {
    /// One record per request, sorted by arrival.
    Requests {
        /// The format it came from.
        format: TraceFormat,
        /// Requests in arrival order.
        records: Vec<RequestRecord>,
    },
    /// Request rates per fixed window, summed over clients (ServeGen).
    Windows {
        /// Window length in seconds.
        window_s: f64,
        /// Start of the first window, in seconds (trace clock).
        start_s: f64,
        /// Rate per window, requests/s, oldest first; windows absent from every client are 0.
        rates_per_s: Vec<f64>,
    },
}

/// A request-rate series at a fixed interval.
#[derive(Debug, Clone, PartialEq)]
pub struct RateSeries {
    /// Interval in seconds.
    pub interval_s: f64,
    /// Requests/s per interval, oldest first.
    pub rates_per_s: Vec<f64>,
}

/// ServeGen's window length.
pub const SERVEGEN_WINDOW_S: f64 = 600.0;

impl Trace {
    /// The format this trace was read from.
    pub fn format(&self) -> TraceFormat {
        match self {
            Trace::Requests { format, .. } => *format,
            Trace::Windows { .. } => TraceFormat::ServeGen,
        }
    }

    /// The natural aggregation interval: 60 s for request traces, the window for ServeGen.
    pub fn default_interval_s(&self) -> f64 {
        match self {
            Trace::Requests { .. } => 60.0,
            Trace::Windows { window_s, .. } => *window_s,
        }
    }

    /// Request rate per `interval_s`. Request traces: arrivals counted per bin from the first
    /// arrival, the trailing partial bin dropped (it would under-state the rate). Windowed
    /// traces: `interval_s` must be a whole multiple of the window; windows are averaged.
    pub fn rate_series(&self, interval_s: f64) -> Result<RateSeries, TraceError> {
        if !(interval_s.is_finite() && interval_s > 0.0) {
            return Err(TraceError::Interval {
                interval_s,
                expected: "finite and > 0".into(),
            });
        }
        match self {
            Trace::Requests { records, .. } => {
                let last = records.last().map_or(0.0, |r| r.arrival_s);
                let bins = (last / interval_s).floor() as usize;
                if bins == 0 {
                    return Err(TraceError::Interval {
                        interval_s,
                        expected: format!("at most the trace span ({last:.1} s)"),
                    });
                }
                let mut counts = vec![0u64; bins];
                for r in records {
                    let b = (r.arrival_s / interval_s) as usize;
                    if b < bins {
                        counts[b] += 1;
                    }
                }
                Ok(RateSeries {
                    interval_s,
                    rates_per_s: counts.iter().map(|&c| c as f64 / interval_s).collect(),
                })
            }
            Trace::Windows {
                window_s,
                rates_per_s,
                ..
            } => {
                let ratio = interval_s / window_s;
                if (ratio - ratio.round()).abs() > 1e-9 || ratio.round() < 1.0 {
                    return Err(TraceError::Interval {
                        interval_s,
                        expected: format!("a whole multiple of the {window_s} s window"),
                    });
                }
                let k = ratio.round() as usize;
                Ok(RateSeries {
                    interval_s,
                    rates_per_s: rates_per_s
                        .chunks_exact(k)
                        .map(|c| c.iter().sum::<f64>() / k as f64)
                        .collect(),
                })
            }
        }
    }
}

/// Detects the format of `path` from its content (a directory is ServeGen).
pub fn detect_format(path: &Path) -> Result<TraceFormat, TraceError> {
    if path.is_dir() {
        return if servegen_files(path)?.is_empty() {
            Err(TraceError::UnknownFormat {
                path: path.to_path_buf(),
                got: "a directory without chunk-*-trace.csv files".into(),
            })
        } else {
            Ok(TraceFormat::ServeGen)
        };
    }
    let file = fs::File::open(path).map_err(|source| io(path, source))?;
    let mut first = String::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|source| io(path, source))?;
        if !line.trim().is_empty() {
            first = line;
            break;
        }
    }
    let head = first.trim_start_matches('\u{feff}').trim();
    if head.starts_with('{') {
        Ok(TraceFormat::MooncakeJsonl)
    } else if head.to_ascii_uppercase().starts_with("TIMESTAMP,") {
        Ok(TraceFormat::AzureCsv)
    } else if head.split(',').count() == 6
        && head
            .split(',')
            .next()
            .is_some_and(|f| f.parse::<f64>().is_ok())
    {
        Ok(TraceFormat::ServeGen)
    } else {
        Err(TraceError::UnknownFormat {
            path: path.to_path_buf(),
            got: format!("first line `{}`", truncate(head)),
        })
    }
}

/// Reads a trace of any supported format.
pub fn load(path: &Path) -> Result<Trace, TraceError> {
    let trace = match detect_format(path)? {
        TraceFormat::AzureCsv => Trace::Requests {
            format: TraceFormat::AzureCsv,
            records: load_azure(path)?,
        },
        TraceFormat::MooncakeJsonl => Trace::Requests {
            format: TraceFormat::MooncakeJsonl,
            records: load_mooncake(path)?,
        },
        TraceFormat::ServeGen => {
            let files = if path.is_dir() {
                servegen_files(path)?
            } else {
                vec![path.to_path_buf()]
            };
            load_servegen(path, &files)?
        }
    };
    let empty = match &trace {
        Trace::Requests { records, .. } => records.is_empty(),
        Trace::Windows { rates_per_s, .. } => rates_per_s.is_empty(),
    };
    if empty {
        return Err(TraceError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(trace)
}

fn io(path: &Path, source: std::io::Error) -> TraceError {
    TraceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

fn parse_err(path: &Path, line: usize, expected: &'static str, got: &str) -> TraceError {
    TraceError::Parse {
        path: path.to_path_buf(),
        line,
        expected,
        got: truncate(got),
    }
}

/// Sorts by arrival and shifts the clock so the first request arrives at 0.
fn normalise(mut records: Vec<RequestRecord>) -> Vec<RequestRecord> {
    records.sort_by(|a, b| a.arrival_s.total_cmp(&b.arrival_s));
    if let Some(t0) = records.first().map(|r| r.arrival_s) {
        for r in &mut records {
            r.arrival_s -= t0;
        }
    }
    records
}

fn load_azure(path: &Path) -> Result<Vec<RequestRecord>, TraceError> {
    const EXPECTED: &str = "`YYYY-MM-DD HH:MM:SS[.fffffff],<context tokens>,<generated tokens>`";
    let text = fs::read_to_string(path).map_err(|source| io(path, source))?;
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split(',');
        let (Some(ts), Some(ctx), Some(gen_tokens)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(parse_err(path, i + 1, EXPECTED, line));
        };
        let arrival_s =
            parse_datetime_s(ts.trim()).ok_or_else(|| parse_err(path, i + 1, EXPECTED, line))?;
        let prompt_tokens = ctx
            .trim()
            .parse()
            .map_err(|_| parse_err(path, i + 1, EXPECTED, line))?;
        let output_tokens = gen_tokens
            .trim()
            .parse()
            .map_err(|_| parse_err(path, i + 1, EXPECTED, line))?;
        records.push(RequestRecord {
            arrival_s,
            prompt_tokens,
            output_tokens,
            hash_ids: Vec::new(),
        });
    }
    Ok(normalise(records))
}

/// Seconds since 1970-01-01 of `YYYY-MM-DD HH:MM:SS[.fraction]` (UTC, any fraction length).
fn parse_datetime_s(s: &str) -> Option<f64> {
    let (date, time) = s.split_once([' ', 'T'])?;
    let mut d = date.split('-');
    let (y, mo, da): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let mut t = time.split(':');
    let (h, mi): (i64, i64) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    let sec: f64 = t.next()?.trim_end_matches('Z').parse().ok()?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || sec >= 61.0 {
        return None;
    }
    Some((days_from_civil(y, mo, da) * 86_400 + h * 3600 + mi * 60) as f64 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[derive(serde::Deserialize)]
struct MooncakeLine {
    timestamp: f64,
    input_length: u32,
    output_length: u32,
    #[serde(default)]
    hash_ids: Vec<u64>,
}

fn load_mooncake(path: &Path) -> Result<Vec<RequestRecord>, TraceError> {
    const EXPECTED: &str = "a JSON object with `timestamp` (ms), `input_length`, `output_length`, \
                            `hash_ids`";
    let file = fs::File::open(path).map_err(|source| io(path, source))?;
    let mut records = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| io(path, source))?;
        if line.trim().is_empty() {
            continue;
        }
        let l: MooncakeLine =
            serde_json::from_str(&line).map_err(|_| parse_err(path, i + 1, EXPECTED, &line))?;
        records.push(RequestRecord {
            arrival_s: l.timestamp / 1000.0,
            prompt_tokens: l.input_length,
            output_tokens: l.output_length,
            hash_ids: l.hash_ids,
        });
    }
    Ok(normalise(records))
}

fn servegen_files(dir: &Path) -> Result<Vec<PathBuf>, TraceError> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|source| io(dir, source))? {
        let p = entry.map_err(|source| io(dir, source))?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("chunk-") && name.ends_with("-trace.csv") && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

fn load_servegen(path: &Path, files: &[PathBuf]) -> Result<Trace, TraceError> {
    const EXPECTED: &str = "`window_start_s,rate_req_per_s,cv,arrival_pattern,param1,param2`";
    // Keyed by whole window start seconds: every client shares the 600 s grid.
    let mut sums: BTreeMap<i64, f64> = BTreeMap::new();
    for file in files {
        let text = fs::read_to_string(file).map_err(|source| io(file, source))?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let mut fields = line.split(',');
            let start: f64 = fields
                .next()
                .and_then(|f| f.trim().parse().ok())
                .ok_or_else(|| parse_err(file, i + 1, EXPECTED, line))?;
            let rate: f64 = fields
                .next()
                .and_then(|f| f.trim().parse().ok())
                .filter(|r: &f64| r.is_finite() && *r >= 0.0)
                .ok_or_else(|| parse_err(file, i + 1, EXPECTED, line))?;
            *sums.entry(start.round() as i64).or_default() += rate;
        }
    }
    let (Some((&first, _)), Some((&last, _))) = (sums.first_key_value(), sums.last_key_value())
    else {
        return Err(TraceError::Empty {
            path: path.to_path_buf(),
        });
    };
    let w = SERVEGEN_WINDOW_S as i64;
    let n = ((last - first) / w + 1) as usize;
    let mut rates_per_s = vec![0.0; n];
    for (start, rate) in sums {
        if (start - first) % w != 0 {
            return Err(parse_err(
                path,
                0,
                "window starts on a 600 s grid",
                &start.to_string(),
            ));
        }
        rates_per_s[((start - first) / w) as usize] += rate;
    }
    Ok(Trace::Windows {
        window_s: SERVEGEN_WINDOW_S,
        start_s: first as f64,
        rates_per_s,
    })
}

/// How a ServeGen client's inter-arrival times are distributed in one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ArrivalPattern {
    /// Weibull with `shape` k and `scale` λ (seconds).
    Weibull {
        /// Shape k.
        shape: f64,
        /// Scale λ, seconds.
        scale: f64,
    },
    /// Gamma with `shape` k and `scale` θ (seconds).
    Gamma {
        /// Shape k.
        shape: f64,
        /// Scale θ, seconds.
        scale: f64,
    },
    /// No fitted distribution (idle window, or a rate without a pattern).
    None,
}

/// One 600 s window of one ServeGen client, as recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServeGenWindow {
    /// Window start, seconds (trace clock).
    pub start_s: f64,
    /// Mean request rate in the window, requests/s.
    pub rate_per_s: f64,
    /// Coefficient of variation of the inter-arrival times.
    pub cv: f64,
    /// The fitted inter-arrival distribution.
    pub pattern: ArrivalPattern,
}

/// One ServeGen client (one `chunk-<client>-trace.csv`).
#[derive(Debug, Clone, PartialEq)]
pub struct ServeGenClient {
    /// The client id from the file name (`chunk-<client>-trace.csv`).
    pub client: String,
    /// Its windows in file order.
    pub windows: Vec<ServeGenWindow>,
}

/// Reads every client of a ServeGen model directory (or one chunk file) with the per-window
/// arrival pattern kept, for generating arrivals (the simulator); [`load`] keeps only the
/// summed rates.
pub fn load_servegen_clients(path: &Path) -> Result<Vec<ServeGenClient>, TraceError> {
    const EXPECTED: &str = "`window_start_s,rate_req_per_s,cv,arrival_pattern,param1,param2` \
                            with arrival_pattern `Weibull`, `Gamma` or empty";
    let files = if path.is_dir() {
        servegen_files(path)?
    } else {
        vec![path.to_path_buf()]
    };
    let mut clients = Vec::with_capacity(files.len());
    for file in &files {
        let text = fs::read_to_string(file).map_err(|source| io(file, source))?;
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .trim_start_matches("chunk-")
            .trim_end_matches("-trace.csv")
            .to_string();
        let mut windows = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            let bad = || parse_err(file, i + 1, EXPECTED, line);
            if f.len() != 6 {
                return Err(bad());
            }
            let num = |s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite());
            let start_s = num(f[0]).ok_or_else(bad)?;
            let rate_per_s = num(f[1]).filter(|r| *r >= 0.0).ok_or_else(bad)?;
            let cv = num(f[2]).unwrap_or(0.0);
            let (p1, p2) = (num(f[4]).unwrap_or(0.0), num(f[5]).unwrap_or(0.0));
            let pattern = match f[3] {
                "Weibull" if p1 > 0.0 && p2 > 0.0 => ArrivalPattern::Weibull {
                    shape: p1,
                    scale: p2,
                },
                "Gamma" if p1 > 0.0 && p2 > 0.0 => ArrivalPattern::Gamma {
                    shape: p1,
                    scale: p2,
                },
                "" | "Weibull" | "Gamma" => ArrivalPattern::None,
                _ => return Err(bad()),
            };
            windows.push(ServeGenWindow {
                start_s,
                rate_per_s,
                cv,
                pattern,
            });
        }
        clients.push(ServeGenClient {
            client: name,
            windows,
        });
    }
    if clients.iter().all(|c| c.windows.is_empty()) {
        return Err(TraceError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(clients)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_matches_known_epoch_seconds() {
        // 2023-11-16 18:17:03 UTC is 1700158623 s after the epoch.
        let s = parse_datetime_s("2023-11-16 18:17:03.9799600").unwrap();
        assert!((s - 1_700_158_623.979_96).abs() < 1e-6, "{s}");
        assert_eq!(parse_datetime_s("1970-01-01 00:00:00"), Some(0.0));
        assert_eq!(parse_datetime_s("2023-13-01 00:00:00"), None);
        assert_eq!(parse_datetime_s("garbage"), None);
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn formats_are_detected_by_content_not_name() {
        let dir = tempfile::tempdir().unwrap();
        let azure = write(
            dir.path(),
            "a.txt",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,4808,10\n",
        );
        let moon = write(
            dir.path(),
            "b.csv",
            "{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 2, \"hash_ids\": [0]}\n",
        );
        let sg = write(
            dir.path(),
            "c.json",
            "0,1.5,2.0,Weibull,0.3,0.4\n600,0,0,,0,0\n",
        );
        let junk = write(dir.path(), "d.csv", "hello,world\n");
        assert_eq!(detect_format(&azure).unwrap(), TraceFormat::AzureCsv);
        assert_eq!(detect_format(&moon).unwrap(), TraceFormat::MooncakeJsonl);
        assert_eq!(detect_format(&sg).unwrap(), TraceFormat::ServeGen);
        let err = detect_format(&junk).unwrap_err().to_string();
        assert!(err.contains("hello,world"), "{err}");
    }

    #[test]
    fn request_traces_bin_arrivals_and_drop_the_partial_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        // 3 requests in [0, 60), 1 in [60, 120), 1 at 130 s (partial bin, dropped).
        for (t_ms, hash) in [(0, 1), (10_000, 2), (59_000, 3), (61_000, 4), (130_000, 5)] {
            text.push_str(&format!(
                "{{\"timestamp\": {t_ms}, \"input_length\": 10, \"output_length\": 5, \"hash_ids\": [{hash}]}}\n"
            ));
        }
        let p = write(dir.path(), "m.jsonl", &text);
        let trace = load(&p).unwrap();
        let Trace::Requests { records, .. } = &trace else {
            panic!("expected requests");
        };
        assert_eq!(records[3].hash_ids, vec![4]);
        assert_eq!(records[4].arrival_s, 130.0);
        let series = trace.rate_series(60.0).unwrap();
        assert_eq!(series.rates_per_s, vec![3.0 / 60.0, 1.0 / 60.0]);
    }

    #[test]
    fn servegen_directory_sums_clients_and_fills_absent_windows() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "chunk-0-trace.csv",
            "0,1.0,1,Gamma,1,1\n600,2.0,1,Gamma,1,1\n",
        );
        // Client 1 starts later and skips a window.
        write(
            dir.path(),
            "chunk-1-trace.csv",
            "600,0.5,1,Weibull,1,1\n1800,4.0,1,Weibull,1,1\n",
        );
        write(dir.path(), "README.md", "not a chunk");
        let trace = load(dir.path()).unwrap();
        assert_eq!(trace.format(), TraceFormat::ServeGen);
        let series = trace.rate_series(600.0).unwrap();
        assert_eq!(series.rates_per_s, vec![1.0, 2.5, 0.0, 4.0]);
        let coarse = trace.rate_series(1200.0).unwrap();
        assert_eq!(coarse.rates_per_s, vec![1.75, 2.0]);
        assert!(trace.rate_series(900.0).is_err());
    }

    /// The shared data directory ([`crate::profile_data::data_dir`]); `None` (the test is
    /// skipped, loudly) when it is not set up.
    fn data_dir() -> Option<PathBuf> {
        let dir = crate::profile_data::data_dir();
        if dir.is_dir() {
            Some(dir)
        } else {
            eprintln!("skipped: no shared data at {}", dir.display());
            None
        }
    }

    #[test]
    fn real_traces_load_with_the_documented_row_counts() {
        let Some(data) = data_dir() else { return };
        let azure = load(&data.join("traces/azure2023/AzureLLMInferenceTrace_code.csv")).unwrap();
        let Trace::Requests { format, records } = &azure else {
            panic!("azure is request-level")
        };
        assert_eq!(*format, TraceFormat::AzureCsv);
        assert_eq!(records.len(), 8_819);
        assert_eq!(records[0].arrival_s, 0.0);
        let span = records.last().unwrap().arrival_s;
        assert!(
            (3000.0..4000.0).contains(&span),
            "about an hour, got {span} s"
        );
        assert!(records.iter().all(|r| r.prompt_tokens > 0));

        let moon = load(&data.join("traces/mooncake/conversation_trace.jsonl")).unwrap();
        let Trace::Requests { records, .. } = &moon else {
            panic!("mooncake is request-level")
        };
        assert_eq!(records.len(), 12_031);
        assert!(records.windows(2).all(|w| w[0].arrival_s <= w[1].arrival_s));
        assert!(records.iter().all(|r| !r.hash_ids.is_empty()));
        let rates = moon.rate_series(60.0).unwrap();
        let counted: f64 = rates.rates_per_s.iter().map(|r| r * 60.0).sum();
        assert!(counted <= 12_031.0 && counted > 11_000.0, "{counted}");

        for (model, windows) in [("language/m-mid", 2016), ("reason/deepseek-r1", 144)] {
            let trace = load(&data.join("traces/servegen").join(model)).unwrap();
            let series = trace.rate_series(trace.default_interval_s()).unwrap();
            assert_eq!(series.interval_s, 600.0);
            assert_eq!(series.rates_per_s.len(), windows, "{model}");
            assert!(
                series
                    .rates_per_s
                    .iter()
                    .all(|r| r.is_finite() && *r >= 0.0)
            );
        }
    }

    #[test]
    fn forecasts_on_a_week_of_servegen_meet_the_coverage_targets() {
        use forecasting::forecast::evaluation::{EvalConfig, evaluate};
        let Some(data) = data_dir() else { return };
        let trace = load(&data.join("traces/servegen/language/m-mid")).unwrap();
        let series = trace.rate_series(600.0).unwrap();
        // The first week keeps the test fast in debug builds; the full run is in BENCHMARKS.md.
        let week = &series.rates_per_s[..7 * 144];
        let report = evaluate(week, &EvalConfig::new(600.0, 1800.0)).unwrap();
        let hw = &report.methods[0];
        let sn = &report.methods[2];
        assert_eq!(
            (hw.name.as_str(), sn.name.as_str()),
            ("adaptive", "seasonal_naive")
        );
        assert!(
            (0.86..=0.94).contains(&hw.coverage_90) && (0.92..=0.98).contains(&hw.coverage_95),
            "{hw:?}"
        );
        assert!(hw.mae <= 0.85 * sn.mae, "{hw:?} vs {sn:?}");
    }

    #[test]
    fn azure_parse_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "a.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9,4808,10\nbad,1,2\n",
        );
        let err = load(&p).unwrap_err().to_string();
        assert!(err.contains(":3:"), "{err}");
    }
}
