//! Every string the pages show, once per language (the status and urgency labels are the
//! e-mails' own, from `vigia_notify::templates`).

pub use vigia_notify::templates::Lang;

/// The strings of one language.
pub struct Text {
    pub incident: &'static str,
    pub status: &'static str,
    pub urgency: &'static str,
    pub category: &'static str,
    pub department: &'static str,
    pub location: &'static str,
    pub reported: &'static str,
    pub comments: &'static str,
    pub internal: &'static str,
    pub no_comments: &'static str,
    pub sign_in_title: &'static str,
    pub sign_in: &'static str,
    pub not_found_title: &'static str,
    pub not_found: &'static str,
    pub opening: &'static str,
    pub api_docs: &'static str,
}

const ES: Text = Text {
    incident: "Incidente",
    status: "Estado",
    urgency: "Urgencia",
    category: "Categoría",
    department: "Departamento",
    location: "Ubicación",
    reported: "Reportado",
    comments: "Comentarios",
    internal: "Nota interna",
    no_comments: "Sin comentarios.",
    sign_in_title: "Inicia sesión",
    sign_in: "Inicia sesión en Vigía en este navegador y vuelve a abrir este enlace para ver el \
              incidente.",
    not_found_title: "Incidente no encontrado",
    not_found: "Este incidente no existe o tu cuenta no puede verlo.",
    opening: "Abriendo el incidente…",
    api_docs: "Documentación de la API",
};

const EN: Text = Text {
    incident: "Incident",
    status: "Status",
    urgency: "Urgency",
    category: "Category",
    department: "Department",
    location: "Location",
    reported: "Reported",
    comments: "Comments",
    internal: "Internal note",
    no_comments: "No comments.",
    sign_in_title: "Sign in",
    sign_in: "Sign in to Vigía in this browser, then open this link again to see the incident.",
    not_found_title: "Incident not found",
    not_found: "This incident does not exist or your account may not see it.",
    opening: "Opening the incident…",
    api_docs: "API documentation",
};

pub fn text(lang: Lang) -> &'static Text {
    match lang {
        Lang::Es => &ES,
        Lang::En => &EN,
    }
}
