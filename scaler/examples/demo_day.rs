//! Runs the embedded demo (`serve` with no config) through one simulated day as fast as it
//! goes and prints, every simulated hour, what the pipeline decided and what the simulated
//! fleet did; at the end, the CPU cost of the demo at its default speed.
//!
//! `cargo run --release -p slo-scaler --example demo_day [HOURS]` (default 24)

use std::time::Instant;

use slo_scaler::config::Config;
use slo_scaler::decision::ModelOutcome;
use slo_scaler::demo::{DEFAULT_DEMO_SPEED, DEMO_START_S, DemoPlanner, day_clock};

fn main() {
    let config = Config::demo();
    let started = Instant::now();
    let mut demo = DemoPlanner::try_new(&config, DEFAULT_DEMO_SPEED).expect("demo builds");
    let build_s = started.elapsed().as_secs_f64();
    let hours: f64 = std::env::args()
        .nth(1)
        .map_or(24.0, |a| a.parse().expect("HOURS is a number"));
    let day_s = hours * 3600.0;
    let mut sim_s = 0.0;
    let mut t = DEMO_START_S;
    while t < DEMO_START_S + day_s {
        t += 3600.0;
        let step = Instant::now();
        demo.run_until(t);
        sim_s += step.elapsed().as_secs_f64();
        let mut line = day_clock(demo.sim_time_s());
        for d in demo.decisions() {
            let ModelOutcome::Planned(vs) = &d.outcome else {
                line.push_str(&format!(" | {}: unavailable", d.model));
                continue;
            };
            line.push_str(&format!(
                " | {} {:.1} req/s (sized {:.1}, ×{:.2})",
                d.model,
                vs[0].details["demand_rps"],
                vs[0].details["demand_upper_rps"],
                vs[0].details["capacity_factor"],
            ));
            for v in vs {
                line.push_str(&format!(
                    " {}={}+{} (want {}) ttft {:.0} tpot {:.0} att {:.3}",
                    v.variant,
                    v.details["sim_ready_replicas"],
                    v.details["sim_starting_replicas"],
                    v.desired_replicas,
                    v.details["sim_ttft_p90_ms"],
                    v.details["sim_tpot_p90_ms"],
                    v.details["sim_attainment"],
                ));
            }
        }
        println!("{line}");
    }
    let per_wall_s = day_s / sim_s;
    println!(
        "built in {build_s:.2} s; {hours} simulated hours in {sim_s:.2} s = {per_wall_s:.0}× real time; \
         at --demo-speed {DEFAULT_DEMO_SPEED} the demo keeps {:.1} % of one core busy",
        100.0 * DEFAULT_DEMO_SPEED / per_wall_s
    );
}
