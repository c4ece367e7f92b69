//! Pure arithmetic on samples: counter rates with reset handling and quantiles from
//! cumulative histogram buckets. No I/O; both the direct-scrape source and the tests use
//! these, and they mirror what PromQL's `rate()` and `histogram_quantile()` do so the two
//! sources agree on the same data.

/// Increase of a counter over a run of samples `(t_s, value)` in time order, treating
/// any decrease as a reset to zero (the engine restarted): the increase after a reset is
/// the new value itself, as in PromQL. Non-finite samples are skipped, not summed: a
/// NaN counter would otherwise poison the whole rate.
pub fn counter_increase(samples: &[(f64, f64)]) -> f64 {
    let mut finite = samples
        .iter()
        .filter(|(t, v)| t.is_finite() && v.is_finite());
    let Some(&(_, mut prev)) = finite.next() else {
        return 0.0;
    };
    let mut total = 0.0;
    for &(_, v) in finite {
        total += if v < prev { v } else { v - prev };
        prev = v;
    }
    total
}

/// Per-second rate of a counter over its samples, or `None` with fewer than two finite
/// samples or no elapsed time (a rate needs two points; one scrape is not zero demand).
pub fn counter_rate_per_s(samples: &[(f64, f64)]) -> Option<f64> {
    let finite: Vec<(f64, f64)> = samples
        .iter()
        .copied()
        .filter(|(t, v)| t.is_finite() && v.is_finite())
        .collect();
    if finite.len() < 2 {
        return None;
    }
    let span_s = finite[finite.len() - 1].0 - finite[0].0;
    if span_s <= 0.0 {
        return None;
    }
    Some(counter_increase(&finite) / span_s)
}

/// The `q`-quantile of a cumulative histogram given as `(upper_bound, cumulative_count)`
/// pairs (any order; `+Inf` must be present), interpolated linearly inside the bucket as
/// PromQL's `histogram_quantile` does. `None` when the histogram holds no observations
/// (no requests in the window: latency is unknown, not zero) or lacks a `+Inf` bucket.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    if !(0.0..=1.0).contains(&q) {
        return None;
    }
    let mut b: Vec<(f64, f64)> = buckets
        .iter()
        .copied()
        .filter(|(le, c)| !le.is_nan() && c.is_finite())
        .collect();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    let &(last_le, total) = b.last()?;
    if last_le != f64::INFINITY || total <= 0.0 {
        return None;
    }
    // Cumulative counts must not decrease; a scrape racing an observation can break that
    // slightly, so enforce monotonicity as PromQL does.
    for i in 1..b.len() {
        if b[i].1 < b[i - 1].1 {
            b[i].1 = b[i - 1].1;
        }
    }
    let rank = q * total;
    let idx = b.iter().position(|(_, c)| *c >= rank)?;
    if idx == b.len() - 1 {
        // The quantile falls in the +Inf bucket: the best bound known is the last finite one.
        return if b.len() >= 2 {
            Some(b[b.len() - 2].0)
        } else {
            None
        };
    }
    let (upper, count) = b[idx];
    let (lower, below) = if idx == 0 {
        (if upper > 0.0 { 0.0 } else { upper }, 0.0)
    } else {
        b[idx - 1]
    };
    let in_bucket = count - below;
    if in_bucket <= 0.0 {
        return Some(upper);
    }
    Some(lower + (upper - lower) * (rank - below) / in_bucket)
}

/// Bucket-wise increase between two cumulative histograms `(le, count)`. If any bucket
/// went down, the engine restarted between the two scrapes and the whole histogram
/// counts from zero again, so the new counts are the increase (as PromQL treats a reset).
pub fn histogram_increase(old: &[(f64, f64)], new: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let before = |le: f64| {
        old.iter()
            .find(|(l, _)| l.total_cmp(&le).is_eq())
            .map(|&(_, c)| c)
    };
    let reset = new.iter().any(|&(le, c)| before(le).is_some_and(|b| c < b));
    new.iter()
        .map(|&(le, c)| match before(le) {
            Some(b) if !reset => (le, c - b),
            _ => (le, c),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_rate_handles_resets_and_nan() {
        let s = [(0.0, 100.0), (10.0, 150.0), (20.0, 20.0), (30.0, 50.0)];
        // 50 before the reset, 20 at the reset (counted from zero), 30 after.
        assert_eq!(counter_increase(&s), 100.0);
        assert_eq!(counter_rate_per_s(&s), Some(100.0 / 30.0));
        let with_nan = [(0.0, 10.0), (5.0, f64::NAN), (10.0, 30.0)];
        assert_eq!(counter_rate_per_s(&with_nan), Some(2.0));
        assert_eq!(
            counter_rate_per_s(&[(0.0, 5.0)]),
            None,
            "one sample is no rate"
        );
        assert_eq!(counter_rate_per_s(&[(3.0, 5.0), (3.0, 9.0)]), None);
        assert_eq!(counter_rate_per_s(&[(0.0, 5.0), (10.0, 5.0)]), Some(0.0));
    }

    #[test]
    fn quantile_interpolates_like_promql() {
        let b = [
            (0.1, 50.0),
            (0.5, 90.0),
            (1.0, 100.0),
            (f64::INFINITY, 100.0),
        ];
        // rank 45 lies in the first bucket: 0 + 0.1 × 45/50.
        assert!((histogram_quantile(0.45, &b).unwrap() - 0.09).abs() < 1e-12);
        // rank 90 -> upper bound of the second bucket.
        assert!((histogram_quantile(0.9, &b).unwrap() - 0.5).abs() < 1e-12);
        // rank 95 -> half-way through (0.5, 1.0].
        assert!((histogram_quantile(0.95, &b).unwrap() - 0.75).abs() < 1e-12);
    }

    #[test]
    fn quantile_of_empty_or_malformed_histograms_is_unknown() {
        let empty = [(0.1, 0.0), (f64::INFINITY, 0.0)];
        assert_eq!(histogram_quantile(0.9, &empty), None);
        assert_eq!(histogram_quantile(0.9, &[(0.1, 3.0)]), None, "no +Inf");
        let in_inf = [(0.1, 1.0), (f64::INFINITY, 10.0)];
        assert_eq!(histogram_quantile(0.9, &in_inf), Some(0.1));
        // Non-monotonic counts (scrape race) are repaired, not trusted.
        let racy = [(0.1, 5.0), (0.2, 4.0), (f64::INFINITY, 10.0)];
        assert!(histogram_quantile(0.5, &racy).unwrap() <= 0.2);
    }

    #[test]
    fn histogram_increase_resets_per_bucket() {
        let old = [(0.1, 10.0), (f64::INFINITY, 20.0)];
        let grown = [(0.1, 15.0), (f64::INFINITY, 30.0)];
        assert_eq!(
            histogram_increase(&old, &grown),
            vec![(0.1, 5.0), (f64::INFINITY, 10.0)]
        );
        // +Inf went down: the engine restarted; everything counts from zero.
        let restarted = [(0.1, 3.0), (f64::INFINITY, 5.0)];
        assert_eq!(histogram_increase(&old, &restarted), restarted.to_vec());
    }
}
