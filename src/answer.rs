//! How a refusal reads on the wire, the same for every front door: the HTTP status, the RFC 6750 challenge, the
//! JSON body and `Retry-After`. Each door puts it into its own form (an HTTP response, a gRPC denied_response).

use serde_json::json;

use crate::pipeline::{Malformed, Outcome};
use crate::policy::Denial;

/// A refusal, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    /// `WWW-Authenticate`, when the refusal is about the token.
    pub challenge: Option<String>,
    /// `{"error": …, "error_description": …}`.
    pub body: String,
    pub retry_after: Option<u64>,
}

const REALM: &str = "Bearer realm=\"tokengate\"";

/// The RFC 6750 challenge. Scopes and descriptions are validated text (RFC 6749 scope tokens, our own messages),
/// so nothing here can break the header.
fn challenge(error: Option<(&str, &str)>, scope: Option<&str>) -> String {
    let mut v = String::from(REALM);
    if let Some((code, description)) = error {
        v.push_str(&format!(", error=\"{code}\", error_description=\"{description}\""));
    }
    if let Some(s) = scope {
        v.push_str(&format!(", scope=\"{s}\""));
    }
    v
}

fn body(error: &str, description: &str) -> String {
    json!({"error": error, "error_description": description}).to_string()
}

fn refuse(status: u16, challenge: Option<String>, error: &str, description: &str) -> Refusal {
    Refusal {
        status,
        challenge,
        body: body(error, description),
        retry_after: None,
    }
}

/// `None` for an allow. Exactly 200 allows (Envoy denies anything else); 401/403 carry the RFC 6750 challenge;
/// a check the proxy built wrongly is 400; an original request that cannot be read one way is 403 (nginx turns
/// anything but 401/403 from auth_request into a 500); IdP trouble is 503 with `Retry-After`.
pub fn refusal(outcome: &Outcome, retry_after_secs: u64) -> Option<Refusal> {
    Some(match outcome {
        Outcome::Allow(_) | Outcome::Anonymous => return None,
        Outcome::NoToken => refuse(
            401,
            Some(challenge(None, None)),
            "invalid_request",
            "a bearer token is required",
        ),
        Outcome::BadToken(e) => {
            let d = e.to_string();
            refuse(
                401,
                Some(challenge(Some(("invalid_request", &d)), None)),
                "invalid_request",
                &d,
            )
        }
        Outcome::Denied(denial) if denial.is_invalid_token() => {
            let d = denial.description();
            refuse(
                401,
                Some(challenge(Some(("invalid_token", &d)), None)),
                "invalid_token",
                &d,
            )
        }
        Outcome::Denied(denial) => {
            let d = denial.description();
            let scope = match denial {
                Denial::MissingScopes(s) => Some(s.join(" ")),
                _ => None,
            };
            refuse(
                403,
                Some(challenge(Some(("insufficient_scope", &d)), scope.as_deref())),
                "insufficient_scope",
                &d,
            )
        }
        Outcome::Unmatched => refuse(
            403,
            None,
            "access_denied",
            "no rule allows this request (policy.deny_unmatched)",
        ),
        Outcome::Malformed(Malformed::HeadersTooLarge) => {
            refuse(431, None, "invalid_request", "the request headers exceed 32 KiB")
        }
        Outcome::Malformed(Malformed::BadCheck(e)) => refuse(400, None, "invalid_request", &e.to_string()),
        Outcome::Malformed(Malformed::Unreadable(e)) => refuse(403, None, "access_denied", &e.to_string()),
        Outcome::Unavailable(_) => Refusal {
            retry_after: Some(retry_after_secs),
            ..refuse(
                503,
                None,
                "temporarily_unavailable",
                "the identity provider cannot be reached; try again later",
            )
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bearer::TokenError;
    use crate::pipeline::DoorError;
    use crate::token::IdpError;

    #[derive(Debug, thiserror::Error)]
    #[error("the door says no")]
    struct Nope;

    impl DoorError for Nope {
        fn label(&self) -> &'static str {
            "nope"
        }
    }

    #[test]
    fn status_mapping() {
        let status = |o: Outcome| refusal(&o, 5).map_or(200, |r| r.status);
        assert_eq!(status(Outcome::Anonymous), 200);
        assert_eq!(status(Outcome::NoToken), 401);
        assert_eq!(status(Outcome::BadToken(TokenError::TooLong)), 401);
        assert_eq!(status(Outcome::Denied(Denial::Expired)), 401);
        assert_eq!(status(Outcome::Denied(Denial::MissingRole)), 403);
        assert_eq!(status(Outcome::Unmatched), 403);
        assert_eq!(status(Outcome::Malformed(Malformed::BadCheck(Box::new(Nope)))), 400);
        assert_eq!(status(Outcome::Malformed(Malformed::Unreadable(Box::new(Nope)))), 403);
        assert_eq!(status(Outcome::Malformed(Malformed::HeadersTooLarge)), 431);
        for e in [
            IdpError::Timeout,
            IdpError::CredentialsRejected {
                status: 400,
                error: "unauthorized_client".into(),
            },
            IdpError::InvalidResponse(crate::token::InvalidResponse::MissingActive),
        ] {
            let r = refusal(&Outcome::Unavailable(e), 5).unwrap();
            assert_eq!((r.status, r.retry_after), (503, Some(5)));
        }
    }

    #[test]
    fn challenges() {
        let r = refusal(&Outcome::Denied(Denial::MissingScopes(vec!["a".into(), "b".into()])), 5).unwrap();
        assert_eq!(
            r.challenge.as_deref(),
            Some(
                "Bearer realm=\"tokengate\", error=\"insufficient_scope\", error_description=\"the token lacks the scope(s) a b\", scope=\"a b\""
            )
        );
        assert_eq!(
            refusal(&Outcome::NoToken, 5).unwrap().challenge.as_deref(),
            Some("Bearer realm=\"tokengate\"")
        );
        assert_eq!(refusal(&Outcome::Unmatched, 5).unwrap().challenge, None);
        let body: serde_json::Value =
            serde_json::from_str(&refusal(&Outcome::Denied(Denial::NotActive), 5).unwrap().body).unwrap();
        assert_eq!(body["error"], "invalid_token");
    }
}
