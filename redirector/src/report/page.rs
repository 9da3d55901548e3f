//! The admin listener's `/report`: the report's figures as one HTML page
//! with inline SVG charts (bytes by backend over the last hours, the share
//! mirrors served by client class). No script, font or image is fetched:
//! the page works on an air-gapped admin network.
//!
//! Each table row carries its figures as `data-` attributes in exact
//! units (bytes, counts), so tools and tests read what people see.

use std::fmt::Write as _;

use super::{
    figures::{BackendRow, ClassRow, Report},
    history::Point,
    text::{dollars, percent},
};
use crate::sync::report::bytes;

const PALETTE: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];
/// Classes drawn in the share chart (the table lists every one).
const CHART_CLASSES: usize = 20;

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0}\
th,td{padding:.25em .75em;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}\
th:first-child,td:first-child,td.name{text-align:left}\
.headline span{display:inline-block;margin-right:2em;font-size:1.4em}\
svg text{font-size:11px;fill:#444}";

/// The whole page: `report`'s figures and `points` (oldest first, the
/// last one being `report` itself) for the chart.
pub fn render(report: &Report, points: &[Point]) -> String {
    let t = &report.total;
    let mut out = String::with_capacity(16 << 10);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>steer report</title><style>{STYLE}</style></head><body>\
         <h1>Blob traffic {}</h1>\
         <p class=\"headline\" id=\"total\" data-bytes=\"{}\" data-mirror-bytes=\"{}\" data-requests=\"{}\">\
         <span>{} redirected</span><span>{} by mirrors</span>\
         <span>cost ${}</span><span>saved ${}</span></p>",
        esc(&report.window),
        t.bytes,
        t.mirror_bytes,
        t.requests,
        bytes(t.bytes),
        percent(t.mirror_share),
        dollars(t.cost_dollars),
        dollars(t.savings_dollars),
    );
    out.push_str("<h2>Bytes by backend</h2>");
    bytes_chart(&mut out, points);
    out.push_str("<h2>Share served by mirrors, by client class</h2>");
    share_chart(&mut out, &report.classes);
    out.push_str("<h2>By client class</h2>");
    class_table(&mut out, &report.classes);
    out.push_str("<h2>By backend</h2>");
    backend_table(&mut out, &report.backends);
    out.push_str("</body></html>\n");
    out
}

fn class_table(out: &mut String, rows: &[ClassRow]) {
    out.push_str(
        "<table id=\"classes\"><tr><th>provider</th><th>region</th><th>requests</th>\
         <th>blob requests</th><th>bytes</th><th>by mirrors</th><th>cost $</th>\
         <th>saved $</th><th>SYNs (XDP)</th><th>dropped</th></tr>",
    );
    for c in rows {
        let opt = |v: Option<u64>| v.map_or("-".to_owned(), |n| n.to_string());
        let _ = write!(
            out,
            "<tr class=\"class\" data-provider=\"{p}\" data-region=\"{r}\" data-requests=\"{}\" \
             data-blob-requests=\"{}\" data-bytes=\"{}\" data-mirror-bytes=\"{}\">\
             <td class=\"name\">{p}</td><td class=\"name\">{r}</td><td>{}</td><td>{}</td>\
             <td title=\"{} bytes\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            c.requests,
            c.blob_requests,
            c.bytes,
            c.mirror_bytes,
            c.requests,
            c.blob_requests,
            c.bytes,
            bytes(c.bytes),
            percent(c.mirror_share),
            dollars(c.cost_dollars),
            dollars(c.savings_dollars),
            opt(c.syns),
            opt(c.dropped_syns),
            p = esc(&c.provider),
            r = esc(&c.region),
        );
    }
    out.push_str("</table>");
}

fn backend_table(out: &mut String, rows: &[BackendRow]) {
    out.push_str(
        "<table id=\"backends\"><tr><th>backend</th><th>blob requests</th><th>bytes</th>\
         <th>share</th><th>$/GB</th><th>cost $</th><th>saved $</th></tr>",
    );
    for b in rows {
        let _ = write!(
            out,
            "<tr class=\"backend\" data-backend=\"{n}\" data-blob-requests=\"{}\" data-bytes=\"{}\">\
             <td class=\"name\">{n}</td><td>{}</td><td title=\"{} bytes\">{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            b.blob_requests,
            b.bytes,
            b.blob_requests,
            b.bytes,
            bytes(b.bytes),
            percent(b.share),
            b.price_per_gb.map_or("-".to_owned(), |p| p.to_string()),
            dollars(b.cost_dollars),
            dollars(b.savings_dollars),
            n = esc(&b.backend),
        );
    }
    out.push_str("</table>");
}

