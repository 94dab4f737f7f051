//! Whatever the IdP does, nobody is let in, the caller gets 503, the next good check works, the right metric moves
//! and the log names the cause.

use std::net::TcpListener;
use std::time::Duration;

use futures_util::future::join_all;
use tokengate::dev_idp::{DevIdp, Faults, TokenSpec};

use crate::helpers::*;

/// One fault: 503 for a fresh token, the metric `kind` counted, the log naming `cause`, then recovery.
async fn fault_case(faults: Faults, kind: &str, cause: &str) {
    logs();
    let idp = TestIdp::start().await;
    let app = spawn_app(
        &idp,
        Setup::new().set("idp.timeout", "1s").set("cache.negative_ttl", "0s"),
    )
    .await;
    assert!(app.wait_ready().await);
    idp.idp.set_faults(faults);
    let token = idp.mint(admin());
    let a = app.verify(&token).await;
    assert_eq!(a.status, 503, "{kind}: {}", a.body);
    assert!(a.header("retry-after").is_some());
    assert_eq!(
        app.metric("tokengate_idp_errors_total", &[("kind", kind)]),
        1.0,
        "{kind}"
    );
    assert_eq!(
        app.metric("tokengate_verify_requests_total", &[("result", "unavailable")]),
        1.0
    );
    assert!(logged(cause), "no log line names {cause:?}");
    idp.idp.set_faults(Faults::default());
    assert_eq!(
        app.verify(&token).await.status,
        200,
        "{kind}: the next good check works"
    );
}

fn status(code: u16, body: &str) -> Faults {
    Faults {
        status: Some(code),
        body: Some(body.into()),
        ..Faults::default()
    }
}

fn body(text: &str) -> Faults {
    Faults {
        body: Some(text.into()),
        ..Faults::default()
    }
}

#[actix_web::test]
async fn idp_never_answers() {
    fault_case(
        Faults {
            hang: true,
            ..Faults::default()
        },
        "timeout",
        "did not answer within the timeout",
    )
    .await;
}

#[actix_web::test]
async fn idp_answers_500() {
    fault_case(status(500, "boom"), "server_error", "answered HTTP 500").await;
}

#[actix_web::test]
async fn idp_answers_502() {
    fault_case(status(502, ""), "server_error", "answered HTTP 502").await;
}

#[actix_web::test]
async fn idp_answers_429() {
    fault_case(status(429, "{}"), "rate_limited", "rate limiting us").await;
}

#[actix_web::test]
async fn idp_answers_non_json() {
    fault_case(
        body("<html>maintenance</html>"),
        "invalid_response",
        "not a JSON object",
    )
    .await;
}

