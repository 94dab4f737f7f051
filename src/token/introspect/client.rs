//! Talking to the identity provider over awc + rustls: discovery, client authentication (JWT profile or Basic) and
//! the introspection call, with each failure kept apart (transport, 5xx, credentials, token refused, bad response).
//! The awc client is not `Send`: an `IdpClient` lives on one thread (the introspection worker, or a CLI command).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use awc::http::StatusCode;
use base64::Engine;
use serde_json::Value;

use super::Introspect;
use super::assertion::AssertionSigner;
use super::keyfile::KeyFile;
use crate::clock::{Clock, SystemClock};
use crate::config::{ClientAuthConfig, IdpConfig, SecretSource};
use crate::metrics::Metrics;
use crate::secret::{Secret, read_secret_file};
use crate::token::{IdpError, Introspection};

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The client credentials, loaded from files.
pub enum Credentials {
    Key(KeyFile),
    Basic { client_id: String, secret: Secret },
}

impl Credentials {
    pub fn load(cfg: &ClientAuthConfig) -> Result<Credentials, String> {
        match cfg {
            ClientAuthConfig::KeyFile(path) => KeyFile::load(path)
                .map(Credentials::Key)
                .map_err(|e| format!("idp.key_file ({}): {e}", path.display())),
            ClientAuthConfig::Basic { client_id, secret } => {
                let secret = match secret {
                    SecretSource::Inline(s) => s.clone(),
                    SecretSource::File(path) => read_secret_file(path).map_err(|e| {
                        format!("idp.client_secret_file ({}): cannot read: {}", path.display(), e.kind())
                    })?,
                };
                Ok(Credentials::Basic {
                    client_id: client_id.clone(),
                    secret,
                })
            }
        }
    }

    /// Credentials from a re-read file (`reload_path`'s content).
    fn from_bytes(cfg: &ClientAuthConfig, bytes: &[u8]) -> Result<Credentials, String> {
        match cfg {
            ClientAuthConfig::KeyFile(_) => KeyFile::parse(bytes).map(Credentials::Key).map_err(|e| e.to_string()),
            ClientAuthConfig::Basic { client_id, .. } => {
                let text = std::str::from_utf8(bytes).map_err(|_| "the secret file is not UTF-8".to_string())?;
                Ok(Credentials::Basic {
                    client_id: client_id.clone(),
                    secret: Secret::new(text.trim_end_matches(['\r', '\n'])),
                })
            }
        }
    }

    /// Identifies the content, so an unchanged file is not re-tested.
    fn fingerprint(&self) -> [u8; 32] {
        match self {
            Credentials::Key(k) => k.fingerprint,
            Credentials::Basic { secret, .. } => Sha256::digest(secret.expose().as_bytes()).into(),
        }
    }

    pub fn client_id(&self) -> &str {
        match self {
            Credentials::Key(k) => &k.client_id,
            Credentials::Basic { client_id, .. } => client_id,
        }
    }

    /// The OAuth name of the authentication method.
    pub fn method(&self) -> &'static str {
        match self {
            Credentials::Key(_) => "private_key_jwt",
            Credentials::Basic { .. } => "client_secret_basic",
        }
    }
}

/// Where to send introspections, and the `aud` of our assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub issuer: String,
    pub introspection: String,
}

enum Auth {
    Assertion(AssertionSigner),
    /// The complete `Authorization` header value.
    Basic(Secret),
}

impl Auth {
    fn new(credentials: &Credentials, audience: &str, assertion_reuse: bool) -> Auth {
        match credentials {
            Credentials::Key(key) => Auth::Assertion(AssertionSigner::new(key, audience.to_string(), assertion_reuse)),
            Credentials::Basic { client_id, secret } => {
                // RFC 6749 §2.3.1: both parts form-urlencoded before base64.
                let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let pair = format!("{}:{}", enc(client_id), enc(secret.expose()));
                Auth::Basic(Secret::new(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )))
            }
        }
    }
}

