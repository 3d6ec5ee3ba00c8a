//! A rollup: the node's figures at one moment, cut down to what the
//! operator consented to, as a remote-write message.

use super::Consent;
use super::wire::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message;
use std::collections::BTreeMap;

/// Labels that name a plugin or where its messages go: kept only with
/// plugin detail.
const DETAIL_LABELS: [&str; 2] = ["plugin", "destination"];
/// Series that are nothing but detail.
const DETAIL_ONLY: [&str; 1] = ["outpost_plugin_info"];

/// One line of the text format: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Reads the node's own `/metrics` text. Lines it cannot read are skipped:
/// the text is ours, so there are none, and a rollup is no place to fail.
pub fn parse(text: &str) -> Vec<Line> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Line> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    let Some((name, rest)) = series.split_once('{') else {
        return Some(Line {
            name: series.to_string(),
            labels: Vec::new(),
            value,
        });
    };
    let mut labels = Vec::new();
    let mut chars = rest.strip_suffix('}')?.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('"') {
            return None;
        }
        let mut label_value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => label_value.push('\n'),
                    other => label_value.push(other),
                },
                '"' => break,
                other => label_value.push(other),
            }
        }
        labels.push((key.trim_start_matches(',').to_string(), label_value));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Some(Line {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The series `consent` lets leave, each labelled with the node, summed
/// over the labels it hides. `None` when nothing may leave.
pub fn build(lines: &[Line], consent: Consent, node: &str, at_ms: u64) -> Option<Vec<u8>> {
    if consent == Consent::Off {
        return None;
    }
    let mut series: BTreeMap<Vec<(String, String)>, f64> = BTreeMap::new();
    for line in lines {
        if consent == Consent::Aggregate && DETAIL_ONLY.contains(&line.name.as_str()) {
            continue;
        }
        let mut labels = vec![
            ("__name__".to_string(), line.name.clone()),
            ("node".to_string(), node.to_string()),
        ];
        labels.extend(
            line.labels
                .iter()
                .filter(|(key, _)| {
                    consent == Consent::WithPluginDetail || !DETAIL_LABELS.contains(&key.as_str())
                })
                .cloned(),
        );
        labels.sort();
        *series.entry(labels).or_insert(0.0) += line.value;
    }
    let timestamp = i64::try_from(at_ms).unwrap_or(i64::MAX);
    let request = WriteRequest {
        timeseries: series
            .into_iter()
            .map(|(labels, value)| TimeSeries {
                labels: labels
                    .into_iter()
                    .map(|(name, value)| Label { name, value })
                    .collect(),
                samples: vec![Sample { value, timestamp }],
            })
            .collect(),
    };
    Some(request.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP outpost_plugin_calls_total Calls.\n\
        # TYPE outpost_plugin_calls_total counter\n\
        outpost_plugin_calls_total{plugin=\"acme/a\"} 3\n\
        outpost_plugin_calls_total{plugin=\"acme/b\"} 4\n\
        outpost_plugin_info{plugin=\"acme/a\",version=\"1.0.0\",kind=\"forecaster\",status=\"active\"} 1\n\
        outpost_documents_printed_total{document=\"label\"} 7\n\
        outpost_plugin_call_duration_seconds_bucket{le=\"+Inf\",plugin=\"acme/a\"} 3\n\
        outpost_storage_free_bytes 1.5e9\n";

    #[test]
    fn the_text_format_reads_back() {
        let lines = parse(TEXT);
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[0].labels, vec![("plugin".into(), "acme/a".into())]);
        assert_eq!(lines[2].labels.len(), 4);
        assert_eq!(lines[4].labels[0], ("le".into(), "+Inf".into()));
        assert_eq!(lines[5].value, 1.5e9);
    }

    fn decoded(bytes: &[u8]) -> WriteRequest {
        WriteRequest::decode(bytes).expect("decodes")
    }

    fn has_label(request: &WriteRequest, name: &str) -> bool {
        request
            .timeseries
            .iter()
            .any(|s| s.labels.iter().any(|l| l.name == name))
    }

    #[test]
    fn aggregate_consent_sums_over_plugins_and_names_none() {
        let lines = parse(TEXT);
        assert!(build(&lines, Consent::Off, "n1", 1000).is_none());
        let aggregate = decoded(&build(&lines, Consent::Aggregate, "n1", 1000).expect("built"));
        assert!(!has_label(&aggregate, "plugin"));
        let calls = aggregate
            .timeseries
            .iter()
            .find(|s| {
                s.labels
                    .iter()
                    .any(|l| l.value == "outpost_plugin_calls_total")
            })
            .expect("calls");
        assert_eq!(calls.samples[0].value, 7.0);
        assert_eq!(calls.samples[0].timestamp, 1000);
        assert!(calls.labels.contains(&Label {
            name: "node".into(),
            value: "n1".into()
        }));
        let detail = decoded(&build(&lines, Consent::WithPluginDetail, "n1", 1000).expect("built"));
        assert!(has_label(&detail, "plugin"));
        assert_eq!(detail.timeseries.len(), 6);
    }
}
