//! Stabilisation: turning each tick's least-cost plan into changes worth making.
//!
//! Where to start: one [`Stabilizer`] per model, fed every tick with the fresh plan
//! ([`crate::sizing::ModelPlan`]), the upper forecast of demand and the time. Rules:
//!
//! - **Up now.** A variant whose plan grows gets the new count at once: a cold start takes
//!   minutes, waiting makes it worse.
//! - **Down only after a window.** A variant shrinks to the largest count any plan asked
//!   for within the last `scale_down_window_s` (the HPA's own scale-down stabilisation,
//!   applied to our plans, which are made for the upper forecast): capacity goes only once
//!   the upper forecast has stayed below what remains for the whole window. During a
//!   rebalance (one variant up, another down) the new replicas arrive at once and the old
//!   ones leave a window later.
//! - **Nothing the HPA would ignore.** We report replica counts with target 1, so the HPA
//!   skips changes within its tolerance (10 %: from 10 replicas, 11 is ignored). A
//!   scale-down inside tolerance is not proposed (the current count is kept); a scale-up
//!   inside tolerance is raised to the smallest count the HPA acts on, since being short
//!   costs SLO while one extra replica costs money. Counts are integers, so KEDA's
//!   milli-precision rounding never removes a change.
//!
//! Going to zero is a scale-down like any other: it happens only when the upper forecast
//! over the window is 0 (the plan for it has no replicas), and only after the window.

use std::collections::{BTreeMap, VecDeque};

use crate::hpa::{HPA_DEFAULT_TOLERANCE, hpa_would_act};
use crate::sizing::ModelPlan;

/// Tunables; defaults in [`StabilizerSettings::default`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StabilizerSettings {
    /// Seconds the upper forecast must stay below the reduced capacity before a
    /// scale-down (default 300, as the HPA's own scale-down stabilisation).
    pub scale_down_window_s: f64,
    /// The HPA tolerance to respect (default 0.1, Kubernetes' default).
    pub hpa_tolerance: f64,
}

impl Default for StabilizerSettings {
    fn default() -> Self {
        Self {
            scale_down_window_s: 300.0,
            hpa_tolerance: HPA_DEFAULT_TOLERANCE,
        }
    }
}

/// What the stabiliser decided for one variant.
#[derive(Debug, Clone, PartialEq)]
pub struct StableVariant {
    /// Replicas to report.
    pub replicas: u32,
    /// What kind of change: `first_plan`, `scale_up`, `scale_down`, `hold_window`,
    /// `hold_tolerance` or `steady`.
    pub action: &'static str,
    /// Why, in one line.
    pub reason: String,
}

/// Per-model memory between ticks.
#[derive(Debug, Clone)]
pub struct Stabilizer {
    settings: StabilizerSettings,
    /// What we reported last, per variant (`None` before the first tick).
    reported: Option<BTreeMap<String, u32>>,
    /// Plans within the window: (time, replicas per variant).
    recent: VecDeque<(f64, BTreeMap<String, u32>)>,
}

impl Stabilizer {
    /// A stabiliser with nothing reported yet: the first plan is taken as is.
    pub fn new(settings: StabilizerSettings) -> Self {
        Self {
            settings,
            reported: None,
            recent: VecDeque::new(),
        }
    }

    /// A stabiliser that knows what runs now (e.g. after a restart), so the first plan is
    /// held to the same rules as every later one.
    pub fn with_current(
        settings: StabilizerSettings,
        now_s: f64,
        current: BTreeMap<String, u32>,
    ) -> Self {
        let mut s = Self::new(settings);
        s.recent.push_back((now_s, current.clone()));
        s.reported = Some(current);
        s
    }

    /// Before the first tick, learns what runs now (as [`Self::with_current`]); once
    /// something was reported, its own memory is what counts and this does nothing.
    /// Returns whether it was taken.
    pub fn know_current(&mut self, now_s: f64, current: BTreeMap<String, u32>) -> bool {
        if self.reported.is_some() {
            return false;
        }
        *self = Self::with_current(self.settings, now_s, current);
        true
    }

    /// What was reported last.
    pub fn reported(&self) -> Option<&BTreeMap<String, u32>> {
        self.reported.as_ref()
    }

