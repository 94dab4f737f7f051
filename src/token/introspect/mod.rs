//! The origin of a token's truth: RFC 7662 introspection at ZITADEL, authenticated with the API application's key
//! (JWT profile) or HTTP Basic. `Introspector` is the verifier layer; the exchange runs on the IdP thread.

pub mod assertion;
pub mod credentials;
pub mod discovery;
pub mod exchange;
pub mod http;
pub mod keyfile;
pub mod reload;
pub mod signer;
pub mod slots;
pub mod thread;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use prometheus::{Histogram, IntCounter};
use url::Url;

pub use exchange::ASSERTION_TYPE;

use self::credentials::{Authenticator, ClientAuthConfig, Credentials};
use self::discovery::EndpointCell;
use self::http::{HttpSetup, TlsError, warn_if_plain_http};
use self::slots::FairSlots;
use self::thread::{IdpContext, IdpThread};
use super::lookup::{Found, Lookup, LookupRequest, Source};
use super::{HeaderRule, IdpError, IdpHealth, Introspection, RoleScope, TokenInfo};
use crate::metrics::Metrics;

/// `[idp]`.
#[derive(Debug, Clone)]
pub struct IdpSettings {
    /// Exactly as configured: ZITADEL compares the assertion's `aud` to it byte for byte.
    pub issuer: String,
    pub introspection_endpoint: Option<Url>,
    pub auth: ClientAuthConfig,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    pub max_concurrent: usize,
    pub assertion_reuse: bool,
    pub max_response_bytes: usize,
    /// How often the key or secret file is checked for changes; zero leaves it to SIGHUP.
    pub reload_interval: Duration,
}

/// How many client assertions are kept signed ahead of need.
const PRESIGNED: usize = 32;

impl IdpSettings {
    pub fn http_setup(&self) -> Result<HttpSetup, TlsError> {
        warn_if_plain_http("idp.issuer", &self.issuer);
        if let Some(e) = &self.introspection_endpoint {
            warn_if_plain_http("idp.introspection_endpoint", e.as_str());
        }
        HttpSetup::new(
            self.ca_file.as_deref(),
            self.timeout,
            self.max_concurrent,
            self.max_response_bytes,
        )
    }

    /// The context of the IdP thread (or of a one-shot command on the current thread).
    pub fn context(&self, http: &HttpSetup, auth: Arc<Authenticator>, health: Arc<IdpHealth>) -> IdpContext {
        let method = auth.credentials().method();
        IdpContext {
            http: http.client(),
            endpoints: EndpointCell::new(
                self.issuer.clone(),
                self.introspection_endpoint.as_ref().map(Url::to_string),
                method,
            ),
            auth,
            health,
            timeout: self.timeout,
        }
    }

    /// `presign`: keep assertions signed ahead (the service); a one-shot command signs on demand.
    pub fn authenticator(&self, credentials: Credentials, metrics: &Metrics, presign: bool) -> Arc<Authenticator> {
        Arc::new(Authenticator::new(
            credentials,
            self.assertion_reuse,
            if presign { PRESIGNED } else { 0 },
            &metrics.assertions_signed,
        ))
    }
}

struct Counters {
    duration: Histogram,
    active: IntCounter,
    inactive: IntCounter,
    error: IntCounter,
    rejected_headers: IntCounter,
    errors: prometheus::IntCounterVec,
}

/// The introspection layer: a fair share of `idp.max_concurrent` per client, one deadline for the whole wait, the
/// exchange on the IdP thread, and the answer as a `TokenInfo`.
pub struct Introspector {
    idp: IdpThread,
    auth: Arc<Authenticator>,
    slots: FairSlots,
    health: Arc<IdpHealth>,
    mapping: Vec<HeaderRule>,
    roles: RoleScope,
    counters: Counters,
}

impl Introspector {
    pub fn new(
        idp: IdpThread,
        settings: &IdpSettings,
        auth: Arc<Authenticator>,
        health: Arc<IdpHealth>,
        mapping: Vec<HeaderRule>,
        roles: RoleScope,
        metrics: &Metrics,
    ) -> Introspector {
        let outcome = |o: &str| metrics.introspection_requests.with_label_values(&[o]);
        Introspector {
            idp,
            auth,
            slots: FairSlots::new(settings.max_concurrent, metrics.idp_waiting.clone()),
            health,
            mapping,
            roles,
            counters: Counters {
                duration: metrics.introspection_duration.clone(),
                active: outcome("active"),
                inactive: outcome("inactive"),
                error: outcome("error"),
                rejected_headers: metrics.rejected_header_values.clone(),
                errors: metrics.idp_errors.clone(),
            },
        }
    }

    async fn call(&self, req: LookupRequest) -> Result<Introspection, IdpError> {
        let Some(_slot) = self.slots.acquire(req.client, req.deadline).await else {
            return Err(IdpError::Overloaded);
        };
        let auth = self.auth.client_auth().transpose()?;
        let started = Instant::now();
        let token = req.token;
        let deadline = req.deadline;
        let result = self
            .idp
            .call(move |ctx| async move { ctx.introspect(&token, auth, deadline).await })
            .await;
        self.counters.duration.observe(started.elapsed().as_secs_f64());
        result
    }
}

impl Lookup for Introspector {
    fn lookup(&self, req: LookupRequest) -> BoxFuture<'_, Result<Found, IdpError>> {
        Box::pin(async move {
            let result = self.call(req).await;
            self.health.record(&result);
            match &result {
                Ok(i) if i.active => self.counters.active.inc(),
                Ok(_) => self.counters.inactive.inc(),
                Err(e) => {
                    // An overloaded call never reached the IdP: an error, but not an introspection made.
                    if !matches!(e, IdpError::Overloaded) {
                        self.counters.error.inc();
                    }
                    self.counters.errors.with_label_values(&[e.label()]).inc();
                }
            }
            let i = result?;
            let info = TokenInfo::from_introspection(&i, &self.mapping, &self.roles);
            if info.rejected_headers > 0 {
                self.counters.rejected_headers.inc_by(u64::from(info.rejected_headers));
            }
            Ok(Found::new(info, Source::Introspection))
        })
    }
}
