//! The development identity provider: a ZITADEL look-alike for `tokengate dev` and the test suite (one
//! implementation, two uses). NOT FOR PRODUCTION: tokens are minted on request without any login.
//!
//! It behaves as ZITADEL's introspection does (see shared/notes/zitadel.md): client assertions are verified with the
//! public half of the API application's key file (RS256, `kid`, `aud` == issuer exactly, `iss` == `sub` ==
//! clientId, `exp` after now + 1 s, `iat` at most 1 s ahead and 1 h old), failures are 400 `unauthorized_client`,
//! an unparseable assertion gets 200 `{"active":false}`, inactive tokens get exactly `{"active":false}`, and a token
//! whose audience lacks the caller's client or project id is inactive. It counts introspections and can inject
//! faults (latency, status, body, hanging, dripping) for tests, benchmarks and soak runs.
//!
//! Endpoints: discovery, `POST /oauth/v2/introspect`, `POST /oauth/v2/revoke`, and for development
//! `POST /dev/token` (mint), `GET /dev/stats`, `POST /dev/faults`.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::clock::Clock;
use crate::token::introspect::ASSERTION_TYPE;
use crate::token::introspect::assertion::AssertionClaims;
use crate::token::introspect::keyfile::{KeyFile, pkcs8_to_pkcs1};

/// A new RSA-2048 API-application key in ZITADEL's download format (PKCS#1 PEM inside JSON).
pub fn generate_app_key(key_id: &str, app_id: &str, client_id: &str) -> Result<String, String> {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(|e| e.to_string())?;
    let pkcs8: Pkcs8V1Der = pair.as_der().map_err(|e| e.to_string())?;
    let pkcs1 = pkcs8_to_pkcs1(pkcs8.as_ref()).ok_or("cannot convert the generated key")?;
    let pem = pem::encode(&pem::Pem::new("RSA PRIVATE KEY", pkcs1));
    Ok(json!({"type": "application", "keyId": key_id, "key": pem, "appId": app_id, "clientId": client_id}).to_string())
}

fn now() -> u64 {
    crate::clock::SystemClock.now_secs()
}

fn random_id(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    let _ = aws_lc_rs::rand::fill(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// What a minted token grants.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TokenSpec {
    pub sub: String,
    pub scopes: Vec<String>,
    pub roles: Vec<String>,
    pub expires_in: u64,
    pub email: Option<String>,
    pub username: Option<String>,
    pub name: Option<String>,
    /// Defaults to the project id and every registered client id, as ZITADEL's project-audience scope gives.
    pub audience: Option<Vec<String>>,
    /// Further claims, e.g. to test header sanitising.
    pub extra: Map<String, Value>,
}

impl Default for TokenSpec {
    fn default() -> Self {
        TokenSpec {
            sub: "user-1".into(),
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            roles: vec![],
            expires_in: 3600,
            email: Some("user-1@example.com".into()),
            username: Some("user1".into()),
            name: Some("User One".into()),
            audience: None,
            extra: Map::new(),
        }
    }
}

impl TokenSpec {
    pub fn roles(mut self, roles: &[&str]) -> Self {
        self.roles = roles.iter().map(|r| r.to_string()).collect();
        self
    }
    pub fn scopes(mut self, scopes: &[&str]) -> Self {
        self.scopes = scopes.iter().map(|r| r.to_string()).collect();
        self
    }
    pub fn expires_in(mut self, secs: u64) -> Self {
        self.expires_in = secs;
        self
    }
}

struct TokenRecord {
    spec: TokenSpec,
    iat: u64,
    exp: u64,
    aud: Vec<String>,
    jti: String,
    revoked: bool,
}

struct ApiApp {
    client_id: String,
    key: DecodingKey,
}

/// Injected misbehaviour, applied to introspection requests.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Milliseconds to wait before answering.
    pub latency_ms: u64,
    /// Answer with this status and `body` instead of introspecting.
    pub status: Option<u16>,
    pub body: Option<String>,
    /// Never answer.
    pub hang: bool,
    /// Send the (real) answer one byte per second.
    pub drip: bool,
}

