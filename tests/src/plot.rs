//! SVG charts for the benchmark pages and the dashboard's panel images, drawn from the data the
//! benchmarks measure (no plotting library: two chart kinds, plain SVG a browser or GitHub
//! renders). [`Strip`] shows distributions — every trial a dot, the median a bar — side by side
//! per group; [`Lines`] shows series of (x, y) points. Both take linear or log axes.

use std::fmt::Write as _;

/// A chart as the `ferrolb-plot` command reads it (JSON: `{"lines": {…}}` or `{"strip": {…}}`,
/// fields as the structs').
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Chart {
    Lines(Lines),
    Strip(Strip),
}

impl Chart {
    /// The SVG document.
    pub fn svg(&self) -> String {
        match self {
            Self::Lines(c) => c.svg(),
            Self::Strip(c) => c.svg(),
        }
    }
}

/// Colours of the series, in order (the first is ferrolb's everywhere).
const PALETTE: [&str; 6] = [
    "#1f6feb", "#d1242f", "#8250df", "#1a7f37", "#bc4c00", "#57606a",
];
const WIDTH: f64 = 760.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;

/// An axis' mapping from data to pixels and its ticks.
#[derive(Clone, Copy, Debug)]
struct Axis {
    min: f64,
    max: f64,
    log: bool,
}

impl Axis {
    /// The axis spanning `values` (positive ones for a log axis), widened to round ticks.
    fn fit(values: impl Iterator<Item = f64>, log: bool, from_zero: bool) -> Self {
        let mut min = f64::INFINITY;
        let mut max = f64::NEG_INFINITY;
        for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
            min = min.min(v);
            max = max.max(v);
        }
        if !min.is_finite() {
            (min, max) = (1.0, 10.0);
        }
        if log {
            let lo = 10f64.powf(min.log10().floor());
            let mut hi = 10f64.powf(max.log10().ceil());
            if hi <= lo {
                hi = lo * 10.0;
            }
            Self {
                min: lo,
                max: hi,
                log,
            }
        } else {
            if from_zero {
                min = min.min(0.0);
            }
            if max <= min {
                max = min + 1.0;
            }
            let step = nice_step((max - min) / 5.0);
            Self {
                min: (min / step).floor() * step,
                max: (max / step).ceil() * step,
                log,
            }
        }
    }

    /// Where `v` falls, from 0 (min) to 1 (max).
    fn frac(&self, v: f64) -> f64 {
        if self.log {
            (v.max(self.min).log10() - self.min.log10()) / (self.max.log10() - self.min.log10())
        } else {
            (v - self.min) / (self.max - self.min)
        }
    }

    /// Tick values: powers of ten (and 2×, 5× when there are few) on a log axis, multiples of
    /// a round step on a linear one.
    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let decades = (self.max / self.min).log10().round() as i32;
            let mults: &[f64] = if decades <= 2 {
                &[1.0, 2.0, 5.0]
            } else {
                &[1.0]
            };
            let mut out = Vec::new();
            let mut p = self.min;
            while p <= self.max * 1.0001 {
                for m in mults {
                    let v = p * m;
                    if v <= self.max * 1.0001 {
                        out.push(v);
                    }
                }
                p *= 10.0;
            }
            out
        } else {
            let step = nice_step((self.max - self.min) / 5.0);
            let n = ((self.max - self.min) / step).round() as i64;
            (0..=n).map(|i| self.min + step * i as f64).collect()
        }
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let raw = if raw > 0.0 { raw } else { 1.0 };
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|s| *s >= raw * 0.999)
        .unwrap_or(10.0 * p)
}

