//! tokengate: a forward-auth sidecar that answers nginx, Envoy, Traefik and Caddy checks by verifying bearer tokens
//! at ZITADEL (RFC 7662 introspection with JWT-profile client authentication), with a cache that makes repeat
//! checks cheap.
//!
//! From `main` to the decision in four hops: `main` → `cli::run` → `startup::Application::build`, which wires the
//! verifier layers into the one `pipeline::Pipeline` every front door calls → `Pipeline::check` →
//! `policy::decide`. Doors translate (`http::verify`, `grpc`), the pipeline decides, verifiers know tokens (`token`).

pub mod answer;
pub mod bearer;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
#[cfg(feature = "dev-idp")]
pub mod dev_idp;
#[cfg(feature = "grpc")]
pub mod grpc;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod original;
pub mod pipeline;
pub mod policy;
pub mod secret;
pub mod startup;
pub mod token;