struct Inner {
    issuer: String,
    project_id: String,
    org_id: String,
    apps: RwLock<HashMap<String, ApiApp>>,
    basic: RwLock<HashMap<String, String>>,
    tokens: Mutex<HashMap<String, TokenRecord>>,
    introspections: AtomicU64,
    connections: AtomicU64,
    faults: Mutex<Faults>,
}

/// A running development IdP; clones share it.
#[derive(Clone)]
pub struct DevIdp {
    inner: Arc<Inner>,
}

#[derive(Debug, thiserror::Error)]
pub enum DevIdpError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("cannot create a key: {0}")]
    Key(String),
}

impl DevIdp {
    /// Serves on `listener` (inside an actix system); the issuer is `http://{listener address}`.
    pub fn start(listener: TcpListener) -> std::io::Result<(DevIdp, Server)> {
        let addr = listener.local_addr()?;
        let idp = DevIdp {
            inner: Arc::new(Inner {
                issuer: format!("http://{addr}"),
                project_id: "300000000000000001".into(),
                org_id: "200000000000000001".into(),
                apps: RwLock::new(HashMap::new()),
                basic: RwLock::new(HashMap::new()),
                tokens: Mutex::new(HashMap::new()),
                introspections: AtomicU64::new(0),
                connections: AtomicU64::new(0),
                faults: Mutex::new(Faults::default()),
            }),
        };
        let data = web::Data::new(idp.clone());
        let counted = idp.inner.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(1 << 20))
                .route("/.well-known/openid-configuration", web::get().to(discovery))
                .route("/oauth/v2/introspect", web::post().to(introspect))
                .route("/oauth/v2/revoke", web::post().to(revoke))
                .route("/dev/token", web::post().to(mint_endpoint))
                .route("/dev/stats", web::get().to(stats))
                .route("/dev/faults", web::post().to(set_faults_endpoint))
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

    /// Creates an API application with a fresh key, writes its key file into `dir` (mode 0600) and returns the path.
    pub fn add_api_app(&self, dir: &Path, name: &str) -> Result<PathBuf, DevIdpError> {
        let n = self.inner.apps.read().map(|a| a.len()).unwrap_or(0) + 1;
        let key_id = format!("{:018}", 100_000_000_000_000_000u64 + n as u64);
        let client_id = format!("{name}@{}", self.inner.project_id);
        let text = generate_app_key(
            &key_id,
            &format!("{:018}", 400_000_000_000_000_000u64 + n as u64),
            &client_id,
        )
        .map_err(DevIdpError::Key)?;
        let path = dir.join(format!("{name}-key.json"));
        std::fs::write(&path, &text)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        self.register_key_file(text.as_bytes()).map_err(DevIdpError::Key)?;
        Ok(path)
    }

    /// Trusts the public half of a key file for JWT-profile client authentication.
    pub fn register_key_file(&self, bytes: &[u8]) -> Result<(), String> {
        let key = KeyFile::parse(bytes).map_err(|e| e.to_string())?;
        let app = ApiApp {
            client_id: key.client_id.clone(),
            key: DecodingKey::from_rsa_der(&key.public_der),
        };
        if let Ok(mut apps) = self.inner.apps.write() {
            apps.insert(key.key_id.clone(), app);
        }
        Ok(())
    }

    /// Forgets one key, as deleting it in the console does: assertions signed with it are then refused.
    pub fn remove_key(&self, key_id: &str) {
        if let Ok(mut apps) = self.inner.apps.write() {
            apps.remove(key_id);
        }
    }

    /// Forgets every key.
    pub fn remove_keys(&self) {
        if let Ok(mut apps) = self.inner.apps.write() {
            apps.clear();
        }
    }

