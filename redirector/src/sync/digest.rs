//! Content digests: the only names blobs have. A digest from a registry
//! becomes an object key, so it is checked strictly (`sha256:` and 64
//! lowercase hex digits) before it names anything.

use std::fmt::Write as _;

/// `sha256:<64 lowercase hex>`.
pub fn is_sha256(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// The digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let mut h = Hasher::new();
    h.update(bytes);
    h.finish()
}

/// A sha256 computed while bytes stream past.
pub struct Hasher(ring::digest::Context);

impl Default for Hasher {
    fn default() -> Hasher {
        Hasher::new()
    }
}

impl Hasher {
    pub fn new() -> Hasher {
        Hasher(ring::digest::Context::new(&ring::digest::SHA256))
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// `sha256:<hex>`.
    pub fn finish(self) -> String {
        let d = self.0.finish();
        let mut s = String::with_capacity(71);
        s.push_str("sha256:");
        for b in d.as_ref() {
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

/// Which of `n` shards a digest belongs to: its first 16 hex digits as a
/// number, modulo `n` (digests are uniform, so shards are even).
pub fn shard_of(digest: &str, n: u64) -> u64 {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let head = hex.get(..16).unwrap_or(hex);
    u64::from_str_radix(head, 16).unwrap_or(0) % n.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn known_digest_and_streaming_agree() {
        assert_eq!(sha256(b""), EMPTY);
        let mut h = Hasher::new();
        h.update(b"hello ");
        h.update(b"world");
        assert_eq!(h.finish(), sha256(b"hello world"));
    }

    #[test]
    fn only_plain_sha256_digests_name_objects() {
        let cases: &[(&str, bool)] = &[
            (EMPTY, true),
            (
                "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
                false,
            ),
            ("sha256:../../../../etc/passwd", false),
            ("sha512:e3b0", false),
            ("sha256:", false),
            (&EMPTY[..70], false),
            (
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                false,
            ),
        ];
        for (d, want) in cases {
            assert_eq!(is_sha256(d), *want, "{d}");
        }
    }

    #[test]
    fn shards_cover_every_digest_once() {
        let digests: Vec<String> = (0..400u32).map(|i| sha256(&i.to_le_bytes())).collect();
        let mut counts = [0usize; 4];
        for d in &digests {
            counts[shard_of(d, 4) as usize] += 1;
        }
        assert_eq!(counts.iter().sum::<usize>(), 400);
        assert!(counts.iter().all(|&c| c > 60), "{counts:?}");
    }
}
