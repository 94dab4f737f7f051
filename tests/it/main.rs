//! The one integration-test binary. Each module says what belongs in it:
//! - `helpers`: starting the ZITADEL double and tokengate on port 0, HTTP helpers. No tests.
//! - `verify`: the /verify contract against the double (allow, 401s, 403s, 503s, Basic auth, readiness).
//! - `cache`: caching, coalescing, refresh-ahead, stale-if-error, bounds (issue: introspection cache).
//! - `decisions`: the decision log on the real binary: one line per check, its exact fields (JSON and text), no
//!   secrets, the sampler.
//! - `commands`: the `check`, `introspect` and `dev` subcommands, run as the real binary.
//! - `dev_idp`: the ZITADEL double itself: an independent OIDC client (openidconnect) against its discovery, key
//!   set and JWTs; key-set headers, faults and counter; rotation order; introspection of its own JWTs.
//! - `faults`: the IdP misbehaving in every way we know; 503, metric, log line, recovery.
//! - `metrics`: what /metrics counts, and `promtool check metrics`.
//! - `grpc`: the gRPC door (Envoy / Istio ext_authz) through a real tonic client: the CheckRequest/CheckResponse
//!   contract, context extensions, raw headers, identity headers to remove, the cache shared with HTTP, health
//!   following readiness, limits, graceful shutdown.
//! - `proxies`: exactly what Envoy, Traefik, Caddy and nginx send; rules, check-URL requirements, token sources.
//! - `monitoring`: deploy/monitoring/ (Grafana dashboard, alert rules, PrometheusRule, kustomize component): promtool
//!   checks and unit tests, every query parses, every metric used exists in a real tokengate's /metrics.
//! - `deploy`: deploy/ manifests parse and hold what the docs rely on (server.proxy, header stripping, raw paths).
//! - `rotation`: key/secret reload (poll, SIGHUP, Kubernetes symlinks) and graceful shutdown, on the real binary.
//! - `rules`: requests read two ways (paths, case, hosts, sources), roles pinned to their project, identity values
//!   an application would split or trim (issue 8); through the HTTP door.
//! - `security`: sentinel secrets absent from logs/bodies/metrics, header injection, spoofing, key-file mode.
//! - `e2e`: real nginx, Caddy and Traefik with configs generated from deploy/ (ports only) and a recording upstream:
//!   allow, deny, anonymous, IdP down, and issue 8's bypasses (`;`, case, area roots, double encoding, NUL, trailing
//!   dots, full-width dots, trailing-dot hosts, identity headers in underscore spellings, tokens without `sub`),
//!   each refused without the upstream being called.

mod cache;
mod commands;
mod decisions;
mod deploy;
mod dev_idp;
mod e2e;
mod faults;
#[cfg(feature = "grpc")]
mod grpc;
mod helpers;
mod metrics;
mod monitoring;
mod proxies;
mod rotation;
mod rules;
mod security;
mod verify;
