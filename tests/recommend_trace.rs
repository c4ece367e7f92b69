//! `slo-scaler recommend` from trace files: snapshot tests of the table and the JSON
//! (a synthetic week in ServeGen's format, written by the test, so the input is fixed),
//! what-ifs that must move cost the right way, ScaledObjects, readable failures, and the
//! real ServeGen trace from `../shared/data` (or `SLO_SCALER_DATA_DIR`).
//!
//! Snapshots live in `tests/fixtures/recommend/*.snap`; after an intended change, rewrite
//! them with `UPDATE_SNAPSHOTS=1 cargo test -p slo-scaler-integration --test recommend_trace`
//! and review the diff.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use slo_scaler_integration::*;

fn fleet() -> PathBuf {
    repo_root().join("tests/fixtures/recommend/fleet.yaml")
}

static FLEET: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| fleet().to_str().unwrap().to_string());

/// A week of 600 s windows in ServeGen's format: a daily cycle 12..=48 req/s with
/// deterministic noise (a fixed linear congruential generator).
fn synthetic_week(dir: &Path) -> PathBuf {
    let trace = dir.join("synthetic-week");
    std::fs::create_dir_all(&trace).unwrap();
    let mut seed: u64 = 42;
    let mut noise = || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        ((seed >> 33) as f64 / (1u64 << 31) as f64) - 0.5
    };
    let mut csv = String::new();
    for i in 0..7 * 144 {
        let t = f64::from(i) * 600.0;
        let phase = 2.0 * std::f64::consts::PI * (t / 86_400.0 - 0.25);
        let rate = 30.0 + 18.0 * phase.sin() + 4.0 * noise();
        csv += &format!("{t},{rate:.4},1.0,Gamma,1.0,{:.4}\n", 1.0 / rate);
    }
    std::fs::write(trace.join("chunk-0-trace.csv"), csv).unwrap();
    trace
}

fn recommend(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(scaler_bin())
        .arg("recommend")
        .args(args)
        .output()
        .expect("run slo-scaler recommend");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn snapshot(name: &str, got: &str) {
    let path = repo_root().join("tests/fixtures/recommend").join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "snapshot {} is missing: run with UPDATE_SNAPSHOTS=1 and review it",
            path.display()
        )
    });
    if want != got {
        let first = want
            .lines()
            .zip(got.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(got.lines().count()));
        panic!(
            "{name} differs from the snapshot at line {}:\n  want: {:?}\n  got:  {:?}\n\
             (UPDATE_SNAPSHOTS=1 rewrites it)\nfull output:\n{got}",
            first + 1,
            want.lines().nth(first),
            got.lines().nth(first)
        );
    }
}

