//! What /readyz (and gRPC health) report: endpoints known, and the IdP not rejecting our client authentication.

use super::error::IdpError;
use super::introspection::Introspection;

/// What /readyz reports: endpoints known, and the IdP not rejecting our client authentication.
#[derive(Debug, Default)]
pub struct IdpHealth {
    endpoints_known: std::sync::atomic::AtomicBool,
    credentials_rejected: std::sync::atomic::AtomicBool,
}

impl IdpHealth {
    pub fn record(&self, result: &Result<Introspection, IdpError>) {
        use std::sync::atomic::Ordering::Relaxed;
        match result {
            Ok(_) => {
                self.endpoints_known.store(true, Relaxed);
                self.credentials_rejected.store(false, Relaxed);
            }
            Err(e) if e.is_credentials() => {
                self.endpoints_known.store(true, Relaxed);
                self.credentials_rejected.store(true, Relaxed);
            }
            Err(_) => {}
        }
    }

    pub fn endpoints_known(&self) {
        self.endpoints_known.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// `None` when ready, else why not.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.endpoints_known.load(Relaxed) {
            Some("the identity provider's endpoints are not known yet (discovery pending)")
        } else if self.credentials_rejected.load(Relaxed) {
            Some(
                "the identity provider rejects our client authentication: check idp.key_file / idp.client_id and idp.issuer",
            )
        } else {
            None
        }
    }
}
