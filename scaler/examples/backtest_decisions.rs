//! Replays a backtest with the `slo-scaler` policy and prints every decision's reason and
//! numbers (the backtest reports only replica counts): what the pipeline covered, at which
//! capacity, and why. Also prints, per minute, the requests that missed the SLO by served
//! output length. Diagnostic for issue 7.
//!
//! `cargo run --release -p slo-scaler --example backtest_decisions -- --trace FILE [backtest
//! flags]`

use std::collections::BTreeMap;

use clap::Parser;
use slo_scaler::commands::backtest::{BacktestArgs, DEFAULT_CONFIG_YAML, prepare};
use slo_scaler::config::Config;
use slo_scaler::decision::ModelOutcome;
use slo_scaler::pipeline::Fleet;
use slo_scaler::sim::autoscaler::{ScalingSettings, Wish};
use slo_scaler::sim::metrics::meets_both;
use slo_scaler::sim::policy::slo_scaler::pipeline_fleet;
use slo_scaler::sim::policy::{Observation, Policy};
use slo_scaler::sim::simulate_with_outcomes;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: BacktestArgs,
}

struct Diag {
    fleet: Fleet,
    names: Vec<String>,
    last: Vec<Wish>,
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
            let mut w = vec![Wish::replicas(0.0); self.names.len()];
            w[0] = Wish::replicas(n);
            return w;
        }
        let serving: BTreeMap<String, u32> = self
            .names
            .iter()
            .zip(&obs.variants)
            .map(|(n, v)| (n.clone(), v.ready))
            .collect();
        let ttft_s = (obs.gateway_waiting == 0)
            .then_some(obs.ttft_p90_ms)
            .flatten()
            .map(|x| x / 1e3);
        let tpot_s = obs.tpot_p90_ms.map(|x| x / 1e3);
        let waiting: u64 = obs.variants.iter().map(|v| v.waiting).sum();
        // As `sim::policy::slo_scaler::PipelineLoop`: the pool running at the start.
        let running: BTreeMap<String, u32> = self
            .names
            .iter()
            .zip(&obs.variants)
            .map(|(n, v)| (n.clone(), v.ready + v.starting))
            .collect();
        self.fleet.know_running("model", obs.now_s, running);
        self.fleet.observe("model", obs.now_s, obs.arrivals_per_s);
        self.fleet.observe_waiting("model", Some(waiting as f64));
        // DIAG_NO_LATENCY=1: the pipeline without the closed loop (what the correction adds).
        if std::env::var_os("DIAG_NO_LATENCY").is_none() {
            self.fleet
                .observe_latency("model", ttft_s, tpot_s, Some(&serving));
        }
        let d = self.fleet.tick(obs.now_s);
        if let Some(ModelOutcome::Planned(vs)) = d.first().map(|d| &d.outcome) {
            for (i, name) in self.names.iter().enumerate() {
                if let Some(v) = vs.iter().find(|v| &v.variant == name) {
                    // DIAG_EVERY=1: every sync, not only changes (to decompose a fleet's
                    // replica-hours into forecast, burst, backlog, correction and hold).
                    if (self.last[i].value - v.desired_replicas).abs() > 1e-9
                        || obs.now_s < 1.0
                        || std::env::var_os("DIAG_EVERY").is_some()
                    {
                        println!(
                            "t {:6.0} rate {:6.2} ttft90 {:?} tpot90 {:?} | {name} -> {} | {} | {:?} | ready {} starting {}",
                            obs.now_s,
                            obs.arrivals_per_s,
                            obs.ttft_p90_ms.map(|x| x.round()),
                            obs.tpot_p90_ms.map(|x| x.round()),
                            v.desired_replicas,
                            v.reason,
                            v.details,
                            obs.variants[i].ready,
                            obs.variants[i].starting
                        );
                    }
                    self.last[i] = Wish::replicas(v.desired_replicas);
                }
            }
        }
        self.last.clone()
    }
}

fn main() {
    let cli = Cli::parse();
    let config = Config::from_yaml(DEFAULT_CONFIG_YAML, "embedded").unwrap();
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
        // The fleet the `slo-scaler` policy runs, history fed.
        fleet: pipeline_fleet(ctx, None).expect("the embedded fleet meets its SLO"),
        names: ctx.variants.iter().map(|v| v.name.clone()).collect(),
        last: ctx
            .variants
            .iter()
            .map(|v| Wish::replicas(f64::from(v.min)))
            .collect(),
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
