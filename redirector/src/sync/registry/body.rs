//! Reading the upstream's answers: status, bounded bodies, and the
//! `Link` header of paginated lists.

use reqwest::Response;

use super::error::{RegistryError, Result};

/// The largest manifest or tag list page read (distribution's own limit
/// for manifests is 4 MiB).
pub const MAX_DOCUMENT: usize = 4 << 20;

pub fn ok(resp: Response, url: &str) -> Result<Response> {
    if resp.status().is_success() {
        Ok(resp)
    } else {
        Err(RegistryError::Status {
            url: url.to_owned(),
            status: resp.status().as_u16(),
        })
    }
}

/// The body, refused past [`MAX_DOCUMENT`] bytes.
pub async fn read_bounded(mut resp: Response, url: &str) -> Result<bytes::Bytes> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT as u64)
    {
        return Err(RegistryError::invalid(
            url,
            format!("document over {MAX_DOCUMENT} bytes"),
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|source| RegistryError::Transport {
            url: url.to_owned(),
            source,
        })?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT {
            return Err(RegistryError::invalid(
                url,
                format!("document over {MAX_DOCUMENT} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.into())
}

/// The target of `rel="next"` in a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                r#"</v2/a/tags/list?last=x&n=1000>; rel="next""#,
                Some("/v2/a/tags/list?last=x&n=1000"),
            ),
            (
                r#"<https://r/x>; rel="prev", <https://r/y>; rel="next""#,
                Some("https://r/y"),
            ),
            ("<https://r/y>; rel=next", Some("https://r/y")),
            (r#"<https://r/y>; rel="prev""#, None),
            ("garbage", None),
        ];
        for (header, want) in cases {
            assert_eq!(next_link(header).as_deref(), *want, "{header}");
        }
    }
}