pub struct IdpClient {
    http: awc::Client,
    issuer: String,
    configured_endpoint: Option<String>,
    auth_config: ClientAuthConfig,
    credentials: RefCell<Rc<Credentials>>,
    /// The auth built from `credentials` for the known endpoints; replaced together with them on reload.
    auth: RefCell<Option<Rc<Auth>>>,
    /// Hash of the credential file's content last dealt with (applied or definitively rejected).
    last_seen: Cell<Option<[u8; 32]>>,
    reload_interval: Duration,
    assertion_reuse: bool,
    timeout: Duration,
    max_response_bytes: usize,
    endpoints: tokio::sync::OnceCell<Endpoints>,
    metrics: Arc<Metrics>,
}

/// rustls with the aws-lc-rs provider, Mozilla's roots and the operator's extra CA file.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("idp.ca_file ({}): {e}", path.display()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("idp.ca_file ({}): {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("idp.ca_file ({}): no certificates in it", path.display()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("idp.ca_file ({}): {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Logs the plain-http warning once per URL the operator gave us.
pub fn warn_if_plain_http(what: &str, raw: &str) {
    if let Ok(url) = url::Url::parse(raw)
        && url.scheme() == "http"
        && !is_loopback(&url)
    {
        log::warn!(
            "{what} {raw} uses plain http to a non-loopback host: tokens and credentials cross the network unencrypted"
        );
    }
}

/// Only a short, known-safe error code from the IdP's body makes it into logs.
fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .filter(|e| e.len() <= 64 && e.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .unwrap_or_else(|| "no error code".to_string())
}

/// Everything an `IdpClient` needs, checked and `Send`: built where start-up errors can be reported, then turned
/// into the client on the thread that will use it.
pub struct ClientSetup {
    cfg: IdpConfig,
    tls: Arc<rustls::ClientConfig>,
    credentials: Credentials,
    metrics: Arc<Metrics>,
}

impl ClientSetup {
    pub fn into_local(self) -> IdpClient {
        let cfg = self.cfg;
        let connector = awc::Connector::new()
            .rustls_0_23(self.tls)
            .timeout(cfg.timeout)
            .limit(cfg.max_concurrent.max(1));
        let http = awc::Client::builder()
            .connector(connector)
            .timeout(cfg.timeout)
            .disable_redirects()
            .add_default_header((
                awc::http::header::USER_AGENT,
                concat!("tokengate/", env!("CARGO_PKG_VERSION")),
            ))
            .finish();
        IdpClient {
            http,
            issuer: cfg.issuer.clone(),
            configured_endpoint: cfg.introspection_endpoint.as_ref().map(|u| u.to_string()),
            auth_config: cfg.auth.clone(),
            credentials: RefCell::new(Rc::new(self.credentials)),
            auth: RefCell::new(None),
            last_seen: Cell::new(None),
            reload_interval: cfg.reload_interval,
            assertion_reuse: cfg.assertion_reuse,
            timeout: cfg.timeout,
            max_response_bytes: cfg.max_response_bytes,
            endpoints: tokio::sync::OnceCell::new(),
            metrics: self.metrics,
        }
    }
}

impl ClientSetup {
    pub fn new(cfg: &IdpConfig, credentials: Credentials, metrics: Arc<Metrics>) -> Result<ClientSetup, String> {
        let tls = Arc::new(tls_config(cfg.ca_file.as_deref())?);
        warn_if_plain_http("idp.issuer", &cfg.issuer);
        if let Some(e) = &cfg.introspection_endpoint {
            warn_if_plain_http("idp.introspection_endpoint", e.as_str());
        }
        Ok(ClientSetup {
            cfg: cfg.clone(),
            tls,
            credentials,
            metrics,
        })
    }
}

impl IdpClient {
    pub fn credentials(&self) -> Rc<Credentials> {
        self.credentials.borrow().clone()
    }

