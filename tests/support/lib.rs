//! Shared helpers for the cross-crate integration tests: a controllable planner, a
//! scaler started in-process on loopback, the `slo-scaler` binary, test certificates.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use slo_scaler::config::{EvaluationConfig, TlsConfig};
use slo_scaler::decision::{
    Catalog, ModelDecision, ModelInfo, ModelOutcome, Planner, VariantDecision,
};
use slo_scaler::proto::ScaledObjectRef;
use slo_scaler::proto::external_scaler_client::ExternalScalerClient;
use slo_scaler::server::{Running, ServeOptions, start};
use tonic::transport::Channel;

pub mod fake_apiserver;
pub mod fake_vllm;
pub mod prometheus;

/// Installs the process-wide rustls provider (ring), as `main` does.
pub fn init_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// What a [`ScriptedPlanner`] answers for one model.
#[derive(Debug, Clone)]
pub enum Script {
    /// Desired replicas per variant.
    Replicas(BTreeMap<String, f64>),
    /// The model's data is unavailable.
    Unavailable(String),
}

/// A planner whose answers the test sets; `hang` makes evaluations never finish.
#[derive(Clone, Default)]
pub struct ScriptedPlanner {
    catalog: Vec<ModelInfo>,
    scripts: Arc<Mutex<HashMap<String, Script>>>,
    hang: Arc<std::sync::atomic::AtomicBool>,
}

