//! Wiring: listeners, the evaluation task, the gRPC and HTTP servers, graceful shutdown.
//!
//! [`start`] binds both ports (port 0 works: tests read the bound addresses), runs a first
//! evaluation so the scaler is ready with real answers, then spawns the evaluator and both
//! servers. [`Running::shutdown`] ends every `StreamIsActive` stream with status OK, marks
//! gRPC health `NOT_SERVING`, and lets in-flight RPCs finish.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::config::{EvaluationConfig, TlsConfig};
use crate::decision::{Evaluator, EvaluatorSettings, Planner};
use crate::http::{HttpState, router};
use crate::keda::KedaService;
use crate::proto::external_scaler_server::ExternalScalerServer;
use crate::telemetry::Telemetry;

/// How long shutdown waits for in-flight work before giving up.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What [`start`] needs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// gRPC listen address.
    pub grpc_addr: SocketAddr,
    /// HTTP listen address.
    pub http_addr: SocketAddr,
    /// TLS for gRPC; `None` is plaintext.
    pub tls: Option<TlsConfig>,
    /// Evaluation timing.
    pub evaluation: EvaluationConfig,
}

/// Why the scaler could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// `gRPC` or `HTTP`.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A TLS file could not be read or is not valid PEM.
    #[error("TLS {what} file {path}: {message}")]
    Tls {
        /// Which file (certificate, key, client CA).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// The HTTP server failed.
    #[error("HTTP server: {0}")]
    Http(std::io::Error),
    /// A server task panicked.
    #[error("a server task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// Shutdown did not finish within the grace period.
    #[error("shutdown did not finish within {0:?}")]
    ShutdownTimeout(Duration),
}

/// A started scaler.
pub struct Running {
    /// Bound gRPC address.
    pub grpc_addr: SocketAddr,
    /// Bound HTTP address.
    pub http_addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<Result<(), ServeError>>>,
}

impl Running {
    /// Starts a graceful shutdown; [`Running::wait`] then returns once it is done.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// A token that fires when shutdown starts.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits for every task to end (after [`Running::shutdown`], or on a fatal error).
    pub async fn wait(self) -> Result<(), ServeError> {
        let shutdown = self.shutdown.clone();
        let all = futures::future::join_all(self.tasks);
        tokio::pin!(all);
        let results = tokio::select! {
            r = &mut all => r,
            _ = async {
                shutdown.cancelled().await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } => return Err(ServeError::ShutdownTimeout(SHUTDOWN_GRACE)),
        };
        for r in results {
            r??;
        }
        Ok(())
    }
}

fn read_pem(what: &'static str, path: &Path) -> Result<Vec<u8>, ServeError> {
    let bytes = std::fs::read(path).map_err(|e| ServeError::Tls {
        what,
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(ServeError::Tls {
            what,
            path: path.to_path_buf(),
            message: "expected PEM (-----BEGIN ...), found none".into(),
        });
    }
    Ok(bytes)
}

fn tls_config(tls: &TlsConfig) -> Result<ServerTlsConfig, ServeError> {
    let cert = read_pem("certificate", &tls.cert_file)?;
    let key = read_pem("key", &tls.key_file)?;
    let mut config = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
    if let Some(ca) = &tls.client_ca_file {
        config = config.client_ca_root(Certificate::from_pem(read_pem("client CA", ca)?));
    }
    Ok(config)
}

/// Starts serving `planner`'s decisions.
pub async fn start<P: Planner>(planner: P, opts: ServeOptions) -> Result<Running, ServeError> {
    let tls = opts.tls.as_ref().map(tls_config).transpose()?;
    let grpc_listener =
        TcpListener::bind(opts.grpc_addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: opts.grpc_addr,
                what: "gRPC",
                source,
            })?;
    let http_listener =
        TcpListener::bind(opts.http_addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: opts.http_addr,
                what: "HTTP",
                source,
            })?;
    let grpc_addr = grpc_listener
        .local_addr()
        .map_err(|source| ServeError::Bind {
            addr: opts.grpc_addr,
            what: "gRPC",
            source,
        })?;
    let http_addr = http_listener
        .local_addr()
        .map_err(|source| ServeError::Bind {
            addr: opts.http_addr,
            what: "HTTP",
            source,
        })?;

    let shutdown = CancellationToken::new();
    let telemetry = Arc::new(Telemetry::new());
    let ready = Arc::new(AtomicBool::new(false));

    let (mut evaluator, snapshots) = Evaluator::new(
        planner,
        EvaluatorSettings {
            interval: Duration::from_secs_f64(opts.evaluation.interval_s),
            timeout: Duration::from_secs_f64(opts.evaluation.timeout_s),
        },
        Duration::from_secs_f64(opts.evaluation.stale_after_s),
    );
    evaluator.step().await;
    ready.store(true, Ordering::Relaxed);

    let mut tasks = Vec::new();
    {
        let token = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            evaluator.run(token.cancelled_owned()).await;
            Ok(())
        }));
    }

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<ExternalScalerServer<KedaService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("embedded descriptor sets are valid");
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("embedded descriptor sets are valid");

    let keda = KedaService::new(snapshots.clone(), telemetry.clone(), shutdown.clone());
    let mut builder = Server::builder()
        // KEDA sets no keepalive on its one long-lived connection; we send ours.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        // KEDA multiplexes every ScaledObject's push stream on one connection.
        .max_concurrent_streams(Some(1_000_000))
        .tcp_nodelay(true);
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    let grpc_router = builder
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(ExternalScalerServer::new(keda));
    {
        let token = shutdown.clone();
        let incoming = TcpListenerStream::new(grpc_listener);
        tasks.push(tokio::spawn(async move {
            let signal = {
                let token = token.clone();
                async move {
                    token.cancelled().await;
                    health_reporter
                        .set_not_serving::<ExternalScalerServer<KedaService>>()
                        .await;
                    health_reporter
                        .set_service_status("", tonic_health::ServingStatus::NotServing)
                        .await;
                }
            };
            grpc_router
                .serve_with_incoming_shutdown(incoming, signal)
                .await?;
            Ok(())
        }));
    }
    {
        let token = shutdown.clone();
        let state = HttpState {
            snapshots,
            telemetry,
            ready: ready.clone(),
        };
        tasks.push(tokio::spawn(async move {
            axum::serve(http_listener, router(state))
                .with_graceful_shutdown(async move {
                    token.cancelled().await;
                    ready.store(false, Ordering::Relaxed);
                })
                .await
                .map_err(ServeError::Http)
        }));
    }
    tracing::info!(%grpc_addr, %http_addr, tls = opts.tls.is_some(), "slo-scaler serving");
    Ok(Running {
        grpc_addr,
        http_addr,
        shutdown,
        tasks,
    })
}
