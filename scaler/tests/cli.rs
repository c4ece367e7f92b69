//! The binary's command line: help, and configuration errors a user would make.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_slo-scaler"))
}

#[test]
fn help_lists_serve_and_its_flags() {
    let out = bin().args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--grpc-addr",
        "--http-addr",
        "--tls-cert",
        "--tls-client-ca",
        "SLO_SCALER_CONFIG",
    ] {
        assert!(text.contains(flag), "{flag} missing from:\n{text}");
    }
}

#[test]
fn a_misspelt_config_key_fails_naming_the_field_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "models:\n  - name: m\n    variants:\n      - name: a\n        capacity_rps: 1\n    demand: {kind: constant, rps: 1}\nevaluaton:\n  interval_s: 1\n",
    )
    .unwrap();
    let out = bin()
        .args([
            "serve",
            "--config",
            path.to_str().unwrap(),
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("evaluaton"), "{err}");
    assert!(err.contains("bad.yaml"), "{err}");
    assert!(err.contains("line 7") || err.contains("7:"), "{err}");
}

#[test]
fn a_missing_config_file_is_named() {
    let out = bin()
        .args(["serve", "--config", "/nonexistent/slo.yaml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/slo.yaml"));
}
