//! KEDA and the HPA as a policy's wish travels through them, per (model, variant)
//! Deployment: the same semantics for every policy, so policies differ only in what they
//! ask for. Facts from `../shared/docs/keda-contract.md`; the arithmetic is [`crate::hpa`].
//!
//! Where to start: [`VariantScaler::decide`], called at every HPA sync with the policy's
//! [`Wish`] (a metric value and its `AverageValue` target). In order:
//! 1. **KEDA activation** (checked at each KEDA poll, `polling_interval_s`): active iff the
//!    value, after KEDA's `%.3f`, is > 0. From 0 replicas an active trigger scales to
//!    `max(min, 1)` at once; the HPA takes over from the next sync. With `min = 0`, a
//!    trigger inactive for `cooldown_s` scales the Deployment to 0.
//! 2. **HPA replica calculation**: `ceil(value / target)`, skipped within the tolerance
//!    (10 %), clamped to `[max(min, 1), max]`.
//! 3. **HPA behaviour** (Kubernetes defaults): scale-up limited per sync to
//!    `max(current + scale_up_pods, current · (1 + scale_up_percent/100))`; scale-down to the
//!    highest recommendation within the last `scale_down_stabilization_s`.
//!
//! The behaviour (step 3) is per Deployment: a policy deployed with its own `behavior`
//! block is simulated with it ([`super::policy::Policy::scaling`]). Ours is
//! [`ScalingSettings::rendered`], the block `slo-scaler recommend` writes into every
//! ScaledObject: a short scale-down window, since the scaler holds scale-downs itself.

use std::collections::VecDeque;

use crate::hpa::{MetricType, hpa_desired_replicas, keda_quantize};

/// What a policy reports for one variant: a metric value and its `AverageValue` target
/// (`value = desired replicas, target = 1` for policies that compute replicas).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wish {
    /// The metric value KEDA reads from the scaler.
    pub value: f64,
    /// The per-replica target (`AverageValue`).
    pub target: f64,
}

impl Wish {
    /// A replica count reported with target 1 (our scaler's and llm-d's pattern).
    #[must_use]
    pub fn replicas(n: f64) -> Self {
        Self {
            value: n,
            target: 1.0,
        }
    }
}

/// KEDA and HPA settings, Kubernetes' and KEDA's defaults in [`Default`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScalingSettings {
    /// HPA sync period, seconds (default 15).
    pub sync_interval_s: f64,
    /// KEDA polling interval (activation), seconds (default 30).
    pub polling_interval_s: f64,
    /// KEDA cooldown before scaling an inactive trigger to zero, seconds (default 300).
    pub cooldown_s: f64,
    /// HPA tolerance (default 0.1).
    pub tolerance: f64,
    /// HPA scale-down stabilisation window, seconds (default 300).
    pub scale_down_stabilization_s: f64,
    /// HPA default scale-up policy: pods per sync (default 4).
    pub scale_up_pods: u32,
    /// HPA default scale-up policy: percent per sync (default 100).
    pub scale_up_percent: f64,
    /// Period of the scale-up policies, seconds: the limits apply to the replicas at the
    /// period's start (default: one sync, 15 s, the HPA default's `periodSeconds`).
    pub scale_up_period_s: f64,
    /// Scale-down policy: at most this percent of the replicas at the start of
    /// `scale_down_period_s` removed (`None`: the HPA default, 100 %, no limit).
    pub scale_down_percent: Option<f64>,
    /// Period of the scale-down policy, seconds.
    pub scale_down_period_s: f64,
}

impl Default for ScalingSettings {
    fn default() -> Self {
        Self {
            sync_interval_s: 15.0,
            polling_interval_s: 30.0,
            cooldown_s: 300.0,
            tolerance: crate::hpa::HPA_DEFAULT_TOLERANCE,
            scale_down_stabilization_s: 300.0,
            scale_up_pods: 4,
            scale_up_percent: 100.0,
            scale_up_period_s: 15.0,
            scale_down_percent: None,
            scale_down_period_s: 15.0,
        }
    }
}

impl ScalingSettings {
    /// These settings with the HPA `behavior` that `slo-scaler recommend` renders into each
    /// ScaledObject (`recommend::render::scaled_objects`, which prints these fields, and
    /// `charts/slo-scaler/examples/scaledobjects.yaml`): scale-up 4 pods or 100 % per 30 s;
    /// scale-down window 60 s, at most 50 % per 60 s. Why the short window: the scaler
    /// already holds every scale-down for `sizing.stabilization.scale_down_window_s`
    /// (`docs/sizing.md`, *Stabilisation*); under the HPA's default 300 s window on top, a
    /// replica the plans stopped needing would be paid for two windows, not one.
    #[must_use]
    pub fn rendered(self) -> Self {
        Self {
            scale_up_pods: 4,
            scale_up_percent: 100.0,
            scale_up_period_s: 30.0,
            scale_down_stabilization_s: 60.0,
            scale_down_percent: Some(50.0),
            scale_down_period_s: 60.0,
            ..self
        }
    }
}

