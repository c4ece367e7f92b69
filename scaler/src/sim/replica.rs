//! One serving replica with iteration-level (continuous) batching, as vLLM schedules it.
//!
//! Where to start: the engine calls [`Replica::enqueue`] when the router sends a request,
//! [`Replica::start_step`] whenever the replica is free (it admits waiting requests and
//! returns how long the step takes), and [`Replica::finish_step`] at the step's end (it
//! reports first tokens and completions).
//!
//! The rules, each a choice stated once:
//! - **Admission** is first come, first served: the head of the waiting queue joins the
//!   running batch while the batch is below `limits.max_batch` and its context (prompt plus
//!   tokens already generated) fits in the free KV cache with room for one more token. A
//!   request that does not fit waits, and so does everything behind it (vLLM's FCFS).
//! - **Prefill is mixed into the step** that admits the prompt (chunked prefill without a
//!   token budget, like the analytic model). A step costs
//!   `decode.step_ms(B, KV) + f·Σ work(prompt)` with `B`, `KV` the sequences already
//!   decoding and their context, and `f` the profile's `mixed_prefill_factor` when something
//!   decodes alongside (1 otherwise). With `decode.cuda_graph_batch_sizes` in the profile,
//!   `step_ms` charges `per_seq_ms` on `B` padded to the next graph size (the engine runs
//!   the step through the graph captured for that size), exactly as the analytic model does
//!   on its mean batch; prompts mixed in are not padded, in either. A prompt's work is
//!   `per_token_ms·n + per_token_sq_ms·n·(cached + n)` for `n` uncached tokens: reused
//!   prefix blocks are not recomputed, but the new tokens still attend to them.
//! - **Fixed per-request latency**: the part of a standalone prefill's fixed time beyond a
//!   decode step's, `max(0, prefill.base_ms − decode.base_ms)`, is time the request spends
//!   outside the GPU batch (scheduling, sampling, for client-side fits the HTTP round trip).
//!   It delays every token of the request equally, so it adds to TTFT and leaves TPOT alone,
//!   and it does not slow the other sequences.
//! - **Every step yields one token per running sequence**; a prompt's step yields its first.
//! - **Preemption when the KV cache is full**: if the running batch cannot grow by one token
//!   each, the most recently admitted sequence is preempted (vLLM's recompute mode): its KV
//!   is freed and it goes back to the front of the queue; on readmission its prompt and the
//!   tokens it had generated are prefilled again.
//! - **Prefix cache**: with hash ids (512-token blocks), the leading blocks already in this
//!   replica's LRU are not prefilled; the LRU holds `kv_capacity_tokens / block` blocks
//!   (vLLM keeps freed blocks cached until the space is needed).

use std::collections::VecDeque;

use forecasting::profile::{DecodeCurve, Limits, PrefillCurve, Profile};

use super::prefix_cache::PrefixCache;
use super::workload::SimRequest;

/// A request inside a replica.
#[derive(Debug, Clone)]
struct Seq {
    /// Index of the request in the workload.
    id: usize,
    prompt_tokens: u32,
    output_tokens: u32,
    /// Tokens generated so far.
    generated: u32,
    /// Context held in the KV cache while running (prompt + generated).
    kv_tokens: u64,
    /// Tokens to prefill in the current step (0 once decoding).
    prefill_tokens: u32,
    /// Whether its first token was already sent (a preempted request keeps its TTFT).
    first_sent: bool,
}

/// Something the engine records at the end of a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TokenEvent {
    /// The request's first token left at `t_s`.
    First {
        /// Workload index.
        id: usize,
        /// When.
        t_s: f64,
    },
    /// The request's last token left at `t_s`.
    Finished {
        /// Workload index.
        id: usize,
        /// When.
        t_s: f64,
    },
    /// The request can never fit this replica's KV cache (prompt + output > capacity).
    Rejected {
        /// Workload index.
        id: usize,
    },
}

/// Counters a replica keeps for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReplicaStats {
    /// Sequences preempted for lack of KV cache.
    pub preemptions: u64,
    /// Prompt tokens admitted (re-prefills included).
    pub prompt_tokens: u64,
    /// Of those, tokens served from the prefix cache.
    pub cached_tokens: u64,
    /// Steps run.
    pub steps: u64,
}

/// One replica's scheduler state.
#[derive(Debug, Clone)]
pub struct Replica {
    prefill: PrefillCurve,
    decode: DecodeCurve,
    limits: Limits,
    block_tokens: u32,
    waiting: VecDeque<Seq>,
    running: Vec<Seq>,
    kv_used: u64,
    cache: PrefixCache,
    busy: bool,
    stats: ReplicaStats,
}

