//! Operations endpoints: liveness, readiness (endpoints known, credentials accepted) and Prometheus metrics.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let reason = state.health.not_ready_reason();
    state.metrics.ready.set(i64::from(reason.is_none()));
    match reason {
        None => HttpResponse::Ok().json(json!({"status": "ready"})),
        Some(reason) => HttpResponse::ServiceUnavailable().json(json!({"status": "not ready", "reason": reason})),
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.pipeline.cache().update_gauge();
    state
        .metrics
        .ready
        .set(i64::from(state.health.not_ready_reason().is_none()));
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::render(&state.registry))
}
