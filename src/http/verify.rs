//! `/verify` and `/verify/{path}`: find the token, rebuild the original request, pick the requirements, look the
//! token up, `decide`, and answer. `respond` is the one place where outcomes become HTTP statuses.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderMap, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::AppState;
use super::original::{OriginalError, original_request};
use crate::config::{HeaderRule, ProxyMode, TokenConfig};
use crate::introspection::IdpError;
use crate::introspection::cache::Cached;
use crate::metrics::VerifyResult;
use crate::policy::{Decision, Denial, QueryError, Selection, decide, parse_check_query};

/// RFC 6750 does not bound a token; 8 KiB is far above any JWT ZITADEL issues and bounds the work per check.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// All request headers of a check together; nginx's default (`large_client_header_buffers 4 8k`) is the same.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no bearer token")]
    Missing,
    #[error("the Authorization scheme is not Bearer")]
    WrongScheme,
    #[error("the bearer token is empty")]
    Empty,
    #[error("the bearer token has characters outside RFC 6750's b64token")]
    BadCharacters,
    #[error("the bearer token is longer than 8 KiB")]
    TooLong,
    #[error("more than one Authorization header")]
    Multiple,
}

fn is_b64token(t: &str) -> bool {
    let body = t.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
}

fn check_token(t: &str) -> Result<&str, TokenError> {
    if t.is_empty() {
        Err(TokenError::Empty)
    } else if t.len() > MAX_TOKEN_LEN {
        Err(TokenError::TooLong)
    } else if !is_b64token(t) {
        Err(TokenError::BadCharacters)
    } else {
        Ok(t)
    }
}

/// `Bearer <token>`, scheme case-insensitive.
pub fn parse_bearer(value: &HeaderValue) -> Result<&str, TokenError> {
    let text = value.to_str().map_err(|_| TokenError::BadCharacters)?;
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::WrongScheme);
    }
    check_token(rest.trim_start_matches(' '))
}

/// The token, tried in this order: `Authorization: Bearer`, then `token.header`, then `token.cookie`. A malformed
/// Authorization header is an error rather than a reason to look elsewhere.
pub fn extract_token<'a>(headers: &'a HeaderMap, sources: &TokenConfig) -> Result<&'a str, TokenError> {
    let mut auth = headers.get_all(actix_web::http::header::AUTHORIZATION);
    if let Some(first) = auth.next() {
        if auth.next().is_some() {
            return Err(TokenError::Multiple);
        }
        return parse_bearer(first);
    }
    if let Some(name) = &sources.header
        && let Some(v) = headers.get(name.as_str())
    {
        let text = v.to_str().map_err(|_| TokenError::BadCharacters)?.trim();
        return match text.split_once(' ') {
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("bearer") => parse_bearer(v),
            _ => check_token(text),
        };
    }
    if let Some(name) = &sources.cookie {
        for cookies in headers.get_all(actix_web::http::header::COOKIE) {
            let Ok(text) = cookies.to_str() else { continue };
            for pair in text.split(';') {
                if let Some((k, v)) = pair.trim().split_once('=')
                    && k == name
                {
                    return check_token(v.trim_matches('"'));
                }
            }
        }
    }
    Err(TokenError::Missing)
}

/// Every way a check can end.
#[derive(Debug)]
pub enum Outcome {
    Allow(Cached),
    Anonymous,
    NoToken,
    BadToken(TokenError),
    Denied(Denial),
    Unmatched,
    /// The check URL's query is wrong: the proxy's configuration, not the client.
    BadCheck(QueryError),
    /// The original request cannot be read one way.
    Unreadable(OriginalError),
    HeadersTooLarge,
    Unavailable(IdpError),
}

/// The RFC 6750 challenge. Scopes are validated before they get here; should a value still not fit in a header,
/// the bare challenge goes out rather than a 500.
fn www_authenticate(error: Option<(&str, &str)>, scope: Option<&str>) -> HeaderValue {
    let mut v = String::from("Bearer realm=\"tokengate\"");
    if let Some((code, description)) = error {
        v.push_str(&format!(", error=\"{code}\", error_description=\"{description}\""));
    }
    if let Some(s) = scope {
        v.push_str(&format!(", scope=\"{s}\""));
    }
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("Bearer realm=\"tokengate\""))
}

fn json_error(status: StatusCode) -> actix_web::HttpResponseBuilder {
    let mut b = HttpResponse::build(status);
    b.content_type("application/json");
    b
}

