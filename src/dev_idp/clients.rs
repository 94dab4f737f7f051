//! Client authentication as ZITADEL checks it: API applications' keys (JWT-profile client assertions) and HTTP
//! Basic client secrets, plus the key files the double hands out.

use std::collections::HashMap;
use std::sync::RwLock;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::json;

use super::DevIdpError;
use crate::token::introspect::keyfile::{KeyFile, pkcs8_to_pkcs1};

/// A new RSA-2048 API-application key in ZITADEL's download format (PKCS#1 PEM inside JSON).
pub fn generate_app_key(key_id: &str, app_id: &str, client_id: &str) -> Result<String, DevIdpError> {
    let pair =
        aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(DevIdpError::KeyGeneration)?;
    let pkcs8: Pkcs8V1Der = pair.as_der().map_err(DevIdpError::KeyGeneration)?;
    let pkcs1 = pkcs8_to_pkcs1(pkcs8.as_ref()).ok_or(DevIdpError::KeyConversion)?;
    let pem = pem::encode(&pem::Pem::new("RSA PRIVATE KEY", pkcs1));
    Ok(json!({"type": "application", "keyId": key_id, "key": pem, "appId": app_id, "clientId": client_id}).to_string())
}

/// How ZITADEL refuses a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// ZITADEL's quirk: an assertion that does not even parse gets 200 `{"active":false}`.
    Inactive,
    /// 400 `{"error":"unauthorized_client"}`.
    Unauthorized,
}

/// The assertion claims ZITADEL reads. `aud` is checked while decoding; `jti` and `nbf` are not read at all, so an
/// assertion without them is accepted, as ZITADEL accepts it.
#[derive(Debug, Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    exp: u64,
    iat: u64,
}

struct ApiApp {
    client_id: String,
    key: DecodingKey,
}

/// The registered clients: API-application keys by `kid`, Basic secrets by client id.
#[derive(Default)]
pub(super) struct Clients {
    apps: RwLock<HashMap<String, ApiApp>>,
    basic: RwLock<HashMap<String, String>>,
}

impl Clients {
    /// Trusts the public half of an API application's key.
    pub fn register(&self, key: &KeyFile) {
        let app = ApiApp {
            client_id: key.client_id.clone(),
            key: DecodingKey::from_rsa_der(&key.public_der),
        };
        if let Ok(mut apps) = self.apps.write() {
            apps.insert(key.key_id.clone(), app);
        }
    }

    pub fn app_count(&self) -> usize {
        self.apps.read().map(|a| a.len()).unwrap_or(0)
    }

    pub fn remove_key(&self, key_id: &str) {
        if let Ok(mut apps) = self.apps.write() {
            apps.remove(key_id);
        }
    }

    pub fn remove_keys(&self) {
        if let Ok(mut apps) = self.apps.write() {
            apps.clear();
        }
    }

    pub fn add_basic(&self, client_id: &str, secret: &str) {
        if let Ok(mut b) = self.basic.write() {
            b.insert(client_id.into(), secret.into());
        }
    }

    /// Every client id the double knows (key-authenticated and Basic), for a token's default audience.
    pub fn client_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        if let Ok(apps) = self.apps.read() {
            ids.extend(apps.values().map(|a| a.client_id.clone()));
        }
        if let Ok(b) = self.basic.read() {
            ids.extend(b.keys().cloned());
        }
        ids
    }

    /// ZITADEL's checks on a client assertion at time `now`; `Ok` is the authenticated client id.
    ///
    /// The key is picked by `kid`; RS256 and PS256 are accepted (ZITADEL also takes ES256, but API-application
    /// keys are RSA); `aud` must name the issuer exactly; `iss` == `sub` == the key's client id; `exp` later than
    /// now + 1 s; `iat` at most 1 s ahead and at most 1 h old. No other clock skew is allowed.
    pub fn authenticate_assertion(&self, assertion: &str, issuer: &str, now: u64) -> Result<String, Refusal> {
        let Ok(header) = jsonwebtoken::decode_header(assertion) else {
            return Err(Refusal::Inactive);
        };
        let apps = self.apps.read().map_err(|_| Refusal::Unauthorized)?;
        let app = header
            .kid
            .as_deref()
            .and_then(|k| apps.get(k))
            .ok_or(Refusal::Unauthorized)?;
        let mut v = Validation::new(Algorithm::RS256);
        v.algorithms = vec![Algorithm::RS256, Algorithm::PS256];
        v.set_audience(&[issuer]);
        v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        // The time rules are ZITADEL's, checked below against the given clock.
        v.validate_exp = false;
        v.leeway = 0;
        let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, &app.key, &v)
            .map_err(|_| Refusal::Unauthorized)?
            .claims;
        let ok = claims.iss == app.client_id
            && claims.sub == app.client_id
            && claims.exp > now.saturating_add(1)
            && claims.iat <= now.saturating_add(1)
            && claims.iat.saturating_add(3600) >= now;
        if ok {
            Ok(app.client_id.clone())
        } else {
            Err(Refusal::Unauthorized)
        }
    }

    /// HTTP Basic with a registered client id and secret; `Ok` is the client id.
    pub fn authenticate_basic(&self, header: &str) -> Result<String, Refusal> {
        let (id, secret) = parse_basic(header).ok_or(Refusal::Unauthorized)?;
        let clients = self.basic.read().map_err(|_| Refusal::Unauthorized)?;
        match clients.get(&id) {
            Some(s) if *s == secret => Ok(id),
            _ => Err(Refusal::Unauthorized),
        }
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1) into its two parts, as Go's
/// `Request.BasicAuth` (the scheme case-insensitive) and `url.QueryUnescape` read it.
pub(super) fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((query_unescape(id)?, query_unescape(secret)?))
}

