//! KEDA's and the HPA's arithmetic on the values we return, as pure functions.
//!
//! Everything we send KEDA is reformatted with `%.3f` and then fed to the HPA replica
//! calculator. Sizing uses these functions to avoid proposing a value KEDA would round
//! away or a change the HPA would ignore; tests pin down the arithmetic so a change in
//! our understanding shows up as a failing test. Source: `../shared/docs/keda-contract.md`
//! (KEDA `pkg/scalers/external_scaler.go`, Kubernetes `replica_calculator.go`).

/// The HPA's default tolerance: a change is skipped when the usage ratio is within 10 %.
pub const HPA_DEFAULT_TOLERANCE: f64 = 0.1;

/// The smallest target KEDA keeps: `%.3f` turns anything below 0.0005 into 0, which the
/// HPA then divides by.
pub const MIN_TARGET: f64 = 0.001;

/// How an HPA metric target is read. `metricType` is a trigger-level field in a
/// `ScaledObject`; KEDA never passes it to the scaler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// `desired = ceil(sum / target)` (KEDA's default for external scalers).
    AverageValue,
    /// `desired = ceil(ready_pods * value / target)`.
    Value,
}

/// What KEDA does to a metric value before the HPA sees it: `%.3f`, with NaN, ±Inf and
/// negatives turned into 0.
pub fn keda_quantize(value: f64) -> f64 {
    if !value.is_finite() || value <= 0.0 {
        return 0.0;
    }
    // `%.3f` rounds half away from zero on the decimal representation; `round()` on the
    // scaled value agrees for every value we can produce (milli-precision replica counts).
    (value * 1000.0).round() / 1000.0
}

/// The int mirror of a metric value for KEDA < 2.17, which reads only `metricValue`.
pub fn metric_value_int(value: f64) -> i64 {
    keda_quantize(value).round() as i64
}

/// The int mirror of a target (`targetSize`): the ceiling, so old KEDA never sees 0.
pub fn target_size_int(target: f64) -> i64 {
    (target.max(MIN_TARGET)).ceil() as i64
}

/// Replica count the HPA computes from the values KEDA hands it.
///
/// `values` are the raw values returned by the scaler (KEDA sums them), `current` is the
/// current replica count of the scale target and `ready_pods` the ready ones (only used
/// for `Value`). Returns `None` when the HPA would fail (target quantised to 0).
pub fn hpa_desired_replicas(
    values: &[f64],
    target: f64,
    metric_type: MetricType,
    current: u32,
    ready_pods: u32,
    tolerance: f64,
) -> Option<u32> {
    // The HPA works in milli-units (resource.Quantity), as KEDA hands them over.
    let target_milli = (keda_quantize(target) * 1000.0).round();
    if target_milli <= 0.0 {
        return None;
    }
    let sum_milli: f64 = values
        .iter()
        .map(|v| (keda_quantize(*v) * 1000.0).round())
        .sum();
    let (ratio, proposal) = match metric_type {
        MetricType::AverageValue => {
            let ratio = if current == 0 {
                f64::INFINITY
            } else {
                sum_milli / (target_milli * f64::from(current))
            };
            (ratio, (sum_milli / target_milli).ceil())
        }
        MetricType::Value => {
            let ratio = sum_milli / target_milli;
            (ratio, (ratio * f64::from(ready_pods)).ceil())
        }
    };
    // Kubernetes >= 1.33 (configurable tolerances) tests `1 - tol <= ratio <= 1 + tol`,
    // which, unlike the older `|1 - ratio| <= tol`, holds at exactly ±10 % despite
    // floating point (11/10 is 1.1000000000000000888).
    if current > 0 && (1.0 - tolerance) <= ratio && ratio <= (1.0 + tolerance) {
        return Some(current);
    }
    Some(proposal.max(0.0) as u32)
}

/// Whether the HPA would act on a wish to go from `current` to `desired` replicas when we
/// report `desired` with target 1 and `AverageValue`.
pub fn hpa_would_act(current: u32, desired: f64) -> bool {
    hpa_desired_replicas(
        &[desired],
        1.0,
        MetricType::AverageValue,
        current,
        current,
        HPA_DEFAULT_TOLERANCE,
    ) != Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_is_milli_precision_and_clamps_bad_values() {
        assert_eq!(keda_quantize(1.23449), 1.234);
        assert_eq!(keda_quantize(1.2345001), 1.235);
        assert_eq!(keda_quantize(0.0004), 0.0);
        assert_eq!(keda_quantize(0.0005), 0.001);
        assert_eq!(keda_quantize(-3.0), 0.0);
        assert_eq!(keda_quantize(f64::NAN), 0.0);
        assert_eq!(keda_quantize(f64::INFINITY), 0.0);
        assert_eq!(keda_quantize(f64::NEG_INFINITY), 0.0);
    }

    #[test]
    fn int_mirrors() {
        assert_eq!(metric_value_int(2.4), 2);
        assert_eq!(metric_value_int(2.5), 3);
        assert_eq!(metric_value_int(f64::NAN), 0);
        assert_eq!(target_size_int(1.0), 1);
        assert_eq!(target_size_int(0.25), 1);
        assert_eq!(target_size_int(0.0), 1);
        assert_eq!(target_size_int(2.5), 3);
    }

    #[test]
    fn average_value_is_ceil_of_sum_over_target() {
        let d = |vals: &[f64], cur| {
            hpa_desired_replicas(vals, 1.0, MetricType::AverageValue, cur, cur, 0.1).unwrap()
        };
        assert_eq!(d(&[3.2], 1), 4);
        assert_eq!(d(&[1.0, 2.5], 1), 4, "KEDA sums every value returned");
        assert_eq!(d(&[0.0], 3), 0);
        // KEDA's e2e expectations: threshold -> 1, 2x threshold -> 2.
        let t = 5.0;
        let e = |v, cur| hpa_desired_replicas(&[v], t, MetricType::AverageValue, cur, cur, 0.1);
        assert_eq!(e(5.0, 0), Some(1));
        assert_eq!(e(10.0, 1), Some(2));
    }

    #[test]
    fn tolerance_keeps_current_replicas() {
        // From 10 replicas, a wish for 11 is within 10 % and ignored; 12 is not.
        assert!(!hpa_would_act(10, 11.0));
        assert!(hpa_would_act(10, 12.0));
        assert!(!hpa_would_act(10, 9.0));
        assert!(hpa_would_act(10, 8.9));
        // From 0 replicas any positive wish acts.
        assert!(hpa_would_act(0, 0.5));
        // A value KEDA rounds away does not exist for the HPA.
        assert!(!hpa_would_act(2, 2.0004));
    }

    #[test]
    fn value_type_scales_with_ready_pods() {
        let d = hpa_desired_replicas(&[3.0], 2.0, MetricType::Value, 4, 4, 0.1);
        assert_eq!(d, Some(6));
        let d = hpa_desired_replicas(&[2.1], 2.0, MetricType::Value, 4, 4, 0.1);
        assert_eq!(d, Some(4), "ratio 1.05 is inside tolerance");
    }

    #[test]
    fn tiny_target_breaks_the_hpa() {
        assert_eq!(
            hpa_desired_replicas(&[1.0], 0.0004, MetricType::AverageValue, 1, 1, 0.1),
            None
        );
        assert!(
            hpa_desired_replicas(&[1.0], MIN_TARGET, MetricType::AverageValue, 1, 1, 0.1).is_some()
        );
    }
}
