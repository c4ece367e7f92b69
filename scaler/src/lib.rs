//! slo-scaler: everything that touches the world.
//!
//! Where to start: [`cli`] parses the command line; `serve` goes through [`server::start`],
//! which runs one [`decision::Evaluator`] (asking a [`decision::Planner`] for decisions
//! every tick) and answers KEDA from the latest snapshot in [`keda`]. [`hpa`] holds
//! KEDA's and the HPA's arithmetic as pure functions.
pub mod cli;
pub mod commands;
pub mod config;
pub mod decision;
pub mod demo;
pub mod hpa;
pub mod http;
pub mod k8s;
pub mod keda;
pub mod metadata;
pub mod metrics;
pub mod pipeline;
pub mod planner;
pub mod plot;
pub mod profile_data;
pub mod recommend;
pub mod return_forecast;
pub mod server;
pub mod sim;
pub mod sizing;
pub mod stabilization;
pub mod telemetry;
pub mod tiers;
pub mod trace;
pub mod warm;

/// Generated from `proto/externalscaler.proto` by `protox` at build time.
pub mod proto {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("externalscaler");
    /// Encoded `FileDescriptorSet` for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("externalscaler_descriptor");
}