    /// A client for HTTP Basic authentication.
    pub fn add_basic_client(&self, client_id: &str, secret: &str) {
        if let Ok(mut b) = self.inner.basic.write() {
            b.insert(client_id.into(), secret.into());
        }
    }

    /// Mints an opaque access token.
    pub fn mint(&self, spec: TokenSpec) -> String {
        let token = random_id(32);
        self.insert_token(&token, spec);
        token
    }

    /// Issues a given token string: a restarted IdP process can honour the tokens it issued before.
    pub fn insert_token(&self, token: &str, spec: TokenSpec) {
        let iat = now();
        let aud = spec.audience.clone().unwrap_or_else(|| {
            let mut aud = vec![self.inner.project_id.clone()];
            if let Ok(apps) = self.inner.apps.read() {
                aud.extend(apps.values().map(|a| a.client_id.clone()));
            }
            if let Ok(b) = self.inner.basic.read() {
                aud.extend(b.keys().cloned());
            }
            aud
        });
        let record = TokenRecord {
            exp: iat + spec.expires_in,
            spec,
            iat,
            aud,
            jti: random_id(12),
            revoked: false,
        };
        if let Ok(mut t) = self.inner.tokens.lock() {
            t.insert(token.to_string(), record);
        }
    }

    pub fn revoke(&self, token: &str) {
        if let Ok(mut t) = self.inner.tokens.lock()
            && let Some(r) = t.get_mut(token)
        {
            r.revoked = true;
        }
    }

    /// Introspection requests received (any outcome).
    pub fn introspections(&self) -> u64 {
        self.inner.introspections.load(Ordering::SeqCst)
    }

    /// TCP connections accepted (discovery and introspection alike).
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

    /// ZITADEL's checks on a client assertion; `Err` is what ZITADEL answers.
    fn authenticate_assertion(&self, assertion: &str) -> Result<String, Refusal> {
        let Ok(header) = jsonwebtoken::decode_header(assertion) else {
            // ZITADEL quirk: an assertion that does not even parse gets "inactive", not an error.
            return Err(Refusal::Inactive);
        };
        let apps = self.inner.apps.read().map_err(|_| Refusal::Unauthorized)?;
        let app = header
            .kid
            .as_deref()
            .and_then(|k| apps.get(k))
            .ok_or(Refusal::Unauthorized)?;
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&[&self.inner.issuer]);
        v.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
        v.leeway = 0;
        let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, &app.key, &v)
            .map_err(|_| Refusal::Unauthorized)?
            .claims;
        let t = now();
        let ok = claims.iss == app.client_id
            && claims.sub == app.client_id
            && claims.exp > t + 1
            && claims.iat <= t + 1
            && claims.iat + 3600 >= t;
        if ok {
            Ok(app.client_id.clone())
        } else {
            Err(Refusal::Unauthorized)
        }
    }

    fn authenticate_basic(&self, header: &str) -> Result<String, Refusal> {
        let encoded = header.strip_prefix("Basic ").ok_or(Refusal::Unauthorized)?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(Refusal::Unauthorized)?;
        let (id, secret) = decoded.split_once(':').ok_or(Refusal::Unauthorized)?;
        let dec = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        let (id, secret) = (
            dec(id).ok_or(Refusal::Unauthorized)?,
            dec(secret).ok_or(Refusal::Unauthorized)?,
        );
        let clients = self.inner.basic.read().map_err(|_| Refusal::Unauthorized)?;
        match clients.get(&id) {
            Some(s) if *s == secret => Ok(id),
            _ => Err(Refusal::Unauthorized),
        }
    }

    fn active_response(&self, r: &TokenRecord) -> Value {
        let s = &r.spec;
        let mut o = Map::new();
        o.insert("active".into(), json!(true));
        o.insert("scope".into(), json!(s.scopes.join(" ")));
        o.insert("client_id".into(), json!(format!("web@{}", self.inner.project_id)));
        o.insert("token_type".into(), json!("Bearer"));
        o.insert("exp".into(), json!(r.exp));
        for claim in ["iat", "nbf", "auth_time"] {
            o.insert(claim.into(), json!(r.iat));
        }
        o.insert("amr".into(), json!(["pwd"]));
        o.insert("aud".into(), json!(r.aud));
        o.insert("iss".into(), json!(self.inner.issuer));
        o.insert("jti".into(), json!(r.jti));
        o.insert("sub".into(), json!(s.sub));
        if let Some(name) = &s.name {
            let (given, family) = name.split_once(' ').unwrap_or((name, ""));
            o.insert("name".into(), json!(name));
            o.insert("given_name".into(), json!(given));
            o.insert("family_name".into(), json!(family));
        }
        if let Some(u) = &s.username {
            o.insert("preferred_username".into(), json!(u));
            o.insert("username".into(), json!(u));
        }
        o.insert("locale".into(), Value::Null);
        if let Some(e) = &s.email {
            o.insert("email".into(), json!(e));
            o.insert("email_verified".into(), json!(true));
        }
        if !s.roles.is_empty() {
            let roles: Map<String, Value> = s
                .roles
                .iter()
                .map(|r| (r.clone(), json!({ self.inner.org_id.clone(): "example.localhost" })))
                .collect();
            o.insert("urn:zitadel:iam:org:project:roles".into(), Value::Object(roles.clone()));
            o.insert(
                format!("urn:zitadel:iam:org:project:{}:roles", self.inner.project_id),
                Value::Object(roles),
            );
        }
        o.insert("urn:zitadel:iam:user:resourceowner:id".into(), json!(self.inner.org_id));
        o.insert("urn:zitadel:iam:user:resourceowner:name".into(), json!("Example"));
        o.insert(
            "urn:zitadel:iam:user:resourceowner:primary_domain".into(),
            json!("example.localhost"),
        );
        for (k, v) in &s.extra {
            o.insert(k.clone(), v.clone());
        }
        Value::Object(o)
    }
}

