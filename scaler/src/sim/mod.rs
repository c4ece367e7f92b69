//! Trace-driven discrete-event simulator of one model's serving fleet under an autoscaling
//! policy: the instrument behind `slo-scaler backtest` and the independent check of the
//! analytic latency model (`forecasting::latency`), with which it shares only the
//! profiles' step-time curves.
//!
//! Where to start: [`simulate`] replays a [`workload`] against a [`FleetSpec`] with a
//! [`policy::Policy`] in the loop and returns a [`metrics::SimReport`]. Pieces, one concept
//! each: [`replica`] (continuous batching, KV limit, preemption, prefix cache),
//! [`prefix_cache`], [`router`], [`autoscaler`] (KEDA/HPA semantics every policy goes
//! through), [`policy`] (the autoscalers under test), [`metrics`], [`random`] (seeded
//! samplers). Design and assumptions: `docs/simulator.md`.
//!
//! Events, in time order (ties in insertion order): a request **arrives** and is routed to a
//! ready replica (or held at the gateway while none is ready); a replica's **step ends**
//! (tokens are emitted, the next step starts at once if there is work); a starting replica
//! becomes **ready** after its profile's cold start; every HPA **sync** the policy is asked
//! for its wish, KEDA/HPA turn it into replica counts, and replicas are added (starting,
//! billed from that moment) or removed (starting ones first, else the least loaded, which
//! drains its requests before it stops being billed). Deterministic: the only randomness is
//! in building the workload, from a seed.

pub mod autoscaler;
pub mod metrics;
pub mod policy;
pub mod prefix_cache;
pub mod random;
pub mod realtime;
pub mod replica;
pub mod router;
pub mod tier_metrics;
pub mod victims;
mod warm_pool;
pub mod workload;

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

use forecasting::capacity::Slo;
use forecasting::profile::Profile;

use autoscaler::{ScalingSettings, VariantScaler};
use metrics::{RequestOutcome, SimReport, TimelinePoint, VariantUsage, summarise};
use policy::{Observation, Policy, VariantView};
use replica::{Replica, TokenEvent};
use router::Routing;
use workload::SimRequest;

/// One GPU variant the model can run on.
#[derive(Debug, Clone)]
pub struct SimVariant {
    /// Variant name.
    pub name: String,
    /// Its performance profile (`cost_per_hour` is the price of a replica-hour,
    /// `tensor_parallel` the GPUs per replica, `lifecycle.cold_start_s` the start delay).
    pub profile: Arc<Profile>,
    /// Fewest replicas.
    pub min: u32,
    /// Most replicas.
    pub max: u32,
}

/// The fleet and the rules it runs by.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// Variants; the first is the baselines' pool.
    pub variants: Vec<SimVariant>,
    /// The SLO attainment is measured against.
    pub slo: Slo,
    /// Routing rule.
    pub routing: Routing,
    /// Prefix-cache block size in tokens (Mooncake: 512); 0 disables prefix caching.
    pub block_tokens: u32,
    /// KEDA/HPA settings.
    pub scaling: ScalingSettings,
    /// Window of the arrival rate and latency percentiles policies observe, seconds.
    pub rate_window_s: f64,
    /// Arrival rate before time 0, req/s: the fleet was serving before the slice began, so
    /// the first rate windows hold that rate for their part before 0 (a Prometheus `rate()`
    /// on a running service does), not a spurious ramp from zero that forecasters read as
    /// a trend. 0 for a service that starts with the slice.
    pub prior_arrivals_per_s: f64,
    /// Replicas serving (warm) at time 0, per variant, before a policy's own
    /// [`Policy::initial`] adjustment.
    pub initial: Vec<u32>,
    /// Keep a per-sync timeline in the report.
    pub timeline: bool,
    /// Stop this long after the last arrival even if requests remain (they count as
    /// misses), seconds.
    pub drain_limit_s: f64,
}

