//! Token introspection (RFC 7662): the strictly parsed response, the compact `TokenInfo` kept in the cache, and the
//! error kinds of talking to the identity provider. The network lives in `client`, keys in `keyfile`/`assertion`.

pub mod assertion;
pub mod cache;
pub mod client;
pub mod keyfile;

use actix_web::http::header::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

use crate::config::{ClaimSource, HeaderRule};

/// An introspection response that passed strict parsing.
#[derive(Debug, Clone, PartialEq)]
pub struct Introspection {
    pub active: bool,
    pub exp: Option<u64>,
    pub aud: Vec<String>,
    pub scope: Option<String>,
    /// Every member of the response, for the header mapping and `tokengate introspect`.
    pub claims: Map<String, Value>,
}

/// Why a response could not be trusted. Never carries response content: it could echo the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidResponse {
    #[error("the body is not a JSON object")]
    NotAnObject,
    #[error("`active` is missing")]
    MissingActive,
    #[error("`active` is not a JSON boolean")]
    ActiveNotBoolean,
    #[error("`{0}` has the wrong type")]
    WrongType(&'static str),
    #[error("a member appears twice")]
    DuplicateMember,
}

/// A JSON object that refuses duplicate members. serde_json's map keeps the last of them, so
/// `{"active":false,"active":true}` would read as a grant; a strict parser must not pick one.
struct StrictObject(Map<String, Value>);

impl<'de> serde::Deserialize<'de> for StrictObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = StrictObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<StrictObject, A::Error> {
                let mut map = Map::new();
                while let Some((k, v)) = access.next_entry::<String, Value>()? {
                    if map.contains_key(&k) {
                        return Err(serde::de::Error::custom("duplicate member"));
                    }
                    map.insert(k, v);
                }
                Ok(StrictObject(map))
            }
        }
        d.deserialize_map(Visit)
    }
}

impl Introspection {
    /// Strict: a grant needs `active: true` as a JSON boolean; `exp`, `aud` and `scope` of the wrong type make the
    /// whole response invalid rather than being skipped, because skipping them could widen access.
    pub fn parse(body: &[u8]) -> Result<Introspection, InvalidResponse> {
        let claims = match serde_json::from_slice::<StrictObject>(body) {
            Ok(StrictObject(claims)) => claims,
            Err(e) if e.to_string().starts_with("duplicate member") => return Err(InvalidResponse::DuplicateMember),
            Err(_) => return Err(InvalidResponse::NotAnObject),
        };
        let active = match claims.get("active") {
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(InvalidResponse::ActiveNotBoolean),
            None => return Err(InvalidResponse::MissingActive),
        };
        if !active {
            return Ok(Introspection {
                active: false,
                exp: None,
                aud: vec![],
                scope: None,
                claims: Map::new(),
            });
        }
        let exp = match claims.get("exp") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
                (Some(u), _) => Some(u),
                (None, Some(f)) if f.is_finite() && f >= 0.0 => Some(f as u64),
                _ => return Err(InvalidResponse::WrongType("exp")),
            },
            Some(_) => return Err(InvalidResponse::WrongType("exp")),
        };
        let aud = match claims.get("aud") {
            None | Some(Value::Null) => vec![],
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or(InvalidResponse::WrongType("aud"))?,
            Some(_) => return Err(InvalidResponse::WrongType("aud")),
        };
        let scope = match claims.get("scope") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(InvalidResponse::WrongType("scope")),
        };
        Ok(Introspection {
            active,
            exp,
            aud,
            scope,
            claims,
        })
    }

    /// Role names from ZITADEL's `urn:zitadel:iam:org:project:roles` and `urn:zitadel:iam:org:project:{id}:roles`,
    /// sorted and without duplicates. A claim that is not an object grants nothing.
    pub fn roles(&self) -> Vec<String> {
        let mut roles: Vec<String> = self
            .claims
            .iter()
            .filter(|(k, _)| is_roles_claim(k))
            .filter_map(|(_, v)| v.as_object())
            .flat_map(|o| o.keys().cloned())
            .collect();
        roles.sort();
        roles.dedup();
        roles
    }
}