/// How the double refuses a client, as ZITADEL does.
enum Refusal {
    /// ZITADEL's quirk for assertions that do not parse.
    Inactive,
    Unauthorized,
}

impl Refusal {
    fn response(self) -> HttpResponse {
        match self {
            Refusal::Inactive => inactive(),
            Refusal::Unauthorized => unauthorized(),
        }
    }
}

fn unauthorized() -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"error": "unauthorized_client"}))
}

fn invalid_request(description: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"error": "invalid_request", "error_description": description}))
}

fn inactive() -> HttpResponse {
    HttpResponse::Ok().json(json!({"active": false}))
}

async fn discovery(idp: web::Data<DevIdp>) -> HttpResponse {
    let i = idp.issuer();
    HttpResponse::Ok().json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/oauth/v2/authorize"),
        "token_endpoint": format!("{i}/oauth/v2/token"),
        "introspection_endpoint": format!("{i}/oauth/v2/introspect"),
        "revocation_endpoint": format!("{i}/oauth/v2/revoke"),
        "jwks_uri": format!("{i}/oauth/v2/keys"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
    }))
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

async fn introspect(req: HttpRequest, body: web::Bytes, idp: web::Data<DevIdp>) -> HttpResponse {
    idp.inner.introspections.fetch_add(1, Ordering::SeqCst);
    let faults = idp.faults();
    if faults.hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if let Some(status) = faults.status {
        let status =
            actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
        return HttpResponse::build(status)
            .content_type("application/json")
            .body(faults.body.unwrap_or_default());
    }
    if let Some(body) = faults.body {
        return HttpResponse::Ok().content_type("application/json").body(body);
    }
    let answer = introspect_answer(&req, &body, &idp);
    if faults.drip {
        return drip(answer).await;
    }
    answer
}

