//! Routing a request to one of the ready replicas of the model (any variant).
//!
//! Where to start: [`Routing::pick`]. `LeastLoaded` sends each request to the replica with
//! the fewest requests in flight (waiting + running), ties to the lower KV use, then the
//! older replica. `PrefixAware` first restricts to replicas within `PREFIX_LOAD_SLACK`
//! requests of the least loaded and, among them, picks the one with the longest cached
//! prefix of the request (as llm-d's and Dynamo's KV-aware routers trade load for reuse);
//! with no cached prefix anywhere it is least-loaded. `KvCost` is Dynamo's KV router cost
//! model: each replica's cost is its prefill load — prompt tokens routed to it and not yet
//! prefilled, plus this request's tokens it has not cached — plus its decode load (tokens
//! held by running sequences), both in blocks, weight 1 each (Dynamo's default
//! `kv-overlap-score-weight`); the cheapest replica gets the request. A cached prefix is
//! worth exactly the prefill it saves, weighed against the queue it would wait behind,
//! where `PrefixAware` trades them by a fixed request count.

use super::replica::Replica;
use super::workload::SimRequest;

/// How far (in requests in flight) above the least-loaded replica the prefix-aware router
/// may go for a longer cached prefix.
pub const PREFIX_LOAD_SLACK: usize = 4;

/// Routing rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Routing {
    /// Fewest requests in flight.
    #[default]
    LeastLoaded,
    /// Longest cached prefix among the nearly least loaded.
    PrefixAware,
    /// Least prefill + decode load in blocks, cached prefix blocks not counted (Dynamo's
    /// KV router cost).
    KvCost,
}

impl Routing {
    /// Index into `candidates` of the replica that gets `req`; `None` when there is none.
    #[must_use]
    pub fn pick(self, candidates: &[&Replica], req: &SimRequest) -> Option<usize> {
        let load = |r: &Replica| r.waiting() + r.running();
        let least = (0..candidates.len()).min_by(|&a, &b| {
            let (ra, rb) = (candidates[a], candidates[b]);
            load(ra)
                .cmp(&load(rb))
                .then(ra.kv_usage().total_cmp(&rb.kv_usage()))
                .then(a.cmp(&b))
        })?;
        if self == Routing::LeastLoaded || req.hash_ids.is_empty() {
            return Some(least);
        }
        if self == Routing::KvCost {
            let cost = |r: &Replica| {
                let block = f64::from(r.block_tokens().max(1));
                let cached =
                    (r.cached_prefix_blocks(req) as f64 * block).min(f64::from(req.prompt_tokens));
                let prefill =
                    r.pending_prefill_tokens() as f64 + (f64::from(req.prompt_tokens) - cached);
                (prefill + r.kv_tokens() as f64) / block
            };
            return (0..candidates.len()).min_by(|&a, &b| {
                cost(candidates[a])
                    .total_cmp(&cost(candidates[b]))
                    .then(load(candidates[a]).cmp(&load(candidates[b])))
                    .then(a.cmp(&b))
            });
        }
        let bound = load(candidates[least]) + PREFIX_LOAD_SLACK;
        let (best, blocks) = (0..candidates.len())
            .filter(|&i| load(candidates[i]) <= bound)
            .map(|i| (i, candidates[i].cached_prefix_blocks(req)))
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))?;
        Some(if blocks == 0 { least } else { best })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use forecasting::profile::Profile;

    fn req(id: usize, hash_ids: Vec<u64>) -> SimRequest {
        SimRequest {
            id,
            arrival_s: 0.0,
            prompt_tokens: 1024,
            output_tokens: 4,
            hash_ids,
        }
    }

    #[test]
    fn least_loaded_and_prefix_aware_choose_as_documented() {
        let p = Profile::from_yaml(include_str!(
            "../../../docs/profiles/llama-3.1-8b-fp8_h200_tp1.yaml"
        ))
        .unwrap();
        let reqs = vec![req(0, vec![1, 2]), req(1, vec![9]), req(2, vec![1, 2])];
        let mut a = Replica::new(&p, 512);
        let b = Replica::new(&p, 512);
        a.enqueue(&reqs[0]);
        let mut ev = Vec::new();
        a.start_step(&reqs, &mut ev); // admits request 0: blocks 1, 2 now cached on `a`
        let c = [&a, &b];
        assert_eq!(Routing::LeastLoaded.pick(&c, &reqs[2]), Some(1));
        assert_eq!(Routing::PrefixAware.pick(&c, &reqs[2]), Some(0));
        assert_eq!(
            Routing::PrefixAware.pick(&c, &reqs[1]),
            Some(1),
            "no hit: least loaded"
        );
        assert_eq!(Routing::LeastLoaded.pick(&[], &reqs[1]), None);
        // KV cost: `a` holds request 0 (1024 tokens decoding = 2 blocks) but has blocks 1,
        // 2 cached, so request 2 costs 2 + 0 there against 0 + 2 on `b`: a tie on cost,
        // broken by load towards `b`.
        assert_eq!(Routing::KvCost.pick(&c, &reqs[2]), Some(1));
        assert_eq!(
            Routing::KvCost.pick(&c, &reqs[1]),
            Some(1),
            "no hit: b is empty"
        );
    }
}
