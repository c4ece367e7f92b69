//! The fleet simulator as a live, open-ended process: one model's replicas, stepped forward
//! in simulated time by a caller that observes it and scales it between steps. This is what
//! `slo-scaler serve` runs behind its embedded demo (`crate::demo::DemoPlanner`), in
//! accelerated real time with the SLO pipeline in the loop.
//!
//! Where to start: [`LiveFleet::advance_to`] processes every event up to a time,
//! [`LiveFleet::observe`] reports what an engine's `/metrics` (through Prometheus) would —
//! arrival rate, p90 TTFT/TPOT over the rate window, per-variant queue, batch and KV use —
//! and [`LiveFleet::scale`] passes one wish per variant through the same KEDA/HPA semantics
//! as the backtest ([`super::autoscaler::VariantScaler`]).
//!
//! Why not [`super::simulate`]: it replays a finite, materialised request list to the end.
//! A demo runs for as long as the process does, so here requests are generated as time
//! advances ([`LiveWorkload`]: a Poisson process with a time-varying rate, by thinning) and
//! forgotten once served: request ids index a table of requests in flight and are recycled,
//! so memory is bounded by the requests in flight, not by how long the demo has run. The
//! serving model is the backtest's: the same [`Replica`] (continuous batching, KV limit,
//! preemption), [`Routing`], cold start from the profile, and replica removal rule
//! (starting replicas first, then the least loaded, which drains before it is gone).
//!
//! Deterministic: for a given spec, workload and seed, the state at simulated time `t` does
//! not depend on how the caller chunked its calls to `advance_to` (tested), so a demo run is
//! reproducible from its seed whatever the wall clock did.

use std::collections::{BinaryHeap, VecDeque};

use forecasting::capacity::Slo;

use super::SimVariant;
use super::autoscaler::{ScalingSettings, VariantScaler, Wish};
use super::metrics::percentiles;
use super::policy::{Observation, VariantView};
use super::random::SimRng;
use super::replica::{Replica, TokenEvent};
use super::router::Routing;
use super::workload::{SimRequest, TokenLengths};

/// A request-rate curve: requests/s at a simulated time.
pub type RateFn = Box<dyn Fn(f64) -> f64 + Send + Sync>;

/// Requests generated as time advances: a Poisson process whose rate follows `rate(t)`,
/// sampled by thinning (candidates at `max_rate_per_s`, each kept with probability
/// `rate(t) / max_rate_per_s`), lengths from a [`TokenLengths`].
pub struct LiveWorkload {
    rate: RateFn,
    max_rate_per_s: f64,
    tokens: TokenLengths,
    rng: SimRng,
    /// The next candidate arrival, not yet accepted or rejected.
    candidate_s: f64,
}

impl std::fmt::Debug for LiveWorkload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveWorkload")
            .field("max_rate_per_s", &self.max_rate_per_s)
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl LiveWorkload {
    /// A workload from `start_s`. `max_rate_per_s` must bound `rate` (a higher rate is
    /// clipped to it); a `max_rate_per_s` of 0 never arrives.
    #[must_use]
    pub fn new(
        rate: RateFn,
        max_rate_per_s: f64,
        tokens: TokenLengths,
        seed: u64,
        start_s: f64,
    ) -> Self {
        let mut rng = SimRng::new(seed);
        let max_rate_per_s = if max_rate_per_s.is_finite() {
            max_rate_per_s.max(0.0)
        } else {
            0.0
        };
        let candidate_s = if max_rate_per_s > 0.0 {
            start_s + rng.exponential(1.0 / max_rate_per_s)
        } else {
            f64::INFINITY
        };
        Self {
            rate,
            max_rate_per_s,
            tokens,
            rng,
            candidate_s,
        }
    }

    /// The rate at `t_s` (requests/s), as the workload samples it.
    #[must_use]
    pub fn rate_per_s(&self, t_s: f64) -> f64 {
        let r = (self.rate)(t_s);
        if r.is_finite() {
            r.clamp(0.0, self.max_rate_per_s)
        } else {
            0.0
        }
    }

    /// The first arrival at or before `until_s` not yet returned, with its prompt and output
    /// lengths. Every candidate is decided exactly once, in order, so the sequence does not
    /// depend on how callers choose `until_s`.
    fn next_arrival(&mut self, until_s: f64) -> Option<(f64, u32, u32)> {
        while self.candidate_s <= until_s {
            let t = self.candidate_s;
            let keep = self.rng.uniform() * self.max_rate_per_s < self.rate_per_s(t);
            self.candidate_s = t + self.rng.exponential(1.0 / self.max_rate_per_s);
            if keep {
                let (p, o) = self.tokens.draw(&mut self.rng);
                return Some((t, p, o));
            }
        }
        None
    }
}

