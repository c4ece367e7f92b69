//! The controlled comparison of scale-down victim rules (issue 9): one fixed schedule of
//! replica counts on the first variant — the same scale-downs at the same times — run once
//! removing pods KV-aware and once in the ReplicaSet's default order; prints the prefix
//! hit rate after scale-downs and the TTFT p90 of the requests arriving within 300 s of one
//! (over the union of both runs' windows, so both are measured on the same requests).
//! `tests/sim_tiers.rs::victim_rules_compared_on_the_same_scale_downs` asserts on the same
//! setting with prefix-aware routing.
//!
//! `cargo run --release -p slo-scaler --example victims_controlled -- --trace FILE
//! [backtest flags, e.g. --routing kv-cost --slo-ttft-ms 5000]`

use clap::Parser;
use slo_scaler::commands::backtest::{BacktestArgs, DEFAULT_CONFIG_YAML, prepare};
use slo_scaler::config::Config;
use slo_scaler::sim::autoscaler::Wish;
use slo_scaler::sim::policy::{Observation, Policy};
use slo_scaler::sim::tier_metrics::ScaleToZeroReport;
use slo_scaler::sim::victims::VictimRule;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: BacktestArgs,
}

/// Replica counts on the first variant from these times on (the test's schedule).
const SCHEDULE: [(f64, u32); 5] = [(0.0, 10), (900.0, 8), (1500.0, 7), (2100.0, 6), (2700.0, 5)];

struct Steps(VictimRule);

impl Policy for Steps {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn wishes(&mut self, obs: &Observation) -> Vec<Wish> {
        let n = SCHEDULE
            .iter()
            .rev()
            .find(|(t, _)| *t <= obs.now_s)
            .map_or(SCHEDULE[0].1, |(_, n)| *n);
        let mut w = vec![Wish::replicas(f64::from(n))];
        w.resize(obs.variants.len(), Wish::replicas(0.0));
        w
    }
    fn initial(&self, default: &[u32]) -> Vec<u32> {
        let mut v = vec![0; default.len()];
        v[0] = SCHEDULE[0].1;
        v
    }
    fn min_replicas(&self, fleet_min: &[u32]) -> Vec<u32> {
        vec![0; fleet_min.len()]
    }
    fn victim_rule(&self) -> VictimRule {
        self.0
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::from_yaml(DEFAULT_CONFIG_YAML, "embedded")?;
    let p = prepare(&cli.args.trace, &config, None, &cli.args)?;
    let run = |rule| slo_scaler::sim::simulate(&p.requests, &p.spec, &mut Steps(rule));
    let kv = run(VictimRule::KvAware);
    let rs = run(VictimRule::ReplicaSetDefault);
    let (zk, zr) = (&kv.scale_to_zero, &rs.scale_to_zero);
    let union: Vec<bool> = zk
        .request_after_scale_down
        .iter()
        .zip(&zr.request_after_scale_down)
        .map(|(a, b)| *a || *b)
        .collect();
    let p90 = |z: &ScaleToZeroReport| {
        let mut v: Vec<f64> = z
            .request_ttft_s
            .iter()
            .zip(&union)
            .filter_map(|(t, &u)| if u { *t } else { None })
            .collect();
        v.sort_by(f64::total_cmp);
        v.get((v.len() * 9) / 10).copied().unwrap_or(f64::NAN)
    };
    for (name, r, z) in [("kv-aware", &kv, zk), ("replicaset-default", &rs, zr)] {
        println!(
            "{name:<19} scale-downs {}  hit rate after {:.2} %  TTFT p90 after {:.3} s  (all: TTFT p90 {:.0} ms, both {:.2} %)",
            z.scale_downs,
            100.0 * z.prefix_hit_rate_after_scale_down,
            p90(z),
            r.ttft_ms.p90.unwrap_or(f64::NAN),
            100.0 * r.attainment.both,
        );
    }
    Ok(())
}