    /// Endpoints from discovery (once; concurrent callers share the one fetch), or as configured.
    pub async fn endpoints(&self) -> Result<&Endpoints, IdpError> {
        self.endpoints
            .get_or_try_init(|| async {
                match &self.configured_endpoint {
                    Some(e) => Ok(Endpoints {
                        issuer: self.issuer.clone(),
                        introspection: e.clone(),
                    }),
                    None => self.discover().await,
                }
            })
            .await
    }

    fn current_auth(&self, endpoints: &Endpoints) -> Rc<Auth> {
        if let Some(a) = self.auth.borrow().as_ref() {
            return a.clone();
        }
        let auth = Rc::new(Auth::new(
            &self.credentials.borrow(),
            &endpoints.issuer,
            self.assertion_reuse,
        ));
        *self.auth.borrow_mut() = Some(auth.clone());
        auth
    }

    /// Re-reads the key (or secret) file; a changed one is tested with one introspection of a random token and
    /// used only if the IdP accepts it. Anything else keeps the credentials in use.
    pub async fn reload_credentials(&self) {
        let Some(path) = self.auth_config.file() else {
            return;
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                log::warn!(
                    "cannot re-read {}: {}; keeping the credentials in use",
                    path.display(),
                    e.kind()
                );
                return;
            }
        };
        let raw: [u8; 32] = Sha256::digest(&bytes).into();
        if self.last_seen.get() == Some(raw) {
            return;
        }
        let reject = |why: String| {
            log::error!(
                "{}: new credentials rejected, keeping the ones in use: {why}",
                path.display()
            );
            self.metrics.credential_reloads.with_label_values(&["rejected"]).inc();
            self.last_seen.set(Some(raw));
        };
        let candidate = match Credentials::from_bytes(&self.auth_config, &bytes) {
            Ok(c) => c,
            Err(e) => return reject(e),
        };
        if candidate.fingerprint() == self.credentials.borrow().fingerprint() {
            self.last_seen.set(Some(raw));
            return;
        }
        let endpoints = match self.endpoints().await {
            Ok(e) => e,
            Err(e) => return log::warn!("cannot test the new credentials in {} yet: {e}", path.display()),
        };
        let auth = Rc::new(Auth::new(&candidate, &endpoints.issuer, self.assertion_reuse));
        match self.exchange(&auth, endpoints, &super::assertion::new_jti()).await {
            Ok(i) if !i.active => {
                log::info!(
                    "{}: new credentials in use (client id {})",
                    path.display(),
                    candidate.client_id()
                );
                *self.credentials.borrow_mut() = Rc::new(candidate);
                *self.auth.borrow_mut() = Some(auth);
                self.last_seen.set(Some(raw));
                self.metrics.credential_reloads.with_label_values(&["applied"]).inc();
            }
            Ok(_) => reject("the identity provider calls a random token active".into()),
            Err(e) if e.is_credentials() => reject(e.to_string()),
            // Not a verdict on the new credentials: try again on the next change check.
            Err(e) => log::warn!("cannot test the new credentials in {} yet: {e}", path.display()),
        }
    }

    /// Checks the credential file every `idp.reload_interval` and on SIGHUP.
    async fn watch_credentials(&self) {
        let Some(path) = self.auth_config.file() else {
            return;
        };
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| log::warn!("cannot listen for SIGHUP: {e}"))
            .ok();
        let mut tick = (!self.reload_interval.is_zero()).then(|| tokio::time::interval(self.reload_interval));
        loop {
            tokio::select! {
                _ = async { match tick.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending().await } } => {}
                _ = async { match hangup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending().await } } => {
                    log::info!("SIGHUP: re-reading {}", path.display());
                }
            }
            self.reload_credentials().await;
        }
    }

    async fn discover(&self) -> Result<Endpoints, IdpError> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer.trim_end_matches('/'));
        let fut = async {
            let mut resp = self.http.get(&url).send().await.map_err(send_error)?;
            if !resp.status().is_success() {
                return Err(IdpError::Discovery(format!(
                    "{url} answered HTTP {}",
                    resp.status().as_u16()
                )));
            }
            let body = resp
                .body()
                .limit(self.max_response_bytes.max(256 * 1024))
                .await
                .map_err(|e| IdpError::Discovery(format!("reading {url}: {e}")))?;
            let doc: Value =
                serde_json::from_slice(&body).map_err(|_| IdpError::Discovery(format!("{url} is not JSON")))?;
            let field = |name: &str| doc.get(name).and_then(Value::as_str).map(str::to_string);
            let issuer = field("issuer").ok_or_else(|| IdpError::Discovery(format!("{url} has no issuer")))?;
            let introspection = field("introspection_endpoint")
                .ok_or_else(|| IdpError::Discovery(format!("{url} has no introspection_endpoint")))?;
            if issuer.trim_end_matches('/') != self.issuer.trim_end_matches('/') {
                log::warn!(
                    "discovery says the issuer is {issuer}, configured is {}: using {issuer} as the assertion audience",
                    self.issuer
                );
            }
            let methods = doc
                .get("introspection_endpoint_auth_methods_supported")
                .or_else(|| doc.get("token_endpoint_auth_methods_supported"))
                .and_then(Value::as_array);
            if let Some(methods) = methods
                && !methods
                    .iter()
                    .any(|m| m.as_str() == Some(self.credentials.borrow().method()))
            {
                log::warn!(
                    "the identity provider does not advertise {} for introspection",
                    self.credentials.borrow().method()
                );
            }
            warn_if_plain_http("introspection_endpoint", &introspection);
            Ok(Endpoints { issuer, introspection })
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| IdpError::Timeout)?
    }

    async fn call(&self, token: &str) -> Result<Introspection, IdpError> {
        let endpoints = self.endpoints().await?;
        let auth = self.current_auth(endpoints);
        self.exchange(&auth, endpoints, token).await
    }

    async fn exchange(&self, auth: &Auth, endpoints: &Endpoints, token: &str) -> Result<Introspection, IdpError> {
        let mut req = self
            .http
            .post(&endpoints.introspection)
            .insert_header((awc::http::header::ACCEPT, "application/json"));
        let assertion;
        let mut form: Vec<(&str, &str)> = vec![("token", token)];
        match auth {
            Auth::Assertion(signer) => {
                let (a, signed) = signer.assertion(SystemClock.now_secs()).map_err(IdpError::Signing)?;
                if signed {
                    self.metrics.assertions_signed.inc();
                }
                assertion = a;
                form.push(("client_assertion_type", ASSERTION_TYPE));
                form.push(("client_assertion", assertion.expose()));
            }
            Auth::Basic(header) => {
                req = req.insert_header((awc::http::header::AUTHORIZATION, header.expose()));
            }
        }
        let fut = async {
            let mut resp = req.send_form(&form).await.map_err(send_error)?;
            let status = resp.status();
            let body = resp.body().limit(self.max_response_bytes).await.map_err(|e| match e {
                awc::error::PayloadError::Overflow => IdpError::ResponseTooLarge,
                other => IdpError::Unreachable(format!("reading the response: {other}")),
            })?;
            classify(status, &body)
        };
        // One deadline for the whole exchange, body included: a body dripped byte by byte must not hold a check.
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| IdpError::Timeout)?
    }
}

