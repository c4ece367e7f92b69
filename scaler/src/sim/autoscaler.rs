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
        }
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
        if proposal >= current {
            let by_pods = current + s.scale_up_pods;
            let by_pct = (f64::from(current) * (1.0 + s.scale_up_percent / 100.0)).floor() as u32;
            proposal.min(by_pods.max(by_pct))
        } else {
            let highest = self
                .recent
                .iter()
                .map(|(_, r)| *r)
                .max()
                .unwrap_or(proposal);
            highest.min(current)
        }
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
