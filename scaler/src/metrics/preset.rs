//! Engine presets as data: which metric names carry each signal, per engine.
//!
//! Names move between engine versions, so each signal lists its names in preference
//! order (current first, older after). Both sources use the first name that has data for
//! a replica group and never add two names together: an engine exporting both the new and
//! the deprecated name during a deprecation window is counted once.
//! Names come from `../shared/docs/engines-and-baselines.md`.

use serde::Deserialize;

/// The inference engines with a preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// vLLM (V1 engine names and the older V0 ones).
    Vllm,
    /// SGLang with `--enable-metrics`.
    Sglang,
    /// Hugging Face Text Generation Inference.
    Tgi,
}

/// How a signal is computed from metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalSource {
    /// Per-second rate of a counter (names as on the wire, `_total` included).
    CounterRate(&'static [&'static str]),
    /// Per-second rate of a histogram's `_sum` (names without the suffix): TGI's token
    /// counts exist only as request-length histograms.
    HistogramSumRate(&'static [&'static str]),
    /// Sum of a gauge across replicas.
    GaugeSum(&'static [&'static str]),
    /// Mean of a gauge across replicas (a 0..1 utilisation).
    GaugeMean(&'static [&'static str]),
    /// A quantile of a histogram (names without `_bucket`) over the rate window, merged
    /// across replicas.
    HistogramQuantile(&'static [&'static str]),
    /// The engine does not export this signal.
    Absent,
}

/// Where each signal lives for one engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// The engine.
    pub engine: Engine,
    /// Label naming the served model, when the engine sets one.
    pub model_label: Option<&'static str>,
    /// Finished requests per second (the demand signal; required).
    pub requests: SignalSource,
    /// Prompt tokens per second.
    pub prompt_tokens: SignalSource,
    /// Generated tokens per second.
    pub generation_tokens: SignalSource,
    /// Requests running now.
    pub running: SignalSource,
    /// Requests waiting now.
    pub waiting: SignalSource,
    /// KV-cache use, 0..1.
    pub kv_cache_usage: SignalSource,
    /// Time to first token, seconds (histogram).
    pub ttft: SignalSource,
    /// Time per output token / inter-token latency, seconds (histogram).
    pub tpot: SignalSource,
}

/// vLLM: current names first, the older (V0) ones after.
pub const VLLM: Preset = Preset {
    engine: Engine::Vllm,
    model_label: Some("model_name"),
    requests: SignalSource::CounterRate(&["vllm:request_success_total"]),
    prompt_tokens: SignalSource::CounterRate(&["vllm:prompt_tokens_total"]),
    generation_tokens: SignalSource::CounterRate(&["vllm:generation_tokens_total"]),
    running: SignalSource::GaugeSum(&["vllm:num_requests_running"]),
    waiting: SignalSource::GaugeSum(&["vllm:num_requests_waiting"]),
    kv_cache_usage: SignalSource::GaugeMean(&[
        "vllm:kv_cache_usage_perc",
        "vllm:gpu_cache_usage_perc",
    ]),
    ttft: SignalSource::HistogramQuantile(&["vllm:time_to_first_token_seconds"]),
    tpot: SignalSource::HistogramQuantile(&[
        "vllm:inter_token_latency_seconds",
        "vllm:time_per_output_token_seconds",
    ]),
};

/// SGLang (`--enable-metrics`).
pub const SGLANG: Preset = Preset {
    engine: Engine::Sglang,
    model_label: Some("model_name"),
    requests: SignalSource::CounterRate(&["sglang:num_requests_total"]),
    prompt_tokens: SignalSource::CounterRate(&["sglang:prompt_tokens_total"]),
    generation_tokens: SignalSource::CounterRate(&["sglang:generation_tokens_total"]),
    running: SignalSource::GaugeSum(&["sglang:num_running_reqs"]),
    waiting: SignalSource::GaugeSum(&["sglang:num_queue_reqs"]),
    kv_cache_usage: SignalSource::GaugeMean(&["sglang:token_usage"]),
    ttft: SignalSource::HistogramQuantile(&["sglang:time_to_first_token_seconds"]),
    tpot: SignalSource::HistogramQuantile(&["sglang:inter_token_latency_seconds"]),
};

/// TGI: no model label (one model per server; select it with `matchers`), no KV-cache
/// gauge, no TTFT histogram; tokens from request-length histograms. Its counters are
/// exported with and without `_total` depending on the exporter version.
pub const TGI: Preset = Preset {
    engine: Engine::Tgi,
    model_label: None,
    requests: SignalSource::CounterRate(&["tgi_request_success_total", "tgi_request_success"]),
    prompt_tokens: SignalSource::HistogramSumRate(&["tgi_request_input_length"]),
    generation_tokens: SignalSource::HistogramSumRate(&["tgi_request_generated_tokens"]),
    running: SignalSource::GaugeSum(&["tgi_batch_current_size"]),
    waiting: SignalSource::GaugeSum(&["tgi_queue_size"]),
    kv_cache_usage: SignalSource::Absent,
    ttft: SignalSource::Absent,
    tpot: SignalSource::HistogramQuantile(&["tgi_request_mean_time_per_token_duration"]),
};

