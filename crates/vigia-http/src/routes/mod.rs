//! One module per area; each exposes `router(routes)`, merged in [`api`].
//!
//! Architecture invariant: a handler is routed only through [`op!`], which takes its method and
//! path from its `#[utoipa::path]`, and, when the document is wanted, its operation too; so the
//! OpenAPI document is the list of routes. Every route passes [`crate::access::mark`], so its
//! row in [`crate::access::TABLE`] decides which API keys may call it.

pub mod admin;
pub mod alerts;
pub mod attachments;
pub mod auth;
pub mod catalog;
pub mod competitions;
pub mod deliveries;
pub mod detections;
pub mod devices;
pub mod incidents;
pub mod jobs;
pub mod processing;
pub mod proctoring;
pub mod report_links;
pub mod reports;
pub mod stats;
pub mod subjects;
pub mod system;
pub(crate) mod upload;
pub mod users;
pub mod webhooks;

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter};
use utoipa::openapi::path::HttpMethod;
use utoipa::openapi::{OpenApi, Paths};

use crate::state::AppState;

/// The routes being registered, and their operations when the document is being built. The
/// server builds none (they held about 3 MB of an idle server's memory); `openapi::document`
/// builds them when first asked for.
pub struct Routes {
    router: Router<AppState>,
    document: Option<OpenApi>,
}

impl Routes {
    /// Routes only (the server).
    pub fn router() -> Self {
        Self {
            router: Router::new(),
            document: None,
        }
    }

    /// Routes and their operations (the document).
    pub fn document() -> Self {
        Self {
            router: Router::new(),
            document: Some(OpenApi::default()),
        }
    }

    /// Routes `handler` at the method and path of its annotation `P` (see [`op!`]), through
    /// `wrap` (e.g. a body-limit layer).
    pub fn add<P, H, T>(
        mut self,
        handler: H,
        wrap: impl FnOnce(MethodRouter<AppState>) -> MethodRouter<AppState>,
    ) -> Self
    where
        P: utoipa::Path + utoipa::__dev::SchemaReferences + for<'t> utoipa::__dev::Tags<'t>,
        H: Handler<T, AppState>,
        T: 'static,
    {
        let path = P::path();
        let methods = P::methods();
        let method_router = methods.iter().fold(MethodRouter::new(), |router, method| {
            router.on(filter(method), handler.clone())
        });
        self.router = self.router.route(&path, wrap(method_router));
        if let Some(document) = &mut self.document {
            let mut operation = P::operation();
            let tags = P::tags();
            if !tags.is_empty() {
                let own = operation.tags.get_or_insert_with(Vec::new);
                own.extend(tags.iter().map(|tag| (*tag).to_owned()));
            }
            let mut schemas = Vec::new();
            P::schemas(&mut schemas);
            let mut paths = Paths::new();
            paths.add_path_operation(&path, methods, operation);
            document.paths.merge(paths);
            let components = document.components.get_or_insert_with(Default::default);
            components.schemas.extend(schemas);
        }
        self
    }

    /// The router and, when asked for, the operations.
    pub fn finish(self) -> (Router<AppState>, Option<OpenApi>) {
        let router = self
            .router
            .route_layer(axum::middleware::from_fn(crate::access::mark));
        (router, self.document)
    }
}

fn filter(method: &HttpMethod) -> MethodFilter {
    match method {
        HttpMethod::Get => MethodFilter::GET,
        HttpMethod::Put => MethodFilter::PUT,
        HttpMethod::Post => MethodFilter::POST,
        HttpMethod::Delete => MethodFilter::DELETE,
        HttpMethod::Options => MethodFilter::OPTIONS,
        HttpMethod::Head => MethodFilter::HEAD,
        HttpMethod::Patch => MethodFilter::PATCH,
        HttpMethod::Trace => MethodFilter::TRACE,
    }
}

/// `op!(routes, handler)` (or `op!(routes, handler, wrap)`): routes an annotated handler of
/// the current module by its annotation.
macro_rules! op {
    ($routes:expr, $handler:ident) => {
        $crate::routes::op!($routes, $handler, |router| router)
    };
    ($routes:expr, $handler:ident, $wrap:expr) => {
        utoipa_axum::paste! { $routes.add::<[<__path_ $handler>], _, _>($handler, $wrap) }
    };
}
pub(crate) use op;

/// Every route of the API (with its operation when `routes` builds the document); uploads
/// may be `max_upload_bytes` long.
pub fn api(routes: Routes, max_upload_bytes: usize) -> Routes {
    let routes = system::router(routes);
    let routes = auth::router(routes);
    let routes = users::router(routes);
    let routes = catalog::router(routes);
    let routes = admin::router(routes);
    let routes = incidents::router(routes);
    let routes = stats::router(routes);
    let routes = reports::router(routes);
    let routes = report_links::router(routes);
    let routes = jobs::router(routes);
    let routes = attachments::router(routes, max_upload_bytes);
    let routes = webhooks::router(routes);
    let routes = deliveries::router(routes);
    let routes = proctoring::router(routes, max_upload_bytes);
    let routes = processing::router(routes);
    let routes = competitions::router(routes, max_upload_bytes);
    let routes = subjects::router(routes);
    let routes = devices::router(routes);
    let routes = detections::router(routes);
    let routes = alerts::router(routes);
    crate::realtime::router(routes)
}
