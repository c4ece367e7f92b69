//! `slo-scaler`: see `slo_scaler::cli` for the commands.
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // One rustls crypto provider for the whole process (see docs/design.md).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = slo_scaler::cli::Cli::parse();
    slo_scaler::cli::init_tracing(&cli)?;
    slo_scaler::cli::run(cli).await
}