#[test]
fn table_and_json_match_their_snapshots_and_are_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let trace = synthetic_week(dir.path());
    let base = [
        "--config",
        FLEET.as_str(),
        "--trace",
        trace.to_str().unwrap(),
        "--at",
        "6d",
        "--hours",
        "12",
        "--current",
        "h200=6",
    ];
    let (ok, table, err) = recommend(&[&base[..], &["--format", "table"]].concat());
    assert!(ok, "{err}\n{table}");
    let too_wide: Vec<&str> = table.lines().filter(|l| l.chars().count() > 100).collect();
    assert!(too_wide.is_empty(), "lines over 100 columns: {too_wide:#?}");
    snapshot("table.snap", &table);
    let (ok, json, err) = recommend(&[&base[..], &["--format", "json"]].concat());
    assert!(ok, "{err}");
    snapshot("json.snap", &json);
    // The same inputs give the same bytes.
    let (_, again, _) = recommend(&[&base[..], &["--format", "json"]].concat());
    assert_eq!(json, again);

    let r: Value = serde_json::from_str(&json).unwrap();
    let m = &r["models"][0];
    assert_eq!(m["model"], "llama-3.1-8b-instruct");
    assert_eq!(m["forecast"].as_array().unwrap().len(), 12);
    assert_eq!(m["schedule"].as_array().unwrap().len(), 12);
    // Six days at 600 s, up to --at.
    assert_eq!(m["history_points"], 6 * 144);
    // At --at = 6 d the cycle is at its trough (≈ 12 req/s) and rises towards ≈ 48 req/s
    // twelve hours later: the forecast and the schedule follow it.
    let upper = |h: usize| m["forecast"][h]["upper_rps"].as_f64().unwrap();
    let point = |h: usize| m["forecast"][h]["point_rps"].as_f64().unwrap();
    assert!(
        point(0) < 20.0 && (40.0..56.0).contains(&point(11)),
        "{}",
        m["forecast"]
    );
    assert!((25.0..40.0).contains(&point(6)), "{}", m["forecast"]);
    assert!(upper(6) > point(6), "the band is above the point");
    let total = |h: usize| -> u64 {
        m["schedule"][h]["replicas"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum()
    };
    assert!(
        total(11) > total(0),
        "more replicas at the peak: {}",
        m["schedule"]
    );
    // Every hour's plan covers its demand and meets the SLO as predicted.
    for h in m["schedule"].as_array().unwrap() {
        assert_eq!(h["feasible"], true, "{h}");
        assert!(h["predicted_ttft_ms"].as_f64().unwrap() <= 1000.0, "{h}");
        assert!(h["predicted_tpot_ms"].as_f64().unwrap() <= 50.0, "{h}");
    }
    // Mixing GPU types is never dearer than the cheapest single type; the given current
    // replicas are compared.
    let s = &m["savings"];
    assert!(
        s["single_type"]["saving_over_hours"].as_f64().unwrap() >= 0.0,
        "{s}"
    );
    assert_eq!(s["current"]["replicas"]["h200"], 6);
    assert!(s["current"]["reason"].as_str().unwrap().contains("h200=6"));
    // Every number has a reason.
    for v in m["now"]["variants"].as_array().unwrap() {
        assert!(!v["reason"].as_str().unwrap().is_empty(), "{v}");
    }
}

/// `fleet.yaml` with a tighter SLO (TTFT 500 ms, TPOT 25 ms), where the SLO binds on
/// both GPU types (at 50 ms the H200's capacity is bound by saturation, not the SLO).
fn tight_fleet(dir: &Path) -> PathBuf {
    let path = dir.join("tight.yaml");
    std::fs::write(
        &path,
        std::fs::read_to_string(fleet())
            .unwrap()
            .replace("tpot_ms: 50", "tpot_ms: 25")
            .replace("ttft_ms: 1000", "ttft_ms: 500"),
    )
    .unwrap();
    path
}

