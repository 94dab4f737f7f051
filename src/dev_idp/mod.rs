//! The development identity provider: a ZITADEL look-alike for `tokengate dev` and the test suite (one
//! implementation, two uses), behind the default-on cargo feature `dev-idp`. NOT FOR PRODUCTION: tokens are minted
//! on request without any login.
//!
//! It behaves as ZITADEL does (see shared/notes/zitadel.md):
//! - Introspection (`clients.rs`): client assertions are verified with the public half of the API application's
//!   key file (RS256, `kid`, `aud` == issuer exactly, `iss` == `sub` == clientId, `exp` after now + 1 s, `iat` at
//!   most 1 s ahead and 1 h old, `jti` not read); failures are 400 `unauthorized_client`, an unparseable assertion
//!   gets 200 `{"active":false}`. Inactive tokens get exactly `{"active":false}`, and a token whose audience lacks
//!   the caller's client or project id is inactive (`tokens.rs`).
//! - Tokens are opaque or JWT access tokens (`tokens.rs`); its introspection answers for both, revocation included.
//! - JWTs are signed with keys published at `/oauth/v2/keys` (`jwt.rs`), rotated on request the way ZITADEL rotates
//!   them: the next key is published before it signs, the replaced key stays published until retired.
//! - The discovery document is ZITADEL's, field for field (`discovery.rs`).
//!
//! For tests, benchmarks and soak runs it counts introspections and key-set fetches and can inject faults
//! (`faults.rs`). Endpoints (`endpoints.rs`): discovery, `GET /oauth/v2/keys`, `POST /oauth/v2/introspect`,
//! `POST /oauth/v2/revoke`, and for development `POST /dev/token` (mint), `GET /dev/stats`, `POST /dev/faults`,
//! `POST /dev/faults/jwks` and `POST /dev/keys/{rotate,next,activate,retire}`.

mod clients;
mod discovery;
mod endpoints;
mod faults;
mod jwt;
mod tokens;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use base64::Engine;

use crate::clock::Clock;
use crate::token::introspect::keyfile::{KeyFile, KeyFileError};

pub use clients::generate_app_key;
pub use faults::{Faults, JwksFaults};
pub use jwt::{KeyAlg, KeyState, SigningKey};
pub use tokens::TokenSpec;

use jwt::KeyRing;
use tokens::{Tenant, TokenRecord, TokenStore};

