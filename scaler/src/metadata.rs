//! Trigger metadata: what a `ScaledObject`'s `external` trigger tells us, validated.
//!
//! KEDA passes the trigger's `metadata` map verbatim (all values strings), including its
//! own keys (`scalerAddress`, `enableTLS`, `unsafeSsl`), which we ignore like any other
//! unknown key: a newer KEDA or a user's annotation key must not break scaling.

use std::collections::HashMap;

/// Metadata key naming the model (required).
pub const KEY_MODEL: &str = "model";
/// Metadata key naming one GPU variant of the model (optional).
pub const KEY_VARIANT: &str = "variant";
/// Metadata key for the activation threshold (optional number, default 0).
pub const KEY_ACTIVATION: &str = "activationThreshold";

/// A trigger's metadata after validation.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerMetadata {
    /// The model, exactly as the catalog names it.
    pub model: String,
    /// One variant of the model; `None` means the model as a whole.
    pub variant: Option<String>,
    /// Active iff the desired replica count is strictly greater than this.
    pub activation_threshold: f64,
}

/// Why trigger metadata was rejected. Each message names the key and what is allowed,
/// because the user reads it in the `ScaledObject`'s events.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetadataError {
    /// The request carried no `scaledObjectRef` (only possible for `GetMetrics`).
    #[error(
        "scaledObjectRef is missing: KEDA always sends it; expected the ScaledObject's name, namespace and trigger metadata"
    )]
    MissingScaledObjectRef,
    /// `model` is absent.
    #[error("metadata key `model` is required: set it to the model name as listed by GET /models")]
    MissingModel,
    /// A key is present but empty or only whitespace.
    #[error("metadata key `{key}` is empty: expected {expected}")]
    Empty {
        /// The offending key.
        key: &'static str,
        /// What the key accepts.
        expected: &'static str,
    },
    /// `activationThreshold` is not a finite, non-negative number.
    #[error(
        "metadata key `activationThreshold` must be a finite number >= 0 (e.g. \"0\" or \"0.5\"), got {got:?}"
    )]
    BadActivationThreshold {
        /// The value as sent.
        got: String,
    },
}

impl TriggerMetadata {
    /// Validates the raw metadata map of a trigger.
    pub fn parse(raw: &HashMap<String, String>) -> Result<Self, MetadataError> {
        let model = match raw.get(KEY_MODEL) {
            None => return Err(MetadataError::MissingModel),
            Some(m) if m.trim().is_empty() => {
                return Err(MetadataError::Empty {
                    key: KEY_MODEL,
                    expected: "a model name as listed by GET /models",
                });
            }
            Some(m) => m.trim().to_string(),
        };
        let variant = match raw.get(KEY_VARIANT) {
            None => None,
            Some(v) if v.trim().is_empty() => {
                return Err(MetadataError::Empty {
                    key: KEY_VARIANT,
                    expected: "a variant of the model as listed by GET /models, or omit the key for the whole model",
                });
            }
            Some(v) => Some(v.trim().to_string()),
        };
        let activation_threshold = match raw.get(KEY_ACTIVATION) {
            None => 0.0,
            Some(s) => match s.trim().parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => v,
                _ => return Err(MetadataError::BadActivationThreshold { got: s.clone() }),
            },
        };
        Ok(Self {
            model,
            variant,
            activation_threshold,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_and_ignores_keda_and_unknown_keys() {
        let m = TriggerMetadata::parse(&md(&[
            ("model", "llama"),
            ("variant", "h100"),
            ("activationThreshold", "0.5"),
            ("scalerAddress", "x:9090"),
            ("enableTLS", "true"),
            ("unsafeSsl", "false"),
            ("somethingElse", "?"),
        ]))
        .unwrap();
        assert_eq!(m.model, "llama");
        assert_eq!(m.variant.as_deref(), Some("h100"));
        assert_eq!(m.activation_threshold, 0.5);
    }

    #[test]
    fn rejects_bad_input_naming_the_key() {
        assert_eq!(
            TriggerMetadata::parse(&md(&[])),
            Err(MetadataError::MissingModel)
        );
        let e = TriggerMetadata::parse(&md(&[("model", " ")])).unwrap_err();
        assert!(e.to_string().contains("`model`"));
        let e = TriggerMetadata::parse(&md(&[("model", "m"), ("variant", "")])).unwrap_err();
        assert!(e.to_string().contains("`variant`"));
        for bad in ["abc", "-1", "NaN", "inf", ""] {
            let e = TriggerMetadata::parse(&md(&[("model", "m"), ("activationThreshold", bad)]))
                .unwrap_err();
            assert!(e.to_string().contains("activationThreshold"), "{bad}: {e}");
        }
    }
}
