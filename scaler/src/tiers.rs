//! Three tiers per model and variant — **hot** (serving), **warm** (engine asleep: vLLM
//! sleep mode level 1, weights in CPU RAM, wakes in seconds), **cold** (no pod; a cold
//! start takes minutes) — and which replica goes first on a scale-down.
//!
//! Where to start: [`plan_tiers`] turns one evaluation's numbers (the all-hot plan, the
//! demand forecast over the wake and cold-start horizons, how long the model has been idle)
//! into a [`TierPlan`] per variant; [`removal_order`] ranks replicas by the value of their
//! KV cache for `controller.kubernetes.io/pod-deletion-cost`. Pure: no I/O, no clock. The
//! rule, its costs and defaults are documented in `docs/scale-to-zero.md`.
//!
//! In one paragraph: a replica is **hot** if it is needed before a wake could finish (the
//! upper forecast over the next interval, at least the demand observed now); every replica
//! the plan holds serves, whatever a sleeping one would cost (measured: sleeping the plan
//! beyond the wake horizon broke the SLO). The **warm pool** is sized like a newsvendor's
//! stock: replicas of capacity are kept until `P(demand over the cold-start horizon > capacity)`
//! falls below the critical ratio `c_u / (c_u + c_o)`, where `c_u` is what the requests a
//! missing replica would serve during a cold start cost by waiting and `c_o` what a warm
//! replica costs over that horizon. When the model is **idle** (fewer than one request
//! expected while a wake runs) every replica sleeps, and a pod is kept — or started, cold,
//! ahead of a predicted return — while one cold-start episode (the requests that would
//! wait on it) weighed by the probability that demand returns within a cold start
//! (`crate::return_forecast`, learnt per model) costs more than a warm replica over that
//! span: the hazard form of the ski rental. Before anything is learnt, a TTL: the episode
//! cost divided by a warm replica's cost per second (the same rule under a scale-free
//! prior on idle-spell lengths). `IsActive` is false only when nothing is hot or warm.

use serde::Deserialize;

use crate::return_forecast::ReturnOdds;

/// Costs and bounds of the tier rule (`sizing.tiers` in the config file).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TierSettings {
    /// Keep a warm pool (false: plain scale-to-zero — idle models go cold at once, the hot
    /// rule unchanged). Default true.
    pub warm_pool: bool,
    /// A warm replica's cost as a fraction of a hot one's. Default 1.0: a sleeping pod
    /// still holds its GPU in Kubernetes' accounting; lower it when the freed GPU memory
    /// serves another model's engine.
    pub warm_cost_fraction: f64,
    /// What one request waiting on a cold start costs, in the currency of
    /// `cost_per_hour`. Default [`DEFAULT_COLD_WAIT_COST_PER_REQUEST`].
    pub cold_wait_cost_per_request: f64,
    /// Most warm replicas beyond those the plan holds, per model. Default 0: at the
    /// default `warm_cost_fraction` a warm replica costs a whole GPU, and the plan already
    /// covers the attainment quantile of demand over the cold-start horizon; an idle model
    /// still keeps one warm replica (the newsvendor's stock, at least 1).
    pub max_warm: u32,
    /// Bounds on the idle TTL before warm goes cold, seconds. Defaults 0 and
    /// [`DEFAULT_MAX_TTL_S`].
    pub min_ttl_s: f64,
    /// Upper bound on the idle TTL, seconds.
    pub max_ttl_s: f64,
    /// Weight, in days of evidence, of the base-rate prior on the learnt return
    /// probability (`crate::return_forecast`): the model's own rate of returns after long
    /// idle spells, so that hours with no demand on the days seen do not get probability
    /// 0. Default 0 (bounded support): at `warm_cost_fraction` 1 the prior keeps sporadic
    /// models warm through whole days; worth it where a sleeping engine costs a fraction
    /// of a GPU (`docs/scale-to-zero.md`, *Sporadic models*).
    pub return_prior_days: f64,
}

/// Default price of one request waiting on a cold start: the person waiting. A cold start
/// (300 s in the shipped profiles) instead of a wake (30 s) makes a request wait 270 s
/// longer; at US average hourly earnings (≈ $35/h, BLS Current Employment Statistics,
/// 2024) that is ≈ $2.6 of someone's time, rounded down to 2.5 (in the currency of
/// `cost_per_hour`, dollars in the shipped fleet). Against a GPU-hour of $1.3–3 it says:
/// keep one GPU warm for hours rather than let a returning user wait minutes.
pub const DEFAULT_COLD_WAIT_COST_PER_REQUEST: f64 = 2.5;

