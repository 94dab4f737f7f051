//! Wiring: builds the cache, the introspection worker (on its own thread) and the HTTP servers on listeners the
//! caller binds, so tests pass port 0 and read the port back.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use prometheus::Registry;

use crate::clock::Clock;
use crate::config::Config;
use crate::http::{self, AppState};
use crate::introspection::IdpHealth;
use crate::introspection::cache::{self, CacheParts, TokenCache};
use crate::introspection::client::{ClientSetup, Credentials};
use crate::metrics::Metrics;
use crate::policy::Policy;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Tls(String),
    #[error("cannot start the server: {0}")]
    Io(#[from] std::io::Error),
}

pub struct Application {
    server: Server,
    metrics_server: Option<Server>,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    pub cache: TokenCache,
}

pub struct Listeners {
    pub main: TcpListener,
    pub metrics: Option<TcpListener>,
}

impl Listeners {
    pub fn bind(config: &Config) -> std::io::Result<Listeners> {
        Ok(Listeners {
            main: TcpListener::bind(config.server.listen)?,
            metrics: config.server.metrics_listen.map(TcpListener::bind).transpose()?,
        })
    }
}

impl Application {
    /// Must be called inside an actix system (the servers are spawned on it when run).
    pub fn build(
        config: Config,
        credentials: Credentials,
        listeners: Listeners,
        registry: Registry,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Result<Application, StartupError> {
        let health = Arc::new(IdpHealth::default());
        let (token_cache, worker) = cache::new(CacheParts {
            settings: config.cache.clone(),
            mapping: config.headers.clone(),
            roles: config.policy.roles.clone(),
            clock: clock.clone(),
            metrics: metrics.clone(),
            health: health.clone(),
            max_concurrent: config.idp.max_concurrent,
            wait_limit: config.idp.timeout,
        });
        let client = ClientSetup::new(&config.idp, credentials, metrics.clone()).map_err(StartupError::Tls)?;
        // The client is built here so TLS errors stop start-up, then moved: its awc half is created on the thread.
        worker.run_on_thread(move || client.into_local())?;

        let state = web::Data::new(AppState {
            cache: token_cache.clone(),
            policy: Policy {
                global: config.policy.global.clone(),
                rules: config.policy.rules.clone(),
                deny_unmatched: config.policy.deny_unmatched,
            },
            proxy: config.server.proxy,
            strict_paths: config.policy.strict_paths,
            token_sources: config.token.clone(),
            header_mapping: config.headers.clone(),
            metrics,
            health: health.clone(),
            clock,
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
            cache: token_cache,
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

    /// Serves until SIGTERM/SIGINT (graceful: in-flight checks finish within `server.shutdown_timeout`).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        match self.metrics_server {
            Some(m) => {
                let mh = m.handle();
                actix_web::rt::spawn(m);
                let r = self.server.await;
                mh.stop(true).await;
                r
            }
            None => self.server.await,
        }
    }
}
