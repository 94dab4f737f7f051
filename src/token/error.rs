//! What can go wrong learning about a token: the identity provider's failures and the response checks. Messages name
//! the cause, never a token or a credential; each kind has a metric label.

use std::sync::Arc;

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

/// Why the discovery document could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("the discovery document answered HTTP {0}")]
    Status(u16),
    #[error("the discovery document is not a JSON object")]
    NotJson,
    #[error("the discovery document has no {0}")]
    Missing(&'static str),
}

/// What went wrong talking to the identity provider. Messages name the cause, never a token or credential.
/// Cloneable, because one failed call answers every check that waited for it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IdpError {
    #[error("cannot reach the identity provider: {0}")]
    Unreachable(#[source] Arc<std::io::Error>),
    #[error("the identity provider did not answer within the timeout")]
    Timeout,
    #[error("the identity provider answered HTTP {0}")]
    ServerError(u16),
    #[error("the identity provider is rate limiting us (HTTP 429)")]
    RateLimited,
    #[error(
        "the identity provider rejected our client authentication (HTTP {status}, {error}): check idp.key_file / idp.client_id and idp.issuer"
    )]
    CredentialsRejected {
        status: u16,
        /// The IdP's `error` code, only when it is a short `[a-z_]` word.
        error: String,
    },
    #[error("the identity provider refused to introspect this token (HTTP {status}, {error})")]
    TokenRefused { status: u16, error: String },
    #[error("the identity provider sent an invalid introspection response: {0}")]
    InvalidResponse(#[from] InvalidResponse),
    #[error("the identity provider's response exceeds idp.max_response_bytes")]
    ResponseTooLarge,
    #[error("the identity provider answered with a redirect (HTTP {0}), which is not followed")]
    Redirect(u16),
    #[error("discovery failed: {0}")]
    Discovery(#[from] DiscoveryError),
    #[error("cannot sign the client assertion: {0}")]
    Signing(#[source] Arc<jsonwebtoken::errors::Error>),
    #[error("too many introspections in flight (idp.max_concurrent); waited until the deadline")]
    Overloaded,
    #[error("the identity provider's thread is gone")]
    WorkerGone,
}

impl IdpError {
    /// A transport failure, described by the transport (no request content reaches this text).
    pub fn unreachable(what: impl std::fmt::Display) -> IdpError {
        IdpError::Unreachable(Arc::new(std::io::Error::other(what.to_string())))
    }

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

    /// `tokengate_idp_errors_total{kind}`.
    pub fn label(&self) -> &'static str {
        match self {
            IdpError::Unreachable(_) => "unreachable",
            IdpError::Timeout => "timeout",
            IdpError::ServerError(_) => "server_error",
            IdpError::RateLimited => "rate_limited",
            IdpError::CredentialsRejected { .. } => "credentials_rejected",
            IdpError::TokenRefused { .. } => "token_refused",
            IdpError::InvalidResponse(_) => "invalid_response",
            IdpError::ResponseTooLarge => "response_too_large",
            IdpError::Redirect(_) => "redirect",
            IdpError::Discovery(_) => "discovery",
            IdpError::Signing(_) => "signing",
            IdpError::Overloaded => "overloaded",
            IdpError::WorkerGone => "internal",
        }
    }

    pub const LABELS: [&'static str; 13] = [
        "unreachable",
        "timeout",
        "server_error",
        "rate_limited",
        "credentials_rejected",
        "token_refused",
        "invalid_response",
        "response_too_large",
        "redirect",
        "discovery",
        "signing",
        "overloaded",
        "internal",
    ];
}
