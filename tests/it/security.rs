//! Secrets never leave the process; claims cannot inject headers; clients cannot have their own identity
//! headers echoed; risky key-file permissions are called out.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use tokengate::dev_idp::{Faults, TokenSpec};

use crate::helpers::*;

const SENTINEL_TOKEN: &str = "SentinelToken0123456789abcdefXYZ";
const SENTINEL_SECRET: &str = "SentinelClientSecret-987654321";

/// Runs the real `serve` with debug logging, makes every kind of check with the sentinels, and returns
/// (stderr, every response body and header, /metrics).
async fn sentinel_run(idp: &TestIdp, env: Vec<(&'static str, String)>) -> (String, String, String) {
    let port = closed_port();
    let bin = env!("CARGO_BIN_EXE_tokengate");
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .env("RUST_LOG", "debug")
        .env("TOKENGATE_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("TOKENGATE_SERVER__WORKERS", "1")
        .env("TOKENGATE_IDP__ISSUER", idp.idp.issuer())
        .env("TOKENGATE_IDP__TIMEOUT", "500ms")
        .env("TOKENGATE_TOKEN__COOKIE", "session")
        // Every check goes to the IdP, so each failure round really fails.
        .env("TOKENGATE_CACHE__TTL", "0s")
        .env("TOKENGATE_CACHE__NEGATIVE_TTL", "0s")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
    let mut seen = String::new();
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status().as_u16() == 200
        {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let bearer = format!("Bearer {SENTINEL_TOKEN}");
    let cookie = format!("session={SENTINEL_TOKEN}");
    let long = format!("Bearer {SENTINEL_TOKEN}{}", "A".repeat(9000));
    let bad = format!("Bearer {SENTINEL_TOKEN} extra");
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/verify", vec![("Authorization", &bearer)]),
        ("/verify?role=nope", vec![("Authorization", &bearer)]),
        ("/verify/api/x", vec![("Cookie", &cookie)]),
        ("/verify", vec![("Authorization", &long)]),
        ("/verify", vec![("Authorization", &bad)]),
        ("/verify?bogus=1", vec![("Authorization", &bearer)]),
        (
            "/verify",
            vec![
                ("Authorization", &bearer),
                ("X-Original-URI", "/a"),
                ("X-Forwarded-Uri", "/b"),
            ],
        ),
    ];
    let round = |faults: Faults| {
        idp.idp.set_faults(faults);
        let cases = cases.clone();
        let http = http.clone();
        let base = base.clone();
        async move {
            let mut out = String::new();
            for (path, headers) in cases {
                let mut req = http.get(format!("{base}{path}"));
                for (k, v) in headers {
                    req = req.append_header((k, v));
                }
                let mut resp = req.send().await.unwrap();
                out.push_str(&format!("{:?}", resp.headers()));
                out.push_str(&String::from_utf8_lossy(&resp.body().await.unwrap()));
            }
            out
        }
    };
    seen.push_str(&round(Faults::default()).await);
    seen.push_str(
        &round(Faults {
            status: Some(500),
            ..Faults::default()
        })
        .await,
    );
    seen.push_str(
        &round(Faults {
            hang: true,
            ..Faults::default()
        })
        .await,
    );
    idp.idp.set_faults(Faults::default());
    let metrics = String::from_utf8_lossy(
        &http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .body()
            .await
            .unwrap(),
    )
    .into_owned();
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (stderr, seen, metrics)
}

fn assert_absent(haystacks: &[(&str, &str)], needles: &[&str]) {
    for (what, text) in haystacks {
        for needle in needles {
            assert!(!text.contains(needle), "{what} contains a secret ({needle:.12}…)");
        }
    }
}

#[actix_web::test]
async fn sentinels_never_appear_in_logs_bodies_or_metrics() {
    let idp = TestIdp::start().await;
    idp.idp.insert_token(SENTINEL_TOKEN, admin());
    idp.idp.add_basic_client("tokengate-basic", SENTINEL_SECRET);

    // Text logs, Basic client authentication with a sentinel secret.
    let (stderr, bodies, metrics) = sentinel_run(
        &idp,
        vec![
            ("TOKENGATE_IDP__CLIENT_ID", "tokengate-basic".into()),
            ("TOKENGATE_IDP__CLIENT_SECRET", SENTINEL_SECRET.into()),
            ("TOKENGATE_LOG__FORMAT", "text".into()),
        ],
    )
    .await;
    assert!(stderr.contains("result="), "the decision log was on: {stderr:.300}");
    assert!(stderr.contains("answering 503"), "the failures were logged");
    let basic = base64_of(&format!("tokengate-basic:{SENTINEL_SECRET}"));
    let haystacks = [
        ("text log", stderr.as_str()),
        ("responses", bodies.as_str()),
        ("metrics", metrics.as_str()),
    ];
    assert_absent(&haystacks, &[SENTINEL_TOKEN, SENTINEL_SECRET, &basic]);

    // JSON logs, JWT-profile client authentication: neither the key nor any signed assertion may show.
    let (stderr, bodies, metrics) = sentinel_run(
        &idp,
        vec![
            ("TOKENGATE_IDP__KEY_FILE", idp.key_file.display().to_string()),
            ("TOKENGATE_LOG__FORMAT", "json".into()),
        ],
    )
    .await;
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        serde_json::from_str::<serde_json::Value>(first).is_ok(),
        "json log lines: {first}"
    );
    let key: serde_json::Value = serde_json::from_slice(&std::fs::read(&idp.key_file).unwrap()).unwrap();
    let pem = key["key"].as_str().unwrap();
    let key_body_line = pem.lines().nth(5).unwrap();
    let haystacks = [
        ("json log", stderr.as_str()),
        ("responses", bodies.as_str()),
        ("metrics", metrics.as_str()),
    ];
    // An assertion is a JWT: its header starts with this base64 of `{"typ":"JWT","alg":"RS256"` or `{"alg"`.
    assert_absent(
        &haystacks,
        &[
            SENTINEL_TOKEN,
            key_body_line,
            "PRIVATE KEY",
            "eyJ0eXAiOiJKV1Qi",
            "eyJhbGciOiJSUzI1NiIs",
        ],
    );
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[actix_web::test]
async fn claims_with_control_characters_never_become_headers() {
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new()).await;
    let mut extra = serde_json::Map::new();
    extra.insert("email".into(), json!("a@b.c\r\nX-Injected: yes"));
    extra.insert("preferred_username".into(), json!("tab\there"));
    extra.insert("sub".into(), json!("line\nbreak"));
    let token = idp.mint(TokenSpec { extra, ..admin() });
    let a = app.verify(&token).await;
    assert_eq!(a.status, 200, "the token itself is fine");
    assert!(a.header("x-injected").is_none());
    for name in [
        "x-auth-request-email",
        "x-auth-request-preferred-username",
        "x-auth-request-user",
    ] {
        assert_eq!(
            a.header(name).as_deref(),
            Some(""),
            "{name} is sent empty, never with the claim"
        );
    }
    assert_eq!(
        a.header("x-auth-request-roles").as_deref(),
        Some("admin"),
        "clean claims still pass"
    );
    assert_eq!(app.metric("tokengate_rejected_header_values_total", &[]), 3.0);
}

#[actix_web::test]
async fn client_identity_headers_are_never_echoed() {
    let idp = TestIdp::start().await;
    let app = spawn_app(
        &idp,
        Setup::new().file("[[rules]]\nname = \"pub\"\npaths = [\"/public/**\"]\nanonymous = true\n"),
    )
    .await;
    let spoof = [
        ("X-Auth-Request-User", "mallory"),
        ("X-Auth-Request-Roles", "admin"),
        ("X-Original-URI", "/app"),
    ];
    let token = format!(
        "Bearer {}",
        idp.mint(TokenSpec {
            sub: "alice".into(),
            ..TokenSpec::default()
        })
    );
    let a = app
        .get("/verify", &[spoof[0], spoof[1], spoof[2], ("Authorization", &token)])
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-auth-request-user").as_deref(), Some("alice"));
    assert_eq!(
        a.header("x-auth-request-roles").as_deref(),
        Some(""),
        "alice has no roles; the client's claim is not echoed but overwritten"
    );
    let a = app
        .get("/verify", &[spoof[0], spoof[1], ("X-Original-URI", "/public/a")])
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-auth-request-user").as_deref(), Some(""));
    assert_eq!(a.header("x-auth-request-roles").as_deref(), Some(""));
    let a = app.get("/verify", &[spoof[0], spoof[1], spoof[2]]).await;
    assert_eq!(a.status, 401);
    assert!(a.header("x-auth-request-user").is_none());
}

#[actix_web::test]
async fn a_world_readable_key_file_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let idp = TestIdp::start().await;
    let run = |mode: u32| {
        std::fs::set_permissions(&idp.key_file, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_tokengate"))
            .arg("check")
            .env("TOKENGATE_IDP__ISSUER", idp.idp.issuer())
            .env("TOKENGATE_IDP__KEY_FILE", &idp.key_file)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // Blocking here is fine: the double's acceptor and workers run on threads of their own.
    let loose = run(0o644);
    assert!(loose.contains("readable by every user"), "{loose}");
    let tight = run(0o600);
    assert!(!tight.contains("readable by every user"), "{tight}");
}

#[actix_web::test]
async fn plain_http_to_a_non_loopback_idp_is_warned_about() {
    logs();
    let idp = TestIdp::start().await;
    let _local = spawn_app(&idp, Setup::new()).await;
    assert!(
        !logged(&format!("idp.issuer {} uses plain http", idp.idp.issuer())),
        "loopback is fine"
    );
    let _remote = spawn_app(&idp, Setup::new().set("idp.issuer", "http://zitadel.example.com")).await;
    assert!(logged(
        "idp.issuer http://zitadel.example.com uses plain http to a non-loopback host"
    ));
}
