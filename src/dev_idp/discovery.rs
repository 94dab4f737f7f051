//! The discovery document, field for field as ZITADEL serves it with its default configuration (zitadel/zitadel
//! `internal/api/oidc/server.go` `createDiscoveryConfig` over zitadel/oidc `op` defaults and ZITADEL's
//! `cmd/defaults.yaml` OIDC section), so off-the-shelf OIDC clients start against the double.

use serde_json::{Value, json};

pub(super) const KEYS_PATH: &str = "/oauth/v2/keys";

/// What ZITADEL accepts for client assertions and request objects (zitadel/oidc: RS256 only).
const CLIENT_JWT_ALGS: [&str; 1] = ["RS256"];

/// zitadel/oidc `DefaultSupportedClaims`.
const CLAIMS: [&str; 24] = [
    "sub",
    "aud",
    "exp",
    "iat",
    "iss",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "c_hash",
    "at_hash",
    "act",
    "scopes",
    "client_id",
    "azp",
    "preferred_username",
    "name",
    "family_name",
    "given_name",
    "locale",
    "email",
    "email_verified",
    "phone_number",
    "phone_number_verified",
];

/// The document for `issuer` (scheme://host[:port], no trailing slash).
pub(super) fn document(issuer: &str) -> Value {
    let at = |path: &str| format!("{issuer}{path}");
    let client_auth = ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"];
    json!({
        "issuer": issuer,
        "authorization_endpoint": at("/oauth/v2/authorize"),
        "token_endpoint": at("/oauth/v2/token"),
        "introspection_endpoint": at("/oauth/v2/introspect"),
        "userinfo_endpoint": at("/oidc/v1/userinfo"),
        "revocation_endpoint": at("/oauth/v2/revoke"),
        "end_session_endpoint": at("/oidc/v1/end_session"),
        "device_authorization_endpoint": at("/oauth/v2/device_authorization"),
        "jwks_uri": at(KEYS_PATH),
        "scopes_supported": ["openid", "profile", "email", "phone", "address", "offline_access"],
        "response_types_supported": ["code", "id_token", "id_token token"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "grant_types_supported": [
            "authorization_code",
            "implicit",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "urn:ietf:params:oauth:grant-type:device_code",
        ],
        "subject_types_supported": ["public"],
        // ZITADEL's web-key algorithms (`supportedSigningAlgs`); the double signs RS256 unless told otherwise.
        "id_token_signing_alg_values_supported": ["EdDSA", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512"],
        "request_object_signing_alg_values_supported": CLIENT_JWT_ALGS,
        "token_endpoint_auth_methods_supported": client_auth,
        "token_endpoint_auth_signing_alg_values_supported": CLIENT_JWT_ALGS,
        "revocation_endpoint_auth_methods_supported": client_auth,
        "revocation_endpoint_auth_signing_alg_values_supported": CLIENT_JWT_ALGS,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
        "introspection_endpoint_auth_signing_alg_values_supported": CLIENT_JWT_ALGS,
        "claims_supported": CLAIMS,
        "code_challenge_methods_supported": ["S256"],
        // The double has no login UI; ZITADEL lists every language its login speaks.
        "ui_locales_supported": ["en"],
        "request_parameter_supported": true,
        "request_uri_parameter_supported": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "http://127.0.0.1:4000";

    #[test]
    fn what_oidc_clients_require_is_there() {
        let d = document(ISSUER);
        assert_eq!(d["issuer"], ISSUER, "exactly, no trailing slash");
        // openidconnect's required fields (and OpenID Connect Discovery 1.0 §3's REQUIRED ones).
        for field in [
            "authorization_endpoint",
            "jwks_uri",
            "response_types_supported",
            "subject_types_supported",
            "id_token_signing_alg_values_supported",
        ] {
            assert!(!d[field].is_null(), "{field}");
        }
        assert!(
            d["id_token_signing_alg_values_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("RS256"))
        );
    }

    #[test]
    fn endpoints_are_zitadels_paths_under_the_issuer() {
        let d = document(ISSUER);
        for (field, path) in [
            ("authorization_endpoint", "/oauth/v2/authorize"),
            ("token_endpoint", "/oauth/v2/token"),
            ("introspection_endpoint", "/oauth/v2/introspect"),
            ("userinfo_endpoint", "/oidc/v1/userinfo"),
            ("revocation_endpoint", "/oauth/v2/revoke"),
            ("end_session_endpoint", "/oidc/v1/end_session"),
            ("jwks_uri", "/oauth/v2/keys"),
        ] {
            assert_eq!(d[field], format!("{ISSUER}{path}"), "{field}");
        }
    }

    #[test]
    fn client_authentication_as_zitadel_advertises_it() {
        let d = document(ISSUER);
        assert_eq!(
            d["introspection_endpoint_auth_methods_supported"],
            json!(["client_secret_basic", "private_key_jwt"])
        );
        assert_eq!(
            d["token_endpoint_auth_methods_supported"],
            json!(["none", "client_secret_basic", "client_secret_post", "private_key_jwt"])
        );
        assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(d["claims_supported"].as_array().unwrap().len(), 24);
    }
}
