//! `TokenInfo`: what the policy and the identity headers need from one verified token, in the compact form the
//! caches hold, and its byte form for a cache tier outside the process.

use actix_web::http::header::{HeaderName, HeaderValue};

pub use super::headers::{
    ClaimSource, DEFAULT_HEADERS, HeaderRule, ROLES_PSEUDO_CLAIM, header_value, mapping_fingerprint,
};
use super::headers::{claim_text, list_text};
use super::introspection::Introspection;
use super::roles::RoleScope;

/// What a piece of the buffer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Audience,
    Scope,
    Role,
    /// The value of the identity header at this index of the header mapping.
    Header(u8),
}

impl Kind {
    fn code(self) -> [u8; 2] {
        match self {
            Kind::Audience => [0, 0],
            Kind::Scope => [1, 0],
            Kind::Role => [2, 0],
            Kind::Header(i) => [6, i],
        }
    }

    fn from_code(code: [u8; 2]) -> Option<Kind> {
        Some(match code {
            [0, 0] => Kind::Audience,
            [1, 0] => Kind::Scope,
            [2, 0] => Kind::Role,
            [6, i] => Kind::Header(i),
            _ => return None,
        })
    }
}

/// Why bytes are not an encoded `TokenInfo` (see `TokenInfo::encode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the encoded token info is truncated")]
    Truncated,
    #[error("the encoded token info has an unknown version")]
    Version,
    #[error("the encoded token info is malformed")]
    Malformed,
}

/// Each piece is four bytes in the buffer: kind, header index, and where its text ends (it starts where the
/// previous one ended).
const PIECE: usize = 4;

/// What the policy and the header mapping need from one introspection, computed once and kept in the cache. The
/// policy is evaluated again on every hit, so per-route requirements always see the token's real grants.
///
/// Compact on purpose (the cache holds 100 000 of these): one allocation of exactly the size needed holds the
/// piece table and every string back to back: `[count: u16][pieces: 4 bytes each][text]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    pub active: bool,
    pub exp: Option<u64>,
    buf: Box<[u8]>,
    /// Claims left out because their value could not be a header (control characters, padding, separators).
    pub rejected_headers: u32,
}

/// Collects the pieces, then lays them out in one buffer.
#[derive(Default)]
struct Builder {
    text: Vec<u8>,
    pieces: Vec<(Kind, u16)>,
}

impl Builder {
    /// False when the text would pass 64 KiB (the whole response is 64 KiB at most by default), or the table
    /// 65 535 pieces: the string is then left out, which can only take a grant or a header away, never add one.
    fn push(&mut self, kind: Kind, s: &str) -> bool {
        let Ok(end) = u16::try_from(self.text.len() + s.len()) else {
            return false;
        };
        if self.pieces.len() >= usize::from(u16::MAX) {
            return false;
        }
        self.text.extend_from_slice(s.as_bytes());
        self.pieces.push((kind, end));
        true
    }

    fn finish(self) -> Box<[u8]> {
        let mut buf = Vec::with_capacity(2 + self.pieces.len() * PIECE + self.text.len());
        buf.extend_from_slice(&(self.pieces.len() as u16).to_le_bytes());
        for (kind, end) in &self.pieces {
            buf.extend_from_slice(&kind.code());
            buf.extend_from_slice(&end.to_le_bytes());
        }
        buf.extend_from_slice(&self.text);
        buf.into_boxed_slice()
    }
}

/// The piece table and the text of a buffer, or `None` when the buffer does not hold a consistent one.
fn layout(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let (count, rest) = buf.split_first_chunk::<2>()?;
    let count = usize::from(u16::from_le_bytes(*count));
    let table_len = count.checked_mul(PIECE)?;
    (rest.len() >= table_len).then(|| rest.split_at(table_len))
}

impl TokenInfo {
    pub fn inactive() -> TokenInfo {
        TokenInfo {
            active: false,
            exp: None,
            buf: Builder::default().finish(),
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
            buf: b.finish(),
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
            buf: b.finish(),
            rejected_headers: rejected,
        }
    }

