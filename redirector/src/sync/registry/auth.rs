//! Registry authentication as registries do it: a 401 carries a
//! `WWW-Authenticate` challenge; `Bearer` means "get a token from this
//! realm for this scope" (anonymously, or with basic credentials), `Basic`
//! means "send the credentials with every request".
//!
//! Credentials come from `STEER_UPSTREAM_USERNAME` and
//! `STEER_UPSTREAM_PASSWORD`, else from a docker config file
//! (`$DOCKER_CONFIG/config.json`, `~/.docker/config.json`, or
//! `$REGISTRY_AUTH_FILE` as podman and skopeo name it), by registry host.
//! Credential helpers (`credsStore`) are not run.

use std::{collections::BTreeMap, path::PathBuf};

use base64::Engine as _;
use serde::Deserialize;

/// A user name and password for the upstream.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// Never print the password.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <hidden>)", self.username)
    }
}

impl Credentials {
    /// The `Authorization` value for basic auth.
    pub fn basic(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    /// From the environment, else the first docker config file that has
    /// an entry for `host` (`host` or `host:port` as in the upstream URL).
    pub fn find(env: impl Fn(&str) -> Option<String>, host: &str) -> Option<Credentials> {
        if let (Some(username), Some(password)) = (
            env("STEER_UPSTREAM_USERNAME"),
            env("STEER_UPSTREAM_PASSWORD"),
        ) {
            return Some(Credentials { username, password });
        }
        let mut files: Vec<PathBuf> = Vec::new();
        if let Some(f) = env("REGISTRY_AUTH_FILE") {
            files.push(f.into());
        }
        if let Some(d) = env("DOCKER_CONFIG") {
            files.push(PathBuf::from(d).join("config.json"));
        } else if let Some(home) = env("HOME") {
            files.push(PathBuf::from(home).join(".docker/config.json"));
        }
        files.iter().find_map(|f| {
            let text = std::fs::read_to_string(f).ok()?;
            match from_docker_config(&text, host) {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!("{}: {e}; its credentials are not used", f.display());
                    None
                }
            }
        })
    }
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// The entry for `host` in a docker config file's `auths` (keys may be
/// bare hosts or URLs such as `https://host/v1/`).
pub fn from_docker_config(text: &str, host: &str) -> Result<Option<Credentials>, String> {
    let config: DockerConfig =
        serde_json::from_str(text).map_err(|e| format!("not a docker config: {e}"))?;
    let key_host = |k: &str| {
        let k = k
            .strip_prefix("https://")
            .or_else(|| k.strip_prefix("http://"))
            .unwrap_or(k);
        k.split('/').next().unwrap_or(k).to_owned()
    };
    let Some(entry) = config
        .auths
        .iter()
        .find(|(k, _)| key_host(k) == host)
        .map(|(_, v)| v)
    else {
        return Ok(None);
    };
    if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Some(Credentials {
            username: username.clone(),
            password: password.clone(),
        }));
    }
    let Some(auth) = &entry.auth else {
        return Ok(None);
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| format!("auths.{host}.auth is not base64"))?;
    let raw = String::from_utf8(raw).map_err(|_| format!("auths.{host}.auth is not UTF-8"))?;
    let (username, password) = raw
        .split_once(':')
        .ok_or_else(|| format!("auths.{host}.auth is not user:password"))?;
    Ok(Some(Credentials {
        username: username.to_owned(),
        password: password.to_owned(),
    }))
}

/// What a 401's `WWW-Authenticate` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Bearer realm="...",service="...",scope="..."` or `Basic
/// realm="..."`; other schemes give `None`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut values = BTreeMap::new();
    let mut rest = params.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            after.split_once(',').map_or((after, ""), |(v, t)| (v, t))
        };
        values.insert(key, value.to_owned());
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge::Bearer {
        realm: values.remove("realm")?,
        service: values.remove("service"),
        scope: values.remove("scope"),
    })
}

/// A token endpoint's answer: registries use `token`, OAuth2 ones
/// `access_token`.
#[derive(Deserialize)]
pub struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
}

impl TokenAnswer {
    pub fn into_token(self) -> Option<String> {
        self.token.or(self.access_token).filter(|t| !t.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let bearer = |realm: &str, service: Option<&str>, scope: Option<&str>| {
            Some(Challenge::Bearer {
                realm: realm.into(),
                service: service.map(Into::into),
                scope: scope.map(Into::into),
            })
        };
        let cases: &[(&str, &str, Option<Challenge>)] = &[
            (
                "docker hub",
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull""#,
                bearer(
                    "https://auth.docker.io/token",
                    Some("registry.docker.io"),
                    Some("repository:library/ubuntu:pull"),
                ),
            ),
            (
                "spaces and case",
                r#"bearer Realm = "https://t/x" , scope="repository:a/b:pull,push""#,
                bearer("https://t/x", None, Some("repository:a/b:pull,push")),
            ),
            (
                "unquoted",
                "Bearer realm=https://t/x,service=reg",
                bearer("https://t/x", Some("reg"), None),
            ),
            ("basic", r#"Basic realm="registry""#, Some(Challenge::Basic)),
            ("no realm", r#"Bearer service="x""#, None),
            ("unterminated", r#"Bearer realm="https://t"#, None),
            ("other scheme", "Negotiate abc", None),
        ];
        for (name, header, want) in cases {
            assert_eq!(&parse_challenge(header), want, "{name}");
        }
    }

    #[test]
    fn docker_config_entries() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("ann:s3cret");
        let text = format!(
            r#"{{"auths": {{"https://reg.example:5000/v1/": {{"auth": "{b64}"}}, "other": {{"username": "u", "password": "p"}}}}}}"#
        );
        let found = from_docker_config(&text, "reg.example:5000")
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.username.as_str(), found.password.as_str()),
            ("ann", "s3cret")
        );
        let other = from_docker_config(&text, "other").unwrap().unwrap();
        assert_eq!(
            other.basic(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("u:p")
            )
        );
        assert_eq!(from_docker_config(&text, "reg.example").unwrap(), None);
        assert!(from_docker_config("\"text\"", "x").is_err());
        let bad = r#"{"auths": {"x": {"auth": "!!"}}}"#;
        assert!(from_docker_config(bad, "x").unwrap_err().contains("base64"));
        assert!(!format!("{found:?}").contains("s3cret"));
    }

    #[test]
    fn environment_wins() {
        let env = |k: &str| match k {
            "STEER_UPSTREAM_USERNAME" => Some("e".to_owned()),
            "STEER_UPSTREAM_PASSWORD" => Some("f".to_owned()),
            _ => None,
        };
        let c = Credentials::find(env, "any").unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("e", "f"));
        assert_eq!(Credentials::find(|_| None, "any"), None);
    }
}
