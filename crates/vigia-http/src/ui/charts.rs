//! Server-rendered SVG charts for the dashboard and reports: horizontal bars (counts by a
//! dimension) and lines (series over days or hours). Each chart is a `<figure>` holding the
//! SVG (`role="img"`, named by its caption) and the same numbers as a table, so a screen
//! reader, a text browser or a copy-and-paste gets every value. No script, no external
//! resource, no inline `style` (the page's Content-Security-Policy allows neither): colours are
//! presentation attributes, and series differ by dash pattern as well as by colour.

/// `s` with the characters HTML gives meaning to replaced by their references.
fn escape(s: &str) -> String {
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

/// One bar: its label and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub label: String,
    pub value: i64,
}

impl Bar {
    pub fn new(label: impl Into<String>, value: i64) -> Self {
        Self {
            label: label.into(),
            value,
        }
    }
}

/// One line: its name and one value per x label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub name: String,
    pub values: Vec<i64>,
}

/// The words around a chart's numbers, in the page's language.
#[derive(Debug, Clone, Copy)]
pub struct Captions<'a> {
    /// What the chart shows (figure caption, SVG title, table caption).
    pub title: &'a str,
    /// The heading of the label column (e.g. "Estado").
    pub key: &'a str,
    /// The heading of the value column for bars (e.g. "Incidentes").
    pub value: &'a str,
    /// The summary of the collapsible table (e.g. "Ver datos").
    pub show_data: &'a str,
    /// Shown instead of a chart when there is nothing to draw.
    pub empty: &'a str,
}

const WIDTH: i64 = 400;
const BAR_ROW: i64 = 30;
const BAR_HEIGHT: i64 = 22;
const LABEL_WIDTH: i64 = 150;
const BAR_COLOUR: &str = "#1f5fa8";
/// Line colours and dash patterns, cycled: distinguishable without colour too.
const LINE_STYLES: [(&str, &str); 4] = [
    ("#1f5fa8", ""),
    ("#b0402a", "6 4"),
    ("#2d7a3a", "2 3"),
    ("#6b4ca5", "10 3 2 3"),
];
/// Longest label drawn in the SVG (the table has the whole text).
const MAX_LABEL_CHARS: usize = 17;

/// A horizontal bar chart of `bars` in their order, with a table of the same numbers.
pub fn bar_chart(id: &str, captions: &Captions<'_>, bars: &[Bar]) -> String {
    let mut out = figure_start(id, captions);
    if bars.is_empty() {
        out.push_str(&format!(
            "<p class=\"chart-empty\">{}</p>",
            escape(captions.empty)
        ));
    } else {
        let max = bars.iter().map(|b| b.value).max().unwrap_or(0).max(1);
        let height = bars.len() as i64 * BAR_ROW + 8;
        out.push_str(&svg_start(id, captions.title, height));
        let span = WIDTH - LABEL_WIDTH - 50;
        for (i, bar) in bars.iter().enumerate() {
            let y = 4 + i as i64 * BAR_ROW;
            let length = (bar.value.max(0) * span) / max;
            out.push_str(&format!(
                "<text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\" font-size=\"15\" fill=\"#222\">{label}</text>\
                 <rect x=\"{LABEL_WIDTH}\" y=\"{y}\" width=\"{length}\" height=\"{BAR_HEIGHT}\" fill=\"{BAR_COLOUR}\"/>\
                 <text x=\"{vx}\" y=\"{ty}\" font-size=\"15\" fill=\"#222\">{value}</text>",
                lx = LABEL_WIDTH - 6,
                ty = y + 16,
                label = escape(&shorten(&bar.label)),
                vx = LABEL_WIDTH + length + 5,
                value = bar.value,
            ));
        }
        out.push_str("</svg>");
    }
    out.push_str(&table_start(captions, &[captions.key, captions.value]));
    for bar in bars {
        out.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
            escape(&bar.label),
            bar.value
        ));
    }
    out.push_str("</tbody></table></details></figure>");
    out
}

