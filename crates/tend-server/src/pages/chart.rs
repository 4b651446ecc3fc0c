//! Line and bar charts as inline SVG, drawn on the server: the pages need no JavaScript
//! and load nothing else. Values over time only (the x axis is always time, in UTC); the
//! y axis starts at zero, since every chart here is a size, a duration or a count.
//!
//! The SVG goes through maud like the rest of the page, so labels are escaped.

use chrono::{DateTime, Utc};
use maud::{Markup, html};

use super::layout;

/// The drawing's size in SVG units; it scales to the page's width.
/// Narrow, so that its labels stay legible on a phone, where it is drawn at ~350 px.
const WIDTH: f64 = 420.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 26.0;

/// Distinct on white and for the common colour blindnesses (Okabe-Ito, darkened).
const PALETTE: [&str; 8] = [
    "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#8a6d00", "#56b4e9", "#555555", "#e69f00",
];

/// How values are written on the y axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Bytes,
    Seconds,
    Count,
}

impl Format {
    pub fn label(self, value: f64) -> String {
        match self {
            Format::Bytes => layout::bytes(value),
            Format::Seconds => layout::seconds(value),
            Format::Count => {
                if value.fract() == 0.0 {
                    format!("{value:.0}")
                } else {
                    format!("{value:.1}")
                }
            }
        }
    }
}

/// One line (or one set of bars): a name for the legend and its points in time order.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(DateTime<Utc>, f64)>,
}

/// How the series are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Line,
    Bar,
}

pub struct Chart<'a> {
    /// Read by screen readers and shown as the SVG's tooltip.
    pub title: &'a str,
    pub format: Format,
    pub kind: Kind,
    pub series: &'a [Series],
}

/// A linear map from a domain of values to a range of SVG coordinates. A domain of one
/// value (one point, or every point equal) is widened so nothing divides by zero.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub domain: (f64, f64),
    pub range: (f64, f64),
}

impl Scale {
    pub fn new(domain: (f64, f64), range: (f64, f64)) -> Scale {
        let (mut lo, mut hi) = domain;
        if !lo.is_finite() || !hi.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if hi < lo {
            std::mem::swap(&mut lo, &mut hi);
        }
        if hi - lo < f64::EPSILON * lo.abs().max(1.0) {
            let pad = (lo.abs() * 0.1).max(1.0);
            (lo, hi) = (lo - pad, hi + pad);
        }
        Scale {
            domain: (lo, hi),
            range,
        }
    }

    pub fn map(&self, value: f64) -> f64 {
        let (d0, d1) = self.domain;
        let (r0, r1) = self.range;
        r0 + (value - d0) / (d1 - d0) * (r1 - r0)
    }
}

/// Round tick values (1, 2 or 5 times a power of ten) covering `0..=max`, about `count`
/// of them; the last is at or above `max`, so it becomes the axis' top.
pub fn ticks(max: f64, count: usize) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / count.max(1) as f64;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * power);
    let steps = (max / step).ceil().max(1.0) as usize;
    (0..=steps).map(|i| i as f64 * step).collect()
}

/// Times for the x axis: about `count` evenly spaced between the first and last point.
fn time_ticks(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    if count < 2 || hi <= lo {
        return vec![lo];
    }
    (0..count)
        .map(|i| lo + (hi - lo) * i as f64 / (count - 1) as f64)
        .collect()
}

/// A time as the x axis writes it: with seconds when the chart spans minutes, the time of
/// day when it spans under two days, else the date.
fn time_label(seconds: f64, span: f64) -> String {
    let Some(at) = DateTime::<Utc>::from_timestamp(seconds as i64, 0) else {
        return String::new();
    };
    if span < 600.0 {
        at.format("%H:%M:%S").to_string()
    } else if span < 2.0 * 86_400.0 {
        at.format("%H:%M").to_string()
    } else {
        at.format("%m-%d").to_string()
    }
}

