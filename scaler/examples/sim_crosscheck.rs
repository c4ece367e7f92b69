//! Prints simulator vs analytic-model latencies at steady load on one replica, for several
//! utilisations: the numbers behind `tests/sim_crosscheck.rs`.
//!
//! `cargo run --release -p slo-scaler --example sim_crosscheck [profile] [prompt] [output]
//! [arrival c_a²]`: arrivals are Poisson (c_a² 1, the default), evenly spaced (0) or
//! gamma renewal (any other value); the model is given the same c_a².

use forecasting::latency::{LatencyModel, RequestMix};
use slo_scaler::planner::load_profile;
use slo_scaler::sim::policy::fixed::Fixed;
use slo_scaler::sim::random::SimRng;
use slo_scaler::sim::workload::{TokenLengths, renewal};
use slo_scaler::sim::{FleetSpec, simulate};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "builtin/llama-3.1-8b-fp8_h100-80gb_tp1_derived".into());
    let prompt: u32 = args.get(2).map_or(1024, |a| a.parse().unwrap());
    let output: u32 = args.get(3).map_or(256, |a| a.parse().unwrap());
    let cv2: f64 = args.get(4).map_or(1.0, |a| a.parse().unwrap());
    let profile = load_profile(&name, None).unwrap();
    let mix = RequestMix::fixed(f64::from(prompt), f64::from(output)).unwrap();
    let model = LatencyModel::new(&profile, &mix)
        .unwrap()
        .with_arrival_cv2(cv2)
        .unwrap();
    let sat = model.saturation_rate_per_s();
    println!(
        "profile {name}, P {prompt}, O {output}, arrival c_a² {cv2}, saturation {sat:.2} req/s"
    );
    println!(
        "util  | TTFT p50 sim/model | TTFT p90 sim/model | TPOT p50 sim/model | TPOT p90 sim/model"
    );
    for util in [0.2, 0.4, 0.6, 0.7, 0.79] {
        let rate = util * sat;
        let p = model.predict(rate, 1).unwrap();
        let tokens = TokenLengths::Fixed {
            prompt_tokens: prompt,
            output_tokens: output,
        };
        let duration_s = (4000.0 / rate).max(300.0);
        let reqs = renewal(rate, cv2, duration_s, &tokens, &mut SimRng::new(1));
        let spec = FleetSpec::single_fixed_replica(&profile);
        let r = simulate(&reqs, &spec, &mut Fixed::new(vec![1]));
        println!(
            "{util:.2}  | {:8.1} / {:8.1} | {:8.1} / {:8.1} | {:6.2} / {:6.2} | {:6.2} / {:6.2}",
            r.ttft_ms.p50.unwrap(),
            p.ttft_ms.p50,
            r.ttft_ms.p90.unwrap(),
            p.ttft_ms.p90,
            r.tpot_ms.p50.unwrap(),
            p.tpot_ms.p50,
            r.tpot_ms.p90.unwrap(),
            p.tpot_ms.p90,
        );
    }
}