    /// Each piece's kind and its text. A table that does not fit its text yields nothing rather than panicking.
    fn pieces(&self) -> impl Iterator<Item = (Kind, &str)> + '_ {
        let (table, text) = layout(&self.buf).unwrap_or((&[], &[]));
        let mut start = 0usize;
        table.chunks_exact(PIECE).filter_map(move |p| {
            let kind = Kind::from_code([p[0], p[1]])?;
            let end = usize::from(u16::from_le_bytes([p[2], p[3]]));
            let range = start..end;
            start = end;
            Some((kind, std::str::from_utf8(text.get(range)?).ok()?))
        })
    }

    fn strings(&self, kind: Kind) -> impl Iterator<Item = &str> + '_ {
        self.pieces().filter(move |(k, _)| *k == kind).map(|(_, s)| s)
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

    /// The value of the identity header at `index` of the header mapping, when the token filled it.
    pub fn header_text(&self, index: usize) -> Option<&str> {
        self.pieces()
            .find_map(|(k, s)| (k == Kind::Header(u8::try_from(index).ok()?)).then_some(s))
    }

    /// A self-contained byte form, for a cache tier outside the process. Header pieces refer to the header mapping
    /// by index: every reader must use the same `[headers]` (see `mapping_fingerprint`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(14 + self.buf.len());
        out.push(ENCODING_VERSION);
        out.push(u8::from(self.active));
        out.extend_from_slice(&self.exp.unwrap_or(u64::MAX).to_le_bytes());
        out.extend_from_slice(&self.rejected_headers.to_le_bytes());
        out.extend_from_slice(&self.buf);
        out
    }

    /// The inverse of `encode`; refuses anything it did not write (never panics on input).
    pub fn decode(bytes: &[u8]) -> Result<TokenInfo, DecodeError> {
        let mut r = Reader(bytes);
        if r.take::<1>()? != [ENCODING_VERSION] {
            return Err(DecodeError::Version);
        }
        let active = match r.take::<1>()? {
            [0] => false,
            [1] => true,
            _ => return Err(DecodeError::Malformed),
        };
        let exp = match u64::from_le_bytes(r.take::<8>()?) {
            u64::MAX => None,
            e => Some(e),
        };
        let rejected_headers = u32::from_le_bytes(r.take::<4>()?);
        let (table, text) = layout(r.0).ok_or(DecodeError::Truncated)?;
        // Every piece must be a known kind and text, and the ends must run up to exactly the end of the text.
        let mut last = 0usize;
        for p in table.chunks_exact(PIECE) {
            Kind::from_code([p[0], p[1]]).ok_or(DecodeError::Malformed)?;
            let end = usize::from(u16::from_le_bytes([p[2], p[3]]));
            let piece = text.get(last..end).ok_or(DecodeError::Malformed)?;
            std::str::from_utf8(piece).map_err(|_| DecodeError::Malformed)?;
            last = end;
        }
        if last != text.len() {
            return Err(DecodeError::Malformed);
        }
        Ok(TokenInfo {
            active,
            exp,
            buf: r.0.into(),
            rejected_headers,
        })
    }

    /// Every header of the mapping: the token's value, or empty where the token has none (so that a proxy copying
    /// the answer overwrites a client's copy). One pass over the pieces.
    pub fn all_headers<'a>(
        &'a self,
        mapping: &'a [HeaderRule],
    ) -> impl Iterator<Item = (&'a HeaderName, HeaderValue)> + 'a {
        let mut filled = [false; 256];
        let mut values: Vec<(&HeaderName, HeaderValue)> = Vec::with_capacity(mapping.len());
        for (kind, text) in self.pieces() {
            let Kind::Header(index) = kind else { continue };
            let (Some(rule), Ok(value)) = (mapping.get(usize::from(index)), HeaderValue::from_str(text)) else {
                continue;
            };
            filled[usize::from(index)] = true;
            values.push((&rule.name, value));
        }
        let empty = mapping
            .iter()
            .enumerate()
            .filter(move |(i, _)| !filled.get(*i).copied().unwrap_or(false))
            .map(|(_, rule)| (&rule.name, HeaderValue::from_static("")));
        values.into_iter().chain(empty)
    }

    /// The identity headers, named by the mapping this info was built with.
    pub fn headers<'a>(
        &'a self,
        mapping: &'a [HeaderRule],
    ) -> impl Iterator<Item = (&'a HeaderName, HeaderValue)> + 'a {
        self.pieces().filter_map(move |(kind, text)| {
            let Kind::Header(index) = kind else { return None };
            let name = &mapping.get(usize::from(index))?.name;
            // Checked when built; re-checked (cheaply) rather than trusted, so nothing unchecked reaches a header.
            let value = HeaderValue::from_str(text).ok()?;
            Some((name, value))
        })
    }
}

