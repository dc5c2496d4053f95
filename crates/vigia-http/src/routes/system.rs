//! Liveness and readiness for orchestrators and load balancers.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Routes, op};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Json;
use crate::metrics::{__path_render, render};
use crate::state::AppState;

pub fn router(routes: Routes) -> Routes {
    let routes = op!(routes, health);
    let routes = op!(routes, ready);
    op!(routes, render)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthOut {
    /// `ok`
    pub status: &'static str,
    pub version: &'static str,
}

/// The process is alive (no dependency is checked).
#[utoipa::path(get, path = "/health", tag = "system", responses((status = 200, body = HealthOut)))]
async fn health() -> Json<HealthOut> {
    Json(HealthOut {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyOut {
    pub status: &'static str,
    pub database: &'static str,
    pub object_storage: &'static str,
}

/// The database and object storage answer: this node can serve traffic.
#[utoipa::path(get, path = "/ready", tag = "system",
    responses((status = 200, body = ReadyOut), (status = 503, body = Problem)))]
async fn ready(State(state): State<AppState>) -> ApiResult<(StatusCode, Json<ReadyOut>)> {
    let (db, objects) = tokio::join!(state.db.ping(), state.objects.check());
    if let Err(error) = db {
        return Err(ApiError::Unavailable {
            detail: format!("database unreachable: {error:#}"),
        });
    }
    if let Err(error) = objects {
        return Err(ApiError::Unavailable {
            detail: format!("object storage unreachable: {error:#}"),
        });
    }
    Ok((
        StatusCode::OK,
        Json(ReadyOut {
            status: "ready",
            database: "ok",
            object_storage: "ok",
        }),
    ))
}
