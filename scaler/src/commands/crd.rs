//! `slo-scaler crd`: prints the `SloScalingPolicy` CustomResourceDefinition (YAML), the
//! same document the Helm chart ships in `charts/slo-scaler/crds/`.

/// `crd` flags.
#[derive(Debug, clap::Args)]
pub struct CrdArgs {
    /// Write to this file instead of stdout.
    #[arg(long)]
    pub output: Option<std::path::PathBuf>,
}

/// Prints (or writes) the CRD.
pub fn run(args: CrdArgs) -> anyhow::Result<()> {
    let yaml = crate::k8s::crd::crd_yaml();
    match args.output {
        Some(path) => std::fs::write(&path, yaml)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?,
        None => print!("{yaml}"),
    }
    Ok(())
}