/// KEDA + HPA state of one Deployment.
#[derive(Debug, Clone)]
pub struct VariantScaler {
    settings: ScalingSettings,
    min: u32,
    max: u32,
    last_active_s: f64,
    next_poll_s: f64,
    /// Recommendations within the scale-down window: (time, replicas).
    recent: VecDeque<(f64, u32)>,
    /// Replica changes this scaler made, (time, change), within the longest policy period:
    /// the HPA's rate limits count from the replicas at a period's start.
    changes: VecDeque<(f64, i64)>,
}

impl VariantScaler {
    /// A scaler for a Deployment allowed `min..=max` replicas.
    #[must_use]
    pub fn new(settings: ScalingSettings, min: u32, max: u32) -> Self {
        Self {
            settings,
            min,
            max: max.max(min),
            last_active_s: 0.0,
            next_poll_s: 0.0,
            recent: VecDeque::new(),
            changes: VecDeque::new(),
        }
    }

    /// Replicas added (`up`) or removed (`!up`) by this scaler within the last `period_s`
    /// (the HPA's `replicasAddedInPeriod` / `replicasDeletedInPeriod`).
    fn changed_within(&self, now_s: f64, period_s: f64, up: bool) -> u32 {
        let n: i64 = self
            .changes
            .iter()
            .filter(|(t, d)| t + period_s > now_s + 1e-9 && (*d > 0) == up)
            .map(|(_, d)| d.abs())
            .sum();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    fn record(&mut self, now_s: f64, current: u32, result: u32) -> u32 {
        if result != current {
            self.changes
                .push_back((now_s, i64::from(result) - i64::from(current)));
        }
        let keep = self
            .settings
            .scale_up_period_s
            .max(self.settings.scale_down_period_s);
        while self.changes.front().is_some_and(|(t, _)| t + keep <= now_s) {
            self.changes.pop_front();
        }
        result
    }

    /// A Deployment that had been running `replicas` before `at_s` (the slice's start): the
    /// HPA has recommended that count throughout its scale-down window, so nothing drops
    /// below it before the window has passed. Without this, the first sync of a replayed
    /// slice could scale a running fleet down at once — no HPA that had been running does.
    #[must_use]
    pub fn running_before(mut self, at_s: f64, replicas: u32) -> Self {
        if replicas > 0 {
            self.recent.push_back((at_s, replicas));
        }
        self
    }

    /// The replica count after this sync, given the wish, the current (spec) replicas and
    /// the ready ones.
    pub fn decide(&mut self, now_s: f64, wish: Wish, current: u32, ready: u32) -> u32 {
        let s = self.settings;
        let active = keda_quantize(wish.value) > 0.0;
        let poll = now_s + 1e-9 >= self.next_poll_s;
        if poll {
            self.next_poll_s = now_s + s.polling_interval_s;
            if active {
                self.last_active_s = now_s;
            }
        }
        if current == 0 {
            return if (poll && active) || self.min > 0 {
                self.min.max(1).min(self.max)
            } else {
                0
            };
        }
        if self.min == 0 && poll && !active && now_s - self.last_active_s >= s.cooldown_s {
            self.recent.clear();
            return 0;
        }
        let floor = self.min.max(1);
        let proposal = hpa_desired_replicas(
            &[wish.value],
            wish.target,
            MetricType::AverageValue,
            current,
            ready,
            s.tolerance,
        )
        .unwrap_or(current)
        .clamp(floor, self.max.max(floor));
        self.recent.push_back((now_s, proposal));
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| now_s - t > s.scale_down_stabilization_s)
        {
            self.recent.pop_front();
        }
        let result = if proposal >= current {
            let start =
                current.saturating_sub(self.changed_within(now_s, s.scale_up_period_s, true));
            let by_pods = start + s.scale_up_pods;
            let by_pct = (f64::from(start) * (1.0 + s.scale_up_percent / 100.0)).floor() as u32;
            proposal.min(by_pods.max(by_pct)).max(current)
        } else {
            let highest = self
                .recent
                .iter()
                .map(|(_, r)| *r)
                .max()
                .unwrap_or(proposal);
            let held = highest.min(current);
            match s.scale_down_percent {
                Some(pct) => {
                    let start = current + self.changed_within(now_s, s.scale_down_period_s, false);
                    let limit = (f64::from(start) * (1.0 - pct / 100.0)) as u32;
                    held.max(limit.min(current))
                }
                None => held,
            }
        };
        self.record(now_s, current, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpa_tolerance_and_scale_down_window_apply() {
        let mut v = VariantScaler::new(ScalingSettings::default(), 1, 100);
        // From 10, a wish for 11 is within tolerance.
        assert_eq!(v.decide(0.0, Wish::replicas(11.0), 10, 10), 10);
        assert_eq!(v.decide(15.0, Wish::replicas(20.0), 10, 10), 20);
        // Down: held at the highest recommendation of the last 300 s.
        assert_eq!(v.decide(30.0, Wish::replicas(5.0), 20, 20), 20);
        assert_eq!(v.decide(314.0, Wish::replicas(5.0), 20, 20), 20);
        assert_eq!(v.decide(331.0, Wish::replicas(5.0), 20, 20), 5);
    }

    #[test]
    fn a_fleet_running_before_the_slice_is_held_for_the_scale_down_window() {
        let mut fresh = VariantScaler::new(ScalingSettings::default(), 1, 100);
        assert_eq!(
            fresh.decide(0.0, Wish::replicas(1.0), 2, 2),
            1,
            "no history"
        );
        let mut v = VariantScaler::new(ScalingSettings::default(), 1, 100).running_before(0.0, 2);
        assert_eq!(v.decide(0.0, Wish::replicas(1.0), 2, 2), 2);
        assert_eq!(v.decide(285.0, Wish::replicas(1.0), 2, 2), 2);
        assert_eq!(v.decide(315.0, Wish::replicas(1.0), 2, 2), 1);
        // Up is not held back.
        let mut u = VariantScaler::new(ScalingSettings::default(), 1, 100).running_before(0.0, 2);
        assert_eq!(u.decide(0.0, Wish::replicas(4.0), 2, 2), 4);
    }

    #[test]
    fn scale_up_is_rate_limited_like_the_hpa_default() {
        let mut v = VariantScaler::new(ScalingSettings::default(), 1, 100);
        assert_eq!(
            v.decide(0.0, Wish::replicas(50.0), 2, 2),
            6,
            "+4 pods beats +100 %"
        );
        assert_eq!(v.decide(15.0, Wish::replicas(50.0), 10, 10), 20, "+100 %");
    }

    #[test]
    fn the_rendered_behaviour_holds_scale_downs_60_s_and_halves_at_most_per_minute() {
        let mut v = VariantScaler::new(ScalingSettings::default().rendered(), 1, 100);
        assert_eq!(v.decide(0.0, Wish::replicas(8.0), 8, 8), 8);
        // Held for the 60 s window (the default holds 300 s: see the first test) …
        assert_eq!(v.decide(15.0, Wish::replicas(1.0), 8, 8), 8);
        assert_eq!(v.decide(60.0, Wish::replicas(1.0), 8, 8), 8);
        // … then at most 50 % of the replicas at the period's start per 60 s.
        assert_eq!(v.decide(75.0, Wish::replicas(1.0), 8, 8), 4);
        assert_eq!(v.decide(90.0, Wish::replicas(1.0), 4, 4), 4);
        assert_eq!(v.decide(135.0, Wish::replicas(1.0), 4, 4), 2);
        assert_eq!(v.decide(195.0, Wish::replicas(1.0), 2, 2), 1);
    }

    #[test]
    fn the_rendered_scale_up_limit_counts_from_the_start_of_its_30_s_period() {
        let mut v = VariantScaler::new(ScalingSettings::default().rendered(), 1, 100);
        assert_eq!(v.decide(0.0, Wish::replicas(50.0), 2, 2), 6, "+4 pods");
        // 15 s later the period still started at 2: no more than 6 (the default: 10).
        assert_eq!(v.decide(15.0, Wish::replicas(50.0), 6, 2), 6);
        assert_eq!(
            v.decide(30.0, Wish::replicas(50.0), 6, 2),
            12,
            "+100 % of 6"
        );
        let mut d = VariantScaler::new(ScalingSettings::default(), 1, 100);
        assert_eq!(d.decide(0.0, Wish::replicas(50.0), 2, 2), 6);
        assert_eq!(d.decide(15.0, Wish::replicas(50.0), 6, 2), 12);
    }

    #[test]
    fn keda_activates_from_zero_and_returns_to_zero_after_cooldown() {
        let mut v = VariantScaler::new(ScalingSettings::default(), 0, 10);
        assert_eq!(v.decide(0.0, Wish::replicas(0.0), 0, 0), 0);
        assert_eq!(
            v.decide(30.0, Wish::replicas(4.0), 0, 0),
            1,
            "to 1, then the HPA"
        );
        assert_eq!(v.decide(45.0, Wish::replicas(4.0), 1, 0), 4);
        // Last active at the 30 s poll: the HPA floor is 1 until the cooldown has passed.
        let mut n = 4;
        let mut t = 60.0;
        while t < 330.0 {
            n = v.decide(t, Wish::replicas(0.0), n, n);
            assert!(n >= 1, "at {t}");
            t += 15.0;
        }
        assert_eq!(v.decide(330.0, Wish::replicas(0.0), n, n), 0);
        // Waiting requests as a metric with target 5.
        let mut k = VariantScaler::new(ScalingSettings::default(), 1, 10);
        let w = Wish {
            value: 12.0,
            target: 5.0,
        };
        assert_eq!(k.decide(0.0, w, 1, 1), 3);
    }
}