/// `+` is a space and `%XX` a byte; a broken escape is refused, as Go refuses it, and so is a non-UTF-8 result.
fn query_unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let text = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(text, 16).ok()?);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::Value;

    const ISSUER: &str = "http://127.0.0.1:9999";
    const NOW: u64 = 1_700_000_000;

    struct App {
        clients: Clients,
        key: KeyFile,
    }

    fn app() -> App {
        let text = generate_app_key("kid-1", "app-1", "api@project").unwrap();
        let key = KeyFile::parse(text.as_bytes()).unwrap();
        let clients = Clients::default();
        clients.register(&key);
        App { clients, key }
    }

    fn good_claims() -> Value {
        json!({"iss": "api@project", "sub": "api@project", "aud": ISSUER, "iat": NOW, "exp": NOW + 60, "jti": "j1"})
    }

    fn sign_with(key: &EncodingKey, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_string);
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    impl App {
        fn check(&self, claims: Value) -> Result<String, Refusal> {
            let token = sign_with(&self.key.encoding_key(), Algorithm::RS256, Some("kid-1"), &claims);
            self.clients.authenticate_assertion(&token, ISSUER, NOW)
        }
    }

    fn with(mut claims: Value, key: &str, value: Value) -> Value {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(key);
        } else {
            claims[key] = value;
        }
        claims
    }

    #[test]
    fn a_good_assertion_names_the_client() {
        assert_eq!(app().check(good_claims()), Ok("api@project".to_string()));
    }

    #[test]
    fn jti_is_not_required_as_zitadel_does_not_read_it() {
        assert_eq!(
            app().check(with(good_claims(), "jti", Value::Null)),
            Ok("api@project".to_string())
        );
    }

    #[test]
    fn audience_must_be_the_issuer_exactly() {
        let a = app();
        assert!(a.check(with(good_claims(), "aud", json!([ISSUER, "other"]))).is_ok());
        for aud in [
            json!(format!("{ISSUER}/")),
            json!(format!("{ISSUER}/oauth/v2/introspect")),
            json!("HTTP://127.0.0.1:9999"),
            json!(["other"]),
            Value::Null,
        ] {
            assert_eq!(
                a.check(with(good_claims(), "aud", aud.clone())),
                Err(Refusal::Unauthorized),
                "{aud}"
            );
        }
    }

    #[test]
    fn issuer_and_subject_must_both_be_the_client_id() {
        let a = app();
        assert_eq!(
            a.check(with(good_claims(), "iss", json!("x"))),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            a.check(with(good_claims(), "sub", json!("x"))),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            a.check(with(good_claims(), "iss", Value::Null)),
            Err(Refusal::Unauthorized)
        );
    }

    #[test]
    fn expiry_must_be_more_than_a_second_ahead() {
        let a = app();
        assert!(a.check(with(good_claims(), "exp", json!(NOW + 2))).is_ok());
        assert_eq!(
            a.check(with(good_claims(), "exp", json!(NOW + 1))),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            a.check(with(good_claims(), "exp", json!(NOW - 10))),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            a.check(with(good_claims(), "exp", Value::Null)),
            Err(Refusal::Unauthorized)
        );
    }

    #[test]
    fn issued_at_at_most_a_second_ahead_and_an_hour_old() {
        let a = app();
        assert!(a.check(with(good_claims(), "iat", json!(NOW + 1))).is_ok());
        assert_eq!(
            a.check(with(good_claims(), "iat", json!(NOW + 2))),
            Err(Refusal::Unauthorized)
        );
        assert!(a.check(with(good_claims(), "iat", json!(NOW - 3600))).is_ok());
        assert_eq!(
            a.check(with(good_claims(), "iat", json!(NOW - 3601))),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            a.check(with(good_claims(), "iat", Value::Null)),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            a.check(with(good_claims(), "iat", json!(u64::MAX))),
            Err(Refusal::Unauthorized),
            "no overflow"
        );
    }

    #[test]
    fn the_key_is_picked_by_kid_and_must_have_signed() {
        let a = app();
        let key = a.key.encoding_key();
        let refused = |token: String| a.clients.authenticate_assertion(&token, ISSUER, NOW);
        assert_eq!(
            refused(sign_with(&key, Algorithm::RS256, Some("kid-2"), &good_claims())),
            Err(Refusal::Unauthorized),
            "unknown kid"
        );
        assert_eq!(
            refused(sign_with(&key, Algorithm::RS256, None, &good_claims())),
            Err(Refusal::Unauthorized),
            "no kid"
        );
        let other = KeyFile::parse(generate_app_key("kid-1", "app-1", "api@project").unwrap().as_bytes()).unwrap();
        assert_eq!(
            refused(sign_with(
                &other.encoding_key(),
                Algorithm::RS256,
                Some("kid-1"),
                &good_claims()
            )),
            Err(Refusal::Unauthorized),
            "signed by another key"
        );
        assert!(refused(sign_with(&key, Algorithm::PS256, Some("kid-1"), &good_claims())).is_ok());
        assert_eq!(
            refused(sign_with(
                &EncodingKey::from_secret(b"s").unwrap(),
                Algorithm::HS256,
                Some("kid-1"),
                &good_claims()
            )),
            Err(Refusal::Unauthorized),
            "HMAC"
        );
        a.clients.remove_key("kid-1");
        assert_eq!(a.check(good_claims()), Err(Refusal::Unauthorized), "deleted key");
    }

    #[test]
    fn an_unparseable_assertion_is_inactive_not_an_error() {
        let a = app();
        for junk in ["", "not-a-jwt", "a.b.c"] {
            assert_eq!(
                a.clients.authenticate_assertion(junk, ISSUER, NOW),
                Err(Refusal::Inactive),
                "{junk}"
            );
        }
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            parse_basic(&format!("Basic {}", b64("api%40p:s%3Ae+cret"))),
            Some(("api@p".into(), "s:e cret".into()))
        );
        assert_eq!(
            parse_basic(&format!("basic {}", b64("id:secret"))),
            Some(("id".into(), "secret".into()))
        );
        assert_eq!(
            parse_basic(&format!("Basic {}", b64("id:a:b"))),
            Some(("id".into(), "a:b".into()))
        );
        for bad in [
            format!("Bearer {}", b64("id:secret")),
            format!("Basic {}", b64("no-colon")),
            format!("Basic {}", b64("id:%zz")),
            format!("Basic {}", b64("id:%4")),
            format!("Basic {}", b64("id:%ff")),
            "Basic !!!".to_string(),
            "Basic".to_string(),
        ] {
            assert_eq!(parse_basic(&bad), None, "{bad}");
        }
    }

    #[test]
    fn basic_authentication_needs_the_registered_secret() {
        let c = Clients::default();
        c.add_basic("web", "s3cret");
        let header = |s: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(s));
        assert_eq!(c.authenticate_basic(&header("web:s3cret")), Ok("web".into()));
        assert_eq!(c.authenticate_basic(&header("web:wrong")), Err(Refusal::Unauthorized));
        assert_eq!(
            c.authenticate_basic(&header("other:s3cret")),
            Err(Refusal::Unauthorized)
        );
    }

    #[test]
    fn client_ids_cover_keys_and_secrets() {
        let a = app();
        a.clients.add_basic("web", "s");
        let mut ids = a.clients.client_ids();
        ids.sort();
        assert_eq!(ids, vec!["api@project".to_string(), "web".to_string()]);
    }
}
