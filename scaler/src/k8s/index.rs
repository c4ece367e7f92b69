//! The policy index: a pure data structure fed by watch events (in the manner of
//! linkerd2's policy controller indexes), merging one or more watchers — one per watched
//! namespace, or one for the whole cluster — into the fleet they describe.
//!
//! Where to start: [`PolicyIndex::apply`] takes one watcher event of one source;
//! [`PolicyIndex::snapshot`] is the merged fleet. No I/O, no clock: everything here is
//! tested by feeding events (see the unit tests), and [`super::watch`] only pipes the
//! watchers' streams in.
//!
//! Consistency: a source's (re-)list is buffered until its `InitDone` and then replaces
//! that source's objects at once; [`PolicyIndex::is_listed`] is false until every source
//! has completed its first list, so a consumer never sees a half-listed fleet (e.g. the
//! models of one namespace but not yet of the other).

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::watcher;

use super::crd::SloScalingPolicy;
use super::watch::{PolicySnapshot, snapshot};

type Key = (String, String);

#[derive(Debug, Default, Clone)]
struct Source {
    /// Completed a list at least once.
    listed: bool,
    /// The objects as of the last completed list plus the events since.
    objects: BTreeMap<Key, Arc<SloScalingPolicy>>,
    /// A list in progress (between `Init` and `InitDone`).
    relisting: Option<BTreeMap<Key, Arc<SloScalingPolicy>>>,
}

/// Policies of every watched source, merged.
#[derive(Debug, Clone)]
pub struct PolicyIndex {
    sources: Vec<Source>,
}

fn key(p: &SloScalingPolicy) -> Key {
    (p.namespace().unwrap_or_default(), p.name_any())
}

impl PolicyIndex {
    /// An index over `sources` watchers (at least one).
    pub fn new(sources: usize) -> Self {
        Self {
            sources: vec![Source::default(); sources.max(1)],
        }
    }

    /// Folds one event of watcher `source` in. Returns true when the merged object set
    /// may have changed (a completed list, an apply or a delete). Out-of-range sources
    /// are a programming error and panic.
    pub fn apply(&mut self, source: usize, event: watcher::Event<SloScalingPolicy>) -> bool {
        let s = &mut self.sources[source];
        match event {
            watcher::Event::Init => {
                s.relisting = Some(BTreeMap::new());
                false
            }
            watcher::Event::InitApply(p) => {
                s.relisting
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key(&p), Arc::new(p));
                false
            }
            watcher::Event::InitDone => {
                s.objects = s.relisting.take().unwrap_or_default();
                s.listed = true;
                true
            }
            watcher::Event::Apply(p) => {
                s.objects.insert(key(&p), Arc::new(p));
                true
            }
            watcher::Event::Delete(p) => {
                s.objects.remove(&key(&p));
                true
            }
        }
    }

    /// Every source has completed its first list.
    pub fn is_listed(&self) -> bool {
        self.sources.iter().all(|s| s.listed)
    }

    /// All objects, every source merged (a namespace watched twice counts once).
    pub fn objects(&self) -> Vec<Arc<SloScalingPolicy>> {
        let mut all: BTreeMap<&Key, &Arc<SloScalingPolicy>> = BTreeMap::new();
        for s in &self.sources {
            all.extend(s.objects.iter());
        }
        all.into_values().cloned().collect()
    }

    /// The fleet the merged objects describe (sorted; duplicate models rejected).
    pub fn snapshot(&self) -> PolicySnapshot {
        snapshot(&self.objects())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(ns: &str, name: &str, model: &str) -> SloScalingPolicy {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "slo-scaler.io/v1alpha1",
            "kind": "SloScalingPolicy",
            "metadata": {"namespace": ns, "name": name, "generation": 1},
            "spec": {
                "model": model,
                "variants": [{"name": "h100", "capacityRps": 5.0}],
                "demand": {"kind": "constant", "rps": 1.0}
            }
        }))
        .expect("policy")
    }

    fn models(i: &PolicyIndex) -> Vec<String> {
        i.snapshot()
            .models
            .into_iter()
            .map(|(_, m)| m.name)
            .collect()
    }

    fn list(i: &mut PolicyIndex, source: usize, objs: Vec<SloScalingPolicy>) -> bool {
        i.apply(source, watcher::Event::Init);
        for o in objs {
            i.apply(source, watcher::Event::InitApply(o));
        }
        i.apply(source, watcher::Event::InitDone)
    }

    #[test]
    fn two_namespaces_merge_only_once_both_are_listed() {
        let mut i = PolicyIndex::new(2);
        assert!(list(&mut i, 0, vec![policy("llm", "a", "m-a")]));
        assert!(!i.is_listed(), "the second namespace has not listed yet");
        assert!(list(&mut i, 1, vec![policy("llm-canary", "b", "m-b")]));
        assert!(i.is_listed());
        assert_eq!(models(&i), ["m-a", "m-b"]);
        assert!(i.apply(1, watcher::Event::Delete(policy("llm-canary", "b", "m-b"))));
        assert_eq!(models(&i), ["m-a"]);
        assert!(i.apply(1, watcher::Event::Apply(policy("llm-canary", "c", "m-c"))));
        assert_eq!(models(&i), ["m-a", "m-c"]);
    }

    #[test]
    fn a_relist_replaces_one_source_atomically_and_keeps_the_others() {
        let mut i = PolicyIndex::new(2);
        list(
            &mut i,
            0,
            vec![policy("llm", "a", "m-a"), policy("llm", "x", "m-x")],
        );
        list(&mut i, 1, vec![policy("llm-canary", "b", "m-b")]);
        // Source 0 re-lists (after 410 Gone): until InitDone the old view stands.
        assert!(!i.apply(0, watcher::Event::Init));
        assert!(!i.apply(0, watcher::Event::InitApply(policy("llm", "a", "m-a"))));
        assert_eq!(models(&i), ["m-a", "m-x", "m-b"], "namespace/name order");
        assert!(i.apply(0, watcher::Event::InitDone));
        // x disappeared during the gap: gone now; the other namespace is untouched.
        assert_eq!(models(&i), ["m-a", "m-b"]);
    }

    #[test]
    fn duplicates_across_namespaces_are_rejected_in_namespace_order() {
        let mut i = PolicyIndex::new(2);
        list(&mut i, 0, vec![policy("b-ns", "p", "same")]);
        list(&mut i, 1, vec![policy("a-ns", "p", "same")]);
        let s = i.snapshot();
        assert_eq!(s.models.len(), 1);
        assert_eq!(s.models[0].0.namespace, "a-ns");
        assert_eq!(s.rejected.len(), 1);
        assert_eq!(s.rejected[0].0.namespace, "b-ns");
    }
}