/// One model's live fleet and the rules it runs by.
#[derive(Debug, Clone)]
pub struct LiveSpec {
    /// Variants (profile, cold start, price, replica bounds).
    pub variants: Vec<SimVariant>,
    /// The SLO the rolling attainment is measured against.
    pub slo: Slo,
    /// Routing rule.
    pub routing: Routing,
    /// KEDA/HPA settings.
    pub scaling: ScalingSettings,
    /// Window of the arrival rate and latency percentiles [`LiveFleet::observe`] reports,
    /// seconds (the `rate()` window of a Prometheus query).
    pub rate_window_s: f64,
    /// Replicas serving (warm) at time 0, per variant.
    pub initial: Vec<u32>,
    /// Simulated time the fleet starts at, seconds (its workload should start there too).
    pub start_s: f64,
    /// A request held at the gateway (no replica ready) longer than this is dropped and
    /// counts as a miss, so a fleet that never scales up cannot hold requests forever.
    pub gateway_timeout_s: f64,
}

/// What [`LiveFleet::observe`] reports: the engine-level signals every backtest policy sees,
/// plus the per-variant latencies and the rolling SLO attainment the demo exports.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveObservation {
    /// Arrival rate, p90 TTFT/TPOT (model-wide) and per-variant replicas, queue, batch, KV.
    pub engine: Observation,
    /// p90 TTFT per variant over the rate window, ms (`None`: no first token in it), as
    /// the engines measure it: from dispatch to a replica, without the gateway hold.
    pub variant_ttft_p90_ms: Vec<Option<f64>>,
    /// p90 TPOT per variant over the rate window, ms (`None`: no request finished in it).
    pub variant_tpot_p90_ms: Vec<Option<f64>>,
    /// Share of the requests that ended in the rate window (served, rejected or dropped)
    /// that met both SLO bounds; `None` when none ended.
    pub attainment: Option<f64>,
    /// Requests that arrived since the start.
    pub arrived: u64,
    /// Requests that ended since the start (served, rejected or dropped).
    pub ended: u64,
    /// Of those, the ones that met both SLO bounds.
    pub met_slo: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Starting,
    Ready,
    Draining,
    Gone,
}

#[derive(Debug)]
struct Slot {
    variant: usize,
    replica: Replica,
    state: SlotState,
    /// When this replica was added, seconds.
    created_s: f64,
    /// Bumped when the slot is reused, so events of its previous replica are ignored.
    generation: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    StepEnd,
    Ready,
}

#[derive(Debug, Clone, Copy)]
struct Event {
    t_s: f64,
    seq: u64,
    slot: usize,
    generation: u32,
    kind: Kind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    /// Reversed: `BinaryHeap` is a max-heap and the earliest event must come first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other
            .t_s
            .total_cmp(&self.t_s)
            .then(other.seq.cmp(&self.seq))
    }
}

/// A request in flight (or a free entry of the table).
#[derive(Debug, Clone, Copy, Default)]
struct InFlight {
    arrival_s: f64,
    /// When it left the gateway for a replica: where the engine's TTFT starts.
    dispatched_s: f64,
    output_tokens: u32,
    /// Variant of the replica serving it (`None` while at the gateway).
    variant: Option<usize>,
    first_token_s: Option<f64>,
    ttft_s: f64,
}

