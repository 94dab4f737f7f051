//! Rules that cannot be walked around (issue 8): every request an attacker found to be read two ways is refused or
//! meets the strictest rule; roles count only for their project; identity headers an application would split or
//! trim are left out. Through the HTTP door; the same requests through real proxies are in `e2e`.

use serde_json::json;
use tokengate::dev_idp::TokenSpec;

use crate::helpers::*;

const RULES: &str = r#"
[[rules]]
name = "public"
paths = ["/public/**"]
anonymous = true

[[rules]]
name = "admin"
paths = ["/admin/**"]
required_roles = ["admin"]

[[rules]]
name = "admin-host"
hosts = ["admin.example.com"]
required_roles = ["admin"]
"#;

/// A host no host rule names.
const HOST: (&str, &str) = ("X-Forwarded-Host", "app.example.com");

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// Not allowed, and when refused by the firewall, a 403 `access_denied` (nginx would turn a 400 into a 500).
fn assert_refused(a: &Answer, what: &str) {
    assert_eq!(
        (a.status, a.json()["error"].as_str()),
        (403, Some("access_denied")),
        "{what}: {}",
        a.body
    );
    assert!(
        !a.json()["error_description"].as_str().unwrap_or("").is_empty(),
        "{what}: the reason is in the body"
    );
}

#[actix_web::test]
async fn paths_read_differently_by_servers_are_refused() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new().file(RULES)).await;
    let read = bearer(&idp.mint(TokenSpec::default().roles(&["viewer"])));
    let nginx = |uri: &'static str, auth: Option<&str>| {
        let mut h = vec![("X-Original-URI", uri.to_string()), ("X-Original-Method", "GET".into())];
        if let Some(a) = auth {
            h.push(("Authorization", a.to_string()));
        }
        h
    };
    let send = |h: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let pairs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.get("/verify", &pairs).await
        }
    };
    for (uri, auth) in [
        ("/public/..;/admin/x", None),
        ("/admin;x=1/y", Some(read.as_str())),
        ("/%2561dmin/x", Some(read.as_str())),
        ("/admin%00/x", Some(read.as_str())),
        ("/admin./x", Some(read.as_str())),
        ("/public/%EF%BC%8E%EF%BC%8E/admin/x", None),
        ("/public/%2e%2e/admin/x", None),
        ("/public//admin", None),
        ("/public\\..\\admin/x", None),
        ("http://h/admin/x", Some(read.as_str())),
    ] {
        assert_refused(&send(nginx(uri, auth)).await, uri);
    }
    // The same through the other sources.
    for (name, value) in [
        ("X-Forwarded-Uri", "/public/..;/admin/x"),
        ("X-Original-URL", "http://h/admin/%2e%2e/public/x"),
        ("X-Original-URL", "http://h/admin/../public/x"),
        ("X-Original-URL", "http://h/admin/..\\public/x"),
        ("X-Original-URL", "http://h\\admin/x"),
    ] {
        assert_refused(&app.get("/verify", &[(name, value)]).await, value);
    }
    assert_refused(
        &app.get("/verify/public/..;/admin/x", &[("Host", "h")]).await,
        "Envoy prefix form",
    );
    // Ordinary UTF-8 paths stay allowed.
    let a = app.get("/verify", &[("X-Original-URI", "/public/caf%C3%A9")]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        app.metric("tokengate_verify_requests_total", &[("result", "forbidden")]),
        16.0
    );
}

#[actix_web::test]
async fn case_and_area_roots_meet_the_rule_that_requires_something() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new().file(RULES)).await;
    let read = bearer(&idp.mint(TokenSpec::default().roles(&["viewer"])));
    let root = bearer(&idp.mint(admin()));
    for uri in ["/ADMIN/x", "/Admin", "/admin", "/admin/", "/%EF%BD%81dmin/x"] {
        let a = app
            .get("/verify", &[("X-Original-URI", uri), HOST, ("Authorization", &read)])
            .await;
        assert_eq!(a.status, 403, "{uri} needs role admin");
        let a = app
            .get("/verify", &[("X-Original-URI", uri), HOST, ("Authorization", &root)])
            .await;
        assert_eq!(a.status, 200, "{uri} with role admin");
    }
    let a = app.get("/verify", &[("X-Original-URI", "/PUBLIC/x"), HOST]).await;
    assert_eq!(a.status, 401, "anonymous rules match exactly: /PUBLIC/x needs a token");
    let a = app.get("/verify", &[("X-Original-URI", "/public"), HOST]).await;
    assert_eq!(a.status, 200, "the area root is part of the area");

    let sensitive = spawn_app(
        &idp,
        Setup::new().file(RULES).set("policy.case_sensitive_paths", "true"),
    )
    .await;
    let a = sensitive
        .get(
            "/verify",
            &[("X-Original-URI", "/ADMIN/x"), HOST, ("Authorization", &read)],
        )
        .await;
    assert_eq!(a.status, 200, "policy.case_sensitive_paths: for applications that are");
}

