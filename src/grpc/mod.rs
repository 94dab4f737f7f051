//! The gRPC front door on `server.grpc_listen`: Envoy's and Istio's `envoy.service.auth.v3.Authorization/Check`
//! (`authz`) and `grpc.health.v1.Health` (`health`), over HTTP/2 cleartext, on a tokio runtime of its own
//! (`server.workers` threads) beside the HTTP server's. It only translates (`request`, `response`); the
//! pipeline decides, with the same cache, rules and metrics (`door="grpc"`) as the HTTP door.
//!
//! Shutdown drains like the HTTP server: no new connections, health NOT_SERVING, open Watch streams ended, in-flight
//! checks finish within `server.shutdown_timeout`.

mod authz;
mod health;
pub mod request;
pub mod response;

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use envoy_types::pb::envoy::service::auth::v3::authorization_server::AuthorizationServer;
use tokio::sync::{oneshot, watch};
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::pb::health_server::HealthServer;

pub use self::authz::Authz;
pub use self::health::{HealthService, SERVICES};
use self::request::ReadSettings;
use crate::bearer::MAX_HEADER_BYTES;
use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::token::IdpHealth;

/// The largest `CheckRequest` decoded: the 32 KiB of headers a check may carry (larger ones get a 431 answer, not
/// an error) plus Envoy's own attributes, with room for Envoy's default 60 KiB request-header limit. Anything
/// bigger is refused by the gRPC layer (RESOURCE_EXHAUSTED), which `failure_mode_allow: false` turns into a denial.
pub const MAX_MESSAGE_BYTES: usize = 4 * MAX_HEADER_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("cannot start the gRPC server on {addr}: {source}")]
    Start {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// The running door: its address, and how to stop it.
pub struct GrpcDoor {
    addr: SocketAddr,
    stop: Stopper,
    finished: oneshot::Receiver<()>,
}

/// Starts the graceful shutdown of the gRPC door; cheap to clone.
#[derive(Clone)]
pub struct Stopper(Arc<watch::Sender<bool>>);

impl Stopper {
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

/// Both services behind one port, dispatched by the gRPC path (no router framework needed for two).
#[derive(Clone)]
struct Dispatch {
    authz: AuthorizationServer<Authz>,
    health: HealthServer<HealthService>,
}

impl Service<http::Request<Body>> for Dispatch {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Both servers are always ready; each call gets its own clone.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let service = req.uri().path().trim_start_matches('/').split('/').next().unwrap_or("");
        if service == <AuthorizationServer<Authz> as NamedService>::NAME {
            let mut authz = self.authz.clone();
            Box::pin(async move { authz.call(req).await })
        } else if service == <HealthServer<HealthService> as NamedService>::NAME {
            let mut health = self.health.clone();
            Box::pin(async move { health.call(req).await })
        } else {
            Box::pin(async { Ok(tonic::Status::unimplemented("no such service").into_http()) })
        }
    }
}

impl GrpcDoor {
    /// Serves on `listener` (bound by the caller, so tests pass port 0) until `stop`; `None` when the door is off.
    pub fn start(
        listener: Option<TcpListener>,
        config: &Config,
        pipeline: &Arc<Pipeline>,
        health: &Arc<IdpHealth>,
    ) -> Result<Option<GrpcDoor>, GrpcError> {
        let Some(listener) = listener else {
            return Ok(None);
        };
        let addr = listener.local_addr().map_err(|source| GrpcError::Start {
            addr: "the gRPC listener".into(),
            source,
        })?;
        let start_error = |source| GrpcError::Start {
            addr: addr.to_string(),
            source,
        };
        listener.set_nonblocking(true).map_err(start_error)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.server.workers)
            .thread_name("tokengate-grpc")
            .enable_all()
            .build()
            .map_err(start_error)?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let authz = Authz::new(
            pipeline.clone(),
            ReadSettings {
                strict_paths: config.policy.strict_paths,
                token_sources: config.token.clone(),
                client_address: config.server.client_address,
            },
            config.headers.clone(),
            config.idp.timeout.as_secs().max(1),
        );
        let dispatch = Dispatch {
            authz: AuthorizationServer::new(authz)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            health: HealthServer::new(HealthService::new(health.clone(), stop_rx.clone())),
        };
        let shutdown_timeout = config.server.shutdown_timeout;
        let (finished_tx, finished) = oneshot::channel();
        let incoming = {
            let _entered = runtime.enter();
            let listener = tokio::net::TcpListener::from_std(listener).map_err(start_error)?;
            TcpIncoming::from(listener).with_nodelay(Some(true))
        };
        std::thread::Builder::new()
            .name("tokengate-grpc".into())
            .spawn(move || {
                runtime.block_on(serve(dispatch, incoming, stop_rx, shutdown_timeout));
                // Whatever did not drain in time is cut off here.
                runtime.shutdown_timeout(Duration::from_millis(100));
                let _ = finished_tx.send(());
            })
            .map_err(start_error)?;
        log::info!("gRPC door (Envoy ext_authz, grpc.health.v1) listening on {addr}");
        Ok(Some(GrpcDoor {
            addr,
            stop: Stopper(Arc::new(stop_tx)),
            finished,
        }))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stopper(&self) -> Stopper {
        self.stop.clone()
    }

    /// Stops (if not already stopping) and waits until in-flight checks have drained or the shutdown timeout cut
    /// them off.
    pub async fn stop_and_wait(self) {
        self.stop.stop();
        let _ = self.finished.await;
    }
}

async fn serve(dispatch: Dispatch, incoming: TcpIncoming, stop: watch::Receiver<bool>, shutdown_timeout: Duration) {
    let mut stopped = stop.clone();
    let signal = async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let server = Server::builder().serve_with_incoming_shutdown(dispatch, incoming, signal);
    let mut stop = stop;
    let deadline = async move {
        let _ = stop.wait_for(|s| *s).await;
        tokio::time::sleep(shutdown_timeout).await;
    };
    tokio::select! {
        result = server => {
            if let Err(e) = result {
                log::error!("the gRPC server failed: {e}");
            }
        }
        () = deadline => log::warn!("gRPC checks still in flight after server.shutdown_timeout: cut off"),
    }
}
