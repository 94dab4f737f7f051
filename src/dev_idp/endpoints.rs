//! The HTTP surface: ZITADEL's discovery, key-set, introspection and revocation endpoints, and the `/dev/*`
//! endpoints that mint tokens, report counters, inject faults and rotate keys.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::clients::Refusal;
use super::discovery::{self, KEYS_PATH};
use super::{DevIdp, DevIdpError, Faults, JwksFaults, KeyAlg, TokenSpec, faults, now};
use crate::token::introspect::ASSERTION_TYPE;

/// ZITADEL's default `OIDC.JWKSCacheControlMaxAge` (5 minutes).
const JWKS_CACHE_CONTROL: &str = "max-age=300, must-revalidate";

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/.well-known/openid-configuration", web::get().to(discovery))
        .route(KEYS_PATH, web::get().to(keys))
        .route("/oauth/v2/introspect", web::post().to(introspect))
        .route("/oauth/v2/revoke", web::post().to(revoke))
        .route("/dev/token", web::post().to(mint))
        .route("/dev/stats", web::get().to(stats))
        .route("/dev/faults", web::post().to(set_faults))
        .route("/dev/faults/jwks", web::post().to(set_jwks_faults))
        .route("/dev/keys/rotate", web::post().to(rotate))
        .route("/dev/keys/next", web::post().to(publish_next))
        .route("/dev/keys/activate", web::post().to(activate))
        .route("/dev/keys/retire", web::post().to(retire));
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

fn refused(refusal: Refusal) -> HttpResponse {
    match refusal {
        Refusal::Inactive => inactive(),
        Refusal::Unauthorized => unauthorized(),
    }
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

async fn discovery(idp: web::Data<DevIdp>) -> HttpResponse {
    HttpResponse::Ok().json(discovery::document(idp.issuer()))
}

async fn keys(idp: web::Data<DevIdp>) -> HttpResponse {
    idp.inner.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let faults = idp.jwks_faults();
    if let Some(answer) = faults.before().await {
        return answer;
    }
    let set = if faults.empty {
        jsonwebtoken::jwk::JwkSet::default()
    } else {
        match idp.jwks() {
            Ok(set) => set,
            Err(e) => return key_error(&e),
        }
    };
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, JWKS_CACHE_CONTROL))
        .json(set)
}

async fn introspect(req: HttpRequest, body: web::Bytes, idp: web::Data<DevIdp>) -> HttpResponse {
    idp.inner.introspections.fetch_add(1, Ordering::SeqCst);
    let faults = idp.faults();
    if let Some(answer) = faults.before().await {
        return answer;
    }
    let answer = introspect_answer(&req, &body, &idp);
    if faults.drip {
        return faults::drip(answer).await;
    }
    answer
}

fn introspect_answer(req: &HttpRequest, body: &[u8], idp: &DevIdp) -> HttpResponse {
    let f = form(body);
    let basic = req.headers().get("authorization").and_then(|v| v.to_str().ok());
    let client_id = match (basic, f.get("client_assertion")) {
        (Some(_), Some(_)) => return invalid_request("only one client authentication method may be used"),
        (None, Some(assertion)) => {
            if f.get("client_assertion_type").map(String::as_str) != Some(ASSERTION_TYPE) {
                return invalid_request("unsupported client_assertion_type");
            }
            match idp.inner.clients.authenticate_assertion(assertion, idp.issuer(), now()) {
                Ok(id) => id,
                Err(refusal) => return refused(refusal),
            }
        }
        (Some(header), None) => match idp.inner.clients.authenticate_basic(header) {
            Ok(id) => id,
            Err(refusal) => return refused(refusal),
        },
        (None, None) => return invalid_request("client credentials missing"),
    };
    let Some(token) = f.get("token").filter(|t| !t.is_empty()) else {
        return invalid_request("token missing");
    };
    let Some(record) = idp.inner.tokens.get(token) else {
        return inactive();
    };
    // A JWT whose key was retired can no longer be verified by the IdP that signed it.
    let verifiable = match &record.kid {
        None => true,
        Some(kid) => idp.read_keys(|k| k.is_published(kid)).unwrap_or(false),
    };
    if !verifiable || !record.is_active(now()) || !record.is_for(&client_id, idp.project_id()) {
        return inactive();
    }
    HttpResponse::Ok().json(Value::Object(record.introspection(&idp.tenant())))
}