#[actix_web::test]
async fn hosts_with_a_trailing_dot_meet_the_host_rule_from_every_source() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new().file(RULES)).await;
    let read = bearer(&idp.mint(TokenSpec::default().roles(&["viewer"])));
    let cases: [Vec<(&str, &str)>; 4] = [
        vec![("X-Original-URI", "/x"), ("X-Forwarded-Host", "admin.example.com.")],
        vec![("X-Original-URI", "/x"), ("X-Forwarded-Host", "ADMIN.example.com.:443")],
        vec![("X-Original-URL", "https://admin.example.com./x")],
        vec![("X-Forwarded-Uri", "/x"), ("X-Forwarded-Host", "admin.example.com.")],
    ];
    for mut headers in cases {
        headers.push(("Authorization", &read));
        let a = app.get("/verify", &headers).await;
        assert_eq!(a.status, 403, "{headers:?}");
    }
    let a = app
        .get("/verify/x", &[("Host", "admin.example.com."), ("Authorization", &read)])
        .await;
    assert_eq!(a.status, 403, "Envoy's Host");
    let a = app
        .get(
            "/verify",
            &[
                ("X-Original-URI", "/x"),
                ("X-Forwarded-Host", "admin.example.com.."),
                ("Authorization", &read),
            ],
        )
        .await;
    assert_refused(&a, "two trailing dots");
    let a = app
        .get("/verify", &[("X-Original-URI", "/x"), ("Authorization", &read)])
        .await;
    assert_eq!(
        a.status, 403,
        "an unknown host could be admin.example.com: the host rule applies"
    );
}

#[actix_web::test]
async fn the_prefix_path_with_proxy_headers_never_drops_the_check_url() {
    let idp = TestIdp::start().await;
    let read = bearer(&idp.mint(TokenSpec::default().roles(&["viewer"])));
    // `proxy_pass http://tokengate/verify/?role=admin;` (one slash too many), with and without rules.
    for setup in [Setup::new(), Setup::new().file(RULES)] {
        let app = spawn_app(&idp, setup).await;
        let a = app
            .get(
                "/verify/?role=admin",
                &[("X-Original-URI", "/app/x"), ("Authorization", &read)],
            )
            .await;
        assert_refused(&a, "nginx headers on the prefix path");
        let a = app
            .get(
                "/verify/app/x",
                &[("X-Forwarded-Uri", "/app/x"), ("Authorization", &read)],
            )
            .await;
        assert_refused(&a, "Traefik headers on the prefix path");
    }
}

#[actix_web::test]
async fn a_named_proxy_reads_only_its_own_headers() {
    let idp = TestIdp::start().await;
    let read = bearer(&idp.mint(TokenSpec::default().roles(&["viewer"])));
    let nginx = spawn_app(&idp, Setup::new().file(RULES).set("server.proxy", "nginx")).await;
    let a = nginx
        .get("/verify", &[("X-Original-URI", "/app"), HOST, ("Authorization", &read)])
        .await;
    assert_eq!(a.status, 200);
    let a = nginx
        .get(
            "/verify",
            &[
                ("X-Original-URI", "/app"),
                ("X-Forwarded-Uri", "/app"),
                ("Authorization", &read),
            ],
        )
        .await;
    assert_refused(&a, "Traefik's header under nginx");
    let a = nginx.get("/verify/app", &[("Authorization", &read)]).await;
    assert_refused(&a, "Envoy's form under nginx");
    let a = nginx.get("/verify", &[("Authorization", &read)]).await;
    assert_eq!(
        a.status, 400,
        "nginx not sending X-Original-URI is the operator's to fix"
    );

    let envoy = spawn_app(&idp, Setup::new().set("server.proxy", "envoy")).await;
    let a = envoy
        .get("/verify/app", &[("Host", "a.example.com"), ("Authorization", &read)])
        .await;
    assert_eq!(a.status, 200);
    let a = envoy
        .get("/verify/app", &[("X-Original-URI", "/app"), ("Authorization", &read)])
        .await;
    assert_refused(&a, "nginx's header under envoy");

    let bad = try_spawn_app(&idp, Setup::new().set("server.proxy", "haproxy")).await;
    assert!(bad.err().is_some_and(|e| e.contains("server.proxy")));
}

