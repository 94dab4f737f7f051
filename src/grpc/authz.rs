//! `envoy.service.auth.v3.Authorization/Check`: read the check request (`request`), ask the pipeline, answer
//! (`response`). Never an `Err(Status)`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use envoy_types::pb::envoy::service::auth::v3::authorization_server::Authorization;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use tonic::{Request, Response, Status};

use super::request::{CheckHeaders, ReadSettings, translate};
use super::response::respond;
use crate::pipeline::Pipeline;
use crate::token::HeaderRule;

pub struct Authz {
    pipeline: Arc<Pipeline>,
    read: ReadSettings,
    /// `[headers]`: the identity headers set, or removed when the token does not fill them.
    mapping: Vec<HeaderRule>,
    retry_after_secs: u64,
}

impl Authz {
    pub fn new(pipeline: Arc<Pipeline>, read: ReadSettings, mapping: Vec<HeaderRule>, retry_after_secs: u64) -> Authz {
        Authz {
            pipeline,
            read,
            mapping,
            retry_after_secs,
        }
    }
}

#[tonic::async_trait]
impl Authorization for Authz {
    async fn check(&self, request: Request<CheckRequest>) -> Result<Response<CheckResponse>, Status> {
        let started = Instant::now();
        let peer = request.remote_addr().map(|a| a.ip());
        let req = request.into_inner();
        let none = HashMap::new();
        let headers = match req
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref())
        {
            Some(http) => CheckHeaders::of(http),
            None => CheckHeaders::Joined(&none),
        };
        let check = translate(&req, &headers, &self.read, peer, started);
        let decided = self.pipeline.check(check).await;
        Ok(Response::new(respond(
            &decided,
            self.retry_after_secs,
            &self.mapping,
            &headers.names(),
        )))
    }
}
