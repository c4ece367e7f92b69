//! Warm pools and KV-cache-aware scale-down in the simulator (issue 9), on real traces read
//! at run time from `../shared/data` (or `SLO_SCALER_DATA_DIR`; skipped with a message when
//! absent): the warm pool with its default settings against plain scale-to-zero on three
//! ServeGen clients with idle spells (133, the issue's, and 110 on their first day; 45 on
//! its second with the first as history; the defaults come from prices, not from these),
//! and KV-aware victims against the ReplicaSet's default on Mooncake.

use std::path::PathBuf;

use slo_scaler::commands::backtest::{
    BacktestArgs, DEFAULT_CONFIG_YAML, RoutingArg, policy_names, prepare, run_policies,
};
use slo_scaler::config::Config;
use slo_scaler::sim::metrics::SimReport;
use slo_scaler::tiers::TierSettings;

fn args(trace: PathBuf, start_s: f64, duration_s: f64) -> BacktestArgs {
    slo_scaler_integration::backtest_args(trace, start_s, duration_s)
}

fn data() -> Option<PathBuf> {
    slo_scaler_integration::shared_data()
}

fn run(a: &BacktestArgs, policies: &str, tiers: Option<TierSettings>) -> Vec<SimReport> {
    let mut config = Config::from_yaml(DEFAULT_CONFIG_YAML, "embedded").unwrap();
    if let Some(t) = tiers {
        config.sizing.tiers = t;
    }
    let p = prepare(&a.trace, &config, None, a).unwrap();
    run_policies(&p, &policy_names(policies).unwrap(), |_, _| {}).unwrap()
}

/// The first target, waits half: ≥ 90 % fewer requests waiting on a cold start
/// than plain scale-to-zero (which must have had some to remove).
fn assert_fewer_cold_waits(plain: &SimReport, warm: &SimReport) {
    assert!(
        plain.requests_waited_on_cold_start > 100,
        "plain scale-to-zero goes cold between spells: {}",
        plain.requests_waited_on_cold_start
    );
    assert!(
        warm.requests_waited_on_cold_start * 10 <= plain.requests_waited_on_cold_start,
        "≥ 90 % fewer cold-start waits: {} vs {}",
        warm.requests_waited_on_cold_start,
        plain.requests_waited_on_cold_start
    );
}

/// The first target, cost half: ≤ 10 % extra GPU cost over plain scale-to-zero,
/// sleeping pods billed as full GPUs.
fn assert_cost_within_ten_percent(plain: &SimReport, warm: &SimReport) {
    assert!(
        warm.cost <= 1.10 * plain.cost,
        "≤ 10 % extra GPU cost: {} vs {}",
        warm.cost,
        plain.cost
    );
}

/// Plain scale-to-zero against the warm pool with the default `sizing.tiers` on one day of
/// a ServeGen m-large client; checks the cold-start target and returns
/// `(plain, warm)`.
fn warm_pool_vs_plain(client: u32) -> Option<(SimReport, SimReport)> {
    let data = data()?;
    let trace = data.join(format!(
        "traces/servegen/language/m-large/chunk-{client}-trace.csv"
    ));
    let a = args(trace, 0.0, 86_400.0);
    let mut r = run(&a, "scale-to-zero,slo-scaler-warm", None);
    let warm = r.pop().unwrap();
    let plain = r.pop().unwrap();
    eprintln!(
        "client {client}: plain waited {} cost {:.2} idle {}/{} attainment {:.4}; warm waited {} on wake {} cost {:.2} warm GPU-h {:.2} attainment {:.4}",
        plain.requests_waited_on_cold_start,
        plain.cost,
        plain.scale_to_zero.idle_spells,
        plain.scale_to_zero.idle_spells_cold,
        plain.attainment.both,
        warm.requests_waited_on_cold_start,
        warm.scale_to_zero.requests_waited_on_wake,
        warm.cost,
        warm.scale_to_zero.warm_gpu_hours,
        warm.attainment.both,
    );
    assert!(!plain.scale_to_zero.tiers && warm.scale_to_zero.tiers);
    assert_fewer_cold_waits(&plain, &warm);
    // Plain goes cold in several idle spells; the warm pool in fewer (it goes cold where
    // the learnt return forecast says nobody comes back, and is sometimes wrong).
    assert!(plain.scale_to_zero.idle_spells_cold > 0);
    assert!(
        warm.scale_to_zero.idle_spells_cold < plain.scale_to_zero.idle_spells_cold,
        "{} vs {}",
        warm.scale_to_zero.idle_spells_cold,
        plain.scale_to_zero.idle_spells_cold
    );
    assert!(warm.scale_to_zero.wakes > 0 && warm.scale_to_zero.warm_gpu_hours > 0.0);
    // Every planned pod serves at the default warm cost fraction: no attainment lost to
    // sleeping pods (it was 5.7 points lower when they slept).
    assert!(
        warm.attainment.both >= plain.attainment.both - 0.002,
        "{} vs {}",
        warm.attainment.both,
        plain.attainment.both
    );
    Some((plain, warm))
}