/// A tick label: no trailing zeros, thousands as `k`.
fn label(v: f64) -> String {
    if v != 0.0 && v.abs() >= 10_000.0 && (v / 1000.0).fract() == 0.0 {
        format!("{}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn header(out: &mut String, height: f64, title: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" font-size="15" font-weight="bold" text-anchor="middle">{}</text>
"#,
        WIDTH / 2.0,
        escape(title)
    );
}

/// A vertical grid line at each of `axis`' ticks (placed by `x`), labelled under `bottom`.
fn vertical_grid(out: &mut String, axis: &Axis, x: impl Fn(f64) -> f64, bottom: f64, colour: &str) {
    for t in axis.ticks() {
        let _ = writeln!(
            out,
            r#"<line x1="{0:.1}" y1="{TOP}" x2="{0:.1}" y2="{bottom}" stroke="{colour}"/><text x="{0:.1}" y="{1}" text-anchor="middle">{2}</text>"#,
            x(t),
            bottom + 16.0,
            label(t)
        );
    }
}

/// Distributions side by side: per group (an event), one row of dots per series (an
/// implementation), with the median marked and printed.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Strip {
    pub title: String,
    /// The horizontal axis' label (`gap (ms), log scale`).
    pub axis: String,
    pub log: bool,
    /// The series' names, in palette order.
    pub series: Vec<String>,
    /// Per group: its label and each series' values (same order as `series`; empty if the
    /// series has none for the group).
    pub groups: Vec<(String, Vec<Vec<f64>>)>,
}

impl Strip {
    /// The SVG document.
    pub fn svg(&self) -> String {
        const ROW: f64 = 26.0;
        const GROUP_GAP: f64 = 30.0;
        let label_w = 230.0;
        let x0 = LEFT + label_w;
        let plot_w = WIDTH - x0 - RIGHT;
        let rows: usize = self.groups.iter().map(|(_, s)| s.len()).sum();
        let plot_h = rows as f64 * ROW + self.groups.len() as f64 * GROUP_GAP;
        let height = TOP + plot_h + 70.0;
        let axis = Axis::fit(
            self.groups
                .iter()
                .flat_map(|(_, s)| s.iter().flatten().copied()),
            self.log,
            true,
        );
        let mut out = String::new();
        header(&mut out, height, &self.title);
        let x = |v: f64| x0 + axis.frac(v) * plot_w;
        let bottom = TOP + plot_h;
        vertical_grid(&mut out, &axis, x, bottom, "#d0d7de");
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            x0 + plot_w / 2.0,
            bottom + 36.0,
            escape(&self.axis)
        );
        let mut y = TOP + GROUP_GAP * 0.7;
        for (group, per_series) in &self.groups {
            let _ = writeln!(
                out,
                r#"<text x="10" y="{:.1}" font-weight="bold">{}</text>"#,
                y - 6.0,
                escape(group)
            );
            for (i, values) in per_series.iter().enumerate() {
                let colour = PALETTE[i % PALETTE.len()];
                let name = self.series.get(i).map_or("?", String::as_str);
                let mid = y + ROW / 2.0;
                let _ = writeln!(
                    out,
                    r#"<text x="20" y="{:.1}" fill="{colour}">{}</text>"#,
                    mid + 4.0,
                    escape(name)
                );
                let mut sorted: Vec<f64> =
                    values.iter().copied().filter(|v| v.is_finite()).collect();
                sorted.sort_by(f64::total_cmp);
                for (k, v) in sorted.iter().enumerate() {
                    // A small deterministic vertical spread so equal values stay visible.
                    let jitter = ((k * 7) % 5) as f64 * 2.0 - 4.0;
                    let _ = writeln!(
                        out,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}" fill-opacity="0.55"/>"#,
                        x(*v),
                        mid + jitter
                    );
                }
                if let Some(m) = median(&sorted) {
                    let _ = writeln!(
                        out,
                        r#"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="{colour}" stroke-width="3"/><text x="{3:.1}" y="{4:.1}" fill="{colour}" font-size="11">{5}</text>"#,
                        x(m),
                        mid - 10.0,
                        mid + 10.0,
                        x0 - 8.0,
                        mid + 4.0,
                        format_args!("median {}", label((m * 10.0).round() / 10.0))
                    );
                } else {
                    let _ = writeln!(
                        out,
                        r##"<text x="{:.1}" y="{:.1}" fill="#57606a">not measured</text>"##,
                        x0 + 6.0,
                        mid + 4.0
                    );
                }
                y += ROW;
            }
            y += GROUP_GAP;
        }
        out.push_str("</svg>\n");
        // Median labels sit left of the plot, right-aligned.
        out.replace(
            r#"font-size="11">median"#,
            r#"font-size="11" text-anchor="end">median"#,
        )
    }
}

