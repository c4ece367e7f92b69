//! Sizing benchmark: time per plan for one model with 8 variants, and a full re-plan of
//! 10,000 models sharing 4 GPU types (inventory loose, then short).
//!
//! Run: `cargo run --release -p slo-scaler --example sizing_bench`

use std::collections::BTreeMap;
use std::time::Instant;

use slo_scaler::sizing::{ModelSpec, Problem, VariantSpec, plan_fleet};

const TYPES: [&str; 4] = ["H100", "A100", "L40S", "L4"];

/// SplitMix64: the same instances every run.
fn rng(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

fn model(i: usize, variants: usize, s: &mut u64) -> ModelSpec {
    ModelSpec {
        name: format!("model-{i}"),
        demand: 1.0 + 60.0 * rng(s),
        priority: (rng(s) * 3.0) as i32,
        variants: (0..variants)
            .map(|v| {
                let t = TYPES[v % TYPES.len()];
                let speed = [4.0, 2.2, 1.3, 0.6][v % 4] * (0.8 + 0.4 * rng(s));
                VariantSpec {
                    name: format!("{}-{v}", t.to_lowercase()),
                    gpu_type: t.into(),
                    gpus_per_replica: 1 + (v / 4) as u32,
                    capacity_per_replica: 3.0 * speed,
                    cost_per_hour: [4.0, 1.8, 1.0, 0.45][v % 4] * (1 + v / 4) as f64,
                    min: 0,
                    max: 32,
                    current: (rng(s) * 4.0) as u32,
                }
            })
            .collect(),
    }
}

fn time<T>(label: &str, reps: usize, mut f: impl FnMut() -> T) -> f64 {
    let started = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(f());
    }
    let per = started.elapsed().as_secs_f64() / reps as f64;
    println!("{label:<58} {:>12.3} ms", per * 1e3);
    per
}

fn main() {
    let mut s = 42;
    for nv in [2, 4, 8] {
        let p = Problem {
            models: vec![model(0, nv, &mut s)],
            inventory: None,
        };
        time(&format!("one model, {nv} variants"), 2000, || {
            plan_fleet(&p).unwrap()
        });
    }
    for (n, nv) in [(1_000, 4), (10_000, 4), (10_000, 8)] {
        let models: Vec<ModelSpec> = (0..n).map(|i| model(i, nv, &mut s)).collect();
        let loose = Problem {
            models: models.clone(),
            inventory: Some(TYPES.iter().map(|t| (t.to_string(), 10_000_000)).collect()),
        };
        time(
            &format!("{n} models x {nv} variants, inventory loose"),
            3,
            || plan_fleet(&loose).unwrap(),
        );
        // Short: about half of what the fleet would use alone.
        let alone = plan_fleet(&loose).unwrap();
        let mut used: BTreeMap<String, u32> = BTreeMap::new();
        for (m, p) in models.iter().zip(&alone.models) {
            for v in &m.variants {
                *used.entry(v.gpu_type.clone()).or_default() +=
                    p.replicas[&v.name] * v.gpus_per_replica;
            }
        }
        let short = Problem {
            models,
            inventory: Some(used.into_iter().map(|(t, u)| (t, u / 2)).collect()),
        };
        let plan = plan_fleet(&short).unwrap();
        let infeasible = plan.models.iter().filter(|m| !m.feasible).count();
        time(
            &format!("{n} models x {nv} variants, inventory at 50% ({infeasible} unmet)"),
            3,
            || plan_fleet(&short).unwrap(),
        );
    }
}