/// Default longest idle TTL: one day. Demand that follows a daily cycle returns within
/// it; a model idle for a whole day is not coming back on its pattern, and a warm GPU for
/// another day costs more than any single cold start.
pub const DEFAULT_MAX_TTL_S: f64 = 86_400.0;

impl Default for TierSettings {
    fn default() -> Self {
        Self {
            warm_pool: true,
            warm_cost_fraction: 1.0,
            cold_wait_cost_per_request: DEFAULT_COLD_WAIT_COST_PER_REQUEST,
            max_warm: 0,
            min_ttl_s: 0.0,
            max_ttl_s: DEFAULT_MAX_TTL_S,
            return_prior_days: 0.0,
        }
    }
}

impl TierSettings {
    /// Plain scale-to-zero: the same hot rule, no warm pool.
    #[must_use]
    pub fn plain() -> Self {
        Self {
            warm_pool: false,
            ..Self::default()
        }
    }

    /// Checks ranges; the message names the key and what was expected.
    ///
    /// # Errors
    /// A human-readable message for the first value out of range.
    pub fn validate(&self) -> Result<(), String> {
        let check = |key: &str, v: f64, ok: bool, want: &str| {
            if v.is_finite() && ok {
                Ok(())
            } else {
                Err(format!("sizing.tiers.{key} must be {want}, got {v}"))
            }
        };
        check(
            "warm_cost_fraction",
            self.warm_cost_fraction,
            self.warm_cost_fraction > 0.0 && self.warm_cost_fraction <= 1.0,
            "within (0, 1]",
        )?;
        check(
            "cold_wait_cost_per_request",
            self.cold_wait_cost_per_request,
            self.cold_wait_cost_per_request >= 0.0,
            ">= 0",
        )?;
        check("min_ttl_s", self.min_ttl_s, self.min_ttl_s >= 0.0, ">= 0")?;
        check(
            "return_prior_days",
            self.return_prior_days,
            self.return_prior_days >= 0.0,
            ">= 0",
        )?;
        check(
            "max_ttl_s",
            self.max_ttl_s,
            self.max_ttl_s >= self.min_ttl_s,
            ">= min_ttl_s",
        )
    }
}

/// One variant as the tier rule sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TierVariant {
    /// Variant name.
    pub name: String,
    /// Replicas the (stabilised, all-hot) plan asks for.
    pub planned: u32,
    /// Requests/s one replica serves within the SLO.
    pub capacity_rps: f64,
    /// Price of a replica-hour.
    pub cost_per_hour: f64,
    /// Cold start (new pod to serving), seconds.
    pub cold_start_s: f64,
    /// Wake from sleep, seconds.
    pub wake_s: f64,
    /// Most replicas.
    pub max: u32,
}

/// What the forecast and the observations say at one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct TierInput {
    /// Variants (fleet order).
    pub variants: Vec<TierVariant>,
    /// Demand before a wake could finish: the attainment quantile of the next forecast
    /// interval, at least the demand observed now (req/s).
    pub demand_wake_rps: f64,
    /// Demand over the cold-start horizon: `(quantile level, req/s)`, the highest of each
    /// quantile over the horizon, levels ascending.
    pub demand_cold: Vec<(f64, f64)>,
    /// Mean forecast over the cold-start horizon (req/s).
    pub demand_expected_rps: f64,
    /// Mean demand of the last active spell (req/s), for the TTL when the forecast is 0.
    pub recent_active_rps: f64,
    /// Seconds since the model was last hot (0 while it is).
    pub idle_for_s: f64,
    /// Probability that demand returns within the cold-start horizon from now, given the
    /// model idle since its last demand (`crate::return_forecast`; `None`: not idle or
    /// nothing learnt, the TTL applies).
    pub return_now: Option<ReturnOdds>,
    /// The same over the cold-start horizon that starts once a cold start begun now would
    /// finish: what a pod started now (cold) would be there for.
    pub return_after_cold_start: Option<ReturnOdds>,
}

/// The tiers of one variant.
#[derive(Debug, Clone, PartialEq)]
pub struct TierPlan {
    /// Variant name.
    pub variant: String,
    /// Serving replicas.
    pub hot: u32,
    /// Sleeping replicas (pods that exist; KEDA is told `hot + warm`).
    pub warm: u32,
    /// A short fixed word: `hot`, `warm_pool`, `idle_warm`, `cold`.
    pub action: &'static str,
    /// One human line saying why.
    pub reason: String,
}

impl TierPlan {
    /// Pods that exist: what KEDA is told.
    #[must_use]
    pub fn pods(&self) -> u32 {
        self.hot + self.warm
    }
}