impl ScriptedPlanner {
    /// A planner for `models`: (name, variants).
    pub fn new(models: &[(&str, &[&str])]) -> Self {
        Self {
            catalog: models
                .iter()
                .map(|(m, vs)| ModelInfo {
                    name: m.to_string(),
                    variants: vs.iter().map(|v| v.to_string()).collect(),
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Sets the desired replicas of one variant (others keep theirs).
    pub fn set(&self, model: &str, variant: &str, replicas: f64) {
        let mut s = self.scripts.lock().unwrap();
        let entry = s
            .entry(model.to_string())
            .or_insert_with(|| Script::Replicas(BTreeMap::new()));
        if let Script::Unavailable(_) = entry {
            *entry = Script::Replicas(BTreeMap::new());
        }
        if let Script::Replicas(map) = entry {
            map.insert(variant.to_string(), replicas);
        }
    }

    /// Makes a model's data unavailable.
    pub fn set_unavailable(&self, model: &str, why: &str) {
        self.scripts
            .lock()
            .unwrap()
            .insert(model.to_string(), Script::Unavailable(why.to_string()));
    }

    /// Makes every later evaluation hang (a backend that never answers).
    pub fn set_hanging(&self, hang: bool) {
        self.hang.store(hang, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Planner for ScriptedPlanner {
    fn catalog(&self) -> Catalog {
        Catalog::new(self.catalog.clone())
    }

    async fn evaluate(&mut self, _now: SystemTime) -> Vec<ModelDecision> {
        if self.hang.load(std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let scripts = self.scripts.lock().unwrap().clone();
        scripts
            .into_iter()
            .map(|(model, script)| ModelDecision {
                model,
                outcome: match script {
                    Script::Replicas(map) => ModelOutcome::Planned(
                        map.into_iter()
                            .map(|(variant, r)| VariantDecision {
                                variant,
                                desired_replicas: r,
                                reason: "scripted by the test".into(),
                                action: "scripted",
                                details: BTreeMap::from([("scripted_replicas", r)]),
                            })
                            .collect(),
                    ),
                    Script::Unavailable(why) => ModelOutcome::Unavailable(why),
                },
            })
            .collect()
    }
}

/// Fast evaluation settings for tests: a snapshot every 50 ms.
pub fn fast_evaluation(stale_after_s: f64) -> EvaluationConfig {
    EvaluationConfig {
        interval_s: 0.05,
        timeout_s: 0.2,
        stale_after_s,
    }
}

/// Starts a scaler on random loopback ports.
pub async fn start_scaler<P: Planner>(
    planner: P,
    evaluation: EvaluationConfig,
    tls: Option<TlsConfig>,
) -> Running {
    init_crypto();
    start(
        planner,
        ServeOptions {
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            http_addr: "127.0.0.1:0".parse().unwrap(),
            tls,
            evaluation,
        },
    )
    .await
    .expect("scaler starts")
}

/// A plaintext tonic client.
pub async fn client(running: &Running) -> ExternalScalerClient<Channel> {
    ExternalScalerClient::connect(format!("http://{}", running.grpc_addr))
        .await
        .expect("connect")
}

/// A `ScaledObjectRef` as KEDA builds it: KEDA's own keys included.
pub fn sor(model: Option<&str>, variant: Option<&str>, extra: &[(&str, &str)]) -> ScaledObjectRef {
    let mut md = HashMap::new();
    md.insert("scalerAddress".into(), "slo-scaler.keda:9090".into());
    if let Some(m) = model {
        md.insert("model".into(), m.into());
    }
    if let Some(v) = variant {
        md.insert("variant".into(), v.into());
    }
    for (k, v) in extra {
        md.insert(k.to_string(), v.to_string());
    }
    ScaledObjectRef {
        name: "so".into(),
        namespace: "default".into(),
        scaler_metadata: md,
    }
}

/// The `slo-scaler` binary built by this `cargo test` run (cargo builds a package's
/// binaries for its integration tests; `scaler/tests/` has some).
pub fn scaler_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps");
    let bin = dir.join(format!("slo-scaler{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Waits until `cond` holds, polling every 20 ms, up to `limit`.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// A CA, a server certificate for `localhost`/127.0.0.1 and a client certificate, as
/// PEM files in a temporary directory.
pub struct TestPki {
    /// Keeps the files alive.
    pub dir: tempfile::TempDir,
    /// CA certificate (PEM).
    pub ca_pem: String,
    /// Client certificate (PEM).
    pub client_cert_pem: String,
    /// Client key (PEM).
    pub client_key_pem: String,
}

impl TestPki {
    /// Generates everything with rcgen.
    pub fn generate() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let client = CertificateParams::new(vec!["keda-operator".into()])
            .unwrap()
            .signed_by(&client_key, &issuer)
            .unwrap();

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), server.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).unwrap();
        Self {
            dir,
            ca_pem: ca.pem(),
            client_cert_pem: client.pem(),
            client_key_pem: client_key.serialize_pem(),
        }
    }

    /// Server TLS config; with `mtls`, clients must present a certificate of our CA.
    pub fn server_tls(&self, mtls: bool) -> TlsConfig {
        TlsConfig {
            cert_file: self.dir.path().join("server.pem"),
            key_file: self.dir.path().join("server.key"),
            client_ca_file: mtls.then(|| self.dir.path().join("ca.pem")),
        }
    }
}

/// A `slo-scaler serve` child process on free loopback ports, killed on drop.
pub struct ScalerProcess {
    /// The child.
    pub child: std::process::Child,
    /// `127.0.0.1:PORT` of the gRPC server.
    pub grpc_addr: String,
    /// `http://127.0.0.1:PORT` of the HTTP server.
    pub http_base: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl ScalerProcess {
    /// Starts the binary with `args` after `serve`, and waits until `/readyz` says ready.
    pub fn spawn(args: &[&str]) -> Self {
        Self::spawn_with_env(args, &[])
    }

    /// [`ScalerProcess::spawn`] with extra environment variables.
    pub fn spawn_with_env(args: &[&str], envs: &[(&str, &str)]) -> Self {
        let grpc_addr = format!("127.0.0.1:{}", free_port());
        let http_addr = format!("127.0.0.1:{}", free_port());
        let child = std::process::Command::new(scaler_bin())
            .arg("serve")
            .args(args)
            .args(["--grpc-addr", &grpc_addr, "--http-addr", &http_addr])
            .env("SLO_SCALER_LOG_LEVEL", "warn")
            .envs(envs.iter().copied())
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("spawn slo-scaler");
        let http_base = format!("http://{http_addr}");
        let me = Self {
            child,
            grpc_addr,
            http_base,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(&http_addr) {
                use std::io::{Read, Write};
                let _ = s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n");
                let mut buf = String::new();
                let _ = s.read_to_string(&mut buf);
                if buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200") {
                    return me;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "slo-scaler did not become ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit, up to `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ScalerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The constant-demand fleet used by process-level tests.
pub fn constant_fleet_config() -> PathBuf {
    repo_root().join("tests/fixtures/constant-fleet.yaml")
}

/// `backtest`'s arguments as the tests use them: every policy, JSON, seed 1, native speed
/// and rate, least-loaded routing, the trace's own lengths and the embedded fleet's SLO.
pub fn backtest_args(
    trace: PathBuf,
    start_s: f64,
    duration_s: f64,
) -> slo_scaler::commands::backtest::BacktestArgs {
    use slo_scaler::commands::backtest::{BacktestArgs, Format, RoutingArg};
    BacktestArgs {
        trace,
        config: None,
        model: None,
        policy: "all".into(),
        format: Format::Json,
        seed: 1,
        speed: 1.0,
        scale: 1.0,
        start_s,
        duration_s: Some(duration_s),
        routing: RoutingArg::LeastLoaded,
        cold_start_s: None,
        tokens: None,
        slo_ttft_ms: None,
        slo_tpot_ms: None,
        timeline: false,
        progress: false,
        plot: None,
    }
}

/// The shared data directory, or `None` (with a message) when it is absent: tests on real
/// traces skip rather than fail on a machine without `../shared/data`.
pub fn shared_data() -> Option<PathBuf> {
    let d = slo_scaler::profile_data::data_dir();
    if d.is_dir() {
        Some(d)
    } else {
        eprintln!("skipped: no shared data at {}", d.display());
        None
    }
}
