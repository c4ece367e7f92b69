//! The Grafana dashboards shipped in `charts/slo-scaler/dashboards/` (issue 8):
//!
//! - every PromQL expression (panel targets, annotation queries, the selectors inside
//!   `label_values(...)` variables) and the chart's alert/recording rules parse with the
//!   real `promtool check rules` (Debian's `prometheus` package, installed by `.ci/run`),
//!   after substituting Grafana's variables;
//! - structure: unique panel ids, every panel and query on the `${datasource}` variable,
//!   the datasource / namespace / model variables present, no hard-coded cluster names or
//!   namespaces;
//! - every `slo_scaler_*` metric used is exported by the scaler, or listed in
//!   [`PENDING`] (documented in docs/kubernetes.md) until it is.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use slo_scaler_integration::repo_root;

/// `slo_scaler_*` metrics the dashboards and rules use that the scaler does not export
/// yet (docs/kubernetes.md, "Metrics the dashboards expect"). Panels using them stay empty
/// until then. Remove a name here when it is exported: the test fails if a listed metric
/// becomes exported, so this list cannot go stale.
const PENDING: &[&str] = &[];

fn dashboards() -> Vec<(String, Value)> {
    let dir = repo_root().join("charts/slo-scaler/dashboards");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .expect("dashboards dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read");
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()));
            (
                p.file_name().expect("name").to_string_lossy().into_owned(),
                v,
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no dashboards in {}", dir.display());
    out
}

/// All panels, rows' nested panels included.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        out.push(p);
        for q in p["panels"].as_array().into_iter().flatten() {
            out.push(q);
        }
    }
    out
}

/// (where, PromQL) of every expression in a dashboard.
fn expressions(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("every target has expr");
            out.push((format!("panel {} {}", p["id"], p["title"]), expr.to_owned()));
        }
    }
    for a in d["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(expr) = a["expr"].as_str() {
            out.push((format!("annotation {}", a["name"]), expr.to_owned()));
        }
    }
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"]["query"]
            .as_str()
            .or_else(|| v["query"].as_str())
            .expect("query variable");
        // label_values(SELECTOR, label): the selector is PromQL; label_values(label) is not.
        if let Some(inner) = q
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(')'))
            && let Some((selector, _label)) = inner.rsplit_once(',')
        {
            out.push((
                format!("variable {}", v["name"]),
                selector.trim().to_owned(),
            ));
        } else if let Some(inner) = q
            .strip_prefix("query_result(")
            .and_then(|s| s.strip_suffix(')'))
        {
            out.push((format!("variable {}", v["name"]), inner.to_owned()));
        }
    }
    out
}

/// Grafana's variables replaced by values PromQL accepts in the same positions.
fn substitute(expr: &str) -> String {
    let mut s = expr.to_owned();
    for (from, to) in [
        ("$__rate_interval", "5m"),
        ("$__interval", "1m"),
        ("$__range", "1h"),
        ("${__rate_interval}", "5m"),
    ] {
        s = s.replace(from, to);
    }
    // Remaining $name / ${name} / ${name:fmt} are label-value variables.
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'{') {
            for c in chars.by_ref() {
                if c == '}' {
                    break;
                }
            }
        } else {
            while chars
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
            {
                chars.next();
            }
        }
        out.push_str("x.*");
    }
    out
}

fn promtool_check(rules_yaml: &str) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rules.yaml");
    std::fs::write(&path, rules_yaml).expect("write");
    Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "`promtool` is not runnable ({e}): install Debian's `prometheus` package \
                 (`bash .ci/run` does: apt-get install -y prometheus)"
            )
        })
}

fn rules_file(exprs: &[(String, String)]) -> String {
    let mut y = String::from("groups:\n  - name: dashboards\n    rules:\n");
    for (i, (_, e)) in exprs.iter().enumerate() {
        y.push_str(&format!(
            "      - record: dashboard:expr_{i}\n        expr: {}\n",
            serde_json::to_string(&substitute(e)).expect("json string")
        ));
    }
    y
}

