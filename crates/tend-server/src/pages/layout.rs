//! The frame every page shares (head, inline style, navigation), the sections for errors
//! and empty tables, and how numbers and times are written.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

/// The pages, in the navigation's order: path and name.
pub const NAV: [(&str, &str); 6] = [
    ("/", "Overview"),
    ("/backups", "Backups"),
    ("/checks", "Checks"),
    ("/growth", "Growth"),
    ("/activity", "Activity"),
    ("/schedules", "Schedules"),
];

/// Small, and inline: a phone on a slow link gets the page in one response.
const STYLE: &str = "\
*{box-sizing:border-box}\
body{margin:0;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d1d1f;background:#f6f6f4}\
header{background:#20303c;color:#fff;padding:.5rem .8rem}\
header b{margin-right:.8rem}\
nav{display:flex;flex-wrap:wrap;gap:.2rem .9rem}\
nav a{color:#cfe3f2;text-decoration:none;padding:.2rem 0}\
nav a[aria-current]{color:#fff;border-bottom:2px solid #fff}\
main{padding:.6rem .8rem 2rem;max-width:72rem;margin:0 auto}\
h1{font-size:1.35rem;margin:.6rem 0}\
h2{font-size:1.1rem;margin:1.3rem 0 .4rem}\
h3{font-size:1rem;margin:.8rem 0 .2rem}\
section>h2:first-child{margin-top:.2rem}\
section{background:#fff;border:1px solid #e2e2de;border-radius:6px;padding:.6rem .8rem;margin:.7rem 0}\
.scroll{overflow-x:auto}\
table{border-collapse:collapse;width:100%;font-size:.9rem}\
th,td{text-align:left;padding:.3rem .45rem;border-bottom:1px solid #ecece8;vertical-align:top}\
th{font-weight:600;color:#444;white-space:nowrap}\
td.n{text-align:right;white-space:nowrap}\
code,pre{font:.85rem ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f1f1ee;border-radius:3px;padding:.05rem .25rem;overflow-wrap:anywhere}\
pre{white-space:pre-wrap;word-break:break-word;padding:.4rem;margin:.2rem 0}\
.ok,.succeeded,.leader{color:#17803d}\
.warning,.running,.requested,.standby,.skipped,.info{color:#9a6700}\
.critical,.failed,.error,.abandoned,.unreachable,.cancelled{color:#c62828}\
.unknown{color:#6b4fa0}\
.muted,.empty{color:#666}\
.err{border-color:#e6b3b3;background:#fff6f6}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem .8rem;margin:0}\
dt{color:#555}dd{margin:0}\
figure.chart{margin:.4rem 0}\
figure.chart>svg{width:100%;max-width:44rem;height:auto;display:block}\
figcaption{font-size:.8rem;color:#444;display:flex;flex-wrap:wrap;gap:.2rem .8rem}\
.key svg{display:inline;vertical-align:baseline}\
ul.tree{list-style:none;padding-left:1rem;margin:.2rem 0}\
.item{border-top:1px solid #ecece8;padding:.3rem 0}.item p{margin:.15rem 0}\
main p,dd{overflow-wrap:anywhere}\
";

/// A whole page: `title` is the tab's title and the page's heading.
pub fn page(title: &str, path: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // No request for /favicon.ico.
                link rel="icon" href="data:,";
                title { (title) " · tend" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                header {
                    nav aria-label="pages" {
                        b { "tend" }
                        @for (href, name) in NAV {
                            @if href == path {
                                a href=(href) aria-current="page" { (name) }
                            } @else {
                                a href=(href) { (name) }
                            }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// What could not be read, in place of the section that needed it.
pub fn error(what: &str, message: &str) -> Markup {
    html! {
        section.err {
            p { strong.error { "Could not read " (what) ": " } (message) }
        }
    }
}

/// An empty list: nothing was recorded yet (or nothing matches now).
pub fn empty(text: &str) -> Markup {
    html! { p.empty { (text) } }
}

/// Text whose `backquoted` parts are code (the catalog's remedies are written so), each
/// part escaped.
pub fn with_code(text: &str) -> Markup {
    html! {
        @for (i, part) in text.split('`').enumerate() {
            @if i % 2 == 1 { code { (part) } } @else { (part) }
        }
    }
}

/// Bytes as a person reads them (decimal units, as `tend backup list`).
pub fn bytes(value: f64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = value;
    let mut unit = 0;
    while v.abs() >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 || v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A duration in seconds, short.
pub fn seconds(s: f64) -> String {
    if !s.is_finite() {
        return "?".to_string();
    }
    if s < 10.0 && s.fract() != 0.0 {
        format!("{s:.1} s")
    } else if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 172_800.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} days", s / 86_400.0)
    }
}

/// A moment, in UTC, to the second.
pub fn time(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// How long ago (or, for a future time, in how long).
pub fn relative(at: &DateTime<Utc>, now: DateTime<Utc>) -> String {
    let delta = (now - *at).num_milliseconds() as f64 / 1000.0;
    if delta >= 0.0 {
        format!("{} ago", seconds(delta.round()))
    } else {
        format!("in {}", seconds((-delta).round()))
    }
}

/// A time, short (the time of day when it is today's), with how long ago it was; the full
/// time is the element's title and `datetime`.
pub fn when(at: &DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    let short = if at.date_naive() == now.date_naive() {
        at.format("%H:%M:%S UTC").to_string()
    } else {
        at.format("%Y-%m-%d %H:%M UTC").to_string()
    };
    html! {
        time datetime=(at.to_rfc3339()) title=(time(at)) { (short) }
        span.muted { " (" (relative(at, now)) ")" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_seconds_read_well() {
        assert_eq!(bytes(0.0), "0 B");
        assert_eq!(bytes(999.0), "999 B");
        assert_eq!(bytes(1500.0), "1.5 kB");
        assert_eq!(bytes(2_000_000.0), "2 MB");
        assert_eq!(seconds(0.3), "0.3 s");
        assert_eq!(seconds(42.0), "42 s");
        assert_eq!(seconds(600.0), "10 min");
        assert_eq!(seconds(f64::NAN), "?");
    }

    #[test]
    fn backquotes_become_code_and_the_rest_is_escaped() {
        assert_eq!(
            with_code("Run `SELECT 1 < 2;` then <b>wait</b>").into_string(),
            "Run <code>SELECT 1 &lt; 2;</code> then &lt;b&gt;wait&lt;/b&gt;"
        );
        assert_eq!(with_code("no code").into_string(), "no code");
    }

    #[test]
    fn every_page_links_every_other_and_marks_itself() {
        let html = page("Checks", "/checks", html! { p { "x" } }).into_string();
        for (href, _) in NAV {
            assert!(html.contains(&format!("href=\"{href}\"")), "{href}");
        }
        assert!(html.contains("<a href=\"/checks\" aria-current=\"page\">"));
        assert!(html.contains("name=\"viewport\""));
        assert!(!html.contains("http://") && !html.contains("https://"));
    }
}
