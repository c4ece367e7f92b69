//! Capacity under an SLO: consistent with the latency model, monotone in the SLO, cached.
use forecasting::capacity::{Binding, CapacityCache, CapacityError, Slo, capacity_per_replica};
use forecasting::latency::{LatencyModel, Percentile, RequestMix};
use forecasting::profile::Profile;

mod common;

fn profile() -> Profile {
    common::profile(400_000, 512)
}

fn mix() -> RequestMix {
    RequestMix::fixed(1024.0, 256.0).expect("valid")
}

fn slo(ttft_ms: f64, tpot_ms: f64, percentile: Percentile) -> Slo {
    Slo {
        ttft_ms,
        tpot_ms,
        percentile,
    }
}

#[test]
fn capacity_is_where_the_predictor_stops_meeting_the_slo() {
    let m = LatencyModel::new(&profile(), &mix()).expect("model");
    for s in [
        slo(200.0, 20.0, Percentile::P99),
        slo(80.0, 50.0, Percentile::P90),
        slo(1000.0, 12.0, Percentile::P50),
        slo(1e6, 1e6, Percentile::P99),
    ] {
        let c = capacity_per_replica(&profile(), &mix(), &s).expect("feasible");
        assert!(c.rate_per_s > 0.0 && c.rate_per_s < c.saturation_rate_per_s);
        assert!(
            s.met_by(&m.predict(c.rate_per_s, 1).expect("p")),
            "{s:?} {c:?}"
        );
        assert!(
            !s.met_by(&m.predict(c.rate_per_s * 1.001, 1).expect("p")),
            "{s:?} {c:?}"
        );
    }
}

#[test]
fn binding_constraint_is_reported() {
    let tight_tpot = capacity_per_replica(&profile(), &mix(), &slo(1e5, 9.0, Percentile::P50))
        .expect("feasible");
    assert_eq!(tight_tpot.binding, Binding::Tpot);
    let tight_ttft = capacity_per_replica(&profile(), &mix(), &slo(45.0, 1e5, Percentile::P50))
        .expect("feasible");
    assert_eq!(tight_ttft.binding, Binding::Ttft);
    let loose = capacity_per_replica(&profile(), &mix(), &slo(1e9, 1e9, Percentile::P99))
        .expect("feasible");
    assert_eq!(loose.binding, Binding::Saturation);
    assert!(loose.rate_per_s > 0.99 * loose.saturation_rate_per_s);
}

#[test]
fn capacity_is_monotone_in_the_slo() {
    let cap = |ttft: f64, tpot: f64, p: Percentile| {
        capacity_per_replica(&profile(), &mix(), &slo(ttft, tpot, p))
            .expect("feasible")
            .rate_per_s
    };
    let mut prev = 0.0;
    for ttft in [60.0, 80.0, 120.0, 200.0, 500.0, 2000.0] {
        let c = cap(ttft, 30.0, Percentile::P99);
        assert!(c >= prev - 1e-9, "ttft {ttft}: {c} < {prev}");
        prev = c;
    }
    let mut prev = 0.0;
    for tpot in [8.0, 10.0, 15.0, 25.0, 60.0] {
        let c = cap(1000.0, tpot, Percentile::P99);
        assert!(c >= prev - 1e-9, "tpot {tpot}: {c} < {prev}");
        prev = c;
    }
    // The same bounds at a higher percentile are stricter.
    let (p50, p90, p99) = (
        cap(80.0, 15.0, Percentile::P50),
        cap(80.0, 15.0, Percentile::P90),
        cap(80.0, 15.0, Percentile::P99),
    );
    assert!(p50 >= p90 && p90 >= p99, "{p50} {p90} {p99}");
}

#[test]
fn an_slo_below_idle_latency_is_infeasible() {
    // A 1024-token prompt alone takes ~37 ms to the first token.
    match capacity_per_replica(&profile(), &mix(), &slo(20.0, 50.0, Percentile::P50)) {
        Err(CapacityError::Infeasible { idle_ttft_ms, .. }) => assert!(idle_ttft_ms > 20.0),
        other => panic!("expected Infeasible, got {other:?}"),
    }
    assert!(matches!(
        capacity_per_replica(&profile(), &mix(), &slo(0.0, 50.0, Percentile::P50)),
        Err(CapacityError::BadSlo {
            what: "ttft_ms",
            ..
        })
    ));
}

#[test]
fn cache_returns_the_same_answer_once_computed() {
    let mut cache = CapacityCache::new();
    let s = slo(200.0, 20.0, Percentile::P99);
    let a = cache
        .get("test-8b/h100/tp1", &profile(), &mix(), &s)
        .expect("ok");
    let b = cache
        .get("test-8b/h100/tp1", &profile(), &mix(), &s)
        .expect("ok");
    assert_eq!(a, b);
    assert_eq!(cache.len(), 1);
    let other = RequestMix::fixed(2048.0, 256.0).expect("valid");
    let c = cache
        .get("test-8b/h100/tp1", &profile(), &other, &s)
        .expect("ok");
    assert_eq!(cache.len(), 2);
    assert!(
        c.rate_per_s < a.rate_per_s,
        "longer prompts, lower capacity"
    );
}

#[test]
fn burstier_arrivals_lower_a_ttft_bound_capacity_and_poisson_is_the_default() {
    use forecasting::capacity::capacity_per_replica_with_arrivals;
    let mix = RequestMix::fixed(2048.0, 64.0).expect("valid");
    let s = slo(150.0, 1e5, Percentile::P99);
    let cap = |cv2: f64| {
        capacity_per_replica_with_arrivals(&profile(), &mix, &s, cv2)
            .expect("feasible")
            .rate_per_s
    };
    let (even, poisson, bursty) = (cap(0.0), cap(1.0), cap(4.0));
    assert_eq!(
        poisson,
        capacity_per_replica(&profile(), &mix, &s)
            .expect("feasible")
            .rate_per_s
    );
    assert!(
        even > poisson && poisson > bursty,
        "{even} {poisson} {bursty}"
    );
    assert!(matches!(
        capacity_per_replica_with_arrivals(&profile(), &mix, &s, -1.0),
        Err(CapacityError::Latency(_))
    ));
}
