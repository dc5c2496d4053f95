//! The staff pages' words: the UI catalogs (`ui/locales/*.json`, keys under `staff.`) read
//! from code, plus the short durations of the dashboard.

use vigia_domain::Timestamp;

use crate::ui::Lang;
use crate::ui::i18n;

/// The catalog in one language, for code that builds the staff pages' view models.
#[derive(Debug, Clone, Copy)]
pub struct Tr(pub Lang);

impl Tr {
    /// The catalog's text for `key` (the key itself when the catalog lacks it).
    pub fn t<'k>(&self, key: &'k str) -> &'k str {
        i18n::tr(self.0, key)
    }

    /// A moment as the UI writes it (`6 dic 2026, 23:05 UTC`).
    pub fn datetime(&self, at: Timestamp) -> String {
        i18n::datetime(self.0, at)
    }

    /// A duration in seconds, short: `45 s`, `12 min`, `3,5 h` / `3.5 h`, `2,0 d` / `2.0 d`.
    pub fn duration(&self, secs: Option<f64>) -> String {
        let Some(secs) = secs else {
            return "—".to_owned();
        };
        let (value, unit) = if secs < 60.0 {
            return format!("{} s", secs.round() as i64);
        } else if secs < 3600.0 {
            return format!("{} min", (secs / 60.0).round() as i64);
        } else if secs < 86_400.0 {
            (secs / 3600.0, "h")
        } else {
            (secs / 86_400.0, "d")
        };
        let text = format!("{value:.1} {unit}");
        match self.0 {
            Lang::Es => text.replace('.', ","),
            Lang::En => text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_written_the_way_each_language_does() {
        assert_eq!(Tr(Lang::Es).duration(Some(5400.0)), "1,5 h");
        assert_eq!(Tr(Lang::En).duration(Some(5400.0)), "1.5 h");
        assert_eq!(Tr(Lang::En).duration(Some(120.0)), "2 min");
        assert_eq!(Tr(Lang::Es).duration(Some(2.0 * 86_400.0)), "2,0 d");
        assert_eq!(Tr(Lang::En).duration(None), "—");
        assert_eq!(Tr(Lang::Es).t("staff.nav.console"), "Consola");
        assert_eq!(Tr(Lang::En).t("staff.nav.console"), "Console");
    }
}