#[derive(Debug, thiserror::Error)]
pub enum DevIdpError {
    #[error("cannot write the key file: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot generate a key")]
    KeyGeneration(#[source] aws_lc_rs::error::Unspecified),
    #[error("cannot convert the generated key")]
    KeyConversion,
    #[error("the key file is not usable")]
    KeyFile(#[from] KeyFileError),
    #[error("cannot sign the token")]
    Sign(#[source] jsonwebtoken::errors::Error),
    #[error("the double cannot sign with that algorithm")]
    UnsupportedAlgorithm,
    #[error("no such key in the key set")]
    UnknownKey,
    #[error("the active signing key cannot be retired")]
    ActiveKey,
    #[error("no key is waiting to be activated")]
    NoNextKey,
    #[error("the key set is unavailable after a panic")]
    Poisoned,
}

fn now() -> u64 {
    crate::clock::SystemClock.now_secs()
}

fn random_id(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    let _ = aws_lc_rs::rand::fill(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

struct Inner {
    issuer: String,
    project_id: String,
    org_id: String,
    clients: clients::Clients,
    tokens: TokenStore,
    /// Made on first use: an RSA key takes a while to generate, and most tests never sign a JWT.
    keys: RwLock<Option<KeyRing>>,
    introspections: AtomicU64,
    jwks_fetches: AtomicU64,
    connections: AtomicU64,
    faults: Mutex<Faults>,
    jwks_faults: Mutex<JwksFaults>,
}

/// A running development IdP; clones share it.
#[derive(Clone)]
pub struct DevIdp {
    inner: Arc<Inner>,
}

impl DevIdp {
    /// Serves on `listener` (inside an actix system); the issuer is `http://{listener address}`. JWTs are signed
    /// with an RS256 key, as ZITADEL's default web key.
    pub fn start(listener: TcpListener) -> std::io::Result<(DevIdp, Server)> {
        let addr = listener.local_addr()?;
        let idp = DevIdp {
            inner: Arc::new(Inner {
                issuer: format!("http://{addr}"),
                project_id: "300000000000000001".into(),
                org_id: "200000000000000001".into(),
                clients: clients::Clients::default(),
                tokens: TokenStore::default(),
                keys: RwLock::new(None),
                introspections: AtomicU64::new(0),
                jwks_fetches: AtomicU64::new(0),
                connections: AtomicU64::new(0),
                faults: Mutex::new(Faults::default()),
                jwks_faults: Mutex::new(JwksFaults::default()),
            }),
        };
        let data = web::Data::new(idp.clone());
        let counted = idp.inner.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(1 << 20))
                .configure(endpoints::routes)
        })
        .on_connect(move |_, _| {
            counted.connections.fetch_add(1, Ordering::SeqCst);
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)?
        .run();
        Ok((idp, server))
    }

    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    pub fn project_id(&self) -> &str {
        &self.inner.project_id
    }

    fn tenant(&self) -> Tenant<'_> {
        Tenant {
            issuer: &self.inner.issuer,
            project_id: &self.inner.project_id,
            org_id: &self.inner.org_id,
        }
    }

    /// Creates an API application with a fresh key, writes its key file into `dir` (mode 0600) and returns the path.
    pub fn add_api_app(&self, dir: &Path, name: &str) -> Result<PathBuf, DevIdpError> {
        let n = self.inner.clients.app_count() as u64 + 1;
        let key_id = format!("{:018}", 100_000_000_000_000_000u64 + n);
        let client_id = format!("{name}@{}", self.inner.project_id);
        let text = generate_app_key(&key_id, &format!("{:018}", 400_000_000_000_000_000u64 + n), &client_id)?;
        let path = dir.join(format!("{name}-key.json"));
        std::fs::write(&path, &text)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        self.register_key_file(text.as_bytes())?;
        Ok(path)
    }

    /// Trusts the public half of a key file for JWT-profile client authentication.
    pub fn register_key_file(&self, bytes: &[u8]) -> Result<(), KeyFileError> {
        self.inner.clients.register(&KeyFile::parse(bytes)?);
        Ok(())
    }

    /// Forgets one key, as deleting it in the console does: assertions signed with it are then refused.
    pub fn remove_key(&self, key_id: &str) {
        self.inner.clients.remove_key(key_id);
    }

    /// Forgets every key.
    pub fn remove_keys(&self) {
        self.inner.clients.remove_keys();
    }

    /// A client for HTTP Basic authentication.
    pub fn add_basic_client(&self, client_id: &str, secret: &str) {
        self.inner.clients.add_basic(client_id, secret);
    }

    fn record(&self, spec: TokenSpec, kid: Option<String>) -> TokenRecord {
        let project = self.inner.project_id.clone();
        TokenRecord::new(
            spec,
            now(),
            random_id(12),
            || {
                let mut aud = vec![project];
                aud.extend(self.inner.clients.client_ids());
                aud
            },
            kid,
        )
    }

    /// Mints an opaque access token.
    pub fn mint(&self, spec: TokenSpec) -> String {
        let token = random_id(32);
        self.insert_token(&token, spec);
        token
    }

    /// Issues a given token string: a restarted IdP process can honour the tokens it issued before.
    pub fn insert_token(&self, token: &str, spec: TokenSpec) {
        self.inner.tokens.insert(token, self.record(spec, None));
    }

    /// Mints a JWT access token signed with the active key (RS256 unless rotated to another algorithm), with the
    /// claims ZITADEL puts in one. Introspection answers for it like for an opaque token, revocation included.
    pub fn mint_jwt(&self, spec: TokenSpec) -> Result<String, DevIdpError> {
        let key = self.read_keys(|k| k.active())?.ok_or(DevIdpError::UnknownKey)?;
        self.mint_jwt_signed(spec, &key)
    }

    /// Like `mint_jwt`, signed with a published key that need not be the active one (e.g. one published by
    /// `publish_next_key` to sign with another algorithm).
    pub fn mint_jwt_with_key(&self, spec: TokenSpec, kid: &str) -> Result<String, DevIdpError> {
        let key = self.read_keys(|k| k.get(kid))?.ok_or(DevIdpError::UnknownKey)?;
        self.mint_jwt_signed(spec, &key)
    }

    fn mint_jwt_signed(&self, spec: TokenSpec, key: &SigningKey) -> Result<String, DevIdpError> {
        let record = self.record(spec, Some(key.kid().to_string()));
        let token = key.sign(&serde_json::Value::Object(record.jwt_claims(&self.tenant())))?;
        self.inner.tokens.insert(&token, record);
        Ok(token)
    }

    /// A JWT shaped like `mint_jwt`'s but signed with `key`, which the IdP never published (e.g. one from
    /// `SigningKey::generate`): for "signed by an unknown key" tests. It is not issued, so introspection calls it
    /// inactive.
    pub fn mint_jwt_signed_by(&self, spec: TokenSpec, key: &SigningKey) -> Result<String, DevIdpError> {
        let record = self.record(spec, Some(key.kid().to_string()));
        key.sign(&serde_json::Value::Object(record.jwt_claims(&self.tenant())))
    }

    pub fn revoke(&self, token: &str) {
        self.inner.tokens.revoke(token);
    }

    fn read_keys<T>(&self, f: impl FnOnce(&KeyRing) -> T) -> Result<T, DevIdpError> {
        {
            let keys = self.inner.keys.read().map_err(|_| DevIdpError::Poisoned)?;
            if let Some(ring) = keys.as_ref() {
                return Ok(f(ring));
            }
        }
        self.write_keys(|ring| Ok(f(ring)))
    }

    fn write_keys<T>(&self, f: impl FnOnce(&mut KeyRing) -> Result<T, DevIdpError>) -> Result<T, DevIdpError> {
        let mut keys = self.inner.keys.write().map_err(|_| DevIdpError::Poisoned)?;
        let ring = match keys.as_mut() {
            Some(ring) => ring,
            None => keys.insert(KeyRing::new(KeyAlg::RS256)?),
        };
        f(ring)
    }

    /// The kid of the key that signs new JWTs.
    pub fn signing_kid(&self) -> Result<String, DevIdpError> {
        self.read_keys(|k| k.active().map(|key| key.kid().to_string()))?
            .ok_or(DevIdpError::UnknownKey)
    }

    /// Like `signing_kid`, without making the first key when none was needed yet (for `/dev/stats`).
    fn signing_kid_if_made(&self) -> Option<String> {
        let keys = self.inner.keys.read().ok()?;
        keys.as_ref()?.active().map(|k| k.kid().to_string())
    }

    /// Every published key and its state, in publication order.
    pub fn keys(&self) -> Result<Vec<(String, KeyState)>, DevIdpError> {
        self.read_keys(KeyRing::states)
    }

    /// The published key set, as `GET /oauth/v2/keys` serves it.
    pub fn jwks(&self) -> Result<jsonwebtoken::jwk::JwkSet, DevIdpError> {
        self.read_keys(KeyRing::jwks)
    }

    /// Step one of a rotation: a new key of `alg` is published in the key set but does not sign yet.
    pub fn publish_next_key(&self, alg: KeyAlg) -> Result<String, DevIdpError> {
        self.write_keys(|k| k.publish_next(alg))
    }

    /// Step two: the oldest published-but-unused key starts signing; the one it replaces stays published.
    pub fn activate_next_key(&self) -> Result<String, DevIdpError> {
        self.write_keys(|k| k.activate_next().ok_or(DevIdpError::NoNextKey))
    }

    /// Both steps at once, with the active key's algorithm: returns the new signing kid.
    pub fn rotate_signing_key(&self) -> Result<String, DevIdpError> {
        self.write_keys(|k| {
            let alg = k.active().map(|a| a.alg()).unwrap_or(KeyAlg::RS256);
            k.publish_next(alg)?;
            k.activate_next().ok_or(DevIdpError::NoNextKey)
        })
    }

    /// Removes a replaced key from the key set: tokens it signed no longer verify, nor introspect as active.
    pub fn retire_key(&self, kid: &str) -> Result<(), DevIdpError> {
        self.write_keys(|k| k.retire(kid))
    }

    /// Introspection requests received (any outcome).
    pub fn introspections(&self) -> u64 {
        self.inner.introspections.load(Ordering::SeqCst)
    }

    /// `GET /oauth/v2/keys` requests received (any outcome).
    pub fn jwks_fetches(&self) -> u64 {
        self.inner.jwks_fetches.load(Ordering::SeqCst)
    }

    /// TCP connections accepted (every endpoint alike).
    pub fn connections(&self) -> u64 {
        self.inner.connections.load(Ordering::SeqCst)
    }

    pub fn set_faults(&self, faults: Faults) {
        if let Ok(mut f) = self.inner.faults.lock() {
            *f = faults;
        }
    }

    fn faults(&self) -> Faults {
        self.inner.faults.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Faults for the key-set endpoint; `JwksFaults::default()` clears them.
    pub fn set_jwks_faults(&self, faults: JwksFaults) {
        if let Ok(mut f) = self.inner.jwks_faults.lock() {
            *f = faults;
        }
    }

    fn jwks_faults(&self) -> JwksFaults {
        self.inner.jwks_faults.lock().map(|f| f.clone()).unwrap_or_default()
    }
}