/// Every mapped identity header, empty, so that a proxy copying the answer's headers overwrites a client's copy
/// even when the token lacks the claim; the token's own values replace them.
fn empty_identity_headers(b: &mut actix_web::HttpResponseBuilder, mapping: &[HeaderRule]) {
    for rule in mapping {
        b.insert_header((rule.name.clone(), HeaderValue::from_static("")));
    }
}

/// The one mapping from outcome to HTTP: exactly 200 to allow (Envoy denies anything else), 401/403 with RFC 6750
/// `WWW-Authenticate`, 400 for a check the proxy built wrongly, 503 with `Retry-After` for IdP trouble.
pub fn respond(outcome: &Outcome, retry_after_secs: u64, mapping: &[HeaderRule]) -> (HttpResponse, VerifyResult) {
    let body = |error: &str, description: &str| json!({"error": error, "error_description": description}).to_string();
    match outcome {
        Outcome::Allow(info) => {
            let mut b = HttpResponse::Ok();
            empty_identity_headers(&mut b, mapping);
            for (name, value) in info.headers(mapping) {
                b.insert_header((name.clone(), value));
            }
            (b.finish(), VerifyResult::Allowed)
        }
        Outcome::Anonymous => {
            let mut b = HttpResponse::Ok();
            empty_identity_headers(&mut b, mapping);
            (b.finish(), VerifyResult::Allowed)
        }
        Outcome::NoToken => (
            json_error(StatusCode::UNAUTHORIZED)
                .insert_header(("WWW-Authenticate", www_authenticate(None, None)))
                .body(body("invalid_request", "a bearer token is required")),
            VerifyResult::Unauthenticated,
        ),
        Outcome::BadToken(e) => {
            let d = e.to_string();
            (
                json_error(StatusCode::UNAUTHORIZED)
                    .insert_header((
                        "WWW-Authenticate",
                        www_authenticate(Some(("invalid_request", &d)), None),
                    ))
                    .body(body("invalid_request", &d)),
                VerifyResult::Unauthenticated,
            )
        }
        Outcome::Denied(denial) if denial.is_invalid_token() => {
            let d = denial.description();
            (
                json_error(StatusCode::UNAUTHORIZED)
                    .insert_header(("WWW-Authenticate", www_authenticate(Some(("invalid_token", &d)), None)))
                    .body(body("invalid_token", &d)),
                VerifyResult::Unauthenticated,
            )
        }
        Outcome::Denied(denial) => {
            let d = denial.description();
            let scope = match denial {
                Denial::MissingScopes(s) => Some(s.join(" ")),
                _ => None,
            };
            (
                json_error(StatusCode::FORBIDDEN)
                    .insert_header((
                        "WWW-Authenticate",
                        www_authenticate(Some(("insufficient_scope", &d)), scope.as_deref()),
                    ))
                    .body(body("insufficient_scope", &d)),
                VerifyResult::Forbidden,
            )
        }
        Outcome::Unmatched => (
            json_error(StatusCode::FORBIDDEN).body(body(
                "access_denied",
                "no rule allows this request (policy.deny_unmatched)",
            )),
            VerifyResult::Forbidden,
        ),
        Outcome::BadCheck(e) => (
            json_error(StatusCode::BAD_REQUEST).body(body("invalid_request", &e.to_string())),
            VerifyResult::BadRequest,
        ),
        Outcome::Unreadable(e) if e.is_misconfiguration() => (
            json_error(StatusCode::BAD_REQUEST).body(body("invalid_request", &e.to_string())),
            VerifyResult::BadRequest,
        ),
        // 403, not 400: nginx turns anything but 401/403 from auth_request into a 500.
        Outcome::Unreadable(e) => (
            json_error(StatusCode::FORBIDDEN).body(body("access_denied", &e.to_string())),
            VerifyResult::Forbidden,
        ),
        Outcome::HeadersTooLarge => (
            json_error(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
                .body(body("invalid_request", "the request headers exceed 32 KiB")),
            VerifyResult::BadRequest,
        ),
        Outcome::Unavailable(_) => (
            json_error(StatusCode::SERVICE_UNAVAILABLE)
                .insert_header(("Retry-After", retry_after_secs.to_string()))
                .body(body(
                    "temporarily_unavailable",
                    "the identity provider cannot be reached; try again later",
                )),
            VerifyResult::Unavailable,
        ),
    }
}

pub async fn verify(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let started = Instant::now();
    let outcome = check(&req, &state).await;
    let (response, result) = respond(&outcome, state.retry_after_secs, &state.header_mapping);
    state.metrics.labelled.verify(result).inc();
    state.metrics.verify_duration.observe(started.elapsed().as_secs_f64());
    response
}

/// The raw path and query after `/verify` (Envoy's path_prefix form).
fn prefix_target(req: &HttpRequest) -> &str {
    let uri = req.uri();
    let path_and_query = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    path_and_query.strip_prefix("/verify").unwrap_or(path_and_query)
}

async fn check(req: &HttpRequest, state: &AppState) -> Outcome {
    let header_bytes: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Outcome::HeadersTooLarge;
    }
    let path = req.uri().path();
    // On `/verify/…` the rest of the path and the query are the client's (Envoy), never a source of policy.
    let prefix_path = path.strip_prefix("/verify").filter(|rest| !rest.is_empty());
    let extra = match prefix_path {
        Some(_) => None,
        None => match parse_check_query(req.uri().query().unwrap_or("")) {
            Ok(r) if r.is_empty() => None,
            Ok(r) => Some(r),
            Err(e) => {
                log::error!("refusing check: {e}");
                return Outcome::BadCheck(e);
            }
        },
    };
    let policy = &state.policy;
    // The original request matters to rules, and must be unambiguous whenever the check names it (the prefix
    // path, or a named proxy). Otherwise it is not rebuilt for every check.
    let needs_original = !policy.rules.is_empty() || prefix_path.is_some() || state.proxy != ProxyMode::Auto;
    let original = if needs_original {
        match original_request(
            state.proxy,
            req.method().as_str(),
            prefix_path.map(|_| prefix_target(req)),
            req.headers(),
            state.strict_paths,
        ) {
            Ok(o) => Some(o),
            Err(e) => {
                log::warn!("refusing check ({}): {e}", e.label());
                return Outcome::Unreadable(e);
            }
        }
    } else {
        None
    };
    let (rule, base) = match original.as_ref().filter(|_| !policy.rules.is_empty()) {
        None if policy.deny_unmatched => return Outcome::Unmatched,
        None => (None, &policy.global),
        Some(original) => match policy.select(original) {
            Selection::Anonymous { rule } => {
                log::debug!("rule {rule:?}: anonymous, {} {}", original.method, original.path);
                return Outcome::Anonymous;
            }
            Selection::DenyUnmatched => {
                log::debug!(
                    "no rule matches {} {}: denied (policy.deny_unmatched)",
                    original.method,
                    original.path
                );
                return Outcome::Unmatched;
            }
            Selection::Require { rule, requirements } => {
                log::debug!(
                    "rule {}: {} {}",
                    rule.unwrap_or("(global policy)"),
                    original.method,
                    original.path
                );
                (rule, requirements)
            }
        },
    };
    let token = match extract_token(req.headers(), &state.token_sources) {
        Ok(t) => t,
        Err(TokenError::Missing) => return Outcome::NoToken,
        Err(e) => return Outcome::BadToken(e),
    };
    let info = match state.cache.get(token).await {
        Ok(info) => info,
        // The IdP's verdict on this one token (e.g. unsupported_token_type), not a failure of the service.
        Err(e @ IdpError::TokenRefused { .. }) => {
            log::info!("token refused: {e}");
            return Outcome::Denied(Denial::NotActive);
        }
        Err(e) => {
            log::error!("cannot verify a token, answering 503: {e}");
            return Outcome::Unavailable(e);
        }
    };
    let combined;
    let requirements = match &extra {
        None => base,
        Some(extra) => {
            combined = base.and(extra);
            &combined
        }
    };
    let decision = decide(&info, requirements, state.clock.now_secs());
    log::debug!(
        "rule {}: {} {} -> {:?}",
        rule.unwrap_or("(global policy)"),
        req.method(),
        path,
        decision
    );
    match decision {
        Decision::Allow => Outcome::Allow(info),
        Decision::Deny(d) => Outcome::Denied(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_headers as headers;

    #[test]
    fn token_extraction_table() {
        let none = TokenConfig::default();
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        let max = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN));
        type Case<'a> = (Vec<(&'a str, &'a str)>, Result<&'a str, TokenError>);
        let cases: Vec<Case> = vec![
            (vec![], Err(TokenError::Missing)),
            (vec![("authorization", "Bearer abc.DEF-_~+/==")], Ok("abc.DEF-_~+/==")),
            (vec![("authorization", "bearer abc")], Ok("abc")),
            (vec![("authorization", "BEARER abc")], Ok("abc")),
            (
                vec![("authorization", "Basic dXNlcjpwdw==")],
                Err(TokenError::WrongScheme),
            ),
            (vec![("authorization", "Bearer")], Err(TokenError::Empty)),
            (vec![("authorization", "Bearer ")], Err(TokenError::Empty)),
            (vec![("authorization", "Bearer a b")], Err(TokenError::BadCharacters)),
            (vec![("authorization", "Bearer a\"b")], Err(TokenError::BadCharacters)),
            (vec![("authorization", "Bearer ==")], Err(TokenError::BadCharacters)),
            (vec![("authorization", "Bearer a=b")], Err(TokenError::BadCharacters)),
            (vec![("authorization", long.as_str())], Err(TokenError::TooLong)),
            (
                vec![("authorization", "Bearer a"), ("authorization", "Bearer b")],
                Err(TokenError::Multiple),
            ),
        ];
        for (pairs, want) in cases {
            assert_eq!(extract_token(&headers(&pairs), &none), want, "{pairs:?}");
        }
        let h = headers(&[("authorization", max.as_str())]);
        assert_eq!(extract_token(&h, &none).map(str::len), Ok(MAX_TOKEN_LEN));
    }

    #[test]
    fn other_sources_in_order() {
        let sources = TokenConfig {
            cookie: Some("access_token".into()),
            header: Some("x-forwarded-access-token".into()),
        };
        let h = headers(&[
            ("cookie", "a=1; access_token=fromcookie"),
            ("x-forwarded-access-token", "fromheader"),
        ]);
        assert_eq!(extract_token(&h, &sources), Ok("fromheader"));
        let h = headers(&[("cookie", "a=1; access_token=fromcookie")]);
        assert_eq!(extract_token(&h, &sources), Ok("fromcookie"));
        let h = headers(&[
            ("authorization", "Bearer fromauth"),
            ("x-forwarded-access-token", "fromheader"),
        ]);
        assert_eq!(extract_token(&h, &sources), Ok("fromauth"));
        let h = headers(&[("authorization", "Basic x"), ("x-forwarded-access-token", "fromheader")]);
        assert_eq!(
            extract_token(&h, &sources),
            Err(TokenError::WrongScheme),
            "a bad Authorization is not skipped"
        );
        let h = headers(&[("cookie", "other=1")]);
        assert_eq!(extract_token(&h, &sources), Err(TokenError::Missing));
        let h = headers(&[("x-forwarded-access-token", "Bearer viaheader")]);
        assert_eq!(extract_token(&h, &sources), Ok("viaheader"));
        assert_eq!(
            extract_token(&h, &TokenConfig::default()),
            Err(TokenError::Missing),
            "sources are opt-in"
        );
    }

    #[test]
    fn status_mapping() {
        let status = |o: Outcome| respond(&o, 5, &[]).0.status().as_u16();
        assert_eq!(status(Outcome::Anonymous), 200);
        assert_eq!(status(Outcome::NoToken), 401);
        assert_eq!(status(Outcome::BadToken(TokenError::TooLong)), 401);
        assert_eq!(status(Outcome::Denied(Denial::Expired)), 401);
        assert_eq!(status(Outcome::Denied(Denial::MissingRole)), 403);
        assert_eq!(status(Outcome::Unmatched), 403);
        assert_eq!(status(Outcome::BadCheck(QueryError::Empty("role"))), 400);
        assert_eq!(status(Outcome::Unreadable(OriginalError::Conflict("uri"))), 403);
        assert_eq!(status(Outcome::Unreadable(OriginalError::NoUri("X-Original-URI"))), 400);
        assert_eq!(status(Outcome::HeadersTooLarge), 431);
        for e in [
            IdpError::Timeout,
            IdpError::CredentialsRejected {
                status: 400,
                error: "unauthorized_client".into(),
            },
            IdpError::InvalidResponse(crate::introspection::InvalidResponse::MissingActive),
        ] {
            let (r, label) = respond(&Outcome::Unavailable(e), 5, &[]);
            assert_eq!((r.status().as_u16(), label), (503, VerifyResult::Unavailable));
            assert_eq!(r.headers().get("retry-after").unwrap(), "5");
        }
        let (r, _) = respond(
            &Outcome::Denied(Denial::MissingScopes(vec!["a".into(), "b".into()])),
            5,
            &[],
        );
        assert_eq!(
            r.headers().get("www-authenticate").unwrap(),
            "Bearer realm=\"tokengate\", error=\"insufficient_scope\", error_description=\"the token lacks the scope(s) a b\", scope=\"a b\""
        );
        let (r, _) = respond(&Outcome::NoToken, 5, &[]);
        assert_eq!(
            r.headers().get("www-authenticate").unwrap(),
            "Bearer realm=\"tokengate\""
        );
    }
}