#[test]
fn every_dashboard_expression_parses_with_promtool() {
    for (name, d) in dashboards() {
        let exprs = expressions(&d);
        assert!(
            exprs.len() >= 10,
            "{name}: only {} expressions",
            exprs.len()
        );
        let out = promtool_check(&rules_file(&exprs));
        assert!(
            out.status.success(),
            "{name}: promtool rejected an expression:\n{}{}\nexpressions:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            exprs
                .iter()
                .enumerate()
                .map(|(i, (w, e))| format!("expr_{i} ({w}): {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("SUCCESS: {} rules found", exprs.len())),
            "{text}"
        );
    }
}

#[test]
fn promtool_rejects_a_broken_expression() {
    // The check is real: a syntax error fails.
    let bad = vec![(
        "bad".to_owned(),
        "sum by (model) (rate(slo_scaler_evaluations_total[$__rate_interval])".to_owned(),
    )];
    assert!(!promtool_check(&rules_file(&bad)).status.success());
}

#[test]
fn chart_rules_pass_promtool() {
    let path = repo_root().join("charts/slo-scaler/rules/slo-scaler.rules.yaml");
    let text = std::fs::read_to_string(&path).expect("rules file");
    let out = promtool_check(&text);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dashboards_are_well_formed_and_portable() {
    let mut uids = BTreeSet::new();
    for (name, d) in dashboards() {
        assert!(
            d["uid"]
                .as_str()
                .is_some_and(|u| !u.is_empty() && u.len() <= 40),
            "{name}: uid"
        );
        assert!(
            uids.insert(d["uid"].as_str().expect("uid").to_owned()),
            "{name}: uid reused"
        );
        assert!(
            d["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{name}: title"
        );
        assert!(
            d["id"].is_null(),
            "{name}: a fixed numeric id breaks provisioning"
        );
        // Unique panel ids, grid positions present.
        let mut ids = BTreeSet::new();
        for p in panels(&d) {
            let id = p["id"]
                .as_i64()
                .unwrap_or_else(|| panic!("{name}: panel without id"));
            assert!(ids.insert(id), "{name}: panel id {id} used twice");
            assert!(
                p["gridPos"]["w"].as_i64().is_some(),
                "{name}: panel {id} gridPos"
            );
            if p["type"] == "row" {
                continue;
            }
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "{name}: panel {id} must use the datasource variable"
            );
            let targets = p["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{name}: panel {id} has no query");
            let mut refs = BTreeSet::new();
            for t in targets {
                assert_eq!(
                    t["datasource"]["uid"], "${datasource}",
                    "{name}: panel {id}"
                );
                assert!(
                    refs.insert(t["refId"].as_str().expect("refId")),
                    "{name}: refId"
                );
            }
        }
        // Variables: a Prometheus datasource picker, namespace and model.
        let vars: Vec<&Value> = d["templating"]["list"]
            .as_array()
            .expect("templating")
            .iter()
            .collect();
        let var = |n: &str| {
            vars.iter()
                .find(|v| v["name"] == n)
                .unwrap_or_else(|| panic!("{name}: no ${n} variable"))
        };
        assert_eq!(var("datasource")["type"], "datasource");
        assert_eq!(var("datasource")["query"], "prometheus");
        for n in ["namespace", "model"] {
            assert_eq!(var(n)["type"], "query", "{name}: ${n}");
            assert_eq!(var(n)["datasource"]["uid"], "${datasource}", "{name}: ${n}");
        }
        for a in d["annotations"]["list"].as_array().into_iter().flatten() {
            if a["expr"].is_string() {
                assert_eq!(
                    a["datasource"]["uid"], "${datasource}",
                    "{name}: annotation"
                );
            }
        }
        // No hard-coded clusters, namespaces or hosts: label matchers on these labels
        // must use a variable.
        let text = d.to_string();
        for forbidden in [".svc.cluster.local", "localhost", "127.0.0.1"] {
            assert!(!text.contains(forbidden), "{name}: contains {forbidden}");
        }
        for (w, e) in expressions(&d) {
            for label in [
                "cluster",
                "namespace",
                "pod",
                "instance",
                "job",
                "model",
                "model_name",
            ] {
                for op in ["=~\"", "=\"", "!=\"", "!~\""] {
                    let needle = format!("{label}{op}");
                    for (i, _) in e.match_indices(&needle) {
                        // Not the tail of a longer label name (e.g. engine_namespace).
                        let before = e[..i].chars().last();
                        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                            continue;
                        }
                        let value = &e[i + needle.len()..];
                        assert!(
                            value.starts_with('$'),
                            "{name}: {w}: hard-coded {label} in {e}"
                        );
                    }
                }
            }
        }
    }
}

/// Metric families the scaler registers (prefix `slo_scaler_`), from the source.
fn exported_metrics() -> BTreeSet<String> {
    let mut files = vec![repo_root().join("scaler/src/telemetry.rs")];
    if let Ok(rd) = std::fs::read_dir(repo_root().join("scaler/src/metrics")) {
        files.extend(rd.map(|e| e.expect("entry").path()));
    }
    let mut out = BTreeSet::new();
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "rs"))
    {
        let src = std::fs::read_to_string(f).expect("read");
        for chunk in src.split(".register(").skip(1) {
            if let Some(name) = chunk.split('"').nth(1) {
                out.insert(format!("slo_scaler_{name}"));
            }
        }
    }
    out
}