/// One model's fleet, live. See the module header.
#[derive(Debug)]
pub struct LiveFleet {
    spec: LiveSpec,
    workload: LiveWorkload,
    now_s: f64,
    heap: BinaryHeap<Event>,
    seq: u64,
    slots: Vec<Slot>,
    /// Indices of ready slots (the router's candidates).
    ready: Vec<usize>,
    gateway: VecDeque<usize>,
    /// Requests by id: what [`Replica`] reads (only `hash_ids`, empty here) and routing sees.
    requests: Vec<SimRequest>,
    in_flight: Vec<InFlight>,
    free_ids: Vec<usize>,
    /// An arrival drawn from the workload but not yet due.
    pending: Option<(f64, u32, u32)>,
    events: Vec<TokenEvent>,
    scalers: Vec<VariantScaler>,
    recent_arrivals: VecDeque<f64>,
    /// (time, ms, variant) of first tokens (engine TTFT, from dispatch) and of completed
    /// requests' TPOT; the gateway-side TTFT of the same first tokens.
    recent_ttft: VecDeque<(f64, f64, usize)>,
    recent_gateway_ttft: VecDeque<(f64, f64, usize)>,
    recent_tpot: VecDeque<(f64, f64, usize)>,
    /// (time, met both bounds) of requests that ended.
    recent_outcomes: VecDeque<(f64, bool)>,
    arrived: u64,
    ended: u64,
    met_slo: u64,
}

impl LiveFleet {
    /// A fleet at `spec.start_s` with `spec.initial` replicas ready per variant.
    #[must_use]
    pub fn new(spec: LiveSpec, workload: LiveWorkload) -> Self {
        let scalers = spec
            .variants
            .iter()
            .map(|v| VariantScaler::new(spec.scaling, v.min, v.max))
            .collect();
        let mut fleet = Self {
            workload,
            now_s: spec.start_s,
            heap: BinaryHeap::new(),
            seq: 0,
            slots: Vec::new(),
            ready: Vec::new(),
            gateway: VecDeque::new(),
            requests: Vec::new(),
            in_flight: Vec::new(),
            free_ids: Vec::new(),
            pending: None,
            events: Vec::new(),
            scalers,
            recent_arrivals: VecDeque::new(),
            recent_ttft: VecDeque::new(),
            recent_gateway_ttft: VecDeque::new(),
            recent_tpot: VecDeque::new(),
            recent_outcomes: VecDeque::new(),
            arrived: 0,
            ended: 0,
            met_slo: 0,
            spec,
        };
        let initial = fleet.spec.initial.clone();
        for (v, &n) in initial.iter().enumerate().take(fleet.spec.variants.len()) {
            for _ in 0..n {
                fleet.add_slot(v, true);
            }
        }
        fleet
    }

    /// Simulated time, seconds.
    #[must_use]
    pub fn now_s(&self) -> f64 {
        self.now_s
    }

    /// The spec.
    #[must_use]
    pub fn spec(&self) -> &LiveSpec {
        &self.spec
    }

    /// The rate the workload follows at `t_s`, requests/s (the truth the observed rate
    /// estimates).
    #[must_use]
    pub fn demand_curve_rps(&self, t_s: f64) -> f64 {
        self.workload.rate_per_s(t_s)
    }

    /// (ready, starting) replicas per variant.
    #[must_use]
    pub fn replicas(&self) -> Vec<(u32, u32)> {
        (0..self.spec.variants.len())
            .map(|v| self.held(v))
            .collect()
    }

    /// Size of the request table: the most requests ever in flight at once (ids are
    /// recycled), which bounds the memory the fleet holds for requests.
    #[must_use]
    pub fn request_table_len(&self) -> usize {
        self.requests.len()
    }

    /// Requests at the gateway (no replica ready).
    #[must_use]
    pub fn gateway_waiting(&self) -> usize {
        self.gateway.len()
    }

    /// Processes every arrival and replica event up to `t_s` (no-op for a time in the past).
    pub fn advance_to(&mut self, t_s: f64) {
        if t_s <= self.now_s {
            return;
        }
        loop {
            if self.pending.is_none() {
                self.pending = self.workload.next_arrival(t_s);
            }
            let next_event = self.heap.peek().map(|e| e.t_s).filter(|t| *t <= t_s);
            match (self.pending, next_event) {
                (Some((ta, p, o)), ev) if ev.is_none_or(|te| ta <= te) => {
                    self.pending = None;
                    self.now_s = self.now_s.max(ta);
                    self.arrive(ta, p, o);
                }
                (_, Some(_)) => {
                    let ev = self.heap.pop().expect("peeked");
                    self.now_s = self.now_s.max(ev.t_s);
                    self.handle(ev);
                }
                _ => break,
            }
        }
        self.now_s = t_s;
        self.drop_overdue_at_gateway();
    }

