//! A parser for the Prometheus text exposition format (version 0.0.4), and the
//! OpenMetrics subset engines emit (`# EOF`, exemplars after `#`).
//!
//! Written here rather than pulled in because the format is small, the maintained crates
//! either pull a second HTTP stack or drop label escapes, and this way every edge case the
//! scaler depends on is pinned by a test below. Timestamps on sample lines are parsed but
//! ignored by the callers on purpose: the scraper stamps each scrape with its own clock,
//! so an engine whose clock is skewed cannot make data look fresh or stale.

/// A sample's labels, `(name, value)` sorted by name.
pub type LabelPairs = Vec<(String, String)>;

/// One sample line: metric name, labels sorted by name, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name as on the wire (`vllm:prompt_tokens_total`, `x_bucket`).
    pub name: String,
    /// Labels, sorted by name.
    pub labels: LabelPairs,
    /// Value; may be NaN or ±Inf as the format allows.
    pub value: f64,
}

impl Sample {
    /// The value of a label, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why an exposition was rejected; each carries the 1-based line number.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// A sample line did not match `name{labels} value [timestamp]`.
    #[error(
        "line {line}: expected `name{{label=\"value\",...}} value [timestamp]`, got {text:?}: {why}"
    )]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The offending line (truncated to 200 characters).
        text: String,
        /// What was wrong.
        why: String,
    },
    /// The same series (name and label set) appeared twice. Prometheus rejects such a
    /// scrape; so do we, because summing both would double-count and picking one is a guess.
    #[error(
        "line {line}: duplicate series {series}; the exporter is broken (Prometheus rejects such scrapes too)"
    )]
    DuplicateSeries {
        /// 1-based line number of the second occurrence.
        line: usize,
        /// The series, `name{labels}`.
        series: String,
    },
}

/// Parses a whole exposition.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    let mut out = Vec::new();
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| ParseError::BadLine {
            line: i + 1,
            text: line.chars().take(200).collect(),
            why: why.to_string(),
        };
        out.push(parse_line(line).map_err(|w| bad(&w))?);
        lines.push(i + 1);
    }
    // Duplicates: sort indices by series and compare neighbours, so no key is cloned.
    let mut order: Vec<usize> = (0..out.len()).collect();
    let key = |i: usize| (&out[i].name, &out[i].labels);
    order.sort_by(|a, b| key(*a).cmp(&key(*b)).then(a.cmp(b)));
    if let Some(w) = order.windows(2).find(|w| key(w[0]) == key(w[1])) {
        let dup = &out[w[1]];
        return Err(ParseError::DuplicateSeries {
            line: lines[w[1]],
            series: format!("{}{:?}", dup.name, dup.labels),
        });
    }
    Ok(out)
}

fn parse_line(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("missing or invalid metric name".into());
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, remaining) = parse_labels(after)?;
        labels = parsed;
        rest = remaining;
    }
    // Drop an OpenMetrics exemplar (` # {...} value`).
    let rest = rest.split(" # ").next().unwrap_or("");
    let mut fields = rest.split_whitespace();
    let value_text = fields.next().ok_or("missing value")?;
    let value =
        parse_value(value_text).ok_or_else(|| format!("value {value_text:?} is not a number"))?;
    if let Some(ts) = fields.next()
        && ts.parse::<f64>().is_err()
    {
        return Err(format!("timestamp {ts:?} is not a number"));
    }
    if fields.next().is_some() {
        return Err("unexpected text after the timestamp".into());
    }
    labels.sort();
    if labels.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err("a label name appears twice".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" => Some(f64::NAN),
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// Parses `a="x",b="y"}` and returns the labels and the text after `}`.
fn parse_labels(mut s: &str) -> Result<(LabelPairs, &str), String> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = s.find('=').ok_or("label without `=`")?;
        let key = s[..eq].trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("invalid label name {key:?}"));
        }
        s = s[eq + 1..].trim_start();
        s = s.strip_prefix('"').ok_or("label value must be quoted")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, c)) => {
                        value.push('\\');
                        value.push(c);
                    }
                    None => return Err("unterminated escape".into()),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((key.to_string(), value));
        s = s[end + 1..].trim_start();
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        } else if !s.starts_with('}') {
            return Err("expected `,` or `}` after a label".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_labels_values_and_ignores_comments() {
        let text = "# HELP vllm:num_requests_running Running.\n# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{engine=\"0\",model_name=\"m\"} 3.0\nvllm:prompt_tokens_total{model_name=\"m\"} 1.5e3 1700000000000\nup 1\n";
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].name, "vllm:num_requests_running");
        assert_eq!(s[0].label("model_name"), Some("m"));
        assert_eq!(s[0].labels[0].0, "engine", "labels are sorted");
        assert_eq!(s[1].value, 1500.0);
        assert!(s[2].labels.is_empty());
    }

    #[test]
    fn special_values_escapes_and_exemplars() {
        let text = "a{l=\"x\\\"y\\\\z\\nw\"} NaN\nb_bucket{le=\"+Inf\"} +Inf\nc -Inf\nd_total 5 # {trace_id=\"1\"} 1.0\n# EOF\n";
        let s = parse(text).unwrap();
        assert!(s[0].value.is_nan());
        assert_eq!(s[0].label("l"), Some("x\"y\\z\nw"));
        assert_eq!(s[1].value, f64::INFINITY);
        assert_eq!(s[2].value, f64::NEG_INFINITY);
        assert_eq!(s[3].value, 5.0);
    }

    #[test]
    fn bad_lines_name_the_line_and_what_was_expected() {
        for bad in [
            "x{a=\"1\" 2",
            "x{a=1} 2",
            "x seven",
            "x 1 2 3",
            "{a=\"1\"} 2",
            "x{a=\"1\",a=\"2\"} 1",
        ] {
            let err = parse(&format!("ok 1\n{bad}\n")).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with("line 2:"), "{bad}: {msg}");
        }
    }

    #[test]
    fn duplicate_series_are_rejected_like_prometheus_does() {
        let err = parse("x{a=\"1\",b=\"2\"} 1\nx{b=\"2\",a=\"1\"} 2\n").unwrap_err();
        assert!(
            matches!(err, ParseError::DuplicateSeries { line: 2, .. }),
            "{err}"
        );
    }
}
