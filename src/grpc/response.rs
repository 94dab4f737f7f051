//! The one mapping from a decision to a gRPC `CheckResponse`. Always an answer, never an `Err(Status)`: Envoy's
//! `failure_mode_allow` turns errors into allows, so every outcome (IdP trouble, a malformed check) is a
//! `CheckResponse` with a denied_response.
//!
//! - Allow: status OK; `ok_response.headers` sets each identity header the token fills (overwriting a client's
//!   copy); `headers_to_remove` lists every mapped identity header it does not fill, and any spelling of one the
//!   client sent (`x_auth_request_user`); `dynamic_metadata` carries `sub`, `client_id`, `scopes`, `roles`, `rule`.
//! - Deny: the HTTP door's refusal (`crate::answer`: status, `WWW-Authenticate`, `Retry-After`, JSON body) as
//!   `denied_response`, with the gRPC status below.

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{CheckResponse, DeniedHttpResponse, OkHttpResponse};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{ListValue, Struct, Value};
use envoy_types::pb::google::rpc::Status;
use tonic::Code;

use crate::answer::refusal;
use crate::pipeline::{Decided, Outcome};
use crate::token::HeaderRule;
use crate::token::headers::header_for_claim;

/// The gRPC status of a refusal, by its HTTP status: 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 503 UNAVAILABLE,
/// 400 and 431 (a check the proxy built wrongly, headers over the limit) INVALID_ARGUMENT.
pub fn grpc_code(http_status: u16) -> Code {
    match http_status {
        401 => Code::Unauthenticated,
        503 => Code::Unavailable,
        400 | 431 => Code::InvalidArgument,
        // 403, and anything a later refusal might add: a denial.
        _ => Code::PermissionDenied,
    }
}

fn header(key: &str, value: String) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_string(),
            value,
            ..Default::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

fn text(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_string())),
    }
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> Value {
    Value {
        kind: Some(Kind::ListValue(ListValue {
            values: items.map(text).collect(),
        })),
    }
}

/// `x_auth_request_user` and other spellings that CGI, WSGI, Rack or PHP read as a mapped header.
fn is_alias_of(sent: &str, mapped: &str) -> bool {
    sent != mapped
        && sent.len() == mapped.len()
        && sent
            .bytes()
            .zip(mapped.bytes())
            .all(|(s, m)| s.to_ascii_lowercase() == m || (s == b'_' && m == b'-'))
}

