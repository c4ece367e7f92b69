//! Leader election on a `coordination.k8s.io/v1` Lease: every replica answers KEDA, only
//! the Lease holder acts on the cluster (status writes).
//!
//! The protocol is client-go's: the holder renews `renewTime` every `retry_period`; a
//! follower takes over when the Lease is released (no holder) or when the record
//! (holder, renewTime) has not changed for `lease_duration` **as measured on the
//! follower's own monotonic clock** since it first saw that record (so skewed wall clocks
//! between nodes cannot make a live Lease look expired). Every write carries
//! `metadata.resourceVersion`, so of two followers racing for an expired Lease exactly one
//! wins (the other gets 409 Conflict). Any error makes the replica stop acting as leader
//! until a later step succeeds: no leader for a moment is safe, two are not.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use tokio_util::sync::CancellationToken;

/// Lease settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Lease name (the chart's release fullname).
    pub name: String,
    /// Namespace of the Lease (the scaler's own).
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a silent Lease stays valid.
    pub lease_duration: Duration,
    /// Time between steps (renewals or attempts); well below `lease_duration`.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// Settings with `retry_period` = `lease_duration` / 3.
    pub fn new(name: &str, namespace: &str, identity: &str, lease_duration: Duration) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration,
            retry_period: lease_duration / 3,
        }
    }
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Reading, creating or updating the Lease failed (transport, RBAC, server error).
    #[error("lease {namespace}/{name}: {source}")]
    Api {
        /// Namespace of the Lease.
        namespace: String,
        /// Name of the Lease.
        name: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

/// What to do with the Lease as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// There is no Lease: create it, holding it.
    Create,
    /// This replica holds it: renew.
    Renew,
    /// Released or expired: take it over.
    TakeOver,
    /// Someone else holds it.
    Follow {
        /// The holder's identity.
        holder: String,
    },
}

/// The pure rule: `unchanged_for` is how long this replica has seen the same
/// (holder, renewTime) record.
pub fn decide(
    spec: Option<&LeaseSpec>,
    identity: &str,
    unchanged_for: Duration,
    lease_duration: Duration,
) -> Decision {
    let Some(spec) = spec else {
        return Decision::Create;
    };
    match spec.holder_identity.as_deref() {
        Some(h) if h == identity => Decision::Renew,
        None | Some("") => Decision::TakeOver,
        Some(h) => {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map(Duration::from_secs)
                .unwrap_or(lease_duration);
            if unchanged_for >= duration {
                Decision::TakeOver
            } else {
                Decision::Follow { holder: h.into() }
            }
        }
    }
}

type Record = (Option<String>, Option<MicroTime>);

/// One replica's side of the election.
pub struct LeaseElector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    seen: Option<(Record, Instant)>,
    leader: bool,
}

