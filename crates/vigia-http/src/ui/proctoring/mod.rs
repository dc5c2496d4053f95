//! The proctoring pages (`docs/media.md`): `/proctoring` lists exams and creates one
//! ([`exams`]); `/proctoring/exams/{id}` shows an exam's participants, adds one and enrolls a
//! reference photo ([`participants`]); `/proctoring/exams/{id}/live` is the proctor's live view
//! — participants with their latest status, the alert timeline, the captures with their face
//! boxes drawn over them, a review form on each alert — whose body the page's script fetches
//! again whenever the stream announces a `media.analyzed` or `proctoring.reviewed` event on
//! `exam:{id}` ([`live`]).
//!
//! Like the staff pages, every page reads and changes through the API's own handler functions
//! (`routes::proctoring::*`), called with the form's values as their wire types: the same
//! validation, authorization and refusals (a reference without a face is the API's 422, shown
//! next to the file field).

pub mod exams;
pub mod live;
pub mod participants;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::auth::Auth;
use crate::state::AppState;
use crate::ui::Lang;
use crate::ui::i18n;
use crate::ui::staff::Staff;

pub fn router(max_upload_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/proctoring", get(exams::page).post(exams::create))
        .route("/proctoring/exams/{id}", get(participants::page))
        .route(
            "/proctoring/exams/{id}/participants",
            post(participants::add),
        )
        .route(
            "/proctoring/exams/{id}/participants/{participant}/reference",
            post(participants::enroll).layer(DefaultBodyLimit::max(max_upload_bytes + 64 * 1024)),
        )
        .route("/proctoring/exams/{id}/live", get(live::page))
        .route("/proctoring/exams/{id}/live/body", get(live::body))
        .route("/proctoring/captures/{id}/image", get(live::image))
        .route("/proctoring/captures/{id}/review", post(live::review))
}

/// The viewer as the API's caller.
fn auth_of(viewer: &Staff) -> Auth {
    Auth(viewer.principal.clone())
}

/// A reason code (`face_mismatch`, `no_face`, ...) in words (`proctoring.reason.*`).
pub fn reason_label(lang: Lang, code: &str) -> String {
    let key = format!("proctoring.reason.{code}");
    let text = i18n::tr(lang, &key);
    if text == key {
        code.to_owned()
    } else {
        text.to_owned()
    }
}

/// A capture's status (`OK`, `ALERT`, `ALERT_FINAL`, `queued`) in words.
pub fn status_label(lang: Lang, status: &str) -> String {
    let key = format!("proctoring.status.{status}");
    let text = i18n::tr(lang, &key);
    if text == key {
        status.to_owned()
    } else {
        text.to_owned()
    }
}

/// The API's refusal of a reference photo (`"face_too_small: Face too small to verify (45 px,
/// at least 80 px needed)"`) in the viewer's language: the catalog's
/// `proctoring.refused.<code>` with each `#` replaced by the message's numbers in order. A
/// message without a known code is shown as the API wrote it.
pub fn refusal(lang: Lang, message: &str) -> String {
    let Some((code, detail)) = message.split_once(':') else {
        return message.to_owned();
    };
    let key = format!("proctoring.refused.{}", code.trim());
    let text = i18n::tr(lang, &key);
    if text == key {
        return message.to_owned();
    }
    let numbers = numbers_in(detail);
    let mut numbers = numbers.iter();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '#' => out.push_str(numbers.next().map_or("#", String::as_str)),
            c => out.push(c),
        }
    }
    out
}

/// The numbers written in `text`, in order (`"0.712"` is one number).
fn numbers_in(text: &str) -> Vec<String> {
    let mut numbers = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() || (c == '.' && !current.is_empty()) {
            current.push(c);
        } else if !current.is_empty() {
            numbers.push(current.trim_end_matches('.').to_owned());
            current.clear();
        }
    }
    if !current.is_empty() {
        numbers.push(current.trim_end_matches('.').to_owned());
    }
    numbers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_reference_is_explained_in_the_viewers_language_with_its_numbers() {
        let small = "face_too_small: Face too small to verify (45 px, at least 80 px needed)";
        assert_eq!(
            refusal(Lang::Es, small),
            "El rostro es demasiado pequeño para verificarlo (45 px; se necesitan al menos 80 px)"
        );
        assert_eq!(
            refusal(Lang::En, small),
            "The face is too small to verify (45 px; at least 80 px needed)"
        );
        assert_eq!(
            refusal(Lang::Es, "no_face: No face detected"),
            "No se detecta ningún rostro en la foto"
        );
        assert_eq!(
            refusal(
                Lang::En,
                "multiple_faces: 2 faces detected, exactly one expected"
            ),
            "2 faces in the photo: exactly one is needed"
        );
        assert_eq!(refusal(Lang::Es, "something else"), "something else");
    }

    #[test]
    fn reasons_and_statuses_have_words_in_both_languages() {
        assert_eq!(
            reason_label(Lang::Es, "face_mismatch"),
            "El rostro no coincide con la referencia"
        );
        assert_eq!(status_label(Lang::En, "ALERT_FINAL"), "Final alert");
        assert_eq!(reason_label(Lang::En, "unheard_of"), "unheard_of");
    }
}