impl FleetSpec {
    /// One replica of `profile`, never scaled, with an SLO nothing misses: the setting
    /// in which the simulator is compared with the analytic latency model.
    pub fn single_fixed_replica(profile: &forecasting::profile::Profile) -> Self {
        Self {
            variants: vec![SimVariant {
                name: "v".into(),
                profile: std::sync::Arc::new(profile.clone()),
                min: 1,
                max: 1,
            }],
            slo: forecasting::capacity::Slo {
                ttft_ms: 1e9,
                tpot_ms: 1e9,
                percentile: forecasting::latency::Percentile::P90,
            },
            routing: router::Routing::LeastLoaded,
            block_tokens: 0,
            scaling: autoscaler::ScalingSettings::default(),
            rate_window_s: 60.0,
            prior_arrivals_per_s: 0.0,
            initial: vec![1],
            timeline: false,
            drain_limit_s: 3600.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Starting,
    Ready,
    Draining,
    Gone,
    /// Told to sleep: no new traffic, sleeps once drained (warm tier).
    ToSleep,
    /// Asleep (warm tier): a ready pod to Kubernetes, serves nothing.
    Asleep,
    /// Waking from sleep.
    Waking,
}

#[derive(Debug)]
struct Slot {
    variant: usize,
    replica: Replica,
    created_s: f64,
    retired_s: Option<f64>,
    state: SlotState,
    initial: bool,
    tier: warm_pool::TierSlot,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Arrival(usize),
    StepEnd(usize),
    Ready(usize),
    Sync,
    /// A sleeping replica finished waking.
    Woken(usize),
}

#[derive(Debug, Clone, Copy)]
struct Event {
    t_s: f64,
    seq: u64,
    kind: Kind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    /// Reversed: `BinaryHeap` is a max-heap and the earliest event must come first.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .t_s
            .total_cmp(&self.t_s)
            .then(other.seq.cmp(&self.seq))
    }
}

/// The simulation state; [`simulate`] owns it.
struct Sim<'a> {
    spec: &'a FleetSpec,
    requests: &'a [SimRequest],
    heap: BinaryHeap<Event>,
    seq: u64,
    slots: Vec<Slot>,
    /// Indices of ready slots (the router's candidates).
    ready: Vec<usize>,
    gateway: VecDeque<usize>,
    outcomes: Vec<RequestOutcome>,
    finished: usize,
    /// Requests finished, and those within both SLO bounds, since the last sync (timeline).
    sync_finished: u32,
    sync_met: u32,
    next_arrival: usize,
    events: Vec<TokenEvent>,
    /// When each request left the gateway for a replica (index = request id): where an
    /// engine's clock for it starts.
    dispatched_s: Vec<f64>,
    /// (first-token time, TTFT s) of recent requests as the engine measures it (from
    /// dispatch: vLLM's `time_to_first_token_seconds`), the same from gateway arrival (what
    /// a gateway or frontend measures), and (finish time, TPOT s).
    recent_ttft: VecDeque<(f64, f64)>,
    recent_gateway_ttft: VecDeque<(f64, f64)>,
    recent_tpot: VecDeque<(f64, f64)>,
    last_event_s: f64,
    max_held: Vec<u32>,
    /// How pods are chosen on a scale-down.
    victims: victims::VictimRule,
    /// Warm-tier counters and per-request flags.
    tier: tier_metrics::TierCounters,
    flags: Vec<tier_metrics::RequestFlags>,
}

