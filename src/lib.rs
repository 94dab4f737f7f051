//! tokengate: a forward-auth sidecar that answers nginx, Envoy, Traefik and Caddy checks by introspecting bearer
//! tokens at ZITADEL (RFC 7662, JWT-profile client authentication), with a cache that makes repeat checks cheap.
//!
//! The path of a check: `main` → `startup::Application` → `http::verify::verify` → `policy::decide`.

pub mod cli;
pub mod clock;
pub mod config;
#[cfg(feature = "dev-idp")]
pub mod dev_idp;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod original;
pub mod policy;
pub mod secret;
pub mod startup;
pub mod token;