fn median(sorted: &[f64]) -> Option<f64> {
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2]),
        n => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Series of points, each a line with its points marked, and a legend.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Lines {
    pub title: String,
    pub x_axis: String,
    pub y_axis: String,
    pub log_x: bool,
    pub log_y: bool,
    /// Each series' name and points (x, y), drawn in order.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// Time series sampled at a fixed step: a step in x more than 1.5 times the series'
    /// smallest one is a gap (no samples there), and the line breaks.
    pub break_gaps: bool,
    /// Vertical markers: an x and a short label (an event).
    pub marks: Vec<(f64, String)>,
}

impl Lines {
    /// The SVG document.
    pub fn svg(&self) -> String {
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = 300.0;
        let legend_h = 18.0 * self.series.len().div_ceil(3) as f64;
        let height = TOP + plot_h + 50.0 + legend_h + 10.0;
        let xs = Axis::fit(
            self.series.iter().flat_map(|(_, p)| p.iter().map(|q| q.0)),
            self.log_x,
            false,
        );
        let ys = Axis::fit(
            self.series.iter().flat_map(|(_, p)| p.iter().map(|q| q.1)),
            self.log_y,
            true,
        );
        let x = |v: f64| LEFT + xs.frac(v) * plot_w;
        let y = |v: f64| TOP + plot_h - ys.frac(v) * plot_h;
        let bottom = TOP + plot_h;
        let mut out = String::new();
        header(&mut out, height, &self.title);
        vertical_grid(&mut out, &xs, x, bottom, "#eaeef2");
        for t in ys.ticks() {
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="#eaeef2"/><text x="{2}" y="{3:.1}" text-anchor="end">{4}</text>"##,
                y(t),
                LEFT + plot_w,
                LEFT - 6.0,
                y(t) + 4.0,
                label(t)
            );
        }
        let _ = writeln!(
            out,
            r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#8c959f"/>
<text x="{}" y="{}" text-anchor="middle">{}</text>
<text transform="translate(16 {}) rotate(-90)" text-anchor="middle">{}</text>"##,
            LEFT + plot_w / 2.0,
            bottom + 34.0,
            escape(&self.x_axis),
            TOP + plot_h / 2.0,
            escape(&self.y_axis)
        );
        for (k, (at, text)) in self.marks.iter().enumerate() {
            let _ = writeln!(
                out,
                r##"<line x1="{0:.1}" y1="{TOP}" x2="{0:.1}" y2="{bottom}" stroke="#57606a" stroke-dasharray="4 3"/><text x="{1:.1}" y="{2:.1}" font-size="10" fill="#57606a">{3}</text>"##,
                x(*at),
                x(*at) + 3.0,
                TOP + 12.0 + (k % 3) as f64 * 11.0,
                escape(text)
            );
        }
        for (i, (name, points)) in self.series.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let visible: Vec<&(f64, f64)> = points
                .iter()
                .filter(|(a, b)| {
                    a.is_finite()
                        && b.is_finite()
                        && (!self.log_x || *a > 0.0)
                        && (!self.log_y || *b > 0.0)
                })
                .collect();
            let step = visible
                .windows(2)
                .map(|w| w[1].0 - w[0].0)
                .filter(|d| *d > 0.0)
                .fold(f64::INFINITY, f64::min);
            let mut runs: Vec<Vec<String>> = vec![Vec::new()];
            for (k, (a, b)) in visible.iter().enumerate() {
                if self.break_gaps && k > 0 && a - visible[k - 1].0 > step * 1.5 {
                    runs.push(Vec::new());
                }
                if let Some(run) = runs.last_mut() {
                    run.push(format!("{:.1},{:.1}", x(*a), y(*b)));
                }
            }
            for run in runs.iter().filter(|r| !r.is_empty()) {
                let _ = writeln!(
                    out,
                    r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
                    run.join(" ")
                );
            }
            if visible.len() <= 40 {
                for (a, b) in &visible {
                    let _ = writeln!(
                        out,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                        x(*a),
                        y(*b)
                    );
                }
            }
            let lx = LEFT + (i % 3) as f64 * (plot_w / 3.0);
            let ly = bottom + 52.0 + (i / 3) as f64 * 18.0;
            let _ = writeln!(
                out,
                r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="{colour}"/><text x="{:.1}" y="{ly:.1}">{}</text>"#,
                ly - 10.0,
                lx + 16.0,
                escape(name)
            );
        }
        out.push_str("</svg>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_round_to_ticks_a_reader_expects() {
        let lin = Axis::fit([3.0, 97.0].into_iter(), false, true);
        assert_eq!((lin.min, lin.max), (0.0, 100.0));
        assert_eq!(lin.ticks(), [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        let log = Axis::fit([0.0, 120.0, 4_500.0].into_iter(), true, true);
        assert_eq!((log.min, log.max), (100.0, 10_000.0));
        assert_eq!(
            log.ticks(),
            [100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10_000.0]
        );
        assert!((log.frac(1000.0) - 0.5).abs() < 1e-9);
        assert_eq!(label(10_000.0), "10k");
        assert_eq!(label(0.25), "0.25");
        assert_eq!(label(500.0), "500");
    }

    #[test]
    fn a_strip_draws_every_value_and_each_median() {
        let strip = Strip {
            title: "gaps <ms>".into(),
            axis: "ms".into(),
            log: true,
            series: vec!["ferrolb".into(), "MetalLB".into()],
            groups: vec![
                ("kill".into(), vec![vec![100.0, 120.0, 140.0], vec![5000.0]]),
                ("term".into(), vec![vec![0.5, 1.5], vec![]]),
            ],
        };
        let svg = strip.svg();
        assert_eq!(svg.matches("<circle").count(), 6);
        assert!(svg.contains("median 120"));
        assert!(svg.contains("median 5000"));
        assert!(svg.contains("median 1"));
        assert!(svg.contains("not measured"));
        assert!(svg.contains("gaps &lt;ms&gt;"));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn lines_place_points_inside_the_plot() {
        let lines = Lines {
            title: "t".into(),
            x_axis: "Services".into(),
            y_axis: "s".into(),
            log_x: true,
            log_y: false,
            series: vec![
                ("a".into(), vec![(1000.0, 1.0), (10_000.0, 9.0)]),
                ("b".into(), vec![(1000.0, 2.0), (10_000.0, 20.0)]),
            ],
            marks: Vec::new(),
            break_gaps: false,
        };
        let svg = lines.svg();
        assert_eq!(svg.matches("<polyline").count(), 2);
        // A gap in x breaks the line: three points, the third far after, make two runs.
        let gappy = Lines {
            series: vec![(
                "g".into(),
                vec![
                    (0.0, 1.0),
                    (5.0, 1.0),
                    (10.0, 1.0),
                    (60.0, 2.0),
                    (65.0, 2.0),
                ],
            )],
            marks: vec![(30.0, "node-3 cut off".into())],
            break_gaps: true,
            ..Lines::default()
        };
        let svg = gappy.svg();
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("node-3 cut off"));
        // Points of a sweep (unevenly spaced sizes) stay one line.
        let sweep = Lines {
            break_gaps: false,
            ..gappy
        };
        assert_eq!(sweep.svg().matches("<polyline").count(), 1);
        for circle in svg.split("<circle").skip(1) {
            let attr = |name: &str| -> f64 {
                let at = circle.find(&format!("{name}=\"")).expect("attribute") + name.len() + 2;
                circle[at..circle[at..].find('"').expect("quote") + at]
                    .parse()
                    .expect("number")
            };
            assert!((LEFT..=WIDTH - RIGHT).contains(&attr("cx")));
            assert!((TOP..=TOP + 300.0).contains(&attr("cy")));
        }
    }
}
