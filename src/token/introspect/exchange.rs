//! One introspection: the RFC 7662 POST with the client's authentication, and the IdP's answer as a result, each
//! failure kept apart (transport, 5xx, 429, redirect, credentials, token refused, invalid response).

use std::time::Instant;

use awc::http::StatusCode;
use serde_json::Value;

use super::credentials::ClientAuth;
use super::discovery::Endpoints;
use super::http::IdpHttp;
use crate::secret::Secret;
use crate::token::{IdpError, Introspection};

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub async fn introspect(
    http: &IdpHttp,
    endpoints: &Endpoints,
    auth: &ClientAuth,
    token: &Secret,
    deadline: Instant,
) -> Result<Introspection, IdpError> {
    let mut form: Vec<(&str, &str)> = vec![("token", token.expose())];
    let authorization = match auth {
        ClientAuth::Assertion(assertion) => {
            form.push(("client_assertion_type", ASSERTION_TYPE));
            form.push(("client_assertion", assertion.expose()));
            None
        }
        ClientAuth::Basic(header) => Some(header.expose()),
    };
    let resp = http
        .post_form(&endpoints.introspection, &form, authorization, deadline)
        .await?;
    classify(resp.status, &resp.body)
}

/// Only a short, known-safe error code from the IdP's body makes it into logs.
fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .filter(|e| e.len() <= 64 && e.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .unwrap_or_else(|| "no error code".to_string())
}

/// The IdP's answer as a result. Token-specific refusals (`unsupported_token_type`, `invalid_token`) concern one
/// token; any other 4xx means our own client authentication or request is wrong.
pub fn classify(status: StatusCode, body: &[u8]) -> Result<Introspection, IdpError> {
    let code = status.as_u16();
    if status.is_success() {
        return Ok(Introspection::parse(body)?);
    }
    if status.is_redirection() {
        return Err(IdpError::Redirect(code));
    }
    if code == 429 {
        return Err(IdpError::RateLimited);
    }
    if status.is_client_error() {
        let error = error_code(body);
        return Err(
            if matches!(error.as_str(), "unsupported_token_type" | "invalid_token") {
                IdpError::TokenRefused { status: code, error }
            } else {
                IdpError::CredentialsRejected { status: code, error }
            },
        );
    }
    Err(IdpError::ServerError(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classification() {
        let ok = |s: u16, b: &str| classify(StatusCode::from_u16(s).unwrap(), b.as_bytes());
        assert!(ok(200, r#"{"active":true}"#).unwrap().active);
        assert!(!ok(200, r#"{"active":false}"#).unwrap().active);
        assert!(matches!(ok(200, "<html>"), Err(IdpError::InvalidResponse(_))));
        let rejected = |r: Result<Introspection, IdpError>| match r {
            Err(IdpError::CredentialsRejected { status, error }) => Some((status, error)),
            _ => None,
        };
        assert_eq!(
            rejected(ok(400, r#"{"error":"unauthorized_client"}"#)),
            Some((400, "unauthorized_client".into()))
        );
        assert_eq!(
            rejected(ok(401, r#"{"error":"invalid_client"}"#)),
            Some((401, "invalid_client".into()))
        );
        assert_eq!(rejected(ok(403, "nope")), Some((403, "no error code".into())));
        assert_eq!(
            rejected(ok(400, r#"{"error":"Evil\r\nInjected"}"#)),
            Some((400, "no error code".into())),
            "only clean codes reach logs"
        );
        assert!(matches!(
            ok(400, r#"{"error":"unsupported_token_type"}"#),
            Err(IdpError::TokenRefused { status: 400, .. })
        ));
        assert!(matches!(ok(429, ""), Err(IdpError::RateLimited)));
        assert!(matches!(ok(500, ""), Err(IdpError::ServerError(500))));
        assert!(matches!(ok(502, ""), Err(IdpError::ServerError(502))));
        assert!(matches!(ok(302, ""), Err(IdpError::Redirect(302))));
    }
}
