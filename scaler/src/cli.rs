//! The command line: `slo-scaler <command>`, every flag with an `SLO_SCALER_*` fallback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, TlsConfig};
use crate::decision::Planner;
use crate::demo::{DemoPlanner, ServedPlanner};
use crate::k8s::fleet::{PolicyPlanner, settings_from_yaml};
use crate::k8s::kube;
use crate::k8s::lease::LeaseConfig;
use crate::k8s::run::{
    ClusterOptions, SnapshotTap, spawn_cluster_side_with, spawn_cluster_side_with_leader,
    spawn_policy_watcher,
};
use crate::k8s::watch::Scope;
use crate::planner::FleetPlanner;
use crate::server::{ServeOptions, start};

/// SLO-driven autoscaler for LLM serving: a KEDA external scaler.
#[derive(Debug, Parser)]
#[command(name = "slo-scaler", version, about)]
pub struct Cli {
    /// Log filter (`info`, `debug`, `slo_scaler=debug,warn`, ...).
    #[arg(
        long,
        env = "SLO_SCALER_LOG_LEVEL",
        default_value = "info",
        global = true
    )]
    pub log_level: String,
    /// Log format.
    #[arg(long, env = "SLO_SCALER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve KEDA's external-scaler gRPC API (and /models, /metrics over HTTP). Without
    /// --config, serves the embedded demo fleet.
    Serve(ServeArgs),
    /// Predict TTFT/TPOT percentiles of a replica pool under load from a performance profile.
    Latency(crate::commands::latency::LatencyArgs),
    /// Fit, derive or validate per-GPU performance profiles from measured data.
    Profile(crate::commands::profile::ProfileArgs),
    /// Rolling-origin evaluation of the demand forecasters on a real trace.
    ForecastEval(crate::commands::forecast_eval::ForecastEvalArgs),
    /// Solve one sizing problem (JSON): replicas per GPU variant at the least cost.
    Plan(crate::commands::plan::PlanArgs),
    /// Replay a trace through the fleet simulator under each autoscaling policy.
    Backtest(crate::commands::backtest::BacktestArgs),
    /// Print the SloScalingPolicy CustomResourceDefinition (YAML) the Helm chart ships.
    Crd(crate::commands::crd::CrdArgs),
    /// What the scaler would do, from Prometheus history or a trace: forecast, replicas now
    /// and per hour, cost, predicted latency, savings, what-ifs, ScaledObjects.
    Recommend(crate::commands::recommend::RecommendArgs),
}

/// `serve` flags; each overrides the config file.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration file (YAML). Without it, the embedded demo fleet is served.
    #[arg(long, env = "SLO_SCALER_CONFIG")]
    pub config: Option<PathBuf>,
    /// gRPC listen address [config default: 0.0.0.0:9090].
    #[arg(long, env = "SLO_SCALER_GRPC_ADDR")]
    pub grpc_addr: Option<SocketAddr>,
    /// HTTP listen address [config default: 0.0.0.0:8080].
    #[arg(long, env = "SLO_SCALER_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// Server certificate (PEM); with --tls-key turns on TLS.
    #[arg(long, env = "SLO_SCALER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long, env = "SLO_SCALER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA that signs client certificates (PEM); turns on mTLS.
    #[arg(long, env = "SLO_SCALER_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Also run the Kubernetes side: watch SloScalingPolicy objects, elect one leader with
    /// a Lease, and write each policy's decisions into its status (in-cluster config, or
    /// KUBECONFIG). Every replica still answers KEDA.
    #[arg(long, env = "SLO_SCALER_KUBERNETES")]
    pub kubernetes: bool,
    /// Name of the Lease used for leader election.
    #[arg(long, env = "SLO_SCALER_LEASE_NAME", default_value = "slo-scaler")]
    pub lease_name: String,
    /// Namespace of the Lease (the scaler's own namespace).
    #[arg(long, env = "SLO_SCALER_POD_NAMESPACE", default_value = "default")]
    pub pod_namespace: String,
    /// This replica's identity in the election [default: $HOSTNAME].
    #[arg(long, env = "SLO_SCALER_POD_NAME")]
    pub pod_name: Option<String>,
    /// Watch policies in these namespaces only (comma-separated or repeated; one watcher
    /// each) [default: all namespaces].
    #[arg(long, env = "SLO_SCALER_WATCH_NAMESPACE", value_delimiter = ',')]
    pub watch_namespace: Vec<String>,
    /// Lease duration, seconds: a leader silent this long is replaced.
    #[arg(long, env = "SLO_SCALER_LEASE_DURATION_S", default_value_t = 15.0)]
    pub lease_duration_s: f64,
    /// Where the fleet (models, SLOs, variants, costs, profiles) comes from: the config
    /// file's `models`, or the SloScalingPolicy objects watched (needs --kubernetes; the
    /// config file then gives only the other settings).
    #[arg(long, env = "SLO_SCALER_FLEET_SOURCE", value_enum, default_value_t = FleetSource::Config)]
    pub fleet_source: FleetSource,
    /// Without --config: simulated seconds per wall-clock second of the demo fleet
    /// (144 = a simulated day in 10 minutes).
    #[arg(long, env = "SLO_SCALER_DEMO_SPEED", default_value_t = crate::demo::DEFAULT_DEMO_SPEED)]
    pub demo_speed: f64,
    /// Compute and export every decision (/metrics, logs, GET /models) but answer KEDA
    /// with the replicas running now (engines reporting metrics, or
    /// --current-replicas-query); unknown counts are UNAVAILABLE, never 0.
    #[arg(long, env = "SLO_SCALER_OBSERVE_ONLY")]
    pub observe_only: bool,
    /// With --observe-only: PromQL counting one variant's running replicas, with `{model}`
    /// and `{variant}` placeholders, e.g.
    /// `kube_deployment_status_replicas_ready{deployment="{model}-{variant}"}`.
    #[arg(
        long,
        env = "SLO_SCALER_CURRENT_REPLICAS_QUERY",
        requires = "observe_only"
    )]
    pub current_replicas_query: Option<String>,
}

