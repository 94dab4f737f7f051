//! What can go wrong learning about a token: the identity provider's failures and the response checks. Messages name
//! the cause, never a token or a credential; each kind has a metric label.

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

/// What went wrong talking to the identity provider. Messages name the cause, never a token or credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdpError {
    #[error("cannot reach the identity provider: {0}")]
    Unreachable(String),
    #[error("the identity provider did not answer within the timeout")]
    Timeout,
    #[error("the identity provider answered HTTP {0}")]
    ServerError(u16),
    #[error("the identity provider is rate limiting us (HTTP 429)")]
    RateLimited,
    #[error(
        "the identity provider rejected our client authentication (HTTP {status}, {error}): check idp.key_file / idp.client_id and idp.issuer"
    )]
    CredentialsRejected { status: u16, error: String },
    #[error("the identity provider refused to introspect this token (HTTP {status}, {error})")]
    TokenRefused { status: u16, error: String },
    #[error("the identity provider sent an invalid introspection response: {0}")]
    InvalidResponse(#[from] InvalidResponse),
    #[error("the identity provider's response exceeds idp.max_response_bytes")]
    ResponseTooLarge,
    #[error("the identity provider answered with a redirect (HTTP {0}), which is not followed")]
    Redirect(u16),
    #[error("discovery failed: {0}")]
    Discovery(String),
    #[error("cannot sign the client assertion: {0}")]
    Signing(String),
    #[error("too many introspections in flight (idp.max_concurrent); waited idp.timeout")]
    Overloaded,
    #[error("the introspection worker is gone")]
    WorkerGone,
}

impl IdpError {
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
}