fn send_error(e: awc::error::SendRequestError) -> IdpError {
    use awc::error::SendRequestError as E;
    match e {
        E::Timeout => IdpError::Timeout,
        E::Connect(c) => IdpError::Unreachable(c.to_string()),
        other => IdpError::Unreachable(other.to_string()),
    }
}

/// The IdP's answer as a result. Token-specific refusals (`unsupported_token_type`, `invalid_token`) concern one
/// token; any other 4xx means our own client authentication or request is wrong.
pub fn classify(status: StatusCode, body: &[u8]) -> Result<Introspection, IdpError> {
    let code = status.as_u16();
    if status.is_success() {
        return Ok(Introspection::parse(body)?);
    }
    if status.is_redirection() {
        return Err(IdpError::Redirect(code));
    }
    if code == 429 {
        return Err(IdpError::RateLimited);
    }
    if status.is_client_error() {
        let error = error_code(body);
        return Err(
            if matches!(error.as_str(), "unsupported_token_type" | "invalid_token") {
                IdpError::TokenRefused { status: code, error }
            } else {
                IdpError::CredentialsRejected { status: code, error }
            },
        );
    }
    Err(IdpError::ServerError(code))
}

impl Introspect for IdpClient {
    async fn prepare(&self) -> Result<(), IdpError> {
        self.endpoints().await.map(|_| ())
    }