fn used_metrics(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in expr.match_indices("slo_scaler_") {
        if expr[..i]
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            continue;
        }
        let name: String = expr[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let base = ["_bucket", "_count", "_sum", "_total"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name)
            .to_owned();
        out.insert(base);
    }
    out
}

#[test]
fn dashboard_metrics_are_exported_or_declared_pending() {
    let exported = exported_metrics();
    assert!(
        exported.contains("slo_scaler_desired_replicas"),
        "could not read the registered metrics: {exported:?}"
    );
    let mut used = BTreeSet::new();
    for (_, d) in dashboards() {
        for (_, e) in expressions(&d) {
            used.extend(used_metrics(&e));
        }
    }
    let rules =
        std::fs::read_to_string(repo_root().join("charts/slo-scaler/rules/slo-scaler.rules.yaml"))
            .expect("rules");
    used.extend(used_metrics(&rules));
    for m in &used {
        assert!(
            exported.contains(m) || PENDING.contains(&m.as_str()),
            "{m} is used by a dashboard or rule but neither exported nor listed as pending"
        );
    }
    for p in PENDING {
        assert!(
            !exported.contains(*p),
            "{p} is exported now: remove it from PENDING and docs/kubernetes.md"
        );
        assert!(used.contains(*p), "{p} is pending but no dashboard uses it");
    }
    let doc = std::fs::read_to_string(repo_root().join("docs/kubernetes.md")).expect("docs");
    for p in PENDING {
        assert!(
            doc.contains(p),
            "docs/kubernetes.md does not list pending metric {p}"
        );
    }
}