fn what_if_delta(trace: &Path, change: &[&str]) -> (f64, Value) {
    let cfg = tight_fleet(trace.parent().unwrap());
    let mut args = vec![
        "--config",
        cfg.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
        "--at",
        "6d",
        "--hours",
        "24",
        "--format",
        "json",
    ];
    for c in change {
        args.extend(["--what-if", c]);
    }
    let (ok, out, err) = recommend(&args);
    assert!(ok, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    let d = &r["what_if"]["diff"][0];
    (d["delta_cost_over_hours"].as_f64().unwrap(), r)
}

#[test]
fn relaxing_the_slo_lowers_cost_and_tightening_raises_it() {
    let dir = tempfile::tempdir().unwrap();
    let trace = synthetic_week(dir.path());
    let (relaxed, r) = what_if_delta(&trace, &["slo.ttft_ms=1000", "slo.tpot_ms=50"]);
    assert!(relaxed < 0.0, "relaxed SLO costs less: {relaxed}");
    assert_eq!(
        r["what_if"]["report"]["models"][0]["slo"]["tpot_ms"], 50.0,
        "the what-if report is sized for the changed SLO"
    );
    let (tightened, _) = what_if_delta(&trace, &["slo.ttft_ms=300", "slo.tpot_ms=15"]);
    assert!(tightened > 0.0, "tightened SLO costs more: {tightened}");
    // Other knobs move cost the way they must.
    let (more_demand, _) = what_if_delta(&trace, &["demand_scale=2"]);
    assert!(more_demand > 0.0, "{more_demand}");
    // A dearer GPU never lowers cost; the one the plan relies on (H200: under this tight
    // TPOT SLO the A100 profile contributes little or nothing) raises it.
    let (dearer_a100, _) = what_if_delta(&trace, &["price.A100-80GB=3"]);
    assert!(dearer_a100 >= 0.0, "{dearer_a100}");
    let (dearer_h200, _) = what_if_delta(&trace, &["price.H200=5"]);
    assert!(dearer_h200 > 0.0, "{dearer_h200}");
    let (no_h200, r) = what_if_delta(&trace, &["inventory.H200=0"]);
    assert!(no_h200 >= 0.0, "{no_h200}");
    let w = &r["what_if"]["report"]["models"][0]["schedule"];
    assert!(
        w.as_array()
            .unwrap()
            .iter()
            .all(|h| h["replicas"].get("h200").is_none_or(|n| n == 0)),
        "no H200 free, none planned: {w}"
    );
}

#[test]
fn yaml_is_one_scaled_object_per_variant_pointing_at_the_scaler() {
    let dir = tempfile::tempdir().unwrap();
    let trace = synthetic_week(dir.path());
    let (ok, out, err) = recommend(&[
        "--config",
        FLEET.as_str(),
        "--trace",
        trace.to_str().unwrap(),
        "--at",
        "6d",
        "--format",
        "yaml",
        "--namespace",
        "llm",
        "--trigger-auth",
        "slo-scaler-mtls",
    ]);
    assert!(ok, "{err}");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&out).expect("valid YAML");
    assert_eq!(docs.len(), 2, "{out}");
    let mut variants = Vec::new();
    for so in &docs {
        assert_eq!(so["apiVersion"], "keda.sh/v1alpha1");
        assert_eq!(so["kind"], "ScaledObject");
        assert_eq!(so["metadata"]["namespace"], "llm");
        let spec = &so["spec"];
        assert_eq!(spec["scaleTargetRef"]["name"], so["metadata"]["name"]);
        assert!(spec["fallback"]["replicas"].as_u64().unwrap() >= 1);
        assert_eq!(spec["fallback"]["behavior"], "currentReplicasIfHigher");
        assert!(
            spec["maxReplicaCount"].as_u64().unwrap()
                >= spec["fallback"]["replicas"].as_u64().unwrap()
        );
        let behavior = &spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"];
        assert!(behavior["scaleUp"].is_object() && behavior["scaleDown"].is_object());
        assert_eq!(spec["cooldownPeriod"], 300);
        let t = &spec["triggers"][0];
        // Fallback works only with AverageValue; min 0 means scale-from-zero: push.
        assert_eq!(t["metricType"], "AverageValue");
        assert_eq!(t["type"], "external-push");
        assert_eq!(t["authenticationRef"]["name"], "slo-scaler-mtls");
        assert_eq!(
            t["metadata"]["scalerAddress"],
            "slo-scaler-headless.slo-scaler.svc:9090"
        );
        assert_eq!(t["metadata"]["model"], "llama-3.1-8b-instruct");
        variants.push(t["metadata"]["variant"].as_str().unwrap().to_string());
    }
    variants.sort();
    assert_eq!(variants, ["a100", "h200"]);
}

