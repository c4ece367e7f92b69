//! Profile schema: YAML round trip, unknown fields rejected, domains checked.
use forecasting::profile::{Profile, ProfileError};

const PROFILE: &str = "\
model: test-8b
gpu: H100-80GB
tensor_parallel: 1
prefill:
  base_ms: 14.0
  per_token_ms: 0.022
  per_token_sq_ms: 3.0e-7
decode:
  base_ms: 6.5
  per_seq_ms: 0.026
  per_kv_token_ms: 6.0e-5
limits:
  kv_capacity_tokens: 400000
  max_batch: 512
lifecycle:
  cold_start_s: 120.0
  wake_from_sleep_s: 8.0
cost_per_hour: 2.5
provenance:
  source: unit test
  licence: Apache-2.0
  method: hand
";

#[test]
fn parses_and_round_trips() {
    let p = Profile::from_yaml(PROFILE).expect("valid profile");
    assert_eq!(p.limits.max_batch, 512);
    assert!((p.decode.step_ms(10.0, 1000.0) - (6.5 + 0.26 + 0.06)).abs() < 1e-12);
    // Not measured: no overlap assumed.
    assert_eq!(p.decode.mixed_prefill_factor, 1.0);
    assert!((p.prefill.time_ms(2.0, 100.0) - (14.0 + 2.0 * (2.2 + 0.003))).abs() < 1e-12);
    let again = Profile::from_yaml(&p.to_yaml().expect("serialises")).expect("reads back");
    assert_eq!(p, again);
}

#[test]
fn rejects_unknown_fields_anywhere() {
    let top = PROFILE.replace("cost_per_hour: 2.5", "cost_per_hour: 2.5\ncost_per_hr: 3");
    assert!(matches!(
        Profile::from_yaml(&top),
        Err(ProfileError::Yaml(_))
    ));
    // A unit-less name is not silently accepted either.
    let nested = PROFILE.replace("  base_ms: 6.5", "  base: 6.5");
    assert!(matches!(
        Profile::from_yaml(&nested),
        Err(ProfileError::Yaml(_))
    ));
}

#[test]
fn cost_is_required_input() {
    let missing = PROFILE.replace("cost_per_hour: 2.5\n", "");
    assert!(matches!(
        Profile::from_yaml(&missing),
        Err(ProfileError::Yaml(_))
    ));
}

#[test]
fn rejects_out_of_domain_values_naming_the_field() {
    for (from, to, field) in [
        ("  base_ms: 6.5", "  base_ms: 0.0", "decode.base_ms"),
        (
            "  per_seq_ms: 0.026",
            "  per_seq_ms: -0.1",
            "decode.per_seq_ms",
        ),
        ("  max_batch: 512", "  max_batch: 0", "limits.max_batch"),
        (
            "  kv_capacity_tokens: 400000",
            "  kv_capacity_tokens: 0",
            "limits.kv_capacity_tokens",
        ),
        ("cost_per_hour: 2.5", "cost_per_hour: -1", "cost_per_hour"),
        (
            "tensor_parallel: 1",
            "tensor_parallel: 0",
            "tensor_parallel",
        ),
    ] {
        let text = PROFILE.replace(from, to);
        match Profile::from_yaml(&text) {
            Err(ProfileError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: expected Invalid, got {other:?}"),
        }
    }
}

#[test]
fn vllm_default_graph_sizes_follow_vllm_and_stop_at_twice_max_num_seqs() {
    use forecasting::profile::vllm_default_cuda_graph_batch_sizes;
    let s = vllm_default_cuda_graph_batch_sizes(512);
    assert_eq!(&s[..6], &[1, 2, 4, 8, 16, 24]);
    assert!(s.contains(&248) && !s.contains(&252) && s.contains(&256) && s.contains(&272));
    assert_eq!(s.last(), Some(&512));
    // 3 + 31 multiples of 8 below 256 + 17 multiples of 16 from 256 to 512.
    assert_eq!(s.len(), 51);
    assert_eq!(vllm_default_cuda_graph_batch_sizes(64).last(), Some(&128));
    assert!(s.windows(2).all(|w| w[0] < w[1]));
}

fn padded() -> forecasting::profile::DecodeCurve {
    let mut p = Profile::from_yaml(PROFILE).expect("valid profile");
    p.decode.cuda_graph_batch_sizes =
        forecasting::profile::vllm_default_cuda_graph_batch_sizes(512);
    p.decode
}

#[test]
fn a_batch_is_padded_to_the_next_graph_size_and_not_beyond_the_largest() {
    let d = padded();
    assert_eq!(d.padded_batch(3.0), 4.0);
    assert_eq!(d.padded_batch(5.0), 8.0);
    assert_eq!(d.padded_batch(16.0), 16.0);
    assert_eq!(d.padded_batch(257.0), 272.0);
    // Above the largest graph the step runs eagerly, unpadded.
    assert_eq!(d.padded_batch(600.0), 600.0);
    // The step pays per_seq_ms for the padded slots, the KV term for real context only.
    assert!((d.step_ms(5.0, 1000.0) - (6.5 + 8.0 * 0.026 + 0.06)).abs() < 1e-12);
}

#[test]
fn expected_padded_batch_is_exact_on_graph_sizes_at_least_the_mean_and_monotone() {
    let d = padded();
    for size in [1.0, 2.0, 4.0, 8.0, 64.0, 256.0, 512.0] {
        assert_eq!(d.expected_padded_batch(size, 0.0), size);
    }
    let mut prev = [0.0; 3];
    let mut mean = 0.05;
    while mean < 700.0 {
        for (i, cv2) in [0.0, 0.5, 1.0].into_iter().enumerate() {
            let e = d.expected_padded_batch(mean, cv2);
            assert!(e >= mean - 1e-9, "mean {mean} cv2 {cv2}: {e}");
            assert!(e >= prev[i] - 1e-9, "not monotone at mean {mean} cv2 {cv2}");
            prev[i] = e;
        }
        mean *= 1.01;
    }
    // A Poisson batch spread over several multiples of 8 pads by (8 − 1)/2 on average.
    let e = d.expected_padded_batch(100.0, 1.0);
    assert!((e - 103.5).abs() < 0.2, "{e}");
    // Without graph sizes nothing is padded.
    let mut eager = d.clone();
    eager.cuda_graph_batch_sizes.clear();
    assert_eq!(eager.expected_padded_batch(5.3, 1.0), 5.3);
}

#[test]
fn graph_sizes_must_ascend() {
    let text = PROFILE.replace(
        "  per_kv_token_ms: 6.0e-5\n",
        "  per_kv_token_ms: 6.0e-5\n  cuda_graph_batch_sizes: [1, 4, 2]\n",
    );
    assert!(matches!(
        Profile::from_yaml(&text),
        Err(ProfileError::Invalid {
            field: "decode.cuda_graph_batch_sizes",
            ..
        })
    ));
    let ok = text.replace("[1, 4, 2]", "[1, 2, 4]");
    let p = Profile::from_yaml(&ok).expect("valid");
    assert_eq!(p.decode.cuda_graph_batch_sizes, vec![1, 2, 4]);
    let again = Profile::from_yaml(&p.to_yaml().expect("serialises")).expect("reads back");
    assert_eq!(p, again);
}
