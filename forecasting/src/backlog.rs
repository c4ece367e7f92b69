//! Backlog: the extra rate a fleet needs to clear a queue that built up while it was short
//! of capacity — typically the minutes after a step in demand, while the replicas asked for
//! are still in their cold start.
//!
//! Where to start: [`drain_demand_per_s`].
//!
//! Why this is needed: sizing for the arrival rate alone gives a fleet that stops the queue
//! from *growing* once its new replicas are up, but whatever queued during the cold start
//! then drains only at the margin between capacity and arrivals — often minutes, during
//! which every request (FCFS) waits behind the backlog and misses its TTFT bound. The
//! queue a cold start will leave is predictable from what is measured now: the engines'
//! waiting requests and how fast that count is growing.
//!
//! The rule: only the queue beyond what the SLO allows is a backlog. A fleet meeting its
//! TTFT bound holds about `λ · budget` waiting requests (Little's law with every request
//! waiting at most the queueing budget), so the excess is `E = max(0, W − λ·budget)`.
//! The queue grows at `g = max(0, ΔW/Δt)` — arrivals beyond what the serving replicas
//! complete. Capacity asked for now serves after a cold start `h`; by then the excess is
//! `E + g·h`. Clearing that within one more `h` (the horizon the whole sizing plans over:
//! a backlog is demand like any other, spread over the same span) needs
//! `(E + g·h) / h = E/h + g` req/s on top of the arrival rate. The fleet then runs the
//! backlog down in one cold start instead of never (a fleet sized exactly for `λ`) and
//! gives the extra replicas back through the usual scale-down stabilisation.
//!
//! Later in the same backlog, the growth is projected only until the capacity asked for
//! at its start arrives — `h − age` for a backlog `age` seconds old — since that
//! capacity, sized for the arrival rate, stops the growth: projecting a full `h` at every
//! tick would count the growth of the whole cold start again on top of the excess it has
//! already become, and ask for replicas that arrive after the backlog is gone.

/// The extra fleet rate (req/s) to size for so that the engines' backlog is cleared within
/// one `horizon_s` after capacity asked for now arrives (module docs).
///
/// - `waiting`: requests waiting in the engines' queues now;
/// - `previous`: the same at the previous observation, `dt_s` seconds earlier (`None` when
///   unknown, or `dt_s` not positive: the growth term is then 0);
/// - `arrival_rps`: the arrival rate now; `queue_budget_s`: how long a request may queue
///   within its TTFT bound; `horizon_s`: the cold start new capacity takes;
/// - `age_s`: how long the queue has been beyond the budget (0 at its first observation).
///
/// 0 when there is no backlog, or any input is not finite or not positive where it must be.
#[must_use]
pub fn drain_demand_per_s(
    waiting: f64,
    previous: Option<f64>,
    dt_s: f64,
    arrival_rps: f64,
    queue_budget_s: f64,
    horizon_s: f64,
    age_s: f64,
) -> f64 {
    if !(waiting.is_finite() && arrival_rps.is_finite() && horizon_s.is_finite())
        || horizon_s <= 0.0
    {
        return 0.0;
    }
    let allowed = arrival_rps.max(0.0) * queue_budget_s.max(0.0);
    let excess = (waiting - allowed).max(0.0);
    if excess <= 0.0 {
        // A queue within what the SLO allows: not a backlog, and its growth is a burst that
        // burst sizing and the forecast band are for.
        return 0.0;
    }
    let growth_per_s = match previous {
        Some(prev) if prev.is_finite() && dt_s.is_finite() && dt_s > 0.0 => {
            ((waiting - prev) / dt_s).max(0.0)
        }
        _ => 0.0,
    };
    let growth_for_s = if age_s.is_finite() {
        (horizon_s - age_s.max(0.0)).max(0.0)
    } else {
        horizon_s
    };
    (excess + growth_per_s * growth_for_s) / horizon_s
}

