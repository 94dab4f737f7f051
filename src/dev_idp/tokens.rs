//! Issued tokens: what a minted token grants (`TokenSpec`), the records behind opaque and JWT tokens, revocation,
//! and the claims ZITADEL puts in an introspection response and in a JWT access token.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// What a minted token grants.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TokenSpec {
    pub sub: String,
    pub scopes: Vec<String>,
    pub roles: Vec<String>,
    pub expires_in: u64,
    pub email: Option<String>,
    pub username: Option<String>,
    pub name: Option<String>,
    /// Defaults to the project id and every registered client id, as ZITADEL's project-audience scope gives.
    pub audience: Option<Vec<String>>,
    /// Further claims, in the introspection response and in a JWT alike, e.g. to test header sanitising, or a
    /// `scope` claim in a JWT (ZITADEL leaves it out).
    pub extra: Map<String, Value>,
}

impl Default for TokenSpec {
    fn default() -> Self {
        TokenSpec {
            sub: "user-1".into(),
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            roles: vec![],
            expires_in: 3600,
            email: Some("user-1@example.com".into()),
            username: Some("user1".into()),
            name: Some("User One".into()),
            audience: None,
            extra: Map::new(),
        }
    }
}

impl TokenSpec {
    pub fn roles(mut self, roles: &[&str]) -> Self {
        self.roles = roles.iter().map(|r| r.to_string()).collect();
        self
    }
    pub fn scopes(mut self, scopes: &[&str]) -> Self {
        self.scopes = scopes.iter().map(|r| r.to_string()).collect();
        self
    }
    pub fn expires_in(mut self, secs: u64) -> Self {
        self.expires_in = secs;
        self
    }
}

/// ZITADEL puts the resource-owner claims into a token only when this scope was asked for.
const RESOURCE_OWNER_SCOPE: &str = "urn:zitadel:iam:user:resourceowner";

/// The instance a token belongs to: what its claims name besides the user.
pub(super) struct Tenant<'a> {
    pub issuer: &'a str,
    pub project_id: &'a str,
    pub org_id: &'a str,
}

impl Tenant<'_> {
    /// The application the double pretends issued every token (a web app in the project).
    fn issuing_client(&self) -> String {
        format!("web@{}", self.project_id)
    }

    fn roles_claim(&self, roles: &[String]) -> Value {
        Value::Object(
            roles
                .iter()
                .map(|r| (r.clone(), json!({ self.org_id: "example.localhost" })))
                .collect(),
        )
    }

    /// Both role claims, generic and per project, with the same value, as ZITADEL emits them.
    fn insert_roles(&self, o: &mut Map<String, Value>, roles: &[String]) {
        if roles.is_empty() {
            return;
        }
        let value = self.roles_claim(roles);
        o.insert("urn:zitadel:iam:org:project:roles".into(), value.clone());
        o.insert(format!("urn:zitadel:iam:org:project:{}:roles", self.project_id), value);
    }

    fn insert_resource_owner(&self, o: &mut Map<String, Value>) {
        o.insert("urn:zitadel:iam:user:resourceowner:id".into(), json!(self.org_id));
        o.insert("urn:zitadel:iam:user:resourceowner:name".into(), json!("Example"));
        o.insert(
            "urn:zitadel:iam:user:resourceowner:primary_domain".into(),
            json!("example.localhost"),
        );
    }
}

/// One issued token.
#[derive(Debug, Clone)]
pub(super) struct TokenRecord {
    pub spec: TokenSpec,
    pub iat: u64,
    pub exp: u64,
    pub aud: Vec<String>,
    pub jti: String,
    pub revoked: bool,
    /// For a JWT, the key that signed it: once that key is retired, ZITADEL can no longer verify the token.
    pub kid: Option<String>,
}

impl TokenRecord {
    /// `default_audience` is asked only when the spec names no audience.
    pub fn new(
        spec: TokenSpec,
        now: u64,
        jti: String,
        default_audience: impl FnOnce() -> Vec<String>,
        kid: Option<String>,
    ) -> TokenRecord {
        let aud = spec.audience.clone().unwrap_or_else(default_audience);
        TokenRecord {
            iat: now,
            exp: now.saturating_add(spec.expires_in),
            spec,
            aud,
            jti,
            revoked: false,
            kid,
        }
    }

