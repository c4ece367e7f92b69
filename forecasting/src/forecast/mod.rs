//! Demand forecasting (see issue 3): one online forecaster per series (requests/s, prompt
//! tokens/s, ...) that answers "how much demand in `h` seconds?" as a calibrated distribution.
//!
//! Where to start:
//! - [`Forecaster`] is the per-series object the scaler keeps: feed it one point per interval
//!   with [`Forecaster::observe`] (NaN = missing), ask [`Forecaster::forecast`]. It is always
//!   answerable: a brand-new series gets an honestly wide [`Forecast`] (see [`Basis`]).
//! - [`ForecasterConfig`] picks the [`Method`]: [`Method::Adaptive`] (default: per horizon,
//!   the best recent of Holt-Winters and simple exponential smoothing, see [`selection`]), the
//!   daily-seasonal [`HoltWinters`] alone, or the baselines [`SeasonalNaive`] and
//!   [`MovingAverage`].
//! - [`HoltWintersConfig::fit`] is the only way to obtain a [`HoltWinters`]: an unfitted model
//!   cannot predict, by type.
//! - [`conformal`] turns point forecasts into calibrated quantiles from recent residuals,
//!   [`burst`] lifts the forecast when demand breaks out of the upper band, [`idle`] fades
//!   the band once demand has been zero for a while.
//! - [`evaluation`] is the rolling-origin evaluation behind `slo-scaler forecast-eval`.
//!
//! The design and its measured trade-offs are in `docs/forecasting.md`.

pub mod burst;
pub mod conformal;
mod distribution;
mod error;
pub mod evaluation;
mod forecaster;
mod holt_winters;
pub mod idle;
mod moving_average;
mod point_model;
mod seasonal_naive;
pub mod selection;

pub use distribution::{Basis, Forecast, QUANTILE_LEVELS};
pub use error::ForecastError;
pub use forecaster::{Forecaster, ForecasterConfig, Method};
pub use holt_winters::{HoltWinters, HoltWintersConfig, HoltWintersParams};
pub use moving_average::MovingAverage;
pub use point_model::PointModel;
pub use seasonal_naive::SeasonalNaive;