#[test]
fn the_default_warm_pool_removes_cold_start_waits_after_idle_spells() {
    let Some((plain, warm)) = warm_pool_vs_plain(133) else {
        return;
    };
    // Sleeping pods billed as full GPUs: measured +8.9 % (+13.9 % with the day-long TTL
    // alone): the pod goes cold once the idle spell outlasts the spells seen before
    // (docs/BENCHMARKS.md).
    assert_cost_within_ten_percent(&plain, &warm);
}

#[test]
fn the_defaults_hold_on_a_client_they_were_not_chosen_on() {
    let Some((plain, warm)) = warm_pool_vs_plain(110) else {
        return;
    };
    // Measured +9.4 % with sleeping pods billed in full.
    assert_cost_within_ten_percent(&plain, &warm);
}

/// Day 2 of client 45 with day 1 as history (as `serve` backfills it): the time-of-day
/// return forecast lets the nights go cold and starts a pod ahead of the morning return,
/// so both issue targets hold (measured −100 % waits at +5.3 %; with the day-long TTL
/// alone it was +28.9 %, docs/BENCHMARKS.md).
#[test]
fn a_day_of_history_lets_nights_go_cold_without_cold_start_waits() {
    let Some(data) = data() else { return };
    let trace = data.join("traces/servegen/language/m-large/chunk-45-trace.csv");
    let a = args(trace, 86_400.0, 86_400.0);
    let mut r = run(&a, "scale-to-zero,slo-scaler-warm", None);
    let (warm, plain) = (r.pop().unwrap(), r.pop().unwrap());
    eprintln!(
        "client 45 day 2: plain waited {} cost {:.2}; warm waited {} cost {:.2} warm GPU-h {:.2}",
        plain.requests_waited_on_cold_start,
        plain.cost,
        warm.requests_waited_on_cold_start,
        warm.cost,
        warm.scale_to_zero.warm_gpu_hours
    );
    assert_fewer_cold_waits(&plain, &warm);
    assert_cost_within_ten_percent(&plain, &warm);
    // Not by keeping nothing: the pool still sleeps and wakes through the day.
    assert!(warm.scale_to_zero.wakes > 0 && warm.scale_to_zero.warm_gpu_hours > 0.5);
}

#[test]
fn tiered_policies_on_mooncake_report_their_band_and_keep_planned_pods_serving() {
    let Some(data) = data() else { return };
    let trace = data.join("traces/mooncake/conversation_trace.jsonl");
    // From minute 10: the first ten minutes feed the forecaster (as `serve` backfills
    // history), so the run does not open on a 1-replica fleet under full load, whose
    // queue would dominate every TTFT percentile whatever the victims.
    let mut a = args(trace, 600.0, 3000.0);
    a.routing = RoutingArg::PrefixAware;
    a.slo_ttft_ms = Some(5000.0);
    a.timeline = true;
    let r = run(&a, "slo-scaler-warm,slo-scaler-warm-rs", None);
    // The tiered policies run the same pipeline and report its forecast band for the plot
    // once the forecaster has data (after the first sync).
    for report in &r {
        let with_band = report
            .timeline
            .iter()
            .filter(|p| p.forecast.is_some())
            .count();
        assert!(
            with_band + 1 >= report.timeline.len() && with_band > 0,
            "{}: {with_band} of {} syncs with a forecast band",
            report.name,
            report.timeline.len()
        );
    }
    let (kv, rs) = (&r[0].scale_to_zero, &r[1].scale_to_zero);
    for z in [kv, rs] {
        eprintln!(
            "{}: {} scale-downs, {} sleeps, hit rate after {:.4}, TTFT after (own windows) {:?}, over the union of both runs' windows ({:?} requests) {:?}",
            z.victim_rule,
            z.scale_downs,
            z.sleeps,
            z.prefix_hit_rate_after_scale_down,
            z.ttft_after_scale_down_ms,
            z.requests_after_any_scale_down,
            z.ttft_after_any_scale_down_ms
        );
    }
    assert_eq!(
        (kv.victim_rule.as_str(), rs.victim_rule.as_str()),
        ("kv-aware", "replicaset-default")
    );
    assert!(kv.scale_downs > 0 && rs.scale_downs > 0);
    // Nothing sleeps while the model is active at the default warm cost fraction, and the
    // pods the HPA has not removed yet keep serving (this slice had 7 sleeps before).
    assert_eq!((kv.sleeps, rs.sleeps), (0, 0));
    // The same requests are compared in both runs (the union of their after-scale-down
    // windows). With our pipeline's few scale-downs (2 on this slice since the 2026-11-29
    // changes) both rules can remove the same pods — the youngest is also the one with the
    // least cache — so which rule keeps caches better is measured on a controlled schedule:
    // `victim_rules_compared_on_the_same_scale_downs`.
    assert_eq!(
        kv.requests_after_any_scale_down,
        rs.requests_after_any_scale_down
    );
    assert!(kv.prefix_hit_rate_after_scale_down >= rs.prefix_hit_rate_after_scale_down);
}

