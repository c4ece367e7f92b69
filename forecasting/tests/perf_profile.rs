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
