//! Knowing a token: the compact `TokenInfo` the caches hold, which roles count, the identity provider's errors and
//! health, the memory cache in front, and the origin behind it (introspection at the IdP).

pub mod cache;
pub mod error;
pub mod headers;
pub mod health;
pub mod info;
pub mod introspect;
pub mod introspection;
pub mod lookup;
pub mod roles;

pub use error::{IdpError, InvalidResponse};
pub use health::IdpHealth;
pub use info::{ClaimSource, HeaderRule, TokenInfo};
pub use introspection::Introspection;
pub use roles::RoleScope;
