//! Capacity under an SLO: the highest arrival rate one replica sustains while the predicted
//! TTFT and TPOT at the SLO's percentile stay within the SLO.
//!
//! Where to start: [`capacity_per_replica`]; [`CapacityCache`] memoises it for a sizing loop.
//! The answer is found by bisection on the latency model ([`crate::latency`]) itself, so the
//! two agree by construction: at the returned rate the prediction meets the SLO, slightly
//! above it does not. Predicted latencies rise with the rate, so the capacity is monotone in
//! the SLO.
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::latency::{
    LatencyError, LatencyModel, POISSON_ARRIVAL_CV2, Percentile, Prediction, RequestMix,
};
use crate::profile::Profile;

/// Errors computing a capacity.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CapacityError {
    /// The mix is invalid for the latency model.
    #[error(transparent)]
    Latency(#[from] LatencyError),
    /// An SLO target that is not a positive finite number of milliseconds.
    #[error("expected SLO {what} to be a number of ms > 0, got {got}")]
    BadSlo {
        /// `ttft_ms` or `tpot_ms`.
        what: &'static str,
        /// The value found.
        got: f64,
    },
    /// Even an idle replica misses the SLO: no rate satisfies it.
    #[error(
        "SLO cannot be met even at zero load: idle {percentile:?} TTFT {idle_ttft_ms:.1} ms \
         (SLO {slo_ttft_ms} ms), TPOT {idle_tpot_ms:.2} ms (SLO {slo_tpot_ms} ms)"
    )]
    Infeasible {
        /// Percentile of the SLO.
        percentile: Percentile,
        /// Predicted TTFT at zero load.
        idle_ttft_ms: f64,
        /// Predicted TPOT at zero load.
        idle_tpot_ms: f64,
        /// SLO TTFT.
        slo_ttft_ms: f64,
        /// SLO TPOT.
        slo_tpot_ms: f64,
    },
}

/// A latency SLO: TTFT and TPOT bounds at one percentile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// Bound on time to first token.
    pub ttft_ms: f64,
    /// Bound on time per output token.
    pub tpot_ms: f64,
    /// Percentile at which both bounds apply.
    pub percentile: Percentile,
}

impl Slo {
    /// Whether `prediction` meets this SLO.
    #[must_use]
    pub fn met_by(&self, prediction: &Prediction) -> bool {
        !prediction.saturated
            && prediction.ttft_ms.at(self.percentile) <= self.ttft_ms
            && prediction.tpot_ms.at(self.percentile) <= self.tpot_ms
    }
}

/// What limits a replica's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Binding {
    /// TTFT reaches its bound first.
    Ttft,
    /// TPOT reaches its bound first.
    Tpot,
    /// Neither bound is reached before the replica saturates.
    Saturation,
}

/// Capacity of one replica under an SLO.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Capacity {
    /// Highest arrival rate per replica (req/s) meeting the SLO.
    pub rate_per_s: f64,
    /// Rate per replica at which the replica saturates (req/s), whatever the SLO.
    pub saturation_rate_per_s: f64,
    /// What limits `rate_per_s`.
    pub binding: Binding,
}

/// Relative precision of the bisection on the rate.
const REL_TOL: f64 = 1e-6;

/// Highest rate per replica for which `profile` meets `slo` on `mix`, for Poisson arrivals.
///
/// # Errors
/// [`CapacityError::BadSlo`] for a non-positive bound, [`CapacityError::Infeasible`] if an idle
/// replica already misses it, [`CapacityError::Latency`] for an invalid mix.
pub fn capacity_per_replica(
    profile: &Profile,
    mix: &RequestMix,
    slo: &Slo,
) -> Result<Capacity, CapacityError> {
    capacity_per_replica_with_arrivals(profile, mix, slo, POISSON_ARRIVAL_CV2)
}