/// A line chart: one line per series over the `x` labels (dates or hours), a legend, and a
/// table with one row per x label and one column per series.
pub fn line_chart(id: &str, captions: &Captions<'_>, x: &[String], series: &[Series]) -> String {
    let mut out = figure_start(id, captions);
    let points = x.len();
    if points == 0 || series.is_empty() {
        out.push_str(&format!(
            "<p class=\"chart-empty\">{}</p>",
            escape(captions.empty)
        ));
    } else {
        let (left, right, top, bottom) = (44_i64, 12_i64, 30_i64, 28_i64);
        let height = 230_i64;
        let plot_w = WIDTH - left - right;
        let plot_h = height - top - bottom;
        let max = nice_max(series.iter().flat_map(|s| s.values.iter().copied()).max());
        out.push_str(&svg_start(id, captions.title, height));
        // Axes, grid and y ticks (0, half, max).
        for (value, label) in [(0, 0), (max / 2, max / 2), (max, max)] {
            let y = top + plot_h - value * plot_h / max;
            out.push_str(&format!(
                "<line x1=\"{left}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"#ccc\" stroke-width=\"1\"/>\
                 <text x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\" font-size=\"14\" fill=\"#444\">{label}</text>",
                x2 = left + plot_w,
                tx = left - 6,
                ty = y + 4,
            ));
        }
        let x_at = |i: usize| -> i64 {
            if points == 1 {
                left + plot_w / 2
            } else {
                left + i as i64 * plot_w / (points as i64 - 1)
            }
        };
        // At most about seven x labels, evenly spaced; the last one too when it is not crowded.
        let step = points.div_ceil(6).max(1);
        let last = points - 1;
        let last_far_enough = !last.is_multiple_of(step) && last % step >= step.div_ceil(2);
        for (i, label) in x.iter().enumerate() {
            if i.is_multiple_of(step) || (i == last && last_far_enough) {
                out.push_str(&format!(
                    "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\" fill=\"#444\">{}</text>",
                    x_at(i),
                    height - 8,
                    escape(label)
                ));
            }
        }
        for (n, s) in series.iter().enumerate() {
            let (colour, dash) = LINE_STYLES[n % LINE_STYLES.len()];
            let coords: Vec<String> = (0..points)
                .map(|i| {
                    let v = s.values.get(i).copied().unwrap_or(0).max(0);
                    format!("{},{}", x_at(i), top + plot_h - v * plot_h / max)
                })
                .collect();
            let dash_attr = if dash.is_empty() {
                String::new()
            } else {
                format!(" stroke-dasharray=\"{dash}\"")
            };
            out.push_str(&format!(
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2.5\"{dash_attr}/>",
                coords.join(" ")
            ));
            // Legend: a short sample of the line and the series' name.
            let lx = left + n as i64 * 160;
            out.push_str(&format!(
                "<line x1=\"{lx}\" y1=\"12\" x2=\"{}\" y2=\"12\" stroke=\"{colour}\" stroke-width=\"3\"{dash_attr}/>\
                 <text x=\"{}\" y=\"17\" font-size=\"15\" fill=\"#222\">{}</text>",
                lx + 24,
                lx + 30,
                escape(&shorten(&s.name))
            ));
        }
        out.push_str("</svg>");
    }
    let mut headings = vec![captions.key];
    headings.extend(series.iter().map(|s| s.name.as_str()));
    out.push_str(&table_start(captions, &headings));
    for (i, label) in x.iter().enumerate() {
        out.push_str(&format!("<tr><th scope=\"row\">{}</th>", escape(label)));
        for s in series {
            out.push_str(&format!(
                "<td>{}</td>",
                s.values.get(i).copied().unwrap_or(0)
            ));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></details></figure>");
    out
}

fn figure_start(id: &str, captions: &Captions<'_>) -> String {
    format!(
        "<figure class=\"chart\" id=\"{id}\"><figcaption>{}</figcaption>",
        escape(captions.title),
        id = escape(id)
    )
}

fn svg_start(id: &str, title: &str, height: i64) -> String {
    format!(
        "<svg viewBox=\"0 0 {WIDTH} {height}\" width=\"100%\" role=\"img\" \
         aria-labelledby=\"{id}-title\" xmlns=\"http://www.w3.org/2000/svg\" \
         preserveAspectRatio=\"xMinYMin meet\"><title id=\"{id}-title\">{title}</title>",
        id = escape(id),
        title = escape(title)
    )
}

fn table_start(captions: &Captions<'_>, headings: &[&str]) -> String {
    let mut out = format!(
        "<details class=\"chart-data\"><summary>{}</summary><table><caption>{}</caption><thead><tr>",
        escape(captions.show_data),
        escape(captions.title)
    );
    for h in headings {
        out.push_str(&format!("<th scope=\"col\">{}</th>", escape(h)));
    }
    out.push_str("</tr></thead><tbody>");
    out
}

/// `label` cut to [`MAX_LABEL_CHARS`] characters with an ellipsis.
fn shorten(label: &str) -> String {
    if label.chars().count() <= MAX_LABEL_CHARS {
        label.to_owned()
    } else {
        let mut cut: String = label.chars().take(MAX_LABEL_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

/// The top of a y axis: the largest value rounded up to an even number (so that its half is a
/// whole number), at least 2.
fn nice_max(max: Option<i64>) -> i64 {
    let m = max.unwrap_or(0).max(2);
    m + m % 2
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTIONS: Captions<'static> = Captions {
        title: "Incidentes por estado",
        key: "Estado",
        value: "Incidentes",
        show_data: "Ver datos",
        empty: "Sin datos",
    };

    #[test]
    fn a_bar_chart_draws_one_bar_per_value_scaled_to_the_largest_and_tables_every_number() {
        let html = bar_chart(
            "by-status",
            &CAPTIONS,
            &[
                Bar::new("Nuevo", 4),
                Bar::new("Resuelto", 2),
                Bar::new("Cerrado", 0),
            ],
        );
        assert_eq!(html.matches("<rect ").count(), 3);
        // The largest bar spans the whole plot width, the half one half of it.
        let span = WIDTH - LABEL_WIDTH - 50;
        assert!(html.contains(&format!("width=\"{span}\"")), "{html}");
        assert!(html.contains(&format!("width=\"{}\"", span / 2)), "{html}");
        assert!(html.contains("width=\"0\""));
        for row in [
            "<tr><th scope=\"row\">Nuevo</th><td>4</td></tr>",
            "<tr><th scope=\"row\">Resuelto</th><td>2</td></tr>",
            "<tr><th scope=\"row\">Cerrado</th><td>0</td></tr>",
        ] {
            assert!(html.contains(row), "missing {row} in {html}");
        }
        assert!(html.contains("role=\"img\" aria-labelledby=\"by-status-title\""));
        assert!(html.contains("<title id=\"by-status-title\">Incidentes por estado</title>"));
    }

    #[test]
    fn labels_and_captions_are_escaped_and_long_labels_shortened_only_in_the_drawing() {
        let long = "Fuga de agua <grave> en el pabellón de ingeniería";
        let html = bar_chart("c", &CAPTIONS, &[Bar::new(long, 1)]);
        assert!(!html.contains("<grave>"));
        assert!(
            html.contains(&escape(long)),
            "the table keeps the whole label"
        );
        assert!(html.contains("…</text>"), "the drawing shortens it");
    }

    #[test]
    fn an_empty_chart_says_so_and_draws_nothing() {
        let html = bar_chart("c", &CAPTIONS, &[]);
        assert!(html.contains("<p class=\"chart-empty\">Sin datos</p>"));
        assert!(!html.contains("<svg"));
        let html = line_chart("l", &CAPTIONS, &[], &[]);
        assert!(html.contains("chart-empty"));
        assert!(!html.contains("<svg"));
    }

    #[test]
    fn a_line_chart_has_a_polyline_per_series_through_every_point_and_a_row_per_label() {
        let x: Vec<String> = (1..=3).map(|d| format!("0{d}/03")).collect();
        let series = [
            Series {
                name: "Creados".into(),
                values: vec![0, 4, 2],
            },
            Series {
                name: "Resueltos".into(),
                values: vec![1, 0, 3],
            },
        ];
        let html = line_chart("per-day", &CAPTIONS, &x, &series);
        assert_eq!(html.matches("<polyline ").count(), 2);
        // y axis top is 4: plot height 172 from y = 30; the value 4 sits on the top line.
        assert!(
            html.contains("points=\"44,202 216,30 388,116\""),
            "created line: {html}"
        );
        assert!(
            html.contains("stroke-dasharray=\"6 4\""),
            "second series is dashed"
        );
        assert!(html.contains("<th scope=\"col\">Creados</th><th scope=\"col\">Resueltos</th>"));
        assert!(html.contains("<tr><th scope=\"row\">02/03</th><td>4</td><td>0</td></tr>"));
        assert!(html.contains("<tr><th scope=\"row\">03/03</th><td>2</td><td>3</td></tr>"));
    }

    #[test]
    fn a_long_series_labels_about_seven_points_of_its_axis() {
        let x: Vec<String> = (0..30).map(|d| format!("d{d}")).collect();
        let series = [Series {
            name: "Creados".into(),
            values: (0..30).collect(),
        }];
        let html = line_chart("l", &CAPTIONS, &x, &series);
        let axis_labels = html.matches("font-size=\"13\"").count();
        assert!((7..=9).contains(&axis_labels), "{axis_labels} labels");
        // Every point is still in the table.
        assert_eq!(html.matches("<tr><th scope=\"row\">").count(), 30);
    }

    #[test]
    fn the_y_axis_top_is_even_and_at_least_two() {
        assert_eq!(nice_max(None), 2);
        assert_eq!(nice_max(Some(0)), 2);
        assert_eq!(nice_max(Some(3)), 4);
        assert_eq!(nice_max(Some(10)), 10);
    }
}
