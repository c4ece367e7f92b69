//! How fast the latency model and the capacity search are (the figures in
//! `docs/BENCHMARKS.md`). Run: `cargo run --release -p forecasting --example perf_speed`.
use std::hint::black_box;
use std::time::Instant;

use forecasting::capacity::{Slo, capacity_per_replica};
use forecasting::latency::{LatencyModel, Percentile, RequestMix, TokenDist};
use forecasting::profile::{DecodeCurve, Lifecycle, Limits, PrefillCurve, Profile, Provenance};

fn main() {
    // Coefficients of the GuideLLM Llama-3.1-8B fit (docs/performance-model.md).
    let profile = Profile {
        model: "llama-3.1-8b".into(),
        gpu: "unrecorded".into(),
        tensor_parallel: 1,
        engine: None,
        prefill: PrefillCurve {
            base_ms: 13.39,
            per_token_ms: 0.02112,
            per_token_sq_ms: 6.66e-7,
        },
        decode: DecodeCurve {
            base_ms: 6.64,
            per_seq_ms: 0.0255,
            per_kv_token_ms: 6.21e-5,
            mixed_prefill_factor: 0.73,
            cuda_graph_batch_sizes: Vec::new(),
        },
        limits: Limits {
            kv_capacity_tokens: 400_000,
            max_batch: 512,
        },
        lifecycle: Lifecycle {
            cold_start_s: 0.0,
            wake_from_sleep_s: 0.0,
        },
        cost_per_hour: 0.0,
        provenance: Provenance::default(),
    };
    let samples: Vec<f64> = (0..5000)
        .map(|i| 50.0 + f64::from((i * 37) % 3000))
        .collect();
    let dist = TokenDist::from_samples(&samples).expect("valid");
    let mixes = [
        (
            "fixed lengths",
            RequestMix::fixed(1024.0, 256.0).expect("valid"),
        ),
        (
            "short outputs 2048/28",
            RequestMix::fixed(2048.0, 28.0).expect("valid"),
        ),
        (
            "64-bin distributions",
            RequestMix {
                prompt_tokens: dist.clone(),
                output_tokens: dist,
            },
        ),
    ];
    let slo = Slo {
        ttft_ms: 300.0,
        tpot_ms: 25.0,
        percentile: Percentile::P99,
    };
    // The same profile with vLLM's CUDA-graph sizes: the step becomes an iterated fixed point
    // and every batch term a mean padded batch (a Poisson sum at the default c_a² = 1).
    let mut padded = profile.clone();
    padded.decode.cuda_graph_batch_sizes =
        forecasting::profile::vllm_default_cuda_graph_batch_sizes(512);
    for (graphs, profile) in [("", &profile), (" +graphs", &padded)] {
        run(profile, &mixes, &slo, graphs);
    }
}

fn run(profile: &Profile, mixes: &[(&str, RequestMix)], slo: &Slo, graphs: &str) {
    for (name, mix) in mixes {
        let name = format!("{name}{graphs}");
        let model = LatencyModel::new(profile, mix).expect("model");
        let sat = model.saturation_rate_per_s();
        let n = 100_000u32;
        let start = Instant::now();
        for i in 0..n {
            black_box(
                model
                    .predict(black_box(sat * f64::from(i) / f64::from(n)), 1)
                    .ok(),
            );
        }
        let predict_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        let m = 2_000u32;
        let start = Instant::now();
        for _ in 0..m {
            black_box(capacity_per_replica(profile, black_box(mix), slo).ok());
        }
        let capacity_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(m);
        println!(
            "{name:30} predict {predict_us:8.2} µs/call   capacity_per_replica {capacity_us:9.1} µs/call"
        );
    }
}
