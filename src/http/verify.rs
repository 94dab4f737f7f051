//! `/verify` and `/verify/{path}`: the HTTP front door. It only translates: the check request into a pipeline
//! `Check` (original request, token, check-URL requirements, client), and the `Decided` into exactly-200 with
//! identity headers or a refusal (`respond`, the one place where outcomes become HTTP).

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderMap, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use super::original::{OriginalError, original_request};
use crate::answer::refusal;
use crate::bearer::{Headers, MAX_HEADER_BYTES, extract_token};
use crate::client::client_key;
use crate::config::ProxyMode;
use crate::pipeline::{Check, Decided, Door, DoorError, Malformed, Outcome};
use crate::policy::{QueryError, Requirements, parse_check_query};
use crate::token::HeaderRule;

impl Headers for HeaderMap {
    fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> {
        self.get_all(name).map(HeaderValue::as_bytes)
    }

    fn total_bytes(&self) -> usize {
        self.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum()
    }
}

impl DoorError for QueryError {
    fn label(&self) -> &'static str {
        "bad_check_query"
    }
}

impl DoorError for OriginalError {
    fn label(&self) -> &'static str {
        OriginalError::label(self)
    }
}

pub async fn verify(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let check = translate(&req, &state, Instant::now());
    let decided = state.pipeline.check(check).await;
    respond(&decided, state.retry_after_secs, &state.header_mapping)
}

/// The raw path and query after `/verify` (Envoy's path_prefix form).
fn prefix_target(req: &HttpRequest) -> &str {
    let uri = req.uri();
    let path_and_query = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    path_and_query.strip_prefix("/verify").unwrap_or(path_and_query)
}

/// The check request as the pipeline's `Check`.
fn translate<'a>(req: &'a HttpRequest, state: &AppState, started: Instant) -> Check<'a> {
    let headers = req.headers();
    let client = client_key(
        state.client_address,
        |name| headers.get(name).and_then(|v| v.to_str().ok()),
        req.peer_addr().map(|a| a.ip()),
    );
    let check = |original, extra| Check {
        door: Door::Http,
        started,
        original,
        extra,
        token: extract_token(headers, &state.token_sources),
        client,
    };
    if headers.total_bytes() > MAX_HEADER_BYTES {
        return check(Err(Malformed::HeadersTooLarge), Requirements::default());
    }
    // On `/verify/…` the rest of the path and the query are the client's (Envoy), never a source of policy.
    let prefix = req.uri().path().strip_prefix("/verify").filter(|rest| !rest.is_empty());
    let extra = match prefix {
        Some(_) => Requirements::default(),
        None => match parse_check_query(req.uri().query().unwrap_or("")) {
            Ok(r) => r,
            Err(e) => {
                log::error!("refusing check: {e}");
                return check(Err(Malformed::BadCheck(Box::new(e))), Requirements::default());
            }
        },
    };
    // The original request matters to rules, and must be unambiguous whenever the check names it (the prefix
    // path, or a named proxy). Otherwise it is not rebuilt for every check.
    let needs_original = state.pipeline.policy().needs_original() || prefix.is_some() || state.proxy != ProxyMode::Auto;
    let original = if needs_original {
        original_request(
            state.proxy,
            req.method().as_str(),
            prefix.map(|_| prefix_target(req)),
            headers,
            state.strict_paths,
        )
        .map(Some)
        .map_err(|e| {
            log::warn!("refusing check ({}): {e}", e.label());
            if e.is_misconfiguration() {
                Malformed::BadCheck(Box::new(e))
            } else {
                Malformed::Unreadable(Box::new(e))
            }
        })
    } else {
        Ok(None)
    };
    check(original, extra)
}

/// Every mapped identity header, empty, so that a proxy copying the answer's headers overwrites a client's copy
/// even when the token lacks the claim; the token's own values replace them.
fn empty_identity_headers(b: &mut actix_web::HttpResponseBuilder, mapping: &[HeaderRule]) {
    for rule in mapping {
        b.insert_header((rule.name.clone(), HeaderValue::from_static("")));
    }
}

/// The one mapping from a decision to HTTP.
pub fn respond(decided: &Decided<'_>, retry_after_secs: u64, mapping: &[HeaderRule]) -> HttpResponse {
    let Some(r) = refusal(&decided.outcome, retry_after_secs) else {
        let mut b = HttpResponse::Ok();
        match &decided.outcome {
            Outcome::Allow(info) => {
                for (name, value) in info.all_headers(mapping) {
                    b.insert_header((name.clone(), value));
                }
            }
            _ => empty_identity_headers(&mut b, mapping),
        }
        return b.finish();
    };
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::FORBIDDEN);
    let mut b = HttpResponse::build(status);
    b.content_type("application/json");
    if let Some(c) = r.challenge {
        // Built from validated scope tokens and our own text; a value that still failed would lose the details only.
        let value = HeaderValue::from_str(&c).unwrap_or(HeaderValue::from_static("Bearer realm=\"tokengate\""));
        b.insert_header(("WWW-Authenticate", value));
    }
    if let Some(secs) = r.retry_after {
        b.insert_header(("Retry-After", secs.to_string()));
    }
    b.body(r.body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Outcome;
    use crate::policy::Denial;
    use crate::token::TokenInfo;

    fn decided(outcome: Outcome) -> Decided<'static> {
        Decided {
            outcome,
            rule: None,
            source: None,
            identity: None,
        }
    }

    #[test]
    fn responses_carry_the_refusal_and_identity_headers() {
        let mapping = vec![HeaderRule {
            name: actix_web::http::header::HeaderName::from_static("x-auth-request-user"),
            source: crate::token::ClaimSource::Claims(vec!["sub".into()]),
        }];
        let r = respond(&decided(Outcome::Anonymous), 5, &mapping);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers().get("x-auth-request-user").unwrap(), "", "always set, empty");
        let r = respond(&decided(Outcome::Denied(Denial::MissingRole)), 5, &mapping);
        assert_eq!(r.status(), 403);
        assert!(r.headers().get("x-auth-request-user").is_none());
        assert!(
            r.headers()
                .get("www-authenticate")
                .unwrap()
                .to_str()
                .unwrap()
                .contains("insufficient_scope")
        );
        let r = respond(
            &decided(Outcome::Unavailable(crate::token::IdpError::Timeout)),
            7,
            &mapping,
        );
        assert_eq!(
            (
                r.status().as_u16(),
                r.headers().get("retry-after").unwrap().to_str().unwrap()
            ),
            (503, "7")
        );
        let _ = TokenInfo::inactive();
    }
}