#[actix_web::test]
async fn strict_paths_can_be_turned_off_but_repairs_are_never_anonymous() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new().file(RULES).set("policy.strict_paths", "false")).await;
    let read = bearer(&idp.mint(TokenSpec::default().roles(&["viewer"])));
    let a = app.get("/verify", &[("X-Original-URI", "/public/..;/admin/x")]).await;
    assert_eq!(a.status, 401, "not refused, but not anonymous either");
    let a = app
        .get(
            "/verify",
            &[("X-Original-URI", "/public/../admin/x"), ("Authorization", &read)],
        )
        .await;
    assert_eq!(a.status, 403, "repaired to /admin/x: needs admin");
    let a = app.get("/verify", &[("X-Original-URI", "http://h/public/x")]).await;
    assert_refused(&a, "absolute form is refused in every mode");
}

fn roles_claim(project: &str, roles: &[&str], org: &str) -> (String, serde_json::Value) {
    let name = if project.is_empty() {
        "urn:zitadel:iam:org:project:roles".to_string()
    } else {
        format!("urn:zitadel:iam:org:project:{project}:roles")
    };
    let value = roles
        .iter()
        .map(|r| (r.to_string(), json!({ org: "example.com" })))
        .collect();
    (name, serde_json::Value::Object(value))
}

fn token_with(idp: &TestIdp, claims: Vec<(String, serde_json::Value)>) -> String {
    let mut extra = serde_json::Map::new();
    extra.extend(claims);
    bearer(&idp.mint(TokenSpec {
        extra,
        ..TokenSpec::default()
    }))
}

#[actix_web::test]
async fn roles_of_another_project_never_count() {
    let idp = TestIdp::start().await;
    let other_admin = token_with(
        &idp,
        vec![
            roles_claim("999999999", &["admin"], "1"),
            roles_claim("", &["viewer"], "1"),
        ],
    );
    let app = spawn_app(&idp, Setup::new().set("policy.required_roles", "admin")).await;
    let a = app.get("/verify", &[("Authorization", &other_admin)]).await;
    assert_eq!(a.status, 403, "admin in project 999999999 is not admin here");
    let app = spawn_app(&idp, Setup::new()).await;
    let a = app.get("/verify", &[("Authorization", &other_admin)]).await;
    assert_eq!(
        a.header("x-auth-request-roles").as_deref(),
        Some("viewer"),
        "only the roles that count"
    );
    let a = app.get("/verify?role=admin", &[("Authorization", &other_admin)]).await;
    assert_eq!(a.status, 403, "the check URL's roles are pinned too");

    // Pinned: only that project's claim counts; the generic claim does not name its project.
    let pinned = spawn_app(&idp, Setup::new().file(RULES).set("policy.project_id", "300")).await;
    let here = token_with(
        &idp,
        vec![roles_claim("300", &["admin"], "1"), roles_claim("", &["admin"], "1")],
    );
    let generic_only = token_with(&idp, vec![roles_claim("", &["admin"], "1")]);
    let get = |auth: String| {
        let pinned = &pinned;
        async move {
            pinned
                .get(
                    "/verify?role=admin",
                    &[("X-Original-URI", "/admin/x"), ("Authorization", &auth)],
                )
                .await
        }
    };
    assert_eq!(get(here.clone()).await.status, 200);
    assert_eq!(get(generic_only).await.status, 403);
    assert_eq!(get(other_admin.clone()).await.status, 403, "rules see pinned roles too");

    let org_pinned = spawn_app(
        &idp,
        Setup::new()
            .set("policy.project_id", "300")
            .set("policy.org_id", "2")
            .set("policy.required_roles", "admin"),
    )
    .await;
    assert_eq!(org_pinned.get("/verify", &[("Authorization", &here)]).await.status, 403);
    let in_org_2 = token_with(&idp, vec![roles_claim("300", &["admin"], "2")]);
    assert_eq!(
        org_pinned.get("/verify", &[("Authorization", &in_org_2)]).await.status,
        200
    );
    assert!(
        try_spawn_app(&idp, Setup::new().set("policy.project_id", "my-project"))
            .await
            .err()
            .is_some_and(|e| e.contains("policy.project_id"))
    );
}

