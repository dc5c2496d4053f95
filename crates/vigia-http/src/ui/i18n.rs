//! The UI's words: one catalog per language (`locales/es.json`, `locales/en.json`, flat
//! `key → text`), compiled into the binary; localized dates and numbers; and the domain's
//! field errors (written in English by `vigia-domain`) in the page's language.
//!
//! A key missing from a catalog shows as the key itself; a test checks that both catalogs
//! have the same keys and that every key the templates and the code use exists.

use std::collections::HashMap;
use std::sync::LazyLock;

use vigia_domain::Timestamp;

pub use vigia_notify::templates::Lang;

static ES: LazyLock<HashMap<String, String>> =
    LazyLock::new(|| load(include_str!("locales/es.json")));
static EN: LazyLock<HashMap<String, String>> =
    LazyLock::new(|| load(include_str!("locales/en.json")));

fn load(raw: &str) -> HashMap<String, String> {
    match serde_json::from_str(raw) {
        Ok(map) => map,
        Err(error) => {
            // The catalogs are compiled in and checked by a test: this is a build mistake.
            tracing::error!(%error, "a UI catalog is not a flat JSON object of strings");
            HashMap::new()
        }
    }
}

fn catalog(lang: Lang) -> &'static HashMap<String, String> {
    match lang {
        Lang::Es => &ES,
        Lang::En => &EN,
    }
}

/// The text of `key` in `lang` (the key itself when the catalog lacks it).
pub fn tr(lang: Lang, key: &str) -> &str {
    lookup(lang, key).unwrap_or(key)
}

/// The text of `key` in `lang`, if the catalog has it.
pub fn lookup(lang: Lang, key: &str) -> Option<&'static str> {
    catalog(lang).get(key).map(String::as_str)
}

/// `tr` with `{name}` placeholders replaced.
pub fn tr_with(lang: Lang, key: &str, args: &[(&str, &str)]) -> String {
    let mut out = tr(lang, key).to_owned();
    for (name, value) in args {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

const MONTHS_ES: [&str; 12] = [
    "ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic",
];
const MONTHS_EN: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A moment as people read it: `6 dic 2026, 23:05 UTC` / `6 Dec 2026, 23:05 UTC`.
pub fn datetime(lang: Lang, at: Timestamp) -> String {
    let t = at.to_offset_date_time();
    let month = usize::from(u8::from(t.month())) - 1;
    let name = match lang {
        Lang::Es => MONTHS_ES[month],
        Lang::En => MONTHS_EN[month],
    };
    format!(
        "{} {name} {}, {:02}:{:02} UTC",
        t.day(),
        t.year(),
        t.hour(),
        t.minute()
    )
}

/// A whole number with the language's thousands separator: `12.345` / `12,345`.
pub fn number(lang: Lang, n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let sep = match lang {
        Lang::Es => '.',
        Lang::En => ',',
    };
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(c);
    }
    out
}

/// A field error of the domain, in `lang`. The domain writes its messages in English with
/// numbers in them ("must be at most 200 characters"); the catalog holds each message under
/// `error.` + the message with every number replaced by `#`, and the Spanish text puts the
/// numbers back in the same order. A message the catalog lacks is shown as the domain wrote it.
pub fn field_message(lang: Lang, message: &str) -> String {
    let mut pattern = String::with_capacity(message.len());
    let mut numbers: Vec<String> = Vec::new();
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            let mut n = c.to_string();
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                n.push(d);
                chars.next();
            }
            numbers.push(n);
            pattern.push('#');
        } else {
            pattern.push(c);
        }
    }
    let key = format!("error.{pattern}");
    let text = match catalog(lang).get(&key) {
        Some(text) => {
            let mut out = String::with_capacity(text.len());
            let mut numbers = numbers.iter();
            for c in text.chars() {
                match c {
                    '#' => out.push_str(numbers.next().map_or("#", String::as_str)),
                    c => out.push(c),
                }
            }
            out
        }
        None => message.to_owned(),
    };
    capitalize(&text)
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn keys(raw: &str) -> BTreeSet<String> {
        let map: HashMap<String, String> = serde_json::from_str(raw).expect("a flat catalog");
        map.into_keys().collect()
    }

    #[test]
    fn both_catalogs_have_the_same_keys() {
        let es = keys(include_str!("locales/es.json"));
        let en = keys(include_str!("locales/en.json"));
        let only_es: Vec<_> = es.difference(&en).collect();
        let only_en: Vec<_> = en.difference(&es).collect();
        assert!(
            only_es.is_empty() && only_en.is_empty(),
            "es only: {only_es:?}; en only: {only_en:?}"
        );
    }

    #[test]
    fn every_key_the_templates_and_the_code_use_is_in_the_catalog() {
        let es = keys(include_str!("locales/es.json"));
        let mut missing = Vec::new();
        let roots = [
            concat!(env!("CARGO_MANIFEST_DIR"), "/templates"),
            concat!(env!("CARGO_MANIFEST_DIR"), "/src/ui"),
        ];
        let mut files = Vec::new();
        let mut stack: Vec<std::path::PathBuf> = roots.iter().map(Into::into).collect();
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("readable dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "html" || e == "rs") {
                    files.push(path);
                }
            }
        }
        assert!(files.len() > 5, "templates and sources found: {files:?}");
        // Every string literal shaped like a key (`area.name`, an area the catalogs use)
        // must be a key: templates pass keys to `c.t`, `c.tw` and the form macros, code to
        // `tr`, `tr_with` and `lookup`.
        let areas: BTreeSet<&str> = es.iter().filter_map(|k| k.split('.').next()).collect();
        let mut used = 0;
        for file in files {
            let text = std::fs::read_to_string(&file).expect("readable file");
            for literal in text.split('"').skip(1).step_by(2) {
                let Some((area, rest)) = literal.split_once('.') else {
                    continue;
                };
                let shaped = !rest.is_empty()
                    && !rest.contains(['{', '}', '/', '\\', '(', '"'])
                    && !rest.ends_with('.')
                    && area.chars().all(|c| c.is_ascii_lowercase());
                if !shaped || !areas.contains(area) {
                    continue;
                }
                used += 1;
                if !es.contains(literal) {
                    missing.push(format!("{}: {literal}", file.display()));
                }
            }
        }
        assert!(used > 20, "keys in use: {used}");
        assert!(
            missing.is_empty(),
            "keys missing from the catalogs: {missing:#?}"
        );
    }

    #[test]
    fn dates_and_numbers_follow_the_language() {
        let at = Timestamp::parse_rfc3339("2026-12-06T23:05:09Z").expect("a date");
        assert_eq!(datetime(Lang::Es, at), "6 dic 2026, 23:05 UTC");
        assert_eq!(datetime(Lang::En, at), "6 Dec 2026, 23:05 UTC");
        assert_eq!(number(Lang::Es, 1234567), "1.234.567");
        assert_eq!(number(Lang::En, 1234567), "1,234,567");
        assert_eq!(number(Lang::En, -999), "-999");
    }

    #[test]
    fn domain_messages_read_in_spanish_with_their_numbers() {
        assert_eq!(
            field_message(Lang::Es, "must be at most 200 characters"),
            "Debe tener como máximo 200 caracteres"
        );
        assert_eq!(
            field_message(Lang::En, "must be at most 200 characters"),
            "Must be at most 200 characters"
        );
        assert_eq!(
            field_message(Lang::Es, "some new rule 7"),
            "Some new rule 7"
        );
    }
}
