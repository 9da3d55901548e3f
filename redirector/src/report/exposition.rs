//! Samples from a Prometheus text exposition (the 0.0.4 text format and
//! OpenMetrics alike: comment lines are skipped, a sample is
//! `name{label="value",...} value [timestamp]`). Only what `report` reads
//! is kept: the name, the labels and the value.
//!
//! Not a crate: prometheus-parse reads only the 0.0.4 format and pulls in
//! regex and chrono; a sample line is this much code.

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    /// In the order of the exposition.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, or "" (as PromQL reads a missing label).
    pub fn label(&self, key: &str) -> &str {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ExpositionError {
    pub line: usize,
    pub reason: &'static str,
}

/// Every sample of `text`; the first malformed line is an error naming it.
pub fn parse(text: &str) -> Result<Vec<Sample>, ExpositionError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let sample = parse_line(line).map_err(|reason| ExpositionError {
            line: i + 1,
            reason,
        })?;
        out.push(sample);
    }
    Ok(out)
}

fn parse_line(line: &str) -> Result<Sample, &'static str> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .ok_or("a sample without a value")?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err("a sample name with characters outside [a-zA-Z0-9_:]");
    }
    let mut rest = line[name_end..].trim_start();
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels)?;
    }
    let value = rest
        .split_ascii_whitespace()
        .next()
        .ok_or("a sample without a value")?;
    let value = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|_| "a value that is not a number")?,
    };
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Reads `key="value",...}` into `labels`; what follows the `}`.
fn parse_labels<'a>(
    mut s: &'a str,
    labels: &mut Vec<(String, String)>,
) -> Result<&'a str, &'static str> {
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(rest) = s.strip_prefix('}') {
            return Ok(rest);
        }
        let eq = s.find('=').ok_or("a label without `=`")?;
        let key = s[..eq].trim();
        if key.is_empty() {
            return Err("a label without a name");
        }
        let quoted = s[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("a label value without quotes")?;
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("a label value that does not end"),
                },
                Some((_, c)) => value.push(c),
                None => return Err("a label value that does not end"),
            }
        };
        labels.push((key.to_owned(), value));
        s = &quoted[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_redirector_and_others_expose() {
        let text = "# HELP steer_requests HTTP requests answered\n\
            # TYPE steer_requests counter\n\
            steer_requests_total{route=\"blob\",status=\"307\",backend=\"eu\"} 3\n\
            steer_connections 2\n\
            go_gc{quantile=\"0.5\"} 1.5e-05 1700000000000\n\
            odd{v=\"a\\\"b\\\\c\\nd\",w=\"\"} +Inf\n\
            spaced { a = \"1\" , b=\"2\" } -4\n\
            # EOF\n";
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(s[0].name, "steer_requests_total");
        assert_eq!(s[0].label("backend"), "eu");
        assert_eq!(s[0].label("absent"), "");
        assert_eq!(s[0].value, 3.0);
        assert_eq!(s[1].labels, vec![]);
        assert_eq!(s[2].value, 1.5e-5);
        assert_eq!(s[3].label("v"), "a\"b\\c\nd");
        assert_eq!(s[3].value, f64::INFINITY);
        assert_eq!(
            s[4].labels,
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
    }

    #[test]
    fn a_bad_line_is_named() {
        for (name, text, line, reason) in [
            ("no value", "a 1\nb\n", 2, "a sample without a value"),
            ("not a number", "a x\n", 1, "a value that is not a number"),
            ("unquoted", "a{b=c} 1\n", 1, "a label value without quotes"),
            (
                "unended",
                "a{b=\"c} 1\n",
                1,
                "a label value that does not end",
            ),
            (
                "bad name",
                "a-b 1\n",
                1,
                "a sample name with characters outside [a-zA-Z0-9_:]",
            ),
        ] {
            assert_eq!(parse(text), Err(ExpositionError { line, reason }), "{name}");
        }
    }
}