/// The answer to one check. `sent` holds the names of the headers the client sent (for removing aliases).
pub fn respond(decided: &Decided<'_>, retry_after_secs: u64, mapping: &[HeaderRule], sent: &[&str]) -> CheckResponse {
    let mut metadata = Struct::default();
    if let Some(rule) = decided.rule {
        metadata.fields.insert("rule".into(), text(rule));
    }
    let Some(r) = refusal(&decided.outcome, retry_after_secs) else {
        let mut ok = OkHttpResponse::default();
        let mut filled: Vec<&str> = Vec::new();
        if let Outcome::Allow(info) = &decided.outcome {
            for (name, value) in info.headers(mapping) {
                // Values were checked when the info was built (`token::headers::header_value`).
                let Ok(value) = value.to_str() else { continue };
                ok.headers.push(header(name.as_str(), value.to_string()));
                filled.push(name.as_str());
            }
            // The info keeps `sub` and `client_id` once, in the identity headers that carry them.
            for (key, claim) in [("sub", "sub"), ("client_id", "client_id")] {
                if let Some(value) = header_for_claim(mapping, claim).and_then(|i| info.header_text(i)) {
                    metadata.fields.insert(key.into(), text(value));
                }
            }
            metadata.fields.insert("scopes".into(), list(info.scopes()));
            metadata.fields.insert("roles".into(), list(info.roles()));
        }
        for rule in mapping {
            let name = rule.name.as_str();
            if !filled.contains(&name) {
                ok.headers_to_remove.push(name.to_string());
            }
            for alias in sent.iter().filter(|s| is_alias_of(s, name)) {
                if !ok.headers_to_remove.iter().any(|r| r == alias) {
                    ok.headers_to_remove.push(alias.to_string());
                }
            }
        }
        return CheckResponse {
            status: Some(Status {
                code: Code::Ok as i32,
                ..Default::default()
            }),
            dynamic_metadata: Some(metadata),
            http_response: Some(HttpResponse::OkResponse(ok)),
        };
    };
    metadata.fields.insert("reason".into(), text(decided.outcome.reason()));
    let mut headers = vec![header("content-type", "application/json".into())];
    if let Some(c) = r.challenge {
        headers.push(header("www-authenticate", c));
    }
    if let Some(secs) = r.retry_after {
        headers.push(header("retry-after", secs.to_string()));
    }
    CheckResponse {
        status: Some(Status {
            code: grpc_code(r.status) as i32,
            message: decided.outcome.reason().to_string(),
            ..Default::default()
        }),
        dynamic_metadata: Some(metadata),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(r.status),
            }),
            headers,
            body: r.body,
        })),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderName;

    use super::*;
    use crate::bearer::TokenError;
    use crate::pipeline::{DoorError, Malformed};
    use crate::policy::Denial;
    use crate::token::{ClaimSource, IdpError};

    #[derive(Debug, thiserror::Error)]
    #[error("bad")]
    struct Bad;

    impl DoorError for Bad {
        fn label(&self) -> &'static str {
            "bad"
        }
    }

    fn decided(outcome: Outcome) -> Decided<'static> {
        Decided {
            outcome,
            rule: Some("r"),
            source: None,
            identity: None,
        }
    }

    fn mapping() -> Vec<HeaderRule> {
        ["x-auth-request-user", "x-auth-request-email"]
            .into_iter()
            .map(|n| HeaderRule {
                name: HeaderName::from_static(n),
                source: ClaimSource::Claims(vec!["sub".into()]),
            })
            .collect()
    }

    fn denied(resp: &CheckResponse) -> &DeniedHttpResponse {
        match &resp.http_response {
            Some(HttpResponse::DeniedResponse(d)) => d,
            other => panic!("not denied: {other:?}"),
        }
    }

    fn header_of<'a>(headers: &'a [HeaderValueOption], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .filter_map(|h| h.header.as_ref())
            .find(|h| h.key == name)
            .map(|h| h.value.as_str())
    }

    /// Every outcome → (gRPC code, HTTP status of the denied response or 0 for OK).
    #[test]
    fn status_table() {
        let cases: Vec<(Outcome, Code, u16)> = vec![
            (Outcome::Anonymous, Code::Ok, 0),
            (Outcome::NoToken, Code::Unauthenticated, 401),
            (Outcome::BadToken(TokenError::TooLong), Code::Unauthenticated, 401),
            (Outcome::Denied(Denial::Expired), Code::Unauthenticated, 401),
            (Outcome::Denied(Denial::NotActive), Code::Unauthenticated, 401),
            (Outcome::Denied(Denial::MissingRole), Code::PermissionDenied, 403),
            (
                Outcome::Denied(Denial::MissingScopes(vec!["a".into()])),
                Code::PermissionDenied,
                403,
            ),
            (Outcome::Unmatched, Code::PermissionDenied, 403),
            (
                Outcome::Malformed(Malformed::Unreadable(Box::new(Bad))),
                Code::PermissionDenied,
                403,
            ),
            (
                Outcome::Malformed(Malformed::BadCheck(Box::new(Bad))),
                Code::InvalidArgument,
                400,
            ),
            (
                Outcome::Malformed(Malformed::HeadersTooLarge),
                Code::InvalidArgument,
                431,
            ),
            (Outcome::Unavailable(IdpError::Timeout), Code::Unavailable, 503),
            (Outcome::Unavailable(IdpError::Overloaded), Code::Unavailable, 503),
        ];
        for (outcome, code, http) in cases {
            let what = format!("{outcome:?}");
            let resp = respond(&decided(outcome), 4, &mapping(), &[]);
            assert_eq!(resp.status.as_ref().unwrap().code, code as i32, "{what}");
            match &resp.http_response {
                Some(HttpResponse::OkResponse(_)) => assert_eq!(http, 0, "{what}"),
                Some(HttpResponse::DeniedResponse(d)) => {
                    assert_eq!(d.status.as_ref().unwrap().code, i32::from(http), "{what}");
                    assert_eq!(header_of(&d.headers, "content-type"), Some("application/json"));
                    let body: serde_json::Value = serde_json::from_str(&d.body).unwrap();
                    assert!(body["error"].is_string(), "{what}");
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    #[test]
    fn denials_carry_the_http_doors_challenge_and_retry_after() {
        let resp = respond(
            &decided(Outcome::Denied(Denial::MissingScopes(vec!["write".into()]))),
            4,
            &mapping(),
            &[],
        );
        let d = denied(&resp);
        let want = refusal(&Outcome::Denied(Denial::MissingScopes(vec!["write".into()])), 4).unwrap();
        assert_eq!(header_of(&d.headers, "www-authenticate"), want.challenge.as_deref());
        assert!(want.challenge.unwrap().contains("scope=\"write\""));
        assert_eq!(d.body, want.body);
        let resp = respond(&decided(Outcome::Unavailable(IdpError::Timeout)), 4, &mapping(), &[]);
        assert_eq!(header_of(&denied(&resp).headers, "retry-after"), Some("4"));
        let resp = respond(&decided(Outcome::NoToken), 4, &mapping(), &[]);
        assert_eq!(
            header_of(&denied(&resp).headers, "www-authenticate"),
            Some("Bearer realm=\"tokengate\"")
        );
        assert!(
            denied(&resp)
                .headers
                .iter()
                .all(|h| h.append_action == HeaderAppendAction::OverwriteIfExistsOrAdd as i32)
        );
    }

    #[test]
    fn an_anonymous_allow_removes_every_identity_header_and_its_aliases() {
        let resp = respond(
            &decided(Outcome::Anonymous),
            4,
            &mapping(),
            &[
                "x_auth_request_user",
                "x-auth_request-email",
                "x-other",
                "x-auth-request-user",
            ],
        );
        let Some(HttpResponse::OkResponse(ok)) = &resp.http_response else {
            panic!("{resp:?}")
        };
        assert!(ok.headers.is_empty());
        assert_eq!(
            ok.headers_to_remove,
            vec![
                "x-auth-request-user",
                "x_auth_request_user",
                "x-auth-request-email",
                "x-auth_request-email"
            ]
        );
        let meta = resp.dynamic_metadata.unwrap();
        assert_eq!(meta.fields.get("rule"), Some(&text("r")));
        assert!(!meta.fields.contains_key("sub"));
    }

    #[test]
    fn aliases() {
        assert!(is_alias_of("x_auth_request_user", "x-auth-request-user"));
        assert!(!is_alias_of("x-auth-request-user", "x-auth-request-user"));
        assert!(!is_alias_of("x-auth-request-users", "x-auth-request-user"));
        assert!(!is_alias_of("x-auth-request-usex", "x-auth-request-user"));
        assert!(!is_alias_of("x-auth-request_user", "x_auth-request-user"));
    }
}
