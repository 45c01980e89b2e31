//! `--svg FILE`: KV memory over time, one panel per allocator, as stacked areas of token
//! states, reservation, internal and external fragmentation (free memory is the background).
//!
//! Hand-written SVG: four filled polygons per panel, axes and a legend are a few dozen lines
//! of text, so a plotting crate would add a dependency tree for nothing.

use crate::report::{AllocatorReport, Report, TimelinePoint};
use std::fmt::Write;

const WIDTH: f64 = 960.0;
const PANEL_HEIGHT: f64 = 170.0;
const PANEL_GAP: f64 = 46.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 80.0;
const BOTTOM: f64 = 40.0;

/// Category names and fill colours, bottom to top.
const LAYERS: [(&str, &str); 4] = [
    ("token states", "#4c78a8"),
    ("reservation", "#f58518"),
    ("internal fragmentation", "#e45756"),
    ("external fragmentation", "#9d755d"),
];
const FREE_COLOUR: &str = "#eeeeee";

/// Renders every allocator's memory timeline on a common time axis.
pub fn render(report: &Report, title: &str) -> String {
    let panels = report.allocators.len().max(1) as f64;
    let height = TOP + panels * PANEL_HEIGHT + (panels - 1.0) * PANEL_GAP + BOTTOM;
    let t_max = report
        .allocators
        .iter()
        .map(|a| a.duration_s)
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{}</text>"#,
        escape(title)
    );
    // Legend.
    let mut x = LEFT;
    for (name, colour) in LAYERS.iter().chain([("free", FREE_COLOUR)].iter()) {
        let _ = writeln!(
            out,
            r##"<rect x="{x:.1}" y="34" width="12" height="12" fill="{colour}" stroke="#999"/><text x="{:.1}" y="44">{name}</text>"##,
            x + 16.0
        );
        x += 32.0 + 7.0 * name.len() as f64;
    }
    for (i, a) in report.allocators.iter().enumerate() {
        let y0 = TOP + i as f64 * (PANEL_HEIGHT + PANEL_GAP);
        panel(&mut out, a, y0, t_max);
    }
    out.push_str("</svg>\n");
    out
}

fn panel(out: &mut String, a: &AllocatorReport, y0: f64, t_max: f64) {
    let plot_w = WIDTH - LEFT - RIGHT;
    let x_of = |t: f64| LEFT + plot_w * (t / t_max).clamp(0.0, 1.0);
    let y_of = |f: f64| y0 + PANEL_HEIGHT * (1.0 - f.clamp(0.0, 1.0));
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{:.1}" font-weight="bold">{} <tspan font-weight="normal">token states {:.1}%, waste {:.1}%, free {:.1}%, mean batch {:.1}</tspan></text>"#,
        y0 - 8.0,
        escape(&a.name),
        100.0 * a.token_states,
        100.0 * a.waste(),
        100.0 * a.free,
        a.mean_batch
    );
    // Free memory is the background of the run's span.
    let _ = writeln!(
        out,
        r#"<rect x="{LEFT}" y="{y0:.1}" width="{:.1}" height="{PANEL_HEIGHT}" fill="{FREE_COLOUR}"/>"#,
        x_of(a.duration_s) - LEFT
    );
    // Stacked layers as step functions over the timeline buckets.
    let layers = |p: &TimelinePoint| {
        [
            p.token_states,
            p.reservation,
            p.internal_fragmentation,
            p.external_fragmentation,
        ]
    };
    for (k, (_, colour)) in LAYERS.iter().enumerate() {
        if a.timeline.is_empty() {
            break;
        }
        let below = |p: &TimelinePoint| layers(p)[..k].iter().sum::<f64>();
        let above = |p: &TimelinePoint| layers(p)[..=k].iter().sum::<f64>();
        let mut points = String::new();
        for p in &a.timeline {
            let y = y_of(above(p));
            let _ = write!(
                points,
                "{:.1},{:.1} {:.1},{:.1} ",
                x_of(p.start_s),
                y,
                x_of(p.end_s),
                y
            );
        }
        for p in a.timeline.iter().rev() {
            let y = y_of(below(p));
            let _ = write!(
                points,
                "{:.1},{:.1} {:.1},{:.1} ",
                x_of(p.end_s),
                y,
                x_of(p.start_s),
                y
            );
        }
        let _ = writeln!(
            out,
            r#"<polygon points="{}" fill="{colour}"/>"#,
            points.trim_end()
        );
    }
    // Axes: 0/50/100% of the pool, five time ticks in seconds.
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{y0:.1}" width="{plot_w:.1}" height="{PANEL_HEIGHT}" fill="none" stroke="#444"/>"##
    );
    for f in [0.0, 0.5, 1.0] {
        let y = y_of(f);
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" y1="{y:.1}" x2="{LEFT}" y2="{y:.1}" stroke="#444"/><text x="{:.1}" y="{:.1}" text-anchor="end">{:.0}%</text>"##,
            LEFT - 4.0,
            LEFT - 6.0,
            y + 4.0,
            100.0 * f
        );
    }
    let axis_y = y0 + PANEL_HEIGHT;
    for i in 0..=4 {
        let t = t_max * f64::from(i) / 4.0;
        let x = x_of(t);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{axis_y:.1}" x2="{x:.1}" y2="{:.1}" stroke="#444"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{} s</text>"##,
            axis_y + 4.0,
            axis_y + 17.0,
            format_seconds(t)
        );
    }
    let _ = writeln!(
        out,
        r#"<text transform="translate(16,{:.1}) rotate(-90)" text-anchor="middle">% of KV pool</text>"#,
        y0 + PANEL_HEIGHT / 2.0
    );
}

fn format_seconds(t: f64) -> String {
    if t == 0.0 {
        "0".into()
    } else if t >= 100.0 {
        format!("{t:.0}")
    } else if t >= 1.0 {
        format!("{t:.1}")
    } else {
        format!("{t:.3}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_panel_per_allocator_with_four_layers() {
        let point = TimelinePoint {
            start_s: 0.0,
            end_s: 2.0,
            token_states: 0.5,
            reservation: 0.1,
            internal_fragmentation: 0.1,
            external_fragmentation: 0.1,
        };
        let mut a: AllocatorReport = serde_json::from_str(
            r#"{"name":"paged","pool_slots":16,"token_states":0.5,"reservation":0.1,
            "internal_fragmentation":0.1,"external_fragmentation":0.1,"free":0.2,
            "sharing_savings":0,"mean_batch":1,"max_batch":1,"throughput_rps":1,
            "throughput_tps":1,"completed":1,"rejected":0,"preemptions":0,"swaps":0,
            "recomputations":0,"preemption_seconds":0,"duration_s":2,"steps":2,
            "ttft_p50":0,"ttft_p90":0,"ttft_p99":0,"tpot_p50":0,"tpot_p90":0,"tpot_p99":0,
            "e2e_p50":0,"e2e_p90":0,"e2e_p99":0}"#,
        )
        .unwrap();
        a.timeline = vec![point];
        let mut b = a.clone();
        b.name = "x<y".into();
        let svg = render(
            &Report {
                allocators: vec![a, b],
            },
            "t & t",
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polygon").count(), 8);
        assert!(svg.contains("x&lt;y") && svg.contains("t &amp; t"));
        // Token states fill from 0 to 50% of the first panel (top 80, height 170): y from 250
        // up to 165, x from 64 to 936 (the whole 2 s).
        assert!(
            svg.contains("64.0,165.0 936.0,165.0 936.0,250.0 64.0,250.0"),
            "{svg}"
        );
    }
}
