//! Sizing: integer replicas per GPU variant at the lowest cost that covers demand.
//!
//! Where to start: [`plan_fleet`] takes a [`Problem`] (per model: demand and variants with
//! capacity per replica, cost, limits; optionally the free GPUs per type) and returns a
//! [`FleetPlan`]. Everything here is pure and deterministic.
//!
//! Per model the problem is a bounded integer covering program:
//! `min Σ cost_v·x_v  s.t.  Σ cap_v·x_v ≥ demand,  min_v ≤ x_v ≤ max_v,  Σ_{v∈type t} gpus_v·x_v ≤ free_t`.
//! It is solved exactly by depth-first branch and bound: variants in order of cost per unit
//! of capacity, a fractional (LP) bound that prunes, and ties between equal-cost mixes
//! broken towards the running replicas (a swap costs a cold start). Tests check it
//! against brute force on random instances.
//!
//! Across models, GPUs of a type are shared. Each model is first solved alone; if the
//! sum fits the inventory, that is the exact fleet optimum (each part is minimal and the
//! parts are independent). If it does not fit, GPUs are allocated by a documented rule:
//! models in order of `priority` (higher first), then by shortfall (the larger the part
//! of its demand its current replicas would leave unserved, the earlier), each solved
//! exactly within what is left; a model that cannot be met gets the largest capacity
//! left within its limits, cheapest among those, and its decision says so.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Relative slack when comparing capacity with demand, so that `4 × 12.5 ≥ 50.0` holds
/// despite floating point.
const EPS: f64 = 1e-9;

/// One GPU variant a model can run on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantSpec {
    /// Variant name (unique within the model).
    pub name: String,
    /// GPU type, the key of the inventory.
    pub gpu_type: String,
    /// GPUs one replica holds.
    #[serde(default = "one")]
    pub gpus_per_replica: u32,
    /// Demand one replica serves within the SLO (same unit as the model's demand).
    pub capacity_per_replica: f64,
    /// Cost of one replica per hour.
    pub cost_per_hour: f64,
    /// Fewest replicas.
    #[serde(default)]
    pub min: u32,
    /// Most replicas.
    pub max: u32,
    /// Replicas running now (used to break ties and to order allocation).
    #[serde(default)]
    pub current: u32,
}

fn one() -> u32 {
    1
}

/// One model's sizing problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Model name.
    pub name: String,
    /// Demand to cover (e.g. the forecast quantile the SLO calls for), same unit as
    /// `capacity_per_replica`.
    pub demand: f64,
    /// Higher goes first when inventory is short.
    #[serde(default)]
    pub priority: i32,
    /// Variants of the model.
    pub variants: Vec<VariantSpec>,
}

/// A fleet sizing problem (the input of `slo-scaler plan`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Problem {
    /// Every model.
    pub models: Vec<ModelSpec>,
    /// Free GPUs per GPU type. Absent: unlimited. A type not listed: unlimited.
    #[serde(default)]
    pub inventory: Option<BTreeMap<String, u32>>,
}

/// The plan for one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPlan {
    /// Model name.
    pub name: String,
    /// Whether capacity covers demand.
    pub feasible: bool,
    /// Replicas per variant.
    pub replicas: BTreeMap<String, u32>,
    /// Σ cost × replicas.
    pub cost_per_hour: f64,
    /// Σ capacity × replicas.
    pub capacity: f64,
    /// One human line saying why.
    pub reason: String,
}

/// The plan for every model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetPlan {
    /// Per model, in input order.
    pub models: Vec<ModelPlan>,
    /// Σ over models.
    pub total_cost_per_hour: f64,
}

/// Why a problem was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SizingError {
    /// A number is out of range; the message names it.
    #[error("{0}")]
    Invalid(String),
}