async fn revoke(body: web::Bytes, idp: web::Data<DevIdp>) -> HttpResponse {
    if let Some(t) = form(&body).get("token") {
        idp.revoke(t);
    }
    HttpResponse::Ok().finish()
}

/// `POST /dev/token?sub=alice&scope=openid%20read&role=admin&role=ops&expires_in=600&email=a@x`, or a JSON
/// `TokenSpec` body; `format=jwt` for a JWT access token (signed by the active key, or by `kid=…`).
async fn mint(req: HttpRequest, body: web::Bytes, idp: web::Data<DevIdp>) -> HttpResponse {
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
    let mut jwt = false;
    let mut kid = None;
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
            "format" => match v.as_ref() {
                "jwt" => jwt = true,
                "opaque" => jwt = false,
                _ => return invalid_request("format is opaque or jwt"),
            },
            "kid" => kid = Some(v.into_owned()),
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
    let token = match (jwt, kid) {
        (false, None) => Ok(idp.mint(spec)),
        (false, Some(_)) => return invalid_request("kid needs format=jwt"),
        (true, None) => idp.mint_jwt(spec),
        (true, Some(kid)) => idp.mint_jwt_with_key(spec, &kid),
    };
    match token {
        Ok(token) => {
            HttpResponse::Ok().json(json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in}))
        }
        Err(e) => key_error(&e),
    }
}

async fn stats(idp: web::Data<DevIdp>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "introspections": idp.introspections(),
        "jwks_fetches": idp.jwks_fetches(),
        "signing_kid": idp.signing_kid_if_made(),
    }))
}

async fn set_faults(body: web::Json<Faults>, idp: web::Data<DevIdp>) -> HttpResponse {
    idp.set_faults(body.into_inner());
    HttpResponse::Ok().finish()
}

async fn set_jwks_faults(body: web::Json<JwksFaults>, idp: web::Data<DevIdp>) -> HttpResponse {
    idp.set_jwks_faults(body.into_inner());
    HttpResponse::Ok().finish()
}

fn key_error(e: &DevIdpError) -> HttpResponse {
    let body = json!({"error": e.to_string()});
    match e {
        DevIdpError::UnknownKey => HttpResponse::NotFound().json(body),
        DevIdpError::ActiveKey | DevIdpError::NoNextKey => HttpResponse::Conflict().json(body),
        DevIdpError::UnsupportedAlgorithm => HttpResponse::BadRequest().json(body),
        _ => HttpResponse::InternalServerError().json(body),
    }
}

/// The kid acted on and the key set's state afterwards.
fn key_answer(idp: &DevIdp, result: Result<String, DevIdpError>) -> HttpResponse {
    match result {
        Ok(kid) => {
            let keys: Vec<Value> = idp
                .keys()
                .unwrap_or_default()
                .into_iter()
                .map(|(kid, state)| json!({"kid": kid, "state": state.label()}))
                .collect();
            HttpResponse::Ok().json(json!({"kid": kid, "keys": keys}))
        }
        Err(e) => key_error(&e),
    }
}

fn query(req: &HttpRequest, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `POST /dev/keys/rotate`: publish a new key and sign with it from now on.
async fn rotate(idp: web::Data<DevIdp>) -> HttpResponse {
    key_answer(&idp, idp.rotate_signing_key())
}

/// `POST /dev/keys/next[?alg=ES256]`: publish a key that does not sign yet.
async fn publish_next(req: HttpRequest, idp: web::Data<DevIdp>) -> HttpResponse {
    let alg = match query(&req, "alg").map(|a| a.parse::<KeyAlg>()) {
        None => Ok(KeyAlg::RS256),
        Some(parsed) => parsed,
    };
    key_answer(&idp, alg.and_then(|alg| idp.publish_next_key(alg)))
}

/// `POST /dev/keys/activate`: the oldest published-but-unused key starts signing.
async fn activate(idp: web::Data<DevIdp>) -> HttpResponse {
    key_answer(&idp, idp.activate_next_key())
}

/// `POST /dev/keys/retire?kid=…`: remove a replaced key from the key set.
async fn retire(req: HttpRequest, idp: web::Data<DevIdp>) -> HttpResponse {
    let Some(kid) = query(&req, "kid") else {
        return invalid_request("kid missing");
    };
    let result = idp.retire_key(&kid).map(|()| kid);
    key_answer(&idp, result)
}
