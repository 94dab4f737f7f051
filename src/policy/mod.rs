//! Who may pass: requirements (global, per rule, per check), and the pure `decide(&TokenInfo, &Requirements, now)`
//! that every answer comes from. Rules and their selection are in `rules`, the check URL's demands in `query`.

mod query;
mod rules;

pub use self::query::{QueryError, is_scope_token, parse_check_query};
pub use self::rules::{Policy, Required, Rule, RuleAction, RuleError, Selection};
pub use crate::original::OriginalRequest;
use crate::token::TokenInfo;

/// What a token must carry. Every group must be satisfied; an empty value requires nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirements {
    /// Each group: the token's `aud` must contain at least one of its values.
    pub audiences: Vec<Vec<String>>,
    /// All of these scopes must be granted.
    pub scopes: Vec<String>,
    /// Each group: the token must hold at least one of its roles.
    pub roles: Vec<Vec<String>>,
}

impl Requirements {
    pub fn new(audience: Vec<String>, scopes: Vec<String>, roles: Vec<String>) -> Self {
        Requirements {
            audiences: if audience.is_empty() { vec![] } else { vec![audience] },
            scopes,
            roles: if roles.is_empty() { vec![] } else { vec![roles] },
        }
    }

    pub fn is_empty(&self) -> bool {
        self.audiences.is_empty() && self.scopes.is_empty() && self.roles.is_empty()
    }

    /// Both sets of requirements at once: used to add the check URL's demands to a rule's or the global ones.
    pub fn and(&self, other: &Requirements) -> Requirements {
        let mut out = self.clone();
        out.audiences.extend(other.audiences.iter().cloned());
        for s in &other.scopes {
            if !out.scopes.contains(s) {
                out.scopes.push(s.clone());
            }
        }
        out.roles.extend(other.roles.iter().cloned());
        out
    }
}

/// Why a token was refused. Each door maps it to its own answer (`http::verify`, `grpc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The IdP says the token is not active (expired, revoked, not for this client, unknown).
    NotActive,
    /// Active per a cached answer, but its own `exp` has passed.
    Expired,
    /// None of the required audiences is in the token's `aud`.
    WrongAudience,
    /// Valid, but these required scopes were not granted (roles may be missing too).
    MissingScopes(Vec<String>),
    /// Valid, but holds none of a required set of roles.
    MissingRole,
}

impl Denial {
    /// 401 `invalid_token` rather than 403 `insufficient_scope`.
    pub fn is_invalid_token(&self) -> bool {
        matches!(self, Denial::NotActive | Denial::Expired | Denial::WrongAudience)
    }

