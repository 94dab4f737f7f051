//! Wiring: the verifier layers (memory cache → introspection on the IdP thread), the pipeline, its background
//! tasks, the HTTP servers and the gRPC door on listeners the caller binds, so tests pass port 0 and read the port
//! back.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use prometheus::Registry;

use crate::clock::Clock;
use crate::config::Config;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::token::IdpHealth;
use crate::token::cache::MemoryCache;
use crate::token::introspect::credentials::Credentials;
use crate::token::introspect::http::TlsError;
use crate::token::introspect::thread::IdpThread;
use crate::token::introspect::{Introspector, reload};
use crate::token::lookup::Lookup;

/// How often expired entries are dropped from memory.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Tls(#[from] TlsError),
    #[error("cannot start the server: {0}")]
    Io(#[from] std::io::Error),
    #[cfg(feature = "grpc")]
    #[error("{0}")]
    Grpc(#[from] crate::grpc::GrpcError),
}

pub struct Application {
    server: Server,
    metrics_server: Option<Server>,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    pub pipeline: Arc<Pipeline>,
    pub health: Arc<IdpHealth>,
    #[cfg(feature = "grpc")]
    grpc: Option<crate::grpc::GrpcDoor>,
}

pub struct Listeners {
    pub main: TcpListener,
    pub metrics: Option<TcpListener>,
    /// `server.grpc_listen` (only with the `grpc` feature; config validation refuses it otherwise).
    pub grpc: Option<TcpListener>,
}

impl Listeners {
    pub fn bind(config: &Config) -> std::io::Result<Listeners> {
        Ok(Listeners {
            main: TcpListener::bind(config.server.listen)?,
            metrics: config.server.metrics_listen.map(TcpListener::bind).transpose()?,
            grpc: config.server.grpc_listen.map(TcpListener::bind).transpose()?,
        })
    }
}

impl Application {
    /// Must be called inside an actix system (the servers and background tasks are spawned on it).
    pub fn build(
        config: Config,
        credentials: Credentials,
        listeners: Listeners,
        registry: Registry,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Result<Application, StartupError> {
        let health = Arc::new(IdpHealth::default());

        // The origin: introspection, its HTTP on the IdP thread, discovery warm-up and key-file watching there.
        let http_setup = config.idp.http_setup()?;
        let auth = config.idp.authenticator(credentials, &metrics, true);
        let idp = {
            let (settings, auth, health) = (config.idp.clone(), auth.clone(), health.clone());
            IdpThread::start(move || settings.context(&http_setup, auth, health))?
        };
        idp.spawn(|ctx| ctx.warm_up());
        {
            let (auth_config, interval) = (config.idp.auth.clone(), config.idp.reload_interval);
            let reloads = metrics.credential_reloads.clone();
            idp.spawn(move |ctx| reload::watch(ctx, auth_config, interval, reloads));
        }
        let origin: Arc<dyn Lookup> = Arc::new(Introspector::new(
            idp,
            &config.idp,
            auth,
            health.clone(),
            config.headers.clone(),
            config.policy.roles.clone(),
            &metrics,
        ));

        // The memory cache in front, and the pipeline every door calls.
        let cache = Arc::new(MemoryCache::new(
            config.cache.clone(),
            origin,
            clock.clone(),
            &metrics,
            config.idp.timeout,
        ));
        let sweeper = cache.clone();
        actix_web::rt::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            loop {
                every.tick().await;
                sweeper.sweep();
            }
        });
        let pipeline = Arc::new(Pipeline::new(
            config.policy.policy(),
            cache,
            clock,
            config.idp.timeout,
            config.log.decisions,
            &config.headers,
            &metrics,
        ));

        // The gRPC door (Envoy / Istio ext_authz), when server.grpc_listen is set.
        #[cfg(feature = "grpc")]
        let grpc = crate::grpc::GrpcDoor::start(listeners.grpc, &config, &pipeline, &health)?;

        // The HTTP door.
        let state = web::Data::new(AppState {
            pipeline: pipeline.clone(),
            proxy: config.server.proxy,
            strict_paths: config.policy.strict_paths,
            token_sources: config.token.clone(),
            client_address: config.server.client_address,
            header_mapping: config.headers.clone(),
            metrics,
            health: health.clone(),
            registry,
            retry_after_secs: config.idp.timeout.as_secs().max(1),
        });
        let separate_metrics = listeners.metrics.is_some();
        let addr = listeners.main.local_addr()?;
        let main_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(main_state.clone())
                .configure(|c| http::configure(c, !separate_metrics))
        })
        .workers(config.server.workers)
        .shutdown_timeout(config.server.shutdown_timeout.as_secs())
        .listen(listeners.main)?
        .run();
        let (metrics_server, metrics_addr) = match listeners.metrics {
            Some(l) => {
                let a = l.local_addr()?;
                let s = HttpServer::new(move || {
                    App::new()
                        .app_data(state.clone())
                        .service(web::resource("/metrics").route(web::get().to(http::ops::metrics)))
                })
                .workers(1)
                .listen(l)?
                .run();
                (Some(s), Some(a))
            }
            None => (None, None),
        };
        Ok(Application {
            server,
            metrics_server,
            addr,
            metrics_addr,
            pipeline,
            health,
            #[cfg(feature = "grpc")]
            grpc,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// The gRPC door's address, when `server.grpc_listen` is set.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        #[cfg(feature = "grpc")]
        return self.grpc.as_ref().map(crate::grpc::GrpcDoor::addr);
        #[cfg(not(feature = "grpc"))]
        None
    }

    /// Stops every door the way SIGTERM does: no new checks, in-flight ones finish (within
    /// `server.shutdown_timeout` when `graceful`). `run_until_stopped` returns once all have.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            http: self.server.handle(),
            #[cfg(feature = "grpc")]
            grpc: self.grpc.as_ref().map(crate::grpc::GrpcDoor::stopper),
        }
    }

    /// Serves until SIGTERM/SIGINT (graceful: in-flight checks finish within `server.shutdown_timeout`), on every
    /// door at once: the HTTP server handles the signals itself, the gRPC door follows the same signals.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        #[cfg(feature = "grpc")]
        let grpc = self.grpc;
        #[cfg(feature = "grpc")]
        if let Some(door) = &grpc {
            let stop = door.stopper();
            actix_web::rt::spawn(async move {
                termination().await;
                stop.stop();
            });
        }
        let result = match self.metrics_server {
            Some(m) => {
                let mh = m.handle();
                actix_web::rt::spawn(m);
                let r = self.server.await;
                mh.stop(true).await;
                r
            }
            None => self.server.await,
        };
        // The HTTP server has drained; the gRPC door stops too (if a signal or the stopper has not stopped it) and
        // drains within its own shutdown timeout, which ran alongside the HTTP server's.
        #[cfg(feature = "grpc")]
        if let Some(door) = grpc {
            door.stop_and_wait().await;
        }
        result
    }
}

/// Stops every door (see `Application::stopper`).
#[derive(Clone)]
pub struct Stopper {
    http: ServerHandle,
    #[cfg(feature = "grpc")]
    grpc: Option<crate::grpc::Stopper>,
}

impl Stopper {
    pub async fn stop(&self, graceful: bool) {
        #[cfg(feature = "grpc")]
        if let Some(g) = &self.grpc {
            g.stop();
        }
        self.http.stop(graceful).await;
    }
}

/// The signals the HTTP server stops on (SIGTERM, SIGINT, SIGQUIT), for the gRPC door.
#[cfg(feature = "grpc")]
async fn termination() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::quit()),
    ) else {
        log::warn!("cannot listen for termination signals: the gRPC door stops after the HTTP server");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = quit.recv() => {}
    }
}
