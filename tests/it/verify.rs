//! The /verify contract against the ZITADEL double.

use std::time::Duration;

use tokengate::dev_idp::{Faults, TokenSpec};

use crate::helpers::*;

#[actix_web::test]
async fn valid_token_is_allowed_with_identity_headers() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new()).await;
    let token = idp.mint(TokenSpec {
        sub: "jane-1".into(),
        ..admin()
    });
    let a = app.verify(&token).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.is_empty());
    assert_eq!(a.header("x-auth-request-user").as_deref(), Some("jane-1"));
    assert_eq!(a.header("x-auth-request-email").as_deref(), Some("user-1@example.com"));
    assert_eq!(a.header("x-auth-request-preferred-username").as_deref(), Some("user1"));
    assert_eq!(a.header("x-auth-request-roles").as_deref(), Some("admin"));
    assert_eq!(
        a.header("x-auth-request-scopes").as_deref(),
        Some("openid profile email")
    );
    assert_eq!(a.header("x-auth-request-org-id").as_deref(), Some("200000000000000001"));
    assert!(a.header("x-auth-request-client-id").is_some());
    // Any method, and Envoy's prefixed form.
    for method in ["POST", "DELETE", "HEAD"] {
        let a = app
            .request(method, "/verify", &[("Authorization", &format!("Bearer {token}"))])
            .await;
        assert_eq!(a.status, 200, "{method}");
    }
    let a = app
        .get(
            "/verify/api/items?x=1",
            &[("Authorization", &format!("bearer {token}"))],
        )
        .await;
    assert_eq!(a.status, 200);
}

#[actix_web::test]
async fn missing_and_malformed_tokens_are_401_without_asking_the_idp() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new()).await;
    let a = app.get("/verify", &[]).await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.header("www-authenticate").as_deref(),
        Some("Bearer realm=\"tokengate\"")
    );
    assert_eq!(a.json()["error"], "invalid_request");
    let long = format!("Bearer {}", "a".repeat(8 * 1024 + 1));
    for value in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "Bearer ä", long.as_str()] {
        let a = app.get("/verify", &[("Authorization", value)]).await;
        assert_eq!(a.status, 401, "{value:.40}");
        let challenge = a.header("www-authenticate").unwrap();
        assert!(challenge.contains("error=\"invalid_request\""), "{challenge}");
    }
    let a = app
        .get(
            "/verify",
            &[("Authorization", "Bearer a"), ("Authorization", "Bearer b")],
        )
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(idp.idp.introspections(), 0);
}

#[actix_web::test]
async fn inactive_unknown_expired_and_revoked_tokens_are_invalid_token() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new().set("cache.negative_ttl", "0s")).await;
    let a = app.verify("never-issued").await;
    assert_eq!(a.status, 401);
    assert!(
        a.header("www-authenticate")
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    assert_eq!(a.json()["error"], "invalid_token");

    let short = idp.mint(TokenSpec::default().expires_in(1));
    assert_eq!(app.verify(&short).await.status, 200);
    actix_web::rt::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        app.verify(&short).await.status,
        401,
        "the cached entry must not outlive exp"
    );

    let revoked = idp.mint(TokenSpec::default());
    idp.idp.revoke(&revoked);
    assert_eq!(app.verify(&revoked).await.status, 401);
}

#[actix_web::test]
async fn token_for_another_client_is_inactive_like_zitadel_says() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new()).await;
    let other = idp.mint(TokenSpec {
        audience: Some(vec!["some-other-project".into()]),
        ..TokenSpec::default()
    });
    assert_eq!(app.verify(&other).await.status, 401);
}

#[actix_web::test]
async fn insufficient_scope_and_role_are_403() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new().set("policy.required_scopes", "openid,write")).await;
    let a = app.verify(&idp.mint(admin())).await;
    assert_eq!(a.status, 403);
    let challenge = a.header("www-authenticate").unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\"") && challenge.contains("scope=\"write\""),
        "{challenge}"
    );
    assert_eq!(a.json()["error"], "insufficient_scope");
    let writer = idp.mint(TokenSpec::default().scopes(&["openid", "write"]));
    assert_eq!(app.verify(&writer).await.status, 200);

    let app = spawn_app(&idp, Setup::new().set("policy.required_roles", "admin,ops")).await;
    let a = app.verify(&idp.mint(TokenSpec::default().roles(&["viewer"]))).await;
    assert_eq!(a.status, 403);
    assert!(a.header("www-authenticate").unwrap().contains("insufficient_scope"));
    assert!(
        !a.header("www-authenticate").unwrap().contains("scope=\""),
        "no scope param when only roles are missing"
    );
    assert_eq!(
        app.verify(&idp.mint(TokenSpec::default().roles(&["ops"]))).await.status,
        200
    );
}

#[actix_web::test]
async fn audience_policy() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new().set("policy.audience", "not-this-one")).await;
    assert_eq!(app.verify(&idp.mint(admin())).await.status, 401);
    let app = spawn_app(
        &idp,
        Setup::new().set("policy.audience", &format!("x,{}", idp.idp.project_id())),
    )
    .await;
    assert_eq!(app.verify(&idp.mint(admin())).await.status, 200);
}

async fn assert_unavailable(app: &TestApp, token: &str) {
    let a = app.verify(token).await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.header("retry-after").is_some());
    assert_eq!(a.json()["error"], "temporarily_unavailable");
}

#[actix_web::test]
async fn idp_down_is_503_never_401_or_200() {
    let idp = TestIdp::start().await;
    let issuer = format!("http://127.0.0.1:{}", closed_port());
    let app = spawn_app(&idp, Setup::new().set("idp.issuer", &issuer)).await;
    assert_unavailable(&app, &idp.mint(admin())).await;
    let ready = app.get("/readyz", &[]).await;
    assert_eq!(ready.status, 503, "endpoints unknown");
    assert!(ready.json()["reason"].as_str().unwrap().contains("discovery"));
    assert_eq!(app.get("/healthz", &[]).await.status, 200);
}

