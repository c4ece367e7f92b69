//! `aibrix-kpa`: AIBrix's port of Knative's KPA on KV-cache use per pod, with its published
//! defaults: target 0.5, stable window 180 s, panic window 60 s, panic threshold 2.0,
//! maximum scale-up and scale-down rate 2 per decision, never down while panicking (the
//! 300 s scale-down cooldown is the HPA window every policy gets).
//!
//! Each decision: `stable = ceil(Σ kv_use averaged over 180 s / 0.5)`, `panic` likewise over
//! 60 s. Panic mode starts when `panic / ready ≥ 2` and lasts a stable window past the last
//! such reading; in panic the wish is `max(panic, previous wish)`. The wish is limited to
//! `[ready / 2, ready · 2]`. KPA runs every 2 s in Knative; through the HPA only each sync's
//! value matters, so it is evaluated once per sync.

use std::collections::VecDeque;

use super::{Observation, Policy, PolicyContext, Wish, first_variant_only};

/// KV-cache use per pod the KPA aims for.
pub const TARGET_KV_USAGE: f64 = 0.5;
const STABLE_WINDOW_S: f64 = 180.0;
const PANIC_WINDOW_S: f64 = 60.0;
const PANIC_THRESHOLD: f64 = 2.0;
const MAX_RATE: f64 = 2.0;

/// KPA state.
#[derive(Debug, Clone)]
pub struct AibrixKpa {
    mins: Vec<u32>,
    /// (time, total KV use over ready pods).
    samples: VecDeque<(f64, f64)>,
    panic_until_s: f64,
    last_wish: f64,
}

impl AibrixKpa {
    /// With the published defaults.
    #[must_use]
    pub fn new(ctx: &PolicyContext) -> Self {
        Self {
            mins: ctx.variants.iter().map(|v| v.min).collect(),
            samples: VecDeque::new(),
            panic_until_s: f64::NEG_INFINITY,
            last_wish: 1.0,
        }
    }

    fn average_since(&self, since_s: f64) -> f64 {
        let (sum, n) = self
            .samples
            .iter()
            .filter(|(t, _)| *t > since_s)
            .fold((0.0, 0u32), |(s, n), (_, v)| (s + v, n + 1));
        if n == 0 { 0.0 } else { sum / f64::from(n) }
    }
}

impl Policy for AibrixKpa {
    fn name(&self) -> &str {
        "aibrix-kpa"
    }

    fn wishes(&mut self, obs: &Observation) -> Vec<Wish> {
        let v = &obs.variants[0];
        let now = obs.now_s;
        // A queue at the gateway (no ready pod) reads as full pods.
        let total = v.kv_usage * f64::from(v.ready) + obs.gateway_waiting.min(1) as f64;
        self.samples.push_back((now, total));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now - t >= STABLE_WINDOW_S)
        {
            self.samples.pop_front();
        }
        let stable = (self.average_since(now - STABLE_WINDOW_S) / TARGET_KV_USAGE).ceil();
        let panic = (self.average_since(now - PANIC_WINDOW_S) / TARGET_KV_USAGE).ceil();
        let ready = f64::from(v.ready.max(1));
        if panic / ready >= PANIC_THRESHOLD {
            self.panic_until_s = now + STABLE_WINDOW_S;
        }
        let mut wish = if now < self.panic_until_s {
            panic.max(self.last_wish)
        } else {
            stable
        };
        wish = wish.clamp(ready / MAX_RATE, ready * MAX_RATE).max(1.0);
        self.last_wish = wish;
        first_variant_only(&self.mins, Wish::replicas(wish))
    }
}