fn is_roles_claim(name: &str) -> bool {
    const PREFIX: &str = "urn:zitadel:iam:org:project:";
    name == "urn:zitadel:iam:org:project:roles"
        || name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.strip_suffix(":roles"))
            .is_some_and(|id| !id.is_empty() && !id.contains(':'))
}

/// What a piece of `TokenInfo::text` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Audience,
    Scope,
    Role,
    /// The value of the identity header at this index of the header mapping.
    Header(u8),
}

/// Four bytes: the cache holds one per string per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    kind: Kind,
    /// Where the piece ends in `text`; it starts where the previous one ended.
    end: u16,
}

/// What the policy and the header mapping need from one introspection, computed once and kept in the cache. The
/// policy is evaluated again on every hit, so per-route requirements always see the token's real grants.
///
/// Compact on purpose (the cache holds 100 000 of these): every string lives back to back in one shared buffer,
/// and header values are handed out as slices of it, so a hit copies nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    pub active: bool,
    pub exp: Option<u64>,
    text: actix_web::web::Bytes,
    pieces: Box<[Piece]>,
    /// Claims left out because their value could not be a header (control characters, CR/LF).
    pub rejected_headers: u32,
}

/// Collects the pieces. Its `text` goes through `into_boxed_slice` before becoming `Bytes`: a Vec's spare
/// capacity would otherwise stay allocated in every cached entry.
#[derive(Default)]
struct Builder {
    text: Vec<u8>,
    pieces: Vec<Piece>,
}

impl Builder {
    /// False when the text would pass 64 KiB (the whole response is 64 KiB at most by default): the string is
    /// then left out, which can only take a grant or a header away, never add one.
    fn push(&mut self, kind: Kind, s: &str) -> bool {
        let Ok(end) = u16::try_from(self.text.len() + s.len()) else {
            return false;
        };
        self.text.extend_from_slice(s.as_bytes());
        self.pieces.push(Piece { kind, end });
        true
    }
}

impl TokenInfo {
    pub fn inactive() -> TokenInfo {
        TokenInfo {
            active: false,
            exp: None,
            text: actix_web::web::Bytes::new(),
            pieces: Box::new([]),
            rejected_headers: 0,
        }
    }

    /// A grant without identity headers (tests, tools).
    pub fn new(active: bool, exp: Option<u64>, audience: &[&str], scopes: &[&str], roles: &[&str]) -> TokenInfo {
        let mut b = Builder::default();
        for (kind, list) in [(Kind::Audience, audience), (Kind::Scope, scopes), (Kind::Role, roles)] {
            for item in list {
                b.push(kind, item);
            }
        }
        TokenInfo {
            active,
            exp,
            text: b.text.into_boxed_slice().into(),
            pieces: b.pieces.into_boxed_slice(),
            rejected_headers: 0,
        }
    }