/// Lines of each backend's bytes since start over the ring's points.
fn bytes_chart(out: &mut String, points: &[Point]) {
    const W: f64 = 640.0;
    const H: f64 = 200.0;
    const LEFT: f64 = 70.0;
    const BOTTOM: f64 = 20.0;
    let mut backends: Vec<&String> = points.iter().flat_map(|p| p.bytes.keys()).collect();
    backends.sort();
    backends.dedup();
    let first = points.first().map_or(0, |p| p.at);
    let last = points.last().map_or(0, |p| p.at);
    let span = (last.saturating_sub(first)).max(1) as f64;
    let max = points
        .iter()
        .flat_map(|p| p.bytes.values())
        .copied()
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let x = |at: u64| LEFT + (at.saturating_sub(first)) as f64 / span * (W - LEFT - 10.0);
    let y = |v: u64| (H - BOTTOM) - v as f64 / max * (H - BOTTOM - 10.0);
    let _ = write!(
        out,
        "<svg id=\"bytes-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{}\" \
         viewBox=\"0 0 {W} {}\" role=\"img\" aria-label=\"bytes by backend\">\
         <line x1=\"{LEFT}\" y1=\"{b}\" x2=\"{W}\" y2=\"{b}\" stroke=\"#999\"/>\
         <line x1=\"{LEFT}\" y1=\"0\" x2=\"{LEFT}\" y2=\"{b}\" stroke=\"#999\"/>\
         <text x=\"{}\" y=\"14\" text-anchor=\"end\">{}</text>\
         <text x=\"{}\" y=\"{b}\" text-anchor=\"end\">0</text>\
         <text x=\"{LEFT}\" y=\"{}\">{}</text><text x=\"{W}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        H + 16.0 * backends.len() as f64,
        H + 16.0 * backends.len() as f64,
        LEFT - 4.0,
        bytes(max as u64),
        LEFT - 4.0,
        H - 4.0,
        clock(first),
        H - 4.0,
        clock(last),
        b = H - BOTTOM,
    );
    for (i, name) in backends.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let line: Vec<String> = points
            .iter()
            .map(|p| {
                let v = p.bytes.get(*name).copied().unwrap_or(0);
                format!("{:.1},{:.1}", x(p.at), y(v))
            })
            .collect();
        let latest = points
            .last()
            .and_then(|p| p.bytes.get(*name))
            .copied()
            .unwrap_or(0);
        let _ = write!(
            out,
            "<polyline class=\"series\" data-backend=\"{n}\" fill=\"none\" stroke=\"{color}\" \
             stroke-width=\"2\" points=\"{}\"/>\
             <rect x=\"{LEFT}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{color}\"/>\
             <text x=\"{}\" y=\"{}\">{n}: {}</text>",
            line.join(" "),
            H + 4.0 + 16.0 * i as f64,
            LEFT + 14.0,
            H + 13.0 + 16.0 * i as f64,
            bytes(latest),
            n = esc(name),
        );
    }
    out.push_str("</svg>");
}

/// A bar per class (the most bytes first): the share mirrors served.
fn share_chart(out: &mut String, classes: &[ClassRow]) {
    const W: f64 = 640.0;
    const LABEL: f64 = 200.0;
    const ROW: f64 = 18.0;
    let shown: Vec<&ClassRow> = classes
        .iter()
        .filter(|c| c.bytes > 0)
        .take(CHART_CLASSES)
        .collect();
    let h = ROW * shown.len().max(1) as f64;
    let _ = write!(
        out,
        "<svg id=\"share-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{h}\" \
         viewBox=\"0 0 {W} {h}\" role=\"img\" aria-label=\"share served by mirrors\">"
    );
    if shown.is_empty() {
        out.push_str("<text x=\"0\" y=\"14\">no blob bytes yet</text>");
    }
    for (i, c) in shown.iter().enumerate() {
        let share = c.mirror_share.unwrap_or(0.0);
        let top = ROW * i as f64;
        let width = share * (W - LABEL - 60.0);
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}/{}</text>\
             <rect x=\"{LABEL}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#ddd\"/>\
             <rect class=\"share\" data-class=\"{}/{}\" x=\"{LABEL}\" y=\"{}\" width=\"{width:.1}\" \
             height=\"{}\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{}\">{}</text>",
            LABEL - 6.0,
            top + 13.0,
            esc(&c.provider),
            esc(&c.region),
            top + 3.0,
            W - LABEL - 60.0,
            ROW - 6.0,
            esc(&c.provider),
            esc(&c.region),
            top + 3.0,
            ROW - 6.0,
            PALETTE[2],
            W - 55.0,
            top + 13.0,
            percent(c.mirror_share),
        );
    }
    out.push_str("</svg>");
}

/// `HH:MM` UTC of Unix seconds.
fn clock(at: u64) -> String {
    let day = at % 86_400;
    format!("{:02}:{:02} UTC", day / 3600, day % 3600 / 60)
}

/// Text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::report::figures::Totals;

    #[test]
    fn names_are_escaped_and_figures_exact() {
        let report = Report {
            window: "since start".into(),
            instances: 1,
            upstream_price_per_gb: Some(0.12),
            classes: vec![ClassRow {
                provider: "aws".into(),
                region: "<eu>".into(),
                requests: 3,
                bytes: 1_000_000,
                mirror_bytes: 1_000_000,
                mirror_share: Some(1.0),
                ..ClassRow::default()
            }],
            backends: vec![BackendRow {
                backend: "a\"b".into(),
                bytes: 1_000_000,
                ..BackendRow::default()
            }],
            total: Totals::default(),
        };
        let point = |at| Point {
            at,
            bytes: BTreeMap::from([("a\"b".to_owned(), 1_000_000)]),
        };
        let html = render(&report, &[point(0), point(60)]);
        assert!(html.contains("data-region=\"&lt;eu&gt;\""), "{html}");
        assert!(
            html.contains(
                "data-backend=\"a&quot;b\" data-blob-requests=\"0\" data-bytes=\"1000000\""
            )
        );
        assert!(!html.contains("<eu>") && !html.contains("a\"b"));
        // Nothing to fetch: no script, stylesheet or image, and the only
        // URLs are the SVG namespace.
        for fetches in ["<script", "<link", "src=", "url("] {
            assert!(!html.contains(fetches), "{fetches}");
        }
        assert_eq!(
            html.matches("http").count(),
            html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
        );
        assert_eq!(html.matches("<polyline").count(), 1);
        assert_eq!(clock(3600 * 25 + 61), "01:01 UTC");
    }
}
