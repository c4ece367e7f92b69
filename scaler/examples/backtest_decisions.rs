//! Replays a backtest with the `slo-scaler` policy and prints every decision's reason and
//! numbers (the backtest reports only replica counts): what the pipeline covered, at which
//! capacity, and why. Also prints, per minute, the requests that missed the SLO by served
//! output length. Diagnostic for issue 7.
//!
//! `cargo run --release -p slo-scaler --example backtest_decisions -- --trace FILE [backtest
//! flags]`; `--config` is honoured, and `DIAG_TIERS=1` runs the pipeline with the config's
//! `sizing.tiers` (the `slo-scaler-warm` policy's pipeline, its tier reasons printed).

use std::collections::BTreeMap;

use clap::Parser;
use slo_scaler::commands::backtest::{BacktestArgs, DEFAULT_CONFIG_YAML, prepare};
use slo_scaler::config::Config;
use slo_scaler::sim::autoscaler::{ScalingSettings, Wish};
use slo_scaler::sim::metrics::meets_both;
use slo_scaler::sim::policy::slo_scaler::{PipelineLoop, feed_engine_metrics};
use slo_scaler::sim::policy::{Observation, Policy};
use slo_scaler::sim::simulate_with_outcomes;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: BacktestArgs,
}

/// `slo-scaler` exactly (its `PipelineLoop` and engine metrics), printing each decision.
struct Diag {
    core: PipelineLoop,
    /// The wish printed last per variant (to print changes only).
    printed: Vec<f64>,
}

impl Policy for Diag {
    fn name(&self) -> &str {
        "slo-scaler"
    }
    fn min_replicas(&self, fleet_min: &[u32]) -> Vec<u32> {
        fleet_min.to_vec()
    }
    // As `sim::policy::SloScaler`: the HPA behaviour our ScaledObjects set.
    fn scaling(&self, base: ScalingSettings) -> ScalingSettings {
        base.rendered()
    }
    fn wishes(&mut self, obs: &Observation) -> Vec<Wish> {
        // DIAG_FLOOR=N: ask for N replicas of the first variant from t = 0 (what any policy
        // could have by cold-start time), to see which misses no policy avoids from the
        // common warm pool.
        if let Some(n) = std::env::var("DIAG_FLOOR")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
        {
            let mut w = vec![Wish::replicas(0.0); self.core.names().len()];
            w[0] = Wish::replicas(n);
            return w;
        }
        // DIAG_NO_LATENCY=1: the pipeline without the closed loop (what the correction adds).
        let latency = std::env::var_os("DIAG_NO_LATENCY").is_none();
        // DIAG_EVERY=1: every sync, not only changes (to decompose a fleet's replica-hours
        // into forecast, burst, backlog, correction and hold).
        let every = std::env::var_os("DIAG_EVERY").is_some();
        let names = self.core.names().to_vec();
        let printed = &mut self.printed;
        self.core.plan(
            obs,
            |fleet| feed_engine_metrics(fleet, &names, obs, latency),
            |i, v| {
                if (printed[i] - v.desired_replicas).abs() > 1e-9 || obs.now_s < 1.0 || every {
                    println!(
                        "t {:6.0} rate {:6.2} ttft90 {:?} tpot90 {:?} | {} -> {} | {} | {:?} | ready {} starting {}",
                        obs.now_s,
                        obs.arrivals_per_s,
                        obs.ttft_p90_ms.map(|x| x.round()),
                        obs.tpot_p90_ms.map(|x| x.round()),
                        names[i],
                        v.desired_replicas,
                        v.reason,
                        v.details,
                        obs.variants[i].ready,
                        obs.variants[i].starting
                    );
                }
                printed[i] = v.desired_replicas;
            },
        )
    }
}

fn main() {
    let cli = Cli::parse();
    let config = match &cli.args.config {
        Some(path) => Config::from_file(path).unwrap(),
        None => Config::from_yaml(DEFAULT_CONFIG_YAML, "embedded").unwrap(),
    };
    let prepared = prepare(&cli.args.trace, &config, None, &cli.args).unwrap();
    let ctx = &prepared.ctx;
    for i in 0..ctx.variants.len() {
        println!(
            "{}: capacity {:.3} req/s",
            ctx.variants[i].name,
            ctx.capacity_rps(i)
        );
    }
    let mut policy = Diag {
        core: PipelineLoop::new(ctx, std::env::var_os("DIAG_TIERS").map(|_| ctx.tiers))
            .expect("the fleet meets its SLO"),
        printed: ctx.variants.iter().map(|v| f64::from(v.min)).collect(),
    };
    let (report, outcomes) = simulate_with_outcomes(
        &prepared.requests,
        &prepared.spec,
        &mut policy,
        &mut |_, _| {},
    );
    println!("both {:.4} cost {:.2}", report.attainment.both, report.cost);
    // Misses per minute, by output length band.
    let mut per_min: BTreeMap<usize, [u32; 5]> = BTreeMap::new();
    for (r, o) in prepared.requests.iter().zip(&outcomes) {
        if !meets_both(o, prepared.spec.slo.ttft_ms, prepared.spec.slo.tpot_ms) {
            let band = match r.output_tokens {
                0..=8 => 0,
                9..=16 => 1,
                17..=32 => 2,
                33..=128 => 3,
                _ => 4,
            };
            per_min.entry((r.arrival_s / 60.0) as usize).or_default()[band] += 1;
        }
    }
    println!("misses per minute by output length [≤8, 9–16, 17–32, 33–128, >128]");
    for (m, c) in per_min {
        println!("min {m:3}: {c:?}");
    }
}
