//! The Prometheus client's security options against real servers: a real Prometheus
//! behind TLS (certificate from a test CA) and basic auth via `--web.config.file`, and a
//! loopback server that records the bearer token it receives.

use std::time::Duration;

use slo_scaler::config::{BasicAuthConfig, PrometheusConfig};
use slo_scaler::metrics::MetricsError;
use slo_scaler::metrics::prometheus::{PromApi, PrometheusClient};
use slo_scaler_integration::prometheus::*;
use slo_scaler_integration::*;

/// bcrypt of "test", from the Prometheus basic-auth guide (no bcrypt tool is needed here).
const ADMIN_TEST_BCRYPT: &str = "$2b$12$hNf2lSsxfm0.i4a.1kVpSOVyBCfIB51VRjgBUyv6kdnyTlgWj81Ay";

fn config(url: &str) -> PrometheusConfig {
    PrometheusConfig {
        url: url.to_string(),
        timeout_s: 5.0,
        retries: 0,
        backoff_s: 0.05,
        bearer_token_file: None,
        basic_auth: None,
        ca_file: None,
        history_days: 0.0,
        history_step_s: 60.0,
    }
}

#[tokio::test]
async fn tls_with_custom_ca_and_basic_auth_against_a_real_prometheus() {
    init_crypto();
    let pki = TestPki::generate();
    let tls = pki.server_tls(false);
    let web = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  admin: '{ADMIN_TEST_BCRYPT}'\n",
        tls.cert_file.display(),
        tls.key_file.display()
    );
    let prom = PrometheusProcess::start_secured(&web, true);
    assert!(prom.url.starts_with("https://"));
    let ca_file = pki.dir.path().join("ca.pem");
    let password_file = pki.dir.path().join("password");
    std::fs::write(&password_file, "test\n").unwrap();

    let good = PrometheusClient::new(&PrometheusConfig {
        ca_file: Some(ca_file.clone()),
        basic_auth: Some(BasicAuthConfig {
            username: "admin".into(),
            password_file: password_file.clone(),
        }),
        ..config(&prom.url)
    })
    .unwrap();
    let answer = poll_until(Duration::from_secs(20), || async {
        good.instant("vector(42)").await.ok()
    })
    .await
    .unwrap_or_else(|| panic!("no answer over TLS with basic auth; log:\n{}", prom.log()));
    assert_eq!(answer.series[0].1, 42.0);

    // Wrong password: Prometheus says 401, reported as such (and not retried as if transient).
    let wrong_pw = pki.dir.path().join("wrong");
    std::fs::write(&wrong_pw, "nope").unwrap();
    let wrong = PrometheusClient::new(&PrometheusConfig {
        ca_file: Some(ca_file.clone()),
        basic_auth: Some(BasicAuthConfig {
            username: "admin".into(),
            password_file: wrong_pw,
        }),
        retries: 3,
        ..config(&prom.url)
    })
    .unwrap();
    match wrong.instant("vector(1)").await {
        Err(MetricsError::Status { status: 401, .. }) => {}
        other => panic!("expected HTTP 401, got {other:?}"),
    }

    // Without the custom CA the server certificate is not trusted.
    let untrusted = PrometheusClient::new(&PrometheusConfig {
        basic_auth: Some(BasicAuthConfig {
            username: "admin".into(),
            password_file,
        }),
        ..config(&prom.url)
    })
    .unwrap();
    match untrusted.instant("vector(1)").await {
        Err(MetricsError::Http { .. }) => {}
        other => panic!("expected a TLS failure, got {other:?}"),
    }

    // A CA file that is not PEM fails at construction, naming the key.
    let junk = pki.dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let err = PrometheusClient::new(&PrometheusConfig {
        ca_file: Some(junk),
        ..config(&prom.url)
    });
    match err {
        Err(MetricsError::Config(m)) => assert!(m.contains("metrics.prometheus.ca_file"), "{m}"),
        other => panic!("expected a config error, got {:?}", other.err()),
    }
}

#[tokio::test]
async fn bearer_token_is_sent_and_non_json_answers_are_explained() {
    init_crypto();
    let server = TestExporter::start("m", EngineLoad::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let client = PrometheusClient::new(&PrometheusConfig {
        bearer_token_file: Some(token),
        ..config(&format!("http://{}", server.addr))
    })
    .unwrap();
    // The exporter answers metrics text, not the Prometheus JSON API.
    let err = client.instant("up").await.unwrap_err();
    assert!(
        matches!(err, MetricsError::Decode { .. }) && err.to_string().contains("expected JSON"),
        "{err}"
    );
    let head = server.last_request_head();
    assert!(
        head.lines()
            .any(|l| l.eq_ignore_ascii_case("authorization: Bearer s3cret-token")),
        "{head}"
    );
    assert!(head.starts_with("GET /api/v1/query?query=up "), "{head}");

    // Both auth kinds at once is a configuration error, found at start.
    let both = PrometheusClient::new(&PrometheusConfig {
        bearer_token_file: Some(dir.path().join("token")),
        basic_auth: Some(BasicAuthConfig {
            username: "u".into(),
            password_file: dir.path().join("token"),
        }),
        ..config("http://127.0.0.1:1")
    });
    assert!(matches!(both, Err(MetricsError::Config(_))));
    // A missing token file too.
    let missing = PrometheusClient::new(&PrometheusConfig {
        bearer_token_file: Some(dir.path().join("absent")),
        ..config("http://127.0.0.1:1")
    });
    match missing {
        Err(MetricsError::Config(m)) => assert!(m.contains("bearer_token_file"), "{m}"),
        other => panic!("{:?}", other.err()),
    }
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported() {
    init_crypto();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = PrometheusClient::new(&PrometheusConfig {
        retries: 2,
        backoff_s: 0.05,
        ..config(&format!("http://127.0.0.1:{port}"))
    })
    .unwrap();
    let started = std::time::Instant::now();
    match client.instant("up").await {
        Err(MetricsError::Http { attempts: 3, .. }) => {}
        other => panic!("expected 3 failed attempts, got {other:?}"),
    }
    // Back-off 0.05 s then 0.1 s, each × jitter in [0.5, 1.5).
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(70) && took < Duration::from_secs(2),
        "{took:?}"
    );
}