    /// What the engines' metrics would say now (see [`LiveObservation`]).
    pub fn observe(&mut self) -> LiveObservation {
        let now = self.now_s;
        let w = self.spec.rate_window_s;
        let since = now - w;
        while self.recent_arrivals.front().is_some_and(|t| *t <= since) {
            self.recent_arrivals.pop_front();
        }
        for q in [
            &mut self.recent_ttft,
            &mut self.recent_gateway_ttft,
            &mut self.recent_tpot,
        ] {
            while q.front().is_some_and(|(t, _, _)| *t <= since) {
                q.pop_front();
            }
        }
        while self
            .recent_outcomes
            .front()
            .is_some_and(|(t, _)| *t <= since)
        {
            self.recent_outcomes.pop_front();
        }
        // Over the part of the window the fleet has existed: the first minute is not
        // under-stated as a `rate()` over a fresh series would be.
        let span = w.min(now - self.spec.start_s).max(1e-9);
        let p90 = |q: &VecDeque<(f64, f64, usize)>, variant: Option<usize>| {
            let mut v: Vec<f64> = q
                .iter()
                .filter(|(_, _, var)| variant.is_none_or(|x| x == *var))
                .map(|(_, ms, _)| *ms)
                .collect();
            percentiles(&mut v, 1.0).p90
        };
        let nv = self.spec.variants.len();
        let variants = (0..nv)
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
                for &i in &self.ready {
                    let s = &self.slots[i];
                    if s.variant == v {
                        view.serving += 1;
                        view.waiting += s.replica.waiting() as u64;
                        view.running += s.replica.running() as u64;
                        view.kv_usage += s.replica.kv_usage();
                    }
                }
                if ready > 0 {
                    view.kv_usage /= f64::from(ready);
                }
                view
            })
            .collect();
        let ended_in_window = self.recent_outcomes.len();
        LiveObservation {
            engine: Observation {
                now_s: now,
                arrivals_per_s: self.recent_arrivals.len() as f64 / span,
                ttft_p90_ms: p90(&self.recent_ttft, None),
                gateway_ttft_p90_ms: p90(&self.recent_gateway_ttft, None),
                tpot_p90_ms: p90(&self.recent_tpot, None),
                gateway_waiting: self.gateway.len() as u64,
                variants,
            },
            variant_ttft_p90_ms: (0..nv).map(|v| p90(&self.recent_ttft, Some(v))).collect(),
            variant_tpot_p90_ms: (0..nv).map(|v| p90(&self.recent_tpot, Some(v))).collect(),
            attainment: (ended_in_window > 0).then(|| {
                self.recent_outcomes.iter().filter(|(_, ok)| *ok).count() as f64
                    / ended_in_window as f64
            }),
            arrived: self.arrived,
            ended: self.ended,
            met_slo: self.met_slo,
        }
    }

    /// One HPA sync at the current time: each variant's wish goes through KEDA and the HPA
    /// ([`VariantScaler::decide`]) and the fleet is brought to the result (new replicas
    /// start cold). Returns the replica count (ready + starting) per variant.
    pub fn scale(&mut self, wishes: &[Wish]) -> Vec<u32> {
        let now = self.now_s;
        (0..self.spec.variants.len())
            .map(|v| {
                let (ready, starting) = self.held(v);
                let current = ready + starting;
                let target = match wishes.get(v) {
                    Some(w) => self.scalers[v].decide(now, *w, current, ready),
                    None => current,
                };
                if target != current {
                    self.apply(v, target);
                }
                target
            })
            .collect()
    }

    fn push(&mut self, t_s: f64, slot: usize, kind: Kind) {
        self.seq += 1;
        self.heap.push(Event {
            t_s,
            seq: self.seq,
            slot,
            generation: self.slots[slot].generation,
            kind,
        });
    }

    fn add_slot(&mut self, variant: usize, warm: bool) {
        let profile = self.spec.variants[variant].profile.clone();
        let state = if warm {
            SlotState::Ready
        } else {
            SlotState::Starting
        };
        // Reuse a gone slot: the table stays as large as the most replicas held at once.
        let idx = match self.slots.iter().position(|s| s.state == SlotState::Gone) {
            Some(i) => {
                let s = &mut self.slots[i];
                s.variant = variant;
                s.replica = Replica::new(&profile, 0);
                s.state = state;
                s.created_s = self.now_s;
                s.generation = s.generation.wrapping_add(1);
                i
            }
            None => {
                self.slots.push(Slot {
                    variant,
                    replica: Replica::new(&profile, 0),
                    state,
                    created_s: self.now_s,
                    generation: 0,
                });
                self.slots.len() - 1
            }
        };
        if warm {
            self.ready.push(idx);
        } else {
            let at = self.now_s + profile.lifecycle.cold_start_s;
            self.push(at, idx, Kind::Ready);
        }
    }

    fn held(&self, variant: usize) -> (u32, u32) {
        let (mut ready, mut starting) = (0, 0);
        for s in self.slots.iter().filter(|s| s.variant == variant) {
            match s.state {
                SlotState::Ready => ready += 1,
                SlotState::Starting => starting += 1,
                _ => {}
            }
        }
        (ready, starting)
    }

    fn arrive(&mut self, t_s: f64, prompt_tokens: u32, output_tokens: u32) {
        let id = match self.free_ids.pop() {
            Some(id) => id,
            None => {
                self.requests.push(SimRequest {
                    id: self.requests.len(),
                    arrival_s: 0.0,
                    prompt_tokens: 0,
                    output_tokens: 0,
                    hash_ids: Vec::new(),
                });
                self.in_flight.push(InFlight::default());
                self.requests.len() - 1
            }
        };
        let r = &mut self.requests[id];
        r.arrival_s = t_s;
        r.prompt_tokens = prompt_tokens;
        r.output_tokens = output_tokens;
        self.in_flight[id] = InFlight {
            arrival_s: t_s,
            dispatched_s: t_s,
            output_tokens,
            variant: None,
            first_token_s: None,
            ttft_s: 0.0,
        };
        self.arrived += 1;
        self.recent_arrivals.push_back(t_s);
        self.route(id);
    }

    fn route(&mut self, id: usize) {
        let candidates: Vec<&Replica> =
            self.ready.iter().map(|&i| &self.slots[i].replica).collect();
        let Some(k) = self.spec.routing.pick(&candidates, &self.requests[id]) else {
            self.gateway.push_back(id);
            return;
        };
        let slot = self.ready[k];
        self.in_flight[id].variant = Some(self.slots[slot].variant);
        self.in_flight[id].dispatched_s = self.now_s;
        self.slots[slot].replica.enqueue(&self.requests[id]);
        self.kick(slot);
    }

    /// Starts a step on an idle replica that has work; retires a drained one.
    fn kick(&mut self, slot: usize) {
        let now = self.now_s;
        if !self.slots[slot].replica.is_busy()
            && let Some(dt) = self.slots[slot]
                .replica
                .start_step(&self.requests, &mut self.events)
        {
            self.push(now + dt, slot, Kind::StepEnd);
        }
        self.drain_events();
        let s = &mut self.slots[slot];
        if s.state == SlotState::Draining && s.replica.is_empty() && !s.replica.is_busy() {
            s.state = SlotState::Gone;
        }
    }

    fn handle(&mut self, ev: Event) {
        if self.slots[ev.slot].generation != ev.generation {
            return;
        }
        match ev.kind {
            Kind::StepEnd => {
                self.slots[ev.slot]
                    .replica
                    .finish_step(ev.t_s, &mut self.events);
                self.drain_events();
                self.kick(ev.slot);
            }
            Kind::Ready => {
                if self.slots[ev.slot].state == SlotState::Starting {
                    self.slots[ev.slot].state = SlotState::Ready;
                    self.ready.push(ev.slot);
                    for id in std::mem::take(&mut self.gateway) {
                        self.route(id);
                    }
                }
            }
        }
    }

    fn end(&mut self, id: usize, t_s: f64, met: bool) {
        self.ended += 1;
        self.met_slo += u64::from(met);
        self.recent_outcomes.push_back((t_s, met));
        self.free_ids.push(id);
    }

    fn drain_events(&mut self) {
        let slo = self.spec.slo;
        for e in std::mem::take(&mut self.events) {
            match e {
                TokenEvent::First { id, t_s } => {
                    let f = &mut self.in_flight[id];
                    f.first_token_s = Some(t_s);
                    // The SLO is judged on the user's wait (from the gateway); what the
                    // engines export, and the scaler reads, starts at dispatch.
                    f.ttft_s = t_s - f.arrival_s;
                    let v = f.variant.unwrap_or(0);
                    self.recent_ttft
                        .push_back((t_s, (t_s - f.dispatched_s) * 1e3, v));
                    self.recent_gateway_ttft.push_back((t_s, f.ttft_s * 1e3, v));
                }
                TokenEvent::Finished { id, t_s } => {
                    let f = self.in_flight[id];
                    let first = f.first_token_s.unwrap_or(t_s);
                    let tpot_s = if f.output_tokens > 1 {
                        (t_s - first) / f64::from(f.output_tokens - 1)
                    } else {
                        0.0
                    };
                    let v = f.variant.unwrap_or(0);
                    self.recent_tpot.push_back((t_s, tpot_s * 1e3, v));
                    let met = f.ttft_s * 1e3 <= slo.ttft_ms && tpot_s * 1e3 <= slo.tpot_ms;
                    self.end(id, t_s, met);
                }
                TokenEvent::Rejected { id } => {
                    let now = self.now_s;
                    self.end(id, now, false);
                }
            }
        }
    }

    fn drop_overdue_at_gateway(&mut self) {
        let limit = self.now_s - self.spec.gateway_timeout_s;
        while let Some(&id) = self.gateway.front() {
            if self.in_flight[id].arrival_s > limit {
                break;
            }
            self.gateway.pop_front();
            let now = self.now_s;
            self.end(id, now, false);
        }
    }

    /// Brings variant `v` to `target` replicas (starting + ready).
    fn apply(&mut self, v: usize, target: u32) {
        let (ready, starting) = self.held(v);
        let current = ready + starting;
        if target > current {
            for _ in current..target {
                self.add_slot(v, false);
            }
            return;
        }
        let mut excess = current - target;
        // Starting replicas go first (newest first, as in the backtest): they serve nobody.
        let mut starting_slots: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].variant == v && self.slots[i].state == SlotState::Starting)
            .collect();
        starting_slots.sort_by(|&a, &b| {
            self.slots[b]
                .created_s
                .total_cmp(&self.slots[a].created_s)
                .then(b.cmp(&a))
        });
        for i in starting_slots {
            if excess == 0 {
                break;
            }
            self.slots[i].state = SlotState::Gone;
            excess -= 1;
        }
        while excess > 0 {
            let Some(k) = (0..self.ready.len())
                .filter(|&k| self.slots[self.ready[k]].variant == v)
                .min_by_key(|&k| {
                    let r = &self.slots[self.ready[k]].replica;
                    (r.waiting() + r.running(), std::cmp::Reverse(self.ready[k]))
                })
            else {
                break;
            };
            let slot = self.ready.swap_remove(k);
            self.slots[slot].state = SlotState::Draining;
            self.kick(slot);
            excess -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use forecasting::latency::Percentile;
    use forecasting::profile::Profile;

    use super::*;

    fn spec(initial: u32, min: u32, cold_start_s: f64) -> LiveSpec {
        let mut p = Profile::from_yaml(include_str!(
            "../../../docs/profiles/llama-3.1-8b-fp8_h100-80gb_tp1_derived.yaml"
        ))
        .unwrap();
        p.lifecycle.cold_start_s = cold_start_s;
        LiveSpec {
            variants: vec![SimVariant {
                name: "h100".into(),
                profile: Arc::new(p),
                min,
                max: 20,
            }],
            slo: Slo {
                ttft_ms: 1000.0,
                tpot_ms: 50.0,
                percentile: Percentile::P90,
            },
            routing: Routing::LeastLoaded,
            scaling: ScalingSettings::default(),
            rate_window_s: 60.0,
            initial: vec![initial],
            start_s: 0.0,
            gateway_timeout_s: 600.0,
        }
    }

    fn steady(rps: f64, seed: u64) -> LiveWorkload {
        LiveWorkload::new(
            Box::new(move |_| rps),
            rps,
            TokenLengths::default_for(512.0, 128.0),
            seed,
            0.0,
        )
    }

    #[test]
    fn serves_at_the_offered_rate_and_recycles_request_ids() {
        let mut f = LiveFleet::new(spec(2, 1, 120.0), steady(8.0, 1));
        let mut t = 0.0;
        while t < 1800.0 {
            t += 15.0;
            f.advance_to(t);
        }
        let o = f.observe();
        assert!(
            (o.engine.arrivals_per_s - 8.0).abs() < 1.5,
            "observed rate {} of 8",
            o.engine.arrivals_per_s
        );
        assert!(o.arrived > 13_000, "{}", o.arrived);
        assert!(
            o.ended + 200 > o.arrived,
            "{} of {} ended",
            o.ended,
            o.arrived
        );
        let (ttft, tpot) = (o.engine.ttft_p90_ms.unwrap(), o.engine.tpot_p90_ms.unwrap());
        assert!(
            ttft > 10.0 && ttft < 1000.0 && tpot > 1.0 && tpot < 50.0,
            "{o:?}"
        );
        assert_eq!(
            o.variant_ttft_p90_ms[0], o.engine.ttft_p90_ms,
            "one variant"
        );
        assert!(o.attainment.unwrap() > 0.95, "{o:?}");
        // Ids are recycled: the table is as large as the requests in flight at once,
        // not as the 14 000 served.
        assert!(
            f.request_table_len() < 500,
            "table {}",
            f.request_table_len()
        );
    }

    #[test]
    fn new_replicas_serve_only_after_their_cold_start() {
        let mut f = LiveFleet::new(spec(0, 0, 300.0), steady(4.0, 2));
        f.advance_to(30.0);
        assert!(f.gateway_waiting() > 0, "no replica: held at the gateway");
        // KEDA activates the Deployment at its poll: 0 → 1, starting.
        assert_eq!(f.scale(&[Wish::replicas(2.0)]), vec![1]);
        assert_eq!(f.replicas(), vec![(0, 1)]);
        f.advance_to(329.0);
        assert_eq!(f.replicas(), vec![(0, 1)], "still starting at 329 s");
        assert!(
            f.observe().engine.ttft_p90_ms.is_none(),
            "nothing served yet"
        );
        f.advance_to(331.0);
        assert_eq!(f.replicas(), vec![(1, 0)]);
        assert_eq!(f.gateway_waiting(), 0, "the held requests go to it");
        f.advance_to(400.0);
        let o = f.observe();
        // The requests held since the start waited the whole cold start: users see it (the
        // gateway's TTFT, the attainment), the engine's histogram does not — only the
        // queue the held requests formed on the one replica.
        let (engine_ms, gateway_ms) = (
            o.engine.ttft_p90_ms.unwrap(),
            o.engine.gateway_ttft_p90_ms.unwrap(),
        );
        assert!(gateway_ms > 60_000.0, "{o:?}");
        assert!(engine_ms < 0.25 * gateway_ms, "{o:?}");
        assert!(o.attainment.unwrap() < 0.5, "{o:?}");
    }

    #[test]
    fn scale_down_drains_and_the_state_is_independent_of_chunking() {
        let run = |step: f64| {
            let mut f = LiveFleet::new(spec(6, 1, 60.0), steady(6.0, 9));
            let mut t = 0.0;
            let mut next_sync = 15.0;
            while t < 900.0 {
                t = (t + step).min(900.0);
                while next_sync <= t {
                    f.advance_to(next_sync);
                    f.scale(&[Wish::replicas(2.0)]);
                    next_sync += 15.0;
                }
                f.advance_to(t);
            }
            (f.observe(), f.replicas())
        };
        let (a, ra) = run(15.0);
        let (b, rb) = run(7.3);
        assert_eq!(
            a, b,
            "same seed, same state at 900 s however time was chunked"
        );
        assert_eq!(ra, rb);
        assert_eq!(ra, vec![(2, 0)], "scaled down to the wish");
        assert!(
            a.ended + 100 > a.arrived,
            "drained replicas finished their requests"
        );
        assert!(a.attainment.unwrap() > 0.95, "{a:?}");
        let mut other = LiveFleet::new(spec(6, 1, 60.0), steady(6.0, 10));
        other.advance_to(900.0);
        assert_ne!(
            a.arrived,
            other.observe().arrived,
            "another seed, other arrivals"
        );
    }
}
