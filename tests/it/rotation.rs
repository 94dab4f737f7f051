//! Key rotation without restart, and graceful shutdown: the process-level promises of issue "hardening".

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokengate::dev_idp::Faults;

use crate::helpers::*;

fn key_id(path: &Path) -> String {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["keyId"].as_str().unwrap().to_string()
}

/// As editors and `kubectl cp` do not, but operators should: write aside, then rename over.
fn replace_atomically(path: &Path, content: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Waits up to 5 s for `tokengate_credential_reloads_total{result}` to reach `n`.
async fn reloads(app: &TestApp, result: &str, n: f64) -> bool {
    eventually(5, || {
        app.metric("tokengate_credential_reloads_total", &[("result", result)]) == n
    })
    .await
}

async fn rotating_app(idp: &TestIdp) -> (TestApp, std::path::PathBuf) {
    let live = idp.dir.path().join("live-key.json");
    std::fs::copy(&idp.key_file, &live).unwrap();
    let app = spawn_app(
        idp,
        Setup::new()
            .set("idp.key_file", live.to_str().unwrap())
            .set("idp.reload_interval", "100ms"),
    )
    .await;
    assert!(app.wait_ready().await);
    (app, live)
}

#[actix_web::test]
async fn a_new_key_file_is_picked_up_without_restart() {
    let idp = TestIdp::start().await;
    let (app, live) = rotating_app(&idp).await;
    let old_kid = key_id(&live);
    let fresh_dir = tempfile::tempdir().unwrap();
    let new_key = idp.idp.add_api_app(fresh_dir.path(), "tokengate").unwrap();
    replace_atomically(&live, &std::fs::read(&new_key).unwrap());
    assert!(reloads(&app, "applied", 1.0).await);
    idp.idp.remove_key(&old_kid);
    assert_eq!(
        app.verify(&idp.mint(admin())).await.status,
        200,
        "signing with the new key"
    );
}

#[actix_web::test]
async fn an_unusable_or_unknown_key_is_rejected_and_the_old_one_kept() {
    logs();
    let idp = TestIdp::start().await;
    let (app, live) = rotating_app(&idp).await;
    let original = std::fs::read(&live).unwrap();
    replace_atomically(&live, b"{\"type\":\"application\",\"keyId\":\"9\"}");
    assert!(reloads(&app, "rejected", 1.0).await);
    assert!(logged("new credentials rejected, keeping the ones in use"));
    assert_eq!(app.verify(&idp.mint(admin())).await.status, 200);

    // A well-formed key the IdP does not know fails its first use: also rejected.
    let stranger = TestIdp::start().await;
    let other_dir = tempfile::tempdir().unwrap();
    let unknown = stranger.idp.add_api_app(other_dir.path(), "tokengate").unwrap();
    replace_atomically(&live, &std::fs::read(unknown).unwrap());
    assert!(reloads(&app, "rejected", 2.0).await);
    assert_eq!(
        app.verify(&idp.mint(admin())).await.status,
        200,
        "the old key is still in use"
    );
    assert_eq!(
        app.get("/readyz", &[]).await.status,
        200,
        "a rejected candidate does not make the service unready"
    );
    replace_atomically(&live, &original);
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.metric("tokengate_credential_reloads_total", &[("result", "applied")]),
        0.0,
        "unchanged key: nothing to apply"
    );
}

