//! What each proxy sends, replayed exactly: Envoy's path_prefix checks, Traefik/Caddy/nginx original-request
//! headers, per-route rules, check-URL requirements, and the other token sources.

use tokengate::dev_idp::TokenSpec;

use crate::helpers::*;

const RULES: &str = r#"
[policy]
required_scopes = ["openid"]

[token]
cookie = "access_token"
header = "X-Forwarded-Access-Token"

[[rules]]
name = "health"
methods = ["GET", "HEAD"]
paths = ["/public/**", "/healthz"]
anonymous = true

[[rules]]
name = "admin-api"
hosts = ["*.example.com"]
paths = ["/api/admin/**"]
required_roles = ["admin"]

[[rules]]
name = "writes"
methods = ["POST", "PUT", "DELETE"]
paths = ["/api/**"]
required_scopes = ["write"]
"#;

#[actix_web::test]
async fn envoy_path_prefix_checks() {
    logs();
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new().file(RULES)).await;
    let viewer = idp.mint(TokenSpec::default().roles(&["viewer"]));
    let root = idp.mint(admin());
    // Exactly what Envoy sends: the client's method, prefix + path + query, Host, Authorization, Content-Length 0.
    let envoy = |method: &'static str, path: &'static str, token: &str| {
        let auth = format!("Bearer {token}");
        let app = &app;
        async move {
            app.request(
                method,
                &format!("/verify{path}"),
                &[
                    ("Host", "shop.example.com"),
                    ("Authorization", &auth),
                    ("Content-Length", "0"),
                ],
            )
            .await
        }
    };
    let a = envoy("GET", "/api/items?page=2", &viewer).await;
    assert_eq!(a.status, 200, "exactly 200, nothing else, allows under Envoy");
    assert_eq!(a.header("x-auth-request-user").as_deref(), Some("user-1"));
    assert_eq!(envoy("GET", "/api/admin/users", &viewer).await.status, 403);
    assert_eq!(envoy("GET", "/api/admin/users", &root).await.status, 200);
    assert_eq!(
        envoy("POST", "/api/items", &root).await.status,
        403,
        "writes need scope write"
    );
    let a = app
        .request("GET", "/verify/public/logo.png", &[("Host", "shop.example.com")])
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("x-auth-request-user").as_deref(),
        Some(""),
        "anonymous: identity headers set empty, so a client's copy is overwritten"
    );
    assert_eq!(
        app.request("POST", "/verify/public/logo.png", &[]).await.status,
        401,
        "anonymous only for GET/HEAD"
    );
    for escape in ["/verify/public/../api/items", "/verify/public/%2e%2e/api/items"] {
        let a = app.request("GET", escape, &[]).await;
        assert_eq!(
            (a.status, a.json()["error"].as_str()),
            (403, Some("access_denied")),
            "no dot-segment escape: {escape}"
        );
    }
    assert!(
        logged("rule=admin-api method=GET host=shop.example.com path=/api/admin/users"),
        "the matching rule is named, with the request as Envoy described it"
    );
    assert!(
        logged("result=forbidden reason=missing_role rule=admin-api"),
        "and the decision"
    );
    assert!(logged("result=allowed reason=anonymous_rule rule=health"));
    let lines = logs().lock().unwrap();
    assert!(
        !lines.iter().any(|l| l.contains(&root) || l.contains(&viewer)),
        "never the token"
    );
}

#[actix_web::test]
async fn envoy_clients_cannot_change_requirements_with_the_query() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new().file(RULES)).await;
    let viewer = format!("Bearer {}", idp.mint(TokenSpec::default().roles(&["viewer"])));
    // Raising: on /verify/… the query is the client's; it must not add role=admin (nor be refused as unknown).
    let a = app
        .get(
            "/verify/api/items?role=admin&scope=nope&other=1",
            &[("Host", "x.org"), ("Authorization", &viewer)],
        )
        .await;
    assert_eq!(a.status, 200);
    // Lowering: nothing in the query can remove the admin-api rule's role requirement.
    let a = app
        .get(
            "/verify/api/admin/x?role=viewer",
            &[("Host", "a.example.com"), ("Authorization", &viewer)],
        )
        .await;
    assert_eq!(a.status, 403);
}