impl Problem {
    /// Checks every number.
    pub fn validate(&self) -> Result<(), SizingError> {
        let bad = |s: String| Err(SizingError::Invalid(s));
        for m in &self.models {
            if !(m.demand.is_finite() && m.demand >= 0.0) {
                return bad(format!(
                    "model {:?}: demand must be a finite number >= 0, got {}",
                    m.name, m.demand
                ));
            }
            if m.variants.is_empty() {
                return bad(format!("model {:?}: expected at least one variant", m.name));
            }
            let mut seen = std::collections::BTreeSet::new();
            for v in &m.variants {
                let at = format!("model {:?} variant {:?}", m.name, v.name);
                if !seen.insert(&v.name) {
                    return bad(format!("{at}: listed twice"));
                }
                if !(v.capacity_per_replica.is_finite() && v.capacity_per_replica > 0.0) {
                    return bad(format!(
                        "{at}: capacity_per_replica must be > 0, got {}",
                        v.capacity_per_replica
                    ));
                }
                if !(v.cost_per_hour.is_finite() && v.cost_per_hour >= 0.0) {
                    return bad(format!(
                        "{at}: cost_per_hour must be >= 0, got {}",
                        v.cost_per_hour
                    ));
                }
                if v.min > v.max {
                    return bad(format!("{at}: min {} exceeds max {}", v.min, v.max));
                }
            }
        }
        Ok(())
    }
}

/// A variant as the search sees it.
#[derive(Debug, Clone, Copy)]
struct Item {
    cap: f64,
    cost: f64,
    gpus: u32,
    /// Index into the budget vector, or `None` when the type has no limit.
    budget: Option<usize>,
    lo: u32,
    hi: u32,
    current: u32,
}

/// Search state shared by the branch-and-bound routines.
struct Search<'a> {
    items: &'a [Item],
    /// Per item, from its position on: the most capacity the rest can still add above
    /// their minimums (budgets ignored: an optimistic bound).
    rest_cap: Vec<f64>,
    budget: Vec<i64>,
    x: Vec<u32>,
    best: Option<(f64, u64, Vec<u32>)>,
}

impl Search<'_> {
    /// Cheapest fractional completion of `need` from items `i..` (a lower bound).
    fn lp_bound(&self, i: usize, mut need: f64) -> f64 {
        let mut cost = 0.0;
        for it in &self.items[i..] {
            if need <= EPS {
                break;
            }
            let room = f64::from(it.hi - it.lo) * it.cap;
            let take = room.min(need);
            cost += take / it.cap * it.cost;
            need -= take;
        }
        if need > EPS { f64::INFINITY } else { cost }
    }

    fn distance(&self) -> u64 {
        self.items
            .iter()
            .zip(&self.x)
            .map(|(it, &x)| u64::from(x.abs_diff(it.current)))
            .sum()
    }

    /// Min-cost cover: `x` holds extra replicas above `lo`; `need` is what is left to cover.
    fn cover(&mut self, i: usize, need: f64, cost: f64) {
        if need <= EPS * need.abs().max(1.0) {
            let d = self.distance();
            let better = match &self.best {
                None => true,
                Some((bc, bd, _)) => cost < bc - EPS || (cost <= bc + EPS && d < *bd),
            };
            if better {
                self.best = Some((cost, d, self.x.clone()));
            }
            return;
        }
        if i == self.items.len() || need > self.rest_cap[i] * (1.0 + EPS) + EPS {
            return;
        }
        if let Some((bc, _, _)) = &self.best
            && cost + self.lp_bound(i, need) > bc + EPS
        {
            return;
        }
        let it = self.items[i];
        // Never more than needed to cover on its own (costs are non-negative).
        let useful = (need / it.cap * (1.0 - EPS)).ceil().max(0.0);
        let top = self
            .budget_top(i)
            .min(useful.min(f64::from(u32::MAX)) as u32);
        self.branch(i, top, |s, y| {
            s.cover(
                i + 1,
                need - f64::from(y) * it.cap,
                cost + f64::from(y) * it.cost,
            )
        });
    }

    /// Most extra replicas of item `i` its limit and its GPU type's budget allow.
    fn budget_top(&self, i: usize) -> u32 {
        let it = self.items[i];
        let mut top = it.hi - it.lo;
        if let Some(b) = it.budget
            && it.gpus > 0
        {
            let fit = (self.budget[b].max(0) as u64 / u64::from(it.gpus)).min(u64::from(u32::MAX));
            top = top.min(fit as u32);
        }
        top
    }

    /// Tries `top, top-1, ..., 0` extra replicas of item `i` (largest first, so good
    /// incumbents come early), keeping `x` and the budgets in step around `visit`.
    fn branch(&mut self, i: usize, top: u32, mut visit: impl FnMut(&mut Self, u32)) {
        let it = self.items[i];
        for y in (0..=top).rev() {
            let used = i64::from(y) * i64::from(it.gpus);
            if let Some(b) = it.budget {
                self.budget[b] -= used;
            }
            self.x[i] = it.lo + y;
            visit(self, y);
            self.x[i] = it.lo;
            if let Some(b) = it.budget {
                self.budget[b] += used;
            }
        }
    }

    /// Largest capacity within limits and budget, cheapest among those.
    fn max_capacity(
        &mut self,
        i: usize,
        cap: f64,
        cost: f64,
        best: &mut Option<(f64, f64, Vec<u32>)>,
    ) {
        if i == self.items.len() {
            let better = match best {
                None => true,
                Some((bcap, bcost, _)) => {
                    cap > *bcap + EPS * bcap.max(1.0)
                        || (cap >= *bcap - EPS * bcap.max(1.0) && cost < *bcost - EPS)
                }
            };
            if better {
                *best = Some((cap, cost, self.x.clone()));
            }
            return;
        }
        if let Some((bcap, _, _)) = best
            && cap + self.rest_cap[i] < *bcap - EPS * bcap.max(1.0)
        {
            return;
        }
        let it = self.items[i];
        let top = self.budget_top(i);
        self.branch(i, top, |s, y| {
            s.max_capacity(
                i + 1,
                cap + f64::from(y) * it.cap,
                cost + f64::from(y) * it.cost,
                best,
            )
        });
    }
}