fn introspect_answer(req: &HttpRequest, body: &[u8], idp: &DevIdp) -> HttpResponse {
    let f = form(body);
    let basic = req.headers().get("authorization").and_then(|v| v.to_str().ok());
    let assertion = f.get("client_assertion");
    let client_id = match (basic, assertion) {
        (Some(_), Some(_)) => return invalid_request("only one client authentication method may be used"),
        (None, Some(a)) => {
            if f.get("client_assertion_type").map(String::as_str) != Some(ASSERTION_TYPE) {
                return invalid_request("unsupported client_assertion_type");
            }
            match idp.authenticate_assertion(a) {
                Ok(id) => id,
                Err(refusal) => return refusal.response(),
            }
        }
        (Some(b), None) => match idp.authenticate_basic(b) {
            Ok(id) => id,
            Err(refusal) => return refusal.response(),
        },
        (None, None) => return invalid_request("client credentials missing"),
    };
    let Some(token) = f.get("token").filter(|t| !t.is_empty()) else {
        return invalid_request("token missing");
    };
    let Ok(tokens) = idp.inner.tokens.lock() else {
        return inactive();
    };
    match tokens.get(token) {
        Some(r) if !r.revoked && r.exp > now() => {
            // "token is not valid for this client": the audience must name the caller or its project.
            if !r.aud.iter().any(|a| *a == client_id || *a == idp.inner.project_id) {
                return inactive();
            }
            HttpResponse::Ok().json(idp.active_response(r))
        }
        _ => inactive(),
    }
}

async fn drip(answer: HttpResponse) -> HttpResponse {
    let status = answer.status();
    let bytes = actix_web::body::to_bytes(answer.into_body()).await.unwrap_or_default();
    let stream = futures_util::stream::unfold(0usize, move |i| {
        let bytes = bytes.clone();
        async move {
            if i >= bytes.len() {
                return None;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some((Ok::<_, actix_web::Error>(bytes.slice(i..i + 1)), i + 1))
        }
    });
    HttpResponse::build(status)
        .content_type("application/json")
        .streaming(stream)
}

async fn revoke(body: web::Bytes, idp: web::Data<DevIdp>) -> HttpResponse {
    if let Some(t) = form(&body).get("token") {
        idp.revoke(t);
    }
    HttpResponse::Ok().finish()
}

/// `POST /dev/token?sub=alice&scope=openid%20read&role=admin&role=ops&expires_in=600&email=a@x`, or a JSON
/// `TokenSpec` body.
async fn mint_endpoint(req: HttpRequest, body: web::Bytes, idp: web::Data<DevIdp>) -> HttpResponse {
    let mut spec: TokenSpec = if body.is_empty() {
        TokenSpec::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(s) => s,
            Err(e) => return invalid_request(&format!("body is not a token spec: {e}")),
        }
    };
    let mut scopes = Vec::new();
    let mut roles = Vec::new();
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        match k.as_ref() {
            "sub" => spec.sub = v.into_owned(),
            "scope" => scopes.extend(v.split(' ').filter(|s| !s.is_empty()).map(str::to_string)),
            "role" => roles.push(v.into_owned()),
            "email" => spec.email = Some(v.into_owned()),
            "username" => spec.username = Some(v.into_owned()),
            "expires_in" => match v.parse() {
                Ok(n) => spec.expires_in = n,
                Err(_) => return invalid_request("expires_in is not a number"),
            },
            other => return invalid_request(&format!("unknown parameter {other}")),
        }
    }
    if !scopes.is_empty() {
        spec.scopes = scopes;
    }
    if !roles.is_empty() {
        spec.roles = roles;
    }
    let expires_in = spec.expires_in;
    let token = idp.mint(spec);
    HttpResponse::Ok().json(json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in}))
}

async fn stats(idp: web::Data<DevIdp>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"introspections": idp.introspections()}))
}

async fn set_faults_endpoint(body: web::Json<Faults>, idp: web::Data<DevIdp>) -> HttpResponse {
    idp.set_faults(body.into_inner());
    HttpResponse::Ok().finish()
}