/// Where `serve` takes its fleet from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FleetSource {
    /// The config file's (or the demo's) `models`.
    Config,
    /// The watched SloScalingPolicy objects.
    Policies,
}

impl ServeArgs {
    /// The config file (or the demo) with flags applied.
    pub fn resolve(&self) -> anyhow::Result<Config> {
        let config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::demo(),
        };
        Ok(self.apply_flags(config))
    }

    /// The settings for a policy-defined fleet: the config file (whose `models` may be
    /// absent and are ignored) or the defaults, with flags applied.
    pub fn resolve_settings(&self) -> anyhow::Result<Config> {
        let config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                settings_from_yaml(&text, &path.display().to_string())?
            }
            None => {
                let mut demo = Config::demo();
                demo.models.clear();
                demo
            }
        };
        Ok(self.apply_flags(config))
    }

    fn apply_flags(&self, mut config: Config) -> Config {
        if let Some(a) = self.grpc_addr {
            config.server.grpc_addr = a;
        }
        if let Some(a) = self.http_addr {
            config.server.http_addr = a;
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            config.server.tls = Some(TlsConfig {
                cert_file: cert.clone(),
                key_file: key.clone(),
                client_ca_file: self.tls_client_ca.clone(),
            });
        }
        config
    }
}

/// Sets up logging as the flags say.
pub fn init_tracing(cli: &Cli) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log_level)
        .with_context(|| format!("--log-level {:?} is not a valid filter", cli.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}

/// Runs `serve` until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = match args.fleet_source {
        FleetSource::Config => args.resolve()?,
        FleetSource::Policies => args.resolve_settings()?,
    };
    if args.config.is_none() {
        tracing::info!(
            speed = args.demo_speed,
            "no --config: serving the embedded demo fleet, simulated in accelerated real time"
        );
    }
    let base_dir = args
        .config
        .as_deref()
        .and_then(|p| p.parent())
        .map(|d| d.to_path_buf());
    let opts = ServeOptions {
        grpc_addr: config.server.grpc_addr,
        http_addr: config.server.http_addr,
        tls: config.server.tls.clone(),
        evaluation: config.evaluation,
    };
    if args.fleet_source == FleetSource::Policies {
        anyhow::ensure!(
            args.kubernetes,
            "--fleet-source policies needs --kubernetes (the policies are watched there)"
        );
        return serve_policies(&args, config, base_dir, opts).await;
    }
    let planner = FleetPlanner::try_new(&config, base_dir.as_deref())
        .context("building the planner (metrics sources, profiles, capacity under each SLO)")?;
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    // History for forecasters: loaded before serving; a failure is logged, not fatal
    // (the scaler can size from live data; history fills in as it runs).
    match planner.demand_sources().backfill(now_s).await {
        Ok(loaded) if !loaded.is_empty() => {
            tracing::info!(?loaded, "demand history loaded from Prometheus")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "demand history backfill failed; serving without it"),
    }
    let mut planner = planner;
    for (model, points) in planner.warm_start() {
        if points > 0 {
            tracing::info!(%model, points, "forecaster warmed from history");
        }
    }
    let planner = match &args.config {
        Some(_) => ServedPlanner::Configured(Box::new(planner)),
        None => ServedPlanner::Demo(Box::new(
            DemoPlanner::try_new(&config, args.demo_speed).context("building the demo fleet")?,
        )),
    };
    let observe_only = if args.observe_only {
        tracing::info!("observe-only: KEDA is answered with the running replicas");
        Some(Box::new(
            crate::recommend::observe_only::ConfigReplicas::from_config(
                &config,
                args.current_replicas_query.as_deref(),
            )
            .context("observe-only: building the running-replicas source")?,
        )
            as Box<dyn crate::recommend::observe_only::CurrentReplicas>)
    } else {
        None
    };
    let planner = crate::recommend::observe_only::ObserveOnly::maybe(planner, observe_only);
    if !args.kubernetes {
        if config.warm_pool.is_some() {
            anyhow::bail!(
                "warm_pool in the config needs --kubernetes: the warm pool reads and labels the engine pods through the Kubernetes API"
            );
        }
        return run_until_signal(start(planner, opts).await?).await;
    }
    // The cluster side: status mirror of the config file's fleet. Connect before
    // serving, so a bad kubeconfig fails the start rather than a running scaler.
    let client = connect().await?;
    let cancel = CancellationToken::new();
    let watch = spawn_policy_watcher(client.clone(), cluster_scope(&args), cancel.clone());
    // Warm pools (issue 9): without a `warm_pool` section the wrapper passes decisions
    // through unchanged and no actuator runs.
    let warm_reports = crate::warm::tiered::Reports::default();
    let (tiered, warm_targets) = crate::warm::tiered::TieredPlanner::new(
        planner,
        config
            .warm_pool
            .iter()
            .flat_map(|w| &w.variants)
            .map(|v| ((v.model.clone(), v.variant.clone()), v.warm))
            .collect(),
        warm_reports.clone(),
    );
    let (tap, decisions) = SnapshotTap::new(
        tiered,
        Duration::from_secs_f64(config.evaluation.stale_after_s),
    );
    let running = start(tap, opts).await?;
    let (mut tasks, leader) = spawn_cluster_side_with_leader(
        client.clone(),
        cluster_options(&args),
        decisions,
        watch,
        cancel.clone(),
    );
    if let Some(w) = &config.warm_pool {
        tasks.push(crate::warm::actuator::spawn_from_config(
            client,
            w,
            warm_targets,
            leader,
            warm_reports,
            running.shutdown_token(),
        )?);
        tracing::info!(variants = w.variants.len(), "warm-pool actuator started");
    }
    finish(running, cancel, tasks).await
}