/// The tiers of every variant of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelTiers {
    /// Per variant, in input order.
    pub variants: Vec<TierPlan>,
    /// Whether the model is idle (nothing needs to be hot).
    pub idle: bool,
    /// Idle TTL before warm goes cold, seconds.
    pub ttl_s: f64,
    /// The newsvendor's critical ratio (the forecast quantile the warm pool covers).
    pub critical_ratio: f64,
    /// `IsActive`: some replica is hot or warm.
    pub active: bool,
    /// The return probability the idle decision weighed (the larger of now and after a
    /// cold start), when it came from the return forecast rather than the TTL.
    pub return_probability: Option<f64>,
}

/// Linear interpolation of a quantile function given at `(level, value)` points (levels
/// ascending); clamped to the outermost levels.
#[must_use]
pub fn quantile_at(points: &[(f64, f64)], level: f64) -> f64 {
    let Some(first) = points.first() else {
        return 0.0;
    };
    if level <= first.0 {
        return first.1;
    }
    for w in points.windows(2) {
        let ((l0, v0), (l1, v1)) = (w[0], w[1]);
        if level <= l1 {
            let t = if l1 > l0 {
                (level - l0) / (l1 - l0)
            } else {
                1.0
            };
            return v0 + t * (v1 - v0);
        }
    }
    points.last().map_or(0.0, |p| p.1)
}

/// The newsvendor's critical ratio `c_u / (c_u + c_o)` for one replica of `v`: underage =
/// the requests it would serve during a cold start (minus a wake) waiting, overage = a warm
/// replica over the cold-start horizon.
#[must_use]
pub fn critical_ratio(s: &TierSettings, v: &TierVariant) -> f64 {
    let under =
        s.cold_wait_cost_per_request * v.capacity_rps * (v.cold_start_s - v.wake_s).max(0.0);
    let over = s.warm_cost_fraction * v.cost_per_hour * v.cold_start_s / 3600.0;
    if under + over <= 0.0 {
        0.0
    } else {
        under / (under + over)
    }
}

/// Idle TTL (seconds): one cold-start episode's waiting cost over a warm replica's cost
/// per second (ski rental), bounded by the settings.
#[must_use]
pub fn idle_ttl_s(s: &TierSettings, v: &TierVariant, rate_rps: f64) -> f64 {
    let waiting = (rate_rps * (v.cold_start_s - v.wake_s).max(0.0)).max(1.0);
    let episode = s.cold_wait_cost_per_request * waiting;
    let per_s = s.warm_cost_fraction * v.cost_per_hour / 3600.0;
    let ttl = if per_s > 0.0 {
        episode / per_s
    } else {
        s.max_ttl_s
    };
    ttl.clamp(s.min_ttl_s, s.max_ttl_s)
}

/// The variant that holds the warm pool: the one the plan gives most capacity; when the plan
/// runs nothing (idle), the one whose newsvendor stock costs least per hour. An idle pool
/// only has to absorb the first requests of the next spell (the plan scales up behind it),
/// so one replica of the cheaper GPU beats one of the cheaper-per-capacity GPU whenever
/// it covers the demand quantile.
fn pool_variant(s: &TierSettings, vs: &[TierVariant], demand_cold: &[(f64, f64)]) -> Option<usize> {
    let most = (0..vs.len())
        .filter(|&i| vs[i].planned > 0)
        .max_by(|&a, &b| {
            (f64::from(vs[a].planned) * vs[a].capacity_rps)
                .total_cmp(&(f64::from(vs[b].planned) * vs[b].capacity_rps))
                .then(b.cmp(&a))
        });
    let stock_cost = |v: &TierVariant| {
        let need = quantile_at(demand_cold, critical_ratio(s, v));
        ((need / v.capacity_rps) - 1e-9).ceil().max(1.0) * v.cost_per_hour
    };
    most.or_else(|| {
        (0..vs.len())
            .filter(|&i| vs[i].capacity_rps > 0.0 && vs[i].max > 0)
            .min_by(|&a, &b| {
                stock_cost(&vs[a])
                    .total_cmp(&stock_cost(&vs[b]))
                    .then(
                        (vs[a].cost_per_hour / vs[a].capacity_rps)
                            .total_cmp(&(vs[b].cost_per_hour / vs[b].capacity_rps)),
                    )
                    .then(a.cmp(&b))
            })
    })
}