    pub fn from_introspection(i: &Introspection, mapping: &[HeaderRule]) -> TokenInfo {
        if !i.active {
            return TokenInfo::inactive();
        }
        let roles = i.roles();
        let mut b = Builder::default();
        for a in &i.aud {
            b.push(Kind::Audience, a);
        }
        for scope in i.scope.as_deref().unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
            b.push(Kind::Scope, scope);
        }
        for r in &roles {
            b.push(Kind::Role, r);
        }
        let mut rejected = 0;
        for (index, rule) in mapping.iter().enumerate().take(usize::from(u8::MAX)) {
            let text = match &rule.source {
                ClaimSource::Roles => (!roles.is_empty()).then(|| roles.join(",")),
                ClaimSource::Claims(names) => names.iter().find_map(|n| claim_text(i.claims.get(n)?)),
            };
            let Some(text) = text else { continue };
            if header_value(&text).is_none() || !b.push(Kind::Header(index as u8), &text) {
                rejected += 1;
            }
        }
        TokenInfo {
            active: true,
            exp: i.exp,
            text: b.text.into_boxed_slice().into(),
            pieces: b.pieces.into_boxed_slice(),
            rejected_headers: rejected,
        }
    }

    fn pieces(&self) -> impl Iterator<Item = (Kind, std::ops::Range<usize>)> + '_ {
        let mut start = 0usize;
        self.pieces.iter().map(move |p| {
            let range = start..p.end as usize;
            start = p.end as usize;
            (p.kind, range)
        })
    }

    fn strings(&self, kind: Kind) -> impl Iterator<Item = &str> + '_ {
        self.pieces()
            .filter(move |(k, _)| *k == kind)
            .filter_map(|(_, r)| self.text.get(r).and_then(|b| std::str::from_utf8(b).ok()))
    }

    pub fn audience(&self) -> impl Iterator<Item = &str> + '_ {
        self.strings(Kind::Audience)
    }

    pub fn scopes(&self) -> impl Iterator<Item = &str> + '_ {
        self.strings(Kind::Scope)
    }

    pub fn roles(&self) -> impl Iterator<Item = &str> + '_ {
        self.strings(Kind::Role)
    }

    /// The identity headers, named by the mapping this info was built with; values share the info's buffer.
    pub fn headers<'a>(
        &'a self,
        mapping: &'a [HeaderRule],
    ) -> impl Iterator<Item = (&'a HeaderName, HeaderValue)> + 'a {
        self.pieces().filter_map(move |(kind, range)| {
            let Kind::Header(index) = kind else { return None };
            let name = &mapping.get(usize::from(index))?.name;
            // Checked when built; re-checked (cheaply) rather than trusted, so nothing unchecked reaches a header.
            let value = HeaderValue::from_maybe_shared(self.text.slice(range)).ok()?;
            Some((name, value))
        })
    }
}

/// A claim as header text: strings as they are, numbers and booleans printed, arrays joined with commas.
fn claim_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().filter_map(claim_text).collect();
            (!parts.is_empty()).then(|| parts.join(","))
        }
        Value::Null | Value::Object(_) => None,
    }
}

/// Only values that cannot split or bend a header: no control characters at all (so no CR/LF, no tab), no DEL.
/// UTF-8 text passes as raw bytes, as other auth proxies send names with accents.
pub fn header_value(text: &str) -> Option<HeaderValue> {
    if text.is_empty() || text.chars().any(char::is_control) {
        return None;
    }
    HeaderValue::from_bytes(text.as_bytes()).ok()
}

/// What went wrong talking to the identity provider. Messages name the cause, never a token or credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdpError {
    #[error("cannot reach the identity provider: {0}")]
    Unreachable(String),
    #[error("the identity provider did not answer within the timeout")]
    Timeout,
    #[error("the identity provider answered HTTP {0}")]
    ServerError(u16),
    #[error("the identity provider is rate limiting us (HTTP 429)")]
    RateLimited,
    #[error(
        "the identity provider rejected our client authentication (HTTP {status}, {error}): check idp.key_file / idp.client_id and idp.issuer"
    )]
    CredentialsRejected { status: u16, error: String },
    #[error("the identity provider refused to introspect this token (HTTP {status}, {error})")]
    TokenRefused { status: u16, error: String },
    #[error("the identity provider sent an invalid introspection response: {0}")]
    InvalidResponse(#[from] InvalidResponse),
    #[error("the identity provider's response exceeds idp.max_response_bytes")]
    ResponseTooLarge,
    #[error("the identity provider answered with a redirect (HTTP {0}), which is not followed")]
    Redirect(u16),
    #[error("discovery failed: {0}")]
    Discovery(String),
    #[error("cannot sign the client assertion: {0}")]
    Signing(String),
    #[error("too many introspections in flight (idp.max_concurrent); waited idp.timeout")]
    Overloaded,
    #[error("the introspection worker is gone")]
    WorkerGone,
}

impl IdpError {
    /// Failures that say nothing about the token and may pass: the ones stale-if-error may paper over.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            IdpError::Unreachable(_) | IdpError::Timeout | IdpError::ServerError(_)
        )
    }

    /// Our own credentials or setup are wrong: the whole service is unready until an introspection succeeds.
    pub fn is_credentials(&self) -> bool {
        matches!(self, IdpError::CredentialsRejected { .. })
    }
}