/// GPU types with a limit, and what is left of each.
#[derive(Debug, Clone)]
struct Inventory {
    types: Vec<String>,
    free: Vec<i64>,
}

impl Inventory {
    fn new(inv: Option<&BTreeMap<String, u32>>) -> Self {
        let (types, free) = inv
            .map(|m| m.iter().map(|(k, v)| (k.clone(), i64::from(*v))).unzip())
            .unwrap_or_default();
        Self { types, free }
    }

    fn index(&self, gpu_type: &str) -> Option<usize> {
        self.types.iter().position(|t| t == gpu_type)
    }
}

/// Solves one model within `inv` (exact), and takes the GPUs it uses out of `inv`.
fn plan_model(m: &ModelSpec, inv: &mut Inventory) -> ModelPlan {
    // Order by cost per unit of capacity (the LP bound needs it), ties by name for
    // determinism.
    let mut order: Vec<usize> = (0..m.variants.len()).collect();
    order.sort_by(|&a, &b| {
        let (va, vb) = (&m.variants[a], &m.variants[b]);
        (va.cost_per_hour / va.capacity_per_replica)
            .total_cmp(&(vb.cost_per_hour / vb.capacity_per_replica))
            .then_with(|| va.name.cmp(&vb.name))
    });
    let items: Vec<Item> = order
        .iter()
        .map(|&k| {
            let v = &m.variants[k];
            Item {
                cap: v.capacity_per_replica,
                cost: v.cost_per_hour,
                gpus: v.gpus_per_replica,
                budget: inv.index(&v.gpu_type),
                lo: v.min,
                hi: v.max,
                current: v.current,
            }
        })
        .collect();
    let mut budget = inv.free.clone();
    for it in &items {
        if let Some(b) = it.budget {
            budget[b] -= i64::from(it.lo) * i64::from(it.gpus);
        }
    }
    let min_cap: f64 = items.iter().map(|it| f64::from(it.lo) * it.cap).sum();
    let min_cost: f64 = items.iter().map(|it| f64::from(it.lo) * it.cost).sum();
    let mut rest_cap = vec![0.0; items.len() + 1];
    for i in (0..items.len()).rev() {
        rest_cap[i] = rest_cap[i + 1] + f64::from(items[i].hi - items[i].lo) * items[i].cap;
    }
    let mins_fit = budget.iter().all(|b| *b >= 0);
    let mut search = Search {
        items: &items,
        rest_cap,
        budget,
        x: items.iter().map(|it| it.lo).collect(),
        best: None,
    };
    if mins_fit {
        search.cover(0, m.demand - min_cap, min_cost);
    }
    let (feasible, x) = match search.best.take() {
        Some((_, _, x)) => (true, x),
        None if mins_fit => {
            let mut best = None;
            search.max_capacity(0, min_cap, min_cost, &mut best);
            (false, best.map(|b| b.2).unwrap_or_else(|| search.x.clone()))
        }
        // Even the minimums do not fit the GPUs left: keep the minimums (they are the
        // user's floor) and say so.
        None => (false, search.x.clone()),
    };
    let mut replicas = BTreeMap::new();
    let (mut capacity, mut cost) = (0.0, 0.0);
    for (pos, &k) in order.iter().enumerate() {
        let v = &m.variants[k];
        replicas.insert(v.name.clone(), x[pos]);
        capacity += f64::from(x[pos]) * v.capacity_per_replica;
        cost += f64::from(x[pos]) * v.cost_per_hour;
        if let Some(b) = inv.index(&v.gpu_type) {
            inv.free[b] -= i64::from(x[pos]) * i64::from(v.gpus_per_replica);
        }
    }
    let mix = order
        .iter()
        .filter(|&&k| replicas[&m.variants[k].name] > 0)
        .map(|&k| format!("{}×{}", replicas[&m.variants[k].name], m.variants[k].name))
        .collect::<Vec<_>>()
        .join(" + ");
    let mix = if mix.is_empty() {
        "no replicas".to_string()
    } else {
        mix
    };
    let reason = if feasible {
        format!(
            "demand {:.2} covered by {mix} (capacity {capacity:.2}) at {cost:.2}/h, the least-cost mix within limits{}",
            m.demand,
            if inv.types.is_empty() {
                ""
            } else {
                " and free GPUs"
            }
        )
    } else {
        let short: Vec<String> = order
            .iter()
            .filter_map(|&k| {
                let v = &m.variants[k];
                inv.index(&v.gpu_type)
                    .map(|b| format!("{} {} free", v.gpu_type, inv.free[b].max(0)))
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        format!(
            "cannot cover demand {:.2}: the most within max replicas{} is {mix} (capacity {capacity:.2}) at {cost:.2}/h{}",
            m.demand,
            if short.is_empty() {
                ""
            } else {
                " and free GPUs"
            },
            if short.is_empty() {
                String::new()
            } else {
                format!(" (after allocation: {})", short.join(", "))
            }
        )
    };
    ModelPlan {
        name: m.name.clone(),
        feasible,
        replicas,
        cost_per_hour: cost,
        capacity,
        reason,
    }
}

/// Plans every model; see the module documentation for the rule when GPUs are short.
pub fn plan_fleet(problem: &Problem) -> Result<FleetPlan, SizingError> {
    problem.validate()?;
    let full = Inventory::new(problem.inventory.as_ref());
    // Each model alone: exact, and the fleet optimum if the sum fits.
    let mut alone = Vec::with_capacity(problem.models.len());
    let mut used = vec![0i64; full.types.len()];
    for m in &problem.models {
        let mut inv = full.clone();
        let p = plan_model(m, &mut inv);
        for (u, (before, after)) in used.iter_mut().zip(full.free.iter().zip(&inv.free)) {
            *u += before - after;
        }
        alone.push(p);
    }
    let fits = used.iter().zip(&full.free).all(|(u, f)| u <= f);
    let models = if fits {
        alone
    } else {
        let shortfall = |m: &ModelSpec| {
            let have: f64 = m
                .variants
                .iter()
                .map(|v| f64::from(v.current) * v.capacity_per_replica)
                .sum();
            if m.demand <= 0.0 {
                0.0
            } else {
                (m.demand - have).max(0.0) / m.demand
            }
        };
        let mut order: Vec<usize> = (0..problem.models.len()).collect();
        order.sort_by(|&a, &b| {
            let (ma, mb) = (&problem.models[a], &problem.models[b]);
            mb.priority
                .cmp(&ma.priority)
                .then_with(|| shortfall(mb).total_cmp(&shortfall(ma)))
                .then_with(|| ma.name.cmp(&mb.name))
        });
        // Minimums are floors the HPA enforces anyway: reserve all of them before any
        // model grows, so an early model cannot take a later model's floor.
        let min_use = |m: &ModelSpec, inv: &Inventory, sign: i64, free: &mut [i64]| {
            for v in &m.variants {
                if let Some(b) = inv.index(&v.gpu_type) {
                    free[b] -= sign * i64::from(v.min) * i64::from(v.gpus_per_replica);
                }
            }
        };
        let mut inv = full.clone();
        for m in &problem.models {
            let mut free = std::mem::take(&mut inv.free);
            min_use(m, &inv, 1, &mut free);
            inv.free = free;
        }
        let mut plans: Vec<Option<ModelPlan>> = vec![None; problem.models.len()];
        let n = order.len();
        for (rank, &k) in order.iter().enumerate() {
            let mut free = std::mem::take(&mut inv.free);
            min_use(&problem.models[k], &inv, -1, &mut free);
            inv.free = free;
            let mut p = plan_model(&problem.models[k], &mut inv);
            p.reason = format!(
                "{}; GPUs were short for the whole fleet, so models were planned by priority then shortfall: this one {} of {n}",
                p.reason,
                rank + 1
            );
            plans[k] = Some(p);
        }
        plans
            .into_iter()
            .map(|p| p.expect("every model planned"))
            .collect()
    };
    let total_cost_per_hour = models.iter().map(|p| p.cost_per_hour).sum();
    Ok(FleetPlan {
        models,
        total_cost_per_hour,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (SplitMix64) so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn random_model(rng: &mut Rng, name: &str, types: &[&str]) -> ModelSpec {
        let nv = 1 + rng.below(3) as usize;
        ModelSpec {
            name: name.into(),
            demand: rng.below(400) as f64 / 10.0,
            priority: rng.below(2) as i32,
            variants: (0..nv)
                .map(|i| {
                    let min = rng.below(2) as u32;
                    VariantSpec {
                        name: format!("v{i}"),
                        gpu_type: types[rng.below(types.len() as u64) as usize].into(),
                        gpus_per_replica: 1 + rng.below(2) as u32,
                        capacity_per_replica: (5 + rng.below(60)) as f64 / 4.0,
                        // Integer-ish costs make ties frequent, exercising tie-breaks.
                        cost_per_hour: (1 + rng.below(8)) as f64,
                        min,
                        max: min + rng.below(6) as u32,
                        current: rng.below(4) as u32,
                    }
                })
                .collect(),
        }
    }

    /// Every assignment of one model within budget: (feasible-by-demand, cost, cap, x).
    fn enumerate(m: &ModelSpec, inv: &BTreeMap<String, u32>) -> Vec<(f64, f64, Vec<u32>)> {
        let mut out = Vec::new();
        let mut x: Vec<u32> = m.variants.iter().map(|v| v.min).collect();
        loop {
            let mut ok = true;
            let mut use_by_type: BTreeMap<&str, u32> = BTreeMap::new();
            for (v, &xi) in m.variants.iter().zip(&x) {
                *use_by_type.entry(&v.gpu_type).or_default() += xi * v.gpus_per_replica;
            }
            for (t, u) in &use_by_type {
                if let Some(f) = inv.get(*t)
                    && u > f
                {
                    ok = false;
                }
            }
            if ok {
                let cost = m
                    .variants
                    .iter()
                    .zip(&x)
                    .map(|(v, &xi)| xi as f64 * v.cost_per_hour)
                    .sum();
                let cap = m
                    .variants
                    .iter()
                    .zip(&x)
                    .map(|(v, &xi)| xi as f64 * v.capacity_per_replica)
                    .sum();
                out.push((cost, cap, x.clone()));
            }
            let mut i = 0;
            loop {
                if i == x.len() {
                    return out;
                }
                if x[i] < m.variants[i].max {
                    x[i] += 1;
                    break;
                }
                x[i] = m.variants[i].min;
                i += 1;
            }
        }
    }

    #[test]
    fn single_model_is_exact_against_brute_force() {
        let mut rng = Rng(7);
        for case in 0..3000 {
            let m = random_model(&mut rng, "m", &["A", "B"]);
            let mut inv = BTreeMap::new();
            if case % 2 == 0 {
                inv.insert("A".to_string(), rng.below(10) as u32);
            }
            let plan = plan_fleet(&Problem {
                models: vec![m.clone()],
                inventory: Some(inv.clone()),
            })
            .unwrap()
            .models
            .remove(0);
            let all = enumerate(&m, &inv);
            let feasible: Vec<_> = all
                .iter()
                .filter(|(_, cap, _)| *cap >= m.demand - 1e-9)
                .collect();
            if let Some(best) = feasible.iter().map(|(c, _, _)| *c).min_by(f64::total_cmp) {
                assert!(plan.feasible, "case {case}: {m:?} {plan:?}");
                assert!(
                    (plan.cost_per_hour - best).abs() < 1e-6,
                    "case {case}: {} vs {best} {m:?}",
                    plan.cost_per_hour
                );
                assert!(plan.capacity >= m.demand - 1e-9);
                // Among equal-cost optima, the one closest to the running replicas.
                let dist = |x: &[u32]| -> u32 {
                    m.variants
                        .iter()
                        .zip(x)
                        .map(|(v, &xi)| xi.abs_diff(v.current))
                        .sum()
                };
                let best_dist = feasible
                    .iter()
                    .filter(|(c, _, _)| (*c - best).abs() < 1e-6)
                    .map(|(_, _, x)| dist(x))
                    .min()
                    .unwrap();
                let got: Vec<u32> = m.variants.iter().map(|v| plan.replicas[&v.name]).collect();
                assert_eq!(
                    dist(&got),
                    best_dist,
                    "case {case}: tie-break towards current"
                );
            } else if !all.is_empty() {
                assert!(!plan.feasible, "case {case}");
                let max_cap = all.iter().map(|(_, cap, _)| *cap).fold(0.0, f64::max);
                assert!(
                    (plan.capacity - max_cap).abs() < 1e-6,
                    "case {case}: largest capacity"
                );
                let cheapest = all
                    .iter()
                    .filter(|(_, cap, _)| (cap - max_cap).abs() < 1e-6)
                    .map(|(c, _, _)| *c)
                    .min_by(f64::total_cmp)
                    .unwrap();
                assert!(
                    (plan.cost_per_hour - cheapest).abs() < 1e-6,
                    "case {case}: cheapest among largest"
                );
            }
        }
    }

    #[test]
    fn fleet_is_exact_when_inventory_does_not_bind() {
        let mut rng = Rng(11);
        for case in 0..300 {
            let models: Vec<ModelSpec> = (0..3)
                .map(|i| random_model(&mut rng, &format!("m{i}"), &["A", "B"]))
                .collect();
            let big: BTreeMap<String, u32> =
                [("A".to_string(), 1000), ("B".to_string(), 1000)].into();
            let plan = plan_fleet(&Problem {
                models: models.clone(),
                inventory: Some(big.clone()),
            })
            .unwrap();
            let mut total = 0.0;
            for m in &models {
                let best = enumerate(m, &big)
                    .into_iter()
                    .filter(|(_, cap, _)| *cap >= m.demand - 1e-9)
                    .map(|(c, _, _)| c)
                    .min_by(f64::total_cmp);
                total += best.unwrap_or_else(|| {
                    m.variants
                        .iter()
                        .map(|v| v.max as f64 * v.cost_per_hour)
                        .sum()
                });
            }
            assert!(
                (plan.total_cost_per_hour - total).abs() < 1e-6,
                "case {case}"
            );
            // With GPUs to spare, the joint optimum is the sum of the parts: check against
            // a joint brute force on the smallest cases.
        }
    }

    #[test]
    fn short_inventory_respects_the_limit_and_priority() {
        let mut rng = Rng(5);
        for case in 0..500 {
            let models: Vec<ModelSpec> = (0..3)
                .map(|i| random_model(&mut rng, &format!("m{i}"), &["A"]))
                .collect();
            let free = rng.below(12) as u32;
            let inv: BTreeMap<String, u32> = [("A".to_string(), free)].into();
            let plan = plan_fleet(&Problem {
                models: models.clone(),
                inventory: Some(inv),
            })
            .unwrap();
            let used: u32 = models
                .iter()
                .zip(&plan.models)
                .flat_map(|(m, p)| {
                    m.variants
                        .iter()
                        .map(move |v| p.replicas[&v.name] * v.gpus_per_replica)
                })
                .sum();
            let mins: u32 = models
                .iter()
                .flat_map(|m| m.variants.iter().map(|v| v.min * v.gpus_per_replica))
                .sum();
            assert!(used <= free.max(mins), "case {case}: used {used} of {free}");
            // The only high-priority model gets what it would get alone with the GPUs the
            // others' floors leave, whatever lower-priority models want beyond that.
            for (i, (m, p)) in models.iter().zip(&plan.models).enumerate() {
                if m.priority == 1 && models.iter().filter(|o| o.priority == 1).count() == 1 {
                    let others_min: u32 = models
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != i)
                        .flat_map(|(_, o)| o.variants.iter().map(|v| v.min * v.gpus_per_replica))
                        .sum();
                    let alone = plan_fleet(&Problem {
                        models: vec![m.clone()],
                        inventory: Some(
                            [("A".to_string(), free.saturating_sub(others_min))].into(),
                        ),
                    })
                    .unwrap();
                    assert_eq!(alone.models[0].capacity, p.capacity, "case {case}");
                    assert_eq!(alone.models[0].feasible, p.feasible, "case {case}");
                }
            }
        }
    }

    #[test]
    fn the_issue_example() {
        let p: Problem = serde_json::from_str(
            r#"{"models":[{"name":"m","demand":42.0,"variants":[{"name":"h100","gpu_type":"H100","gpus_per_replica":1,"capacity_per_replica":12.5,"cost_per_hour":4.0,"min":0,"max":16,"current":0}]}],"inventory":{"H100":64}}"#,
        )
        .unwrap();
        let plan = plan_fleet(&p).unwrap();
        assert_eq!(plan.models[0].replicas["h100"], 4);
        assert!(plan.models[0].feasible);
        assert_eq!(plan.models[0].cost_per_hour, 16.0);
        assert_eq!(plan.models[0].capacity, 50.0);
        assert_eq!(plan.total_cost_per_hour, 16.0);
    }

    #[test]
    fn mixes_gpu_types_when_cheaper_and_prefers_running_replicas_on_ties() {
        // 30 units: 2×big (cap 12, $5) + 1×small (cap 6, $3) = $13 beats 3×big = $15.
        let m = ModelSpec {
            name: "m".into(),
            demand: 30.0,
            priority: 0,
            variants: vec![
                VariantSpec {
                    name: "big".into(),
                    gpu_type: "H100".into(),
                    gpus_per_replica: 1,
                    capacity_per_replica: 12.0,
                    cost_per_hour: 5.0,
                    min: 0,
                    max: 10,
                    current: 0,
                },
                VariantSpec {
                    name: "small".into(),
                    gpu_type: "L40S".into(),
                    gpus_per_replica: 1,
                    capacity_per_replica: 6.0,
                    cost_per_hour: 3.0,
                    min: 0,
                    max: 10,
                    current: 0,
                },
            ],
        };
        let plan = plan_fleet(&Problem {
            models: vec![m.clone()],
            inventory: None,
        })
        .unwrap();
        assert_eq!(plan.models[0].replicas["big"], 2);
        assert_eq!(plan.models[0].replicas["small"], 1);
        // Two equal-cost variants: stay where the replicas run.
        let mut twin = m.clone();
        twin.variants[1] = VariantSpec {
            name: "twin".into(),
            current: 3,
            ..twin.variants[0].clone()
        };
        twin.demand = 36.0;
        let plan = plan_fleet(&Problem {
            models: vec![twin],
            inventory: None,
        })
        .unwrap();
        assert_eq!(plan.models[0].replicas["twin"], 3, "{:?}", plan.models[0]);
        assert_eq!(plan.models[0].replicas["big"], 0);
    }

    #[test]
    fn bad_numbers_are_rejected_by_name() {
        let mut p: Problem = serde_json::from_str(
            r#"{"models":[{"name":"m","demand":1,"variants":[{"name":"a","gpu_type":"A","capacity_per_replica":0,"cost_per_hour":1,"max":1}]}]}"#,
        )
        .unwrap();
        assert!(
            plan_fleet(&p)
                .unwrap_err()
                .to_string()
                .contains("capacity_per_replica")
        );
        p.models[0].variants[0].capacity_per_replica = 1.0;
        p.models[0].demand = f64::NAN;
        assert!(plan_fleet(&p).unwrap_err().to_string().contains("demand"));
        assert!(serde_json::from_str::<Problem>(r#"{"models":[],"inventroy":{}}"#).is_err());
    }
}
