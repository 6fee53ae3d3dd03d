//! Charts drawn on the server as SVG: the overview's activity chart and a
//! run's attempt timeline. Plain strings of our own numbers; no text from
//! users goes into them unescaped.

use fanout_engine::activity::Minute;
use std::fmt::Write;

/// Escape text for an SVG text node or attribute.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Published, completed and failed per minute as three lines over the
/// hour, with the largest value on the axis.
pub(crate) fn activity(minutes: &[Minute]) -> String {
    let (w, h, pad) = (720.0_f64, 160.0_f64, 28.0_f64);
    let max = minutes
        .iter()
        .flat_map(|m| [m.published, m.completed, m.failed + m.dead])
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let n = minutes.len().max(2) as f64;
    let x = |i: usize| pad + (w - 2.0 * pad) * i as f64 / (n - 1.0);
    let y = |v: u64| h - pad - (h - 2.0 * pad) * v as f64 / max;
    let mut svg = format!(
        r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="published, completed and failed per minute over the last hour">"#
    );
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{pad}" y1="{b}" x2="{r}" y2="{b}"/><text class="tick" x="{pad}" y="{t}">{max}</text><text class="tick" x="{pad}" y="{bl}">-60 min</text><text class="tick" x="{rr}" y="{bl}" text-anchor="end">now</text>"#,
        b = h - pad,
        r = w - pad,
        t = pad - 8.0,
        bl = h - 8.0,
        rr = w - pad,
        max = max as u64
    );
    type Series = (&'static str, &'static str, fn(&Minute) -> u64);
    let series: [Series; 3] = [
        ("published", "published", |m| m.published),
        ("completed", "completed", |m| m.completed),
        ("failed", "failed attempts", |m| m.failed + m.dead),
    ];
    for (class, label, value) in series {
        let points: Vec<String> = minutes
            .iter()
            .enumerate()
            .map(|(i, m)| format!("{:.1},{:.1}", x(i), y(value(m))))
            .collect();
        let total: u64 = minutes.iter().map(value).sum();
        let _ = write!(
            svg,
            r#"<polyline class="line {class}" points="{}"><title>{} in the hour: {total}</title></polyline>"#,
            points.join(" "),
            esc(label)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One bar of a timeline.
pub(crate) struct Span {
    pub label: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// `ok`, `failed`, `running`, `waiting`.
    pub class: &'static str,
}

/// Attempts as bars on one time axis from the run's creation.
pub(crate) fn timeline(origin_ms: i64, spans: &[Span], now_ms: i64) -> String {
    let (w, row, pad) = (720.0_f64, 22.0_f64, 90.0_f64);
    let end = spans
        .iter()
        .map(|s| if s.end_ms > 0 { s.end_ms } else { now_ms })
        .max()
        .unwrap_or(now_ms)
        .max(origin_ms + 1);
    let scale = (w - pad - 10.0) / (end - origin_ms) as f64;
    let h = row * spans.len().max(1) as f64 + 24.0;
    let mut svg = format!(
        r#"<svg class="timeline" viewBox="0 0 {w} {h}" role="img" aria-label="attempt timeline">"#
    );
    for (i, s) in spans.iter().enumerate() {
        let stop = if s.end_ms > 0 { s.end_ms } else { now_ms };
        let x = pad + (s.start_ms - origin_ms).max(0) as f64 * scale;
        let width = ((stop - s.start_ms).max(0) as f64 * scale).max(2.0);
        let y = i as f64 * row + 4.0;
        let _ = write!(
            svg,
            r#"<text class="tick" x="4" y="{ty}">{label}</text><rect class="bar {class}" x="{x:.1}" y="{y}" width="{width:.1}" height="{bh}"><title>{label}: {d} ms</title></rect>"#,
            ty = y + 13.0,
            label = esc(&s.label),
            class = s.class,
            bh = row - 6.0,
            d = stop - s.start_ms,
        );
    }
    let _ = write!(
        svg,
        r#"<text class="tick" x="{pad}" y="{b}">created</text><text class="tick" x="{r}" y="{b}" text-anchor="end">+{}</text></svg>"#,
        crate::layout::duration(end - origin_ms),
        b = h - 4.0,
        r = w - 10.0,
    );
    svg
}
