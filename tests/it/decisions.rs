//! The decision log: one line per check at info level, its exact fields in JSON and text, nothing secret in it, and
//! the sampler that thins allowed lines but keeps every denial. On the real binary, whose stderr is read back.

use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokengate::dev_idp::TokenSpec;

use crate::helpers::*;

const QUERY_SENTINEL: &str = "q-sentinel-7f3a9c";

const RULES: &str = r#"
[[rules]]
name = "public"
paths = ["/public/**"]
anonymous = true

[[rules]]
name = "admin"
paths = ["/admin/**"]
required_roles = ["admin"]
"#;

/// Runs the binary with `env`, sends `checks` (path of the original request, bearer token), stops it, returns
/// its stderr.
async fn run(idp: &TestIdp, env: &[(&str, &str)], checks: &[(&str, Option<&str>)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokengate.toml");
    std::fs::write(&file, RULES).unwrap();
    let port = closed_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokengate"));
    cmd.arg("serve")
        .arg("--config")
        .arg(&file)
        .env("RUST_LOG", "info")
        .env("TOKENGATE_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("TOKENGATE_SERVER__WORKERS", "1")
        .env("TOKENGATE_IDP__ISSUER", idp.idp.issuer())
        .env("TOKENGATE_IDP__KEY_FILE", &idp.key_file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
    let mut ready = false;
    for _ in 0..200 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status().as_u16() == 200
        {
            ready = true;
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "tokengate did not become ready");
    for (path, token) in checks {
        let mut req = http
            .get(format!("{base}/verify"))
            .insert_header(("X-Original-URI", *path))
            .insert_header(("X-Forwarded-Host", "app.example.com"));
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        req.send().await.unwrap();
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    stderr
}

fn keys(line: &serde_json::Value) -> BTreeSet<String> {
    line.as_object().unwrap().keys().cloned().collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

const ALLOWED_FIELDS: &[&str] = &[
    "ts",
    "result",
    "reason",
    "rule",
    "method",
    "host",
    "path",
    "sub",
    "client_id",
    "org_id",
    "source",
    "door",
    "duration_us",
];
const NO_TOKEN_FIELDS: &[&str] = &[
    "ts",
    "result",
    "reason",
    "rule",
    "method",
    "host",
    "path",
    "door",
    "duration_us",
];

#[actix_web::test]
async fn one_line_per_check_with_exactly_these_fields_in_json_and_text() {
    let idp = TestIdp::start().await;
    let token = idp.mint(TokenSpec {
        sub: "alice-42".into(),
        ..TokenSpec::default()
    });
    let app_path = format!("/app/x?{QUERY_SENTINEL}=1");
    let checks = [
        (app_path.as_str(), Some(token.as_str())),
        ("/admin/x", Some(token.as_str())),
        ("/app/y", None),
        ("/public/a.css", None),
    ];
    for format in ["json", "text"] {
        let stderr = run(&idp, &[("TOKENGATE_LOG__FORMAT", format)], &checks).await;
        assert!(!stderr.contains(&token), "{format}: the token reached the log");
        assert!(!stderr.contains(QUERY_SENTINEL), "{format}: the query reached the log");
        let lines: Vec<serde_json::Value> = match format {
            "json" => stderr
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|v| v.get("result").is_some())
                .collect(),
            // `ts=… key=value …`: read back into the same shape (values here hold no spaces).
            _ => stderr
                .lines()
                .filter(|l| l.starts_with("ts="))
                .map(|l| {
                    let map: serde_json::Map<String, serde_json::Value> = l
                        .split(' ')
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| {
                            (
                                k.to_string(),
                                serde_json::Value::String(v.trim_matches('"').to_string()),
                            )
                        })
                        .collect();
                    serde_json::Value::Object(map)
                })
                .collect(),
        };
        assert_eq!(lines.len(), 4, "{format}: one line per check:\n{stderr}");
        let field = |i: usize, k: &str| {
            lines[i][k]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| lines[i][k].to_string())
        };
        assert_eq!(keys(&lines[0]), set(ALLOWED_FIELDS), "{format}");
        assert_eq!(
            (
                field(0, "result"),
                field(0, "reason"),
                field(0, "sub"),
                field(0, "path")
            ),
            ("allowed".into(), "granted".into(), "alice-42".into(), "/app/x".into()),
            "{format}"
        );
        assert_eq!(
            (
                field(0, "door"),
                field(0, "method"),
                field(0, "host"),
                field(0, "source")
            ),
            (
                "http".into(),
                "GET".into(),
                "app.example.com".into(),
                "introspection".into()
            )
        );
        assert_eq!(
            keys(&lines[1]),
            set(ALLOWED_FIELDS),
            "{format}: who was refused is logged too"
        );
        assert_eq!(
            (field(1, "result"), field(1, "reason"), field(1, "rule")),
            ("forbidden".into(), "missing_role".into(), "admin".into())
        );
        assert_eq!(
            keys(&lines[2]),
            set(NO_TOKEN_FIELDS),
            "{format}: no token, no identity, no source"
        );
        assert_eq!(
            (field(2, "result"), field(2, "reason")),
            ("unauthenticated".into(), "no_token".into())
        );
        assert_eq!(
            (field(3, "result"), field(3, "reason")),
            ("allowed".into(), "anonymous_rule".into())
        );
        assert!(field(0, "duration_us").parse::<u64>().is_ok());
    }
}

#[actix_web::test]
async fn the_sampler_thins_allowed_lines_and_keeps_every_denial() {
    let idp = TestIdp::start().await;
    let token = idp.mint(TokenSpec::default());
    let mut checks: Vec<(&str, Option<&str>)> = Vec::new();
    for _ in 0..10 {
        checks.push(("/app/x", Some(token.as_str())));
        checks.push(("/app/x", None));
    }
    let count = |stderr: &str, result: &str| {
        stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["result"] == result)
            .count()
    };
    let json = ("TOKENGATE_LOG__FORMAT", "json");
    let none = run(&idp, &[json, ("TOKENGATE_LOG__DECISIONS_SAMPLE_ALLOWED", "0")], &checks).await;
    assert_eq!((count(&none, "allowed"), count(&none, "unauthenticated")), (0, 10));
    let half = run(
        &idp,
        &[json, ("TOKENGATE_LOG__DECISIONS_SAMPLE_ALLOWED", "0.5")],
        &checks,
    )
    .await;
    assert_eq!((count(&half, "allowed"), count(&half, "unauthenticated")), (5, 10));
    let off = run(&idp, &[json, ("TOKENGATE_LOG__DECISIONS", "false")], &checks).await;
    assert_eq!(
        count(&off, "allowed") + count(&off, "unauthenticated"),
        0,
        "log.decisions = false"
    );
}
