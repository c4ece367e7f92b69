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
use slo_scaler::sim::victims::compare_on_schedule;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: BacktestArgs,
}

/// Replica counts on the first variant from these times on (the test's schedule).
const SCHEDULE: [(f64, u32); 5] = [(0.0, 10), (900.0, 8), (1500.0, 7), (2100.0, 6), (2700.0, 5)];

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::from_yaml(DEFAULT_CONFIG_YAML, "embedded")?;
    let p = prepare(&cli.args.trace, &config, None, &cli.args)?;
    let c = compare_on_schedule(&p.requests, &p.spec, &SCHEDULE);
    for (name, run) in [
        ("kv-aware", &c.kv_aware),
        ("replicaset-default", &c.replicaset),
    ] {
        let (r, z) = (&run.report, &run.report.scale_to_zero);
        println!(
            "{name:<19} scale-downs {}  hit rate after {:.2} %  TTFT p90 after {:.3} s  (all: TTFT p90 {:.0} ms, both {:.2} %)",
            z.scale_downs,
            100.0 * z.prefix_hit_rate_after_scale_down,
            run.ttft_p90_after_s,
            r.ttft_ms.p90.unwrap_or(f64::NAN),
            100.0 * r.attainment.both,
        );
    }
    Ok(())
}