#[actix_web::test]
async fn idp_answers_json_without_active() {
    fault_case(body(r#"{"sub":"x"}"#), "invalid_response", "`active` is missing").await;
}

#[actix_web::test]
async fn idp_answers_active_as_a_string() {
    fault_case(
        body(r#"{"active":"true","sub":"x"}"#),
        "invalid_response",
        "`active` is not a JSON boolean",
    )
    .await;
}

#[actix_web::test]
async fn idp_answers_wrongly_typed_claims() {
    fault_case(
        body(r#"{"active":true,"exp":"tomorrow"}"#),
        "invalid_response",
        "`exp` has the wrong type",
    )
    .await;
}

#[actix_web::test]
async fn idp_answers_ten_mebibytes() {
    let huge = format!("{{\"active\":true,\"pad\":\"{}\"}}", "x".repeat(10 << 20));
    fault_case(body(&huge), "response_too_large", "exceeds idp.max_response_bytes").await;
}

#[actix_web::test]
async fn idp_drips_its_answer() {
    fault_case(
        Faults {
            drip: true,
            ..Faults::default()
        },
        "timeout",
        "did not answer within the timeout",
    )
    .await;
}

#[actix_web::test]
async fn idp_refuses_connections() {
    logs();
    let idp = TestIdp::start().await;
    let port = closed_port();
    let app = spawn_app(
        &idp,
        Setup::new().set("idp.issuer", &format!("http://127.0.0.1:{port}")),
    )
    .await;
    let a = app.verify(&idp.mint(admin())).await;
    assert_eq!(a.status, 503);
    assert!(app.metric("tokengate_idp_errors_total", &[("kind", "unreachable")]) >= 1.0);
    assert!(logged("cannot reach the identity provider"));
    assert_eq!(app.get("/healthz", &[]).await.status, 200, "still serving");
}

#[actix_web::test]
async fn idp_name_does_not_resolve() {
    logs();
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new().set("idp.issuer", "http://tokengate-test.invalid")).await;
    let a = app.verify(&idp.mint(admin())).await;
    assert_eq!(a.status, 503);
    assert!(app.metric("tokengate_idp_errors_total", &[("kind", "unreachable")]) >= 1.0);
    assert!(
        logs()
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("cannot reach") && l.to_lowercase().contains("resolv"))
    );
}

#[actix_web::test]
async fn idp_restarts_in_the_middle_of_a_burst() {
    let idp = TestIdp::start().await;
    let app = spawn_app(
        &idp,
        Setup::new().set("idp.timeout", "1s").set("cache.negative_ttl", "0s"),
    )
    .await;
    assert!(app.wait_ready().await);
    idp.idp.set_faults(Faults {
        latency_ms: 100,
        ..Faults::default()
    });
    let tokens: Vec<String> = (0..60)
        .map(|i| {
            idp.mint(TokenSpec {
                sub: format!("u{i}"),
                ..admin()
            })
        })
        .collect();
    let port: u16 = idp.idp.issuer().rsplit(':').next().unwrap().parse().unwrap();
    let burst = join_all(tokens.iter().map(|t| app.verify(t)));
    let restart = async {
        actix_web::rt::time::sleep(Duration::from_millis(150)).await;
        idp.stop().await;
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        // The same instance comes back: same address, same key, same issued tokens.
        let (again, server) = DevIdp::start(TcpListener::bind(("127.0.0.1", port)).unwrap()).unwrap();
        actix_web::rt::spawn(server);
        again.register_key_file(&std::fs::read(&idp.key_file).unwrap()).unwrap();
        for t in &tokens {
            again.insert_token(t, admin());
        }
        again
    };
    let (answers, again) = futures_util::join!(burst, restart);
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "valid tokens are never 401 or anything else: {statuses:?}"
    );
    assert!(statuses.contains(&503), "some checks hit the restart: {statuses:?}");
    let fresh = again.mint(admin());
    assert_eq!(app.verify(&fresh).await.status, 200, "service recovers");
    for t in &tokens {
        assert_eq!(app.verify(t).await.status, 200);
    }
}

#[actix_web::test]
async fn idp_redirects_are_not_followed() {
    fault_case(status(302, ""), "redirect", "answered with a redirect (HTTP 302)").await;
}

#[actix_web::test]
async fn oversized_requests_are_refused_and_the_service_keeps_serving() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new()).await;
    let token = idp.mint(admin());
    let huge = "x".repeat(64 * 1024);
    let mut req = app
        .http
        .get(format!("{}/verify", app.url))
        .insert_header(("Authorization", format!("Bearer {token}")));
    req = req.insert_header(("X-Padding", huge.as_str()));
    let status = req.send().await.map(|r| r.status().as_u16()).unwrap_or(0);
    assert_eq!(status, 431, "a 64 KiB header is refused, never allowed");
    let many: Vec<(String, String)> = (0..200).map(|i| (format!("x-h{i}"), "v".to_string())).collect();
    let mut req = app
        .http
        .get(format!("{}/verify", app.url))
        .insert_header(("Authorization", format!("Bearer {token}")));
    for (k, v) in &many {
        req = req.insert_header((k.as_str(), v.as_str()));
    }
    let status = req.send().await.map(|r| r.status().as_u16()).unwrap_or(0);
    assert_eq!(status, 431, "too many headers are refused, never allowed");
    assert_eq!(app.verify(&token).await.status, 200, "still serving");
}

/// An IdP whose every stage is slow: discovery and introspection each take `stage`. It answers any client
/// assertion (the stages' timing is what is under test, not authentication).
async fn slow_idp(stage: Duration) -> String {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let doc = serde_json::json!({
        "issuer": issuer,
        "introspection_endpoint": format!("{issuer}/oauth/v2/introspect"),
    });
    let server = HttpServer::new(move || {
        let doc = doc.clone();
        App::new()
            .route(
                "/.well-known/openid-configuration",
                web::get().to(move || {
                    let doc = doc.clone();
                    async move {
                        actix_web::rt::time::sleep(stage).await;
                        HttpResponse::Ok().json(doc)
                    }
                }),
            )
            .route(
                "/oauth/v2/introspect",
                web::post().to(move || async move {
                    actix_web::rt::time::sleep(stage).await;
                    HttpResponse::Ok().json(serde_json::json!({"active": true, "sub": "s"}))
                }),
            )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    issuer
}

/// `idp.timeout` is one budget for the whole wait of a check: a free slot, discovery and the exchange together.
/// Each stage alone takes longer than the budget, and a check would wait for all three in turn (3 × 1.5 s) if each
/// had a timeout of its own. The bound asserted is generous (the budget plus 1.5 s of slack for a loaded machine),
/// and still far below what separate timeouts would give.
#[actix_web::test]
async fn a_check_waits_for_the_idp_at_most_idp_timeout_in_total() {
    let idp = TestIdp::start().await;
    let stage = Duration::from_millis(1500);
    let issuer = slow_idp(stage).await;
    let app = spawn_app(
        &idp,
        Setup::new()
            .set("idp.issuer", &issuer)
            .set("idp.timeout", "1s")
            .set("idp.max_concurrent", "1"),
    )
    .await;
    // The first check holds the only slot (its own budget ends in discovery); the second waits for the slot, then
    // for discovery, then for the exchange, all within its one budget.
    let first = app.verify("token-one");
    let second = async {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        let a = app.verify("token-two").await;
        (a, started.elapsed())
    };
    let (a, (b, waited)) = futures_util::join!(first, second);
    assert_eq!((a.status, b.status), (503, 503));
    assert!(
        waited < Duration::from_millis(2500),
        "the second check waited {waited:?}, more than its one budget allows"
    );
}
