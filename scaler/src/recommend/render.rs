//! A [`Report`] as a table (100 columns), JSON, or KEDA `ScaledObject` manifests.

use std::fmt::Write as _;

use super::{ModelReport, Replicas, Report};
use crate::config::Config;

/// Widest line of the table.
pub const TABLE_WIDTH: usize = 100;

/// `YYYY-MM-DD HH:MM UTC` for Unix seconds.
pub fn utc(unix_s: f64) -> String {
    let secs = unix_s.floor() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

fn when(report: &Report, s: f64) -> String {
    match report.clock {
        "unix" => utc(s),
        _ => format!("trace t={:.1} h", s / 3600.0),
    }
}

fn short_when(report: &Report, s: f64) -> String {
    match report.clock {
        "unix" => utc(s)[11..16].to_string(),
        _ => format!("{:.1}h", s / 3600.0),
    }
}

/// Word-wraps `text` to `TABLE_WIDTH`, every line starting with `indent`.
fn wrap(out: &mut String, indent: &str, text: &str) {
    let mut line = String::from(indent);
    for word in text.split_whitespace() {
        let len = line.chars().count();
        if len > indent.len() && len + 1 + word.chars().count() > TABLE_WIDTH {
            out.push_str(line.trim_end());
            out.push('\n');
            line = String::from(indent);
            line.push_str("  ");
        }
        if line.chars().count() > indent.len() && !line.ends_with("  ") {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.trim().is_empty() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn replicas(r: &Replicas) -> String {
    if r.is_empty() {
        return "-".into();
    }
    r.iter()
        .map(|(v, n)| format!("{v}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn ms(v: Option<f64>, decimals: usize) -> String {
    v.map(|x| format!("{x:.decimals$}"))
        .unwrap_or_else(|| "-".into())
}

fn model_table(out: &mut String, report: &Report, m: &ModelReport) {
    let _ = writeln!(out, "== {}", m.model);
    if let Some(e) = &m.error {
        wrap(out, "   ", &format!("no recommendation: {e}"));
        return;
    }
    let p = match m.slo.percentile {
        forecasting::latency::Percentile::P50 => "p50",
        forecasting::latency::Percentile::P90 => "p90",
        forecasting::latency::Percentile::P99 => "p99",
    };
    let _ = writeln!(
        out,
        "   SLO {p} TTFT <= {} ms, TPOT <= {} ms, attainment {} -> sized for the q{:.0} forecast",
        m.slo.ttft_ms,
        m.slo.tpot_ms,
        m.slo.attainment,
        m.quantile * 100.0
    );
    let _ = writeln!(
        out,
        "   history {} points, last observed {} req/s",
        m.history_points,
        m.demand_now_rps
            .map(|d| format!("{d:.3}"))
            .unwrap_or_else(|| "-".into())
    );
    if let Some(now) = &m.now {
        let _ = writeln!(
            out,
            "   now: {} -> {:.2} $/h, {p} TTFT {} ms, TPOT {} ms{}",
            replicas(&now.replicas),
            now.cost_per_hour,
            ms(now.predicted_ttft_ms, 1),
            ms(now.predicted_tpot_ms, 2),
            if now.feasible {
                ""
            } else {
                " (DOES NOT COVER DEMAND)"
            }
        );
        wrap(out, "     ", &format!("why: {}", now.reason));
        let _ = writeln!(
            out,
            "   {:<16} {:<10} {:>8} {:>11} {:>9} {:>9} {:>9}  {:<14}",
            "variant", "gpu", "replicas", "req/s each", "$/h each", "TTFT ms", "TPOT ms", "action"
        );
        for v in &now.variants {
            let _ = writeln!(
                out,
                "   {:<16} {:<10} {:>8} {:>11.3} {:>9.2} {:>9} {:>9}  {:<14}",
                fit(&v.variant, 16),
                fit(&v.gpu_type, 10),
                v.replicas,
                v.capacity_per_replica_rps,
                v.price_per_hour,
                ms(v.predicted_ttft_ms, 1),
                ms(v.predicted_tpot_ms, 2),
                fit(v.action, 14)
            );
        }
        for v in &now.variants {
            wrap(out, "     ", &format!("{}: {}", v.variant, v.reason));
        }
    }
    for x in &m.excluded_variants {
        wrap(out, "   ", &format!("excluded {}: {}", x.variant, x.reason));
    }
    let _ = writeln!(
        out,
        "   schedule (req/s: forecast band lower/point/upper, sized = upper incl. cold start):"
    );
    let _ = writeln!(
        out,
        "   {:>4} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}  replicas",
        "hour", "start", "lower", "point", "upper", "sized", "$/h", "TTFT ms", "TPOT ms"
    );
    for (f, h) in m.forecast.iter().zip(&m.schedule) {
        let line = format!(
            "   {:>4} {:>6} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8} {:>7}  ",
            h.hour,
            fit(&short_when(report, h.start_s), 6),
            f.lower_rps,
            f.point_rps,
            f.upper_rps,
            h.demand_rps,
            h.cost_per_hour,
            ms(h.predicted_ttft_ms, 1),
            ms(h.predicted_tpot_ms, 2)
        );
        let room = TABLE_WIDTH.saturating_sub(line.chars().count());
        let mut r = replicas(&h.replicas);
        if !h.feasible {
            r = format!("SHORT {r}");
        }
        let _ = writeln!(out, "{line}{}", fit(&r, room));
    }
    if let Some(f) = m.forecast.iter().find(|f| f.basis != "calibrated") {
        wrap(
            out,
            "   ",
            &format!(
                "note: from hour {} the band is {} (too few residuals at that horizon): wide on purpose",
                f.hour,
                f.basis.replace('_', " ")
            ),
        );
    }
    let _ = writeln!(
        out,
        "   total over {} h: {:.2} $",
        report.hours, m.cost_over_hours
    );
    if let Some(s) = &m.savings.single_type {
        wrap(
            out,
            "   ",
            &format!(
                "saves {:.2} $ over {} h ({:.2} $/h now) vs {} alone: {}",
                s.saving_over_hours, report.hours, s.saving_per_hour_now, s.gpu_type, s.reason
            ),
        );
    }
    if let Some(c) = &m.savings.current {
        wrap(
            out,
            "   ",
            &format!(
                "saves {:.2} $ over {} h ({:.2} $/h now) vs the current replicas: {}",
                c.saving_over_hours, report.hours, c.saving_per_hour_now, c.reason
            ),
        );
    }
    for n in &m.savings.notes {
        wrap(out, "   ", &format!("note: {n}"));
    }
}

/// The report as text for a 100-column terminal.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "slo-scaler recommend at {} for the next {} h",
        when(report, report.at_s),
        report.hours
    );
    wrap(&mut out, "", &format!("source: {}", report.source));
    for m in &report.models {
        out.push('\n');
        model_table(&mut out, report, m);
    }
    let _ = writeln!(
        out,
        "\ntotal: {:.2} $/h now, {:.2} $ over {} h",
        report.total_cost_per_hour_now, report.total_cost_over_hours, report.hours
    );
    if let Some(w) = &report.what_if {
        let _ = writeln!(out, "\nwhat-if {}:", w.changes.join(" "));
        let _ = writeln!(
            out,
            "   {:<28} {:>10} {:>10} {:>11} {:>11} {:>11}",
            "model", "$/h now", "what-if", "$ over h", "what-if", "delta"
        );
        for d in &w.diff {
            let _ = writeln!(
                out,
                "   {:<28} {:>10.2} {:>10.2} {:>11.2} {:>11.2} {:>+11.2}",
                fit(&d.model, 28),
                d.cost_per_hour_now_baseline,
                d.cost_per_hour_now_what_if,
                d.cost_over_hours_baseline,
                d.cost_over_hours_what_if,
                d.delta_cost_over_hours
            );
            wrap(
                &mut out,
                "     ",
                &format!(
                    "replicas now {} -> {}; {}",
                    replicas(&d.replicas_now_baseline),
                    replicas(&d.replicas_now_what_if),
                    d.reason
                ),
            );
        }
        let _ = writeln!(out, "\n-- under the what-if --");
        for m in &w.report.models {
            out.push('\n');
            model_table(&mut out, &w.report, m);
        }
    }
    out.lines().map(|l| format!("{}\n", l.trim_end())).collect()
}

/// The report as JSON (schema in `docs/recommend.md`).
pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("a report serialises")
}

/// Where the `ScaledObject`s point and how they authenticate.
#[derive(Debug, Clone)]
pub struct ManifestOptions {
    /// Namespace of the ScaledObjects (and of the Deployments they scale).
    pub namespace: String,
    /// The scaler's gRPC address as KEDA reaches it.
    pub scaler_address: String,
    /// A `TriggerAuthentication` for mTLS, if any.
    pub trigger_auth: Option<String>,
}

/// A DNS-1123 name from `model-variant`.
pub fn object_name(model: &str, variant: &str) -> String {
    let mut s = String::new();
    for c in format!("{model}-{variant}").chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            s.push(c);
        } else if !s.ends_with('-') {
            s.push('-');
        }
    }
    let s: String = s.trim_matches('-').chars().take(63).collect();
    s.trim_end_matches('-').to_string()
}

fn q(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// One `ScaledObject` per (model, variant) with a recommendation, ready to apply.
///
/// Numbers: `minReplicaCount` is the variant's `min_replicas`; `maxReplicaCount` its
/// `max_replicas`, or twice the schedule's peak when unlimited; `fallback.replicas` the
/// schedule's peak (at least 1) with `currentReplicasIfHigher`, so a scaler outage never
/// shrinks a variant below what the forecast needs; `cooldownPeriod` the scaler's own
/// scale-down window. Trigger `external-push` for variants that may scale to zero (a wake-up
/// must be fast), `external` otherwise.
pub fn scaled_objects(report: &Report, config: &Config, opts: &ManifestOptions) -> String {
    let mut out = String::new();
    let cooldown = config
        .sizing
        .stabilization
        .scale_down_window_s
        .round()
        .max(0.0) as u64;
    for m in &report.models {
        let Some(now) = &m.now else {
            let _ = writeln!(
                out,
                "# {}: no ScaledObject: {}",
                m.model,
                m.error.as_deref().unwrap_or("no recommendation")
            );
            continue;
        };
        let Some(mc) = config.models.iter().find(|x| x.name == m.model) else {
            continue;
        };
        for x in &m.excluded_variants {
            let _ = writeln!(
                out,
                "# {}/{}: no ScaledObject: {}",
                m.model, x.variant, x.reason
            );
        }
        for v in &now.variants {
            let Some(vc) = mc.variants.iter().find(|x| x.name == v.variant) else {
                continue;
            };
            let peak = m
                .schedule
                .iter()
                .filter_map(|h| h.replicas.get(&v.variant).copied())
                .chain([v.replicas])
                .max()
                .unwrap_or(0);
            let min = vc.min_replicas.ceil().max(0.0) as u64;
            let max = match vc.max_replicas {
                Some(x) => x.floor().max(1.0) as u64,
                None => (2 * u64::from(peak)).max(min).max(1),
            };
            let fallback = u64::from(peak).max(1).min(max);
            let push = min == 0;
            let name = object_name(&m.model, &v.variant);
            if !out.is_empty() {
                out.push_str("---\n");
            }
            let _ = writeln!(
                out,
                "# slo-scaler recommend: {}/{} on {} at {:.2} $/h per replica. Now {} replica(s);\n\
                 # peak over the next {} h: {peak}. maxReplicaCount: {}; fallback: the peak.",
                m.model,
                v.variant,
                v.gpu_type,
                v.price_per_hour,
                v.replicas,
                report.hours,
                if vc.max_replicas.is_some() {
                    "the variant's max_replicas"
                } else {
                    "twice the peak (no max_replicas)"
                }
            );
            let _ = writeln!(out, "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject");
            let _ = writeln!(
                out,
                "metadata:\n  name: {}\n  namespace: {}",
                q(&name),
                q(&opts.namespace)
            );
            let _ = writeln!(out, "spec:\n  scaleTargetRef:\n    name: {}", q(&name));
            let _ = writeln!(
                out,
                "  pollingInterval: {}\n  cooldownPeriod: {cooldown}\n  minReplicaCount: {min}\n  maxReplicaCount: {max}",
                if push { 15 } else { 30 }
            );
            let _ = writeln!(
                out,
                "  # Scaler unreachable or UNAVAILABLE 3 times in a row: keep the current replicas,\n  \
                 # or the forecast peak if that is more. Never a fake 0.\n  \
                 fallback:\n    failureThreshold: 3\n    replicas: {fallback}\n    behavior: currentReplicasIfHigher"
            );
            // The backtest simulates our Deployments with these very numbers
            // (`ScalingSettings::rendered`), so what is measured is what is deployed.
            let b = crate::sim::autoscaler::ScalingSettings::default().rendered();
            let _ = writeln!(
                out,
                "  advanced:\n    horizontalPodAutoscalerConfig:\n      behavior:\n        \
                 scaleUp:\n          stabilizationWindowSeconds: 0\n          selectPolicy: Max\n          \
                 policies:\n            - {{ type: Pods, value: {}, periodSeconds: {} }}\n            \
                 - {{ type: Percent, value: {}, periodSeconds: {} }}\n        \
                 # The scaler already holds scale-downs for its own window ({cooldown} s).\n        \
                 scaleDown:\n          stabilizationWindowSeconds: {}\n          policies:\n            \
                 - {{ type: Percent, value: {}, periodSeconds: {} }}",
                b.scale_up_pods,
                b.scale_up_period_s,
                b.scale_up_percent,
                b.scale_up_period_s,
                b.scale_down_stabilization_s,
                b.scale_down_percent.unwrap_or(100.0),
                b.scale_down_period_s,
            );
            let _ = writeln!(
                out,
                "  triggers:\n    - type: {}\n      metricType: AverageValue",
                if push { "external-push" } else { "external" }
            );
            if let Some(a) = &opts.trigger_auth {
                let _ = writeln!(out, "      authenticationRef:\n        name: {}", q(a));
            }
            let _ = writeln!(
                out,
                "      metadata:\n        scalerAddress: {}\n        model: {}\n        variant: {}\n        activationThreshold: \"0\"",
                q(&opts.scaler_address),
                q(&m.model),
                q(&v.variant)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0.0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_700_000_000.0), "2023-11-14 22:13 UTC");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn names_are_dns_labels() {
        assert_eq!(
            object_name("meta/Llama-3.1-8B", "h200_tp1"),
            "meta-llama-3-1-8b-h200-tp1"
        );
        assert!(object_name(&"x".repeat(80), "v").len() <= 63);
    }

    #[test]
    fn wrapping_keeps_lines_within_the_width() {
        let mut out = String::new();
        wrap(&mut out, "   ", &"word ".repeat(100));
        assert!(
            out.lines().all(|l| l.chars().count() <= TABLE_WIDTH),
            "{out}"
        );
        assert!(out.lines().count() > 3);
    }
}
