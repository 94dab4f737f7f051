//! `[server]`: listeners (HTTP, metrics, gRPC), workers, shutdown, which proxy sends the checks, and where the
//! client's address comes from.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::Extra;
use super::collect::{Collector, non_empty};
use crate::client::ClientAddress;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub workers: usize,
    pub metrics_listen: Option<SocketAddr>,
    /// The Envoy / Istio gRPC door (`envoy.service.auth.v3.Authorization` + `grpc.health.v1.Health`); unset = off.
    pub grpc_listen: Option<SocketAddr>,
    pub shutdown_timeout: Duration,
    pub proxy: ProxyMode,
    pub client_address: ClientAddress,
}

/// Which proxy sends the checks (`server.proxy`): which headers describe the original request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Read every known source; all present must agree.
    Auto,
    Nginx,
    IngressNginx,
    Envoy,
    Traefik,
    Caddy,
}

impl ProxyMode {
    pub const ALL: [ProxyMode; 6] = [
        ProxyMode::Auto,
        ProxyMode::Nginx,
        ProxyMode::IngressNginx,
        ProxyMode::Envoy,
        ProxyMode::Traefik,
        ProxyMode::Caddy,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ProxyMode::Auto => "auto",
            ProxyMode::Nginx => "nginx",
            ProxyMode::IngressNginx => "ingress-nginx",
            ProxyMode::Envoy => "envoy",
            ProxyMode::Traefik => "traefik",
            ProxyMode::Caddy => "caddy",
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawServer {
    listen: Option<String>,
    workers: Option<String>,
    metrics_listen: Option<String>,
    grpc_listen: Option<String>,
    shutdown_timeout: Option<String>,
    proxy: Option<String>,
    client_address: Option<String>,
    trusted_hops: Option<String>,
    #[serde(flatten)]
    pub(super) extra: Extra,
}

pub(super) fn validate(c: &mut Collector, raw: RawServer) -> ServerConfig {
    let default_listen = SocketAddr::from(([0, 0, 0, 0], 8080));
    let listen = match non_empty(raw.listen) {
        Some(s) => c.addr("server.listen", &s).unwrap_or(default_listen),
        None => default_listen,
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = c.number("server.workers", raw.workers.as_deref(), cpus);
    if workers == 0 {
        c.err("server.workers", "must be at least 1");
    }
    let metrics_listen = non_empty(raw.metrics_listen).and_then(|s| c.addr("server.metrics_listen", &s));
    let grpc_listen = non_empty(raw.grpc_listen).and_then(|s| c.addr("server.grpc_listen", &s));
    if grpc_listen.is_some() && !cfg!(feature = "grpc") {
        // A slim build must not quietly leave Envoy without its authorizer.
        c.err(
            "server.grpc_listen",
            "this build has no gRPC door (built without the cargo feature `grpc`)",
        );
    }
    let shutdown_timeout = c.duration(
        "server.shutdown_timeout",
        raw.shutdown_timeout.as_deref(),
        Duration::from_secs(10),
    );
    let proxy = match non_empty(raw.proxy).map(|s| s.to_ascii_lowercase()) {
        None => ProxyMode::Auto,
        Some(p) => ProxyMode::ALL.into_iter().find(|m| m.label() == p).unwrap_or_else(|| {
            c.err(
                "server.proxy",
                format!("{p:?} is not one of auto, nginx, ingress-nginx, envoy, traefik, caddy"),
            );
            ProxyMode::Auto
        }),
    };
    let trusted_hops = c.number("server.trusted_hops", raw.trusted_hops.as_deref(), 1usize);
    if trusted_hops == 0 {
        c.err("server.trusted_hops", "must be at least 1");
    }
    let client_address = match non_empty(raw.client_address).map(|s| s.to_ascii_lowercase()).as_deref() {
        None | Some("peer") => ClientAddress::Peer,
        Some("x-forwarded-for") => ClientAddress::ForwardedFor { trusted_hops },
        Some("x-real-ip") => ClientAddress::RealIp,
        Some("x-envoy-external-address") => ClientAddress::EnvoyExternal,
        Some(other) => {
            c.err(
                "server.client_address",
                format!("{other:?} is not one of peer, x-forwarded-for, x-real-ip, x-envoy-external-address"),
            );
            ClientAddress::Peer
        }
    };
    ServerConfig {
        listen,
        workers,
        metrics_listen,
        grpc_listen,
        shutdown_timeout,
        proxy,
        client_address,
    }
}
