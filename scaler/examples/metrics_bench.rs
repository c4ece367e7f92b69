//! Cost of the direct-scrape source per evaluation: parsing a vLLM-sized exposition, and
//! deriving one model's observation from N endpoints with a full rate window of scrapes.
//!
//! `cargo run --release -p slo-scaler --example metrics_bench` (figures in
//! docs/BENCHMARKS.md, "Metrics (issue 6)").

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use slo_scaler::metrics::exposition::parse;
use slo_scaler::metrics::scrape::{
    Endpoint, Fetcher, ScrapeObserver, ScrapeSettings, StaticEndpoints,
};
use slo_scaler::metrics::{Engine, MetricsError, Target};

/// A vLLM-like exposition: the gauges and counters the preset reads plus 12 histograms
/// of 30 buckets each (vLLM exports about this many), counters scaled by `k`.
fn exposition(k: f64) -> String {
    let l = "engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"";
    let mut s = String::new();
    s += &format!("vllm:num_requests_running{{{l}}} 5\nvllm:num_requests_waiting{{{l}}} 2\n");
    s += &format!("vllm:kv_cache_usage_perc{{{l}}} 0.4\n");
    for r in ["stop", "length", "abort"] {
        s += &format!(
            "vllm:request_success_total{{{l},finished_reason=\"{r}\"}} {}\n",
            100.0 * k
        );
    }
    s += &format!("vllm:prompt_tokens_total{{{l}}} {}\n", 5e4 * k);
    s += &format!("vllm:generation_tokens_total{{{l}}} {}\n", 1e4 * k);
    let names = [
        "vllm:time_to_first_token_seconds",
        "vllm:inter_token_latency_seconds",
        "vllm:e2e_request_latency_seconds",
        "vllm:request_queue_time_seconds",
        "vllm:request_prefill_time_seconds",
        "vllm:request_decode_time_seconds",
        "vllm:request_inference_time_seconds",
        "vllm:request_prompt_tokens",
        "vllm:request_generation_tokens",
        "vllm:request_params_n",
        "vllm:request_params_max_tokens",
        "vllm:request_time_per_output_token_seconds",
    ];
    for n in names {
        s += &format!("# HELP {n} h\n# TYPE {n} histogram\n");
        for i in 0..29 {
            let le = 0.001 * 1.5f64.powi(i);
            s += &format!(
                "{n}_bucket{{{l},le=\"{le}\"}} {}\n",
                (i as f64 + 1.0) * 10.0 * k
            );
        }
        s += &format!("{n}_bucket{{{l},le=\"+Inf\"}} {}\n", 300.0 * k);
        s += &format!(
            "{n}_sum{{{l}}} {}\n{n}_count{{{l}}} {}\n",
            42.0 * k,
            300.0 * k
        );
    }
    s
}

struct Scripted(std::sync::Mutex<f64>);

impl Fetcher for Scripted {
    fn fetch<'a>(&'a self, _url: &'a str) -> BoxFuture<'a, Result<String, MetricsError>> {
        Box::pin(async move {
            let k = *self.0.lock().unwrap();
            Ok(exposition(k))
        })
    }
}

fn main() {
    let text = exposition(1.0);
    let lines = text.lines().count();
    let n = 2_000;
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(parse(std::hint::black_box(&text)).unwrap());
    }
    let per = start.elapsed() / n;
    println!(
        "parse: {lines} lines, {} bytes: {:.1} µs per exposition ({:.0} MB/s)",
        text.len(),
        per.as_secs_f64() * 1e6,
        text.len() as f64 / per.as_secs_f64() / 1e6
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for endpoints in [10usize, 100] {
        let eps = (0..endpoints)
            .map(|i| Endpoint {
                url: format!("http://e{i}/metrics"),
                model: "llama".into(),
                variant: if i % 2 == 0 { "h100" } else { "a100" }.into(),
            })
            .collect();
        let fetcher = Scripted(std::sync::Mutex::new(1.0));
        let o = ScrapeObserver::new(
            StaticEndpoints(eps),
            fetcher,
            ScrapeSettings {
                rate_window_s: 60.0,
                stale_after_s: 30.0,
                history_len: 600,
            },
        );
        // A full 60 s window at a 5 s evaluation interval: 13 scrapes per endpoint.
        let mut refresh = Duration::ZERO;
        for i in 0..13 {
            let t = Instant::now();
            rt.block_on(o.refresh_at(i as f64 * 5.0));
            refresh += t.elapsed();
        }
        let target = Target {
            model: "llama".into(),
            engine: Engine::Vllm,
            served_name: "meta-llama/Llama-3.1-8B-Instruct".into(),
            model_label: Some("model_name".into()),
            matchers: None,
            variant_label: None,
        };
        let reps = 50;
        let t = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(o.observe_at(&target, 60.0).unwrap());
        }
        let observe = t.elapsed() / reps;
        println!(
            "{endpoints} endpoints: refresh (fetch in memory + parse) {:.2} ms per evaluation; observe {:.2} ms",
            refresh.as_secs_f64() * 1e3 / 13.0,
            observe.as_secs_f64() * 1e3
        );
    }
}
