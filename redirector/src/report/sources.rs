//! Where a report's samples come from: the instances' own `/metrics`
//! (totals since each started), or a Prometheus server that scraped them
//! (increases over a window, [`super::prometheus`]).

use std::time::Duration;

use super::exposition::{self, Sample};

/// The largest `/metrics` page or Prometheus answer read.
pub const MAX_ANSWER_BYTES: u64 = 64 << 20;

/// A source that could not be read, naming it.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {reason}")]
pub struct SourceError {
    pub url: String,
    pub reason: String,
}

impl SourceError {
    pub fn new(url: &str, reason: impl ToString) -> SourceError {
        SourceError {
            url: url.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// An HTTP agent for report sources: every call bounded by `timeout`.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

/// The status and body of a GET of `url`.
pub fn get_any(agent: &ureq::Agent, url: &str) -> Result<(u16, String), SourceError> {
    let mut r = agent
        .get(url)
        .call()
        .map_err(|e| SourceError::new(url, e))?;
    let status = r.status().as_u16();
    let body = r
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_string()
        .map_err(|e| SourceError::new(url, format!("reading the answer: {e}")))?;
    Ok((status, body))
}

/// The body of a GET of `url`, which must answer 200.
pub fn get(agent: &ureq::Agent, url: &str) -> Result<String, SourceError> {
    let (status, body) = get_any(agent, url)?;
    if status != 200 {
        return Err(status_error(url, status, &body));
    }
    Ok(body)
}

pub fn status_error(url: &str, status: u16, body: &str) -> SourceError {
    let head: String = body.chars().take(300).collect();
    SourceError::new(url, format!("HTTP {status}: {}", head.trim()))
}

/// `URL` as given, or with `/metrics` when it names only the admin
/// listener (`http://host:9102`).
pub fn metrics_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) if u.path() == "/" && u.query().is_none() => {
            format!("{}/metrics", url.trim_end_matches('/'))
        }
        _ => url.to_owned(),
    }
}

/// Every sample of every instance's `/metrics`, one list per instance.
pub fn scrape(agent: &ureq::Agent, urls: &[String]) -> Result<Vec<Vec<Sample>>, SourceError> {
    urls.iter()
        .map(|url| {
            let url = metrics_url(url);
            let text = get(agent, &url)?;
            exposition::parse(&text).map_err(|e| SourceError::new(&url, e))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_admin_address_means_its_metrics() {
        for (given, want) in [
            ("http://127.0.0.1:9102", "http://127.0.0.1:9102/metrics"),
            ("http://127.0.0.1:9102/", "http://127.0.0.1:9102/metrics"),
            ("http://h:1/metrics", "http://h:1/metrics"),
            ("http://h:1/custom/path", "http://h:1/custom/path"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(metrics_url(given), want, "{given}");
        }
    }
}