impl Engine {
    /// The preset of this engine.
    pub fn preset(self) -> &'static Preset {
        match self {
            Engine::Vllm => &VLLM,
            Engine::Sglang => &SGLANG,
            Engine::Tgi => &TGI,
        }
    }
}

/// The quantile reported for TTFT and TPOT.
pub const LATENCY_QUANTILE: f64 = 0.9;

/// Label matchers selecting one model's series: `model_label="served"` plus any extra
/// matchers from config (already PromQL syntax, e.g. `job="tgi"`).
pub fn selector(model_label: Option<&str>, served_name: &str, extra: Option<&str>) -> String {
    let mut parts = Vec::new();
    if let Some(l) = model_label {
        parts.push(format!("{l}=\"{}\"", promql_escape(served_name)));
    }
    if let Some(e) = extra.filter(|e| !e.trim().is_empty()) {
        parts.push(e.trim().to_string());
    }
    format!("{{{}}}", parts.join(","))
}

fn promql_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The PromQL for a signal, or `None` if the engine lacks it. `by` groups the result
/// (e.g. by the variant label); alternatives are joined with `or`, so per group the
/// first name with data wins and names are never added together.
pub fn promql(source: SignalSource, sel: &str, window_s: f64, by: Option<&str>) -> Option<String> {
    let grouping = by.map(|l| format!(" by ({l})")).unwrap_or_default();
    let w = format!("{}s", window_s.round().max(1.0) as u64);
    let one = |name: &str| -> String {
        match source {
            SignalSource::CounterRate(_) => format!("sum{grouping}(rate({name}{sel}[{w}]))"),
            SignalSource::HistogramSumRate(_) => {
                format!("sum{grouping}(rate({name}_sum{sel}[{w}]))")
            }
            SignalSource::GaugeSum(_) => format!("sum{grouping}({name}{sel})"),
            SignalSource::GaugeMean(_) => format!("avg{grouping}({name}{sel})"),
            SignalSource::HistogramQuantile(_) => format!(
                "histogram_quantile({LATENCY_QUANTILE}, sum by (le) (rate({name}_bucket{sel}[{w}])))"
            ),
            SignalSource::Absent => String::new(),
        }
    };
    let names = match source {
        SignalSource::CounterRate(n)
        | SignalSource::HistogramSumRate(n)
        | SignalSource::GaugeSum(n)
        | SignalSource::GaugeMean(n)
        | SignalSource::HistogramQuantile(n) => n,
        SignalSource::Absent => return None,
    };
    Some(
        names
            .iter()
            .map(|n| format!("({})", one(n)))
            .collect::<Vec<_>>()
            .join(" or "),
    )
}

/// PromQL for the time of the newest sample of the model's request counter, on
/// Prometheus's clock (freshness is judged there, so a skewed scaler clock cannot
/// make data look fresh or stale).
pub fn freshness_promql(preset: &Preset, sel: &str) -> String {
    let names = match preset.requests {
        SignalSource::CounterRate(n) => n,
        _ => &[][..],
    };
    names
        .iter()
        .map(|n| format!("(max(timestamp({n}{sel})))"))
        .collect::<Vec<_>>()
        .join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_prefer_current_names_and_never_add_alternatives() {
        let sel = selector(Some("model_name"), "meta/llama", None);
        assert_eq!(sel, "{model_name=\"meta/llama\"}");
        let q = promql(VLLM.kv_cache_usage, &sel, 60.0, Some("variant")).unwrap();
        assert_eq!(
            q,
            "(avg by (variant)(vllm:kv_cache_usage_perc{model_name=\"meta/llama\"})) or (avg by (variant)(vllm:gpu_cache_usage_perc{model_name=\"meta/llama\"}))"
        );
        let q = promql(VLLM.ttft, &sel, 30.0, None).unwrap();
        assert!(q.contains("histogram_quantile(0.9, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{model_name=\"meta/llama\"}[30s])))"), "{q}");
        assert_eq!(promql(TGI.ttft, &sel, 30.0, None), None);
    }

    #[test]
    fn selector_escapes_and_takes_extra_matchers() {
        assert_eq!(selector(None, "x", Some("job=\"tgi\"")), "{job=\"tgi\"}");
        assert_eq!(selector(Some("m"), "a\"b", Some(" ")), "{m=\"a\\\"b\"}");
        assert_eq!(selector(None, "x", None), "{}");
    }

    #[test]
    fn every_engine_has_a_request_counter() {
        for e in [Engine::Vllm, Engine::Sglang, Engine::Tgi] {
            assert!(matches!(e.preset().requests, SignalSource::CounterRate(n) if !n.is_empty()));
            assert!(!freshness_promql(e.preset(), "{}").is_empty());
        }
    }
}
