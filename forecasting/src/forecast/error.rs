//! Errors of the forecasting API: configuration that cannot work and fits without enough data.

/// What can go wrong when configuring or fitting a forecaster.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ForecastError {
    /// A configuration value is outside its valid range.
    #[error("invalid forecaster configuration: {field} must be {expected}, got {got}")]
    InvalidConfig {
        /// The offending field, e.g. `interval_s`.
        field: &'static str,
        /// What a valid value looks like, e.g. `finite and > 0`.
        expected: &'static str,
        /// The value that was given, formatted.
        got: String,
    },
    /// A fit was asked for with too little usable history.
    #[error(
        "not enough history to fit {model}: expected at least {expected} finite points, got {got}"
    )]
    NotEnoughHistory {
        /// The model being fitted, e.g. `holt_winters`.
        model: &'static str,
        /// Minimum number of finite points needed.
        expected: usize,
        /// Finite points available.
        got: usize,
    },
    /// A forecast horizon outside `(0, max]`.
    #[error("forecast horizon must be within (0, {max_s}] s, got {got_s} s")]
    InvalidHorizon {
        /// Largest supported horizon in seconds.
        max_s: f64,
        /// The horizon asked for, in seconds.
        got_s: f64,
    },
}

impl ForecastError {
    pub(crate) fn config(field: &'static str, expected: &'static str, got: impl ToString) -> Self {
        Self::InvalidConfig {
            field,
            expected,
            got: got.to_string(),
        }
    }
}
