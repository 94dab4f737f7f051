//! The identity-header mapping (`[headers]`: upstream header name → claim) and the rules for turning a claim into
//! a header value every HTTP parser and application reads the same way.

use actix_web::http::header::HeaderValue;
use serde_json::Value;

use super::roles::RoleScope;

/// Where an upstream identity header takes its value from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimSource {
    /// The first of these claims that is present.
    Claims(Vec<String>),
    /// Role names from ZITADEL's project-roles claims.
    Roles,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderRule {
    pub name: actix_web::http::header::HeaderName,
    pub source: ClaimSource,
}

/// The pseudo-claim naming ZITADEL's role claims in `[headers]`.
pub const ROLES_PSEUDO_CLAIM: &str = "tokengate:roles";

pub const DEFAULT_HEADERS: &[(&str, &str)] = &[
    ("X-Auth-Request-User", "sub"),
    ("X-Auth-Request-Preferred-Username", "preferred_username|username"),
    ("X-Auth-Request-Email", "email"),
    ("X-Auth-Request-Client-Id", "client_id"),
    ("X-Auth-Request-Scopes", "scope"),
    ("X-Auth-Request-Roles", ROLES_PSEUDO_CLAIM),
    ("X-Auth-Request-Org-Id", "urn:zitadel:iam:user:resourceowner:id"),
];

/// The index of the header that carries exactly `claim` (e.g. `sub`), if the mapping has one: how the decision log
/// names who a token belongs to without keeping a second copy of the value.
pub fn header_for_claim(mapping: &[HeaderRule], claim: &str) -> Option<usize> {
    mapping
        .iter()
        .position(|r| matches!(&r.source, ClaimSource::Claims(names) if names.first().is_some_and(|n| n == claim)))
}

/// Identifies a header mapping and role scope: two processes whose fingerprints differ must not share encoded
/// `TokenInfo`s (a header index would name another header, a role another project's).
pub fn mapping_fingerprint(mapping: &[HeaderRule], roles: &RoleScope) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for rule in mapping {
        h.update(rule.name.as_str().as_bytes());
        h.update([0]);
        match &rule.source {
            ClaimSource::Roles => h.update(b"\x01roles"),
            ClaimSource::Claims(names) => {
                for n in names {
                    h.update(n.as_bytes());
                    h.update([0]);
                }
            }
        }
        h.update([0xff]);
    }
    h.update(format!("{:?}", roles).as_bytes());
    h.finalize().into()
}

/// A list header's value: items that hold a separator (`,`) or whitespace would be split differently by the
/// application, so they are left out (and counted); decisions still use the exact values.
pub(super) fn list_text<'a>(
    items: impl Iterator<Item = &'a str>,
    separator: &str,
    rejected: &mut u32,
) -> Option<String> {
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
pub(super) fn claim_text(name: &str, v: &Value, rejected: &mut u32) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
