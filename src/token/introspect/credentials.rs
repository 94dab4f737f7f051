//! tokengate's own client credentials at the identity provider: where they come from (`idp.key_file`, or Basic
//! client id and secret), what one introspection sends (`ClientAuth`), and the `Authenticator` that hands it out
//! from any thread, pre-signed where it can be.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

use base64::Engine;
use sha2::{Digest, Sha256};

use super::assertion::AssertionSigner;
use super::keyfile::{KeyFile, KeyFileError};
use super::signer::Presigner;
use crate::clock::{Clock, SystemClock};
use crate::secret::{Secret, read_secret_file};
use crate::token::IdpError;

/// Where the client credentials come from.
#[derive(Debug, Clone)]
pub enum ClientAuthConfig {
    /// ZITADEL's JWT profile: a client assertion signed with the API application's key.
    KeyFile(PathBuf),
    /// HTTP Basic with client id and secret.
    Basic { client_id: String, secret: SecretSource },
}

#[derive(Debug, Clone)]
pub enum SecretSource {
    Inline(Secret),
    File(PathBuf),
}

impl ClientAuthConfig {
    /// The file the credentials come from, if any: re-read on change, and checked for loose permissions.
    pub fn file(&self) -> Option<&Path> {
        match self {
            ClientAuthConfig::KeyFile(p) => Some(p),
            ClientAuthConfig::Basic {
                secret: SecretSource::File(p),
                ..
            } => Some(p),
            ClientAuthConfig::Basic { .. } => None,
        }
    }
}

/// Why credentials could not be loaded. Never quotes the file's content.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("idp.key_file ({path}): {source}")]
    KeyFile {
        path: PathBuf,
        #[source]
        source: KeyFileError,
    },
    #[error("idp.client_secret_file ({path}): cannot read: {source}")]
    SecretFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the secret file is not UTF-8")]
    SecretNotUtf8,
    #[error("{0}")]
    Key(#[from] KeyFileError),
}

/// The client credentials, loaded from files.
pub enum Credentials {
    Key(KeyFile),
    Basic { client_id: String, secret: Secret },
}

impl Credentials {
    pub fn load(cfg: &ClientAuthConfig) -> Result<Credentials, CredentialsError> {
        match cfg {
            ClientAuthConfig::KeyFile(path) => {
                KeyFile::load(path)
                    .map(Credentials::Key)
                    .map_err(|source| CredentialsError::KeyFile {
                        path: path.clone(),
                        source,
                    })
            }
            ClientAuthConfig::Basic { client_id, secret } => {
                let secret = match secret {
                    SecretSource::Inline(s) => s.clone(),
                    SecretSource::File(path) => {
                        read_secret_file(path).map_err(|source| CredentialsError::SecretFile {
                            path: path.clone(),
                            source,
                        })?
                    }
                };
                Ok(Credentials::Basic {
                    client_id: client_id.clone(),
                    secret,
                })
            }
        }
    }

    /// Credentials from a re-read file's content.
    pub fn from_bytes(cfg: &ClientAuthConfig, bytes: &[u8]) -> Result<Credentials, CredentialsError> {
        match cfg {
            ClientAuthConfig::KeyFile(_) => Ok(Credentials::Key(KeyFile::parse(bytes)?)),
            ClientAuthConfig::Basic { client_id, .. } => {
                let text = std::str::from_utf8(bytes).map_err(|_| CredentialsError::SecretNotUtf8)?;
                Ok(Credentials::Basic {
                    client_id: client_id.clone(),
                    secret: Secret::new(text.trim_end_matches(['\r', '\n'])),
                })
            }
        }
    }

    /// Identifies the content, so an unchanged file is not re-tested.
    pub fn fingerprint(&self) -> [u8; 32] {
        match self {
            Credentials::Key(k) => k.fingerprint,
            Credentials::Basic { secret, .. } => Sha256::digest(secret.expose().as_bytes()).into(),
        }
    }

    pub fn client_id(&self) -> &str {
        match self {
            Credentials::Key(k) => &k.client_id,
            Credentials::Basic { client_id, .. } => client_id,
        }
    }

    /// The OAuth name of the authentication method.
    pub fn method(&self) -> &'static str {
        match self {
            Credentials::Key(_) => "private_key_jwt",
            Credentials::Basic { .. } => "client_secret_basic",
        }
    }
}

/// How credentials authenticate once the assertion's audience (the issuer) is known.
pub enum Auth {
    Assertion(Arc<AssertionSigner>),
    /// The complete `Authorization` header value.
    Basic(Secret),
}

impl Auth {
    pub fn new(credentials: &Credentials, audience: &str, assertion_reuse: bool) -> Auth {
        match credentials {
            Credentials::Key(key) => Auth::Assertion(Arc::new(AssertionSigner::new(
                key,
                audience.to_string(),
                assertion_reuse,
            ))),
            Credentials::Basic { client_id, secret } => {
                // RFC 6749 §2.3.1: both parts form-urlencoded before base64.
                let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let pair = format!("{}:{}", enc(client_id), enc(secret.expose()));
                Auth::Basic(Secret::new(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )))
            }
        }
    }

    /// What one introspection sends; signs a fresh assertion unless one is reused.
    pub fn sign(&self, metrics: &prometheus::IntCounter) -> Result<ClientAuth, IdpError> {
        match self {
            Auth::Assertion(signer) => {
                let (assertion, signed) = signer
                    .assertion(SystemClock.now_secs())
                    .map_err(|e| IdpError::Signing(Arc::new(e)))?;
                if signed {
                    metrics.inc();
                }
                Ok(ClientAuth::Assertion(assertion))
            }
            Auth::Basic(header) => Ok(ClientAuth::Basic(header.clone())),
        }
    }
}