const ENCODING_VERSION: u8 = 2;

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (head, rest) = self.0.split_first_chunk::<N>().ok_or(DecodeError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn default_mapping() -> Vec<HeaderRule> {
        DEFAULT_HEADERS
            .iter()
            .map(|(n, s)| HeaderRule {
                name: HeaderName::try_from(*n).unwrap(),
                source: if *s == ROLES_PSEUDO_CLAIM {
                    ClaimSource::Roles
                } else {
                    ClaimSource::Claims(s.split('|').map(str::to_string).collect())
                },
            })
            .collect()
    }

    fn parse(v: Value) -> Introspection {
        Introspection::parse(v.to_string().as_bytes()).unwrap()
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
        }));
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
        let i = parse(
            json!({"active": true, "sub": "a\r\nX-Injected: 1", "email": "e@x\u{7f}", "preferred_username": "Jos\u{e9}"}),
        );
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
        let i = parse(json!({"active": true, "sub": "s", "email": huge, "scope": "read"}));
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
    fn encoding_round_trips_and_refuses_what_it_did_not_write() {
        let i = parse(json!({
            "active": true, "scope": "openid read", "client_id": "app", "exp": 2000, "aud": ["1", "2"],
            "sub": "user-1", "email": "e@x", "urn:zitadel:iam:org:project:roles": {"admin": {"1": "x"}},
            "urn:zitadel:iam:user:resourceowner:id": "org-9"
        }));
        let mapping = default_mapping();
        let t = TokenInfo::from_introspection(&i, &mapping, &RoleScope::default());
        let at = |claim: &str| super::super::headers::header_for_claim(&mapping, claim).and_then(|i| t.header_text(i));
        assert_eq!(
            (at("sub"), at("client_id"), at("urn:zitadel:iam:user:resourceowner:id")),
            (Some("user-1"), Some("app"), Some("org-9")),
            "who a token belongs to, from the headers that carry it"
        );
        let bytes = t.encode();
        assert_eq!(TokenInfo::decode(&bytes), Ok(t.clone()));
        assert_eq!(
            TokenInfo::decode(&TokenInfo::inactive().encode()),
            Ok(TokenInfo::inactive())
        );
        for cut in 0..bytes.len() {
            assert!(TokenInfo::decode(&bytes[..cut]).is_err(), "truncated at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(b'x');
        assert!(TokenInfo::decode(&longer).is_err());
        let mut version = bytes.clone();
        version[0] = 9;
        assert_eq!(TokenInfo::decode(&version), Err(DecodeError::Version));
        let mut active = bytes.clone();
        active[1] = 7;
        assert_eq!(TokenInfo::decode(&active), Err(DecodeError::Malformed));
        assert!(TokenInfo::decode(&[]).is_err());
        let other = mapping_fingerprint(&mapping[1..], &RoleScope::default());
        assert_ne!(mapping_fingerprint(&mapping, &RoleScope::default()), other);
        let pinned = RoleScope {
            project_id: Some("1".into()),
            org_id: None,
        };
        assert_ne!(
            mapping_fingerprint(&mapping, &RoleScope::default()),
            mapping_fingerprint(&mapping, &pinned)
        );
    }

    #[test]
    fn inactive_carries_nothing() {
        let i = parse(json!({"active": false}));
        assert_eq!(
            TokenInfo::from_introspection(&i, &default_mapping(), &RoleScope::default()),
            TokenInfo::inactive()
        );
    }

    #[test]
    fn list_headers_leave_out_values_an_application_would_split() {
        let i = parse(json!({
            "active": true,
            "scope": "openid  read\tx write,all",
            "urn:zitadel:iam:org:project:roles": {"viewer,admin": {}, "ops": {}, "a b": {}},
            "amr": ["pwd", "m,fa", "otp"],
            "sub": " admin ",
        }));
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