/// Hot, warm and cold per variant for one evaluation (see the module header).
#[must_use]
pub fn plan_tiers(s: &TierSettings, input: &TierInput) -> ModelTiers {
    let vs = &input.variants;
    let pool = pool_variant(s, vs, &input.demand_cold);
    let pv = pool.map(|i| &vs[i]);
    let wake_s = pv.map_or(0.0, |v| v.wake_s);
    let ratio = pv.map_or(0.0, |v| critical_ratio(s, v));
    let lambda = input.demand_expected_rps.max(input.recent_active_rps);
    let ttl_s = pv.map_or(0.0, |v| idle_ttl_s(s, v, lambda));
    let need_cold = quantile_at(&input.demand_cold, ratio);
    // Idle: fewer than one request expected (at the upper quantile) while a wake runs.
    let idle = input.demand_wake_rps * wake_s.max(1.0) < 1.0;
    let mut out: Vec<TierPlan> = vs
        .iter()
        .map(|v| TierPlan {
            variant: v.name.clone(),
            hot: 0,
            warm: 0,
            action: "cold",
            reason: String::new(),
        })
        .collect();
    let mut return_probability = None;
    if idle {
        // The hazard form of the ski rental: a pod is worth having over the next cold-start
        // span while one cold-start episode, weighed by the probability that demand
        // returns within that span, costs more than the pod over it. Evaluated now (keep
        // the pod) and one cold start ahead (a pod started now, cold, is there by then:
        // pre-warming). Without a learnt return forecast the prior is the TTL, which is the
        // same rule under a scale-free (Lindy) spell-length prior.
        let odds = match (input.return_now, input.return_after_cold_start) {
            (Some(a), Some(b)) => Some(if b.probability > a.probability { b } else { a }),
            (Some(a), None) | (None, Some(a)) => Some(a),
            (None, None) => None,
        };
        let episode = pv.map_or(0.0, |v| {
            s.cold_wait_cost_per_request * (lambda * (v.cold_start_s - v.wake_s)).max(1.0)
        });
        let rent = pv.map_or(0.0, |v| {
            s.warm_cost_fraction * v.cost_per_hour * v.cold_start_s / 3600.0
        });
        let keep = s.warm_pool
            && match odds {
                Some(o) => {
                    return_probability = Some(o.probability);
                    o.probability > 0.0 && episode * o.probability >= rent
                }
                None => input.idle_for_s < ttl_s,
            };
        if let (Some(p), Some(v), true) = (pool, pv, keep) {
            let stock = (need_cold / v.capacity_rps).ceil().max(1.0) as u32;
            let warm = stock.min(s.max_warm.max(1)).min(v.max);
            out[p].warm = warm;
            out[p].action = "idle_warm";
            let why = match odds {
                Some(o) => format!(
                    "P(demand returns within a {:.0} s cold start) {:.4} from {} × one cold-start episode {episode:.2} ≥ {rent:.3} for a warm replica over that span",
                    v.cold_start_s,
                    o.probability,
                    o.source.name(),
                ),
                None => format!(
                    "{:.0} s more of the {ttl_s:.0} s TTL (one cold-start episode ≈ {:.0} waiting requests × {} vs {:.4}/s per warm replica)",
                    ttl_s - input.idle_for_s,
                    (lambda * (v.cold_start_s - v.wake_s)).max(1.0),
                    s.cold_wait_cost_per_request,
                    s.warm_cost_fraction * v.cost_per_hour / 3600.0,
                ),
            };
            out[p].reason = format!(
                "idle (q-wake demand {:.3} req/s: < 1 request per {wake_s:.0} s wake): {warm} asleep: {why}",
                input.demand_wake_rps,
            );
        }
        if let (Some(o), false, true) = (odds, keep, s.warm_pool) {
            for t in out.iter_mut() {
                t.reason = format!(
                    "idle: cold, P(demand returns within a cold start) {:.4} from {} × one cold-start episode {episode:.2} < {rent:.3} for a warm replica over that span",
                    o.probability,
                    o.source.name(),
                );
            }
        }
        let pool_name = pv.map_or("", |v| v.name.as_str());
        for t in out.iter_mut().filter(|t| t.reason.is_empty()) {
            t.reason = if keep {
                format!("idle: cold here, the warm replica is on {pool_name}")
            } else if s.warm_pool {
                format!(
                    "idle for {:.0} s ≥ TTL {ttl_s:.0} s: cold",
                    input.idle_for_s
                )
            } else {
                "idle: cold (warm pool off)".into()
            };
        }
    } else {
        let total_cap: f64 = vs
            .iter()
            .map(|v| f64::from(v.planned) * v.capacity_rps)
            .sum();
        for (i, v) in vs.iter().enumerate() {
            let t = &mut out[i];
            let share_cap = if total_cap > 0.0 {
                f64::from(v.planned) * v.capacity_rps / total_cap
            } else if Some(i) == pool {
                1.0
            } else {
                0.0
            };
            let want = input.demand_wake_rps * share_cap;
            let mut hot = if v.capacity_rps > 0.0 && want > 0.0 {
                ((want / v.capacity_rps) - 1e-9).ceil().max(1.0) as u32
            } else {
                0
            };
            hot = hot.min(v.max);
            let pods = v.planned.max(hot);
            // Every planned pod serves, whatever a sleeping one costs: the plan is what
            // meets the SLO over the cold-start horizon, and a pod asleep behind it is
            // woken only at the next evaluation plus a wake. Measured on the whole ServeGen
            // m-large fleet at `warm_cost_fraction` 1/8 (`docs/BENCHMARKS.md`, *Sleeping
            // engines that share GPUs*): sleeping the plan's pods beyond the wake horizon
            // saved 15 % of GPU cost and lost 9.6 points of attainment (95.8 → 86.2 %).
            // Only pods beyond the plan sleep; without a warm pool nothing sleeps either.
            // The warm pool beyond the plan is added below.
            t.hot = pods;
            t.action = "hot";
        }
        if let (Some(p), Some(v), true) = (pool, pv, s.warm_pool) {
            let have: f64 = vs
                .iter()
                .zip(&out)
                .map(|(v, t)| f64::from(t.pods()) * v.capacity_rps)
                .sum();
            let extra = if v.capacity_rps > 0.0 {
                ((need_cold - have) / v.capacity_rps - 1e-9).ceil().max(0.0) as u32
            } else {
                0
            };
            let room = v.max.saturating_sub(out[p].pods());
            let extra = extra.min(s.max_warm).min(room);
            out[p].warm += extra;
            if out[p].warm > 0 {
                out[p].action = "warm_pool";
            }
        }
        for (v, t) in vs.iter().zip(out.iter_mut()) {
            t.reason = format!(
                "{} hot for q-wake demand {:.2} req/s, {} asleep (plan {}, newsvendor covers q{:.1} {:.2} req/s over the {:.0} s cold start)",
                t.hot,
                input.demand_wake_rps,
                t.warm,
                v.planned,
                ratio * 100.0,
                need_cold,
                v.cold_start_s,
            );
        }
    }
    let active = out.iter().any(|t| t.pods() > 0);
    ModelTiers {
        variants: out,
        idle,
        ttl_s,
        critical_ratio: ratio,
        active,
        return_probability,
    }
}

