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

    /// The role names that count under `scope` (see `RoleScope`), sorted and without duplicates. A claim or role
    /// value that is not an object grants nothing.
    pub fn roles(&self, scope: &RoleScope) -> Vec<String> {
        let mut roles: Vec<String> = self
            .claims
            .iter()
            .filter(|(k, _)| scope.counts(k))
            .filter_map(|(_, v)| v.as_object())
            .flat_map(|o| o.iter())
            .filter(|(_, grant)| scope.org_matches(grant))
            .map(|(role, _)| role.clone())
            .collect();
        roles.sort();
        roles.dedup();
        roles
    }
}

/// ZITADEL's generic roles claim.
pub const GENERIC_ROLES_CLAIM: &str = "urn:zitadel:iam:org:project:roles";

/// The project id of a per-project roles claim `urn:zitadel:iam:org:project:{id}:roles`.
fn project_of_roles_claim(name: &str) -> Option<&str> {
    name.strip_prefix("urn:zitadel:iam:org:project:")
        .and_then(|rest| rest.strip_suffix(":roles"))
        .filter(|id| !id.is_empty() && !id.contains(':'))
}

/// Which roles claims count (`policy.project_id`, `policy.org_id`). A user who is admin in another project of
/// the same instance must not pass a rule that requires `admin` here.
///
/// What ZITADEL sends (read from its source, `internal/api/oidc/introspect.go` and the token claims code):
/// - introspection: the generic `urn:zitadel:iam:org:project:roles` holds the roles of the introspecting API
///   application's own project, and exactly one per-project claim, for that same project, repeats them;
/// - a JWT access token: the generic claim describes the project of the client the token was issued to; per-project
///   claims are added for other projects the client asked for (`…:project:id:{id}:aud` with a roles scope).
///
/// So with `project_id` set only `urn:zitadel:iam:org:project:{project_id}:roles` counts (the generic claim does
/// not name its project, and ZITADEL always sends the per-project claim beside it); without it only the generic
/// claim counts, i.e. the project the token was issued for (JWT) or tokengate's own (introspection). Another
/// project's claim never counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleScope {
    pub project_id: Option<String>,
    /// Only roles granted in this organisation (a key of the role's value) count.
    pub org_id: Option<String>,
}

impl RoleScope {
    /// Whether roles under this claim name count.
    pub fn counts(&self, claim: &str) -> bool {
        match &self.project_id {
            Some(pinned) => project_of_roles_claim(claim) == Some(pinned.as_str()),
            None => claim == GENERIC_ROLES_CLAIM,
        }
    }

    /// Whether a role's grant (`{"<orgId>": "<org domain>"}`) is in the pinned organisation, if any.
    fn org_matches(&self, grant: &Value) -> bool {
        match &self.org_id {
            None => true,
            Some(org) => grant.as_object().is_some_and(|o| o.contains_key(org)),
        }
    }

    /// The claims that count, as `tokengate check` prints them.
    pub fn describe(&self) -> String {
        let claim = match &self.project_id {
            Some(p) => format!("urn:zitadel:iam:org:project:{p}:roles"),
            None => format!("{GENERIC_ROLES_CLAIM} (set policy.project_id to pin the project)"),
        };
        match &self.org_id {
            Some(o) => format!("{claim}, granted in organisation {o}"),
            None => claim,
        }
    }
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

    pub fn from_introspection(i: &Introspection, mapping: &[HeaderRule], scope: &RoleScope) -> TokenInfo {
        if !i.active {
            return TokenInfo::inactive();
        }
        let roles = i.roles(scope);
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
                ClaimSource::Roles => list_text(roles.iter().map(String::as_str), ",", &mut rejected),
                ClaimSource::Claims(names) => names
                    .iter()
                    .find_map(|n| Some((n, i.claims.get(n)?)))
                    .and_then(|(name, v)| claim_text(name, v, &mut rejected)),
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

/// A list header's value: items that hold a separator (`,`) or whitespace would be split differently by the
/// application, so they are left out (and counted); decisions still use the exact values.
fn list_text<'a>(items: impl Iterator<Item = &'a str>, separator: &str, rejected: &mut u32) -> Option<String> {
    let mut kept: Vec<&str> = Vec::new();
    for item in items {
        if item.is_empty() || item.contains(',') || item.chars().any(char::is_whitespace) {
            *rejected += 1;
        } else {
            kept.push(item);
        }
    }
    (!kept.is_empty()).then(|| kept.join(separator))
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Object(_) | Value::Array(_) => None,
    }
}

/// A claim as header text: strings as they are, numbers and booleans printed, arrays as a comma list, and
/// `scope` (RFC 7662: space-separated) as a space list.
fn claim_text(name: &str, v: &Value, rejected: &mut u32) -> Option<String> {
    match v {
        Value::String(s) if name == "scope" => list_text(s.split(' ').filter(|s| !s.is_empty()), " ", rejected),
        Value::Array(items) => {
            let texts: Vec<String> = items.iter().filter_map(scalar_text).collect();
            list_text(texts.iter().map(String::as_str), ",", rejected)
        }
        other => scalar_text(other),
    }
}