/// `serve --kubernetes --fleet-source policies`: the fleet is the watched policies'.
async fn serve_policies(
    args: &ServeArgs,
    config: Config,
    base_dir: Option<PathBuf>,
    opts: ServeOptions,
) -> anyhow::Result<()> {
    let client = connect().await?;
    let cancel = CancellationToken::new();
    let mut watch = spawn_policy_watcher(client.clone(), cluster_scope(args), cancel.clone());
    // The first complete list (possibly empty) before serving: KEDA never sees a fleet
    // that is still being listed.
    tokio::time::timeout(Duration::from_secs(60), watch.policies.changed())
        .await
        .context("no complete list of SloScalingPolicy objects within 60 s (API server reachable? RBAC?)")?
        .context("the policy watcher stopped")?;
    let stale_after = Duration::from_secs_f64(config.evaluation.stale_after_s);
    let backfill_timeout = Duration::from_secs(10);
    let mut planner =
        PolicyPlanner::new(config, base_dir, watch.policies.clone(), backfill_timeout);
    planner.warm_up().await;
    tracing::info!(
        models = planner.catalog().models().count(),
        "fleet from SloScalingPolicy objects"
    );
    let (tap, decisions) = SnapshotTap::new(planner, stale_after);
    let running = start(tap, opts).await?;
    let tasks = spawn_cluster_side_with(
        client,
        cluster_options(args),
        decisions,
        watch,
        cancel.clone(),
    );
    finish(running, cancel, tasks).await
}

async fn connect() -> anyhow::Result<kube::Client> {
    kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster config or KUBECONFIG)")
}

fn cluster_scope(args: &ServeArgs) -> Scope {
    Scope::from_namespaces(args.watch_namespace.iter().cloned())
}

fn cluster_options(args: &ServeArgs) -> ClusterOptions {
    let identity = args
        .pod_name
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "slo-scaler".into());
    tracing::info!(%identity, lease = %args.lease_name, namespace = %args.pod_namespace, scope = ?cluster_scope(args), "Kubernetes side started");
    ClusterOptions {
        scope: cluster_scope(args),
        lease: LeaseConfig::new(
            &args.lease_name,
            &args.pod_namespace,
            &identity,
            Duration::from_secs_f64(args.lease_duration_s.max(1.0)),
        ),
        status_interval: Duration::from_secs(10),
    }
}

/// Serves until a signal, then stops the cluster side (the Lease is released).
async fn finish(
    running: crate::server::Running,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<()> {
    let stop = cancel.clone();
    let shutdown = running.shutdown_token();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        stop.cancel();
    });
    let served = run_until_signal(running).await;
    cancel.cancel();
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    served
}

/// Waits for SIGTERM/SIGINT, then shuts down gracefully.
async fn run_until_signal(running: crate::server::Running) -> anyhow::Result<()> {
    let token = running.shutdown_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown signal received: ending streams and draining");
        token.cancel();
    });
    running.wait().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Entry point behind `main`.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Latency(args) => crate::commands::latency::run(args),
        Command::Profile(args) => crate::commands::profile::run(args),
        Command::ForecastEval(args) => crate::commands::forecast_eval::run(args),
        Command::Plan(args) => crate::commands::plan::run(args),
        Command::Backtest(args) => crate::commands::backtest::run(args),
        Command::Crd(args) => crate::commands::crd::run(args),
        Command::Recommend(args) => crate::commands::recommend::run(args).await,
    }
}