/// Something that can introspect a token: the real client, or a stand-in in unit tests.
pub trait Introspect {
    fn introspect(&self, token: &str) -> impl std::future::Future<Output = Result<Introspection, IdpError>>;

    /// Learns the endpoints (discovery) ahead of the first check.
    fn prepare(&self) -> impl std::future::Future<Output = Result<(), IdpError>> {
        async { Ok(()) }
    }

    /// Housekeeping that runs beside the calls for the worker's lifetime (credential reloads).
    fn background(&self) -> impl std::future::Future<Output = ()> {
        async {}
    }
}

/// What /readyz reports: endpoints known, and the IdP not rejecting our client authentication.
#[derive(Debug, Default)]
pub struct IdpHealth {
    endpoints_known: std::sync::atomic::AtomicBool,
    credentials_rejected: std::sync::atomic::AtomicBool,
}

impl IdpHealth {
    pub fn record(&self, result: &Result<Introspection, IdpError>) {
        use std::sync::atomic::Ordering::Relaxed;
        match result {
            Ok(_) => {
                self.endpoints_known.store(true, Relaxed);
                self.credentials_rejected.store(false, Relaxed);
            }
            Err(e) if e.is_credentials() => {
                self.endpoints_known.store(true, Relaxed);
                self.credentials_rejected.store(true, Relaxed);
            }
            Err(_) => {}
        }
    }

    pub fn endpoints_known(&self) {
        self.endpoints_known.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// `None` when ready, else why not.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.endpoints_known.load(Relaxed) {
            Some("the identity provider's endpoints are not known yet (discovery pending)")
        } else if self.credentials_rejected.load(Relaxed) {
            Some(
                "the identity provider rejects our client authentication: check idp.key_file / idp.client_id and idp.issuer",
            )
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_HEADERS;
    use serde_json::json;

    fn default_mapping() -> Vec<HeaderRule> {
        DEFAULT_HEADERS
            .iter()
            .map(|(n, s)| HeaderRule {
                name: HeaderName::try_from(*n).unwrap(),
                source: if *s == crate::config::ROLES_PSEUDO_CLAIM {
                    ClaimSource::Roles
                } else {
                    ClaimSource::Claims(s.split('|').map(str::to_string).collect())
                },
            })
            .collect()
    }

    fn parse(v: Value) -> Result<Introspection, InvalidResponse> {
        Introspection::parse(v.to_string().as_bytes())
    }

    #[test]
    fn strict_parsing_table() {
        use InvalidResponse::*;
        let cases: Vec<(Value, Result<bool, InvalidResponse>)> = vec![
            (json!({"active": true}), Ok(true)),
            (json!({"active": false}), Ok(false)),
            (json!({"active": false, "exp": "garbage"}), Ok(false)),
            (json!({}), Err(MissingActive)),
            (json!({"active": "true"}), Err(ActiveNotBoolean)),
            (json!({"active": 1}), Err(ActiveNotBoolean)),
            (json!({"active": null}), Err(ActiveNotBoolean)),
            (json!([{"active": true}]), Err(NotAnObject)),
            (json!({"active": true, "exp": "1700000000"}), Err(WrongType("exp"))),
            (json!({"active": true, "exp": -5}), Err(WrongType("exp"))),
            (json!({"active": true, "exp": 1.7e9}), Ok(true)),
            (json!({"active": true, "aud": 5}), Err(WrongType("aud"))),
            (json!({"active": true, "aud": ["a", 5]}), Err(WrongType("aud"))),
            (json!({"active": true, "aud": "a"}), Ok(true)),
            (json!({"active": true, "scope": ["a"]}), Err(WrongType("scope"))),
        ];
        // Found by fuzzing: with duplicate members the last one would win.
        for dup in [
            r#"{"active":false,"active":true}"#,
            r#"{"active":2,"active":true}"#,
            r#"{"active":true,"exp":1,"exp":9999999999}"#,
        ] {
            assert_eq!(Introspection::parse(dup.as_bytes()), Err(DuplicateMember), "{dup}");
        }
        for (body, want) in cases {
            assert_eq!(parse(body.clone()).map(|i| i.active), want, "body {body}");
        }
        assert_eq!(Introspection::parse(b"<html>"), Err(NotAnObject));
        assert_eq!(Introspection::parse(b""), Err(NotAnObject));
    }

    #[test]
    fn zitadel_response_becomes_token_info() {
        let i = parse(json!({
            "active": true, "scope": "openid profile read", "client_id": "app@proj", "exp": 2000,
            "aud": ["123", "456"], "sub": "user-1", "username": "jane", "email": "jane@example.com",
            "urn:zitadel:iam:org:project:roles": {"admin": {"org1": "org.example.com"}},
            "urn:zitadel:iam:org:project:999:roles": {"viewer": {"org1": "x"}, "admin": {"org1": "x"}},
            "urn:zitadel:iam:org:project:999:other": {"nope": {}},
            "urn:zitadel:iam:user:resourceowner:id": "org1"
        }))
        .unwrap();
        let mapping = default_mapping();
        let t = TokenInfo::from_introspection(&i, &mapping);
        assert_eq!(t.roles().collect::<Vec<_>>(), vec!["admin", "viewer"]);
        assert_eq!(t.scopes().count(), 3);
        assert_eq!(t.audience().collect::<Vec<_>>(), vec!["123", "456"]);
        let h = |name: &str| {
            t.headers(&mapping)
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_str().unwrap().to_string())
        };
        assert_eq!(h("x-auth-request-user").as_deref(), Some("user-1"));
        assert_eq!(
            h("x-auth-request-preferred-username").as_deref(),
            Some("jane"),
            "falls back to username"
        );
        assert_eq!(h("x-auth-request-roles").as_deref(), Some("admin,viewer"));
        assert_eq!(h("x-auth-request-scopes").as_deref(), Some("openid profile read"));
        assert_eq!(h("x-auth-request-org-id").as_deref(), Some("org1"));
        assert_eq!(h("x-auth-request-client-id").as_deref(), Some("app@proj"));
    }

