//! Calibration and accuracy on synthetic series whose truth is known: conformal intervals
//! reach their nominal coverage, Holt-Winters beats the baselines where there is a daily
//! cycle to learn, and the residual window's quantile ranks are the split-conformal ones.

use forecasting::forecast::conformal::ResidualWindow;
use forecasting::forecast::evaluation::{EvalConfig, evaluate, pick_moving_average_window};

const DAY: usize = 144;

/// Deterministic noise (xorshift) with a heavy right tail: uniform most of the time, and a
/// 3x-scale excursion one point in twenty, like demand spikes.
struct Noise(u64);
impl Noise {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn spiky(&mut self) -> f64 {
        let base = self.uniform() * 2.0 - 1.0;
        if self.uniform() < 0.05 {
            base.abs() * 3.0
        } else {
            base
        }
    }
}

/// 10 days at 600 s: daily cycle, a slow weekly drift and spiky noise of +-12 %.
fn synthetic(seed: u64) -> Vec<f64> {
    let mut noise = Noise(seed);
    (0..10 * DAY)
        .map(|i| {
            let day = (i % DAY) as f64 / DAY as f64 * std::f64::consts::TAU;
            let drift = 1.0 + 0.1 * (i as f64 / (7.0 * DAY as f64) * std::f64::consts::TAU).sin();
            let mean = drift * (200.0 + 120.0 * day.sin() + 40.0 * (2.0 * day).cos());
            (mean * (1.0 + 0.12 * noise.spiky())).max(0.0)
        })
        .collect()
}

#[test]
fn intervals_reach_nominal_coverage_and_the_selection_follows_holt_winters_on_a_daily_cycle() {
    for (seed, horizon_s) in [(1, 600.0), (2, 1800.0)] {
        let series = synthetic(seed);
        let report = evaluate(&series, &EvalConfig::new(600.0, horizon_s)).unwrap();
        assert_eq!(report.selected, "adaptive");
        assert_eq!(report.methods[0].name, "adaptive");
        assert_eq!(report.methods[1].name, "holt_winters");
        // On a clean daily cycle Holt-Winters is the candidate to pick: the selection must
        // not lose much against it by switching to smoothing.
        assert!(
            report.methods[0].mae <= 1.05 * report.methods[1].mae,
            "h {horizon_s}: adaptive {} vs holt_winters {}",
            report.methods[0].mae,
            report.methods[1].mae
        );
        assert_eq!(report.warmup_points, 2 * DAY);
        let hw = &report.methods[0];
        let sn = report
            .methods
            .iter()
            .find(|m| m.name == "seasonal_naive")
            .unwrap();
        let ma = report
            .methods
            .iter()
            .find(|m| m.name == "moving_average")
            .unwrap();
        assert!(
            (0.86..=0.94).contains(&hw.coverage_90) && (0.92..=0.98).contains(&hw.coverage_95),
            "h {horizon_s}: coverage {} / {}",
            hw.coverage_90,
            hw.coverage_95
        );
        assert!(
            hw.mae < 0.85 * sn.mae,
            "h {horizon_s}: {} vs sn {}",
            hw.mae,
            sn.mae
        );
        assert!(
            hw.mae < 0.95 * ma.mae,
            "h {horizon_s}: {} vs ma {}",
            hw.mae,
            ma.mae
        );
        assert!(hw.mean_width_95 > 0.0 && hw.pinball_p95 > 0.0);
    }
}

#[test]
fn short_series_without_a_season_still_evaluates() {
    // One hour at 60 s: no daily season can be learnt; every method must still report.
    let mut noise = Noise(4);
    let series: Vec<f64> = (0..60).map(|_| 2.0 + noise.uniform()).collect();
    let report = evaluate(&series, &EvalConfig::new(60.0, 600.0)).unwrap();
    assert_eq!(report.horizon_s, 600.0);
    assert_eq!(report.warmup_points, 15);
    assert_eq!(report.points, 60 - 15 - 10 + 1);
    for m in &report.methods {
        assert!(m.mae.is_finite() && m.coverage_95 > 0.5, "{m:?}");
    }
    let too_short = evaluate(&series[..20], &EvalConfig::new(60.0, 600.0));
    assert!(too_short.is_err());
}

#[test]
fn moving_average_window_is_picked_on_the_warmup_only() {
    // Pure noise around a constant: the longest window wins; a random walk: the shortest.
    let mut noise = Noise(8);
    let flat: Vec<f64> = (0..400).map(|_| 10.0 + noise.uniform()).collect();
    assert_eq!(pick_moving_average_window(&flat, 1), 48);
    let mut level = 10.0;
    let walk: Vec<f64> = (0..400)
        .map(|_| {
            level += 3.0 * (noise.uniform() - 0.5);
            level
        })
        .collect();
    assert_eq!(pick_moving_average_window(&walk, 1), 1);
}

#[test]
fn residual_window_quantiles_use_split_conformal_ranks() {
    let mut w = ResidualWindow::new(39);
    let mut scratch = Vec::new();
    for r in (1..=39).rev() {
        w.push(f64::from(r), &mut scratch);
    }
    // The cache is refreshed lazily; force it to read exact ranks.
    w.refresh(&mut scratch);
    // ceil(40 x 0.975) = 39th smallest; floor(40 x 0.025) = 1st.
    assert_eq!(w.quantile(0.975), Some(39.0));
    assert_eq!(w.quantile(0.025), Some(1.0));
    assert_eq!(w.quantile(0.5), Some(20.0));
    assert_eq!(w.quantile(0.9), Some(36.0));
    // 0.99 needs ceil(40 x 0.99) = 40 > 39 residuals: not honest yet.
    assert_eq!(w.quantile(0.99), None);
    assert_eq!(w.quantile(0.01), None);
    // Only the cached levels are served.
    assert_eq!(w.quantile(0.7), None);
    // Full: the oldest (39) is evicted, NaN ignored.
    w.push(100.0, &mut scratch);
    w.push(f64::NAN, &mut scratch);
    w.refresh(&mut scratch);
    assert_eq!(w.len(), 39);
    assert_eq!(w.quantile(0.975), Some(100.0));
    assert_eq!(w.quantile(0.025), Some(1.0));
    assert_eq!(w.quantile(0.95), Some(38.0));
}
