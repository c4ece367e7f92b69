//! Speed benchmark of issue 3, on one core:
//! 1. one online update plus one forecast for each of 10,000 series (target < 50 ms);
//! 2. fitting Holt-Winters on 14 days at 1-minute resolution, 20,160 points (target < 5 ms).
//!
//! Run: `cargo run --release -p forecasting --example forecast_bench`. Synthetic series (a
//! daily cycle with noise), so the figures do not depend on any data set. The forecasters use
//! the default configuration, self-refit history included; no daily refit falls inside the
//! measured rounds (its cost is the fit figure spread over a day of updates). The default
//! method (`Adaptive`: Holt-Winters plus the SES bank and the per-horizon selection) runs side
//! by side with Holt-Winters alone, so the cost of the selection reads as a ratio.
use std::hint::black_box;
use std::time::Instant;

use forecasting::forecast::{Forecaster, ForecasterConfig, HoltWintersConfig, Method};

/// Series updated per round (override with the first argument, e.g. 100 to see the cost
/// without cache misses).
const SERIES: usize = 10_000;
const ROUNDS: usize = 30;

/// Deterministic noise in [0, 1) (xorshift).
struct Noise(u64);
impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn demand(i: usize, per_day: usize, scale: f64, noise: &mut Noise) -> f64 {
    let phase = (i % per_day) as f64 / per_day as f64 * std::f64::consts::TAU;
    scale * (10.0 + 6.0 * phase.sin()) * (0.9 + 0.2 * noise.next())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn online(method: Method, interval_s: f64, series: usize, self_refit: bool) {
    let per_day = (86_400.0 / interval_s) as usize;
    let mut config = ForecasterConfig::new(interval_s, method).expect("valid config");
    if !self_refit {
        config.refit_every_steps = None;
    }
    let mut template = Forecaster::new(config).expect("valid config");
    let mut noise = Noise(42);
    // Three days: fitted at two, then a day of residuals so every forecast is calibrated.
    for i in 0..3 * per_day {
        template.observe(demand(i, per_day, 1.0, &mut noise));
    }
    assert!(template.holt_winters().is_some());
    // Clones would refresh their cached quantiles in the same round; real series drift
    // apart, so give each a few extra points to spread the refreshes (every 16 points).
    let mut fleet: Vec<Forecaster> = (0..series)
        .map(|s| {
            let mut f = template.clone();
            for i in 0..s % 16 {
                f.observe(demand(3 * per_day + i, per_day, 1.0, &mut noise));
            }
            f
        })
        .collect();
    let scales: Vec<f64> = (0..series).map(|s| 0.5 + (s % 97) as f64 / 20.0).collect();
    let mut per_round_ms = Vec::with_capacity(ROUNDS);
    let mut sink = 0.0;
    for round in 0..ROUNDS {
        let values: Vec<f64> = scales
            .iter()
            .map(|&s| demand(3 * per_day + round, per_day, s, &mut noise))
            .collect();
        let start = Instant::now();
        for (f, &y) in fleet.iter_mut().zip(&values) {
            f.observe(y);
            let fc = f.forecast(600.0).expect("valid horizon");
            sink += fc.p95();
        }
        per_round_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    black_box(sink);
    let mean = per_round_ms.iter().sum::<f64>() / ROUNDS as f64;
    per_round_ms.sort_by(f64::total_cmp);
    println!(
        "online {}, {series} series at {interval_s} s, self-refit history {}, update + \
         forecast(600 s) per series: \
         min {:.2} ms, mean {mean:.2} ms, median {:.2} ms, p90 {:.2} ms, max {:.2} ms over \
         {ROUNDS} rounds (target < 50 ms)",
        method.name(),
        if self_refit { "kept" } else { "off" },
        per_round_ms[0],
        percentile(&per_round_ms, 0.5),
        percentile(&per_round_ms, 0.9),
        per_round_ms[ROUNDS - 1]
    );
}

fn fitting(fit_horizon_steps: usize) {
    let per_day = 1440;
    let mut noise = Noise(7);
    let mut config = HoltWintersConfig::new(per_day);
    config.fit_horizon_steps = fit_horizon_steps;
    let series: Vec<Vec<f64>> = (0..10)
        .map(|s| {
            (0..14 * per_day)
                .map(|i| demand(i, per_day, 1.0 + s as f64, &mut noise))
                .collect()
        })
        .collect();
    assert_eq!(series[0].len(), 20_160);
    let mut ms = Vec::new();
    for _ in 0..3 {
        for history in &series {
            let start = Instant::now();
            let model = config.fit(black_box(history)).expect("enough history");
            ms.push(start.elapsed().as_secs_f64() * 1e3);
            black_box(model.params());
        }
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "fit Holt-Winters on 20,160 points (14 days at 60 s), fit horizon {fit_horizon_steps} \
         step(s): median {:.2} ms, max {:.2} ms per series over {} fits (target < 5 ms)",
        percentile(&ms, 0.5),
        ms[ms.len() - 1],
        ms.len()
    );
}

fn main() {
    let series = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("series count"))
        .unwrap_or(SERIES);
    for self_refit in [true, false] {
        for interval_s in [60.0, 600.0] {
            for method in [Method::Adaptive, Method::HoltWinters] {
                online(method, interval_s, series, self_refit);
            }
        }
    }
    fitting(1);
    fitting(10);
}