    #[test]
    fn missing_claims_omit_headers_and_bad_values_are_counted() {
        let i = parse(json!({"active": true, "sub": "a\r\nX-Injected: 1", "email": "e@x\u{7f}", "preferred_username": "Jos\u{e9}"})).unwrap();
        let mapping = default_mapping();
        let t = TokenInfo::from_introspection(&i, &mapping);
        let headers: Vec<(&HeaderName, HeaderValue)> = t.headers(&mapping).collect();
        assert_eq!(headers.len(), 1);
        assert_eq!(headers[0].0.as_str(), "x-auth-request-preferred-username");
        assert_eq!(t.rejected_headers, 2);
        assert_eq!(headers[0].1.as_bytes(), "Jos\u{e9}".as_bytes());
    }

    #[test]
    fn text_past_64_kib_is_left_out_not_wrapped() {
        let huge = "x".repeat(70_000);
        let i = parse(json!({"active": true, "sub": "s", "email": huge, "scope": "read"})).unwrap();
        let mapping = default_mapping();
        let t = TokenInfo::from_introspection(&i, &mapping);
        assert_eq!(t.rejected_headers, 1);
        assert!(t.headers(&mapping).all(|(n, _)| n.as_str() != "x-auth-request-email"));
        assert_eq!(t.scopes().collect::<Vec<_>>(), vec!["read"]);
        assert_eq!(
            t.headers(&mapping)
                .find(|(n, _)| n.as_str() == "x-auth-request-user")
                .map(|(_, v)| v),
            Some(HeaderValue::from_static("s"))
        );
    }

    #[test]
    fn header_sanitising() {
        assert!(header_value("plain value").is_some());
        assert!(header_value("").is_none());
        for bad in ["a\rb", "a\nb", "a\tb", "a\0b", "a\u{1b}b", "a\u{85}b"] {
            assert!(header_value(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn inactive_carries_nothing() {
        let i = parse(json!({"active": false})).unwrap();
        assert_eq!(
            TokenInfo::from_introspection(&i, &default_mapping()),
            TokenInfo::inactive()
        );
    }
}
