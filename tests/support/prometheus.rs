//! Real metrics plumbing for the metrics tests: a test exporter serving engine-format
//! metrics whose values the test controls, and a real `prometheus` process scraping it
//! (temporary config and data dir, random loopback port), killable and restartable.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The load a test exporter reports; counters and histograms advance at these rates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineLoad {
    /// Finished requests per second.
    pub requests_per_s: f64,
    /// Prompt tokens per request.
    pub prompt_tokens_per_request: f64,
    /// Output tokens per request.
    pub output_tokens_per_request: f64,
    /// Requests running (gauge).
    pub running: f64,
    /// Requests waiting (gauge).
    pub waiting: f64,
    /// KV-cache use 0..1 (gauge).
    pub kv_cache_usage: f64,
    /// TTFT of every request, seconds.
    pub ttft_s: f64,
    /// Inter-token latency of every token, seconds.
    pub itl_s: f64,
}

impl Default for EngineLoad {
    fn default() -> Self {
        Self {
            requests_per_s: 4.0,
            prompt_tokens_per_request: 500.0,
            output_tokens_per_request: 100.0,
            running: 6.0,
            waiting: 1.0,
            kv_cache_usage: 0.4,
            ttft_s: 0.2,
            itl_s: 0.03,
        }
    }
}

/// Bucket bounds of the exporter's latency histograms (as vLLM's, trimmed).
pub const BUCKETS_S: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

#[derive(Debug)]
struct ExporterState {
    model_name: String,
    load: EngineLoad,
    last: Instant,
    requests: f64,
    prompt_tokens: f64,
    generation_tokens: f64,
    ttft: Vec<f64>, // per bucket of BUCKETS_S, then +Inf; cumulative counts
    itl: Vec<f64>,
    ttft_sum: f64,
    itl_sum: f64,
    fixed_body: Option<String>,
    last_request_head: String,
}

impl ExporterState {
    fn new(model_name: &str, load: EngineLoad) -> Self {
        Self {
            model_name: model_name.to_string(),
            load,
            last: Instant::now(),
            requests: 0.0,
            prompt_tokens: 0.0,
            generation_tokens: 0.0,
            ttft: vec![0.0; BUCKETS_S.len() + 1],
            itl: vec![0.0; BUCKETS_S.len() + 1],
            ttft_sum: 0.0,
            itl_sum: 0.0,
            fixed_body: None,
            last_request_head: String::new(),
        }
    }

    /// Integrates the current load since the last call (so rates are exact whatever the
    /// scrape timing).
    fn advance(&mut self) {
        let dt = self.last.elapsed().as_secs_f64();
        self.last = Instant::now();
        let l = self.load;
        let n = l.requests_per_s * dt;
        self.requests += n;
        self.prompt_tokens += n * l.prompt_tokens_per_request;
        let tokens = n * l.output_tokens_per_request;
        self.generation_tokens += tokens;
        observe(&mut self.ttft, l.ttft_s, n);
        self.ttft_sum += n * l.ttft_s;
        observe(&mut self.itl, l.itl_s, tokens);
        self.itl_sum += tokens * l.itl_s;
    }

    fn render_vllm(&mut self) -> String {
        if let Some(b) = &self.fixed_body {
            return b.clone();
        }
        self.advance();
        let m = &self.model_name;
        let l = &self.load;
        let mut out = String::new();
        let lb = format!("model_name=\"{m}\",engine=\"0\"");
        out += "# TYPE vllm:num_requests_running gauge\n";
        out += &format!("vllm:num_requests_running{{{lb}}} {}\n", l.running);
        out += &format!("vllm:num_requests_waiting{{{lb}}} {}\n", l.waiting);
        out += &format!("vllm:kv_cache_usage_perc{{{lb}}} {}\n", l.kv_cache_usage);
        out += "# TYPE vllm:request_success_total counter\n";
        out += &format!(
            "vllm:request_success_total{{{lb},finished_reason=\"stop\"}} {}\n",
            self.requests * 0.75
        );
        out += &format!(
            "vllm:request_success_total{{{lb},finished_reason=\"length\"}} {}\n",
            self.requests * 0.25
        );
        out += &format!("vllm:prompt_tokens_total{{{lb}}} {}\n", self.prompt_tokens);
        out += &format!(
            "vllm:generation_tokens_total{{{lb}}} {}\n",
            self.generation_tokens
        );
        for (name, counts, sum) in [
            (
                "vllm:time_to_first_token_seconds",
                &self.ttft,
                self.ttft_sum,
            ),
            ("vllm:inter_token_latency_seconds", &self.itl, self.itl_sum),
        ] {
            out += &format!("# TYPE {name} histogram\n");
            for (i, le) in BUCKETS_S.iter().enumerate() {
                out += &format!("{name}_bucket{{{lb},le=\"{le}\"}} {}\n", counts[i]);
            }
            let total = counts[BUCKETS_S.len()];
            out += &format!("{name}_bucket{{{lb},le=\"+Inf\"}} {total}\n");
            out += &format!("{name}_sum{{{lb}}} {sum}\n{name}_count{{{lb}}} {total}\n");
        }
        out
    }
}