/// What a replica's KV cache is worth, from its engine's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ReplicaValue {
    /// Asleep (its KV cache is already gone).
    pub asleep: bool,
    /// Not yet ready (still starting).
    pub starting: bool,
    /// Prompt tokens served from its prefix cache per second, recently
    /// (`rate(vllm:prefix_cache_hits_total)`).
    pub prefix_hit_tokens_per_s: f64,
    /// Tokens held in its KV cache (`kv_cache_usage_perc × capacity`).
    pub kv_tokens: f64,
    /// Requests running or waiting on it.
    pub in_flight: u32,
}

/// How far ahead a replica's recent prefix hits are counted as its cache's value, seconds:
/// the prefill work the cache would save over this long if traffic went on as now.
pub const PREFIX_VALUE_HORIZON_S: f64 = 300.0;

impl ReplicaValue {
    /// The value in tokens: prefix hits over [`PREFIX_VALUE_HORIZON_S`] plus KV tokens held
    /// (context lost with the replica). Starting and sleeping replicas are worth nothing.
    #[must_use]
    pub fn tokens(&self) -> f64 {
        if self.asleep || self.starting {
            0.0
        } else {
            self.prefix_hit_tokens_per_s * PREFIX_VALUE_HORIZON_S + self.kv_tokens
        }
    }
}

/// Indices of `replicas` in the order they should go on a scale-down: starting ones first,
/// then sleeping ones, then by KV-cache value ascending, then fewer requests in flight
/// (they drain sooner); ties keep input order.
#[must_use]
pub fn removal_order(replicas: &[ReplicaValue]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..replicas.len()).collect();
    idx.sort_by(|&a, &b| {
        let (x, y) = (&replicas[a], &replicas[b]);
        y.starting
            .cmp(&x.starting)
            .then(y.asleep.cmp(&x.asleep))
            .then(x.tokens().total_cmp(&y.tokens()))
            .then(x.in_flight.cmp(&y.in_flight))
            .then(a.cmp(&b))
    });
    idx
}

