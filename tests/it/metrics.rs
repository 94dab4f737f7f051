//! What /metrics counts, and that Prometheus' own checker accepts it.

use tokengate::dev_idp::{Faults, TokenSpec};

use crate::helpers::*;

#[actix_web::test]
async fn each_outcome_is_counted_without_secrets_in_labels() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new().set("policy.required_roles", "admin")).await;
    let good = idp.mint(admin());
    let viewer = idp.mint(TokenSpec::default().roles(&["viewer"]));
    assert_eq!(app.verify(&good).await.status, 200);
    assert_eq!(app.verify(&good).await.status, 200);
    assert_eq!(app.get("/verify", &[]).await.status, 401);
    assert_eq!(app.verify("inactive-token").await.status, 401);
    assert_eq!(app.verify(&viewer).await.status, 403);
    idp.idp.set_faults(Faults {
        status: Some(500),
        ..Faults::default()
    });
    assert_eq!(app.verify(&idp.mint(admin())).await.status, 503);

    let text = app.get("/metrics", &[]).await.body;
    let v = |name: &str, labels: &[(&str, &str)]| metric_value(&text, name, labels);
    assert_eq!(v("tokengate_verify_requests_total", &[("result", "allowed")]), 2.0);
    assert_eq!(
        v("tokengate_verify_requests_total", &[("result", "unauthenticated")]),
        2.0
    );
    assert_eq!(v("tokengate_verify_requests_total", &[("result", "forbidden")]), 1.0);
    assert_eq!(v("tokengate_verify_requests_total", &[("result", "unavailable")]), 1.0);
    assert_eq!(v("tokengate_verify_duration_seconds_count", &[]), 6.0);
    assert_eq!(
        v("tokengate_introspection_requests_total", &[("outcome", "active")]),
        2.0
    );
    assert_eq!(
        v("tokengate_introspection_requests_total", &[("outcome", "inactive")]),
        1.0
    );
    assert_eq!(
        v("tokengate_introspection_requests_total", &[("outcome", "error")]),
        1.0
    );
    assert_eq!(v("tokengate_introspection_duration_seconds_count", &[]), 4.0);
    assert_eq!(v("tokengate_idp_errors_total", &[("kind", "server_error")]), 1.0);
    assert!(
        v("tokengate_assertions_signed_total", &[]) >= 4.0,
        "a fresh assertion per call by default (and some signed ahead)"
    );
    assert_eq!(
        v("tokengate_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        1.0
    );
    assert!(text.contains("process_resident_memory_bytes"));
    for secret in [good.as_str(), viewer.as_str(), "inactive-token", "user-1"] {
        assert!(!text.contains(secret), "metrics leak {secret}");
    }
}

#[actix_web::test]
async fn assertion_reuse_saves_signatures() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new().set("idp.assertion_reuse", "true")).await;
    for _ in 0..5 {
        assert_eq!(app.verify(&idp.mint(admin())).await.status, 200);
    }
    assert_eq!(app.metric("tokengate_assertions_signed_total", &[]), 1.0);
}

#[actix_web::test]
async fn metrics_can_move_to_their_own_listener() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new().separate_metrics()).await;
    assert_eq!(app.get("/metrics", &[]).await.status, 404);
    let url = format!("{}/metrics", app.metrics_url.as_ref().unwrap());
    let mut resp = app.http.get(url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.body().await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains("tokengate_verify_requests_total"));
}

#[actix_web::test]
async fn promtool_accepts_the_exposition() {
    let Some(promtool) = tool("promtool") else { return };
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new()).await;
    assert_eq!(app.verify(&idp.mint(admin())).await.status, 200);
    let text = app.get("/metrics", &[]).await.body;
    let out = actix_web::rt::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