    async fn background(&self) {
        self.watch_credentials().await;
    }

    async fn introspect(&self, token: &str) -> Result<Introspection, IdpError> {
        let started = Instant::now();
        let result = self.call(token).await;
        self.metrics
            .introspection_duration
            .observe(started.elapsed().as_secs_f64());
        let outcome = match &result {
            Ok(i) if i.active => "active",
            Ok(_) => "inactive",
            Err(e) => {
                self.metrics.idp_error(e);
                "error"
            }
        };
        self.metrics.introspection_requests.with_label_values(&[outcome]).inc();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = tls_config(Some(&empty)).unwrap_err();
        assert!(err.contains("no certificates"), "{err}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(tls_config(Some(&garbage)).unwrap_err().starts_with("idp.ca_file"));
        assert!(tls_config(None).is_ok(), "Mozilla's roots alone");
    }

    #[test]
    fn loopback_hosts() {
        for (url, want) in [
            ("http://127.0.0.1:8080", true),
            ("http://localhost", true),
            ("http://[::1]:1", true),
            ("http://10.0.0.1", false),
            ("http://zitadel.example.com", false),
        ] {
            assert_eq!(is_loopback(&url::Url::parse(url).unwrap()), want, "{url}");
        }
    }

    #[test]
    fn status_classification() {
        let ok = |s: u16, b: &str| classify(StatusCode::from_u16(s).unwrap(), b.as_bytes());
        assert!(ok(200, r#"{"active":true}"#).unwrap().active);
        assert!(!ok(200, r#"{"active":false}"#).unwrap().active);
        assert!(matches!(ok(200, "<html>"), Err(IdpError::InvalidResponse(_))));
        assert_eq!(
            ok(400, r#"{"error":"unauthorized_client"}"#),
            Err(IdpError::CredentialsRejected {
                status: 400,
                error: "unauthorized_client".into()
            })
        );
        assert_eq!(
            ok(401, r#"{"error":"invalid_client"}"#),
            Err(IdpError::CredentialsRejected {
                status: 401,
                error: "invalid_client".into()
            })
        );
        assert_eq!(
            ok(403, "nope"),
            Err(IdpError::CredentialsRejected {
                status: 403,
                error: "no error code".into()
            })
        );
        assert_eq!(
            ok(400, r#"{"error":"unsupported_token_type"}"#),
            Err(IdpError::TokenRefused {
                status: 400,
                error: "unsupported_token_type".into()
            })
        );
        assert_eq!(
            ok(400, r#"{"error":"Evil\r\nInjected"}"#),
            Err(IdpError::CredentialsRejected {
                status: 400,
                error: "no error code".into()
            })
        );
        assert_eq!(ok(429, ""), Err(IdpError::RateLimited));
        assert_eq!(ok(500, ""), Err(IdpError::ServerError(500)));
        assert_eq!(ok(502, ""), Err(IdpError::ServerError(502)));
        assert_eq!(ok(302, ""), Err(IdpError::Redirect(302)));
    }
}