fn epoch(at: &DateTime<Utc>) -> f64 {
    at.timestamp() as f64 + f64::from(at.timestamp_subsec_millis()) / 1000.0
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

/// The chart, or a line saying there is nothing to draw yet.
pub fn render(chart: &Chart<'_>) -> Markup {
    let points = chart.series.iter().flat_map(|s| s.points.iter());
    let (mut t_lo, mut t_hi, mut y_max) = (f64::INFINITY, f64::NEG_INFINITY, 0f64);
    let mut any = false;
    for (at, value) in points {
        if !value.is_finite() {
            continue;
        }
        any = true;
        let t = epoch(at);
        t_lo = t_lo.min(t);
        t_hi = t_hi.max(t);
        y_max = y_max.max(*value);
    }
    if !any {
        return html! { p.empty { "Nothing to draw yet." } };
    }
    if t_hi - t_lo < 1.0 {
        // One time: centre it in an hour.
        t_lo -= 1800.0;
        t_hi += 1800.0;
    }
    let y_ticks = ticks(y_max, 4);
    let y_top = y_ticks.last().copied().unwrap_or(1.0);
    let plot_right = WIDTH - RIGHT;
    let plot_bottom = HEIGHT - BOTTOM;
    let bars = chart.kind == Kind::Bar;
    // Bars need room on both sides of the first and last time.
    let slots = chart
        .series
        .iter()
        .map(|s| s.points.len())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let slot = (plot_right - LEFT) / slots;
    let inset = if bars { slot / 2.0 } else { 0.0 };
    let x = Scale::new((t_lo, t_hi), (LEFT + inset, plot_right - inset));
    let y = Scale::new((0.0, y_top), (plot_bottom, TOP));
    let span = t_hi - t_lo;
    let x_ticks = time_ticks(t_lo, t_hi, 3);
    let bar_width = (slot * 0.8 / chart.series.len().max(1) as f64).clamp(1.0, 28.0);
    let view_box = format!("0 0 {WIDTH} {HEIGHT}");
    html! {
        figure.chart {
            svg xmlns="http://www.w3.org/2000/svg" viewBox=(view_box) role="img"
                aria-label=(chart.title) preserveAspectRatio="xMidYMid meet" {
                title { (chart.title) }
                g.grid {
                    @for tick in &y_ticks {
                        @let at = fmt(y.map(*tick));
                        line x1=(fmt(LEFT)) x2=(fmt(plot_right)) y1=(at) y2=(at) stroke="#e3e3e3" {}
                        text x=(fmt(LEFT - 6.0)) y=(at) text-anchor="end" dominant-baseline="middle"
                            font-size="12" fill="#555" { (chart.format.label(*tick)) }
                    }
                    line x1=(fmt(LEFT)) x2=(fmt(LEFT)) y1=(fmt(TOP)) y2=(fmt(plot_bottom)) stroke="#999" {}
                    line x1=(fmt(LEFT)) x2=(fmt(plot_right)) y1=(fmt(plot_bottom)) y2=(fmt(plot_bottom)) stroke="#999" {}
                    @for (i, tick) in x_ticks.iter().enumerate() {
                        @let anchor = if x_ticks.len() == 1 { "middle" } else if i == 0 { "start" } else if i + 1 == x_ticks.len() { "end" } else { "middle" };
                        text x=(fmt(x.map(*tick))) y=(fmt(HEIGHT - 8.0)) text-anchor=(anchor)
                            font-size="12" fill="#555" { (time_label(*tick, span)) }
                    }
                }
                @for (i, series) in chart.series.iter().enumerate() {
                    @let colour = PALETTE[i % PALETTE.len()];
                    @let shown: Vec<(f64, f64)> = series.points.iter()
                        .filter(|(_, v)| v.is_finite())
                        .map(|(at, v)| (x.map(epoch(at)), y.map(*v)))
                        .collect();
                    @if bars {
                        @let offset = (i as f64 - (chart.series.len() as f64 - 1.0) / 2.0) * bar_width;
                        g fill=(colour) {
                            @for (px, py) in &shown {
                                rect x=(fmt(px + offset - bar_width / 2.0)) y=(fmt(*py))
                                    width=(fmt(bar_width)) height=(fmt((plot_bottom - py).max(0.0))) {}
                            }
                        }
                    } @else if shown.len() == 1 {
                        circle cx=(fmt(shown[0].0)) cy=(fmt(shown[0].1)) r="3.5" fill=(colour) {}
                    } @else {
                        path d=(line_path(&shown)) fill="none" stroke=(colour) stroke-width="2"
                            stroke-linejoin="round" {}
                    }
                }
            }
            @if chart.series.len() > 1 || chart.series.first().is_some_and(|s| !s.label.is_empty()) {
                figcaption {
                    @for (i, series) in chart.series.iter().enumerate() {
                        span.key {
                            svg width="10" height="10" viewBox="0 0 10 10" aria-hidden="true" {
                                rect width="10" height="10" fill=(PALETTE[i % PALETTE.len()]) {}
                            }
                            " " (series.label)
                        }
                    }
                }
            }
        }
    }
}

/// `M x y L x y ...` through the points.
fn line_path(points: &[(f64, f64)]) -> String {
    let mut d = String::new();
    for (i, (px, py)) in points.iter().enumerate() {
        d.push(if i == 0 { 'M' } else { 'L' });
        d.push_str(&fmt(*px));
        d.push(' ');
        d.push_str(&fmt(*py));
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_790_000_000 + seconds, 0).unwrap()
    }

    fn chart(series: &[Series], kind: Kind) -> String {
        render(&Chart {
            title: "t",
            format: Format::Bytes,
            kind,
            series,
        })
        .into_string()
    }

    #[test]
    fn a_scale_maps_its_domain_onto_its_range_inverted_or_not() {
        let s = Scale::new((0.0, 100.0), (200.0, 10.0));
        assert_eq!(s.map(0.0), 200.0);
        assert_eq!(s.map(100.0), 10.0);
        assert_eq!(s.map(50.0), 105.0);
        let s = Scale::new((10.0, 20.0), (0.0, 100.0));
        assert_eq!(s.map(15.0), 50.0);
    }

    #[test]
    fn a_scale_of_one_value_or_nonsense_is_widened_not_divided_by_zero() {
        for domain in [(5.0, 5.0), (0.0, 0.0), (f64::NAN, 1.0), (1e12, 1e12)] {
            let s = Scale::new(domain, (0.0, 100.0));
            let mid = s.map((s.domain.0 + s.domain.1) / 2.0);
            assert!(
                mid.is_finite() && (mid - 50.0).abs() < 1e-6,
                "{domain:?}: {mid}"
            );
        }
        // A reversed domain is put in order.
        assert_eq!(Scale::new((10.0, 0.0), (0.0, 1.0)).domain, (0.0, 10.0));
    }

    #[test]
    fn ticks_are_round_and_cover_the_maximum() {
        assert_eq!(ticks(100.0, 4), vec![0.0, 50.0, 100.0]);
        assert_eq!(ticks(7.0, 4), vec![0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(ticks(1_000_000.0, 4), vec![0.0, 500_000.0, 1_000_000.0]);
        let t = ticks(0.37, 4);
        assert_eq!(t.first(), Some(&0.0));
        assert!(*t.last().unwrap() >= 0.37 && t.len() <= 6, "{t:?}");
        // Nothing, or nonsense, still gives an axis.
        assert_eq!(ticks(0.0, 4), vec![0.0, 0.5, 1.0]);
        assert_eq!(ticks(f64::NAN, 4), vec![0.0, 0.5, 1.0]);
    }

    #[test]
    fn an_empty_chart_says_so_and_draws_nothing() {
        for series in [
            vec![],
            vec![Series {
                label: "x".into(),
                points: vec![],
            }],
            vec![Series {
                label: "x".into(),
                points: vec![(at(0), f64::NAN)],
            }],
        ] {
            let svg = chart(&series, Kind::Line);
            assert!(!svg.contains("<svg"), "{svg}");
            assert!(svg.contains("Nothing to draw yet"), "{svg}");
        }
    }

    #[test]
    fn one_point_is_a_dot_in_the_middle_of_the_time_axis() {
        let series = [Series {
            label: String::new(),
            points: vec![(at(0), 2048.0)],
        }];
        let svg = chart(&series, Kind::Line);
        assert!(svg.contains("<circle"), "{svg}");
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        let middle = fmt(LEFT + (WIDTH - RIGHT - LEFT) / 2.0);
        assert!(svg.contains(&format!("cx=\"{middle}\"")), "{svg}");
        let bars = chart(&series, Kind::Bar);
        assert!(bars.contains("<rect"), "{bars}");
        assert!(!bars.contains("NaN"), "{bars}");
    }

    #[test]
    fn a_line_goes_through_every_point_from_left_to_right() {
        let series = [Series {
            label: "db".into(),
            points: vec![(at(0), 0.0), (at(60), 50.0), (at(120), 100.0)],
        }];
        let svg = chart(&series, Kind::Line);
        // y: 0 at the bottom, 100 (the top tick) at the top.
        let d = format!(
            "M{} {}L{} {}L{} {}",
            fmt(LEFT),
            fmt(HEIGHT - BOTTOM),
            fmt(LEFT + (WIDTH - RIGHT - LEFT) / 2.0),
            fmt((HEIGHT - BOTTOM + TOP) / 2.0),
            fmt(WIDTH - RIGHT),
            fmt(TOP)
        );
        assert!(svg.contains(&format!("d=\"{d}\"")), "{d} not in {svg}");
        // Axis labels in the chart's format.
        assert!(svg.contains(">100 B<"), "{svg}");
    }

    #[test]
    fn bars_stand_on_the_axis_one_per_point() {
        let series = [Series {
            label: "stored".into(),
            points: vec![(at(0), 10.0), (at(10), 20.0), (at(20), 5.0)],
        }];
        let svg = chart(&series, Kind::Bar);
        assert_eq!(
            svg.matches("<rect").count(),
            3 + 1,
            "three bars and a legend key: {svg}"
        );
        assert!(!svg.contains("height=\"-"), "{svg}");
    }

    #[test]
    fn labels_and_titles_are_escaped() {
        let series = [
            Series {
                label: "<script>alert(1)</script>".into(),
                points: vec![(at(0), 1.0), (at(5), 2.0)],
            },
            Series {
                label: "\"quoted\" & more".into(),
                points: vec![(at(0), 1.0)],
            },
        ];
        let svg = render(&Chart {
            title: "a <b> title",
            format: Format::Count,
            kind: Kind::Line,
            series: &series,
        })
        .into_string();
        assert!(!svg.contains("<script>") && !svg.contains("<b>"), "{svg}");
        assert!(
            svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{svg}"
        );
        assert!(svg.contains("&quot;quoted&quot; &amp; more"), "{svg}");
        assert!(svg.contains("aria-label=\"a &lt;b&gt; title\""), "{svg}");
    }

    #[test]
    fn time_labels_follow_the_span() {
        assert_eq!(time_label(0.0, 3600.0), "00:00");
        assert_eq!(time_label(61.0, 120.0), "00:01:01");
        assert_eq!(time_label(86_400.0 * 40.0, 86_400.0 * 30.0), "02-10");
    }
}
