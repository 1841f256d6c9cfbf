//! Line charts as standalone SVG files (no plotting library: a few dozen lines of markup).

use std::fmt::Write;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// CSS colour.
    pub color: String,
    /// Points, x ascending.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series.
    pub fn new(name: &str, color: &str, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            color: color.into(),
            points,
        }
    }
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Top of the y axis (default: the largest value, rounded up).
    pub y_max: Option<f64>,
    /// The lines.
    pub series: Vec<Series>,
    /// Logarithmic x axis (positive x only).
    pub log_x: bool,
}

/// Width of a chart, px.
pub const WIDTH: f64 = 800.0;
/// Height of a chart, px.
pub const HEIGHT: f64 = 450.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" step for about `ticks` ticks over `span`.
fn nice_step(span: f64, ticks: f64) -> f64 {
    let raw = (span / ticks).max(f64::MIN_POSITIVE);
    let power = 10f64.powf(raw.log10().floor());
    let fraction = raw / power;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

impl Chart {
    /// The SVG document.
    pub fn render(&self) -> String {
        let points = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x_min, mut x_max, mut y_top) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
        for &(x, y) in points {
            let x = if self.log_x { x.max(1e-9).log10() } else { x };
            x_min = x_min.min(x);
            x_max = x_max.max(x);
            y_top = y_top.max(y);
        }
        if !x_min.is_finite() {
            (x_min, x_max) = (0.0, 1.0);
        }
        if x_max <= x_min {
            x_max = x_min + 1.0;
        }
        let y_max = self.y_max.unwrap_or_else(|| {
            let step = nice_step(y_top.max(1e-9), 5.0);
            (y_top / step).ceil().max(1.0) * step
        });
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let sx = |x: f64| {
            let x = if self.log_x { x.max(1e-9).log10() } else { x };
            LEFT + (x - x_min) / (x_max - x_min) * plot_w
        };
        let sy = |y: f64| TOP + plot_h - (y / y_max).clamp(0.0, 1.05) * plot_h;
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
            WIDTH / 2.0,
            escape(&self.title)
        );
        // Y grid and ticks.
        let step = nice_step(y_max, 5.0);
        let mut y = 0.0;
        while y <= y_max * 1.0001 {
            let py = sy(y);
            let _ = writeln!(
                svg,
                r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                WIDTH - RIGHT,
                LEFT - 6.0,
                py + 4.0,
                trim(y)
            );
            y += step;
        }
        // X ticks.
        if self.log_x {
            let mut decade = x_min.floor();
            while decade <= x_max.ceil() {
                let value = 10f64.powf(decade);
                let px = sx(value);
                if (LEFT - 0.5..=WIDTH - RIGHT + 0.5).contains(&px) {
                    let _ = writeln!(
                        svg,
                        r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#eee"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                        TOP + plot_h,
                        TOP + plot_h + 18.0,
                        decade_label(value)
                    );
                }
                decade += 1.0;
            }
        } else {
            let step = nice_step(x_max - x_min, 8.0);
            let mut x = (x_min / step).ceil() * step;
            while x <= x_max * 1.0001 {
                let px = sx(x);
                let _ = writeln!(
                    svg,
                    r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#eee"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                    TOP + plot_h,
                    TOP + plot_h + 18.0,
                    trim(x)
                );
                x += step;
            }
        }
        let _ = writeln!(
            svg,
            r#"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="black"/>"#
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + plot_w / 2.0,
            HEIGHT - 15.0,
            escape(&self.x_label)
        );
        let _ = writeln!(
            svg,
            r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">{}</text>"#,
            TOP + plot_h / 2.0,
            TOP + plot_h / 2.0,
            escape(&self.y_label)
        );
        for (index, series) in self.series.iter().enumerate() {
            if !series.points.is_empty() {
                let path: Vec<String> = series
                    .points
                    .iter()
                    .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                    .collect();
                let _ = writeln!(
                    svg,
                    r#"<polyline fill="none" stroke="{}" stroke-width="1.8" points="{}"/>"#,
                    escape(&series.color),
                    path.join(" ")
                );
                // A few measured points: each marked, so the line is not taken for data.
                if series.points.len() <= MARKED_POINTS_MAX {
                    for &(x, y) in &series.points {
                        let _ = writeln!(
                            svg,
                            r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{}"/>"#,
                            sx(x),
                            sy(y),
                            escape(&series.color)
                        );
                    }
                }
            }
            let ly = TOP + 14.0 + index as f64 * 16.0;
            let _ = writeln!(
                svg,
                r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                LEFT + 10.0,
                LEFT + 30.0,
                escape(&series.color),
                LEFT + 36.0,
                ly + 4.0,
                escape(&series.name)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

/// Series with at most this many points have each point marked.
const MARKED_POINTS_MAX: usize = 20;

/// A power of ten as people write it on an axis: 1, 10, 100, 1k, 10k, 100k, 1M, 10M.
fn decade_label(value: f64) -> String {
    match value {
        v if v >= 1e9 => format!("{}G", trim(v / 1e9)),
        v if v >= 1e6 => format!("{}M", trim(v / 1e6)),
        v if v >= 1e3 => format!("{}k", trim(v / 1e3)),
        v => trim(v),
    }
}

fn trim(value: f64) -> String {
    if value.abs() >= 100.0 || value.fract().abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.2}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_lines_legend_and_escapes() {
        let chart = Chart {
            title: "a < b".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            y_max: None,
            series: vec![Series::new("s&t", "red", vec![(0.0, 1.0), (2.0, 3.0)])],
            log_x: false,
        };
        let svg = chart.render();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &lt; b") && svg.contains("s&amp;t"));
        assert!(svg.contains("<polyline"));
        let empty = Chart {
            series: vec![],
            log_x: true,
            ..chart
        };
        assert!(empty.render().contains("</svg>"));
        assert_eq!(
            [1.0, 10.0, 1e3, 1e5, 1e6, 1e7, 0.1].map(decade_label),
            ["1", "10", "1k", "100k", "1M", "10M", "0.1"]
        );
    }
}