#[actix_web::test]
async fn identity_values_an_application_would_split_or_trim_are_left_out() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new()).await;
    let mut extra = serde_json::Map::new();
    extra.insert(
        "urn:zitadel:iam:org:project:roles".into(),
        json!({"viewer,admin": {"1": "x"}, "ops": {"1": "x"}}),
    );
    extra.insert("preferred_username".into(), json!(" admin "));
    extra.insert("email".into(), json!("a\u{2028}b@example.com"));
    extra.insert("sub".into(), serde_json::Value::Null);
    let token = bearer(&idp.mint(TokenSpec {
        extra,
        ..TokenSpec::default()
    }));
    let a = app
        .get("/verify", &[("Authorization", &token), ("X-Auth-Request-User", "evil")])
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-auth-request-roles").as_deref(), Some("ops"));
    assert_eq!(a.header("x-auth-request-preferred-username").as_deref(), Some(""));
    assert_eq!(a.header("x-auth-request-email").as_deref(), Some(""));
    assert_eq!(
        a.header("x-auth-request-user").as_deref(),
        Some(""),
        "a token without sub still overwrites the client's header"
    );
    assert_eq!(app.metric("tokengate_rejected_header_values_total", &[]), 3.0);
    let a = app.get("/verify?role=viewer,admin", &[("Authorization", &token)]).await;
    assert_eq!(a.status, 200, "decisions use the exact role");
}

/// IdP starvation (issue 8): one client floods unknown tokens while another checks five new valid ones. With the
/// IdP's slots shared round-robin by client (`server.client_address`), the five are served in turns with the
/// flood, not after its queue: asserted through the IdP's call counter, not the clock.
#[actix_web::test]
async fn one_client_flooding_unknown_tokens_cannot_starve_another() {
    use futures_util::future::join_all;
    let idp = TestIdp::start().await;
    let app = spawn_app(
        &idp,
        Setup::new()
            .set("server.client_address", "x-real-ip")
            .set("idp.max_concurrent", "4")
            .set("idp.timeout", "60s")
            .set("server.workers", "1"),
    )
    .await;
    assert!(app.wait_ready().await);
    idp.idp.set_faults(tokengate::dev_idp::Faults {
        latency_ms: 100,
        ..Default::default()
    });
    // Under the test client's 100 connections.
    const FLOOD: usize = 90;
    let flood = join_all((0..FLOOD).map(|i| {
        let auth = format!("Bearer junk-{i}");
        let app = &app;
        async move {
            app.get("/verify", &[("Authorization", &auth), ("X-Real-IP", "203.0.113.66")])
                .await
        }
    }));
    let other = async {
        // Once the flood's queue has formed, the other client arrives.
        assert!(
            eventually(20, || app.metric("tokengate_idp_waiting", &[]) >= (FLOOD - 10) as f64).await,
            "the flood queued"
        );
        let queued_before = idp.idp.introspections();
        let tokens: Vec<String> = (0..5).map(|_| idp.mint(admin())).collect();
        let answers = join_all(tokens.iter().map(|t| {
            let auth = format!("Bearer {t}");
            let app = &app;
            async move {
                app.get("/verify", &[("Authorization", &auth), ("X-Real-IP", "198.51.100.7")])
                    .await
            }
        }))
        .await;
        (answers, queued_before, idp.idp.introspections())
    };
    let (flood_answers, (answers, before, after)) = futures_util::join!(flood, other);
    assert!(answers.iter().all(|a| a.status == 200), "all five allowed");
    // Served in turns: each of the five waited for at most a few of the flood's calls, not for its ~80 queued ones.
    assert!(
        after - before <= 20,
        "the IdP served {} calls between the other client's arrival and its last answer",
        after - before
    );
    assert!(
        flood_answers.iter().all(|a| a.status == 401),
        "the flood itself is refused, not starved"
    );
}
