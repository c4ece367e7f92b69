//! The warm tier inside the simulator: replicas put to sleep and woken, victims chosen on a
//! scale-down, and the bookkeeping behind [`super::tier_metrics`].
//!
//! Where to start: [`Sim::set_hot`] (called after each HPA sync with the policy's hot count
//! per variant, when it runs tiers). Rules, each a choice stated once:
//! - **Sleeping** takes the serving replica whose KV cache is worth least
//!   ([`crate::tiers::removal_order`]); it gets no new traffic at once, finishes what it
//!   has, then sleeps and **drops its prefix cache** (sleep level 1 discards the KV cache).
//! - **Waking** takes the profile's `lifecycle.wake_from_sleep_s`; the replica then serves
//!   with an empty cache. A replica told to sleep but still draining is simply kept.
//! - **Wake on demand**: a request that finds no serving replica while one sleeps and
//!   nothing is waking wakes one after [`WAKE_TRIGGER_S`] (the scaler sees
//!   `waiting > 0` at its next evaluation) plus the wake time.
//! - A sleeping pod is a running, ready pod to Kubernetes: it is billed and counted in the
//!   Deployment's replicas; its hours are reported as warm.
//! - **Removal** (the Deployment shrinks) follows the run's [`super::victims::VictimRule`];
//!   a removed replica's prefix cache is gone with it.

use super::tier_metrics::{AFTER_SCALE_DOWN_S, IDLE_GAP_S};
use super::victims::{Candidate, order};
use super::{Kind, Sim, SlotState};
use crate::tiers::ReplicaValue;

/// Delay between a request finding every replica asleep and the wake call, seconds (the
/// scaler's default evaluation interval).
pub const WAKE_TRIGGER_S: f64 = 5.0;

/// Per-slot state of the warm tier.
#[derive(Debug, Clone, Default)]
pub(super) struct TierSlot {
    /// When the pod became ready (Kubernetes' view; sleep does not change it).
    pub ready_since_s: Option<f64>,
    /// Asleep (or waking) since.
    pub asleep_since_s: Option<f64>,
    /// Seconds spent asleep or waking before the current spell.
    pub asleep_total_s: f64,
    /// Cached prompt tokens at the previous sync.
    pub hits_at_last_sync: u64,
    /// Smoothed prefix-cache hits, tokens/s.
    pub hit_tokens_per_s: f64,
}

