//! Activation on waiting requests: a model at zero replicas whose demand source reports
//! requests waiting (a gateway's queue, an engine's `num_requests_waiting`, from
//! Prometheus or a direct scrape) is given one replica at once, whatever the forecast
//! says. The decision snapshot changes, so `StreamIsActive` pushes `true` in the same
//! evaluation (see [`crate::keda`]): KEDA scales from zero without waiting for the
//! forecaster to see completed requests (there are none at zero replicas).

use crate::decision::{ModelDecision, ModelOutcome};

/// Raises a planned model with fewer than one replica in total to one replica (on its
/// first variant) when `waiting > 0`; says so in the reason. Returns whether it did.
pub fn activate_on_waiting(decision: &mut ModelDecision, waiting: Option<f64>) -> bool {
    let Some(waiting) = waiting.filter(|w| w.is_finite() && *w > 0.0) else {
        return false;
    };
    let ModelOutcome::Planned(variants) = &mut decision.outcome else {
        return false;
    };
    let total: f64 = variants.iter().map(|v| v.desired_replicas.max(0.0)).sum();
    if total >= 1.0 {
        return false;
    }
    let Some(first) = variants.first_mut() else {
        return false;
    };
    first.desired_replicas = 1.0;
    first.action = "demand_waiting";
    first.reason = format!(
        "{waiting:.0} request(s) waiting with no replica: activating one now (the forecast said {total:.2}); {}",
        first.reason
    );
    first.details.insert("waiting_requests", waiting);
    true
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::decision::VariantDecision;

    fn planned(replicas: &[f64]) -> ModelDecision {
        ModelDecision {
            model: "m".into(),
            outcome: ModelOutcome::Planned(
                replicas
                    .iter()
                    .enumerate()
                    .map(|(i, r)| VariantDecision {
                        variant: format!("v{i}"),
                        desired_replicas: *r,
                        reason: "forecast".into(),
                        action: "steady",
                        details: BTreeMap::new(),
                    })
                    .collect(),
            ),
        }
    }

    fn replicas(d: &ModelDecision) -> Vec<f64> {
        match &d.outcome {
            ModelOutcome::Planned(v) => v.iter().map(|v| v.desired_replicas).collect(),
            ModelOutcome::Unavailable(_) => vec![],
        }
    }

    #[test]
    fn waiting_requests_at_zero_activate_one_replica() {
        let mut d = planned(&[0.0, 0.0]);
        assert!(activate_on_waiting(&mut d, Some(3.0)));
        assert_eq!(replicas(&d), [1.0, 0.0]);
        let ModelOutcome::Planned(v) = &d.outcome else {
            panic!("planned")
        };
        assert_eq!(v[0].action, "demand_waiting");
        assert!(
            v[0].reason.starts_with("3 request(s) waiting"),
            "{}",
            v[0].reason
        );
    }

    #[test]
    fn nothing_waiting_or_already_running_changes_nothing() {
        for (r, w) in [
            (vec![0.0], Some(0.0)),
            (vec![0.0], None),
            (vec![0.0], Some(f64::NAN)),
            (vec![0.6, 0.5], Some(4.0)),
            (vec![2.0], Some(9.0)),
        ] {
            let mut d = planned(&r);
            assert!(!activate_on_waiting(&mut d, w), "{r:?} {w:?}");
            assert_eq!(replicas(&d), r);
        }
        let mut u = ModelDecision {
            model: "m".into(),
            outcome: ModelOutcome::Unavailable("down".into()),
        };
        assert!(
            !activate_on_waiting(&mut u, Some(1.0)),
            "never a guess over an outage"
        );
    }
}