impl LeaseElector {
    /// An elector for `cfg`; not leader until a step says so.
    pub fn new(client: kube::Client, cfg: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            seen: None,
            leader: false,
        }
    }

    /// Whether the last step left this replica holding the Lease.
    pub fn is_leader(&self) -> bool {
        self.leader
    }

    fn err(&self, source: kube::Error) -> LeaseError {
        LeaseError::Api {
            namespace: self.cfg.namespace.clone(),
            name: self.cfg.name.clone(),
            source,
        }
    }

    fn spec(&self, wall: Timestamp, acquire: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.cfg.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.cfg.lease_duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(MicroTime(acquire)),
            renew_time: Some(MicroTime(wall)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// One round: read the Lease and create, renew, take over or follow. `now` is the
    /// monotonic clock (expiry), `wall` the time written into the Lease.
    pub async fn step(&mut self, now: Instant, wall: Timestamp) -> Result<bool, LeaseError> {
        let result = self.step_inner(now, wall).await;
        self.leader = matches!(result, Ok(true));
        result
    }

    async fn step_inner(&mut self, now: Instant, wall: Timestamp) -> Result<bool, LeaseError> {
        let current = self
            .api
            .get_opt(&self.cfg.name)
            .await
            .map_err(|e| self.err(e))?;
        let unchanged_for = match &current {
            None => Duration::ZERO,
            Some(lease) => {
                let spec = lease.spec.clone().unwrap_or_default();
                let record: Record = (spec.holder_identity, spec.renew_time);
                match &self.seen {
                    Some((r, at)) if *r == record => now.saturating_duration_since(*at),
                    _ => {
                        self.seen = Some((record, now));
                        Duration::ZERO
                    }
                }
            }
        };
        let decision = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.cfg.identity,
            unchanged_for,
            self.cfg.lease_duration,
        );
        match (decision, current) {
            (Decision::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.cfg.name.clone()),
                        namespace: Some(self.cfg.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(wall, wall, 0)),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(false),
                    Err(e) => Err(self.err(e)),
                }
            }
            (Decision::Follow { .. }, _) | (_, None) => Ok(false),
            (d @ (Decision::Renew | Decision::TakeOver), Some(mut lease)) => {
                let old = lease.spec.clone().unwrap_or_default();
                let (acquire, transitions) = if d == Decision::Renew {
                    (
                        old.acquire_time.map(|t| t.0).unwrap_or(wall),
                        old.lease_transitions.unwrap_or(0),
                    )
                } else {
                    (wall, old.lease_transitions.unwrap_or(0) + 1)
                };
                lease.spec = Some(self.spec(wall, acquire, transitions));
                // replace() sends metadata.resourceVersion as read: a concurrent writer wins.
                match self
                    .api
                    .replace(&self.cfg.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(updated) => {
                        let s = updated.spec.unwrap_or_default();
                        self.seen = Some(((s.holder_identity, s.renew_time), now));
                        Ok(true)
                    }
                    Err(kube::Error::Api(s)) if s.is_conflict() => Ok(false),
                    Err(e) => Err(self.err(e)),
                }
            }
        }
    }

    /// Gives the Lease up (holder cleared) if this replica holds it, so that a follower
    /// takes over at its next step instead of after `lease_duration`.
    pub async fn release(&mut self) -> Result<(), LeaseError> {
        if !self.leader {
            return Ok(());
        }
        self.leader = false;
        let Some(mut lease) = self
            .api
            .get_opt(&self.cfg.name)
            .await
            .map_err(|e| self.err(e))?
        else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        lease.spec = Some(spec);
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_conflict() => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }
}

/// Runs the election until `cancel`, publishing leadership on `tx`; releases the Lease on
/// the way out.
pub fn spawn(
    client: kube::Client,
    cfg: LeaseConfig,
    tx: tokio::sync::watch::Sender<bool>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let period = cfg.retry_period;
        let mut elector = LeaseElector::new(client, cfg);
        loop {
            let leader = match elector.step(Instant::now(), Timestamp::now()).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "leader election step failed; not acting as leader");
                    false
                }
            };
            tx.send_if_modified(|cur| std::mem::replace(cur, leader) != leader);
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(period) => {}
            }
        }
        tx.send_if_modified(|cur| std::mem::replace(cur, false));
        if let Err(e) = elector.release().await {
            tracing::warn!(error = %e, "releasing the lease failed; it expires on its own");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, secs: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: Some(secs),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn decisions() {
        let d = Duration::from_secs(15);
        let s = |x| Duration::from_secs(x);
        assert_eq!(decide(None, "a", s(0), d), Decision::Create);
        assert_eq!(
            decide(Some(&spec(Some("a"), 15)), "a", s(100), d),
            Decision::Renew
        );
        assert_eq!(
            decide(Some(&spec(None, 15)), "a", s(0), d),
            Decision::TakeOver
        );
        assert_eq!(
            decide(Some(&spec(Some(""), 15)), "a", s(0), d),
            Decision::TakeOver
        );
        assert_eq!(
            decide(Some(&spec(Some("b"), 15)), "a", s(14), d),
            Decision::Follow { holder: "b".into() }
        );
        assert_eq!(
            decide(Some(&spec(Some("b"), 15)), "a", s(15), d),
            Decision::TakeOver
        );
        // The Lease's own duration wins over ours.
        assert_eq!(
            decide(Some(&spec(Some("b"), 60)), "a", s(30), d),
            Decision::Follow { holder: "b".into() }
        );
    }
}
