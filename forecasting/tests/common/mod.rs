//! Fixtures shared by the performance-model tests.
use forecasting::profile::{DecodeCurve, Lifecycle, Limits, PrefillCurve, Profile, Provenance};

/// Coefficients of the order fitted to the GuideLLM Llama-3.1-8B sweeps.
pub fn profile(kv_capacity_tokens: u64, max_batch: u32) -> Profile {
    Profile {
        model: "test-8b".into(),
        gpu: "test-gpu".into(),
        tensor_parallel: 1,
        engine: None,
        prefill: PrefillCurve {
            base_ms: 14.0,
            per_token_ms: 0.022,
            per_token_sq_ms: 3.0e-7,
        },
        decode: DecodeCurve {
            base_ms: 6.5,
            per_seq_ms: 0.026,
            per_kv_token_ms: 6.0e-5,
            mixed_prefill_factor: 0.75,
            cuda_graph_batch_sizes: Vec::new(),
        },
        limits: Limits {
            kv_capacity_tokens,
            max_batch,
        },
        lifecycle: Lifecycle {
            cold_start_s: 60.0,
            wake_from_sleep_s: 5.0,
        },
        cost_per_hour: 1.0,
        provenance: Provenance::default(),
    }
}