#[test]
fn an_slo_no_profile_can_meet_says_so_with_the_best_achievable_latency() {
    let dir = tempfile::tempdir().unwrap();
    let trace = synthetic_week(dir.path());
    let (ok, out, err) = recommend(&[
        "--config",
        FLEET.as_str(),
        "--trace",
        trace.to_str().unwrap(),
        "--what-if",
        "slo.tpot_ms=1",
        "--format",
        "json",
    ]);
    // The baseline has a recommendation; the what-if has none, and says why.
    assert!(ok, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    let e = r["what_if"]["report"]["models"][0]["error"]
        .as_str()
        .unwrap();
    assert!(
        e.contains("no variant can meet the SLO at any load")
            && e.contains("the best achievable p90 TTFT is")
            && e.contains("p90 TPOT")
            && e.contains("SLO 1 ms"),
        "{e}"
    );

    // As the baseline itself: the command fails after printing, naming the model.
    let cfg = dir.path().join("tight.yaml");
    std::fs::write(
        &cfg,
        std::fs::read_to_string(fleet())
            .unwrap()
            .replace("tpot_ms: 50", "tpot_ms: 1"),
    )
    .unwrap();
    let (ok, out, err) = recommend(&[
        "--config",
        cfg.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        out.contains("no recommendation: no variant can meet the SLO"),
        "{out}"
    );
    assert!(
        err.contains("llama-3.1-8b-instruct") && err.contains("best achievable"),
        "{err}"
    );
}

#[test]
fn bad_arguments_are_readable_errors() {
    let dir = tempfile::tempdir().unwrap();
    let trace = synthetic_week(dir.path());
    let common = [
        "--config",
        FLEET.as_str(),
        "--trace",
        trace.to_str().unwrap(),
    ];
    for (extra, want) in [
        (vec!["--what-if", "slo.ttft=3"], "unknown key \"slo.ttft\""),
        (vec!["--at", "9d"], "after the end of the trace"),
        (
            vec!["--current", "l4=2"],
            "no model of the config has a variant \"l4\"",
        ),
    ] {
        let (ok, _, err) = recommend(&[&common[..], &extra[..]].concat());
        assert!(!ok && err.contains(want), "{extra:?}: {err}");
    }
    // A trace at an interval it cannot give.
    let odd = dir.path().join("odd.yaml");
    std::fs::write(
        &odd,
        std::fs::read_to_string(fleet())
            .unwrap()
            .replace("forecast_interval_s: 600", "forecast_interval_s: 900"),
    )
    .unwrap();
    let (ok, _, err) = recommend(&[
        "--config",
        odd.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("multiple of the 600 s window"), "{err}");
}

/// The real ServeGen trace (Alibaba Bailian, 14 days): recommended at day 10, the q95
/// schedule covers the demand that actually came in the next 24 hours most of the time.
#[test]
fn real_servegen_trace_schedule_covers_the_next_day() {
    let Some(data) = slo_scaler_integration::shared_data() else {
        return;
    };
    let trace = data.join("traces/servegen/language/m-mid");
    assert!(
        trace.is_dir(),
        "{} missing (see shared/data/README.md)",
        trace.display()
    );
    // m-mid peaks near 4,000 req/s: lift the fixture's 16-replica limits.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("big.yaml");
    std::fs::write(
        &cfg,
        std::fs::read_to_string(fleet())
            .unwrap()
            .replace("max_replicas: 16", "max_replicas: 400"),
    )
    .unwrap();
    let (ok, out, err) = recommend(&[
        "--config",
        cfg.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
        "--at",
        "10d",
        "--hours",
        "24",
        "--what-if",
        "demand_scale=1",
        "--format",
        "json",
    ]);
    assert!(ok, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    let m = &r["models"][0];
    assert!(m["error"].is_null(), "{}", m["error"]);
    assert_eq!(m["history_points"], 10 * 144);
    // What actually came: the trace after --at, hour by hour (mean of the 600 s windows).
    let t = slo_scaler::trace::load(&trace).unwrap();
    let series = t.rate_series(600.0).unwrap().rates_per_s;
    let start = 10 * 144;
    let mut covered = 0;
    for h in 0..24 {
        let peak = series[start + h * 6..start + (h + 1) * 6]
            .iter()
            .copied()
            .fold(0.0, f64::max);
        let capacity: f64 = m["schedule"][h]["replicas"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(v, n)| {
                let cap = m["now"]["variants"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|x| x["variant"] == v.as_str())
                    .unwrap()["capacity_per_replica_rps"]
                    .as_f64()
                    .unwrap();
                n.as_f64().unwrap() * cap
            })
            .sum();
        if capacity >= peak {
            covered += 1;
        }
    }
    eprintln!(
        "ServeGen m-mid at day 10: the schedule covers the hourly peak in {covered}/24 hours"
    );
    assert!(covered >= 20, "covered {covered}/24 hours");
    // demand_scale=1 changes nothing.
    assert_eq!(r["what_if"]["diff"][0]["delta_cost_over_hours"], 0.0);
}

/// Pixels of `rgb` (`#rrggbb`) in rows `ys` of a decoded RGB PNG.
fn count_colour(img: &[u8], width: u32, ys: [u64; 2], rgb: &str) -> usize {
    let c = u32::from_str_radix(rgb.trim_start_matches('#'), 16).unwrap();
    let want = [(c >> 16) as u8, (c >> 8) as u8, c as u8];
    let row = width as usize * 3;
    img[ys[0] as usize * row..ys[1] as usize * row]
        .chunks_exact(3)
        .filter(|p| *p == want)
        .count()
}

#[test]
fn plot_draws_one_readable_panel_per_model() {
    let dir = tempfile::tempdir().unwrap();
    let trace = synthetic_week(dir.path());
    // Two SLO models: the fixture's, and one that can only use A100s.
    let mut cfg = std::fs::read_to_string(fleet()).unwrap();
    cfg += "  - name: small-a100-only\n    slo: { ttft_ms: 1000, tpot_ms: 50, percentile: p90, \
            attainment: 0.95 }\n    request_mix: { prompt_tokens: 500, output_tokens: 100 }\n    \
            variants:\n      - { name: a100, profile: builtin/llama-3.1-8b_a100-80gb_tp1_derived, \
            gpu_type: A100-80GB, cost_per_hour: 1.6, max_replicas: 16 }\n    \
            demand: { kind: constant, rps: 1 }\n";
    let config = dir.path().join("fleet.yaml");
    std::fs::write(&config, cfg).unwrap();
    let png_path = dir.path().join("out/plan.png");
    std::fs::create_dir_all(png_path.parent().unwrap()).unwrap();
    let (ok, out, err) = recommend(&[
        "--config",
        config.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
        "--at",
        "6d",
        "--hours",
        "12",
        "--plot",
        png_path.to_str().unwrap(),
    ]);
    assert!(ok, "{err}\n{out}");
    assert!(err.contains("small-a100-only: hours -24..12"), "{err}");

    let decoder = png::Decoder::new(std::fs::File::open(&png_path).unwrap());
    let mut reader = decoder.read_info().expect("a valid PNG");
    let mut img = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut img).expect("PNG image data");
    assert_eq!((info.width, info.height), (1200, 2 * 420));
    assert_eq!(info.color_type, png::ColorType::Rgb);

    let legend: Value =
        serde_json::from_str(&std::fs::read_to_string(png_path.with_extension("json")).unwrap())
            .unwrap();
    assert_eq!(legend["height_px"], 840);
    let panels = legend["panels"].as_array().unwrap();
    let names: Vec<&str> = panels
        .iter()
        .map(|p| p["model"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["llama-3.1-8b-instruct", "small-a100-only"]);
    let rows = |v: &Value| [v[0].as_u64().unwrap(), v[1].as_u64().unwrap()];
    for p in panels {
        let model = p["model"].as_str().unwrap();
        let [top, bottom] = rows(&p["y_px"]);
        let demand = rows(&p["demand"]["y_px"]);
        let replicas = rows(&p["replicas"]["y_px"]);
        let cost = rows(&p["cost_per_hour"]["y_px"]);
        for s in [demand, replicas, cost] {
            assert!(top <= s[0] && s[0] < s[1] && s[1] <= bottom, "{model}: {p}");
        }
        let colour = |k: &str| p["colors"][k].as_str().unwrap().to_string();
        for (what, strip, c) in [
            ("history", demand, colour("history")),
            ("forecast", demand, colour("forecast")),
            ("band", demand, colour("band")),
            ("cost", cost, colour("cost")),
        ] {
            let n = count_colour(&img, 1200, strip, &c);
            assert!(
                n > 50,
                "{model}: {n} pixels of the {what} ({c}) in rows {strip:?}"
            );
        }
        let stacked: usize = p["variant_colors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|vc| count_colour(&img, 1200, replicas, vc[1].as_str().unwrap()))
            .sum();
        assert!(stacked > 500, "{model}: {stacked} replica-bar pixels");
    }
    // The ranges are the data's: the demand axis covers the synthetic week's peak (<= 52
    // req/s) and the replica axis the largest hourly plan.
    let y = panels[0]["demand"]["y_range"][1].as_f64().unwrap();
    assert!((30.0..=60.0).contains(&y), "demand axis top {y}");
}
