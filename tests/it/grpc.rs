//! The gRPC door (`server.grpc_listen`) through a real tonic client over a real socket, built from envoy-types'
//! client stubs, sending what Envoy sends: allow with headers and metadata, the 401/403/503/400 denials, rules by
//! host, method and path, the client's query, the request firewall, raw headers, identity headers to remove, the
//! cache shared with the HTTP door, health following readiness, limits, metrics and graceful shutdown.

use std::collections::HashMap;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::google::protobuf::value::Kind;
use tokengate::dev_idp::{Faults, TokenSpec};
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::*;

const RULES: &str = r#"
[[rules]]
name = "admin-host"
hosts = ["admin.example.com"]
required_roles = ["admin"]

[[rules]]
name = "public"
paths = ["/public/**"]
anonymous = true

[[rules]]
name = "writes"
methods = ["POST", "DELETE"]
paths = ["/api/**"]
required_scopes = ["write"]

[[rules]]
name = "admin"
paths = ["/admin/**"]
required_roles = ["admin"]
"#;

async fn grpc_app(idp: &TestIdp, setup: Setup) -> TestApp {
    let app = spawn_app(idp, setup.file(RULES).set("server.grpc_listen", "127.0.0.1:0")).await;
    assert!(app.wait_ready().await);
    app
}

async fn client(app: &TestApp) -> AuthorizationClient<Channel> {
    AuthorizationClient::connect(app.grpc_url.clone().expect("the gRPC door is on"))
        .await
        .unwrap()
}

/// What Envoy sends for `method host path` with these (lower-case) headers, in the `headers` map.
fn envoy(method: &str, host: &str, path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    with_extensions(method, host, path, headers, &[])
}

fn with_extensions(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    ext: &[(&str, &str)],
) -> CheckRequest {
    let mut all: HashMap<String, String> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    // Envoy puts the pseudo-headers among the headers too.
    all.insert(":method".into(), method.into());
    all.insert(":path".into(), path.into());
    all.insert(":authority".into(), host.into());
    request(
        HttpRequest {
            method: method.into(),
            host: host.into(),
            path: path.into(),
            scheme: "http".into(),
            protocol: "HTTP/1.1".into(),
            headers: all,
            ..Default::default()
        },
        ext,
    )
}

fn request(http: HttpRequest, ext: &[(&str, &str)]) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(http),
                ..Default::default()
            }),
            context_extensions: ext.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        }),
    }
}

async fn check(client: &mut AuthorizationClient<Channel>, req: CheckRequest) -> CheckResponse {
    client
        .check(req)
        .await
        .expect("always a CheckResponse, never a gRPC error")
        .into_inner()
}

fn code(resp: &CheckResponse) -> Code {
    Code::from(resp.status.as_ref().map_or(-1, |s| s.code))
}

fn ok(resp: &CheckResponse) -> &OkHttpResponse {
    match &resp.http_response {
        Some(HttpResponse::OkResponse(ok)) => ok,
        other => panic!("not an ok_response: {other:?} ({:?})", resp.status),
    }
}

fn denied(resp: &CheckResponse) -> &DeniedHttpResponse {
    match &resp.http_response {
        Some(HttpResponse::DeniedResponse(d)) => d,
        other => panic!("not a denied_response: {other:?}"),
    }
}

fn denied_status(resp: &CheckResponse) -> i32 {
    denied(resp).status.as_ref().map_or(0, |s| s.code)
}

fn denied_header<'a>(resp: &'a CheckResponse, name: &str) -> Option<&'a str> {
    denied(resp)
        .headers
        .iter()
        .filter_map(|h| h.header.as_ref())
        .find(|h| h.key == name)
        .map(|h| h.value.as_str())
}

fn set_header<'a>(resp: &'a CheckResponse, name: &str) -> Option<&'a str> {
    let ok = ok(resp);
    let set: Vec<_> = ok
        .headers
        .iter()
        .filter(|h| h.header.as_ref().is_some_and(|h| h.key == name))
        .collect();
    assert!(set.len() <= 1, "{name} set twice: {set:?}");
    set.first().map(|h| {
        assert_eq!(h.append_action, 2, "OVERWRITE_IF_EXISTS_OR_ADD for {name}");
        h.header.as_ref().unwrap().value.as_str()
    })
}

