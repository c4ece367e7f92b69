"""Generates charts/slo-scaler/dashboards/slo-scaler-models.json (the source of truth for
its panels). `python3 tests/chart/gen_dashboard.py` rewrites it; `--check` fails if the
checked-in file differs (tests/k8s_dashboards.rs runs that)."""
import json
import os
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "charts", "slo-scaler", "dashboards", "slo-scaler-models.json")
DS = {"type": "prometheus", "uid": "${datasource}"}
S = 'namespace=~"$namespace", model=~"$model"'
E = 'namespace=~"$engine_namespace", model_name=~"$model"'
pid = [0]
def target(expr, legend, ref):
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": True}
def panel(title, desc, targets, x, y, w=12, h=8, unit="short", kind="timeseries", overrides=None, extra=None):
    pid[0] += 1
    p = {"id": pid[0], "type": kind, "title": title, "description": desc, "datasource": DS,
         "gridPos": {"x": x, "y": y, "w": w, "h": h},
         "targets": [target(e, l, chr(65 + i)) for i, (e, l) in enumerate(targets)],
         "fieldConfig": {"defaults": {"unit": unit}, "overrides": overrides or []},
         "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
                     "tooltip": {"mode": "multi"}} if kind == "timeseries" else {}}
    if extra: p.update(extra)
    return p