#[test]
fn victim_rules_compared_on_the_same_scale_downs() {
    let Some(data) = data() else { return };
    let trace = data.join("traces/mooncake/conversation_trace.jsonl");
    let mut a = args(trace, 0.0, 3600.0);
    a.routing = RoutingArg::PrefixAware;
    a.slo_ttft_ms = Some(5000.0);
    let config = Config::from_yaml(DEFAULT_CONFIG_YAML, "embedded").unwrap();
    let p = prepare(&a.trace, &config, None, &a).unwrap();
    let schedule = [(0.0, 10), (900.0, 8), (1500.0, 7), (2100.0, 6), (2700.0, 5)];
    let c = slo_scaler::sim::victims::compare_on_schedule(&p.requests, &p.spec, &schedule);
    let (zk, zr) = (
        &c.kv_aware.report.scale_to_zero,
        &c.replicaset.report.scale_to_zero,
    );
    let (tk, tr) = (c.kv_aware.ttft_p90_after_s, c.replicaset.ttft_p90_after_s);
    eprintln!(
        "kv-aware: {} downs, hit after {:.4}, TTFT p90 after {tk:.3} s; replicaset: {} downs, hit after {:.4}, TTFT p90 after {tr:.3} s",
        zk.scale_downs,
        zk.prefix_hit_rate_after_scale_down,
        zr.scale_downs,
        zr.prefix_hit_rate_after_scale_down,
    );
    // The same five scale-downs at the same times; only the victims differ.
    assert_eq!(zk.scale_downs, zr.scale_downs);
    assert!(zk.scale_downs >= 4, "{}", zk.scale_downs);
    assert_eq!(zk.victim_rule, "kv-aware");
    assert_eq!(zr.victim_rule, "replicaset-default");
    // Keeping the replicas that serve prefix hits keeps more hits (measured 9.75 % vs 9.22 %).
    assert!(
        zk.prefix_hit_rate_after_scale_down > zr.prefix_hit_rate_after_scale_down + 0.002,
        "{} vs {}",
        zk.prefix_hit_rate_after_scale_down,
        zr.prefix_hit_rate_after_scale_down
    );
    // Half a point of hits is too little prefill to move the TTFT tail (measured 3.348 vs
    // 3.343 s): the "better TTFT p90" is not reached; what holds is a tie.
    assert!(tk <= 1.02 * tr, "{tk} vs {tr}");
}

/// Client 134's first day has no history and no demand until 19:40: the requests of that
/// launch wait on a cold start under any policy without foreknowledge, and the report
/// counts them apart (`opening_cold_start_waits`) from the waits on a return after an idle
/// spell, which the warm pool removes (the return at 20:40 waited under plain
/// scale-to-zero).
#[test]
fn waits_at_a_models_launch_are_counted_apart_from_waits_on_a_return() {
    let Some(data) = data() else { return };
    let trace = data.join("traces/servegen/language/m-large/chunk-134-trace.csv");
    let a = args(trace, 0.0, 86_400.0);
    let mut r = run(&a, "scale-to-zero,slo-scaler-warm", None);
    let (warm, plain) = (r.pop().unwrap(), r.pop().unwrap());
    let (p, w) = (&plain.scale_to_zero, &warm.scale_to_zero);
    eprintln!(
        "client 134 day 1: plain waited {} (opening {}), warm waited {} (opening {})",
        plain.requests_waited_on_cold_start,
        p.opening_cold_start_waits,
        warm.requests_waited_on_cold_start,
        w.opening_cold_start_waits
    );
    assert!(p.opening_cold_start_waits > 1000, "the launch waits");
    assert_eq!(
        p.opening_cold_start_waits, w.opening_cold_start_waits,
        "nothing told either policy the launch was coming"
    );
    assert!(p.opening_cold_start_waits <= plain.requests_waited_on_cold_start);
    let plain_returns = plain.requests_waited_on_cold_start - p.opening_cold_start_waits;
    let warm_returns = warm.requests_waited_on_cold_start - w.opening_cold_start_waits;
    assert!(plain_returns > 1000, "plain went cold before the return");
    assert!(
        warm_returns * 10 <= plain_returns,
        "{warm_returns} vs {plain_returns}"
    );
}
