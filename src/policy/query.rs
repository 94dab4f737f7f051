//! The operator's per-location demands on the check URL (`/verify?scope=…&role=…`), and what a scope may be.

use super::Requirements;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    #[error("unknown parameter {0:?} on the check URL (use scope= and role=)")]
    Unknown(String),
    #[error("empty {0}= on the check URL")]
    Empty(&'static str),
    #[error("scope= on the check URL holds a character RFC 6749 does not allow in a scope")]
    BadScope,
}

/// RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E (no space, quote, backslash, control or non-ASCII).
/// Missing scopes are echoed in `WWW-Authenticate`, so anything else could break the header.
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// The operator's per-location demands from the check URL: `?scope=a&scope=b&role=admin&role=ops` means
/// "scopes a and b, and one of the roles admin/ops". Unknown parameters are refused rather than ignored, so
/// that a typo (`roles=`) cannot silently drop a requirement.
pub fn parse_check_query(query: &str) -> Result<Requirements, QueryError> {
    let mut scopes = Vec::new();
    let mut roles = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "scope" => {
                let before = scopes.len();
                for s in v.split(' ').filter(|s| !s.is_empty()) {
                    if !is_scope_token(s) {
                        return Err(QueryError::BadScope);
                    }
                    scopes.push(s.to_string());
                }
                if scopes.len() == before {
                    return Err(QueryError::Empty("scope"));
                }
            }
            "role" => {
                if v.trim().is_empty() {
                    return Err(QueryError::Empty("role"));
                }
                roles.push(v.trim().to_string());
            }
            other => return Err(QueryError::Unknown(other.chars().take(64).collect())),
        }
    }
    Ok(Requirements::new(vec![], scopes, roles))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_query_parsing() {
        assert_eq!(parse_check_query("").unwrap(), Requirements::default());
        let r = parse_check_query("scope=a&scope=b%20c&role=admin&role=ops").unwrap();
        assert_eq!(r.scopes, vec!["a", "b", "c"]);
        assert_eq!(r.roles, vec![vec!["admin".to_string(), "ops".to_string()]]);
        assert_eq!(
            parse_check_query("roles=admin"),
            Err(QueryError::Unknown("roles".into()))
        );
        assert_eq!(parse_check_query("role="), Err(QueryError::Empty("role")));
        assert_eq!(parse_check_query("scope=+"), Err(QueryError::Empty("scope")));
        // Found by schemathesis: these reached WWW-Authenticate (a 500, or a broken quoted string).
        for bad in [
            "scope=a%01b",
            "scope=a%7Fb",
            "scope=a%22b",
            "scope=a%5Cb",
            "scope=caf%C3%A9",
        ] {
            assert_eq!(parse_check_query(bad), Err(QueryError::BadScope), "{bad}");
        }
    }
}
