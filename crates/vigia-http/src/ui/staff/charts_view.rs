//! The staff pages' charts: [`crate::ui::charts`] with captions from the staff catalog.

use super::Tr;
use crate::ui::charts::{Bar, Captions, Series, bar_chart, line_chart};

/// A bar chart titled by catalog key `title`, its labels headed by catalog key `key`.
pub fn bars(t: Tr, id: &str, title: &str, key: &str, items: &[Bar]) -> String {
    bar_chart(
        id,
        &Captions {
            title: t.t(title),
            key: t.t(key),
            value: t.t("staff.common.incidents"),
            show_data: t.t("staff.common.show_data"),
            empty: t.t("staff.common.no_data"),
        },
        items,
    )
}

/// A line chart titled by catalog key `title`, its x labels headed by catalog key `key`.
pub fn lines(t: Tr, id: &str, title: &str, key: &str, x: &[String], series: &[Series]) -> String {
    line_chart(
        id,
        &Captions {
            title: t.t(title),
            key: t.t(key),
            value: t.t("staff.common.incidents"),
            show_data: t.t("staff.common.show_data"),
            empty: t.t("staff.common.no_data"),
        },
        x,
        series,
    )
}
