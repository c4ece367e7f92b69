//! Pods of an engine Deployment as the warm-pool actuator reads and marks them (issue 9).
//!
//! Reads: `GET /api/v1/namespaces/{ns}/pods?labelSelector=...` (one list per variant).
//! Writes: `PATCH /api/v1/namespaces/{ns}/pods/{name}` with
//! `Content-Type: application/merge-patch+json`, touching only `metadata.labels` /
//! `metadata.annotations`:
//! - the serving label [`SERVING_LABEL`] (`"true"`/`"false"`) that the engine Service
//!   selects on, so a sleeping replica receives no traffic (Endpoints drop it within the
//!   endpoint controller's sync, typically well under a second);
//! - the wake-failed annotation [`WAKE_FAILED`] (the fact lives on the pod, so a new Lease
//!   holder sees it);
//! - the deletion cost [`DELETION_COST`] (see [`super::deletion_cost`]).
//!
//! No `resourceVersion` precondition: a merge patch of our own keys cannot lose anybody
//! else's update, and only the Lease holder writes them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};

pub use crate::warm::actuation::{DELETION_COST, SERVING_LABEL, WAKE_FAILED};

/// Why a pod call failed.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    /// Listing pods failed (transport, RBAC: the chart's warm-pool Role grants list).
    #[error("listing pods in {namespace} with selector {selector:?}: {source}")]
    List {
        /// Namespace.
        namespace: String,
        /// Label selector.
        selector: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// Patching a pod failed (gone, RBAC: patch on pods).
    #[error("patching pod {namespace}/{name}: {source}")]
    Patch {
        /// Namespace.
        namespace: String,
        /// Pod name.
        name: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

/// What the actuator needs of a pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodInfo {
    /// Name.
    pub name: String,
    /// `status.podIP`.
    pub ip: Option<String>,
    /// Ready condition true and no deletion timestamp.
    pub ready: bool,
    /// Has a deletion timestamp.
    pub terminating: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
}

impl PodInfo {
    /// From the API object.
    pub fn from_pod(p: &Pod) -> Self {
        let terminating = p.metadata.deletion_timestamp.is_some();
        let ready = !terminating
            && p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        Self {
            name: p.metadata.name.clone().unwrap_or_default(),
            ip: p.status.as_ref().and_then(|s| s.pod_ip.clone()),
            ready,
            terminating,
            labels: p.metadata.labels.clone().unwrap_or_default(),
            annotations: p.metadata.annotations.clone().unwrap_or_default(),
        }
    }

    /// The serving label: `Some(true)` for `"true"`, `Some(false)` for anything else set.
    pub fn serving(&self) -> Option<bool> {
        self.labels.get(SERVING_LABEL).map(|v| v == "true")
    }
}

/// Lists and patches pods in one namespace.
#[derive(Clone)]
pub struct Pods {
    api: Api<Pod>,
    namespace: String,
}

impl Pods {
    /// Pods of `namespace`.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.into(),
        }
    }

    /// Pods matching a label selector, by name.
    pub async fn list(&self, selector: &str) -> Result<Vec<PodInfo>, PodError> {
        let list = self
            .api
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|source| PodError::List {
                namespace: self.namespace.clone(),
                selector: selector.into(),
                source,
            })?;
        let mut pods: Vec<PodInfo> = list.items.iter().map(PodInfo::from_pod).collect();
        pods.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(pods)
    }

    /// Merge-patches `metadata` (labels/annotations; `null` removes a key).
    pub async fn patch_metadata(&self, name: &str, metadata: Value) -> Result<(), PodError> {
        let body = json!({ "metadata": metadata });
        self.api
            .patch(name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map(drop)
            .map_err(|source| PodError::Patch {
                namespace: self.namespace.clone(),
                name: name.into(),
                source,
            })
    }

    /// Sets the serving label; `serving = true` also clears the wake-failed annotation.
    pub async fn set_serving(&self, name: &str, serving: bool) -> Result<(), PodError> {
        self.patch_metadata(name, serving_patch(serving)).await
    }

    /// Marks a pod whose wake failed: not serving, and why.
    pub async fn mark_wake_failed(&self, name: &str, why: &str) -> Result<(), PodError> {
        self.patch_metadata(name, wake_failed_patch(why)).await
    }
}

/// The `metadata` of a serving-label patch.
pub fn serving_patch(serving: bool) -> Value {
    if serving {
        json!({
            "labels": { SERVING_LABEL: "true" },
            "annotations": { WAKE_FAILED: null }
        })
    } else {
        json!({ "labels": { SERVING_LABEL: "false" } })
    }
}

/// The `metadata` of a wake-failed patch (the reason, at most 256 characters).
pub fn wake_failed_patch(why: &str) -> Value {
    let why: String = why.chars().take(256).collect();
    json!({
        "labels": { SERVING_LABEL: "false" },
        "annotations": { WAKE_FAILED: why }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_touch_only_our_keys() {
        assert_eq!(
            serving_patch(false),
            json!({"labels": {"slo-scaler.io/serving": "false"}})
        );
        assert_eq!(
            serving_patch(true)["annotations"]["slo-scaler.io/wake-failed"],
            Value::Null,
            "a verified wake clears the failure"
        );
        let long = "x".repeat(1000);
        assert_eq!(
            wake_failed_patch(&long)["annotations"][WAKE_FAILED]
                .as_str()
                .map(str::len),
            Some(256)
        );
    }

    #[test]
    fn readiness_needs_the_ready_condition_and_no_deletion() {
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "labels": {"slo-scaler.io/serving": "false"}},
            "status": {"podIP": "10.0.0.7", "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .expect("pod");
        let info = PodInfo::from_pod(&pod);
        assert!(info.ready);
        assert_eq!(info.ip.as_deref(), Some("10.0.0.7"));
        assert_eq!(info.serving(), Some(false));
        pod.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert!(
            !PodInfo::from_pod(&pod).ready,
            "terminating pods are not ready"
        );
    }
}
