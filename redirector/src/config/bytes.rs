//! Byte amounts in the config: `40TB`, `1.5 TiB`, `500GB`, `1024`
//! (plain bytes). Decimal units are powers of 1000, binary ones of 1024,
//! as on a cloud bill.

/// Parses an amount of bytes; the error says what is wrong.
pub fn parse(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not an amount of bytes such as 40TB"))?;
    let scale: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "PB" => 1e15,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024f64.powi(3),
        "TiB" => 1024f64.powi(4),
        "PiB" => 1024f64.powi(5),
        other => {
            return Err(format!(
                "`{other}` in `{s}` is not a unit (B, KB, MB, GB, TB, PB, KiB ... PiB)"
            ));
        }
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!("`{s}` is not from 1 byte to 16 EiB"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn amounts() {
        let cases: &[(&str, Result<u64, &str>)] = &[
            ("40TB", Ok(40_000_000_000_000)),
            ("1.5 TiB", Ok(1_649_267_441_664)),
            ("2500", Ok(2500)),
            ("2500B", Ok(2500)),
            ("0", Err("from 1 byte")),
            ("lots", Err("not an amount")),
            ("5 XB", Err("not a unit")),
            ("1e30", Err("not a unit")),
        ];
        for (s, want) in cases {
            match (super::parse(s), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, *w, "{s}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{s}: {e}"),
                (got, want) => panic!("{s}: {got:?}, want {want:?}"),
            }
        }
    }
}
