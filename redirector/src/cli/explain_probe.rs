//! `explain --probe`: each candidate's state as the running server would
//! find it now (its health path answered, its ownership proof matched),
//! probed from here, plus its configured budget. Without `--probe`,
//! only what the config says is checked.

use std::time::Duration;

use crate::{backends::Backend, sync::digest::sha256, sync::report::bytes};

/// Each probe's time limit.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest proof object read (as the server reads it).
const MAX_PROOF: u64 = 64 << 10;

/// ` [healthy, proven, budget 40.0 TiB/day]`, or nothing for a backend
/// with none of these.
pub fn state(backend: &Backend, agent: Option<&ureq::Agent>) -> String {
    // The proof first: as the server does, an unproven backend gets no
    // other request.
    let proof = backend.proof.as_ref().map(|p| {
        let url = format!("{}/{}", backend.base_url, p.path);
        let want = format!("sha256:{}", p.sha256);
        match agent {
            None => (true, "proof required".to_owned()),
            Some(a) => match fetch(a, &url) {
                Ok(body) if sha256(&body) == want => (true, "proven".to_owned()),
                Ok(body) => (
                    false,
                    format!(
                        "unproven: {url} has {}, not {want}; never sent a client",
                        sha256(&body)
                    ),
                ),
                Err(e) => (false, format!("unproven: {e}; never sent a client")),
            },
        }
    });
    let proven = proof.as_ref().is_none_or(|(ok, _)| *ok);
    let mut parts = Vec::new();
    if let Some(h) = &backend.health {
        let url = format!("{}{}", backend.base_url, h.path);
        parts.push(match agent {
            None => "health-checked".to_owned(),
            Some(_) if !proven => "health not probed".to_owned(),
            Some(a) => match a.head(&url).call() {
                Ok(r) if r.status() == 200 => "healthy".to_owned(),
                Ok(r) => format!("unhealthy: {url} answered HTTP {}", r.status().as_u16()),
                Err(e) => format!("unhealthy: {url}: {e}"),
            },
        });
    }
    parts.extend(proof.map(|(_, shown)| shown));
    if let Some(max) = backend.max_bytes_per_day {
        parts.push(format!(
            "budget {}/day (used today: steer_backend_bytes_total on the server)",
            bytes(max)
        ));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" [{}]", parts.join(", "))
    }
}

fn fetch(agent: &ureq::Agent, url: &str) -> Result<Vec<u8>, String> {
    let mut r = agent.get(url).call().map_err(|e| format!("{url}: {e}"))?;
    if r.status() != 200 {
        return Err(format!("{url} answered HTTP {}", r.status().as_u16()));
    }
    r.body_mut()
        .with_config()
        .limit(MAX_PROOF)
        .read_to_vec()
        .map_err(|e| format!("{url}: {e}"))
}

/// The agent for `--probe`: bounded in time, statuses as answers.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(PROBE_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into()
}