#[test]
fn grafana_variable_substitution_is_sound() {
    assert_eq!(
        substitute(r#"rate(x{namespace=~"$namespace", m="${model:regex}"}[$__rate_interval])"#),
        r#"rate(x{namespace=~"x.*", m="x.*"}[5m])"#
    );
}

#[test]
fn dashboard_json_is_what_its_generator_writes() {
    let out = Command::new("python3")
        .arg(repo_root().join("tests/chart/gen_dashboard.py"))
        .arg("--check")
        .output()
        .unwrap_or_else(|e| panic!("python3 is not runnable: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn instant_query(prom: &str, expr: &str) -> Vec<Value> {
    let url = format!("{prom}/api/v1/query?query={}", url_encode(expr));
    let body: Value = reqwest::get(&url)
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    assert_eq!(body["status"], "success", "{expr}: {body}");
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The dashboards' and rules' queries on the scaler's own metrics return data from a real
/// scaler scraped by a real Prometheus: label names and values (`field`, `method`, `code`,
/// `variant`) match what the scaler exports, not just PromQL syntax. Engine (vLLM) and
/// pending metrics are left out; a healthy scaler fires none of the alerts.
#[tokio::test(flavor = "multi_thread")]
async fn dashboard_queries_return_data_from_a_live_scaler() {
    use slo_scaler_integration::prometheus::PrometheusProcess;
    use slo_scaler_integration::{ScalerProcess, init_crypto, sor};
    init_crypto();
    let config = repo_root().join("tests/fixtures/slo-fleet.yaml");
    let scaler = ScalerProcess::spawn(&["--config", config.to_str().expect("utf-8")]);
    let http: std::net::SocketAddr = scaler
        .http_base
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let prom = PrometheusProcess::start(&[http], 0.5);
    // KEDA-like traffic: answered calls and a NOT_FOUND.
    let mut client = slo_scaler::proto::external_scaler_client::ExternalScalerClient::connect(
        format!("http://{}", scaler.grpc_addr),
    )
    .await
    .expect("grpc");
    let model = "llama-3.1-8b-instruct";
    for _ in 0..5 {
        let r = sor(Some(model), Some("h200"), &[]);
        client.get_metric_spec(r.clone()).await.expect("spec");
        client.is_active(r).await.expect("active");
        let _ = client
            .is_active(sor(Some("no-such-model"), None, &[]))
            .await;
    }
    let mut exprs: Vec<(String, String)> = Vec::new();
    for (_, d) in dashboards() {
        for (w, e) in expressions(&d) {
            if w.starts_with("panel") {
                exprs.push((w, e));
            }
        }
    }
    let rules: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(repo_root().join("charts/slo-scaler/rules/slo-scaler.rules.yaml"))
            .expect("rules"),
    )
    .expect("yaml");
    let mut alerts = Vec::new();
    for g in rules["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            let e = r["expr"].as_str().expect("expr").to_owned();
            match r["alert"].as_str() {
                Some(a) => alerts.push((a.to_owned(), e)),
                None => exprs.push((format!("rule {}", r["record"]), e)),
            }
        }
    }
    let live = |e: &str| {
        !e.contains("vllm:")
            && !PENDING.iter().any(|p| used_metrics(e).contains(*p))
            && !e.contains("slo_scaler:")
    };
    let subst = |e: &str| {
        e.replace("$__rate_interval", "1m")
            .replace("\"$model\"", &format!("\"{model}\""))
            .replace("\"$namespace\"", "\".*\"")
    };
    let checked: Vec<(String, String)> = exprs
        .into_iter()
        .filter(|(_, e)| live(e))
        .map(|(w, e)| (w, subst(&e)))
        .collect();
    assert!(
        checked.len() >= 10,
        "only {} live expressions",
        checked.len()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut empty = Vec::new();
        for (w, e) in &checked {
            if instant_query(&prom.url, e).await.is_empty() {
                empty.push(format!("{w}: {e}"));
            }
        }
        if empty.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no data for:\n{}\nprometheus log:\n{}",
            empty.join("\n"),
            prom.log()
        );
        // Keep RPC counters moving so rates are non-zero.
        let _ = client.is_active(sor(Some(model), Some("h200"), &[])).await;
        let _ = client
            .is_active(sor(Some("no-such-model"), None, &[]))
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The cost panel reads the plan's cost; the replicas panel one series per variant.
    let variants = instant_query(
        &prom.url,
        &subst(r#"max by (variant) (slo_scaler_desired_replicas{model=~"$model"})"#),
    )
    .await;
    assert_eq!(variants.len(), 2, "h200 and a100: {variants:?}");
    for (name, e) in alerts {
        // Recorded series are not loaded here: inline the recording rule.
        let e = e.replace(
            r#"slo_scaler:grpc_request_duration_seconds:p99_5m{method!="StreamIsActive"}"#,
            r#"histogram_quantile(0.99, sum by (namespace, method, le) (rate(slo_scaler_grpc_request_duration_seconds_bucket{method!="StreamIsActive"}[5m])))"#,
        );
        assert!(
            !e.contains("slo_scaler:"),
            "{name}: inline its recorded series"
        );
        let firing = instant_query(&prom.url, &e).await;
        assert!(
            firing.is_empty(),
            "{name} fires on a healthy scaler: {firing:?}"
        );
    }
}