impl Sim<'_> {
    fn value_of(&self, slot: usize) -> ReplicaValue {
        let s = &self.slots[slot];
        ReplicaValue {
            asleep: matches!(
                s.state,
                SlotState::Asleep | SlotState::Waking | SlotState::ToSleep
            ),
            starting: s.state == SlotState::Starting,
            prefix_hit_tokens_per_s: s.tier.hit_tokens_per_s,
            kv_tokens: s.replica.kv_tokens() as f64,
            in_flight: (s.replica.waiting() + s.replica.running()) as u32,
        }
    }

    fn mark_scale_down(&mut self, now_s: f64) {
        self.tier.scale_downs += 1;
        self.tier.after_down_until_s = self.tier.after_down_until_s.max(now_s + AFTER_SCALE_DOWN_S);
    }

    fn end_asleep(&mut self, slot: usize, now_s: f64) {
        let t = &mut self.slots[slot].tier;
        if let Some(since) = t.asleep_since_s.take() {
            t.asleep_total_s += (now_s - since).max(0.0);
        }
    }

    /// A request no ready replica can take: held at the gateway; a replica on its way to
    /// sleep is kept serving instead, and a sleeping one is woken if nothing else comes.
    pub(super) fn hold_at_gateway(&mut self, id: usize, now_s: f64) -> bool {
        if let Some(slot) =
            (0..self.slots.len()).find(|&i| self.slots[i].state == SlotState::ToSleep)
        {
            self.slots[slot].state = SlotState::Ready;
            self.ready.push(slot);
            return true;
        }
        self.outcomes[id].waited_on_cold_start = true;
        self.gateway.push_back(id);
        // A cold start under way does not stop a wake: it takes minutes, a wake seconds.
        let coming = self.slots.iter().any(|s| s.state == SlotState::Waking);
        if !coming
            && let Some(slot) =
                (0..self.slots.len()).find(|&i| self.slots[i].state == SlotState::Asleep)
        {
            self.wake(slot, now_s + WAKE_TRIGGER_S);
        }
        false
    }

    fn wake(&mut self, slot: usize, from_s: f64) {
        let wake_s = self.spec.variants[self.slots[slot].variant]
            .profile
            .lifecycle
            .wake_from_sleep_s;
        self.slots[slot].state = SlotState::Waking;
        self.push(from_s + wake_s, Kind::Woken(slot));
    }

    /// A waking replica is ready: it serves (with an empty cache) and takes the gateway.
    pub(super) fn woken(&mut self, slot: usize, now_s: f64) {
        if self.slots[slot].state != SlotState::Waking {
            return;
        }
        self.end_asleep(slot, now_s);
        self.slots[slot].state = SlotState::Ready;
        self.ready.push(slot);
        self.tier.wakes += 1;
        for id in std::mem::take(&mut self.gateway) {
            if self.outcomes[id].waited_on_cold_start {
                self.outcomes[id].waited_on_cold_start = false;
                self.flags[id].waited_on_wake = true;
            }
            self.route(id, now_s);
        }
    }

    /// A replica told to sleep has drained: it sleeps and drops its prefix cache.
    pub(super) fn sleep_if_drained(&mut self, slot: usize, now_s: f64) {
        let s = &mut self.slots[slot];
        if s.state == SlotState::ToSleep && s.replica.is_empty() && !s.replica.is_busy() {
            s.state = SlotState::Asleep;
            s.replica.drop_prefix_cache();
            s.tier.asleep_since_s = Some(now_s);
            self.tier.sleeps += 1;
        }
    }

    /// Brings variant `v` to `hot` serving replicas (ready or waking; a cold start under
    /// way does not count: a sleeping replica wakes sooner) by putting the least valuable to
    /// sleep or waking sleeping ones; never adds pods. With `warm` (the policy's warm
    /// target) at most that many sleep: pods beyond `hot + warm` that the Deployment has
    /// not removed yet (the HPA's scale-down stabilisation) keep serving until removed, as
    /// the actuator leaves them — they hold their GPUs either way, and sleeping them would
    /// only take capacity away from the requests still arriving.
    pub(super) fn set_hot(&mut self, v: usize, hot: u32, warm: Option<u32>, now_s: f64) {
        let of_v = |s: &super::Slot, st: &[SlotState]| s.variant == v && st.contains(&s.state);
        let serving = self
            .slots
            .iter()
            .filter(|s| of_v(s, &[SlotState::Ready, SlotState::Waking]))
            .count() as u32;
        let hot = match warm {
            // The variant is leaving (nothing hot or warm): the pods the Deployment still
            // holds neither sleep nor wake; they go as it removes them.
            Some(0) if hot == 0 => serving,
            Some(w) => {
                let up = self
                    .slots
                    .iter()
                    .filter(|s| {
                        of_v(
                            s,
                            &[
                                SlotState::Ready,
                                SlotState::ToSleep,
                                SlotState::Asleep,
                                SlotState::Waking,
                            ],
                        )
                    })
                    .count() as u32;
                hot.max(up.saturating_sub(w))
            }
            None => hot,
        };
        if serving > hot {
            let ready: Vec<usize> = self
                .ready
                .iter()
                .copied()
                .filter(|&i| self.slots[i].variant == v)
                .collect();
            let values: Vec<ReplicaValue> = ready.iter().map(|&i| self.value_of(i)).collect();
            let n = (serving - hot) as usize;
            for k in crate::tiers::removal_order(&values).into_iter().take(n) {
                let slot = ready[k];
                self.ready.retain(|&i| i != slot);
                self.slots[slot].state = SlotState::ToSleep;
                self.mark_scale_down(now_s);
                self.sleep_if_drained(slot, now_s);
            }
        } else if serving < hot {
            let mut need = hot - serving;
            for slot in 0..self.slots.len() {
                if need == 0 {
                    break;
                }
                if of_v(&self.slots[slot], &[SlotState::ToSleep]) {
                    self.slots[slot].state = SlotState::Ready;
                    self.ready.push(slot);
                    need -= 1;
                }
            }
            for slot in 0..self.slots.len() {
                if need == 0 {
                    break;
                }
                if of_v(&self.slots[slot], &[SlotState::Asleep]) {
                    self.wake(slot, now_s);
                    need -= 1;
                }
            }
        }
    }

    /// Removes `excess` pods of variant `v` in the order of the run's victim rule.
    pub(super) fn remove_victims(&mut self, v: usize, excess: u32, now_s: f64) {
        let cands: Vec<Candidate> = (0..self.slots.len())
            .filter(|&i| {
                let s = &self.slots[i];
                s.variant == v && !matches!(s.state, SlotState::Draining | SlotState::Gone)
            })
            .map(|i| Candidate {
                slot: i,
                value: self.value_of(i),
                created_s: self.slots[i].created_s,
                ready_since_s: self.slots[i].tier.ready_since_s,
            })
            .collect();
        for k in order(self.victims, now_s, &cands)
            .into_iter()
            .take(excess as usize)
        {
            let slot = cands[k].slot;
            match self.slots[slot].state {
                SlotState::Starting | SlotState::Asleep | SlotState::Waking => {
                    self.end_asleep(slot, now_s);
                    self.slots[slot].state = SlotState::Gone;
                    self.slots[slot].retired_s = Some(now_s);
                }
                SlotState::Ready => {
                    self.ready.retain(|&i| i != slot);
                    self.slots[slot].state = SlotState::Draining;
                    self.mark_scale_down(now_s);
                    self.retire_if_drained(slot, now_s);
                }
                SlotState::ToSleep => {
                    self.slots[slot].state = SlotState::Draining;
                    self.retire_if_drained(slot, now_s);
                }
                SlotState::Draining | SlotState::Gone => {}
            }
        }
    }

    /// At each sync: prefix hits per replica (for the KV value) and the prompt tokens
    /// admitted inside after-scale-down windows.
    pub(super) fn tier_sync(&mut self, now_s: f64) {
        let dt = (now_s - self.tier.last_sync_s).max(1e-9);
        let (mut prompt, mut cached) = (0u64, 0u64);
        for s in &mut self.slots {
            let st = s.replica.stats();
            prompt += st.prompt_tokens;
            cached += st.cached_tokens;
            if s.state != SlotState::Gone {
                let rate = (st.cached_tokens - s.tier.hits_at_last_sync) as f64 / dt;
                s.tier.hit_tokens_per_s = 0.75 * s.tier.hit_tokens_per_s + 0.25 * rate;
                s.tier.hits_at_last_sync = st.cached_tokens;
            }
        }
        if self.tier.last_sync_s < self.tier.after_down_until_s {
            let (p0, c0) = self.tier.last_tokens;
            self.tier.after_tokens.0 += prompt - p0;
            self.tier.after_tokens.1 += cached - c0;
        }
        self.tier.last_tokens = (prompt, cached);
        self.tier.last_sync_s = now_s;
    }

    /// Flags an arrival: first after an idle spell, inside an after-scale-down window.
    pub(super) fn note_arrival(&mut self, id: usize, now_s: f64) {
        let f = &mut self.flags[id];
        f.after_idle = self
            .tier
            .last_arrival_s
            .is_some_and(|t| now_s - t >= IDLE_GAP_S);
        self.tier.seen_idle_spell |= f.after_idle;
        f.opening = !self.tier.seen_idle_spell;
        f.after_scale_down = now_s < self.tier.after_down_until_s;
        self.tier.last_arrival_s = Some(now_s);
    }

    /// Warm replica-hours and GPU-hours per variant up to `end_s`.
    pub(super) fn warm_hours(&self, end_s: f64) -> Vec<(f64, f64)> {
        let mut out = vec![(0.0, 0.0); self.spec.variants.len()];
        for s in &self.slots {
            let mut secs = s.tier.asleep_total_s;
            if let Some(since) = s.tier.asleep_since_s {
                secs += (s.retired_s.unwrap_or(end_s).min(end_s) - since).max(0.0);
            }
            let tp = f64::from(self.spec.variants[s.variant].profile.tensor_parallel);
            out[s.variant].0 += secs / 3600.0;
            out[s.variant].1 += secs / 3600.0 * tp;
        }
        out
    }
}
