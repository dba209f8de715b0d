//! Small self-contained SVG line charts for the HTML reports: axes with round ticks, series as
//! polylines with point markers, horizontal and vertical reference lines (the SLO, the chosen
//! capacity). Plain strings, no JavaScript, no fonts or files fetched: the report must open
//! offline in any browser.

use std::fmt::Write;

/// One line on a chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub points: Vec<(f64, f64)>,
}

/// A dashed reference line with a label.
#[derive(Debug, Clone)]
pub struct Rule {
    pub value: f64,
    pub label: String,
    pub color: &'static str,
}

/// A chart to draw.
#[derive(Debug, Clone, Default)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub h_rules: Vec<Rule>,
    pub v_rules: Vec<Rule>,
    /// Multiply y values by this for the tick labels (e.g. 1000 to show seconds as ms).
    pub y_scale: f64,
}

const W: f64 = 720.0;
const H: f64 = 360.0;
const L: f64 = 70.0;
const R: f64 = 150.0;
const T: f64 = 36.0;
const B: f64 = 50.0;

/// Colours that stay distinguishable for common colour-vision deficiencies.
pub const PALETTE: [&str; 6] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00",
];

/// Escape text for XML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Round tick step for a span, aiming at about `n` ticks.
fn nice_step(span: f64, n: f64) -> f64 {
    let raw = span / n;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn fmt_tick(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.0}").trim_end_matches(".0").to_string()
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

impl Chart {
    /// The chart as an `<svg>` element.
    pub fn render(&self) -> String {
        let scale = if self.y_scale > 0.0 {
            self.y_scale
        } else {
            1.0
        };
        let finite = |v: &f64| v.is_finite();
        let xs: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .chain(self.v_rules.iter().map(|r| r.value))
            .filter(finite)
            .collect();
        let ys: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .chain(self.h_rules.iter().map(|r| r.value))
            .filter(finite)
            .collect();
        let mut o = String::new();
        let _ = write!(
            o,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{}">"#,
            esc(&self.title)
        );
        let _ = write!(
            o,
            r#"<text x="{}" y="22" font-size="15" font-weight="bold" text-anchor="middle">{}</text>"#,
            L + (W - L - R) / 2.0,
            esc(&self.title)
        );
        if xs.is_empty() || ys.is_empty() {
            let _ = write!(
                o,
                r##"<text x="{}" y="{}" text-anchor="middle" fill="#666">no data</text></svg>"##,
                W / 2.0,
                H / 2.0
            );
            return o;
        }
        let (mut x0, mut x1) = bounds(&xs);
        let (_, mut y1) = bounds(&ys);
        let mut y0 = 0.0f64.min(bounds(&ys).0);
        if x1 <= x0 {
            x0 -= 1.0;
            x1 += 1.0;
        }
        if y1 <= y0 {
            y1 = y0 + 1.0;
        }
        let ystep = nice_step(y1 - y0, 5.0);
        y1 = (y1 / ystep).ceil() * ystep;
        y0 = (y0 / ystep).floor() * ystep;
        let xstep = nice_step(x1 - x0, 6.0);
        let px = |x: f64| L + (x - x0) / (x1 - x0) * (W - L - R);
        let py = |y: f64| H - B - (y - y0) / (y1 - y0) * (H - T - B);

        // Grid and ticks.
        let mut y = y0;
        while y <= y1 + ystep * 1e-9 {
            let _ = write!(
                o,
                r##"<line x1="{L}" x2="{}" y1="{py:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
                W - R,
                L - 6.0,
                py(y) + 4.0,
                fmt_tick(y * scale),
                py = py(y)
            );
            y += ystep;
        }
        let mut x = (x0 / xstep).ceil() * xstep;
        while x <= x1 + xstep * 1e-9 {
            let _ = write!(
                o,
                r##"<line y1="{}" y2="{}" x1="{px:.1}" x2="{px:.1}" stroke="#eee"/><text x="{px:.1}" y="{}" font-size="11" text-anchor="middle">{}</text>"##,
                T,
                H - B,
                H - B + 16.0,
                fmt_tick(x),
                px = px(x)
            );
            x += xstep;
        }
        let _ = write!(
            o,
            r##"<line x1="{L}" x2="{L}" y1="{T}" y2="{}" stroke="#333"/><line x1="{L}" x2="{}" y1="{}" y2="{}" stroke="#333"/>"##,
            H - B,
            W - R,
            H - B,
            H - B
        );
        let _ = write!(
            o,
            r#"<text x="{}" y="{}" font-size="12" text-anchor="middle">{}</text>"#,
            L + (W - L - R) / 2.0,
            H - 12.0,
            esc(&self.x_label)
        );
        let _ = write!(
            o,
            r#"<text transform="translate(16 {}) rotate(-90)" font-size="12" text-anchor="middle">{}</text>"#,
            T + (H - T - B) / 2.0,
            esc(&self.y_label)
        );
        // Reference lines.
        for r in &self.h_rules {
            if r.value.is_finite() {
                let _ = write!(
                    o,
                    r#"<line x1="{L}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="{c}" stroke-dasharray="6 4" stroke-width="1.5"/><text x="{}" y="{:.1}" font-size="11" fill="{c}">{}</text>"#,
                    W - R,
                    W - R + 4.0,
                    py(r.value) + 4.0,
                    esc(&r.label),
                    y = py(r.value),
                    c = r.color
                );
            }
        }
        for r in &self.v_rules {
            if r.value.is_finite() {
                let _ = write!(
                    o,
                    r#"<line y1="{T}" y2="{}" x1="{x:.1}" x2="{x:.1}" stroke="{c}" stroke-dasharray="6 4" stroke-width="1.5"/><text x="{:.1}" y="{}" font-size="11" fill="{c}">{}</text>"#,
                    H - B,
                    px(r.value) + 4.0,
                    // Bottom of the plot: the top right is where the SLO label sits.
                    H - B - 6.0,
                    esc(&r.label),
                    x = px(r.value),
                    c = r.color
                );
            }
        }
        // Series and legend.
        for (i, s) in self.series.iter().enumerate() {
            let pts: Vec<String> = s
                .points
                .iter()
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .map(|p| format!("{:.1},{:.1}", px(p.0), py(p.1)))
                .collect();
            if pts.len() > 1 {
                let _ = write!(
                    o,
                    r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
                    s.color,
                    pts.join(" ")
                );
            }
            if pts.len() <= 60 {
                for p in &pts {
                    let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
                    let _ = write!(
                        o,
                        r#"<circle cx="{cx}" cy="{cy}" r="3" fill="{}"/>"#,
                        s.color
                    );
                }
            }
            let ly = T + 30.0 + i as f64 * 18.0;
            let _ = write!(
                o,
                r#"<rect x="{}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{}" font-size="12">{}</text>"#,
                W - R + 8.0,
                ly - 10.0,
                s.color,
                W - R + 24.0,
                ly,
                esc(&s.name)
            );
        }
        o.push_str("</svg>");
        o
    }
}

fn bounds(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_balanced_svg() {
        let c = Chart {
            title: "p99 <vs> qps".into(),
            x_label: "qps".into(),
            y_label: "ms".into(),
            series: vec![Series {
                name: "p99".into(),
                color: PALETTE[0],
                points: vec![(10.0, 0.01), (20.0, 0.02), (40.0, f64::NAN)],
            }],
            h_rules: vec![Rule {
                value: 0.015,
                label: "SLO".into(),
                color: "#c00",
            }],
            v_rules: vec![],
            y_scale: 1000.0,
        };
        let s = c.render();
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        assert!(s.contains("p99 &lt;vs&gt; qps"));
        assert!(s.contains("<polyline"));
        assert!(!s.contains("NaN"));
        let empty = Chart::default().render();
        assert!(empty.contains("no data"));
        assert_eq!(nice_step(97.0, 5.0), 20.0);
    }
}
