//! Increases over a window from a Prometheus server's HTTP API, summed
//! over every instance it scrapes.
//!
//! Not PromQL's `increase()`: it extrapolates to the window's edges and
//! never counts a series' first sample, so a backend that first served
//! inside the window would be missing and the rest rounded. Instead each
//! counter is read as a range query (`sum by (instance, job, ...)`, at
//! most [`MAX_STEPS`] points per series) and walked here: the value at
//! the window's start is the baseline (zero for a series born inside the
//! window), every rise is added, and a fall is a restart whose new value
//! is added whole. Exact for a process that lived through the window; a
//! restart loses what its old process counted after its last scrape.

use std::{collections::BTreeMap, time::Duration};

use serde::Deserialize;

use super::{
    exposition::Sample,
    figures::{BLOB_BYTES, DROPPED_SYNS, PRICE, REQUESTS, SYNS},
    sources::{SourceError, get_any, status_error},
};

/// The most points asked per series: Prometheus refuses more than 11,000.
pub const MAX_STEPS: u64 = 1000;

/// The counters a report reads, and the labels it keeps of each.
const COUNTERS: [(&str, &str); 4] = [
    (REQUESTS, "provider, region, backend, route"),
    (BLOB_BYTES, "backend, provider, region"),
    (SYNS, "provider, region"),
    (DROPPED_SYNS, "provider, region"),
];

/// Samples whose values are the increases over `since` up to `end` (Unix
/// seconds), plus the prices in force at `end`; and how many instances
/// (`instance`, `job` pairs) they came from.
pub fn fetch(
    agent: &ureq::Agent,
    base: &str,
    since: Duration,
    end: f64,
) -> Result<(Vec<Sample>, usize), SourceError> {
    let step = since.as_secs().div_ceil(MAX_STEPS).max(1);
    let steps = since.as_secs().div_ceil(step).max(1);
    let start = end - (steps * step) as f64;
    let mut samples = Vec::new();
    let mut instances = std::collections::BTreeSet::new();
    for (name, by) in COUNTERS {
        let query = format!("sum by (instance, job, {by}) ({name})");
        let url = api_url(
            base,
            "query_range",
            &[
                ("query", query),
                ("start", format!("{start:.3}")),
                ("end", format!("{end:.3}")),
                ("step", step.to_string()),
            ],
        )?;
        for series in query_api(agent, &url, "matrix")? {
            let points = series.points(&url)?;
            let mut labels: Vec<(String, String)> = series.metric.into_iter().collect();
            let instance: Vec<String> = labels
                .iter()
                .filter(|(k, _)| k == "instance" || k == "job")
                .map(|(_, v)| v.clone())
                .collect();
            instances.insert(instance);
            labels.retain(|(k, _)| k != "instance" && k != "job");
            samples.push(Sample {
                name: name.to_owned(),
                labels,
                value: increase(&points, start),
            });
        }
    }
    let url = api_url(
        base,
        "query",
        &[
            ("query", format!("max by (backend) ({PRICE})")),
            ("time", format!("{end:.3}")),
        ],
    )?;
    for series in query_api(agent, &url, "vector")? {
        let value = series
            .value
            .as_ref()
            .ok_or_else(|| SourceError::new(&url, "a vector sample without a value"))
            .and_then(|(_, v)| number(&url, v))?;
        samples.push(Sample {
            name: PRICE.to_owned(),
            labels: series.metric.into_iter().collect(),
            value,
        });
    }
    Ok((samples, instances.len()))
}

/// How much a counter rose over `points` (time, value), the window
/// starting at `start`: see the module's comment.
pub fn increase(points: &[(f64, f64)], start: f64) -> f64 {
    let Some(&(t0, v0)) = points.first() else {
        return 0.0;
    };
    // Range-query points fall on the steps; one at `start` means the
    // series existed when the window opened.
    let mut prev = if (t0 - start).abs() < 1e-3 { v0 } else { 0.0 };
    let mut sum = 0.0;
    for &(_, v) in points {
        sum += if v >= prev { v - prev } else { v };
        prev = v;
    }
    sum
}

fn api_url(base: &str, endpoint: &str, params: &[(&str, String)]) -> Result<String, SourceError> {
    let mut url = url::Url::parse(base).map_err(|e| SourceError::new(base, e))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(SourceError::new(base, "not an http(s) URL"));
    }
    let path = format!("{}/api/v1/{endpoint}", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url.query_pairs_mut()
        .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
    Ok(url.into())
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
    #[serde(default)]
    value: Option<(f64, String)>,
}

impl Series {
    fn points(&self, url: &str) -> Result<Vec<(f64, f64)>, SourceError> {
        self.values
            .iter()
            .map(|(t, v)| Ok((*t, number(url, v)?)))
            .collect()
    }
}

fn number(url: &str, v: &str) -> Result<f64, SourceError> {
    v.parse()
        .map_err(|_| SourceError::new(url, format!("a sample value `{v}` is not a number")))
}

/// The result of one API call, which must be of `kind`.
fn query_api(agent: &ureq::Agent, url: &str, kind: &str) -> Result<Vec<Series>, SourceError> {
    let (status, body) = get_any(agent, url)?;
    let answer: Result<Answer, _> = serde_json::from_str(&body);
    if status != 200 {
        // Prometheus explains a bad query in its JSON, with a 4xx.
        return Err(match answer {
            Ok(Answer { error: Some(e), .. }) => {
                SourceError::new(url, format!("HTTP {status}: {e}"))
            }
            _ => status_error(url, status, &body),
        });
    }
    let answer =
        answer.map_err(|e| SourceError::new(url, format!("not a Prometheus API answer: {e}")))?;
    if answer.status != "success" {
        return Err(SourceError::new(
            url,
            answer.error.unwrap_or_else(|| answer.status.clone()),
        ));
    }
    let data = answer
        .data
        .ok_or_else(|| SourceError::new(url, "an answer without data"))?;
    if data.result_type != kind {
        return Err(SourceError::new(
            url,
            format!("a {} where a {kind} was asked", data.result_type),
        ));
    }
    Ok(data.result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increases_count_every_byte_of_the_window() {
        let start = 100.0;
        for (name, points, want) in [
            ("no points", vec![], 0.0),
            (
                "flat since before the window",
                vec![(100.0, 5.0), (110.0, 5.0)],
                0.0,
            ),
            (
                "rose inside the window",
                vec![(100.0, 5.0), (110.0, 7.0), (120.0, 12.0)],
                7.0,
            ),
            // The first point is not at the start: its whole value is new.
            (
                "born inside the window",
                vec![(110.0, 3.0), (120.0, 8.0)],
                8.0,
            ),
            (
                "a restart",
                vec![(100.0, 10.0), (110.0, 15.0), (120.0, 2.0), (130.0, 6.0)],
                11.0,
            ),
        ] {
            assert_eq!(increase(&points, start), want, "{name}");
        }
    }

    #[test]
    fn api_urls_keep_a_prefix_and_escape_the_query() {
        let url = api_url(
            "http://127.0.0.1:9090/prom/",
            "query",
            &[("query", "sum by (a) (x{b=\"c\"})".into())],
        )
        .unwrap();
        assert_eq!(
            url,
            "http://127.0.0.1:9090/prom/api/v1/query?query=sum+by+%28a%29+%28x%7Bb%3D%22c%22%7D%29"
        );
        assert!(api_url("ftp://x", "query", &[]).is_err());
        assert!(api_url("not a url", "query", &[]).is_err());
    }
}
