//! The `check` and `introspect` subcommands, run as the real binary against the double.

use std::io::Write;
use std::process::{Command, Stdio};

use tokengate::dev_idp::TokenSpec;

use crate::helpers::*;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary off the test's thread, so the double (in this process) keeps answering.
async fn run(args: &[&str], env: &[(&str, String)], stdin: Option<String>) -> Run {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    actix_web::rt::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokengate"));
        cmd.args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TOKENGATE_")) {
            cmd.env_remove(k);
        }
        cmd.envs(env);
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

fn config_file(idp: &TestIdp, extra: &str) -> String {
    let path = idp.dir.path().join(format!("c{}.toml", rand_suffix()));
    std::fs::write(
        &path,
        format!(
            "[idp]\nissuer = \"{}\"\nkey_file = \"{}\"\n{extra}",
            idp.idp.issuer(),
            idp.key_file.display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

#[actix_web::test]
async fn check_succeeds_and_summarises() {
    let idp = TestIdp::start().await;
    let cfg = config_file(&idp, "");
    let r = run(&["check", "--config", &cfg], &[], None).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("tokengate check: OK"));
    assert!(r.stdout.contains(idp.idp.issuer()));
    assert!(r.stdout.contains("/oauth/v2/introspect"));
    assert!(r.stdout.contains("tokengate@300000000000000001"));
    assert!(r.stdout.contains("private_key_jwt"));
    assert!(r.stdout.contains("cache:"));
    assert_eq!(idp.idp.introspections(), 1, "one real introspection call");
}

#[actix_web::test]
async fn check_explains_rejected_credentials() {
    let idp = TestIdp::start().await;
    let cfg = config_file(&idp, "");
    idp.idp.remove_keys();
    let r = run(&["check"], &[("TOKENGATE_CONFIG", cfg)], None).await;
    assert_eq!(r.code, 77, "{}", r.stderr);
    assert!(r.stderr.contains("rejected our client authentication"), "{}", r.stderr);
    assert!(r.stderr.contains("unauthorized_client"));
}

#[actix_web::test]
async fn check_reports_an_unreachable_idp() {
    let idp = TestIdp::start().await;
    let env = [
        ("TOKENGATE_IDP__ISSUER", format!("http://127.0.0.1:{}", closed_port())),
        ("TOKENGATE_IDP__KEY_FILE", idp.key_file.display().to_string()),
    ];
    let r = run(&["check"], &env, None).await;
    assert_eq!(r.code, 69, "{}", r.stderr);
    assert!(r.stderr.contains("openid-configuration"), "{}", r.stderr);
}

#[actix_web::test]
async fn config_errors_are_listed_together_and_exit_64() {
    let r = run(
        &["check"],
        &[
            ("TOKENGATE_IDP__TIMEOUT", "soon".into()),
            ("TOKENGATE_SERVER__LISTEN", "nowhere".into()),
        ],
        None,
    )
    .await;
    assert_eq!(r.code, 64);
    for needle in [
        "TOKENGATE_IDP__ISSUER",
        "TOKENGATE_IDP__TIMEOUT",
        "TOKENGATE_SERVER__LISTEN",
        "TOKENGATE_IDP__KEY_FILE",
    ] {
        assert!(r.stderr.contains(needle), "{needle} missing from {}", r.stderr);
    }
    let r = run(&["serve"], &[("TOKENGATE_IDP__ISSUER", "ftp://x".into())], None).await;
    assert_eq!(r.code, 64);
}

#[actix_web::test]
async fn a_service_account_key_is_refused_with_the_reason() {
    let idp = TestIdp::start().await;
    let sa = idp.dir.path().join("sa.json");
    std::fs::write(&sa, r#"{"type":"serviceaccount","keyId":"1","key":"x","userId":"2"}"#).unwrap();
    let r = run(
        &["check"],
        &[
            ("TOKENGATE_IDP__ISSUER", idp.idp.issuer().into()),
            ("TOKENGATE_IDP__KEY_FILE", sa.display().to_string()),
        ],
        None,
    )
    .await;
    assert_eq!(r.code, 64);
    assert!(
        r.stderr.contains("machine-user") && r.stderr.contains("API application"),
        "{}",
        r.stderr
    );
}

#[actix_web::test]
async fn introspect_reads_stdin_and_prints_the_decision() {
    let idp = TestIdp::start().await;
    let cfg = config_file(&idp, "[policy]\nrequired_roles = [\"admin\"]\n");
    let token = idp.mint(TokenSpec {
        sub: "someone".into(),
        ..admin()
    });
    let r = run(&["introspect", "--config", &cfg], &[], Some(format!("{token}\n"))).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json_end = r.stdout.find("decision:").unwrap();
    let json: serde_json::Value = serde_json::from_str(&r.stdout[..json_end]).unwrap();
    assert_eq!(json["active"], true);
    assert_eq!(json["sub"], "someone");
    assert!(r.stdout.contains("decision: allow"));
    assert!(r.stdout.contains("x-auth-request-user: someone"));

    let viewer = idp.mint(TokenSpec::default().roles(&["viewer"]));
    let r = run(&["introspect", "--config", &cfg], &[], Some(viewer)).await;
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("decision: deny (403"), "{}", r.stdout);
    let r = run(&["introspect", "--config", &cfg], &[], Some("nope".into())).await;
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("\"active\": false") && r.stdout.contains("decision: deny (401"),
        "{}",
        r.stdout
    );
    let r = run(&["introspect", "--config", &cfg], &[], Some(String::new())).await;
    assert_eq!(r.code, 64);
}

/// The README's first command: what it prints must work when pasted.
#[actix_web::test]
async fn dev_mode_prints_a_curl_that_works() {
    use std::io::BufRead;
    let port = closed_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .args(["dev", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Reading blocks; do it off the test's thread, up to the last line of the banner.
    let lines = actix_web::rt::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .take_while(|l| !l.starts_with("Metrics:"))
            .collect::<Vec<String>>()
    })
    .await
    .unwrap();
    let text = lines.join("\n");
    assert!(text.contains("DEVELOPMENT ONLY"), "{text}");
    let curls: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("curl -i -H 'Authorization: Bearer "))
        .collect();
    let bearer = |line: &str| {
        line.split("Bearer ")
            .nth(1)
            .unwrap()
            .split('\'')
            .next()
            .unwrap()
            .to_string()
    };
    let curl = curls.first().expect("a curl line");
    let token = bearer(curl);
    let jwt = bearer(curls.get(1).expect("a second curl line, with a JWT"));
    assert_eq!(jwt.split('.').count(), 3, "a JWS: {jwt}");
    let jwt_mint_url = lines
        .iter()
        .filter(|l| l.contains("format=jwt"))
        .find_map(|l| l.split('\'').nth(1))
        .expect("a JWT mint line")
        .to_string();
    let verify_url = curl.rsplit(' ').next().unwrap().to_string();
    assert_eq!(verify_url, format!("http://127.0.0.1:{port}/verify"));
    let mint_url = lines
        .iter()
        .find(|l| l.contains("/dev/token?"))
        .and_then(|l| l.split('\'').nth(1))
        .expect("a mint line")
        .to_string();

    let http = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .finish();
    let status = |token: String| {
        let http = http.clone();
        let url = verify_url.clone();
        async move {
            http.get(url)
                .insert_header(("Authorization", format!("Bearer {token}")))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(token).await, 200, "the printed token works");
    let minted: serde_json::Value = http.post(mint_url).send().await.unwrap().json().await.unwrap();
    let more = minted["access_token"].as_str().unwrap().to_string();
    assert_eq!(status(more).await, 200, "a minted token works");
    assert_eq!(
        status(jwt).await,
        200,
        "the printed JWT works (introspected like an opaque token)"
    );
    let minted: serde_json::Value = http.post(jwt_mint_url).send().await.unwrap().json().await.unwrap();
    let more_jwt = minted["access_token"].as_str().unwrap().to_string();
    assert_eq!(more_jwt.split('.').count(), 3);
    assert_eq!(status(more_jwt).await, 200, "a minted JWT works");
    assert_eq!(status("not-issued".into()).await, 401);
    let _ = child.kill();
    let _ = child.wait();
}