impl Replica {
    /// An idle, empty replica running `profile`; prefix blocks of `block_tokens` tokens
    /// (0 disables prefix caching).
    #[must_use]
    pub fn new(profile: &Profile, block_tokens: u32) -> Self {
        let blocks = if block_tokens == 0 {
            0
        } else {
            (profile.limits.kv_capacity_tokens / u64::from(block_tokens)) as usize
        };
        Self {
            prefill: profile.prefill,
            decode: profile.decode.clone(),
            limits: profile.limits,
            block_tokens,
            waiting: VecDeque::new(),
            running: Vec::new(),
            kv_used: 0,
            cache: PrefixCache::new(blocks),
            busy: false,
            stats: ReplicaStats::default(),
        }
    }

    /// Queues a request routed here.
    pub fn enqueue(&mut self, req: &SimRequest) {
        self.waiting.push_back(Seq {
            id: req.id,
            prompt_tokens: req.prompt_tokens.max(1),
            output_tokens: req.output_tokens.max(1),
            generated: 0,
            kv_tokens: 0,
            prefill_tokens: 0,
            first_sent: false,
        });
    }

    /// Requests waiting for admission.
    #[must_use]
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Requests in the running batch.
    #[must_use]
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Fraction of the KV cache held by running sequences (vLLM `kv_cache_usage_perc`).
    #[must_use]
    pub fn kv_usage(&self) -> f64 {
        self.kv_used as f64 / self.limits.kv_capacity_tokens as f64
    }

    /// Whether a step is in progress.
    #[must_use]
    pub fn is_busy(&self) -> bool {
        self.busy
    }

    /// Whether nothing is queued or running.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    /// Counters so far.
    #[must_use]
    pub fn stats(&self) -> ReplicaStats {
        self.stats
    }

    /// Tokens held by running sequences.
    #[must_use]
    pub fn kv_tokens(&self) -> u64 {
        self.kv_used
    }

    /// Drops the prefix cache (sleep level 1 discards the KV cache; a woken engine starts
    /// empty). Only valid while nothing is queued or running.
    pub fn drop_prefix_cache(&mut self) {
        debug_assert!(self.is_empty(), "sleeping a replica with work");
        self.cache.clear();
    }

    /// Prompt tokens routed here and not yet prefilled (the waiting queue's prompts, and a
    /// preempted sequence's context to recompute): the prefill load a KV-cost router
    /// counts.
    #[must_use]
    pub fn pending_prefill_tokens(&self) -> u64 {
        self.waiting
            .iter()
            .map(|s| u64::from(s.prompt_tokens) + u64::from(s.generated))
            .sum()
    }

    /// Tokens per prefix block (0: prefix caching off).
    #[must_use]
    pub fn block_tokens(&self) -> u32 {
        self.block_tokens
    }

    /// Leading prompt blocks of `req` this replica has cached (for prefix-aware routing).
    #[must_use]
    pub fn cached_prefix_blocks(&self, req: &SimRequest) -> usize {
        self.cache.lookup(&req.hash_ids)
    }

