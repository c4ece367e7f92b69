//! Subcommands other than `serve`, one module each. Each exposes its clap arguments and
//! a `run` function that prints to stdout.
pub mod backtest;
pub mod crd;
pub mod forecast_eval;
pub mod latency;
pub mod plan;
pub mod profile;
pub mod recommend;