/// Whether the engines' queue is beyond what the TTFT budget allows (a backlog in the
/// sense of [`drain_demand_per_s`]), for tracking a backlog's age.
#[must_use]
pub fn is_backlog(waiting: f64, arrival_rps: f64, queue_budget_s: f64) -> bool {
    waiting.is_finite() && waiting > arrival_rps.max(0.0) * queue_budget_s.max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_the_slo_allows_is_not_a_backlog() {
        // 20 req/s with 1.5 s of queueing budget: up to 30 waiting is normal, even growing.
        assert_eq!(
            drain_demand_per_s(30.0, Some(0.0), 15.0, 20.0, 1.5, 300.0, 0.0),
            0.0
        );
        assert_eq!(
            drain_demand_per_s(0.0, None, 15.0, 20.0, 1.5, 300.0, 0.0),
            0.0
        );
    }

    #[test]
    fn a_stable_backlog_is_cleared_within_one_horizon() {
        // 3,030 waiting, 30 of them allowed: 3,000 excess over 300 s = 10 req/s more.
        let d = drain_demand_per_s(3_030.0, Some(3_030.0), 15.0, 20.0, 1.5, 300.0, 0.0);
        assert!((d - 10.0).abs() < 1e-9, "{d}");
        // A draining backlog asks for the excess only, not a negative growth.
        let d = drain_demand_per_s(3_030.0, Some(4_000.0), 15.0, 20.0, 1.5, 300.0, 0.0);
        assert!((d - 10.0).abs() < 1e-9, "{d}");
    }

    #[test]
    fn a_growing_backlog_adds_its_growth_rate() {
        // Growing by 150 in 15 s = 10 req/s short: by the time new capacity serves (300 s)
        // another 3,000 will have queued; clearing all of it in one more 300 s needs the
        // 10 req/s of growth on top of the excess term.
        let d = drain_demand_per_s(1_530.0, Some(1_380.0), 15.0, 20.0, 1.5, 300.0, 0.0);
        assert!((d - (1_500.0 / 300.0 + 10.0)).abs() < 1e-9, "{d}");
    }

    #[test]
    fn the_drain_clears_the_projected_queue_in_one_horizon() {
        // Closed form check: with excess E and growth g, the queue when capacity arrives is
        // E + g·h, and the extra rate drains exactly that in h.
        let (e, g, h) = (2_000.0, 7.0, 240.0);
        let d = drain_demand_per_s(e, Some(e - g * 15.0), 15.0, 0.0, 1.0, h, 0.0);
        assert!(((e + g * h) / d - h).abs() < 1e-6, "{d}");
    }

    #[test]
    fn an_older_backlog_projects_growth_only_until_the_first_capacity_arrives() {
        // 240 s into a backlog whose first replicas were asked at its start: they serve in
        // 60 s, so only 60 s more growth is projected, not another 300 s.
        let d = drain_demand_per_s(8_430.0, Some(8_010.0), 15.0, 20.0, 1.5, 300.0, 240.0);
        assert!((d - (8_400.0 + 28.0 * 60.0) / 300.0).abs() < 1e-9, "{d}");
        // Older than a cold start: the excess alone.
        let d = drain_demand_per_s(8_430.0, Some(8_010.0), 15.0, 20.0, 1.5, 300.0, 900.0);
        assert!((d - 28.0).abs() < 1e-9, "{d}");
        assert!(is_backlog(8_430.0, 20.0, 1.5) && !is_backlog(30.0, 20.0, 1.5));
    }

    #[test]
    fn unknown_or_broken_inputs_add_nothing() {
        assert_eq!(
            drain_demand_per_s(f64::NAN, None, 15.0, 20.0, 1.5, 300.0, 0.0),
            0.0
        );
        assert_eq!(
            drain_demand_per_s(1e4, None, 15.0, f64::INFINITY, 1.5, 300.0, 0.0),
            0.0
        );
        assert_eq!(
            drain_demand_per_s(1e4, None, 15.0, 20.0, 1.5, 0.0, 0.0),
            0.0
        );
        // No previous sample, or a zero interval: excess only.
        let d = drain_demand_per_s(3_030.0, Some(0.0), 0.0, 20.0, 1.5, 300.0, 0.0);
        assert!((d - 10.0).abs() < 1e-9, "{d}");
        let d = drain_demand_per_s(3_030.0, Some(f64::NAN), 15.0, 20.0, 1.5, 300.0, 0.0);
        assert!((d - 10.0).abs() < 1e-9, "{d}");
    }
}