    pub fn is_active(&self, now: u64) -> bool {
        !self.revoked && self.exp > now
    }

    /// "token is not valid for this client": the audience must name the caller or its project.
    pub fn is_for(&self, client_id: &str, project_id: &str) -> bool {
        self.aud.iter().any(|a| a == client_id || a == project_id)
    }

    /// The introspection response for an active token: ZITADEL's fields, user info by the token's grants.
    pub fn introspection(&self, t: &Tenant) -> Map<String, Value> {
        let s = &self.spec;
        let mut o = Map::new();
        o.insert("active".into(), json!(true));
        o.insert("scope".into(), json!(s.scopes.join(" ")));
        o.insert("client_id".into(), json!(t.issuing_client()));
        o.insert("token_type".into(), json!("Bearer"));
        o.insert("exp".into(), json!(self.exp));
        for claim in ["iat", "nbf", "auth_time"] {
            o.insert(claim.into(), json!(self.iat));
        }
        o.insert("amr".into(), json!(["pwd"]));
        o.insert("aud".into(), json!(self.aud));
        o.insert("iss".into(), json!(t.issuer));
        o.insert("jti".into(), json!(self.jti));
        o.insert("sub".into(), json!(s.sub));
        if let Some(name) = &s.name {
            let (given, family) = name.split_once(' ').unwrap_or((name, ""));
            o.insert("name".into(), json!(name));
            o.insert("given_name".into(), json!(given));
            o.insert("family_name".into(), json!(family));
        }
        if let Some(u) = &s.username {
            o.insert("preferred_username".into(), json!(u));
            o.insert("username".into(), json!(u));
        }
        o.insert("locale".into(), Value::Null);
        if let Some(e) = &s.email {
            o.insert("email".into(), json!(e));
            o.insert("email_verified".into(), json!(true));
        }
        t.insert_roles(&mut o, &s.roles);
        t.insert_resource_owner(&mut o);
        for (k, v) in &s.extra {
            o.insert(k.clone(), v.clone());
        }
        o
    }

    /// The claims of a JWT access token as ZITADEL signs them (`oidc.NewAccessTokenClaims` plus the user info's
    /// extra claims): no `scope`, no profile or email; role claims only when the token carries roles;
    /// resource-owner claims only when their scope was asked for.
    pub fn jwt_claims(&self, t: &Tenant) -> Map<String, Value> {
        let s = &self.spec;
        let mut o = Map::new();
        o.insert("iss".into(), json!(t.issuer));
        o.insert("sub".into(), json!(s.sub));
        o.insert("aud".into(), json!(self.aud));
        o.insert("exp".into(), json!(self.exp));
        o.insert("iat".into(), json!(self.iat));
        o.insert("nbf".into(), json!(self.iat));
        o.insert("jti".into(), json!(self.jti));
        o.insert("client_id".into(), json!(t.issuing_client()));
        t.insert_roles(&mut o, &s.roles);
        if s.scopes.iter().any(|x| x == RESOURCE_OWNER_SCOPE) {
            t.insert_resource_owner(&mut o);
        }
        for (k, v) in &s.extra {
            o.insert(k.clone(), v.clone());
        }
        o
    }
}

/// Issued tokens by their exact string (opaque or JWT).
#[derive(Default)]
pub(super) struct TokenStore {
    records: Mutex<HashMap<String, TokenRecord>>,
}

impl TokenStore {
    pub fn insert(&self, token: &str, record: TokenRecord) {
        if let Ok(mut t) = self.records.lock() {
            t.insert(token.to_string(), record);
        }
    }

    pub fn get(&self, token: &str) -> Option<TokenRecord> {
        self.records.lock().ok()?.get(token).cloned()
    }