fn observe(cumulative: &mut [f64], value: f64, n: f64) {
    for (i, le) in BUCKETS_S.iter().enumerate() {
        if value <= *le {
            cumulative[i] += n;
        }
    }
    let last = cumulative.len() - 1;
    cumulative[last] += n;
}

/// A loopback HTTP server answering every GET with vLLM-format metrics.
pub struct TestExporter {
    /// `127.0.0.1:PORT`.
    pub addr: std::net::SocketAddr,
    state: Arc<Mutex<ExporterState>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl TestExporter {
    /// Starts an exporter for a model (the `model_name` label) on a free port.
    pub async fn start(model_name: &str, load: EngineLoad) -> Self {
        let state = Arc::new(Mutex::new(ExporterState::new(model_name, load)));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind exporter");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(serve(listener, state.clone()));
        Self {
            addr,
            state,
            task: Mutex::new(Some(task)),
        }
    }

    /// The metrics URL.
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    /// Changes the load from now on.
    pub fn set_load(&self, load: EngineLoad) {
        let mut s = self.state.lock().unwrap();
        s.advance();
        s.load = load;
    }

    /// Serves this exact body from now on (fixtures).
    pub fn set_body(&self, body: &str) {
        self.state.lock().unwrap().fixed_body = Some(body.to_string());
    }

    /// The head (request line and headers) of the last request served.
    pub fn last_request_head(&self) -> String {
        self.state.lock().unwrap().last_request_head.clone()
    }

    /// Stops listening: scrapes get "connection refused".
    pub fn stop(&self) {
        if let Some(t) = self.task.lock().unwrap().take() {
            t.abort();
        }
    }

    /// Listens again on the same port, as a restarted engine: counters start from zero.
    pub async fn restart(&self) {
        self.stop();
        {
            let mut s = self.state.lock().unwrap();
            let fresh = ExporterState::new(&s.model_name, s.load);
            *s = fresh;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot rebind exporter on {}: {e}", self.addr),
            }
        };
        *self.task.lock().unwrap() = Some(tokio::spawn(serve(listener, self.state.clone())));
    }
}

impl Drop for TestExporter {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(listener: TcpListener, state: Arc<Mutex<ExporterState>>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut got = Vec::new();
            // Read the request head; the body (none for GET) is ignored.
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let body = {
                let mut s = state.lock().unwrap();
                s.last_request_head = String::from_utf8_lossy(&got).into_owned();
                s.render_vllm()
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

/// The `prometheus` binary, or a failure saying how to get it. Never a skip: these tests
/// are the evidence that the Prometheus source works.
pub fn prometheus_bin() -> PathBuf {
    find_bin("prometheus")
}

/// The `promtool` binary (same package).
pub fn promtool_bin() -> PathBuf {
    find_bin("promtool")
}

fn find_bin(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not on PATH. The metrics tests need a real Prometheus: install \
                 Debian's package with `apt-get install -y prometheus` (.ci/run does this)."
            )
        })
}

/// A real Prometheus on a loopback port with a temporary data dir, killed on drop.
pub struct PrometheusProcess {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    secured: bool,
}