/// As [`capacity_per_replica`] for arrivals whose inter-arrival times have squared
/// coefficient of variation `arrival_cv2` ([`LatencyModel::with_arrival_cv2`]). Sizing uses
/// the Poisson default: burst sizing already inflates demand by the measured dispersion, so
/// feeding that dispersion in here as well would count it twice.
///
/// # Errors
/// As [`capacity_per_replica`]; [`CapacityError::Latency`] also for a negative or non-finite
/// `arrival_cv2`.
pub fn capacity_per_replica_with_arrivals(
    profile: &Profile,
    mix: &RequestMix,
    slo: &Slo,
    arrival_cv2: f64,
) -> Result<Capacity, CapacityError> {
    for (what, got) in [("ttft_ms", slo.ttft_ms), ("tpot_ms", slo.tpot_ms)] {
        if !(got.is_finite() && got > 0.0) {
            return Err(CapacityError::BadSlo { what, got });
        }
    }
    let model = LatencyModel::new(profile, mix)?.with_arrival_cv2(arrival_cv2)?;
    let sat = model.saturation_rate_per_s();
    let at = |rate: f64| model.predict(rate, 1);
    let idle = at(0.0)?;
    if !slo.met_by(&idle) {
        return Err(CapacityError::Infeasible {
            percentile: slo.percentile,
            idle_ttft_ms: idle.ttft_ms.at(slo.percentile),
            idle_tpot_ms: idle.tpot_ms.at(slo.percentile),
            slo_ttft_ms: slo.ttft_ms,
            slo_tpot_ms: slo.tpot_ms,
        });
    }
    // Invariant: `lo` meets the SLO, `hi` does not (saturation never does).
    let (mut lo, mut hi) = (0.0, sat);
    while hi - lo > REL_TOL * sat {
        let mid = 0.5 * (lo + hi);
        if slo.met_by(&at(mid)?) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    // Which bound stops us: look just above the capacity.
    let above = at(hi)?;
    let binding = if above.saturated {
        Binding::Saturation
    } else if above.ttft_ms.at(slo.percentile) > slo.ttft_ms {
        Binding::Ttft
    } else if above.tpot_ms.at(slo.percentile) > slo.tpot_ms {
        Binding::Tpot
    } else {
        Binding::Saturation
    };
    Ok(Capacity {
        rate_per_s: lo,
        saturation_rate_per_s: sat,
        binding,
    })
}

/// Memoises [`capacity_per_replica`] by (profile key, mix, SLO). The caller names the profile
/// (e.g. `model/gpu/tp`) and must use a new key when its contents change.
#[derive(Debug, Default)]
pub struct CapacityCache {
    entries: HashMap<CacheKey, Capacity>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    profile: String,
    mix: Vec<u64>,
    slo: (u64, u64, Percentile),
}

impl CapacityCache {
    /// An empty cache.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Cached capacity, computed on first use.
    ///
    /// # Errors
    /// As [`capacity_per_replica`] (errors are not cached).
    pub fn get(
        &mut self,
        profile_key: &str,
        profile: &Profile,
        mix: &RequestMix,
        slo: &Slo,
    ) -> Result<Capacity, CapacityError> {
        let mut mix_bits = Vec::new();
        for dist in [&mix.prompt_tokens, &mix.output_tokens] {
            mix_bits.push(dist.points().len() as u64);
            for &(t, w) in dist.points() {
                mix_bits.push(t.to_bits());
                mix_bits.push(w.to_bits());
            }
        }
        let key = CacheKey {
            profile: profile_key.to_string(),
            mix: mix_bits,
            slo: (slo.ttft_ms.to_bits(), slo.tpot_ms.to_bits(), slo.percentile),
        };
        if let Some(c) = self.entries.get(&key) {
            return Ok(*c);
        }
        let c = capacity_per_replica(profile, mix, slo)?;
        self.entries.insert(key, c);
        Ok(c)
    }

    /// Number of cached entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
