//! The simulator against the analytic latency model (`forecasting::latency`) at steady
//! Poisson load (and evenly spaced arrivals, the model's arrival c_a² = 0) on one replica of
//! the same profile: two independent code paths that share only the profile's step-time
//! curves. Tolerances from issue 7: TPOT within 15 %, TTFT
//! within 25 %, below 80 % utilisation. Numbers for more profiles and mixes:
//! `cargo run --release -p slo-scaler --example sim_crosscheck` (docs/simulator.md).

use forecasting::latency::{LatencyModel, RequestMix};
use slo_scaler::planner::load_profile;
use slo_scaler::sim::metrics::SimReport;
use slo_scaler::sim::policy::fixed::Fixed;
use slo_scaler::sim::random::SimRng;
use slo_scaler::sim::workload::{TokenLengths, renewal};
use slo_scaler::sim::{FleetSpec, simulate};

fn run(
    profile_ref: &str,
    prompt: u32,
    output: u32,
    util: f64,
    requests: f64,
    arrival_cv2: f64,
) -> (SimReport, forecasting::latency::Prediction) {
    let profile = load_profile(profile_ref, None).unwrap();
    run_profile(&profile, prompt, output, util, requests, arrival_cv2)
}

fn run_profile(
    profile: &forecasting::profile::Profile,
    prompt: u32,
    output: u32,
    util: f64,
    requests: f64,
    arrival_cv2: f64,
) -> (SimReport, forecasting::latency::Prediction) {
    let mix = RequestMix::fixed(f64::from(prompt), f64::from(output)).unwrap();
    let m = LatencyModel::new(profile, &mix)
        .unwrap()
        .with_arrival_cv2(arrival_cv2)
        .unwrap();
    let rate = util * m.saturation_rate_per_s();
    let model = m.predict(rate, 1).unwrap();
    let tokens = TokenLengths::Fixed {
        prompt_tokens: prompt,
        output_tokens: output,
    };
    let reqs = renewal(
        rate,
        arrival_cv2,
        requests / rate,
        &tokens,
        &mut SimRng::new(11),
    );
    let report = simulate(
        &reqs,
        &FleetSpec::single_fixed_replica(profile),
        &mut Fixed::new(vec![1]),
    );
    assert_eq!(
        report.completed,
        reqs.len(),
        "every request finishes below saturation"
    );
    (report, model)
}

fn within(sim: Option<f64>, model: f64, tol: f64, what: &str) {
    let sim = sim.unwrap();
    let err = (sim - model).abs() / model;
    assert!(
        err <= tol,
        "{what}: simulator {sim:.2} ms vs model {model:.2} ms ({:.0} % apart, allowed {:.0} %)",
        err * 100.0,
        tol * 100.0
    );
}

/// TPOT p50 within 15 % and TTFT p50 within 25 % of the model's (`at` names the case).
fn medians_agree(sim: &SimReport, model: &forecasting::latency::Prediction, at: &str) {
    within(
        sim.tpot_ms.p50,
        model.tpot_ms.p50,
        0.15,
        &format!("{at}: TPOT p50"),
    );
    within(
        sim.ttft_ms.p50,
        model.ttft_ms.p50,
        0.25,
        &format!("{at}: TTFT p50"),
    );
}

#[test]
fn simulator_agrees_with_the_analytic_model_below_80_percent_utilisation() {
    for util in [0.3, 0.6, 0.75] {
        let (sim, model) = run(
            "builtin/llama-3.1-8b-fp8_h100-80gb_tp1_derived",
            1024,
            256,
            util,
            3000.0,
            1.0,
        );
        let at = format!("H100 8B, P 1024, O 256, utilisation {util}");
        medians_agree(&sim, &model, &at);
        within(
            sim.tpot_ms.p90,
            model.tpot_ms.p90,
            0.15,
            &format!("{at}: TPOT p90"),
        );
        within(
            sim.ttft_ms.p90,
            model.ttft_ms.p90,
            0.25,
            &format!("{at}: TTFT p90"),
        );
    }
    // A slower GPU and a different mix: medians agree.
    for util in [0.3, 0.6] {
        let (sim, model) = run(
            "builtin/llama-3.1-8b_a100-80gb_tp1_derived",
            2048,
            128,
            util,
            1500.0,
            1.0,
        );
        let at = format!("A100 8B, P 2048, O 128, utilisation {util}");
        medians_agree(&sim, &model, &at);
    }
}

/// CUDA-graph padding is charged by both code paths (the simulator on each step's whole
/// batch, the model on its mean batch). A coarse ladder makes padding a large share of the
/// step (a batch of ~10 runs the graph of 32), so a path that ignored it would be far off.
#[test]
fn padded_cuda_graph_batches_agree() {
    let mut profile = load_profile("builtin/llama-3.1-8b-fp8_h100-80gb_tp1_derived", None).unwrap();
    let plain = profile.clone();
    profile.decode.cuda_graph_batch_sizes = vec![1, 32, 64, 128, 256, 512];
    for util in [0.1, 0.3, 0.6] {
        let (sim, model) = run_profile(&profile, 1024, 256, util, 2000.0, 1.0);
        let at = format!("H100 8B with graph sizes 1/32/64/…, P 1024, O 256, utilisation {util}");
        medians_agree(&sim, &model, &at);
        if util == 0.1 {
            // The ladder matters here: the unpadded model is well below both.
            let (_, unpadded) = run_profile(&plain, 1024, 256, util, 10.0, 1.0);
            assert!(
                unpadded.tpot_ms.p50 < 0.9 * sim.tpot_ms.p50.unwrap(),
                "{at}: padding should lengthen steps ({} vs {:?})",
                unpadded.tpot_ms.p50,
                sim.tpot_ms.p50
            );
        }
    }
}

