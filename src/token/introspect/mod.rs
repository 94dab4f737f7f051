//! The origin of a token's truth: RFC 7662 introspection at ZITADEL, authenticated with the API application's key
//! (JWT profile) or HTTP Basic.

pub mod assertion;
pub mod client;
pub mod keyfile;

pub use client::ASSERTION_TYPE;

use super::{IdpError, Introspection};

/// Something that can introspect a token: the real client, or a stand-in in unit tests.
pub trait Introspect {
    fn introspect(&self, token: &str) -> impl std::future::Future<Output = Result<Introspection, IdpError>>;

    /// Learns the endpoints (discovery) ahead of the first check.
    fn prepare(&self) -> impl std::future::Future<Output = Result<(), IdpError>> {
        async { Ok(()) }
    }

    /// Housekeeping that runs beside the calls for the worker's lifetime (credential reloads).
    fn background(&self) -> impl std::future::Future<Output = ()> {
        async {}
    }
}