fn metadata_text(resp: &CheckResponse, key: &str) -> Option<String> {
    match resp.dynamic_metadata.as_ref()?.fields.get(key)?.kind.as_ref()? {
        Kind::StringValue(s) => Some(s.clone()),
        Kind::ListValue(l) => Some(
            l.values
                .iter()
                .filter_map(|v| match &v.kind {
                    Some(Kind::StringValue(s)) => Some(s.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(" "),
        ),
        other => panic!("{key}: {other:?}"),
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The same check through the HTTP door (with rules it needs the original request, here in Traefik's headers).
async fn http_verify(app: &TestApp, token: &str) -> u16 {
    let auth = bearer(token);
    let headers = [
        ("Authorization", auth.as_str()),
        ("X-Forwarded-Uri", "/app"),
        ("X-Forwarded-Host", "h"),
    ];
    app.get("/verify", &headers).await.status
}

#[actix_web::test]
async fn a_valid_token_is_ok_with_identity_headers_and_metadata() {
    let idp = TestIdp::start().await;
    let app = grpc_app(&idp, Setup::new()).await;
    let mut c = client(&app).await;
    let token = idp.mint(TokenSpec {
        sub: "alice".into(),
        ..TokenSpec::default().roles(&["viewer"]).scopes(&["openid", "read"])
    });
    let auth = bearer(&token);
    let resp = check(
        &mut c,
        envoy("GET", "app.example.com", "/app/x", &[("authorization", &auth)]),
    )
    .await;
    assert_eq!(code(&resp), Code::Ok, "{resp:?}");
    assert_eq!(set_header(&resp, "x-auth-request-user"), Some("alice"));
    assert_eq!(set_header(&resp, "x-auth-request-roles"), Some("viewer"));
    assert_eq!(set_header(&resp, "x-auth-request-email"), Some("user-1@example.com"));
    assert_eq!(metadata_text(&resp, "sub").as_deref(), Some("alice"));
    assert_eq!(metadata_text(&resp, "scopes").as_deref(), Some("openid read"));
    assert_eq!(metadata_text(&resp, "roles").as_deref(), Some("viewer"));
    assert!(metadata_text(&resp, "client_id").is_some_and(|c| !c.is_empty()));
    assert!(
        metadata_text(&resp, "rule").is_none(),
        "the global policy has no rule name"
    );
    // Same token, the admin host: the rule's name is in the metadata of the denial.
    let resp = check(
        &mut c,
        envoy("GET", "admin.example.com", "/", &[("authorization", &auth)]),
    )
    .await;
    assert_eq!((code(&resp), denied_status(&resp)), (Code::PermissionDenied, 403));
    assert_eq!(metadata_text(&resp, "rule").as_deref(), Some("admin-host"));
    assert_eq!(
        app.metric(
            "tokengate_verify_requests_total",
            &[("door", "grpc"), ("result", "allowed")]
        ),
        1.0
    );
    assert_eq!(
        app.metric(
            "tokengate_verify_requests_total",
            &[("door", "grpc"), ("result", "forbidden")]
        ),
        1.0
    );
    assert_eq!(
        app.metric(
            "tokengate_verify_requests_total",
            &[("door", "http"), ("result", "allowed")]
        ),
        0.0
    );
}

#[actix_web::test]
async fn missing_and_invalid_tokens_get_the_401_challenge() {
    let idp = TestIdp::start().await;
    let app = grpc_app(&idp, Setup::new()).await;
    let mut c = client(&app).await;
    let resp = check(&mut c, envoy("GET", "h", "/app", &[])).await;
    assert_eq!((code(&resp), denied_status(&resp)), (Code::Unauthenticated, 401));
    assert_eq!(
        denied_header(&resp, "www-authenticate"),
        Some("Bearer realm=\"tokengate\"")
    );
    let body: serde_json::Value = serde_json::from_str(&denied(&resp).body).unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(denied_header(&resp, "content-type"), Some("application/json"));
    let resp = check(
        &mut c,
        envoy("GET", "h", "/app", &[("authorization", "Bearer not-a-known-token")]),
    )
    .await;
    assert_eq!((code(&resp), denied_status(&resp)), (Code::Unauthenticated, 401));
    assert!(
        denied_header(&resp, "www-authenticate")
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    let resp = check(
        &mut c,
        envoy("GET", "h", "/app", &[("authorization", "Basic dXNlcjpwdw==")]),
    )
    .await;
    assert_eq!(denied_status(&resp), 401);
}

#[actix_web::test]
async fn context_extensions_add_requirements_and_unknown_keys_are_refused() {
    let idp = TestIdp::start().await;
    let app = grpc_app(&idp, Setup::new()).await;
    let mut c = client(&app).await;
    let auth = bearer(&idp.mint(TokenSpec::default().scopes(&["read"]).roles(&["viewer"])));
    let h = [("authorization", auth.as_str())];
    let resp = check(
        &mut c,
        with_extensions("GET", "h", "/app", &h, &[("scope", "read write")]),
    )
    .await;
    assert_eq!((code(&resp), denied_status(&resp)), (Code::PermissionDenied, 403));
    let challenge = denied_header(&resp, "www-authenticate").unwrap();
    assert!(
        challenge.contains("insufficient_scope") && challenge.contains("scope=\"write\""),
        "{challenge}"
    );
    let resp = check(&mut c, with_extensions("GET", "h", "/app", &h, &[("scope", "read")])).await;
    assert_eq!(code(&resp), Code::Ok);
    // role: any one of them.
    let resp = check(
        &mut c,
        with_extensions("GET", "h", "/app", &h, &[("role", "admin viewer")]),
    )
    .await;
    assert_eq!(code(&resp), Code::Ok);
    let resp = check(&mut c, with_extensions("GET", "h", "/app", &h, &[("role", "admin")])).await;
    assert_eq!(denied_status(&resp), 403);
    // On top of an anonymous rule too, as the check URL's query does on HTTP.
    let resp = check(
        &mut c,
        with_extensions("GET", "h", "/public/x", &[], &[("role", "admin")]),
    )
    .await;
    assert_eq!(denied_status(&resp), 401);
    // A typo in the route config must not drop the requirement.
    let resp = check(&mut c, with_extensions("GET", "h", "/app", &h, &[("roles", "admin")])).await;
    assert_eq!((code(&resp), denied_status(&resp)), (Code::InvalidArgument, 400));
    assert!(denied(&resp).body.contains("unknown context extension"));
}

#[actix_web::test]
async fn anonymous_rules_allow_without_identity_and_remove_the_clients_copies() {
    let idp = TestIdp::start().await;
    let app = grpc_app(&idp, Setup::new()).await;
    let mut c = client(&app).await;
    let resp = check(
        &mut c,
        envoy(
            "GET",
            "h",
            "/public/style.css",
            &[("x-auth-request-user", "mallory"), ("x_auth_request_roles", "admin")],
        ),
    )
    .await;
    assert_eq!(code(&resp), Code::Ok);
    let ok = ok(&resp);
    assert!(
        ok.headers.is_empty(),
        "no identity on an anonymous allow: {:?}",
        ok.headers
    );
    for h in [
        "x-auth-request-user",
        "x-auth-request-email",
        "x-auth-request-roles",
        "x_auth_request_roles",
    ] {
        assert!(
            ok.headers_to_remove.iter().any(|r| r == h),
            "{h}: {:?}",
            ok.headers_to_remove
        );
    }
    assert_eq!(metadata_text(&resp, "rule").as_deref(), Some("public"));
    // A repaired path never matches the anonymous rule: refused, whatever the token.
    let resp = check(&mut c, envoy("GET", "h", "/public/../admin/x", &[])).await;
    assert_eq!(denied_status(&resp), 403);
}

#[actix_web::test]
async fn a_client_sent_identity_header_the_token_does_not_fill_is_removed() {
    let idp = TestIdp::start().await;
    let app = grpc_app(&idp, Setup::new()).await;
    let mut c = client(&app).await;
    let token = idp.mint(TokenSpec {
        email: None,
        ..TokenSpec::default()
    });
    let auth = bearer(&token);
    let resp = check(
        &mut c,
        envoy(
            "GET",
            "h",
            "/app",
            &[("authorization", &auth), ("x-auth-request-email", "ceo@example.com")],
        ),
    )
    .await;
    assert_eq!(code(&resp), Code::Ok);
    assert_eq!(set_header(&resp, "x-auth-request-email"), None);
    assert!(ok(&resp).headers_to_remove.iter().any(|h| h == "x-auth-request-email"));
    assert!(
        !ok(&resp).headers_to_remove.iter().any(|h| h == "x-auth-request-user"),
        "a header the token fills is overwritten, not removed"
    );
}

#[actix_web::test]
async fn rules_by_host_method_and_path_and_the_query_is_ignored() {
    let idp = TestIdp::start().await;
    let app = grpc_app(&idp, Setup::new()).await;
    let mut c = client(&app).await;
    let reader = bearer(&idp.mint(TokenSpec::default().scopes(&["read"]).roles(&["viewer"])));
    let writer = bearer(&idp.mint(TokenSpec::default().scopes(&["write"]).roles(&["admin"])));
    let r: &[(&str, &str)] = &[("authorization", reader.as_str())];
    let w: &[(&str, &str)] = &[("authorization", writer.as_str())];
    let none: &[(&str, &str)] = &[];
    let status = |resp: &CheckResponse| match &resp.http_response {
        Some(HttpResponse::OkResponse(_)) => 200,
        _ => denied_status(resp),
    };
    for (method, host, path, headers, want) in [
        ("GET", "app.example.com", "/api/items", r, 200),
        ("POST", "app.example.com", "/api/items", r, 403),
        ("POST", "app.example.com", "/api/items", w, 200),
        ("DELETE", "app.example.com", "/api/items/1", r, 403),
        ("GET", "ADMIN.example.com.", "/anything", r, 403),
        ("GET", "admin.example.com:8443", "/anything", w, 200),
        ("GET", "app.example.com", "/ADMIN/x", r, 403),
        ("GET", "app.example.com", "/admin", r, 403),
        ("GET", "app.example.com", "/admin/x", w, 200),
        // The client's query names no requirement, and does not hide the path from the rules.
        ("GET", "app.example.com", "/admin/x?role=viewer", r, 403),
        ("GET", "app.example.com", "/app?scope=write&role=admin", r, 200),
        ("GET", "app.example.com", "/public/a?x=/admin", none, 200),
    ] {
        let resp = check(&mut c, envoy(method, host, path, headers)).await;
        assert_eq!(status(&resp), want, "{method} {host}{path}: {resp:?}");
    }
}

#[actix_web::test]
async fn the_request_firewall_refuses_escapes() {
    let idp = TestIdp::start().await;
    let app = grpc_app(&idp, Setup::new()).await;
    let mut c = client(&app).await;
    let reader = bearer(&idp.mint(TokenSpec::default().roles(&["viewer"])));
    for path in [
        "/public/../admin/x",
        "/public/%2e%2e/admin/x",
        "/admin%2fx",
        "/public%2F..%2Fadmin",
        "/public/..;/admin/x",
        "/admin;x=1/y",
        "/%2561dmin/x",
        "/admin%00/x",
        "/admin./x",
        "//admin/x",
        "/public/%EF%BC%8E%EF%BC%8E/admin/x",
        "/public\\..\\admin",
    ] {
        let resp = check(&mut c, envoy("GET", "h", path, &[("authorization", &reader)])).await;
        assert_eq!(
            (code(&resp), denied_status(&resp)),
            (Code::PermissionDenied, 403),
            "{path}: {resp:?}"
        );
    }
}

#[actix_web::test]
async fn raw_header_map_encoding() {
    let idp = TestIdp::start().await;
    let app = grpc_app(&idp, Setup::new().set("token.cookie", "session")).await;
    let mut c = client(&app).await;
    let token = idp.mint(TokenSpec {
        sub: "raw-user".into(),
        ..TokenSpec::default()
    });
    let raw = |pairs: &[(&str, String)]| {
        request(
            HttpRequest {
                method: "GET".into(),
                host: "h".into(),
                path: "/app".into(),
                header_map: Some(HeaderMap {
                    headers: pairs
                        .iter()
                        .map(|(k, v)| HeaderValue {
                            key: k.to_string(),
                            raw_value: v.as_bytes().to_vec(),
                            ..Default::default()
                        })
                        .collect(),
                }),
                ..Default::default()
            },
            &[],
        )
    };
    let resp = check(&mut c, raw(&[("authorization", bearer(&token))])).await;
    assert_eq!(code(&resp), Code::Ok, "{resp:?}");
    assert_eq!(set_header(&resp, "x-auth-request-user"), Some("raw-user"));
    let resp = check(&mut c, raw(&[("cookie", format!("a=1; session={token}"))])).await;
    assert_eq!(code(&resp), Code::Ok, "token.cookie in a raw header");
    // Raw headers keep two Authorization headers apart: refused as ambiguous.
    let resp = check(
        &mut c,
        raw(&[
            ("authorization", bearer(&token)),
            ("authorization", "Bearer other".into()),
        ]),
    )
    .await;
    assert_eq!(denied_status(&resp), 401);
    assert!(denied(&resp).body.contains("more than one Authorization header"));
}

#[actix_web::test]
async fn identity_provider_down_is_503_unavailable_with_retry_after() {
    let idp = TestIdp::start().await;
    let app = grpc_app(&idp, Setup::new().set("idp.timeout", "1s")).await;
    let mut c = client(&app).await;
    idp.idp.set_faults(Faults {
        status: Some(500),
        ..Faults::default()
    });
    let resp = check(
        &mut c,
        envoy("GET", "h", "/app", &[("authorization", "Bearer fresh-token")]),
    )
    .await;
    assert_eq!((code(&resp), denied_status(&resp)), (Code::Unavailable, 503));
    assert_eq!(denied_header(&resp, "retry-after"), Some("1"));
    assert_eq!(
        app.metric(
            "tokengate_verify_requests_total",
            &[("door", "grpc"), ("result", "unavailable")]
        ),
        1.0
    );
    idp.stop().await;
    let resp = check(
        &mut c,
        envoy("GET", "h", "/app", &[("authorization", "Bearer other-token")]),
    )
    .await;
    assert_eq!((code(&resp), denied_status(&resp)), (Code::Unavailable, 503));
}

#[actix_web::test]
async fn malformed_checks_are_400_denials() {
    let idp = TestIdp::start().await;
    let app = grpc_app(&idp, Setup::new()).await;
    let mut c = client(&app).await;
    for req in [
        CheckRequest::default(),
        CheckRequest {
            attributes: Some(AttributeContext::default()),
        },
        request(HttpRequest::default(), &[]),
    ] {
        let resp = check(&mut c, req.clone()).await;
        let want = if req.attributes.as_ref().and_then(|a| a.request.as_ref()).is_some() {
            // HTTP attributes present but empty: no method, no path.
            (Code::PermissionDenied, 403)
        } else {
            (Code::InvalidArgument, 400)
        };
        assert_eq!((code(&resp), denied_status(&resp)), want, "{req:?}");
    }
    // Headers over 32 KiB: 431, as on HTTP; a message over the decoding limit: the gRPC layer's own error.
    let big = "x".repeat(40 * 1024);
    let resp = check(&mut c, envoy("GET", "h", "/app", &[("x-big", &big)])).await;
    assert_eq!((code(&resp), denied_status(&resp)), (Code::InvalidArgument, 431));
    let huge = "x".repeat(tokengate::grpc::MAX_MESSAGE_BYTES + 1);
    let err = c
        .check(envoy("GET", "h", "/app", &[("x-big", &huge)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    // The connection survives both.
    let resp = check(&mut c, envoy("GET", "h", "/public/x", &[])).await;
    assert_eq!(code(&resp), Code::Ok);
}

#[actix_web::test]
async fn a_burst_on_one_new_token_makes_one_idp_call_and_shares_the_cache_with_http() {
    let idp = TestIdp::start().await;
    let app = grpc_app(&idp, Setup::new()).await;
    // The IdP answers slowly, so that all 64 checks are waiting at once.
    idp.idp.set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });
    let token = idp.mint(TokenSpec::default());
    let before = idp.idp.introspections();
    let c = client(&app).await;
    let auth = bearer(&token);
    let checks = (0..64).map(|_| {
        let mut c = c.clone();
        let req = envoy("GET", "h", "/app", &[("authorization", &auth)]);
        async move { check(&mut c, req).await }
    });
    let answers = futures_util::future::join_all(checks).await;
    assert!(answers.iter().all(|r| code(r) == Code::Ok));
    assert_eq!(idp.idp.introspections() - before, 1, "one IdP call for the burst");
    // The HTTP door finds it in the same cache.
    assert_eq!(http_verify(&app, &token).await, 200);
    assert_eq!(idp.idp.introspections() - before, 1, "the HTTP door shares the cache");
    assert_eq!(
        app.metric(
            "tokengate_verify_requests_total",
            &[("door", "grpc"), ("result", "allowed")]
        ),
        64.0
    );
}

async fn health(app: &TestApp) -> HealthClient<Channel> {
    let channel = Channel::from_shared(app.grpc_url.clone().unwrap())
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
}

async fn serving(h: &mut HealthClient<Channel>, service: &str) -> Result<ServingStatus, Code> {
    h.check(HealthCheckRequest {
        service: service.into(),
    })
    .await
    .map(|r| ServingStatus::try_from(r.into_inner().status).unwrap())
    .map_err(|e| e.code())
}

#[actix_web::test]
async fn health_follows_readiness_and_watch_streams_the_changes() {
    let idp = TestIdp::start().await;
    let app = grpc_app(&idp, Setup::new()).await;
    let mut h = health(&app).await;
    assert_eq!(serving(&mut h, "").await, Ok(ServingStatus::Serving));
    assert_eq!(
        serving(&mut h, "envoy.service.auth.v3.Authorization").await,
        Ok(ServingStatus::Serving)
    );
    assert_eq!(serving(&mut h, "no.such.Service").await, Err(Code::NotFound));
    let mut watch = h
        .watch(HealthCheckRequest { service: String::new() })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    // The IdP stops accepting tokengate's key: /readyz 503, health NOT_SERVING, and Watch says so.
    idp.idp.remove_keys();
    let token = idp.mint(admin());
    assert_eq!(http_verify(&app, &token).await, 503);
    assert_eq!(app.get("/readyz", &[]).await.status, 503);
    assert_eq!(serving(&mut h, "").await, Ok(ServingStatus::NotServing));
    let next = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("Watch reports the change")
        .unwrap()
        .unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);

    // Fixed: ready again, SERVING again.
    idp.idp
        .register_key_file(&std::fs::read(&idp.key_file).unwrap())
        .unwrap();
    assert_eq!(http_verify(&app, &token).await, 200);
    assert_eq!(app.get("/readyz", &[]).await.status, 200);
    assert_eq!(serving(&mut h, "").await, Ok(ServingStatus::Serving));
    let next = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.status, ServingStatus::Serving as i32);
}

#[actix_web::test]
async fn a_wrong_key_from_the_start_is_not_serving() {
    let idp = TestIdp::start().await;
    idp.idp.remove_keys();
    let app = spawn_app(&idp, Setup::new().set("server.grpc_listen", "127.0.0.1:0")).await;
    let mut h = health(&app).await;
    let token = idp.mint(admin());
    assert_eq!(http_verify(&app, &token).await, 503);
    assert_eq!(app.get("/readyz", &[]).await.status, 503);
    assert_eq!(serving(&mut h, "").await, Ok(ServingStatus::NotServing));
}

#[actix_web::test]
async fn graceful_shutdown_drains_in_flight_checks() {
    let idp = TestIdp::start().await;
    let mut app = grpc_app(&idp, Setup::new().set("server.shutdown_timeout", "10s")).await;
    let mut h = health(&app).await;
    let mut watch = h
        .watch(HealthCheckRequest { service: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status,
        ServingStatus::Serving as i32
    );
    idp.idp.set_faults(Faults {
        latency_ms: 1500,
        ..Faults::default()
    });
    let token = idp.mint(TokenSpec::default());
    let mut c = client(&app).await;
    let auth = bearer(&token);
    let in_flight = {
        let mut c = c.clone();
        let req = envoy("GET", "h", "/app", &[("authorization", &auth)]);
        actix_web::rt::spawn(async move { c.check(req).await })
    };
    // The check is waiting on the IdP when shutdown starts.
    assert!(eventually(5, || idp.idp.introspections() >= 1).await);
    let stopper = app.stopper.clone();
    let stopping = actix_web::rt::spawn(async move { stopper.stop(true).await });
    // Health says NOT_SERVING and the Watch ends, so that it does not hold up the drain.
    let last = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .unwrap();
    assert_eq!(last.unwrap().unwrap().status, ServingStatus::NotServing as i32);
    assert!(
        tokio::time::timeout(Duration::from_secs(5), watch.message())
            .await
            .unwrap()
            .unwrap()
            .is_none()
    );
    // The in-flight check finishes with its real answer.
    let resp = in_flight.await.unwrap().expect("answered, not cut off").into_inner();
    assert_eq!(code(&resp), Code::Ok);
    stopping.await.unwrap();
    tokio::time::timeout(Duration::from_secs(15), app.running.take().unwrap())
        .await
        .expect("run_until_stopped returns once both doors drained")
        .unwrap()
        .unwrap();
    // Nothing is served any more.
    let after = tokio::time::timeout(Duration::from_secs(5), c.check(envoy("GET", "h", "/public/x", &[]))).await;
    assert!(matches!(after, Ok(Err(_))), "{after:?}");
}
