//! Simulator vs analytic model on one replica for a trace's own length mix: the
//! distribution counterpart of `sim_crosscheck` (fixed lengths).
//!
//! `cargo run --release -p slo-scaler --example sim_crosscheck_trace -- TRACE [profile]
//! [TPOT bound ms] [rates…]`: Poisson arrivals at each rate, each request's (prompt, output)
//! pair drawn uniformly from the trace's records (so the pairs keep their correlation); the
//! model is given the mix the backtest sizes from (the trace's prompt and output lengths,
//! 64 bins each). Prints p50/p90 TTFT and TPOT, simulator / model, and the share of
//! requests within the TPOT bound in the simulator, overall and by output length.

use forecasting::latency::{LatencyModel, RequestMix, TokenDist};
use slo_scaler::planner::load_profile;
use slo_scaler::sim::policy::fixed::Fixed;
use slo_scaler::sim::random::SimRng;
use slo_scaler::sim::workload::SimRequest;
use slo_scaler::sim::{FleetSpec, simulate_with_outcomes};
use slo_scaler::trace::{Trace, load};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .expect("usage: TRACE [profile] [tpot_ms] [rates…]");
    let name = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "builtin/llama-3.1-8b-fp8_h100-80gb_tp1_derived".into());
    let tpot_bound_ms: f64 = args.get(3).map_or(80.0, |a| a.parse().unwrap());
    let rates: Vec<f64> = if args.len() > 4 {
        args[4..].iter().map(|a| a.parse().unwrap()).collect()
    } else {
        vec![0.5, 1.0, 2.0, 4.0, 8.0]
    };
    let Trace::Requests { records, .. } = load(std::path::Path::new(path)).unwrap() else {
        panic!("{path} is not a request-level trace");
    };
    let pairs: Vec<(u32, u32)> = records
        .iter()
        .map(|r| (r.prompt_tokens, r.output_tokens))
        .collect();
    let p: Vec<f64> = pairs.iter().map(|x| f64::from(x.0)).collect();
    let o: Vec<f64> = pairs.iter().map(|x| f64::from(x.1)).collect();
    let mix = RequestMix {
        prompt_tokens: TokenDist::from_samples(&p).unwrap(),
        output_tokens: TokenDist::from_samples(&o).unwrap(),
    };
    let profile = load_profile(&name, None).unwrap();
    let model = LatencyModel::new(&profile, &mix).unwrap();
    println!(
        "profile {name}, {} length pairs, saturation {:.2} req/s, TPOT bound {tpot_bound_ms} ms",
        pairs.len(),
        model.saturation_rate_per_s()
    );
    println!(
        "rate | TTFT p50 sim/model | TTFT p90 sim/model | TPOT p50 sim/model | TPOT p90 sim/model \
         | TPOT met sim | met O≤4 | O 5–16 | O 17–64 | O>64"
    );
    for rate in rates {
        let pred = model.predict(rate, 1).unwrap();
        let mut rng = SimRng::new(1);
        let duration_s = (20_000.0 / rate).max(600.0);
        let mut reqs = Vec::new();
        let mut t = rng.exponential(1.0 / rate);
        while t < duration_s {
            let k = ((rng.uniform() * pairs.len() as f64) as usize).min(pairs.len() - 1);
            let (pt, ot) = pairs[k];
            reqs.push(SimRequest {
                id: reqs.len(),
                arrival_s: t,
                prompt_tokens: pt,
                output_tokens: ot,
                hash_ids: Vec::new(),
            });
            t += rng.exponential(1.0 / rate);
        }
        let spec = FleetSpec::single_fixed_replica(&profile);
        let (r, outcomes) =
            simulate_with_outcomes(&reqs, &spec, &mut Fixed::new(vec![1]), &mut |_, _| {});
        // Share within the TPOT bound, overall and per output-length band (a request with
        // one output token has no TPOT and meets the bound, as in the backtest).
        let met = |lo: u32, hi: u32| {
            let (mut n, mut m) = (0usize, 0usize);
            for (q, oc) in reqs.iter().zip(&outcomes) {
                if q.output_tokens >= lo && q.output_tokens <= hi {
                    n += 1;
                    m += usize::from(oc.tpot_s.is_some_and(|x| x * 1e3 <= tpot_bound_ms));
                }
            }
            100.0 * m as f64 / n.max(1) as f64
        };
        println!(
            "{rate:5.2} | {:7.1} / {:7.1} | {:7.1} / {:7.1} | {:6.2} / {:6.2} | {:6.2} / {:6.2} \
             | {:6.2} % | {:6.2} % | {:6.2} % | {:6.2} % | {:6.2} %",
            r.ttft_ms.p50.unwrap(),
            pred.ttft_ms.p50,
            r.ttft_ms.p90.unwrap(),
            pred.ttft_ms.p90,
            r.tpot_ms.p50.unwrap(),
            pred.tpot_ms.p50,
            r.tpot_ms.p90.unwrap(),
            pred.tpot_ms.p90,
            met(0, u32::MAX),
            met(0, 4),
            met(5, 16),
            met(17, 64),
            met(65, u32::MAX),
        );
    }
}