    /// A machine-readable reason for the decision log.
    pub fn label(&self) -> &'static str {
        match self {
            Denial::NotActive => "inactive",
            Denial::Expired => "expired",
            Denial::WrongAudience => "wrong_audience",
            Denial::MissingScopes(_) => "missing_scope",
            Denial::MissingRole => "missing_role",
        }
    }

    pub fn description(&self) -> String {
        match self {
            Denial::NotActive => "the token is not active".into(),
            Denial::Expired => "the token has expired".into(),
            Denial::WrongAudience => "the token is not meant for this audience".into(),
            Denial::MissingScopes(s) => format!("the token lacks the scope(s) {}", s.join(" ")),
            Denial::MissingRole => "the token holds none of the required roles".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(Denial),
}

/// The whole decision: a pure function so that it is proven by table tests, not by servers.
pub fn decide(info: &TokenInfo, req: &Requirements, now_secs: u64) -> Decision {
    if !info.active {
        return Decision::Deny(Denial::NotActive);
    }
    // RFC 7519: a token must not be accepted on or after its `exp`.
    if info.exp.is_some_and(|exp| exp <= now_secs) {
        return Decision::Deny(Denial::Expired);
    }
    if !req
        .audiences
        .iter()
        .all(|group| group.iter().any(|w| info.audience().any(|a| a == w)))
    {
        return Decision::Deny(Denial::WrongAudience);
    }
    let missing: Vec<String> = req
        .scopes
        .iter()
        .filter(|s| !info.scopes().any(|g| g == s.as_str()))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Decision::Deny(Denial::MissingScopes(missing));
    }
    if !req
        .roles
        .iter()
        .all(|group| group.iter().any(|w| info.roles().any(|r| r == w)))
    {
        return Decision::Deny(Denial::MissingRole);
    }
    Decision::Allow
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(active: bool, exp: Option<u64>, aud: &[&str], scopes: &[&str], roles: &[&str]) -> TokenInfo {
        TokenInfo::new(active, exp, aud, scopes, roles)
    }

    fn req(aud: &[&str], scopes: &[&str], roles: &[&str]) -> Requirements {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        Requirements::new(v(aud), v(scopes), v(roles))
    }

    #[test]
    fn decision_table() {
        let now = 1_000;
        let good = info(true, Some(2_000), &["api", "project"], &["openid", "read"], &["viewer"]);
        let cases: Vec<(&str, TokenInfo, Requirements, Decision)> = vec![
            ("no requirements", good.clone(), req(&[], &[], &[]), Decision::Allow),
            (
                "inactive",
                info(false, None, &[], &[], &[]),
                req(&[], &[], &[]),
                Decision::Deny(Denial::NotActive),
            ),
            (
                "inactive even with claims",
                info(false, Some(2_000), &["api"], &["read"], &["viewer"]),
                req(&[], &[], &[]),
                Decision::Deny(Denial::NotActive),
            ),
            (
                "exp passed",
                info(true, Some(999), &[], &[], &[]),
                req(&[], &[], &[]),
                Decision::Deny(Denial::Expired),
            ),
            (
                "exp equals now",
                info(true, Some(1_000), &[], &[], &[]),
                req(&[], &[], &[]),
                Decision::Deny(Denial::Expired),
            ),
            (
                "no exp is fine",
                info(true, None, &[], &[], &[]),
                req(&[], &[], &[]),
                Decision::Allow,
            ),
            (
                "audience one of",
                good.clone(),
                req(&["other", "project"], &[], &[]),
                Decision::Allow,
            ),
            (
                "audience mismatch",
                good.clone(),
                req(&["other"], &[], &[]),
                Decision::Deny(Denial::WrongAudience),
            ),
            (
                "audience missing in token",
                info(true, None, &[], &[], &[]),
                req(&["api"], &[], &[]),
                Decision::Deny(Denial::WrongAudience),
            ),
            (
                "all scopes granted",
                good.clone(),
                req(&[], &["read", "openid"], &[]),
                Decision::Allow,
            ),
            (
                "one scope missing",
                good.clone(),
                req(&[], &["read", "write"], &[]),
                Decision::Deny(Denial::MissingScopes(vec!["write".into()])),
            ),
            (
                "role one of",
                good.clone(),
                req(&[], &[], &["admin", "viewer"]),
                Decision::Allow,
            ),
            (
                "role missing",
                good.clone(),
                req(&[], &[], &["admin"]),
                Decision::Deny(Denial::MissingRole),
            ),
            (
                "scopes reported before roles",
                good.clone(),
                req(&[], &["write"], &["admin"]),
                Decision::Deny(Denial::MissingScopes(vec!["write".into()])),
            ),
            (
                "expired beats missing scope",
                info(true, Some(10), &[], &[], &[]),
                req(&[], &["write"], &[]),
                Decision::Deny(Denial::Expired),
            ),
            (
                "scope names are exact",
                info(true, None, &[], &["read:all"], &[]),
                req(&[], &["read"], &[]),
                Decision::Deny(Denial::MissingScopes(vec!["read".into()])),
            ),
        ];
        for (name, info, req, want) in cases {
            assert_eq!(decide(&info, &req, now), want, "case {name}");
        }
    }

    #[test]
    fn combined_role_groups_each_need_a_match() {
        let r = req(&[], &[], &["a", "b"]).and(&req(&[], &[], &["admin", "ops"]));
        assert_eq!(
            decide(&info(true, None, &[], &[], &["a"]), &r, 0),
            Decision::Deny(Denial::MissingRole)
        );
        assert_eq!(
            decide(&info(true, None, &[], &[], &["b", "ops"]), &r, 0),
            Decision::Allow
        );
    }

    #[test]
    fn denials_split_into_401_and_403() {
        assert!(Denial::NotActive.is_invalid_token());
        assert!(Denial::Expired.is_invalid_token());
        assert!(Denial::WrongAudience.is_invalid_token());
        assert!(!Denial::MissingRole.is_invalid_token());
        assert!(!Denial::MissingScopes(vec![]).is_invalid_token());
    }
}