/// `controller.kubernetes.io/pod-deletion-cost` per replica (input order): the rank in
/// [`removal_order`] (0 = removed first), so the ReplicaSet removes the least valuable first.
#[must_use]
pub fn deletion_costs(replicas: &[ReplicaValue]) -> Vec<i32> {
    let mut cost = vec![0; replicas.len()];
    for (rank, i) in removal_order(replicas).into_iter().enumerate() {
        cost[i] = i32::try_from(rank).unwrap_or(i32::MAX);
    }
    cost
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variant(planned: u32) -> TierVariant {
        TierVariant {
            name: "h100".into(),
            planned,
            capacity_rps: 2.0,
            cost_per_hour: 3.0,
            cold_start_s: 300.0,
            wake_s: 30.0,
            max: 20,
        }
    }

    /// The pre-2026-11-29 defaults, whose arithmetic the worked example in
    /// `docs/scale-to-zero.md` follows: cheap waits, a pool beyond the plan.
    fn priced() -> TierSettings {
        TierSettings {
            cold_wait_cost_per_request: 0.01,
            max_warm: 2,
            max_ttl_s: 3600.0,
            ..TierSettings::default()
        }
    }

    fn band(p50: f64, p90: f64, p99: f64) -> Vec<(f64, f64)> {
        vec![
            (0.5, p50),
            (0.9, p90),
            (0.95, (p90 + p99) / 2.0),
            (0.99, p99),
        ]
    }

    fn input(planned: u32, wake: f64, cold: Vec<(f64, f64)>, idle_for_s: f64) -> TierInput {
        TierInput {
            variants: vec![variant(planned)],
            demand_wake_rps: wake,
            demand_cold: cold,
            demand_expected_rps: 0.0,
            recent_active_rps: 0.5,
            idle_for_s,
            return_now: None,
            return_after_cold_start: None,
        }
    }

    #[test]
    fn critical_ratio_follows_the_costs() {
        let v = variant(1);
        let s = priced();
        // under = 0.01 × 2 req/s × 270 s = 5.4; over = 1 × 3 $/h × 300 s = 0.25.
        assert!((critical_ratio(&s, &v) - 5.4 / 5.65).abs() < 1e-9);
        let cheap_wait = TierSettings {
            cold_wait_cost_per_request: 0.0001,
            ..s
        };
        assert!(critical_ratio(&cheap_wait, &v) < 0.5);
        let cheap_warm = TierSettings {
            warm_cost_fraction: 0.1,
            ..cheap_wait
        };
        assert!(critical_ratio(&cheap_warm, &v) > critical_ratio(&cheap_wait, &v));
    }

    #[test]
    fn quantiles_interpolate_and_clamp() {
        let q = band(1.0, 5.0, 9.0);
        assert_eq!(quantile_at(&q, 0.5), 1.0);
        assert!((quantile_at(&q, 0.7) - 3.0).abs() < 1e-9);
        assert_eq!(quantile_at(&q, 0.999), 9.0);
        assert_eq!(quantile_at(&q, 0.1), 1.0);
        assert_eq!(quantile_at(&[], 0.9), 0.0);
    }

    #[test]
    fn active_model_keeps_its_plan_hot_and_a_newsvendor_warm_pool() {
        // A warm replica at half a hot one's price.
        let s = TierSettings {
            warm_cost_fraction: 0.5,
            ..priced()
        };
        // Now 3 req/s (2 hot at 2 req/s each); the plan holds 3; the cold-start horizon's
        // tail reaches 9 req/s: the newsvendor (ratio 0.956) wants 5 replicas of capacity.
        let t = plan_tiers(&s, &input(3, 3.0, band(3.0, 6.0, 10.0), 0.0));
        let v = &t.variants[0];
        assert!(!t.idle && t.active);
        assert_eq!(v.hot, 3, "the plan serves {v:?}");
        assert_eq!(v.pods(), 5, "3 planned + 2 warm (max_warm) {v:?}");
        assert!(t.critical_ratio > 0.97, "{}", t.critical_ratio);
        assert_eq!(v.action, "warm_pool");
        // Without a warm pool every planned pod serves and nothing is added.
        let p = plan_tiers(
            &TierSettings::plain(),
            &input(3, 3.0, band(3.0, 6.0, 10.0), 0.0),
        );
        assert_eq!((p.variants[0].hot, p.variants[0].warm), (3, 0));
        // A cheap wait (low critical ratio) adds no warm replica beyond the plan.
        let cheap = TierSettings {
            cold_wait_cost_per_request: 0.00001,
            ..s
        };
        let c = plan_tiers(&cheap, &input(3, 3.0, band(3.0, 6.0, 10.0), 0.0));
        assert_eq!(c.variants[0].pods(), 3, "{:?}", c.variants[0]);
    }

    #[test]
    fn idle_model_sleeps_then_goes_cold_after_the_ttl() {
        let s = priced();
        // TTL: 0.01 × (0.5 req/s × 270 s) / (3 $/h / 3600) = 1620 s.
        let t = plan_tiers(&s, &input(2, 0.0, band(0.0, 0.2, 1.0), 100.0));
        assert!(t.idle && t.active);
        assert!((t.ttl_s - 1620.0).abs() < 1e-6, "{}", t.ttl_s);
        assert_eq!((t.variants[0].hot, t.variants[0].warm), (0, 1));
        assert_eq!(t.variants[0].action, "idle_warm");
        let late = plan_tiers(&s, &input(2, 0.0, band(0.0, 0.2, 1.0), 1700.0));
        assert!(!late.active, "cold after the TTL: IsActive false");
        assert_eq!(late.variants[0].pods(), 0);
        // Plain scale-to-zero goes cold at once, whatever the plan held.
        let plain = plan_tiers(
            &TierSettings::plain(),
            &input(2, 0.0, band(0.0, 0.2, 1.0), 0.0),
        );
        assert!(!plain.active && plain.variants[0].reason.contains("warm pool off"));
        // A cheaper warm replica stays longer.
        let cheap = TierSettings {
            warm_cost_fraction: 0.5,
            ..s
        };
        assert!(plan_tiers(&cheap, &input(2, 0.0, band(0.0, 0.2, 1.0), 0.0)).ttl_s > t.ttl_s);
    }

    #[test]
    fn the_pool_goes_to_the_cheapest_capacity_when_nothing_is_planned() {
        let mut a = variant(0);
        a.name = "a100".into();
        a.capacity_rps = 1.0;
        a.cost_per_hour = 1.3;
        let mut h = variant(0);
        h.cost_per_hour = 3.0; // 1.5 $/h per req/s vs a100's 1.3
        let i = TierInput {
            variants: vec![h, a],
            demand_wake_rps: 0.0,
            demand_cold: band(0.0, 0.1, 0.5),
            demand_expected_rps: 0.1,
            recent_active_rps: 0.0,
            idle_for_s: 0.0,
            return_now: None,
            return_after_cold_start: None,
        };
        let t = plan_tiers(&TierSettings::default(), &i);
        assert_eq!(t.variants[0].pods(), 0);
        assert_eq!(t.variants[1].warm, 1);
    }

    #[test]
    fn planned_pods_serve_whatever_a_sleeping_one_costs() {
        // The plan's 3 pods all serve although 1 would cover the wake horizon, at fraction 1
        // (a sleeping pod still holds its GPU) and at 1/8 alike (measured: sleeping them
        // broke the SLO, see `plan_tiers`).
        let i = input(3, 1.5, band(1.5, 3.0, 5.0), 0.0);
        for fraction in [1.0, 0.5, 0.125] {
            let s = TierSettings {
                warm_cost_fraction: fraction,
                ..TierSettings::default()
            };
            let t = plan_tiers(&s, &i);
            assert_eq!(
                (t.variants[0].hot, t.variants[0].warm),
                (3, 0),
                "{fraction}"
            );
        }
    }

    #[test]
    fn default_costs_keep_one_gpu_warm_for_hours_not_minutes() {
        let s = TierSettings::default();
        // After a spell at 0.5 req/s a cold start would hold 135 requests: 2.5 × 135 against
        // $3/h is weeks of rent, so the day-long bound applies.
        let t = plan_tiers(&s, &input(2, 0.0, band(0.0, 0.2, 1.0), 100.0));
        assert_eq!(t.ttl_s, DEFAULT_MAX_TTL_S);
        assert_eq!(
            (t.variants[0].hot, t.variants[0].warm),
            (0, 1),
            "one warm, not max_warm"
        );
        assert!(!plan_tiers(&s, &input(2, 0.0, band(0.0, 0.2, 1.0), 86_401.0)).active);
        // With no active spell behind it (one request would wait), the rent of a $3/h GPU
        // equals that one wait after 2.5 / (3/3600) = 3000 s.
        let mut lone = input(2, 0.0, band(0.0, 0.0, 0.0), 0.0);
        lone.recent_active_rps = 0.0;
        assert!((plan_tiers(&s, &lone).ttl_s - 3000.0).abs() < 1e-6);
        // Against the old price (0.01 a wait) the TTL was 27 minutes: defaults went cold in
        // most idle spells of a ServeGen client.
        assert!(plan_tiers(&priced(), &input(2, 0.0, band(0.0, 0.2, 1.0), 0.0)).ttl_s < 1800.0);
    }

    #[test]
    fn a_learnt_return_forecast_decides_warm_or_cold_by_the_hazard_rule() {
        use crate::return_forecast::{ReturnOdds, ReturnSource};
        let s = TierSettings::default();
        let odds = |p: f64| {
            Some(ReturnOdds {
                probability: p,
                source: ReturnSource::TimeOfDay,
            })
        };
        // Episode after a 0.5 req/s spell: 2.5 × 135 = 337.5; rent of an H100 over the
        // 300 s cold start: 3 × 300 / 3600 = 0.25. Break-even probability 0.25 / 337.5.
        let breakeven = 0.25 / 337.5;
        let mut i = input(2, 0.0, band(0.0, 0.2, 1.0), 100.0);
        i.return_now = odds(2.0 * breakeven);
        i.return_after_cold_start = odds(0.0);
        let t = plan_tiers(&s, &i);
        assert_eq!(t.variants[0].warm, 1, "{:?}", t.variants[0]);
        assert_eq!(t.return_probability, Some(2.0 * breakeven));
        assert!(t.variants[0].reason.contains("time of day"));
        // Below break-even now and after a cold start: cold, although the TTL (a day) has
        // not run out.
        i.return_now = odds(0.5 * breakeven);
        let t = plan_tiers(&s, &i);
        assert!(!t.active, "{:?}", t.variants[0]);
        assert!(t.variants[0].reason.contains("cold, P(demand returns"));
        // Past any TTL, a return expected one cold start from now starts a pod now:
        // pre-warming.
        i.idle_for_s = 200_000.0;
        i.return_after_cold_start = odds(0.5);
        let t = plan_tiers(&s, &i);
        assert_eq!((t.variants[0].hot, t.variants[0].warm), (0, 1));
        // Without a warm pool the forecast changes nothing: idle is cold.
        assert!(!plan_tiers(&TierSettings::plain(), &i).active);
        // A probability of exactly 0 (no day had demand then) never keeps a pod, whatever a
        // wait costs.
        i.return_now = odds(0.0);
        i.return_after_cold_start = odds(0.0);
        let rich = TierSettings {
            cold_wait_cost_per_request: 1e9,
            ..s
        };
        assert!(!plan_tiers(&rich, &i).active);
    }

    #[test]
    fn an_idle_pool_sits_on_the_gpu_whose_stock_costs_least_per_hour() {
        // h100: 2 req/s at $3/h ($1.5 per req/s); a100: 1.5 req/s at $2.4/h ($1.6 per req/s).
        let mut a = variant(0);
        a.name = "a100".into();
        a.capacity_rps = 1.5;
        a.cost_per_hour = 2.4;
        let h = variant(0);
        let idle = |p99: f64| TierInput {
            variants: vec![h.clone(), a.clone()],
            demand_wake_rps: 0.0,
            demand_cold: band(0.0, p99 / 2.0, p99),
            demand_expected_rps: 0.0,
            recent_active_rps: 0.0,
            idle_for_s: 0.0,
            return_now: None,
            return_after_cold_start: None,
        };
        let s = TierSettings {
            max_warm: 4,
            ..TierSettings::default()
        };
        // A trickle: one a100 ($2.4/h) covers it, cheaper than one h100 although the h100
        // is cheaper per unit of capacity.
        let t = plan_tiers(&s, &idle(0.5));
        assert_eq!((t.variants[0].warm, t.variants[1].warm), (0, 1));
        // 4 req/s at the tail: 2 h100 ($6/h) beat 3 a100 ($7.2/h).
        let t = plan_tiers(&s, &idle(4.0));
        assert_eq!((t.variants[0].warm, t.variants[1].warm), (2, 0));
    }

    #[test]
    fn removal_ranks_starting_then_asleep_then_by_cache_value() {
        let r = |asleep, starting, hits: f64, kv: f64, inflight| ReplicaValue {
            asleep,
            starting,
            prefix_hit_tokens_per_s: hits,
            kv_tokens: kv,
            in_flight: inflight,
        };
        let reps = [
            r(false, false, 100.0, 1000.0, 3), // 31,000
            r(true, false, 0.0, 0.0, 0),
            r(false, false, 0.0, 5000.0, 9), // 5,000
            r(false, true, 0.0, 0.0, 0),
            r(false, false, 0.0, 5000.0, 1), // 5,000, fewer in flight
        ];
        assert_eq!(removal_order(&reps), vec![3, 1, 4, 2, 0]);
        assert_eq!(deletion_costs(&reps), vec![4, 1, 3, 0, 2]);
    }
}
