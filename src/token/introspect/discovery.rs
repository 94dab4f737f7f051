//! Learning the endpoints: `{issuer}/.well-known/openid-configuration` once (concurrent callers share the fetch),
//! or the configured introspection endpoint. The issuer it names is the `aud` of every client assertion.

use std::time::Instant;

use serde_json::Value;
use tokio::sync::OnceCell;

use super::http::{IdpHttp, warn_if_plain_http};
use crate::token::IdpError;
use crate::token::error::DiscoveryError;

/// Discovery documents are larger than introspections; this bounds them on their own.
const MAX_DISCOVERY_BYTES: usize = 256 * 1024;

/// Where to send introspections, and what the assertions say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Exactly as discovery spells it: ZITADEL compares the assertion's `aud` with it byte for byte.
    pub issuer: String,
    pub introspection: String,
    /// The key set, for local JWT verification.
    pub jwks_uri: Option<String>,
}

/// The endpoints, learned once.
pub struct EndpointCell {
    issuer: String,
    configured: Option<String>,
    /// The authentication method in use, to warn when discovery does not advertise it.
    method: &'static str,
    cell: OnceCell<Endpoints>,
}

impl EndpointCell {
    pub fn new(issuer: String, configured: Option<String>, method: &'static str) -> Self {
        EndpointCell {
            issuer,
            configured,
            method,
            cell: OnceCell::new(),
        }
    }

    pub fn known(&self) -> Option<&Endpoints> {
        self.cell.get()
    }

    /// The endpoints, fetching them if nobody has yet; bounded by `deadline`.
    pub async fn get(&self, http: &IdpHttp, deadline: Instant) -> Result<&Endpoints, IdpError> {
        self.cell
            .get_or_try_init(|| async {
                match &self.configured {
                    Some(e) => Ok(Endpoints {
                        issuer: self.issuer.clone(),
                        introspection: e.clone(),
                        jwks_uri: None,
                    }),
                    None => discover(http, &self.issuer, self.method, deadline).await,
                }
            })
            .await
    }
}

async fn discover(http: &IdpHttp, issuer: &str, method: &str, deadline: Instant) -> Result<Endpoints, IdpError> {
    let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let resp = http.get(&url, MAX_DISCOVERY_BYTES, deadline).await?;
    if !resp.status.is_success() {
        return Err(DiscoveryError::Status(resp.status.as_u16()).into());
    }
    let doc: Value = serde_json::from_slice(&resp.body).map_err(|_| DiscoveryError::NotJson)?;
    let endpoints = parse(&doc, issuer, method)?;
    warn_if_plain_http("introspection_endpoint", &endpoints.introspection);
    Ok(endpoints)
}

/// The fields tokengate needs; optional ones never fail start-up.
fn parse(doc: &Value, configured_issuer: &str, method: &str) -> Result<Endpoints, DiscoveryError> {
    if !doc.is_object() {
        return Err(DiscoveryError::NotJson);
    }
    let field = |name: &str| doc.get(name).and_then(Value::as_str).map(str::to_string);
    let issuer = field("issuer").ok_or(DiscoveryError::Missing("issuer"))?;
    let introspection = field("introspection_endpoint").ok_or(DiscoveryError::Missing("introspection_endpoint"))?;
    if issuer.trim_end_matches('/') != configured_issuer.trim_end_matches('/') {
        log::warn!(
            "discovery says the issuer is {issuer}, configured is {configured_issuer}: using {issuer} as the assertion audience"
        );
    }
    let methods = doc
        .get("introspection_endpoint_auth_methods_supported")
        .or_else(|| doc.get("token_endpoint_auth_methods_supported"))
        .and_then(Value::as_array);
    if let Some(methods) = methods
        && !methods.iter().any(|m| m.as_str() == Some(method))
    {
        log::warn!("the identity provider does not advertise {method} for introspection");
    }
    Ok(Endpoints {
        issuer,
        introspection,
        jwks_uri: field("jwks_uri"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents() {
        let ok = parse(
            &json!({"issuer": "https://z.example.com", "introspection_endpoint": "https://z.example.com/i",
                    "jwks_uri": "https://z.example.com/k"}),
            "https://z.example.com/",
            "private_key_jwt",
        )
        .unwrap();
        assert_eq!(ok.issuer, "https://z.example.com");
        assert_eq!(ok.jwks_uri.as_deref(), Some("https://z.example.com/k"));
        assert_eq!(
            parse(&json!({"issuer": "x"}), "x", "m"),
            Err(DiscoveryError::Missing("introspection_endpoint"))
        );
        assert_eq!(parse(&json!([1]), "x", "m"), Err(DiscoveryError::NotJson));
        assert_eq!(
            parse(&json!({"issuer": 5, "introspection_endpoint": "i"}), "x", "m"),
            Err(DiscoveryError::Missing("issuer"))
        );
    }
}
