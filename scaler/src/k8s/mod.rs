//! Kubernetes integration (issue 8): the `SloScalingPolicy` custom resource, its status
//! writer, and the re-exported `kube`/`k8s-openapi` crates so that tests and other
//! modules use exactly the versions (and the one rustls provider, `ring`) built here.
//!
//! The config file stays the way to run outside Kubernetes; [`crd::SloScalingPolicy`]
//! expresses the same per-model policy (`models[]` of the file) as a namespaced resource.
//! See `docs/kubernetes.md`.
pub mod crd;
pub mod deletion_cost;
pub mod fleet;
pub mod index;
pub mod lease;
pub mod publish;
pub mod run;
pub mod serving_label;
pub mod status;
pub mod watch;

pub use k8s_openapi;
pub use kube;
