//! Pure models for slo-scaler: no I/O, no async.
//!
//! Where to start:
//! - [`forecast`]: demand forecasting per series with calibrated prediction intervals.
//! - [`profile`], [`latency`], [`capacity`]: the per-GPU performance model — what TTFT and
//!   TPOT a replica gives under load, and the highest load it sustains within an SLO.
pub mod backlog;
pub mod burstiness;
pub mod capacity;
pub mod correction;
pub mod forecast;
pub mod latency;
pub mod profile;
