//! TLS and mTLS on the gRPC port, with certificates made at test time (rcgen).

use slo_scaler::proto::external_scaler_client::ExternalScalerClient;
use slo_scaler_integration::*;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

async fn spec_over(endpoint: Endpoint) -> Result<String, String> {
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let mut c = ExternalScalerClient::new(channel);
    c.get_metric_spec(sor(Some("m1"), None, &[]))
        .await
        .map(|r| r.into_inner().metric_specs[0].metric_name.clone())
        .map_err(|e| format!("rpc: {e:?}"))
}

fn planner() -> ScriptedPlanner {
    let p = ScriptedPlanner::new(&[("m1", &["h100"])]);
    p.set("m1", "h100", 1.0);
    p
}

#[tokio::test]
async fn tls_serves_h2_to_a_client_trusting_the_ca_and_refuses_plaintext() {
    let pki = TestPki::generate();
    let running = start_scaler(planner(), fast_evaluation(5.0), Some(pki.server_tls(false))).await;
    let port = running.grpc_addr.port();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost");
    let ep = Endpoint::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap();
    assert!(spec_over(ep).await.unwrap().starts_with("slo-m1-"));
    let plain = Endpoint::from_shared(format!("http://127.0.0.1:{port}")).unwrap();
    assert!(
        spec_over(plain).await.is_err(),
        "plaintext must not be served on a TLS port"
    );
}

#[tokio::test]
async fn mtls_requires_a_client_certificate_signed_by_the_ca() {
    let pki = TestPki::generate();
    let running = start_scaler(planner(), fast_evaluation(5.0), Some(pki.server_tls(true))).await;
    let port = running.grpc_addr.port();
    let base = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost");
    let with_cert = base.clone().identity(Identity::from_pem(
        &pki.client_cert_pem,
        &pki.client_key_pem,
    ));
    let ep = |tls: ClientTlsConfig| {
        Endpoint::from_shared(format!("https://localhost:{port}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
    };
    assert!(spec_over(ep(with_cert)).await.is_ok());
    assert!(
        spec_over(ep(base)).await.is_err(),
        "no client certificate: refused"
    );
    // A certificate from another CA is refused too.
    let other = TestPki::generate();
    let foreign = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost")
        .identity(Identity::from_pem(
            &other.client_cert_pem,
            &other.client_key_pem,
        ));
    assert!(spec_over(ep(foreign)).await.is_err());
}

async fn start_error(tls: slo_scaler::config::TlsConfig) -> String {
    slo_scaler::server::start(
        planner(),
        slo_scaler::server::ServeOptions {
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            http_addr: "127.0.0.1:0".parse().unwrap(),
            tls: Some(tls),
            evaluation: fast_evaluation(5.0),
        },
    )
    .await
    .err()
    .expect("start fails")
    .to_string()
}

#[tokio::test]
async fn unreadable_or_non_pem_files_are_named_in_the_error() {
    init_crypto();
    let pki = TestPki::generate();
    let mut tls = pki.server_tls(false);
    tls.key_file = pki.dir.path().join("missing.key");
    let err = start_error(tls).await;
    assert!(err.contains("missing.key"), "{err}");
    let junk = pki.dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let mut tls = pki.server_tls(false);
    tls.cert_file = junk;
    let err = start_error(tls).await;
    assert!(err.contains("junk.pem") && err.contains("PEM"), "{err}");
}