    /// Starts a step at the current time: preempts if the batch cannot grow, admits from
    /// the queue, and returns the step's duration in seconds (`None` when there is nothing
    /// to run). Requests that can never fit are reported through `events`.
    pub fn start_step(
        &mut self,
        requests: &[SimRequest],
        events: &mut Vec<TokenEvent>,
    ) -> Option<f64> {
        debug_assert!(!self.busy, "a step is already running");
        let cap = self.limits.kv_capacity_tokens;
        // Each running sequence writes one more token this step.
        while !self.running.is_empty() && self.kv_used + self.running.len() as u64 > cap {
            let mut victim = self.running.pop().expect("non-empty");
            self.kv_used -= victim.kv_tokens;
            victim.kv_tokens = 0;
            victim.prefill_tokens = 0;
            self.waiting.push_front(victim);
            self.stats.preemptions += 1;
        }
        while let Some(head) = self.waiting.front() {
            if self.running.len() >= self.limits.max_batch as usize {
                break;
            }
            let need = u64::from(head.prompt_tokens) + u64::from(head.generated);
            let total = u64::from(head.prompt_tokens) + u64::from(head.output_tokens);
            if total > cap {
                let seq = self.waiting.pop_front().expect("non-empty");
                events.push(TokenEvent::Rejected { id: seq.id });
                continue;
            }
            // Room for the context plus the token of this step for it and every runner.
            if self.kv_used + need + self.running.len() as u64 + 1 > cap {
                break;
            }
            let mut seq = self.waiting.pop_front().expect("non-empty");
            let hash_ids = &requests[seq.id].hash_ids;
            let cached_tokens = if self.block_tokens == 0 || hash_ids.is_empty() {
                0
            } else {
                let blocks = self.cache.lookup(hash_ids) as u64;
                (blocks * u64::from(self.block_tokens)).min(need.saturating_sub(1))
            };
            self.cache.insert(hash_ids);
            seq.kv_tokens = need;
            seq.prefill_tokens = (need - cached_tokens) as u32;
            self.kv_used += need;
            self.stats.prompt_tokens += need;
            self.stats.cached_tokens += cached_tokens;
            self.running.push(seq);
        }
        if self.running.is_empty() {
            return None;
        }
        let (mut batch, mut kv, mut work_ms, mut prompts) = (0.0, 0.0, 0.0, 0u32);
        for s in &self.running {
            if s.prefill_tokens > 0 {
                let n = f64::from(s.prefill_tokens);
                work_ms += self.prefill.per_token_ms * n
                    + self.prefill.per_token_sq_ms * n * s.kv_tokens as f64;
                prompts += 1;
            } else {
                batch += 1.0;
                kv += s.kv_tokens as f64;
            }
        }
        let overlap = if batch > 0.0 && prompts > 0 {
            self.decode.mixed_prefill_factor
        } else {
            1.0
        };
        let step_ms = self.decode.step_ms(batch, kv) + overlap * work_ms;
        self.busy = true;
        self.stats.steps += 1;
        Some(step_ms / 1000.0)
    }