/// Only values every HTTP parser reads the same way: no control characters (so no CR/LF, tab, NEL), no Unicode
/// line or paragraph separators, and no leading or trailing whitespace (parsers trim it, so `" admin "` would
/// arrive as `admin`). UTF-8 text passes as raw bytes, as other auth proxies send names with accents.
pub fn header_value(text: &str) -> Option<HeaderValue> {
    if text.is_empty()
        || text.starts_with(char::is_whitespace)
        || text.ends_with(char::is_whitespace)
        || text
            .chars()
            .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
    {
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
        let t = TokenInfo::from_introspection(&i, &mapping, &RoleScope::default());
        assert_eq!(
            t.roles().collect::<Vec<_>>(),
            vec!["admin"],
            "without a pinned project only the generic claim counts"
        );
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
        assert_eq!(h("x-auth-request-roles").as_deref(), Some("admin"));
        assert_eq!(h("x-auth-request-scopes").as_deref(), Some("openid profile read"));
        assert_eq!(h("x-auth-request-org-id").as_deref(), Some("org1"));
        assert_eq!(h("x-auth-request-client-id").as_deref(), Some("app@proj"));
    }

    #[test]
    fn missing_claims_omit_headers_and_bad_values_are_counted() {
        let i = parse(json!({"active": true, "sub": "a\r\nX-Injected: 1", "email": "e@x\u{7f}", "preferred_username": "Jos\u{e9}"})).unwrap();
        let mapping = default_mapping();
        let t = TokenInfo::from_introspection(&i, &mapping, &RoleScope::default());
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
        let t = TokenInfo::from_introspection(&i, &mapping, &RoleScope::default());
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
        for bad in [
            "a\rb",
            "a\nb",
            "a\tb",
            "a\0b",
            "a\u{1b}b",
            "a\u{85}b",
            "a\u{2028}b",
            "a\u{2029}b",
            " admin",
            "admin ",
            " admin ",
            "admin\u{a0}",
        ] {
            assert!(header_value(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn inactive_carries_nothing() {
        let i = parse(json!({"active": false})).unwrap();
        assert_eq!(
            TokenInfo::from_introspection(&i, &default_mapping(), &RoleScope::default()),
            TokenInfo::inactive()
        );
    }

    #[test]
    fn roles_count_only_for_the_pinned_project_and_organisation() {
        let i = parse(json!({
            "active": true,
            "urn:zitadel:iam:org:project:roles": {"viewer": {"1": "a.example.com"}},
            "urn:zitadel:iam:org:project:300:roles": {"viewer": {"1": "a.example.com"}, "ops": {"2": "b.example.com"}},
            "urn:zitadel:iam:org:project:999999999:roles": {"admin": {"1": "a.example.com"}},
            "urn:zitadel:iam:org:project:300:other": {"nope": {"1": "x"}},
            "urn:zitadel:iam:org:project::roles": {"empty-id": {"1": "x"}},
        }))
        .unwrap();
        let scope = |project: Option<&str>, org: Option<&str>| RoleScope {
            project_id: project.map(str::to_string),
            org_id: org.map(str::to_string),
        };
        let roles = |s: RoleScope| i.roles(&s);
        assert_eq!(
            roles(scope(None, None)),
            vec!["viewer"],
            "no pin: the generic claim only"
        );
        assert_eq!(roles(scope(Some("300"), None)), vec!["ops", "viewer"]);
        assert_eq!(roles(scope(Some("999999999"), None)), vec!["admin"]);
        assert_eq!(roles(scope(Some("12"), None)), Vec::<String>::new());
        assert_eq!(roles(scope(Some("300"), Some("2"))), vec!["ops"]);
        assert_eq!(roles(scope(None, Some("2"))), Vec::<String>::new());
        let odd =
            parse(json!({"active": true, "urn:zitadel:iam:org:project:roles": {"admin": "not-an-object"}})).unwrap();
        assert_eq!(odd.roles(&scope(None, Some("1"))), Vec::<String>::new());
        assert_eq!(odd.roles(&scope(None, None)), vec!["admin"]);
        let mapping = default_mapping();
        let t = TokenInfo::from_introspection(&i, &mapping, &scope(None, None));
        assert!(!t.roles().any(|r| r == "admin"), "another project's admin never counts");
    }

    #[test]
    fn list_headers_leave_out_values_an_application_would_split() {
        let i = parse(json!({
            "active": true,
            "scope": "openid  read\tx write,all",
            "urn:zitadel:iam:org:project:roles": {"viewer,admin": {}, "ops": {}, "a b": {}},
            "amr": ["pwd", "m,fa", "otp"],
            "sub": " admin ",
        }))
        .unwrap();
        let mut mapping = default_mapping();
        mapping.push(HeaderRule {
            name: HeaderName::from_static("x-amr"),
            source: ClaimSource::Claims(vec!["amr".into()]),
        });
        let t = TokenInfo::from_introspection(&i, &mapping, &RoleScope::default());
        let h = |name: &str| {
            t.headers(&mapping)
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_str().unwrap().to_string())
        };
        assert_eq!(h("x-auth-request-roles").as_deref(), Some("ops"));
        assert_eq!(h("x-auth-request-scopes").as_deref(), Some("openid"));
        assert_eq!(h("x-amr").as_deref(), Some("pwd,otp"));
        assert_eq!(h("x-auth-request-user"), None, "padded values are left out");
        assert_eq!(t.rejected_headers, 2 + 2 + 1 + 1);
        assert!(
            t.roles().any(|r| r == "viewer,admin"),
            "decisions still see the exact role"
        );
    }
}