#[actix_web::test]
async fn kubernetes_secret_symlink_swaps_are_followed() {
    let idp = TestIdp::start().await;
    // The layout of a mounted Secret: key.json -> ..data/key.json, ..data -> ..<timestamp>/
    let mount = tempfile::tempdir().unwrap();
    let m = mount.path();
    std::fs::create_dir(m.join("..2026_11_29_1")).unwrap();
    std::fs::copy(&idp.key_file, m.join("..2026_11_29_1/key.json")).unwrap();
    std::os::unix::fs::symlink("..2026_11_29_1", m.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/key.json", m.join("key.json")).unwrap();
    let app = spawn_app(
        &idp,
        Setup::new()
            .set("idp.key_file", m.join("key.json").to_str().unwrap())
            .set("idp.reload_interval", "100ms"),
    )
    .await;
    assert!(app.wait_ready().await);
    let old_kid = key_id(&idp.key_file);
    let fresh = tempfile::tempdir().unwrap();
    let new_key = idp.idp.add_api_app(fresh.path(), "tokengate").unwrap();
    std::fs::create_dir(m.join("..2026_11_29_2")).unwrap();
    std::fs::copy(&new_key, m.join("..2026_11_29_2/key.json")).unwrap();
    std::os::unix::fs::symlink("..2026_11_29_2", m.join("..data_tmp")).unwrap();
    std::fs::rename(m.join("..data_tmp"), m.join("..data")).unwrap();
    std::fs::remove_dir_all(m.join("..2026_11_29_1")).unwrap();
    assert!(reloads(&app, "applied", 1.0).await);
    idp.idp.remove_key(&old_kid);
    assert_eq!(app.verify(&idp.mint(admin())).await.status, 200);
}

fn spawn_serve(idp: &TestIdp, port: u16, key: &Path, extra: &[(&str, &str)]) -> std::process::Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokengate"));
    cmd.arg("serve")
        .env("TOKENGATE_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("TOKENGATE_SERVER__WORKERS", "1")
        .env("TOKENGATE_IDP__ISSUER", idp.idp.issuer())
        .env("TOKENGATE_IDP__KEY_FILE", key)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

async fn wait_http(http: &awc::Client, url: &str) {
    for _ in 0..100 {
        if http.get(url).send().await.is_ok_and(|r| r.status().as_u16() == 200) {
            return;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never answered 200");
}

fn signal(child: &std::process::Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[actix_web::test]
async fn sighup_reloads_the_key() {
    let idp = TestIdp::start().await;
    let live = idp.dir.path().join("hup-key.json");
    std::fs::copy(&idp.key_file, &live).unwrap();
    let port = closed_port();
    let mut child = spawn_serve(&idp, port, &live, &[("TOKENGATE_IDP__RELOAD_INTERVAL", "0s")]);
    let http = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
    let base = format!("http://127.0.0.1:{port}");
    wait_http(&http, &format!("{base}/readyz")).await;
    let fresh = tempfile::tempdir().unwrap();
    let new_key = idp.idp.add_api_app(fresh.path(), "tokengate").unwrap();
    replace_atomically(&live, &std::fs::read(new_key).unwrap());
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let metrics = |http: awc::Client, url: String| async move {
        String::from_utf8_lossy(&http.get(url).send().await.unwrap().body().await.unwrap()).into_owned()
    };
    let before = metrics(http.clone(), format!("{base}/metrics")).await;
    assert_eq!(
        metric_value(&before, "tokengate_credential_reloads_total", &[("result", "applied")]),
        0.0,
        "no polling"
    );
    signal(&child, "-HUP");
    let mut applied = false;
    for _ in 0..100 {
        let text = metrics(http.clone(), format!("{base}/metrics")).await;
        if metric_value(&text, "tokengate_credential_reloads_total", &[("result", "applied")]) == 1.0 {
            applied = true;
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(applied, "SIGHUP applied the new key");
}

#[actix_web::test]
async fn sigterm_finishes_in_flight_checks_then_exits_zero() {
    let idp = TestIdp::start().await;
    let port = closed_port();
    let mut child = spawn_serve(
        &idp,
        port,
        &idp.key_file,
        &[("TOKENGATE_SERVER__SHUTDOWN_TIMEOUT", "10s")],
    );
    let http = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
    let base = format!("http://127.0.0.1:{port}");
    wait_http(&http, &format!("{base}/readyz")).await;
    idp.idp.set_faults(Faults {
        latency_ms: 1500,
        ..Faults::default()
    });
    let token = idp.mint(admin());
    let in_flight = {
        let http = http.clone();
        let url = format!("{base}/verify");
        actix_web::rt::spawn(async move {
            http.get(url)
                .insert_header(("Authorization", format!("Bearer {token}")))
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    actix_web::rt::time::sleep(Duration::from_millis(400)).await;
    signal(&child, "-TERM");
    assert_eq!(in_flight.await.unwrap().unwrap(), 200, "the in-flight check completed");
    let status = actix_web::rt::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "no longer accepting"
    );
}

#[actix_web::test]
async fn a_new_client_secret_file_is_picked_up_too() {
    let idp = TestIdp::start().await;
    idp.idp.add_basic_client("api-basic", "first-secret");
    let secret = idp.dir.path().join("client-secret");
    std::fs::write(&secret, "first-secret\n").unwrap();
    let setup = Setup::new()
        .set("idp.key_file", "")
        .set("idp.client_id", "api-basic")
        .set("idp.client_secret_file", secret.to_str().unwrap())
        .set("idp.reload_interval", "100ms");
    let app = spawn_app(&idp, setup).await;
    assert_eq!(app.verify(&idp.mint(admin())).await.status, 200);
    // Rotated at the IdP first (the old secret stops working), then in the mounted file.
    idp.idp.add_basic_client("api-basic", "second-secret");
    replace_atomically(&secret, b"second-secret\n");
    assert!(reloads(&app, "applied", 1.0).await);
    assert_eq!(app.verify(&idp.mint(admin())).await.status, 200);
}
