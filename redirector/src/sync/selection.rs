//! Which images `sync` and `audit` cover: `name:tag`, `name@sha256:<hex>`
//! or a bare `name` (all of its tags) on the command line, or an images
//! file:
//!
//! ```toml
//! [[image]]
//! name = "pause"
//! tags = ["3.9", "3.10"]
//!
//! [[image]]
//! name = "coredns/coredns"
//! all_tags = true
//! ```

use serde::Deserialize;

use super::digest::is_sha256;
use crate::routes::is_name;

/// One manifest reference of an image, or all of its tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wanted {
    Reference(String),
    AllTags,
}

/// An image name and what of it is wanted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub name: String,
    pub wanted: Vec<Wanted>,
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`, as the distribution spec has it.
pub fn is_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn name(s: &str) -> Result<String, String> {
    if is_name(s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not a repository name (lowercase letters, digits, . _ - and /)"
        ))
    }
}

/// One IMAGE argument.
pub fn parse_arg(arg: &str) -> Result<Image, String> {
    if let Some((n, digest)) = arg.split_once('@') {
        if !is_sha256(digest) {
            return Err(format!("`{arg}`: `{digest}` is not sha256:<64 hex>"));
        }
        return Ok(Image {
            name: name(n)?,
            wanted: vec![Wanted::Reference(digest.to_owned())],
        });
    }
    // A tag follows the last `:` after the last `/` (no registry host is
    // part of a name here: the upstream comes from the config).
    let last = arg.rsplit('/').next().unwrap_or(arg);
    match last.rsplit_once(':') {
        Some((_, tag)) => {
            let n = &arg[..arg.len() - tag.len() - 1];
            if !is_tag(tag) {
                return Err(format!("`{arg}`: `{tag}` is not a tag"));
            }
            Ok(Image {
                name: name(n)?,
                wanted: vec![Wanted::Reference(tag.to_owned())],
            })
        }
        None => Ok(Image {
            name: name(arg)?,
            wanted: vec![Wanted::AllTags],
        }),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    image: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    digests: Vec<String>,
    #[serde(default)]
    all_tags: bool,
}

/// An images file's text; an error names the entry.
pub fn parse_file(text: &str) -> Result<Vec<Image>, String> {
    let file: File = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
    if file.image.is_empty() {
        return Err("no [[image]] entries".into());
    }
    file.image
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let at = |msg: String| format!("image[{i}]: {msg}");
            let n = name(&e.name).map_err(at)?;
            let mut wanted = Vec::new();
            for t in &e.tags {
                if !is_tag(t) {
                    return Err(at(format!("tags: `{t}` is not a tag")));
                }
                wanted.push(Wanted::Reference(t.clone()));
            }
            for d in &e.digests {
                if !is_sha256(d) {
                    return Err(at(format!("digests: `{d}` is not sha256:<64 hex>")));
                }
                wanted.push(Wanted::Reference(d.clone()));
            }
            if e.all_tags {
                wanted.push(Wanted::AllTags);
            }
            if wanted.is_empty() {
                return Err(at("give tags, digests or all_tags = true".into()));
            }
            Ok(Image { name: n, wanted })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn arguments() {
        let r = |n: &str, t: &str| -> Result<Image, ()> {
            Ok(Image {
                name: n.into(),
                wanted: vec![Wanted::Reference(t.into())],
            })
        };
        let cases: Vec<(&str, String, Result<Image, ()>)> = vec![
            ("tag", "pause:3.9".into(), r("pause", "3.9")),
            (
                "nested",
                "coredns/coredns:v1.11.1".into(),
                r("coredns/coredns", "v1.11.1"),
            ),
            ("digest", format!("pause@{D}"), r("pause", D)),
            (
                "all tags",
                "etcd".into(),
                Ok(Image {
                    name: "etcd".into(),
                    wanted: vec![Wanted::AllTags],
                }),
            ),
            ("upper case", "Pause:1".into(), Err(())),
            ("bad tag", "pause:-x".into(), Err(())),
            ("short digest", "pause@sha256:12".into(), Err(())),
            ("empty", "".into(), Err(())),
            ("traversal", "../x:1".into(), Err(())),
        ];
        for (case, arg, want) in cases {
            assert_eq!(parse_arg(&arg).map_err(|_| ()), want, "{case}");
        }
    }

    #[test]
    fn images_file() {
        let text = format!(
            "[[image]]\nname = \"pause\"\ntags = [\"3.9\", \"3.10\"]\n[[image]]\nname = \"etcd\"\nall_tags = true\ndigests = [\"{D}\"]\n"
        );
        let images = parse_file(&text).unwrap();
        assert_eq!(images.len(), 2);
        assert_eq!(images[0].wanted.len(), 2);
        assert_eq!(
            images[1].wanted,
            vec![Wanted::Reference(D.into()), Wanted::AllTags]
        );
        let cases: &[(&str, &str)] = &[
            ("", "no [[image]]"),
            ("[[image]]\nname = \"x\"\n", "image[0]: give tags"),
            (
                "[[image]]\nname = \"x\"\ntags = [\"a b\"]\n",
                "image[0]: tags",
            ),
            (
                "[[image]]\nname = \"X\"\nall_tags = true\n",
                "image[0]: `X`",
            ),
            ("[[image]]\nname = \"x\"\nall = true\n", "unknown field"),
        ];
        for (text, want) in cases {
            let err = parse_file(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