impl PrometheusProcess {
    /// Starts Prometheus scraping `targets` (`host:port`, path `/metrics`) every
    /// `scrape_interval_s`, and waits until it is ready.
    pub fn start(targets: &[std::net::SocketAddr], scrape_interval_s: f64) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, targets, scrape_interval_s)
    }

    /// Starts Prometheus (no scrape targets) on history backfilled with promtool from
    /// `openmetrics` (the text, ending with `# EOF`).
    pub fn start_with_history(openmetrics: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("history.om");
        std::fs::write(&file, openmetrics).expect("write history");
        promtool_backfill(&file, &dir.path().join("data"));
        Self::start_in(dir, &[], 60.0)
    }

    /// Starts Prometheus on an existing data dir (e.g. blocks written by promtool).
    pub fn start_in(
        dir: tempfile::TempDir,
        targets: &[std::net::SocketAddr],
        scrape_interval_s: f64,
    ) -> Self {
        let list = targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let ms = (scrape_interval_s * 1000.0).round() as u64;
        let config = format!(
            "global:\n  scrape_interval: {ms}ms\n  scrape_timeout: {ms}ms\n  evaluation_interval: 10s\nscrape_configs:\n  - job_name: engines\n    static_configs:\n      - targets: [{list}]\n"
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let mut me = Self {
            url: format!("http://127.0.0.1:{port}"),
            port,
            dir,
            child: None,
            secured: false,
        };
        me.spawn();
        me
    }

    /// Starts Prometheus with a `--web.config.file` (TLS, basic auth) and no targets.
    /// `url` is `https://…` when `tls` is set. Readiness is only "the port answers": the
    /// caller polls with its own authenticated client.
    pub fn start_secured(web_config_yaml: &str, tls: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("web.yml"), web_config_yaml).unwrap();
        std::fs::write(
            dir.path().join("prometheus.yml"),
            "global:\n  scrape_interval: 60s\nscrape_configs: []\n",
        )
        .unwrap();
        let port = free_port();
        let scheme = if tls { "https" } else { "http" };
        let mut me = Self {
            url: format!("{scheme}://127.0.0.1:{port}"),
            port,
            dir,
            child: None,
            secured: true,
        };
        me.spawn();
        me
    }

    /// The temporary directory holding config, data and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn spawn(&mut self) {
        let data = self.dir.path().join("data");
        let log = std::fs::File::create(self.dir.path().join("prometheus.log")).unwrap();
        let mut cmd = Command::new(prometheus_bin());
        if self.secured {
            cmd.arg(format!(
                "--web.config.file={}",
                self.dir.path().join("web.yml").display()
            ));
        }
        let child = cmd
            .arg(format!(
                "--config.file={}",
                self.dir.path().join("prometheus.yml").display()
            ))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let _ = s.write_all(b"GET /-/ready HTTP/1.0\r\n\r\n");
                let mut buf = String::new();
                let _ = s.read_to_string(&mut buf);
                if buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200") {
                    return;
                }
                if self.secured && !buf.is_empty() {
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!(
                    "prometheus exited with {status} before becoming ready; log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within 30 s; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Kills the process (SIGKILL, no clean shutdown) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and data dir.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The data dir (`<tmp>/data`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for PrometheusProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes TSDB blocks into `data_dir` from an OpenMetrics file with promtool.
pub fn promtool_backfill(openmetrics: &Path, data_dir: &Path) {
    let out = Command::new(promtool_bin())
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(openmetrics)
        .arg(data_dir)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 100 ms until it returns `Some`, up to `limit`.
pub async fn poll_until<T, F, Fut>(limit: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GetMetrics` for one model/variant: the desired replicas, or the gRPC status.
pub async fn desired(
    c: &mut slo_scaler::proto::external_scaler_client::ExternalScalerClient<
        tonic::transport::Channel,
    >,
    model: &str,
    variant: &str,
) -> Result<f64, tonic::Status> {
    let r = c
        .get_metrics(slo_scaler::proto::GetMetricsRequest {
            scaled_object_ref: Some(crate::sor(Some(model), Some(variant), &[])),
            metric_name: slo_scaler::keda::metric_name(model, Some(variant)),
        })
        .await?
        .into_inner();
    Ok(r.metric_values[0].metric_value_float)
}

/// Polls `GetMetrics` until it answers within `tol` of `expected`; panics with the last
/// answer after `limit`.
pub async fn wait_desired(
    c: &mut slo_scaler::proto::external_scaler_client::ExternalScalerClient<
        tonic::transport::Channel,
    >,
    model: &str,
    variant: &str,
    expected: f64,
    tol: f64,
    limit: Duration,
) -> f64 {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let got = desired(c, model, variant).await;
        if let Ok(v) = &got
            && (v - expected).abs() <= tol
        {
            return *v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "GetMetrics({model}/{variant}) did not reach {expected} ± {tol} within {limit:?}; last: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// After a metrics outage began at `since`: polls until `GetMetrics` answers UNAVAILABLE,
/// asserting on every poll that `IsActive` never says inactive and `GetMetricSpec` keeps
/// answering. Returns the time from `since` to UNAVAILABLE.
pub async fn wait_unavailable_keeping_state(
    c: &mut slo_scaler::proto::external_scaler_client::ExternalScalerClient<
        tonic::transport::Channel,
    >,
    model: &str,
    variant: &str,
    since: Instant,
    limit: Duration,
) -> Duration {
    loop {
        let got = desired(c, model, variant).await;
        let active = c
            .is_active(crate::sor(Some(model), Some(variant), &[]))
            .await;
        if let Ok(a) = &active {
            assert!(
                a.get_ref().result,
                "IsActive said inactive during a metrics outage"
            );
        }
        let spec = c
            .get_metric_spec(crate::sor(Some(model), Some(variant), &[]))
            .await
            .expect("GetMetricSpec answers during a metrics outage");
        assert_eq!(spec.get_ref().metric_specs.len(), 1);
        match got {
            Err(s) if s.code() == tonic::Code::Unavailable => {
                // IsActive must not turn into a definite "inactive" either: an error keeps
                // KEDA's state.
                let active = c
                    .is_active(crate::sor(Some(model), Some(variant), &[]))
                    .await;
                match active {
                    Err(s) => assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}"),
                    Ok(a) => assert!(
                        a.get_ref().result,
                        "IsActive inactive while data is missing"
                    ),
                }
                return since.elapsed();
            }
            Err(s) => panic!("GetMetrics failed with {s:?}; expected UNAVAILABLE"),
            Ok(_) => {}
        }
        assert!(
            since.elapsed() < limit,
            "GetMetrics still answered a value {limit:?} after the outage began"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts that a decision reason reports the observed demand, within 3 % of `want` req/s.
pub fn assert_observed(reason: &str, want: f64) {
    let got: f64 = reason
        .split("observed ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `observed <req/s>` in the reason: {reason}"));
    assert!(
        (got - want).abs() <= 0.03 * want,
        "observed {got} req/s, expected {want} ± 3 %: {reason}"
    );
}