    /// One tick with the plan made for the upper forecast `demand_upper`.
    pub fn step(
        &mut self,
        now_s: f64,
        plan: &ModelPlan,
        demand_upper: f64,
    ) -> BTreeMap<String, StableVariant> {
        self.recent.push_back((now_s, plan.replicas.clone()));
        while let Some((t, _)) = self.recent.front() {
            if now_s - t > self.settings.scale_down_window_s {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        let Some(reported) = self.reported.clone() else {
            let out: BTreeMap<String, StableVariant> = plan
                .replicas
                .iter()
                .map(|(v, &n)| {
                    let reason = format!("{v} {n}: first plan ({})", plan.reason);
                    (
                        v.clone(),
                        StableVariant {
                            replicas: n,
                            action: "first_plan",
                            reason,
                        },
                    )
                })
                .collect();
            self.reported = Some(out.iter().map(|(v, s)| (v.clone(), s.replicas)).collect());
            return out;
        };
        let tol = self.settings.hpa_tolerance;
        let mut out = BTreeMap::new();
        for (v, &planned) in &plan.replicas {
            let current = reported.get(v).copied().unwrap_or(0);
            let window_max = self
                .recent
                .iter()
                .filter_map(|(_, r)| r.get(v).copied())
                .max()
                .unwrap_or(planned);
            let (replicas, action, reason) = if planned > current {
                let mut n = planned;
                while !hpa_would_act_with(current, n, tol) {
                    n += 1;
                }
                let note = if n > planned {
                    format!(
                        " (raised from {planned}: the HPA ignores changes within {:.0} %)",
                        tol * 100.0
                    )
                } else {
                    String::new()
                };
                (
                    n,
                    "scale_up",
                    format!("{v} {current}→{n}: scale up now{note}; {}", plan.reason),
                )
            } else if planned < current {
                let target = window_max.min(current);
                if target == current {
                    (
                        current,
                        "hold_window",
                        format!(
                            "{v} stays {current} (plan {planned}): a plan within the last {:.0} s still needed {current}; upper demand now {demand_upper:.2}",
                            self.settings.scale_down_window_s
                        ),
                    )
                } else if !hpa_would_act_with(current, target, tol) {
                    (
                        current,
                        "hold_tolerance",
                        format!(
                            "{v} stays {current}: {target} is within the HPA's {:.0} % tolerance",
                            tol * 100.0
                        ),
                    )
                } else {
                    (
                        target,
                        "scale_down",
                        format!(
                            "{v} {current}→{target}: no plan in the last {:.0} s needed more (upper demand now {demand_upper:.2}); {}",
                            self.settings.scale_down_window_s, plan.reason
                        ),
                    )
                }
            } else {
                (
                    current,
                    "steady",
                    format!("{v} stays {current}: {}", plan.reason),
                )
            };
            out.insert(
                v.clone(),
                StableVariant {
                    replicas,
                    action,
                    reason,
                },
            );
        }
        self.reported = Some(out.iter().map(|(v, s)| (v.clone(), s.replicas)).collect());
        out
    }
}

fn hpa_would_act_with(current: u32, desired: u32, tolerance: f64) -> bool {
    if (tolerance - HPA_DEFAULT_TOLERANCE).abs() < 1e-12 {
        return hpa_would_act(current, f64::from(desired));
    }
    crate::hpa::hpa_desired_replicas(
        &[f64::from(desired)],
        1.0,
        crate::hpa::MetricType::AverageValue,
        current,
        current,
        tolerance,
    ) != Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(replicas: &[(&str, u32)], capacity_per: f64) -> ModelPlan {
        let replicas: BTreeMap<String, u32> =
            replicas.iter().map(|(v, n)| (v.to_string(), *n)).collect();
        let capacity = replicas
            .values()
            .map(|n| f64::from(*n) * capacity_per)
            .sum();
        ModelPlan {
            name: "m".into(),
            feasible: true,
            replicas,
            cost_per_hour: 0.0,
            capacity,
            reason: "plan".into(),
        }
    }

    #[test]
    fn up_at_once_down_after_an_unbroken_window() {
        let mut s = Stabilizer::new(StabilizerSettings {
            scale_down_window_s: 300.0,
            ..Default::default()
        });
        assert_eq!(s.step(0.0, &plan(&[("a", 2)], 10.0), 15.0)["a"].replicas, 2);
        assert_eq!(
            s.step(10.0, &plan(&[("a", 5)], 10.0), 45.0)["a"].replicas,
            5,
            "up now"
        );
        // Demand falls: the plan says 2, but only after 300 s below 2 × 10.
        let r = s.step(20.0, &plan(&[("a", 2)], 10.0), 15.0);
        assert_eq!(r["a"].replicas, 5);
        assert!(
            r["a"].reason.contains("still needed 5"),
            "{}",
            r["a"].reason
        );
        assert_eq!(r["a"].action, "hold_window");
        assert_eq!(
            s.step(200.0, &plan(&[("a", 2)], 10.0), 15.0)["a"].replicas,
            5
        );
        // A blip: a plan for 3 within the window.
        assert_eq!(
            s.step(250.0, &plan(&[("a", 3)], 10.0), 25.0)["a"].replicas,
            5
        );
        assert_eq!(
            s.step(260.0, &plan(&[("a", 2)], 10.0), 15.0)["a"].replicas,
            5
        );
        // 300 s after the last plan for 5, down to the most any later plan asked: 3.
        let r = s.step(311.0, &plan(&[("a", 2)], 10.0), 15.0);
        assert_eq!(r["a"].replicas, 3, "{}", r["a"].reason);
        assert!(r["a"].reason.contains("5→3"), "{}", r["a"].reason);
        assert_eq!(r["a"].action, "scale_down");
        assert_eq!(
            s.step(549.0, &plan(&[("a", 2)], 10.0), 15.0)["a"].replicas,
            3
        );
        let r = s.step(551.0, &plan(&[("a", 2)], 10.0), 15.0);
        assert_eq!(r["a"].replicas, 2, "{}", r["a"].reason);
    }

    #[test]
    fn never_proposes_what_the_hpa_ignores() {
        let mut s = Stabilizer::new(StabilizerSettings {
            scale_down_window_s: 0.0,
            ..Default::default()
        });
        s.step(0.0, &plan(&[("a", 10)], 1.0), 10.0);
        // 10 → 11 is within 10 %: raised to 12, which the HPA acts on.
        let r = s.step(1.0, &plan(&[("a", 11)], 1.0), 11.0);
        assert_eq!(r["a"].replicas, 12, "{}", r["a"].reason);
        assert!(hpa_would_act(10, 12.0));
        // 12 → 11 is within tolerance: kept.
        let r = s.step(2.0, &plan(&[("a", 11)], 1.0), 11.0);
        assert_eq!(r["a"].replicas, 12, "{}", r["a"].reason);
        assert!(r["a"].reason.contains("tolerance"));
        assert_eq!(r["a"].action, "hold_tolerance");
        // 12 → 8 is not.
        assert_eq!(s.step(3.0, &plan(&[("a", 8)], 1.0), 8.0)["a"].replicas, 8);
    }

    #[test]
    fn a_restarted_scaler_holds_what_runs() {
        let current: BTreeMap<String, u32> = [("a".to_string(), 6)].into();
        let mut s = Stabilizer::with_current(StabilizerSettings::default(), 0.0, current);
        assert_eq!(s.step(5.0, &plan(&[("a", 2)], 10.0), 15.0)["a"].replicas, 6);
    }

    #[test]
    fn what_runs_before_the_first_tick_is_held_but_not_after() {
        let current = || -> BTreeMap<String, u32> { [("a".to_string(), 6)].into() };
        let mut s = Stabilizer::new(StabilizerSettings::default());
        assert!(s.know_current(0.0, current()));
        assert_eq!(s.step(5.0, &plan(&[("a", 2)], 10.0), 15.0)["a"].replicas, 6);
        assert_eq!(
            s.step(301.0, &plan(&[("a", 2)], 10.0), 15.0)["a"].replicas,
            2
        );
        // Once it has reported, its own memory counts: a late report changes nothing.
        assert!(!s.know_current(302.0, current()));
        assert_eq!(
            s.step(303.0, &plan(&[("a", 2)], 10.0), 15.0)["a"].replicas,
            2
        );
        // Not told: the first plan is taken as is.
        let mut fresh = Stabilizer::new(StabilizerSettings::default());
        assert_eq!(
            fresh.step(5.0, &plan(&[("a", 2)], 10.0), 15.0)["a"].replicas,
            2
        );
    }

    #[test]
    fn a_rebalance_adds_before_it_removes_and_zero_waits_too() {
        let mut s = Stabilizer::new(StabilizerSettings {
            scale_down_window_s: 60.0,
            ..Default::default()
        });
        s.step(0.0, &plan(&[("a", 3), ("b", 0)], 10.0), 25.0);
        let r = s.step(1.0, &plan(&[("a", 0), ("b", 3)], 10.0), 25.0);
        assert_eq!(
            (r["a"].replicas, r["b"].replicas),
            (3, 3),
            "new before old leaves"
        );
        let r = s.step(70.0, &plan(&[("a", 0), ("b", 3)], 10.0), 25.0);
        assert_eq!((r["a"].replicas, r["b"].replicas), (0, 3));
        // To zero only after a window of plans for zero.
        let r = s.step(80.0, &plan(&[("a", 0), ("b", 0)], 10.0), 0.0);
        assert_eq!(r["b"].replicas, 3);
        let r = s.step(141.0, &plan(&[("a", 0), ("b", 0)], 10.0), 0.0);
        assert_eq!(r["b"].replicas, 0);
    }
}
