//! The real `slo-scaler` binary: the README's command, SIGTERM, and an independent
//! gRPC implementation (Python `grpcio`) replaying KEDA's calls.

use std::process::Command;
use std::time::Duration;

use slo_scaler_integration::*;

fn python_with_grpc() -> &'static str {
    let ok = Command::new("python3")
        .args(["-c", "import grpc, grpc_tools"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "python3 with grpcio and grpcio-tools is required: \
         python3 -m pip install -r tests/python/requirements.txt (.ci/run does this)"
    );
    "python3"
}

fn run_python(scaler: &ScalerProcess, extra: &[&str]) -> std::process::Child {
    Command::new(python_with_grpc())
        .arg(repo_root().join("tests/python/keda_client.py"))
        .args(["--addr", &scaler.grpc_addr, "--http", &scaler.http_base])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn python client")
}

#[test]
fn python_grpcio_client_replays_keda_for_200_scaledobjects_with_300_streams() {
    let scaler = ScalerProcess::spawn(&["--config", constant_fleet_config().to_str().unwrap()]);
    let out = run_python(
        &scaler,
        &[
            "--mode",
            "load",
            "--scaledobjects",
            "200",
            "--streams",
            "300",
        ],
    )
    .wait_with_output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}"))
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {stdout}"));
    assert!(out.status.success(), "python client failed: {report:#}");
    assert_eq!(report["failures"], serde_json::json!([]));
    assert_eq!(report["sequences"], 600, "{report}");
    assert!(report["checks"].as_u64().unwrap() > 5000, "{report}");
}

#[test]
fn sigterm_ends_every_python_stream_with_ok_and_exits_cleanly() {
    use std::io::BufRead;
    let mut scaler = ScalerProcess::spawn(&["--config", constant_fleet_config().to_str().unwrap()]);
    let mut py = run_python(&scaler, &["--mode", "sigterm", "--streams", "50"]);
    let stdout = py.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let first = lines.next().expect("python prints READY").unwrap();
    assert_eq!(first, "READY");
    scaler.sigterm();
    let status = scaler
        .wait_exit(Duration::from_secs(10))
        .expect("scaler exits after SIGTERM");
    assert!(status.success(), "clean exit, got {status:?}");
    let report: serde_json::Value =
        serde_json::from_str(&lines.next().expect("report").unwrap()).unwrap();
    assert!(py.wait().unwrap().success(), "{report:#}");
    assert_eq!(report["streams"], 50);
}

#[tokio::test]
async fn sigterm_ends_tonic_streams_with_ok_and_the_demo_fleet_is_the_default() {
    // No --config: the embedded demo fleet (the README's first command).
    init_crypto();
    let mut scaler = ScalerProcess::spawn(&[]);
    let models: serde_json::Value = reqwest::get(format!("{}/models", scaler.http_base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"llama-3.1-8b-instruct"), "{names:?}");
    let mut c = slo_scaler::proto::external_scaler_client::ExternalScalerClient::connect(format!(
        "http://{}",
        scaler.grpc_addr
    ))
    .await
    .unwrap();
    let mut streams = Vec::new();
    for m in &names {
        let mut s = c
            .stream_is_active(sor(Some(m), None, &[]))
            .await
            .unwrap()
            .into_inner();
        s.message().await.unwrap().unwrap();
        streams.push(s);
    }
    scaler.sigterm();
    for mut s in streams {
        loop {
            match tokio::time::timeout(Duration::from_secs(5), s.message())
                .await
                .expect("stream ends")
            {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(status) => panic!("stream ended with {status:?}, not OK"),
            }
        }
    }
    let status = scaler.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "{status:?}");
}