/// What one introspection carries.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    Assertion(Secret),
    Basic(Secret),
}

struct Current {
    credentials: Arc<Credentials>,
    /// Built once the issuer is known.
    auth: Option<Arc<Auth>>,
}

/// The credentials in use, shared by every thread: the request threads take a client authentication from it
/// (a pre-signed assertion when one is ready, so a miss pays no RSA signature), the IdP thread replaces the
/// credentials when the key file changes.
pub struct Authenticator {
    current: RwLock<Current>,
    issuer: OnceLock<String>,
    assertion_reuse: bool,
    presigner: Option<Presigner>,
    signed: prometheus::IntCounter,
}

impl Authenticator {
    /// `presign`: keep this many assertions signed ahead (0: sign on demand). Ignored with assertion reuse.
    /// `signed`: `tokengate_assertions_signed_total{mode}`.
    pub fn new(
        credentials: Credentials,
        assertion_reuse: bool,
        presign: usize,
        signed: &prometheus::IntCounterVec,
    ) -> Self {
        let presigner = (presign > 0 && !assertion_reuse && matches!(credentials, Credentials::Key(_)))
            .then(|| Presigner::start(presign, signed.with_label_values(&["ahead"])));
        let signed = signed.with_label_values(&["on_demand"]);
        Authenticator {
            current: RwLock::new(Current {
                credentials: Arc::new(credentials),
                auth: None,
            }),
            issuer: OnceLock::new(),
            assertion_reuse,
            presigner,
            signed,
        }
    }

    pub fn credentials(&self) -> Arc<Credentials> {
        match self.current.read() {
            Ok(c) => c.credentials.clone(),
            Err(poisoned) => poisoned.into_inner().credentials.clone(),
        }
    }

    /// Learns the assertion audience (once, from discovery).
    pub fn set_issuer(&self, issuer: &str) {
        if self.issuer.set(issuer.to_string()).is_ok() {
            self.rebuild();
        }
    }

    fn rebuild(&self) {
        let Some(issuer) = self.issuer.get() else { return };
        let Ok(mut current) = self.current.write() else { return };
        let auth = Arc::new(Auth::new(&current.credentials, issuer, self.assertion_reuse));
        if let (Some(p), Auth::Assertion(signer)) = (&self.presigner, auth.as_ref()) {
            p.use_signer(signer.clone());
        }
        current.auth = Some(auth);
    }

    /// Puts credentials that the IdP has accepted into use; assertions signed with the old ones are dropped.
    pub fn replace(&self, credentials: Credentials, auth: Arc<Auth>) {
        if let Ok(mut current) = self.current.write() {
            if let (Some(p), Auth::Assertion(signer)) = (&self.presigner, auth.as_ref()) {
                p.use_signer(signer.clone());
            }
            current.credentials = Arc::new(credentials);
            current.auth = Some(auth);
        }
    }

    /// The client authentication for one introspection, or `None` before the issuer is known (the IdP thread
    /// then signs after discovery).
    pub fn client_auth(&self) -> Option<Result<ClientAuth, IdpError>> {
        let auth = self.current.read().ok()?.auth.clone()?;
        if let (Some(p), Auth::Assertion(_)) = (&self.presigner, auth.as_ref())
            && let Some(assertion) = p.take()
        {
            return Some(Ok(ClientAuth::Assertion(assertion)));
        }
        Some(auth.sign(&self.signed))
    }

    pub fn assertion_reuse(&self) -> bool {
        self.assertion_reuse
    }

    pub fn signed_counter(&self) -> &prometheus::IntCounter {
        &self.signed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::introspect::keyfile::tests::fixture;

    fn key() -> Credentials {
        Credentials::Key(KeyFile::parse(&fixture(serde_json::json!({}))).unwrap())
    }

    #[test]
    fn nothing_is_handed_out_before_the_issuer_is_known() {
        let counter = prometheus::IntCounterVec::new(prometheus::Opts::new("x", "x"), &["mode"]).unwrap();
        let a = Authenticator::new(key(), false, 0, &counter);
        assert!(a.client_auth().is_none());
        a.set_issuer("https://issuer.example.com");
        assert!(matches!(a.client_auth(), Some(Ok(ClientAuth::Assertion(_)))));
    }

    #[test]
    fn basic_parts_are_form_encoded_before_base64() {
        let creds = Credentials::Basic {
            client_id: "api@project".into(),
            secret: Secret::new("p:ss wörd"),
        };
        let Auth::Basic(header) = Auth::new(&creds, "x", false) else {
            panic!("basic")
        };
        let encoded = header.expose().strip_prefix("Basic ").unwrap();
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), "api%40project:p%3Ass+w%C3%B6rd");
    }
}