/// Short outputs after long prompts (the Azure code mix): a request's few decode steps
/// carry a Poisson-like handful of whole prefills, so its TPOT tail is wide. The model sums
/// the prefill jumps in each request's decode window (generalized-Poisson busy period,
/// co-admitted prompts from the length-biased step in progress); this once disagreed 2.5×
/// at 0.79 utilisation when the model only had batch-size fluctuation.
#[test]
fn tpot_tail_agrees_for_short_outputs() {
    for util in [0.4, 0.6, 0.75] {
        let (sim, model) = run(
            "builtin/llama-3.1-8b-fp8_h100-80gb_tp1_derived",
            2048,
            28,
            util,
            3000.0,
            1.0,
        );
        let at = format!("H100 8B, P 2048, O 28, utilisation {util}");
        within(
            sim.tpot_ms.p50,
            model.tpot_ms.p50,
            0.15,
            &format!("{at}: TPOT p50"),
        );
        within(
            sim.tpot_ms.p90,
            model.tpot_ms.p90,
            0.15,
            &format!("{at}: TPOT p90"),
        );
    }
}

/// GuideLLM's `constant` strategy sends requests at uniform intervals: with the model told so
/// (arrival c_a² = 0) its TTFT follows the simulator fed evenly spaced arrivals, where the
/// Poisson model (c_a² = 1) overstates the queueing behind other prompts several-fold.
#[test]
fn evenly_spaced_arrivals_agree_with_the_model_told_so() {
    let h100 = "builtin/llama-3.1-8b-fp8_h100-80gb_tp1_derived";
    for (prompt, output) in [(2048, 28), (1024, 256)] {
        for util in [0.4, 0.75] {
            let (sim, model) = run(h100, prompt, output, util, 3000.0, 0.0);
            let at = format!("H100 8B, P {prompt}, O {output}, evenly spaced, utilisation {util}");
            for (what, s, m) in [
                ("TTFT p50", sim.ttft_ms.p50, model.ttft_ms.p50),
                ("TTFT p90", sim.ttft_ms.p90, model.ttft_ms.p90),
            ] {
                within(s, m, 0.25, &format!("{at}: {what}"));
            }
            // Short outputs are left out: with evenly spaced arrivals a 28-token request's
            // few steps phase-lock with the prefills, and the model's TPOT is ~25 % high
            // (docs/BENCHMARKS.md, "Arrival variability").
            if output >= 256 {
                within(
                    sim.tpot_ms.p50,
                    model.tpot_ms.p50,
                    0.15,
                    &format!("{at}: TPOT p50"),
                );
            }
        }
    }
    let (sim, _) = run(h100, 2048, 28, 0.75, 3000.0, 0.0);
    let (_, poisson) = run(h100, 2048, 28, 0.75, 3000.0, 1.0);
    let sim_p90 = sim.ttft_ms.p90.unwrap();
    assert!(
        poisson.ttft_ms.p90 > 1.5 * sim_p90,
        "Poisson model {:.1} ms vs evenly spaced simulator {sim_p90:.1} ms",
        poisson.ttft_ms.p90
    );
}

/// Varied lengths, as a trace has them: log-normal prompts around 2048 tokens and outputs
/// around 28 (CV 1 each, so half the outputs are under ~20 tokens and a few prompts are
/// 3–4× the mean), the model given the lengths the backtest gives it (the requests' own
/// samples, 64 bins each). Checks the mixture over output lengths, the length-biased jump
/// size `κE[W²]/E[W]` and the bins' merge together, which the fixed-length tests do not:
/// on the Azure code trace's own lengths the same comparison agrees within 20 % at every
/// load up to half of saturation (docs/BENCHMARKS.md, issue 7, "Azure: why"), so the TPOT
/// misses there are not the model's handling of the mix.
#[test]
fn tpot_tail_agrees_for_a_length_mix() {
    use forecasting::latency::TokenDist;
    let profile = load_profile("builtin/llama-3.1-8b-fp8_h100-80gb_tp1_derived", None).unwrap();
    let tokens = TokenLengths::LogNormal {
        prompt_mean: 2048.0,
        output_mean: 28.0,
        cv: 1.0,
    };
    // The mix from a large draw of the same distribution (what an operator configures from
    // the service's logs).
    let sample = renewal(1.0, 1.0, 20_000.0, &tokens, &mut SimRng::new(5));
    let p: Vec<f64> = sample.iter().map(|r| f64::from(r.prompt_tokens)).collect();
    let o: Vec<f64> = sample.iter().map(|r| f64::from(r.output_tokens)).collect();
    let mix = RequestMix {
        prompt_tokens: TokenDist::from_samples(&p).unwrap(),
        output_tokens: TokenDist::from_samples(&o).unwrap(),
    };
    let m = LatencyModel::new(&profile, &mix).unwrap();
    for util in [0.1, 0.25, 0.4] {
        let rate = util * m.saturation_rate_per_s();
        let model = m.predict(rate, 1).unwrap();
        let reqs = renewal(rate, 1.0, 4000.0 / rate, &tokens, &mut SimRng::new(11));
        let sim = simulate(
            &reqs,
            &FleetSpec::single_fixed_replica(&profile),
            &mut Fixed::new(vec![1]),
        );
        assert_eq!(sim.completed, reqs.len());
        let at = format!("H100 8B, log-normal P 2048 / O 28, utilisation {util}");
        within(
            sim.tpot_ms.p50,
            model.tpot_ms.p50,
            0.15,
            &format!("{at}: TPOT p50"),
        );
        within(
            sim.tpot_ms.p90,
            model.tpot_ms.p90,
            0.2,
            &format!("{at}: TPOT p90"),
        );
    }
}