def row(title, y):
    pid[0] += 1
    return {"id": pid[0], "type": "row", "title": title, "collapsed": False, "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []}

panels = []
panels.append(row("Demand and plan", 0))
panels.append(panel("Demand vs forecast band",
    "Observed request rate (engines and the scaler's own reading) against the forecast band the plan was sized for (lower..upper).",
    [(f'sum(rate(vllm:request_success_total{{{E}}}[$__rate_interval]))', "observed (engines)"),
     (f'max by (model) (slo_scaler_demand_rps{{{S}}})', "observed (scaler)"),
     (f'max by (model) (slo_scaler_forecast_rps{{{S}, bound="lower"}})', "forecast lower"),
     (f'max by (model) (slo_scaler_forecast_rps{{{S}, bound="point"}})', "forecast"),
     (f'max by (model) (slo_scaler_decision_detail{{{S}, field="demand_upper_rps"}})', "forecast upper (sized for)")],
    0, 1, unit="reqps",
    overrides=[{"matcher": {"id": "byName", "options": "forecast upper (sized for)"},
                "properties": [{"id": "custom.fillBelowTo", "value": "forecast lower"}, {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}]}]))
panels.append(panel("Replicas per GPU variant",
    "Desired replicas as GetMetrics reports them (what KEDA's HPA receives) and the plan before stabilisation. Every scaler replica evaluates and exports the same numbers: max, not sum, over pods.",
    [(f'max by (variant) (slo_scaler_desired_replicas{{{S}}})', "{{variant}} desired"),
     (f'max by (variant) (slo_scaler_decision_detail{{{S}, field="planned_replicas"}})', "{{variant}} planned")],
    12, 1))
panels.append(panel("Cost per hour",
    "Price per hour of the current plan (an input: the prices configured per variant or profile).",
    [(f'max by (model) (slo_scaler_decision_detail{{{S}, field="plan_cost_per_hour"}})', "{{model}}")],
    0, 9, unit="currencyUSD"))
panels.append(panel("Decision available",
    "1 when a fresh decision exists; 0 means GetMetrics answers UNAVAILABLE and KEDA's fallback applies.",
    [(f'min by (variant) (slo_scaler_decision_available{{{S}}})', "{{variant}}"),
     (f'min by (variant) (slo_scaler_decision_detail{{{S}, field="plan_feasible"}})', "{{variant}} plan feasible")],
    12, 9))
panels.append(row("Latency against the SLO", 17))
panels.append(panel("TTFT: observed vs predicted vs SLO",
    "Observed p90 time to first token from the engines' histograms, the scaler's prediction for the current plan, and the SLO bound.",
    [(f'histogram_quantile(0.9, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{{{E}}}[$__rate_interval])))', "observed p90"),
     (f'max by (variant) (slo_scaler_predicted_latency_seconds{{{S}, kind="ttft"}})', "{{variant}} predicted"),
     (f'max by (model) (slo_scaler_slo_target_seconds{{{S}, kind="ttft"}})', "SLO")],
    0, 18, unit="s",
    overrides=[{"matcher": {"id": "byName", "options": "SLO"}, "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}}, {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}]}]))
panels.append(panel("TPOT: observed vs predicted vs SLO",
    "Observed p90 time per output token (inter-token latency; older vLLM: time_per_output_token), prediction, SLO bound.",
    [(f'histogram_quantile(0.9, sum by (le) (rate(vllm:inter_token_latency_seconds_bucket{{{E}}}[$__rate_interval])) or sum by (le) (rate(vllm:time_per_output_token_seconds_bucket{{{E}}}[$__rate_interval])))', "observed p90"),
     (f'max by (variant) (slo_scaler_predicted_latency_seconds{{{S}, kind="tpot"}})', "{{variant}} predicted"),
     (f'max by (model) (slo_scaler_slo_target_seconds{{{S}, kind="tpot"}})', "SLO")],
    12, 18, unit="s",
    overrides=[{"matcher": {"id": "byName", "options": "SLO"}, "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}}, {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}]}]))
panels.append(row("KEDA external-scaler RPCs", 26))
R = 'namespace=~"$namespace"'
panels.append(panel("RPC latency (p50, p99)",
    "Time to answer KEDA's calls. The HPA path has a 3 s budget for GetMetricSpec + GetMetrics + IsActive together.",
    [(f'histogram_quantile(0.99, sum by (method, le) (rate(slo_scaler_grpc_request_duration_seconds_bucket{{{R}, method!="StreamIsActive"}}[$__rate_interval])))', "{{method}} p99"),
     (f'histogram_quantile(0.5, sum by (method, le) (rate(slo_scaler_grpc_request_duration_seconds_bucket{{{R}, method!="StreamIsActive"}}[$__rate_interval])))', "{{method}} p50")],
    0, 27, unit="s"))
panels.append(panel("RPC errors by code",
    "Non-OK answers per second. UNAVAILABLE: no fresh decision (fallback); NOT_FOUND: unknown model/variant in a trigger; INVALID_ARGUMENT: bad trigger metadata.",
    [(f'sum by (method, code) (rate(slo_scaler_grpc_requests_total{{{R}, code!="OK"}}[$__rate_interval]))', "{{method}} {{code}}")],
    12, 27, unit="reqps"))
panels.append(panel("RPC rate and open push streams",
    "All KEDA calls per second, and StreamIsActive streams open (external-push triggers).",
    [(f'sum by (method) (rate(slo_scaler_grpc_requests_total{{{R}}}[$__rate_interval]))', "{{method}}"),
     (f'sum(slo_scaler_open_streams{{{R}}})', "open streams")],
    0, 35, unit="short"))
panels.append(panel("Evaluations per second",
    "Decision snapshots published by the evaluation loop (per scaler replica).",
    [(f'sum by (pod) (rate(slo_scaler_evaluations_total{{{R}}}[$__rate_interval]))', "{{pod}}")],
    12, 35, unit="short"))

def qvar(name, label, query, multi=False, include_all=False):
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": f"{name}-var"}, "definition": query,
            "refresh": 2, "sort": 1, "multi": multi, "includeAll": include_all,
            **({"allValue": ".*"} if include_all else {}),
            "current": {}, "options": [], "hide": 0}

dash = {
  "uid": "slo-scaler-models",
  "title": "slo-scaler / models",
  "description": "Per model: demand vs forecast band, latency against the SLO, replicas per GPU variant, cost, decisions; KEDA RPC health.",
  "tags": ["slo-scaler", "keda", "llm"],
  "timezone": "browser",
  "schemaVersion": 39,
  "version": 1,
  "editable": True,
  "graphTooltip": 1,
  "refresh": "30s",
  "time": {"from": "now-6h", "to": "now"},
  "templating": {"list": [
     {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus", "current": {}, "hide": 0, "refresh": 1, "regex": ""},
     qvar("namespace", "Scaler namespace", 'label_values(slo_scaler_desired_replicas, namespace)', include_all=True),
     qvar("model", "Model", 'label_values(slo_scaler_desired_replicas{namespace=~"$namespace"}, model)'),
     qvar("engine_namespace", "Engine namespace", 'label_values(vllm:num_requests_running, namespace)', multi=True, include_all=True),
  ]},
  "annotations": {"list": [
     {"name": "Annotations & Alerts", "builtIn": 1, "type": "dashboard", "enable": True, "hide": True,
      "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "iconColor": "rgba(0, 211, 255, 1)"},
     {"name": "Scaling decisions", "enable": True, "iconColor": "orange", "datasource": DS,
      "expr": f'changes(slo_scaler_desired_replicas{{{S}}}[2m]) > 0',
      "step": "60s", "titleFormat": "{{model}}/{{variant}} desired replicas changed", "textFormat": "see GET /models for the reason",
      "useValueForTime": False},
     {"name": "Decision reasons", "enable": True, "iconColor": "purple", "datasource": DS,
      "expr": f'slo_scaler_decision_reason{{{S}}} == 1 unless slo_scaler_decision_reason{{{S}}} offset 1m == 1',
      "step": "60s", "titleFormat": "{{model}}/{{variant}}", "textFormat": "{{reason}}", "useValueForTime": False},
  ]},
  "panels": panels,
}
text = json.dumps(dash, indent=2) + "\n"
if "--check" in sys.argv[1:]:
    with open(OUT) as f:
        if f.read() != text:
            sys.exit(f"{OUT} differs from tests/chart/gen_dashboard.py: run it to regenerate")
else:
    with open(OUT, "w") as f:
        f.write(text)
