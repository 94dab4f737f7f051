//! The HTTP surface. Endpoints:
//! - `/verify`, `/verify/{path}` (any method): the forward-auth check (`verify`).
//! - `/healthz`, `/readyz`, `/metrics` (GET): operations (`ops`); `/metrics` moves to its own listener when
//!   `server.metrics_listen` is set.

pub mod ops;
pub mod original;
pub mod verify;

use std::sync::Arc;

use actix_web::web;

use crate::bearer::TokenSources;
use crate::client::ClientAddress;
use crate::config::ProxyMode;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::token::{HeaderRule, IdpHealth};

/// Everything a request handler needs, shared by all workers.
pub struct AppState {
    pub pipeline: Arc<Pipeline>,
    /// `server.proxy`: which headers describe the original request.
    pub proxy: ProxyMode,
    /// `policy.strict_paths`.
    pub strict_paths: bool,
    pub token_sources: TokenSources,
    pub client_address: ClientAddress,
    /// `[headers]`: names for the identity-header values cached in each `TokenInfo`.
    pub header_mapping: Vec<HeaderRule>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<IdpHealth>,
    pub registry: prometheus::Registry,
    pub retry_after_secs: u64,
}

/// The routes of the main listener.
pub fn configure(cfg: &mut web::ServiceConfig, with_metrics: bool) {
    cfg.route("/verify", web::route().to(verify::verify))
        .route("/verify/{path:.*}", web::route().to(verify::verify))
        .service(web::resource("/healthz").route(web::get().to(ops::healthz)))
        .service(web::resource("/readyz").route(web::get().to(ops::readyz)));
    if with_metrics {
        cfg.service(web::resource("/metrics").route(web::get().to(ops::metrics)));
    }
}

/// A header map from pairs, for the unit tests of this module's parts.
#[cfg(test)]
pub(crate) fn test_headers(pairs: &[(&str, &str)]) -> actix_web::http::header::HeaderMap {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(HeaderName::try_from(*k).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    h
}