    /// Ends the step at `now_s`: one token per running sequence; first tokens and
    /// completions go to `events`.
    pub fn finish_step(&mut self, now_s: f64, events: &mut Vec<TokenEvent>) {
        self.busy = false;
        // Tokens leave the replica after the request's fixed latency (module header).
        let out_s = now_s + (self.prefill.base_ms - self.decode.base_ms).max(0.0) / 1000.0;
        let mut i = 0;
        while i < self.running.len() {
            let s = &mut self.running[i];
            s.generated += 1;
            s.kv_tokens += 1;
            self.kv_used += 1;
            s.prefill_tokens = 0;
            if !s.first_sent {
                s.first_sent = true;
                events.push(TokenEvent::First {
                    id: s.id,
                    t_s: out_s,
                });
            }
            if s.generated >= s.output_tokens {
                let s = self.running.remove(i);
                self.kv_used -= s.kv_tokens;
                events.push(TokenEvent::Finished {
                    id: s.id,
                    t_s: out_s,
                });
            } else {
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> Profile {
        let mut p = Profile::from_yaml(include_str!(
            "../../../docs/profiles/llama-3.1-8b-fp8_h100-80gb_tp1_derived.yaml"
        ))
        .unwrap();
        p.prefill = PrefillCurve {
            base_ms: 20.0,
            per_token_ms: 0.01,
            per_token_sq_ms: 0.0,
        };
        p.decode = DecodeCurve {
            base_ms: 5.0,
            per_seq_ms: 0.1,
            per_kv_token_ms: 0.0,
            mixed_prefill_factor: 1.0,
            cuda_graph_batch_sizes: Vec::new(),
        };
        p
    }

    fn req(id: usize, prompt: u32, output: u32, hash_ids: Vec<u64>) -> SimRequest {
        SimRequest {
            id,
            arrival_s: 0.0,
            prompt_tokens: prompt,
            output_tokens: output,
            hash_ids,
        }
    }

    /// Runs the replica until empty; returns (first token, finish) per request.
    fn drain(r: &mut Replica, reqs: &[SimRequest]) -> Vec<(f64, f64)> {
        let mut out = vec![(f64::NAN, f64::NAN); reqs.len()];
        let mut now = 0.0;
        let mut ev = Vec::new();
        while let Some(dt) = r.start_step(reqs, &mut ev) {
            now += dt;
            r.finish_step(now, &mut ev);
            for e in ev.drain(..) {
                match e {
                    TokenEvent::First { id, t_s } => out[id].0 = t_s,
                    TokenEvent::Finished { id, t_s } => out[id].1 = t_s,
                    TokenEvent::Rejected { .. } => panic!("rejected"),
                }
            }
        }
        out
    }

    #[test]
    fn a_lone_request_takes_one_prefill_then_decode_steps() {
        let p = profile();
        let mut r = Replica::new(&p, 0);
        let reqs = vec![req(0, 1000, 11, vec![])];
        r.enqueue(&reqs[0]);
        let t = drain(&mut r, &reqs);
        // Prefill: 20 + 0.01·1000 = 30 ms; then 10 decode steps of 5 + 0.1 = 5.1 ms.
        assert!((t[0].0 - 0.030).abs() < 1e-9, "{t:?}");
        assert!((t[0].1 - (0.030 + 10.0 * 0.0051)).abs() < 1e-9, "{t:?}");
        assert!(r.is_empty() && r.kv_usage() == 0.0);
    }

    #[test]
    fn decode_steps_pay_for_the_padded_cuda_graph_batch() {
        let reqs: Vec<_> = (0..3).map(|i| req(i, 1000, 11, vec![])).collect();
        let run = |sizes: Vec<u32>| {
            let mut p = profile();
            p.decode.cuda_graph_batch_sizes = sizes;
            let mut r = Replica::new(&p, 0);
            for q in &reqs {
                r.enqueue(q);
            }
            drain(&mut r, &reqs)
        };
        let eager = run(Vec::new());
        let graphs = run(vec![1, 2, 4, 8]);
        // The prompts' step has no decode batch; the 10 decode steps of 3 sequences run the
        // graph of 4 and pay per_seq_ms (0.1 ms) for the padded slot each.
        assert!((graphs[0].0 - eager[0].0).abs() < 1e-12, "{graphs:?}");
        assert!(
            (graphs[0].1 - eager[0].1 - 10.0 * 0.0001).abs() < 1e-9,
            "{graphs:?}"
        );
    }

    #[test]
    fn the_kv_limit_makes_requests_queue() {
        let mut p = profile();
        p.limits.kv_capacity_tokens = 2_100; // two 1000-token prompts, not three
        let mut r = Replica::new(&p, 0);
        let reqs: Vec<_> = (0..3).map(|i| req(i, 1000, 20, vec![])).collect();
        for q in &reqs {
            r.enqueue(q);
        }
        let mut ev = Vec::new();
        r.start_step(&reqs, &mut ev).unwrap();
        assert_eq!((r.running(), r.waiting()), (2, 1));
        let t = drain_from(&mut r, &reqs);
        assert!(
            t[2].0 >= t[0].1 - 1e-12,
            "third starts only after one finishes: {t:?}"
        );
    }

    fn drain_from(r: &mut Replica, reqs: &[SimRequest]) -> Vec<(f64, f64)> {
        // Finish the step already started, then continue.
        let mut out = vec![(f64::NAN, f64::NAN); reqs.len()];
        let mut ev = Vec::new();
        let mut now = 0.05;
        r.finish_step(now, &mut ev);
        loop {
            for e in ev.drain(..) {
                match e {
                    TokenEvent::First { id, t_s } => out[id].0 = t_s,
                    TokenEvent::Finished { id, t_s } => out[id].1 = t_s,
                    TokenEvent::Rejected { .. } => panic!("rejected"),
                }
            }
            let Some(dt) = r.start_step(reqs, &mut ev) else {
                break;
            };
            now += dt;
            r.finish_step(now, &mut ev);
        }
        out
    }

    #[test]
    fn a_full_cache_preempts_the_newest_sequence() {
        let mut p = profile();
        p.limits.kv_capacity_tokens = 230;
        let mut r = Replica::new(&p, 0);
        // Both fit at admission (2 × 100 + 2) but cannot both grow to 100 + 60 tokens.
        let reqs: Vec<_> = (0..2).map(|i| req(i, 100, 60, vec![])).collect();
        for q in &reqs {
            r.enqueue(q);
        }
        let t = drain(&mut r, &reqs);
        assert!(r.stats().preemptions >= 1);
        assert!(
            t.iter().all(|(f, e)| f.is_finite() && e.is_finite()),
            "{t:?}"
        );
        assert!(t[1].1 > t[0].1);
    }

    #[test]
    fn cached_prefix_blocks_shorten_the_prefill() {
        let p = profile();
        let mut r = Replica::new(&p, 512);
        let reqs = vec![
            req(0, 1024, 1, vec![1, 2]),
            req(1, 1024, 1, vec![1, 2]),
            req(2, 1024, 1, vec![3, 4]),
        ];
        let mut ttft = Vec::new();
        for q in &reqs {
            r.enqueue(q);
            drain(&mut r, &reqs);
            ttft.push(r.stats().cached_tokens);
        }
        // The second prompt reuses 1023 tokens (all but the last, which must be computed);
        // the third shares nothing.
        assert_eq!(ttft, vec![0, 1023, 1023]);
        assert_eq!(r.cached_prefix_blocks(&reqs[1]), 2);
    }
}