impl Sim<'_> {
    fn push(&mut self, t_s: f64, kind: Kind) {
        self.seq += 1;
        self.heap.push(Event {
            t_s,
            seq: self.seq,
            kind,
        });
    }

    fn add_slot(&mut self, variant: usize, now_s: f64, warm: bool) {
        let profile = &self.spec.variants[variant].profile;
        let idx = self.slots.len();
        self.slots.push(Slot {
            variant,
            replica: Replica::new(profile, self.spec.block_tokens),
            created_s: now_s,
            retired_s: None,
            state: if warm {
                SlotState::Ready
            } else {
                SlotState::Starting
            },
            initial: warm,
            tier: warm_pool::TierSlot {
                ready_since_s: warm.then_some(now_s),
                ..Default::default()
            },
        });
        if warm {
            self.ready.push(idx);
        } else {
            let at = now_s + profile.lifecycle.cold_start_s;
            self.push(at, Kind::Ready(idx));
        }
    }

    fn route(&mut self, id: usize, now_s: f64) {
        let req = &self.requests[id];
        let candidates: Vec<&Replica> =
            self.ready.iter().map(|&i| &self.slots[i].replica).collect();
        let Some(k) = self.spec.routing.pick(&candidates, req) else {
            if self.hold_at_gateway(id, now_s) {
                self.route(id, now_s);
            }
            return;
        };
        let slot = self.ready[k];
        self.slots[slot].replica.enqueue(req);
        self.dispatched_s[id] = now_s;
        self.kick(slot, now_s);
    }

    /// Starts a step on an idle replica that has work.
    fn kick(&mut self, slot: usize, now_s: f64) {
        let s = &mut self.slots[slot];
        if s.replica.is_busy() {
            return;
        }
        if let Some(dt) = s.replica.start_step(self.requests, &mut self.events) {
            self.push(now_s + dt, Kind::StepEnd(slot));
        }
        self.drain_events();
        self.retire_if_drained(slot, now_s);
        self.sleep_if_drained(slot, now_s);
    }

    fn retire_if_drained(&mut self, slot: usize, now_s: f64) {
        let s = &mut self.slots[slot];
        if s.state == SlotState::Draining && s.replica.is_empty() && !s.replica.is_busy() {
            s.state = SlotState::Gone;
            s.retired_s = Some(now_s);
        }
    }

    fn drain_events(&mut self) {
        for e in std::mem::take(&mut self.events) {
            match e {
                TokenEvent::First { id, t_s } => {
                    // Users wait from their arrival at the gateway (the SLO is judged on
                    // that); the engine's histogram starts when the request reached it, so
                    // a hold for a cold start or a wake is not in what policies read.
                    let ttft = t_s - self.requests[id].arrival_s;
                    let o = &mut self.outcomes[id];
                    o.ttft_s = Some(ttft);
                    o.first_token_at_s = Some(t_s);
                    self.recent_ttft
                        .push_back((t_s, t_s - self.dispatched_s[id]));
                    self.recent_gateway_ttft.push_back((t_s, ttft));
                }
                TokenEvent::Finished { id, t_s } => {
                    let r = &self.requests[id];
                    let o = &mut self.outcomes[id];
                    let first = o.first_token_at_s.unwrap_or(t_s);
                    let tpot = if r.output_tokens > 1 {
                        (t_s - first) / f64::from(r.output_tokens - 1)
                    } else {
                        0.0
                    };
                    o.tpot_s = Some(tpot);
                    let slo = &self.spec.slo;
                    let met = o.ttft_s.is_some_and(|t| t * 1e3 <= slo.ttft_ms)
                        && tpot * 1e3 <= slo.tpot_ms;
                    self.sync_met += u32::from(met);
                    self.sync_finished += 1;
                    self.recent_tpot.push_back((t_s, tpot));
                    self.finished += 1;
                    self.last_event_s = self.last_event_s.max(t_s);
                }
                TokenEvent::Rejected { id } => {
                    self.outcomes[id].rejected = true;
                    self.sync_finished += 1;
                    self.finished += 1;
                }
            }
        }
    }

    fn held(&self, variant: usize) -> (u32, u32) {
        let (mut ready, mut starting) = (0, 0);
        for s in self.slots.iter().filter(|s| s.variant == variant) {
            match s.state {
                // Sleep is invisible to Kubernetes: a sleeping pod is ready.
                SlotState::Ready | SlotState::ToSleep | SlotState::Asleep | SlotState::Waking => {
                    ready += 1;
                }
                SlotState::Starting => starting += 1,
                _ => {}
            }
        }
        (ready, starting)
    }

    fn observe(&mut self, now_s: f64) -> Observation {
        let w = self.spec.rate_window_s;
        let since = now_s - w;
        let first_in = self.requests[..self.next_arrival].partition_point(|r| r.arrival_s <= since);
        // Like a Prometheus `rate()` over the window of a service already running: the part
        // of the window before the slice holds the rate it ran at.
        let before_s = (-since).clamp(0.0, w);
        let arrivals =
            ((self.next_arrival - first_in) as f64 + before_s * self.spec.prior_arrivals_per_s) / w;
        for q in [
            &mut self.recent_ttft,
            &mut self.recent_gateway_ttft,
            &mut self.recent_tpot,
        ] {
            while q.front().is_some_and(|(t, _)| *t <= since) {
                q.pop_front();
            }
        }
        let p90 = |q: &VecDeque<(f64, f64)>| {
            let mut v: Vec<f64> = q.iter().map(|(_, x)| *x).collect();
            metrics::percentiles(&mut v, 1000.0).p90
        };
        let variants = (0..self.spec.variants.len())
            .map(|v| {
                let (ready, starting) = self.held(v);
                let mut view = VariantView {
                    ready,
                    serving: 0,
                    starting,
                    waiting: 0,
                    running: 0,
                    kv_usage: 0.0,
                };
                for s in self
                    .slots
                    .iter()
                    .filter(|s| s.variant == v && s.state == SlotState::Ready)
                {
                    view.serving += 1;
                    view.waiting += s.replica.waiting() as u64;
                    view.running += s.replica.running() as u64;
                    view.kv_usage += s.replica.kv_usage();
                }
                if ready > 0 {
                    view.kv_usage /= f64::from(ready);
                }
                view
            })
            .collect();
        Observation {
            now_s,
            arrivals_per_s: arrivals,
            ttft_p90_ms: p90(&self.recent_ttft),
            gateway_ttft_p90_ms: p90(&self.recent_gateway_ttft),
            tpot_p90_ms: p90(&self.recent_tpot),
            gateway_waiting: self.gateway.len() as u64,
            variants,
        }
    }

    /// Brings variant `v` to `target` replicas (starting + ready).
    fn apply(&mut self, v: usize, target: u32, now_s: f64) {
        let (ready, starting) = self.held(v);
        let current = ready + starting;
        if target > current {
            for _ in current..target {
                self.add_slot(v, now_s, false);
            }
        } else {
            self.remove_victims(v, current - target, now_s);
        }
        let held = self
            .slots
            .iter()
            .filter(|s| s.variant == v && s.state != SlotState::Gone)
            .count() as u32;
        self.max_held[v] = self.max_held[v].max(held);
    }
}