#[actix_web::test]
async fn nginx_traefik_caddy_original_request_headers() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new().file(RULES)).await;
    let viewer = format!("Bearer {}", idp.mint(TokenSpec::default().roles(&["viewer"])));
    let nginx = [
        ("X-Original-URI", "/api/admin/x?y=1"),
        ("X-Original-Method", "GET"),
        ("X-Forwarded-Host", "a.example.com"),
    ];
    let a = app
        .get("/verify", &[nginx[0], nginx[1], nginx[2], ("Authorization", &viewer)])
        .await;
    assert_eq!(a.status, 403, "admin-api rule via nginx headers");
    let traefik = [
        ("X-Forwarded-Uri", "/api/items"),
        ("X-Forwarded-Method", "DELETE"),
        ("X-Forwarded-Host", "a.example.com"),
    ];
    let a = app
        .get(
            "/verify",
            &[traefik[0], traefik[1], traefik[2], ("Authorization", &viewer)],
        )
        .await;
    assert_eq!(a.status, 403, "writes rule via Traefik/Caddy headers");
    let a = app
        .get(
            "/verify",
            &[
                ("X-Original-URL", "https://a.example.com/api/admin/z"),
                ("Authorization", &viewer),
            ],
        )
        .await;
    assert_eq!(a.status, 403, "ingress-nginx full URL");
    let a = app
        .get(
            "/verify",
            &[("X-Forwarded-Uri", "/public/a.css"), ("X-Forwarded-Method", "GET")],
        )
        .await;
    assert_eq!(a.status, 200);
    let spoof = app
        .get(
            "/verify",
            &[("X-Original-URI", "/api/admin/x"), ("X-Forwarded-Uri", "/public/a.css")],
        )
        .await;
    assert_eq!(spoof.status, 403, "disagreeing sources are refused, never guessed");
    assert_eq!(spoof.json()["error"], "access_denied");
    let a = app.get("/verify", &[("Authorization", &viewer)]).await;
    assert_eq!(
        a.status, 400,
        "with rules, a check without the original URI cannot be judged"
    );
}

#[actix_web::test]
async fn check_url_requirements_apply_on_exact_verify_only() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new()).await;
    let ops = format!(
        "Bearer {}",
        idp.mint(TokenSpec::default().roles(&["ops"]).scopes(&["openid", "read"]))
    );
    assert_eq!(
        app.get("/verify?scope=read&role=admin&role=ops", &[("Authorization", &ops)])
            .await
            .status,
        200
    );
    assert_eq!(
        app.get("/verify?scope=read&scope=write&role=ops", &[("Authorization", &ops)])
            .await
            .status,
        403
    );
    assert_eq!(
        app.get("/verify?role=admin", &[("Authorization", &ops)]).await.status,
        403
    );
    let a = app.get("/verify?scope=a%22b", &[("Authorization", &ops)]).await;
    assert_eq!(
        a.status, 400,
        "a scope that could break the challenge header is refused"
    );
    let a = app.get("/verify?scope=a%01b", &[("Authorization", &ops)]).await;
    assert_eq!(a.status, 400);
    let a = app.get("/verify?roles=admin", &[("Authorization", &ops)]).await;
    assert_eq!(a.status, 400, "a typo never drops a requirement silently");
}

#[actix_web::test]
async fn deny_unmatched() {
    let idp = TestIdp::start().await;
    let file = format!("{RULES}\n");
    let app = spawn_app(&idp, Setup::new().file(&file).set("policy.deny_unmatched", "true")).await;
    let root = format!("Bearer {}", idp.mint(admin()));
    let a = app.get("/verify/other/path", &[("Authorization", &root)]).await;
    assert_eq!(a.status, 403);
    assert_eq!(a.json()["error"], "access_denied");
    assert_eq!(
        app.get(
            "/verify/api/admin/x",
            &[("Host", "a.example.com"), ("Authorization", &root)]
        )
        .await
        .status,
        200
    );
}

#[actix_web::test]
async fn cookie_and_header_token_sources() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new().file(RULES)).await;
    let token = idp.mint(admin());
    let cookie = format!("theme=dark; access_token={token}");
    assert_eq!(app.get("/verify/app", &[("Cookie", &cookie)]).await.status, 200);
    assert_eq!(
        app.get("/verify/app", &[("X-Forwarded-Access-Token", &token)])
            .await
            .status,
        200
    );
    assert_eq!(
        app.get("/verify/app", &[("Cookie", "access_token=bad token")])
            .await
            .status,
        401
    );
}

#[actix_web::test]
async fn bad_rules_stop_start_up_naming_the_rule() {
    let idp = TestIdp::start().await;
    let err = try_spawn_app(
        &idp,
        Setup::new().file("[[rules]]\nname = \"broken\"\npaths = [\"/a/{b\"]\n"),
    )
    .await
    .err()
    .unwrap();
    assert!(err.contains("broken"), "{err}");
}
