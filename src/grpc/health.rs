//! `grpc.health.v1.Health` on the gRPC port: SERVING exactly when `/readyz` answers 200 (the same `IdpHealth`,
//! read at each call), NOT_SERVING otherwise and while shutting down. Watch sends the status at once, then every
//! change; it ends when shutdown starts, so that open watches do not hold up the drain.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::Health;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::token::IdpHealth;

/// The names a client may ask about: the server as a whole (`""`, what Kubernetes' gRPC probe asks by default),
/// and the authorization service.
pub const SERVICES: [&str; 2] = ["", "envoy.service.auth.v3.Authorization"];

/// How often a Watch looks at readiness (which has no change notification of its own).
const WATCH_EVERY: Duration = Duration::from_millis(250);

#[derive(Clone)]
pub struct HealthService {
    idp: Arc<IdpHealth>,
    /// `true` once shutdown has started.
    stopping: watch::Receiver<bool>,
}

impl HealthService {
    pub fn new(idp: Arc<IdpHealth>, stopping: watch::Receiver<bool>) -> HealthService {
        HealthService { idp, stopping }
    }

    fn status(&self, service: &str) -> ServingStatus {
        if !SERVICES.contains(&service) {
            ServingStatus::ServiceUnknown
        } else if *self.stopping.borrow() || self.idp.not_ready_reason().is_some() {
            ServingStatus::NotServing
        } else {
            ServingStatus::Serving
        }
    }
}

fn answer(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse { status: status as i32 }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

struct Watching {
    health: HealthService,
    service: String,
    last: Option<ServingStatus>,
    tick: tokio::time::Interval,
    done: bool,
}

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(&self, request: Request<HealthCheckRequest>) -> Result<Response<HealthCheckResponse>, Status> {
        match self.status(&request.get_ref().service) {
            // The protocol's answer for a name the server does not know.
            ServingStatus::ServiceUnknown => Err(Status::not_found("unknown service")),
            status => Ok(Response::new(answer(status))),
        }
    }

    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<HealthCheckRequest>) -> Result<Response<WatchStream>, Status> {
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let state = Watching {
            health: self.clone(),
            service: request.into_inner().service,
            last: None,
            tick,
            done: false,
        };
        let stream = futures_util::stream::unfold(state, |mut w| async move {
            loop {
                if w.done {
                    return None;
                }
                let stopping = *w.health.stopping.borrow();
                let now = w.health.status(&w.service);
                if w.last != Some(now) {
                    w.last = Some(now);
                    w.done = stopping;
                    return Some((Ok(answer(now)), w));
                }
                if stopping {
                    return None;
                }
                tokio::select! {
                    _ = w.tick.tick() => {}
                    changed = w.health.stopping.changed() => {
                        if changed.is_err() {
                            // The server is gone: nothing will change any more.
                            return None;
                        }
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