/// Replays `requests` (sorted by arrival, ids `0..n`) against `spec` with `policy` deciding.
#[must_use]
pub fn simulate(requests: &[SimRequest], spec: &FleetSpec, policy: &mut dyn Policy) -> SimReport {
    simulate_with_progress(requests, spec, policy, &mut |_, _| {})
}

/// Events between two calls of a progress callback.
const PROGRESS_EVERY_EVENTS: u64 = 1 << 16;

/// [`simulate`], telling `progress(arrived, total)` how many requests have arrived every
/// few tens of thousands of events (for a progress bar on long runs) and once at the end.
#[must_use]
pub fn simulate_with_progress(
    requests: &[SimRequest],
    spec: &FleetSpec,
    policy: &mut dyn Policy,
    progress: &mut dyn FnMut(usize, usize),
) -> SimReport {
    simulate_with_outcomes(requests, spec, policy, progress).0
}

/// [`simulate_with_progress`], also returning every request's outcome (index = request id):
/// what the oracle's search reads to find the minutes that missed the SLO.
#[must_use]
pub fn simulate_with_outcomes(
    requests: &[SimRequest],
    spec: &FleetSpec,
    policy: &mut dyn Policy,
    progress: &mut dyn FnMut(usize, usize),
) -> (SimReport, Vec<RequestOutcome>) {
    let nv = spec.variants.len();
    let mut sim = Sim {
        spec,
        requests,
        heap: BinaryHeap::new(),
        seq: 0,
        slots: Vec::new(),
        ready: Vec::new(),
        gateway: VecDeque::new(),
        outcomes: vec![RequestOutcome::default(); requests.len()],
        finished: 0,
        sync_finished: 0,
        sync_met: 0,
        next_arrival: 0,
        events: Vec::new(),
        dispatched_s: vec![0.0; requests.len()],
        recent_ttft: VecDeque::new(),
        recent_gateway_ttft: VecDeque::new(),
        recent_tpot: VecDeque::new(),
        last_event_s: 0.0,
        max_held: vec![0; nv],
        victims: policy.victim_rule(),
        tier: tier_metrics::TierCounters::default(),
        flags: vec![tier_metrics::RequestFlags::default(); requests.len()],
    };
    let initial = policy.initial(&spec.initial);
    for (v, &n) in initial.iter().enumerate().take(nv) {
        for _ in 0..n {
            sim.add_slot(v, 0.0, true);
        }
        sim.max_held[v] = n;
    }
    let mins = policy.min_replicas(&spec.variants.iter().map(|v| v.min).collect::<Vec<_>>());
    let scaling = policy.scaling(spec.scaling);
    let mut scalers: Vec<VariantScaler> = spec
        .variants
        .iter()
        .zip(&mins)
        .enumerate()
        .map(|(i, (v, &min))| {
            VariantScaler::new(scaling, min, v.max)
                .running_before(0.0, initial.get(i).copied().unwrap_or(0))
        })
        .collect();
    if let Some(r) = requests.first() {
        sim.push(r.arrival_s, Kind::Arrival(0));
    }
    sim.push(0.0, Kind::Sync);
    let last_arrival = requests.last().map_or(0.0, |r| r.arrival_s);
    let hard_end = last_arrival + spec.drain_limit_s;
    let mut wishes = Vec::new();
    let mut next_policy_s = 0.0;
    let mut decisions = 0u32;
    let mut timeline = Vec::new();
    let mut events_seen = 0u64;
    while let Some(ev) = sim.heap.pop() {
        events_seen += 1;
        if events_seen.is_multiple_of(PROGRESS_EVERY_EVENTS) {
            progress(sim.next_arrival, requests.len());
        }
        let now = ev.t_s;
        if now > hard_end {
            break;
        }
        match ev.kind {
            Kind::Arrival(i) => {
                sim.next_arrival = i + 1;
                sim.note_arrival(i, now);
                if let Some(next) = requests.get(i + 1) {
                    sim.push(next.arrival_s, Kind::Arrival(i + 1));
                }
                sim.route(i, now);
            }
            Kind::StepEnd(slot) => {
                sim.slots[slot].replica.finish_step(now, &mut sim.events);
                sim.drain_events();
                sim.kick(slot, now);
            }
            Kind::Ready(slot) => {
                if sim.slots[slot].state == SlotState::Starting {
                    sim.slots[slot].state = SlotState::Ready;
                    sim.slots[slot].tier.ready_since_s = Some(now);
                    sim.ready.push(slot);
                    for id in std::mem::take(&mut sim.gateway) {
                        sim.route(id, now);
                    }
                }
            }
            Kind::Woken(slot) => sim.woken(slot, now),
            Kind::Sync => {
                let done = sim.next_arrival >= requests.len()
                    && sim.finished >= requests.len()
                    && sim.gateway.is_empty();
                if done {
                    continue;
                }
                let obs = sim.observe(now);
                if now + 1e-9 >= next_policy_s || wishes.len() != nv {
                    wishes = policy.wishes(&obs);
                    next_policy_s = now + policy.interval_s();
                }
                let mut changed = false;
                for v in 0..nv {
                    let (ready, starting) = (obs.variants[v].ready, obs.variants[v].starting);
                    let current = ready + starting;
                    let target = scalers[v].decide(now, wishes[v], current, ready);
                    if target != current {
                        changed = true;
                        sim.apply(v, target, now);
                    }
                }
                if let Some(hot) = policy.hot_replicas() {
                    let warm = policy.warm_replicas();
                    for (v, &h) in hot.iter().enumerate().take(nv) {
                        let w = warm.as_ref().and_then(|w| w.get(v).copied());
                        sim.set_hot(v, h, w, now);
                    }
                }
                sim.tier_sync(now);
                decisions += u32::from(changed);
                if spec.timeline {
                    timeline.push(TimelinePoint {
                        t_s: now,
                        arrivals_per_s: obs.arrivals_per_s,
                        replicas: (0..nv)
                            .map(|v| {
                                let (r, s) = sim.held(v);
                                r + s
                            })
                            .collect(),
                        finished: sim.sync_finished,
                        met_slo: sim.sync_met,
                        forecast: policy.forecast_band(),
                    });
                }
                (sim.sync_finished, sim.sync_met) = (0, 0);
                sim.push(now + spec.scaling.sync_interval_s, Kind::Sync);
            }
        }
    }
    progress(sim.next_arrival, requests.len());
    let end_s = sim.last_event_s.max(last_arrival);
    let (attainment, ttft_ms, tpot_ms) =
        summarise(&sim.outcomes, spec.slo.ttft_ms, spec.slo.tpot_ms);
    let mut variants: Vec<VariantUsage> = spec
        .variants
        .iter()
        .map(|v| VariantUsage {
            name: v.name.clone(),
            mean_replicas: 0.0,
            max_replicas: 0,
            gpu_hours: 0.0,
            cost: 0.0,
            cold_starts: 0,
        })
        .collect();
    let (mut preemptions, mut prompt_tokens, mut cached_tokens) = (0, 0, 0);
    for s in &sim.slots {
        let v = &spec.variants[s.variant];
        let held_s = (s.retired_s.unwrap_or(end_s).min(end_s) - s.created_s).max(0.0);
        let u = &mut variants[s.variant];
        u.mean_replicas += held_s;
        u.gpu_hours += held_s / 3600.0 * f64::from(v.profile.tensor_parallel);
        u.cost += held_s / 3600.0 * v.profile.cost_per_hour;
        u.cold_starts += u32::from(!s.initial);
        let st = s.replica.stats();
        preemptions += st.preemptions;
        prompt_tokens += st.prompt_tokens;
        cached_tokens += st.cached_tokens;
    }
    for (u, m) in variants.iter_mut().zip(&sim.max_held) {
        u.mean_replicas /= end_s.max(1e-9);
        u.max_replicas = *m;
    }
    let rejected = sim.outcomes.iter().filter(|o| o.rejected).count();
    let mut scale_to_zero = tier_metrics::summarise(&sim.outcomes, &sim.flags, &sim.tier);
    let warm = sim.warm_hours(end_s);
    let fraction = policy.warm_cost_fraction();
    scale_to_zero.victim_rule = sim.victims.name().to_string();
    scale_to_zero.tiers = policy.hot_replicas().is_some();
    scale_to_zero.warm_replica_hours = warm.iter().map(|w| w.0).sum();
    scale_to_zero.warm_gpu_hours = warm.iter().map(|w| w.1).sum();
    scale_to_zero.warm_cost = warm
        .iter()
        .zip(&spec.variants)
        .map(|(w, v)| w.0 * v.profile.cost_per_hour * fraction)
        .sum();
    let full_warm: f64 = warm
        .iter()
        .zip(&spec.variants)
        .map(|(w, v)| w.0 * v.profile.cost_per_hour)
        .sum();
    scale_to_zero.cost_with_warm_fraction =
        variants.iter().map(|u| u.cost).sum::<f64>() - full_warm + scale_to_zero.warm_cost;
    let completed = sim.outcomes.iter().filter(|o| o.tpot_s.is_some()).count();
    let report = SimReport {
        name: policy.name().to_string(),
        requests: requests.len(),
        completed,
        rejected,
        unfinished: requests.len() - completed - rejected,
        attainment,
        ttft_ms,
        tpot_ms,
        gpu_hours: variants.iter().map(|u| u.gpu_hours).sum(),
        cost: variants.iter().map(|u| u.cost).sum(),
        cold_starts: variants.iter().map(|u| u.cold_starts).sum(),
        variants,
        requests_waited_on_cold_start: sim
            .outcomes
            .iter()
            .filter(|o| o.waited_on_cold_start)
            .count(),
        decisions,
        preemptions,
        prefix_hit_rate: if prompt_tokens == 0 {
            0.0
        } else {
            cached_tokens as f64 / prompt_tokens as f64
        },
        simulated_s: end_s,
        timeline,
        scale_to_zero,
        oracle: None,
    };
    (report, sim.outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::autoscaler::Wish;

    /// Asks for one replica from the start and keeps what it observed.
    struct OneReplica {
        seen: Vec<Observation>,
    }

    impl Policy for OneReplica {
        fn name(&self) -> &str {
            "one"
        }
        fn min_replicas(&self, fleet_min: &[u32]) -> Vec<u32> {
            fleet_min.to_vec()
        }
        fn wishes(&mut self, obs: &Observation) -> Vec<Wish> {
            self.seen.push(obs.clone());
            vec![Wish::replicas(1.0)]
        }
    }

    #[test]
    fn a_hold_for_a_cold_start_is_in_the_users_ttft_not_in_the_engines() {
        let mut profile = forecasting::profile::Profile::from_yaml(include_str!(
            "../../../docs/profiles/llama-3.1-8b-fp8_h100-80gb_tp1_derived.yaml"
        ))
        .unwrap();
        let cold_start_s = 120.0;
        profile.lifecycle.cold_start_s = cold_start_s;
        let mut spec = FleetSpec::single_fixed_replica(&profile);
        spec.variants[0].min = 0;
        spec.initial = vec![0];
        // A trickle to a scaled-to-zero model: the first 20 wait for the cold start, the
        // ten after it (every 5 s to 170 s) find the replica up and keep the run going
        // through the windows that hold the first ones' first tokens.
        let requests: Vec<SimRequest> = (0..30)
            .map(|id| SimRequest {
                id,
                arrival_s: if id < 20 {
                    1.0 + id as f64
                } else {
                    125.0 + 5.0 * (id - 20) as f64
                },
                prompt_tokens: 500,
                output_tokens: 50,
                hash_ids: Vec::new(),
            })
            .collect();
        let mut policy = OneReplica { seen: Vec::new() };
        let report = simulate(&requests, &spec, &mut policy);
        assert_eq!(report.completed, 30);
        assert_eq!(report.requests_waited_on_cold_start, 20);
        let user_p90_ms = report.ttft_ms.p90.unwrap();
        assert!(
            user_p90_ms > 90_000.0,
            "users waited for the cold start: {user_p90_ms} ms"
        );
        let served: Vec<&Observation> = policy
            .seen
            .iter()
            .filter(|o| o.ttft_p90_ms.is_some())
            .collect();
        assert!(served.len() >= 2, "windows after the replica came up");
        for o in served {
            let engine_ms = o.ttft_p90_ms.unwrap();
            let gateway_ms = o.gateway_ttft_p90_ms.unwrap();
            assert!(
                engine_ms < 2_000.0,
                "the engine's clock starts at dispatch: {engine_ms} ms at {} s",
                o.now_s
            );
            if o.now_s < cold_start_s + 60.0 {
                assert!(
                    gateway_ms > 90_000.0,
                    "the gateway's includes the hold: {gateway_ms} ms at {} s",
                    o.now_s
                );
            }
        }
    }
}