    pub fn revoke(&self, token: &str) {
        if let Ok(mut t) = self.records.lock()
            && let Some(r) = t.get_mut(token)
        {
            r.revoked = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: Tenant = Tenant {
        issuer: "http://idp",
        project_id: "300",
        org_id: "200",
    };

    fn record(spec: TokenSpec) -> TokenRecord {
        TokenRecord::new(
            spec,
            1000,
            "jti-1".into(),
            || vec!["300".into(), "api@300".into()],
            None,
        )
    }

    #[test]
    fn lifetime_and_revocation() {
        let r = record(TokenSpec::default().expires_in(60));
        assert_eq!((r.iat, r.exp), (1000, 1060));
        assert!(r.is_active(1059));
        assert!(!r.is_active(1060), "expired at exp");
        let mut revoked = r.clone();
        revoked.revoked = true;
        assert!(!revoked.is_active(1000));
        let forever = record(TokenSpec::default().expires_in(u64::MAX));
        assert!(forever.is_active(1000), "no overflow");
    }

    #[test]
    fn the_default_audience_is_asked_only_without_one_in_the_spec() {
        assert_eq!(record(TokenSpec::default()).aud, vec!["300", "api@300"]);
        let spec = TokenSpec {
            audience: Some(vec!["elsewhere".into()]),
            ..TokenSpec::default()
        };
        let r = TokenRecord::new(spec, 0, "j".into(), || panic!("not asked"), None);
        assert_eq!(r.aud, vec!["elsewhere"]);
    }

    #[test]
    fn the_audience_must_name_the_caller_or_its_project() {
        let r = record(TokenSpec::default());
        assert!(r.is_for("api@300", "999"));
        assert!(r.is_for("other", "300"));
        assert!(!r.is_for("other", "999"));
    }

    #[test]
    fn introspection_carries_user_info_and_both_role_claims() {
        let o = record(TokenSpec::default().roles(&["admin"])).introspection(&TENANT);
        assert_eq!(o["active"], true);
        assert_eq!(o["scope"], "openid profile email");
        assert_eq!(o["email"], "user-1@example.com");
        assert_eq!(o["preferred_username"], "user1");
        assert_eq!((&o["given_name"], &o["family_name"]), (&json!("User"), &json!("One")));
        assert_eq!(o["aud"], json!(["300", "api@300"]));
        let roles = json!({"admin": {"200": "example.localhost"}});
        assert_eq!(o["urn:zitadel:iam:org:project:roles"], roles);
        assert_eq!(o["urn:zitadel:iam:org:project:300:roles"], roles);
        assert_eq!(o["urn:zitadel:iam:user:resourceowner:id"], "200");
    }

    #[test]
    fn jwt_claims_are_zitadels_access_token_claims() {
        let o = record(TokenSpec::default().expires_in(60)).jwt_claims(&TENANT);
        let mut names: Vec<&str> = o.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(
            names,
            vec!["aud", "client_id", "exp", "iat", "iss", "jti", "nbf", "sub"]
        );
        assert_eq!(o["iss"], "http://idp");
        assert_eq!(o["aud"], json!(["300", "api@300"]), "always an array");
        assert_eq!(
            (&o["iat"], &o["nbf"], &o["exp"]),
            (&json!(1000), &json!(1000), &json!(1060))
        );
        assert_eq!(o["jti"], "jti-1");
        assert_eq!(o["client_id"], "web@300");
    }

    #[test]
    fn jwt_roles_and_resource_owner_only_when_asked_for() {
        let spec = TokenSpec::default()
            .roles(&["admin", "ops"])
            .scopes(&["openid", RESOURCE_OWNER_SCOPE]);
        let o = record(spec).jwt_claims(&TENANT);
        let roles = json!({"admin": {"200": "example.localhost"}, "ops": {"200": "example.localhost"}});
        assert_eq!(o["urn:zitadel:iam:org:project:roles"], roles);
        assert_eq!(o["urn:zitadel:iam:org:project:300:roles"], roles);
        assert_eq!(o["urn:zitadel:iam:user:resourceowner:id"], "200");
        assert!(o.get("scope").is_none());
        assert!(o.get("email").is_none());
    }

    #[test]
    fn extra_claims_reach_both_forms() {
        let mut spec = TokenSpec::default();
        spec.extra.insert("scope".into(), json!("read write"));
        spec.extra.insert("x".into(), json!(1));
        let r = record(spec);
        assert_eq!(r.jwt_claims(&TENANT)["scope"], "read write");
        assert_eq!(r.introspection(&TENANT)["x"], 1);
    }

    #[test]
    fn the_store_revokes_by_token_string() {
        let store = TokenStore::default();
        store.insert("t1", record(TokenSpec::default()));
        assert!(store.get("t1").is_some_and(|r| !r.revoked));
        store.revoke("t1");
        store.revoke("unknown");
        assert!(store.get("t1").is_some_and(|r| r.revoked));
        assert!(store.get("t2").is_none());
    }
}