#[actix_web::test]
async fn idp_timeout_and_500_are_503_and_service_recovers() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new().set("idp.timeout", "500ms")).await;
    let token = idp.mint(admin());
    idp.idp.set_faults(Faults {
        hang: true,
        ..Faults::default()
    });
    assert_unavailable(&app, &token).await;
    idp.idp.set_faults(Faults {
        status: Some(500),
        body: Some("oops".into()),
        ..Faults::default()
    });
    assert_unavailable(&app, &token).await;
    idp.idp.set_faults(Faults {
        body: Some(r#"{"active":"true"}"#.into()),
        ..Faults::default()
    });
    assert_unavailable(&app, &token).await;
    idp.idp.set_faults(Faults::default());
    assert_eq!(app.verify(&token).await.status, 200, "errors are not cached");
}

#[actix_web::test]
async fn rejected_client_authentication_is_503_and_not_ready_until_fixed() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new()).await;
    let token = idp.mint(admin());
    assert!(app.wait_ready().await, "discovery should make the service ready");
    // As if the key were deleted in the console: ZITADEL answers 400 unauthorized_client.
    idp.idp.remove_keys();
    assert_unavailable(&app, &token).await;
    let ready = app.get("/readyz", &[]).await;
    assert_eq!(ready.status, 503);
    assert!(
        ready.json()["reason"]
            .as_str()
            .unwrap()
            .contains("rejects our client authentication")
    );
    idp.idp
        .register_key_file(&std::fs::read(&idp.key_file).unwrap())
        .unwrap();
    assert_eq!(app.verify(&token).await.status, 200);
    assert_eq!(app.get("/readyz", &[]).await.status, 200);
}

#[actix_web::test]
async fn the_double_checks_the_assertion_audience_exactly() {
    let idp = TestIdp::start().await;
    // Discovery skipped: the configured issuer (with a trailing slash) becomes the aud, which ZITADEL refuses.
    let app = spawn_app(
        &idp,
        Setup::new().set("idp.issuer", &format!("{}/", idp.idp.issuer())).set(
            "idp.introspection_endpoint",
            &format!("{}/oauth/v2/introspect", idp.idp.issuer()),
        ),
    )
    .await;
    assert_unavailable(&app, &idp.mint(admin())).await;
    let app = spawn_app(
        &idp,
        Setup::new().set(
            "idp.introspection_endpoint",
            &format!("{}/oauth/v2/introspect", idp.idp.issuer()),
        ),
    )
    .await;
    assert_eq!(app.verify(&idp.mint(admin())).await.status, 200);
}

#[actix_web::test]
async fn a_key_the_idp_does_not_know_is_rejected() {
    let idp = TestIdp::start().await;
    let stranger = tempfile::tempdir().unwrap();
    let other = TestIdp::start().await;
    let foreign_key = other.idp.add_api_app(stranger.path(), "stranger").unwrap();
    let app = spawn_app(&idp, Setup::new().set("idp.key_file", foreign_key.to_str().unwrap())).await;
    assert_unavailable(&app, &idp.mint(admin())).await;
}

#[actix_web::test]
async fn basic_client_authentication() {
    let idp = TestIdp::start().await;
    idp.idp.add_basic_client("api:client@proj", "s3cret&=+");
    let app = spawn_app(
        &idp,
        Setup::new()
            .set("idp.key_file", "")
            .set("idp.client_id", "api:client@proj")
            .set("idp.client_secret", "s3cret&=+"),
    )
    .await;
    assert_eq!(app.verify(&idp.mint(admin())).await.status, 200);

    let secret_file = idp.dir.path().join("secret");
    std::fs::write(&secret_file, "wrong\n").unwrap();
    let app = spawn_app(
        &idp,
        Setup::new()
            .set("idp.key_file", "")
            .set("idp.client_id", "api:client@proj")
            .set("idp.client_secret_file", secret_file.to_str().unwrap()),
    )
    .await;
    assert_unavailable(&app, &idp.mint(admin())).await;
}

#[actix_web::test]
async fn config_errors_stop_start_up() {
    let idp = TestIdp::start().await;
    let err = try_spawn_app(&idp, Setup::new().set("idp.timeout", "soon").set("cache.ttl", "x"))
        .await
        .err()
        .unwrap();
    assert!(
        err.contains("TOKENGATE_IDP__TIMEOUT") && err.contains("TOKENGATE_CACHE__TTL"),
        "{err}"
    );
}

#[actix_web::test]
async fn a_token_the_idp_refuses_to_introspect_is_401_and_the_service_stays_ready() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new()).await;
    assert!(app.wait_ready().await);
    idp.idp.set_faults(Faults {
        status: Some(400),
        body: Some(r#"{"error":"unsupported_token_type"}"#.into()),
        ..Faults::default()
    });
    let a = app.verify("eyJhbGciOi.structured.jwt").await;
    assert_eq!(a.status, 401);
    assert!(a.header("www-authenticate").unwrap().contains("invalid_token"));
    assert_eq!(
        app.get("/readyz", &[]).await.status,
        200,
        "one token's refusal says nothing about our credentials"
    );
}

#[actix_web::test]
async fn operations_endpoints_answer_405_to_other_methods() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new()).await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let a = app.request("POST", path, &[]).await;
        assert_eq!(a.status, 405, "{path}");
        assert!(a.header("allow").is_some_and(|v| v.contains("GET")), "{path}");
    }
    assert_eq!(app.get("/nope", &[]).await.status, 404);
}
