//! Warm pools (issue 9, actuation): engines asleep instead of gone, woken in seconds, and
//! scale-down that removes the replica whose KV cache is worth least.
//!
//! Where to start: [`actuation::plan`] is the pure rule (which pods to sleep, wake,
//! label; what KEDA is told); [`actuator::Actuator::round`] reads pods and engines and
//! carries a plan out on the Lease holder; [`tiered::TieredPlanner`] turns decisions into
//! tier targets and KEDA counts; [`engine`] is the vLLM sleep-mode client;
//! [`kv_value`] ranks replicas for `pod-deletion-cost`; [`activation`] activates a model
//! at zero as soon as requests wait. Design and operation: `docs/warm-pool.md`.
pub mod activation;
pub mod actuation;
pub mod actuator;
pub mod engine;
pub mod kv_value;
pub mod settings;
pub mod tiered;
